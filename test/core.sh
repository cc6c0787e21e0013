#!/usr/bin/env bash
# bash test/core.sh
#
# PostgreSQL's own regression and isolation suites as a peer test, run three
# times: against a plain server; against a server with pg_integrity_guard
# preloaded, every error class captured, and the extension created in
# template1 (so every test database has it); and the same again with every
# table the suites create guarded (an event trigger in template1 attaches
# guard_duplicates and guard_counter on each integer column, at its type's
# own range).  The second and third runs must give the plain run's
# results, test by test and byte by byte, but for the differences listed in
# test/core-differences.txt (the extension installed) and
# test/core-guarded-differences.txt (every table guarded).  Prints the
# differences (if any) and a final "N passed, N failed": one check per suite
# and per test whose outcome or output differs, per compared run.
#
# The server source comes from `apt-get source postgresql-$PG_MAJOR` (a
# deb-src entry for the machine's own mirror is added if missing), at the
# installed version, and is kept in $IG_SRC_CACHE (default
# /var/cache/pg_integrity_guard/src).  The regress module is built with PGXS.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap stop_clusters EXIT
trap 'exit 130' INT TERM
CACHE=${IG_SRC_CACHE:-/var/cache/pg_integrity_guard/src}

ensure_packages dpkg-dev || { echo "0 passed, 1 failed"; exit 1; }
build_install || { echo "0 passed, 1 failed"; exit 1; }

# The server's source: the installed version if the mirror has its source,
# else the newest source of the same major it has (the test inputs of one
# major differ little, and both runs use the same inputs anyway).
fetch_source() {
    local ver dir v
    ver=$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR" 2>/dev/null)
    [ -n "$ver" ] || { log "postgresql-$PG_MAJOR is not a Debian package here"; return 1; }
    dir=$CACHE/pg$PG_MAJOR
    if [ ! -f "$dir/.ig-ready" ]; then
        if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            log "adding deb-src entries for this machine's mirror"
            if [ -f /etc/apt/sources.list.d/debian.sources ]; then
                sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
                    >/etc/apt/sources.list.d/pg_integrity_guard-src.sources
            else
                sed -n 's/^deb /deb-src /p' /etc/apt/sources.list \
                    >/etc/apt/sources.list.d/pg_integrity_guard-src.list
            fi
        fi
        apt-get update -qq >/dev/null
        for v in "$ver" $(apt-cache showsrc "postgresql-$PG_MAJOR" 2>/dev/null |
            sed -n 's/^Version: //p' | sort -rV); do
            rm -rf "$dir"
            mkdir -p "$dir"
            log "apt-get source postgresql-$PG_MAJOR=$v"
            if (cd "$dir" && apt-get source -qq --only-source "postgresql-$PG_MAJOR=$v" >/dev/null 2>&1); then
                echo "$v" >"$dir/.ig-ready"
                break
            fi
        done
        [ -f "$dir/.ig-ready" ] || { log "apt-get source failed for every version"; return 1; }
    fi
    [ "$(cat "$dir/.ig-ready")" = "$ver" ] ||
        log "test inputs of postgresql-$PG_MAJOR $(cat "$dir/.ig-ready"), server $ver"
    SRC=$(find "$dir" -maxdepth 1 -mindepth 1 -type d -name "postgresql-$PG_MAJOR-*" | head -n 1)
    [ -n "$SRC" ] && [ -d "$SRC/src/test/regress" ]
}

# A scratch copy of the test directories the postgres user may write to,
# with regress.so built by PGXS.
prepare_tests() {
    WORK=$(mktemp -d /tmp/pg_integrity_guard_core.XXXXXX)
    IG_CLUSTERS+=("$WORK")
    mkdir -p "$WORK/src/test"
    cp -r "$SRC/src/test/regress" "$SRC/src/test/isolation" "$WORK/src/test/"
    printf 'MODULES = regress\nPG_CPPFLAGS = -I%s/src/test/regress\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n' \
        "$WORK" >"$WORK/src/test/regress/Makefile.ig"
    make -s -C "$WORK/src/test/regress" -f Makefile.ig PG_CONFIG="$PG_CONFIG" >"$WORK/build.log" 2>&1 ||
        { cat "$WORK/build.log" >&2; return 1; }
    chown -R postgres: "$WORK"
}

# Every error class of the server's errcodes.txt (00-02 are not errors).
all_classes() {
    awk '/^Section: Class/ { c = substr($3, 1, 2); if (c > "02") printf "%s%s", sep, c; sep = ", " }' \
        "$($PG_CONFIG --sharedir)/errcodes.txt"
}

# run_suites LABEL [conf lines]: regress (parallel schedule) and isolation
# against one fresh cluster; results land in $WORK/LABEL.
run_suites() {
    local label=$1 dir out
    shift
    start_cluster dir "max_prepared_transactions = 10" "$@" || return 1
    cluster_env "$dir"
    if [ "$label" != without ]; then
        "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d template1 -c 'CREATE EXTENSION pg_integrity_guard' ||
            return 1
    fi
    if [ "$label" = guarded ]; then
        "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d template1 -f "$TOP/test/core-guard-everything.sql" ||
            return 1
    fi
    # pg_regress would make its databases from template0; these come from
    # template1, as an application's databases do.
    "$PGBIN/createdb" -T template1 regression && "$PGBIN/createdb" -T template1 isolation_regression ||
        return 1
    mkdir -p "$WORK/$label/regress" "$WORK/$label/isolation"
    chown -R postgres: "$WORK/$label"
    log "core regress ($label the extension)"
    out=$(cd "$WORK" && runuser -u postgres -- env PGHOST="$PGHOST" PGPORT="$PGPORT" \
        "$($PG_CONFIG --pkglibdir)/pgxs/src/test/regress/pg_regress" \
        --bindir="$PGBIN" --inputdir="$WORK/src/test/regress" --outputdir="$WORK/$label/regress" \
        --dlpath="$WORK/src/test/regress" --schedule="$WORK/src/test/regress/parallel_schedule" \
        --max-concurrent-tests=20 --host="$PGHOST" --port="$PGPORT" \
        --use-existing --dbname=regression 2>&1)
    printf '%s\n' "$out" >"$WORK/$label/regress.out"
    log "core isolation ($label the extension)"
    out=$(cd "$WORK" && runuser -u postgres -- env PGHOST="$PGHOST" PGPORT="$PGPORT" \
        "$($PG_CONFIG --pkglibdir)/pgxs/src/test/isolation/pg_isolation_regress" \
        --bindir="$PGBIN" --inputdir="$WORK/src/test/isolation" --outputdir="$WORK/$label/isolation" \
        --schedule="$WORK/src/test/isolation/isolation_schedule" --host="$PGHOST" --port="$PGPORT" \
        --use-existing --dbname=isolation_regression 2>&1)
    printf '%s\n' "$out" >"$WORK/$label/isolation.out"
    stop_clusters_but_work
}

# Stop the cluster of this run, keep $WORK for the comparison.
stop_clusters_but_work() {
    local keep=("$WORK") d
    for d in "${IG_CLUSTERS[@]}"; do
        [ "$d" = "$WORK" ] && continue
        IG_CLUSTERS=("$d")
        stop_clusters
    done
    IG_CLUSTERS=("${keep[@]}")
}

# "name status" per test from a pg_regress run (both output formats).
outcomes() {
    sed -nE 's/^(test|     |    )? *([a-z0-9_-]+) +\.\.\. +(ok|FAILED|failed|ignored).*/\2 \3/p;
             s/^(not ok|ok) +[0-9]+ +[-+] +([a-z0-9_-]+) .*/\2 \1/p' "$1" | sort
}

# The REGEX $DIFFS lists for test $1 (and for every test, "*"), if any.
known_difference() {
    awk -F '\t' -v t="$1" '!/^#/ && ($1 == t || $1 == "*") { r = r (r == "" ? "" : "|") $2 }
        END { print r }' "$DIFFS"
}

# A test output without the lines matching $2, without row counts and with
# table alignment folded, for a listed difference.
normalize() {
    if [ -n "$2" ]; then grep -vE "$2" "$1"; else cat "$1"; fi | sed -E 's/ +/ /g; s/-+/-/g; s/^\([0-9]+ rows?\)$/(rows)/'
}

# compare RUN DIFFS: the plain run's results against those of RUN, but for
# the differences DIFFS lists (lines matching a listed REGEX are left out of
# both outputs).
compare() {
    local run=$1 suite a b n tolerated t known f name
    DIFFS=$2
    for suite in regress isolation; do
        a=$(outcomes "$WORK/without/$suite.out")
        b=$(outcomes "$WORK/$run/$suite.out")
        n=$(printf '%s\n' "$a" | grep -c .)
        if [ "$n" -eq 0 ]; then
            log "core $suite: no test ran"
            tail -n 20 "$WORK/without/$suite.out" >&2
            FAILED=$((FAILED + 1))
            continue
        fi
        log "core $suite ($run): failing without the extension: $(printf '%s\n' "$a" | grep -cvE ' (ok|ignored)$'), $run: $(printf '%s\n' "$b" | grep -cvE ' (ok|ignored)$')"
        # tests whose outcome differs only because of a listed difference
        tolerated=0
        for t in $(diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") | sed -nE 's/^[<>] ([^ ]+) .*/\1/p' | sort -u); do
            known=$(known_difference "$t")
            [ -n "$known" ] && cmp -s <(normalize "$WORK/without/$suite/results/$t.out" "$known") \
                <(normalize "$WORK/$run/$suite/results/$t.out" "$known") &&
                { a=$(printf '%s\n' "$a" | grep -v "^$t "); b=$(printf '%s\n' "$b" | grep -v "^$t "); tolerated=$((tolerated + 1)); }
        done
        if [ "$a" = "$b" ]; then
            PASSED=$((PASSED + 1))
            log "core $suite ($run): $n tests, the same outcome as without the extension ($tolerated as $(basename "$DIFFS") says)"
        else
            FAILED=$((FAILED + 1))
            log "core $suite ($run): outcomes differ (< without, > $run)"
            diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") >&2
        fi
        # Output of every test, byte by byte, but for the listed differences.
        for f in "$WORK/without/$suite/results/"*.out; do
            name=$(basename "$f")
            known=$(known_difference "${name%.out}")
            if cmp -s "$f" "$WORK/$run/$suite/results/$name"; then
                PASSED=$((PASSED + 1))
            elif [ -n "$known" ] &&
                cmp -s <(normalize "$f" "$known") <(normalize "$WORK/$run/$suite/results/$name" "$known"); then
                PASSED=$((PASSED + 1))
                log "core $suite ($run): $name differs only as $(basename "$DIFFS") says"
            else
                FAILED=$((FAILED + 1))
                log "core $suite ($run): $name differs"
                diff -u "$f" "$WORK/$run/$suite/results/$name" | head -n 40 >&2
            fi
        done
    done
}

fetch_source || { echo "0 passed, 1 failed"; exit 1; }
prepare_tests || { echo "0 passed, 1 failed"; exit 1; }
run_suites without || { echo "0 passed, 1 failed"; exit 1; }
run_suites with "shared_preload_libraries = 'pg_integrity_guard'" \
    "integrity_guard.capture_errors = '$(all_classes)'" || { echo "0 passed, 1 failed"; exit 1; }

run_suites guarded "shared_preload_libraries = 'pg_integrity_guard'" \
    "integrity_guard.capture_errors = '$(all_classes)'" || { echo "0 passed, 1 failed"; exit 1; }

PASSED=0
FAILED=0
compare with "$TOP/test/core-differences.txt"
compare guarded "$TOP/test/core-guarded-differences.txt"
if [ "$FAILED" -ne 0 ]; then
    # keep both runs' results for a look
    keep=/tmp/pg_integrity_guard_core_results
    rm -rf "$keep"
    mkdir -p "$keep"
    cp -r "$WORK/without" "$WORK/with" "$WORK/guarded" "$keep/"
    log "the runs' results are kept in $keep"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
