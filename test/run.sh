#!/usr/bin/env bash
# pg_integrity_guard test driver: installs what is missing, builds and
# installs the extension, runs every suite against throwaway clusters and
# ends with one line "N passed, N failed".  Exit status 1 on any failure.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap stop_clusters EXIT
trap 'exit 130' INT TERM
# The console gets one line per suite, and the details of a failing one;
# everything (build, packages, each suite's full output) goes to the log.
# Clusters run as the postgres OS user: from a directory it can enter.
LOG=${IG_TEST_LOG:-$TOP/test/run.log}
: >"$LOG" || { echo "cannot write $LOG"; echo "0 passed, 1 failed"; exit 1; }
exec 3>&1 2>>"$LOG"
echo "pg_integrity_guard tests on $("$PG_CONFIG" --version); full log: $LOG" >&3
cd / || exit 1

ensure_packages python3-django python3-psycopg2 python3-psycopg python3-sqlalchemy python3-alembic python3-pytest \
    libipc-run-perl ||
    { tail -n 20 "$LOG" >&3; echo "0 passed, 1 failed"; exit 1; }
build_install || { tail -n 40 "$LOG" >&3; echo "0 passed, 1 failed"; exit 1; }

PASSED=0
FAILED=0

# Counts a pg_regress or pg_isolation_regress run.  Up to 15 a test is a
# line "name ... ok"; from 16 a TAP-style line "ok 1 - name" (or "not ok").
# A run that printed no test at all counts as one failure.
count_regress() {
    local out=$1 ok bad
    printf '%s\n' "$out" | grep -E '\.\.\. |^(not )?ok [0-9]+ ' >&2
    ok=$(printf '%s\n' "$out" | grep -cE '\.\.\. ok|^ok [0-9]+ ')
    bad=$(printf '%s\n' "$out" | grep -cE '\.\.\. (FAILED|failed)|^not ok [0-9]+ ')
    PASSED=$((PASSED + ok))
    FAILED=$((FAILED + bad))
    if [ $((ok + bad)) -eq 0 ]; then
        printf '%s\n' "$out" >&2
        FAILED=$((FAILED + 1))
    fi
}

# pg_regress: sql/*.sql against expected/*.out.  Run once loaded on first
# use and once preloaded: the outcome must not depend on how it was loaded.
suite_regress() {
    local label=$1 dir out
    shift
    start_cluster dir "$@" || { FAILED=$((FAILED + 1)); return; }
    cluster_env "$dir"
    log "suite regress ($label)"
    out=$(cd "$TOP" && make -s PG_CONFIG="$PG_CONFIG" installcheck ISOLATION= TAP_TESTS= 2>&1)
    count_regress "$out"
    if [ -s "$TOP/regression.diffs" ]; then
        head -n 200 "$TOP/regression.diffs" >&2
    fi
}

# Isolation specs (test/isolation/specs/*.spec, expected/*.out): concurrent
# sessions, run by pg_isolation_regress from postgresql-server-dev.
suite_isolation() {
    local dir out specs
    start_cluster dir || { FAILED=$((FAILED + 1)); return; }
    cluster_env "$dir"
    log "suite isolation (pg_isolation_regress)"
    specs=$(cd "$TOP/test/isolation/specs" && ls *.spec | sed 's/\.spec$//')
    out=$("$($PG_CONFIG --pkglibdir)/pgxs/src/test/isolation/pg_isolation_regress" \
        --inputdir="$TOP/test/isolation" --outputdir="$dir/isolation" \
        --bindir="$PGBIN" --dbname=isolation_regression $specs 2>&1)
    count_regress "$out"
    [ -s "$dir/isolation/regression.diffs" ] && head -n 200 "$dir/isolation/regression.diffs" >&2
}

# TAP tests (test/tap/*.pl) with PostgreSQL::Test::Cluster from
# postgresql-server-dev: they make their own clusters, so they run as the
# postgres OS user, in a scratch copy it can write to.
suite_tap() {
    local work out
    # TAP 090 runs on Citus where it can be built, and says why it skips
    ensure_citus || true
    work=$(mktemp -d /tmp/pg_integrity_guard_tap.XXXXXX)
    IG_CLUSTERS+=("$work")
    cp -r "$TOP/test/tap" "$work/t"
    chown -R postgres: "$work"
    log "suite tap (prove)"
    out=$(cd "$work" && runuser -u postgres -- env PATH="$PGBIN:$PATH" \
        PG_REGRESS="$($PG_CONFIG --pkglibdir)/pgxs/src/test/regress/pg_regress" \
        prove -v -I "$($PG_CONFIG --pkglibdir)/pgxs/src/test/perl" t/*.pl 2>&1)
    printf '%s\n' "$out" >&2
    PASSED=$((PASSED + $(printf '%s\n' "$out" | grep -cE '^ok [0-9]+')))
    FAILED=$((FAILED + $(printf '%s\n' "$out" | grep -cE '^not ok [0-9]+')))
    if ! printf '%s\n' "$out" | grep -q '^Result: PASS'; then
        FAILED=$((FAILED + 1))
        find "$work" -name '*.log' -path '*tmp_check*' -exec tail -n 30 {} + >&2 2>/dev/null
    fi
}

# Shell suites under test/suites/: each prints "ok - ..." / "not ok - ...".
suite_shell() {
    local script=$1 dir out conf=()
    # "# conf: LINE" in the script's header: postgresql.conf lines it needs
    mapfile -t conf < <(sed -n 's/^# conf: //p' "$script")
    start_cluster dir "${conf[@]}" || { FAILED=$((FAILED + 1)); return; }
    cluster_env "$dir"
    log "suite $(basename "$script" .sh)"
    out=$(bash "$script" "$dir" 2>&1)
    printf '%s\n' "$out" >&2
    PASSED=$((PASSED + $(printf '%s\n' "$out" | grep -cE '^ok ')))
    FAILED=$((FAILED + $(printf '%s\n' "$out" | grep -cE '^not ok ')))
    if ! printf '%s\n' "$out" | grep -qE '^(not )?ok '; then
        FAILED=$((FAILED + 1))
    fi
}

# run_suite LABEL FUNCTION ARGS...: one console line with the suite's counts
# and time; on failure, the lines of its log that say what failed.
# IG_ONLY="regress tap quickstart ..." runs only the suites whose label
# starts with one of those words.
run_suite() {
    local label=$1 p0=$PASSED f0=$FAILED start=$SECONDS offset word
    shift
    if [ -n "${IG_ONLY:-}" ]; then
        for word in $IG_ONLY; do [[ $label == "$word"* ]] && break; word=; done
        [ -n "$word" ] || return 0
    fi
    offset=$(stat -c %s "$LOG")
    "$@"
    stop_clusters
    printf '%-44s %4d passed, %d failed  (%ds)\n' "$label" $((PASSED - p0)) $((FAILED - f0)) \
        $((SECONDS - start)) >&3
    if [ $((FAILED - f0)) -gt 0 ]; then
        tail -c +$((offset + 1)) "$LOG" |
            grep -E '^not ok|^#   (Failed test|at )|^# +(got|expected)|^#  +(got|expected):|timed out|^# (expecting|last actual)|^t/.*(Wstat|Failed)|Dubious|FAILED|\.\.\. failed|^[-+][^-+]|^(ERROR|FATAL|PANIC):' |
            head -n 60 | sed 's/^/    /' >&3
        echo "    (more in $LOG)" >&3
    fi
}

run_suite "regress (loaded on first use)" suite_regress "pg_regress, loaded on first use"
# The regress outputs show per-statement incidents written in the
# transaction: the durable pipeline (queue, worker, error capture) has its
# own TAP suite, where asynchronous writes can be waited for.
run_suite "regress (shared_preload_libraries)" suite_regress "pg_regress, shared_preload_libraries" \
    "shared_preload_libraries = 'pg_integrity_guard'" \
    "integrity_guard.durable_audit = off" \
    "integrity_guard.capture_errors = ''"
run_suite "isolation" suite_isolation
run_suite "tap" suite_tap
# IG_SUITES_DIR: another directory of shell suites (the runner's own test)
for script in "${IG_SUITES_DIR:-$TOP/test/suites}"/*.sh; do
    run_suite "$(basename "$script" .sh)" suite_shell "$script"
done

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
