#!/usr/bin/env bash
# What the extension costs where it has nothing, or little, to do:
#  1. preload: pgbench -S (simple protocol, no guard anywhere) on a cluster
#     with the library in shared_preload_libraries against a twin cluster
#     without it;
#  2. guarded TPC-B: pgbench's TPC-B (--foreign-keys, prepared) on a database
#     where guard_counter holds the three balance columns and
#     guard_duplicates and guard_children sit on accounts, branches and
#     tellers, against the same database unguarded, on the preloaded
#     cluster; and, as the server's own floor, the unguarded database with
#     one built-in C trigger (suppress_redundant_updates_trigger, which
#     returns the new row here) BEFORE UPDATE on those tables: before any
#     BEFORE UPDATE row trigger runs, the server locks the old row (a WAL
#     record), whatever the trigger then does.
#  3. profile: where the guarded TPC-B's time goes, from perf samples of
#     the whole machine (pgbench, server, kernel) during one run: the
#     library's own code, guard_unique, and the server's BEFORE UPDATE row
#     trigger machinery with the row lock it takes first (skipped without
#     perf).  A cost of 1-2% hides in the runs' spread; the samples show it.
# The two sides alternate, RUNS runs of SECS seconds each, and each figure
# is the median tps.  Prints measured numbers only; nothing here passes or
# fails.
#   RUNS=5 SECS=15 SCALE=10 CLIENTS=2 bash test/bench/overhead.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
trap stop_clusters EXIT
trap 'exit 130' INT TERM

RUNS=${RUNS:-5}
SECS=${SECS:-15}
SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-2}
PARTS=${PARTS:-"preload tpcb profile"}

ensure_packages
build_install
common=("synchronous_commit = off" "autovacuum = off" "shared_buffers = '512MB'"
        "max_wal_size = '4GB'" "checkpoint_timeout = '30min'")
start_cluster pre "shared_preload_libraries = 'pg_integrity_guard'" "${common[@]}"
start_cluster bare "${common[@]}"

# tps DIR DB ARGS...: one pgbench run's tps
tps() {
    local dir=$1 db=$2
    shift 2
    PGHOST="$dir/sock" PGPORT=5432 PGUSER=postgres \
        "$PGBIN/pgbench" -n -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" "$@" "$db" 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
sql() {  # sql DIR DB SQL...
    local dir=$1 db=$2
    shift 2
    PGHOST="$dir/sock" PGPORT=5432 PGUSER=postgres "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"
}
init() {  # init DIR DB [pgbench -i options]
    local dir=$1 db=$2
    shift 2
    PGHOST="$dir/sock" PGPORT=5432 PGUSER=postgres "$PGBIN/createdb" "$db"
    PGHOST="$dir/sock" PGPORT=5432 PGUSER=postgres \
        "$PGBIN/pgbench" -i -q -s "$SCALE" "$@" "$db" >/dev/null 2>&1
    sql "$dir" "$db" -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
}
# the guarded TPC-B database: every guard a hot table of it can take
init_guarded() {
    init "$pre" tpcb_guard --foreign-keys
    sql "$pre" tpcb_guard <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION pg_integrity_guard;
SELECT integrity_guard.guard_counter('pgbench_accounts', ARRAY['abalance']);
SELECT integrity_guard.guard_counter('pgbench_branches', ARRAY['bbalance']);
SELECT integrity_guard.guard_counter('pgbench_tellers', ARRAY['tbalance']);
SELECT integrity_guard.guard_duplicates(t) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers']::regclass[]) t;
SELECT integrity_guard.guard_children(t) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers']::regclass[]) t;
SQL
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
# compare LABEL BASE_DIR BASE_DB DIR DB PGBENCH_ARGS...: the two sides
# alternate, RUNS runs each; one table row of the medians, then the runs
compare() {
    local label=$1 bdir=$2 bdb=$3 dir=$4 db=$5 r base with
    local -a b=() a=()
    shift 5
    for ((r = 0; r < RUNS; r++)); do
        b+=("$(tps "$bdir" "$bdb" "$@")")
        a+=("$(tps "$dir" "$db" "$@")")
    done
    base=$(median "${b[@]}") with=$(median "${a[@]}")
    printf '| %-70s | %10.0f | %10.0f | %6sx |\n' "$label" "$base" "$with" "$(ratio "$base" "$with")"
    printf '  runs, base: %s\n  runs: %s\n' "${b[*]}" "${a[*]}"
}

printf '\n%s runs of %s s each, alternating, %s clients, scale %s; median tps\n\n' \
    "$RUNS" "$SECS" "$CLIENTS" "$SCALE"
printf '| %-70s | %10s | %10s | %7s |\n' "case" "base tps" "tps" "cost"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..72})" "------------" "------------" "---------"

if [[ " $PARTS " == *" preload "* ]]; then
    log "preload: pgbench -S, preloaded vs without the library"
    init "$pre" sel
    init "$bare" sel
    compare "pgbench -S, simple protocol: preloaded vs without the library" \
        "$bare" sel "$pre" sel -S -M simple
fi

if [[ " $PARTS " == *" tpcb "* ]]; then
    log "guarded TPC-B: guarded vs unguarded database, preloaded cluster"
    init "$pre" tpcb_plain --foreign-keys
    init_guarded
    init "$pre" tpcb_floor --foreign-keys
    sql "$pre" tpcb_plain -c 'CREATE EXTENSION pg_integrity_guard'
    sql "$pre" tpcb_floor <<'SQL' >/dev/null
CREATE EXTENSION pg_integrity_guard;
CREATE TRIGGER floor BEFORE UPDATE ON pgbench_accounts FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE TRIGGER floor BEFORE UPDATE ON pgbench_branches FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE TRIGGER floor BEFORE UPDATE ON pgbench_tellers FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
SQL
    compare "TPC-B --foreign-keys, prepared: guarded vs unguarded" \
        "$pre" tpcb_plain "$pre" tpcb_guard -M prepared
    compare "the server's floor: a no-op C BEFORE UPDATE trigger vs unguarded" \
        "$pre" tpcb_plain "$pre" tpcb_floor -M prepared
    compare "guarded vs that floor" \
        "$pre" tpcb_floor "$pre" tpcb_guard -M prepared
    printf '  incidents written while guarded: %s\n' \
        "$(sql "$pre" tpcb_guard -c 'SELECT count(*) FROM integrity_guard.audit_log')"
fi

if [[ " $PARTS " == *" profile "* ]]; then
    if ! command -v perf >/dev/null; then
        log "profile: perf is not installed (apt-get install linux-perf); skipped"
        exit 0
    fi
    log "profile: perf samples of one guarded TPC-B run"
    [[ " $PARTS " == *" tpcb "* ]] || init_guarded
    data=$(mktemp /tmp/pg_integrity_guard_perf.XXXXXX)
    perf record -q -e cpu-clock -a -g -o "$data" -- \
        env PGHOST="$pre/sock" PGPORT=5432 PGUSER=postgres \
        "$PGBIN/pgbench" -n -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" -M prepared tpcb_guard >/dev/null 2>&1
    # each sample's stack: leaf first; a share is samples / all samples
    perf script -i "$data" -F ip,sym,dso 2>/dev/null | awk '
        BEGIN { RS = "" }
        { all++ }
        { split($0, f, "\n"); if (f[1] ~ /pg_integrity_guard/) self++ }
        /guard_unique/ { unique++ }
        /ExecBRUpdateTriggers/ { br++; if (/heap_lock_tuple/) lock++ }
        END {
            printf "\nguarded TPC-B, %d perf samples of the whole machine:\n", all
            printf "  the library'"'"'s own code (self): %.2f%%\n", 100 * self / all
            printf "  guard_unique with what it calls: %.2f%%\n", 100 * unique / all
            printf "  the server'"'"'s BEFORE UPDATE row trigger machinery: %.2f%%, of which its row lock (taken for any such trigger): %.2f%%\n", 100 * br / all, 100 * lock / all
        }'
    rm -f "$data"
fi
