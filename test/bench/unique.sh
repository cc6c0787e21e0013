# Sourced by test/bench/run.sh, or run alone: guard_unique() costs and savings.
#   ROWS=300000 REPS=3 bash test/bench/unique.sh

unique_bench() {
    local n=$ROWS dups=100000 r v
    local -A runs=()
    psql_q <<SQL >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS ub CASCADE;
CREATE SCHEMA ub;
-- Sentry-like: a primary key and a unique business key
CREATE UNLOGGED TABLE ub.plain (id bigint PRIMARY KEY, project_id int, key text, UNIQUE (project_id, key));
CREATE UNLOGGED TABLE ub.raise (LIKE ub.plain INCLUDING ALL);
CREATE UNLOGGED TABLE ub.skip (LIKE ub.plain INCLUDING ALL);
CREATE UNLOGGED TABLE ub.precheck (LIKE ub.plain INCLUDING ALL);
CREATE UNLOGGED TABLE ub.dup_skip (LIKE ub.plain INCLUDING ALL);
CREATE UNLOGGED TABLE ub.dup_on_conflict (LIKE ub.plain INCLUDING ALL);
CREATE UNLOGGED TABLE ub.dup_plpgsql (LIKE ub.plain INCLUDING ALL);
SELECT integrity_guard.guard_duplicates('ub.raise');
SELECT integrity_guard.guard_duplicates('ub.skip', 'skip');
SELECT integrity_guard.guard_duplicates('ub.dup_skip', 'skip');
CREATE TABLE ub.size_plain (id bigint PRIMARY KEY);
CREATE TABLE ub.size_raise (id bigint PRIMARY KEY);
SELECT integrity_guard.guard_duplicates('ub.size_raise');
SQL
    for ((r = 0; r < REPS; r++)); do
        # the same new rows into each table, round-robin
        for v in plain raise skip precheck; do
            psql_q -c "TRUNCATE ub.$v" -c "CHECKPOINT" >/dev/null
            runs[$v]+="$(timed "INSERT INTO ub.$v SELECT g, g % 1000, 'k' || g FROM generate_series(1, $n) g $([ $v = precheck ] && echo ON CONFLICT DO NOTHING)") "
        done
        # a consumer replaying: 100,000 messages of which 90% were seen
        for v in dup_skip dup_on_conflict dup_plpgsql; do
            psql_q -c "TRUNCATE ub.$v" \
                   -c "INSERT INTO ub.$v SELECT g, g % 1000, 'k' || g FROM generate_series(1, $((dups * 9 / 10))) g" \
                   -c "VACUUM ANALYZE ub.$v" -c "CHECKPOINT" >/dev/null
        done
        runs[dup_skip]+="$(timed "INSERT INTO ub.dup_skip SELECT g, g % 1000, 'k' || g FROM generate_series(1, $dups) g") "
        runs[dup_on_conflict]+="$(timed "INSERT INTO ub.dup_on_conflict SELECT g, g % 1000, 'k' || g FROM generate_series(1, $dups) g ON CONFLICT DO NOTHING") "
        runs[dup_plpgsql]+="$(timed "DO \$\$ BEGIN FOR g IN 1..$dups LOOP BEGIN INSERT INTO ub.dup_plpgsql VALUES (g, g % 1000, 'k' || g); EXCEPTION WHEN unique_violation THEN NULL; END; END LOOP; END \$\$") "
    done
    for v in "${!runs[@]}"; do MS[$v]=$(median_ms "${runs[$v]}"); done
    row "$n new rows (PK + unique key): mode=raise vs no guard" "${MS[plain]}" "${MS[raise]}"
    row "$n new rows: mode=skip vs no guard" "${MS[plain]}" "${MS[skip]}"
    row "$n new rows: ON CONFLICT DO NOTHING vs no guard" "${MS[plain]}" "${MS[precheck]}"
    row "$n new rows: mode=raise vs ON CONFLICT DO NOTHING" "${MS[precheck]}" "${MS[raise]}"
    row "$n new rows: mode=skip vs ON CONFLICT DO NOTHING" "${MS[precheck]}" "${MS[skip]}"
    row "$dups rows, 90% seen: mode=skip vs ON CONFLICT DO NOTHING" "${MS[dup_on_conflict]}" "${MS[dup_skip]}"
    row "$dups rows, 90% seen: mode=skip vs PL/pgSQL BEGIN/EXCEPTION" "${MS[dup_plpgsql]}" "${MS[dup_skip]}"

    # mode=raise on a duplicate-heavy stream: each rejected attempt in its
    # own subtransaction, as an ORM does it; dead tuples left behind
    psql_q -c "INSERT INTO ub.size_plain VALUES (1)" -c "INSERT INTO ub.size_raise VALUES (1)" \
           -c "DO \$\$ BEGIN FOR i IN 1..$dups LOOP
                   BEGIN INSERT INTO ub.size_plain VALUES (1); EXCEPTION WHEN unique_violation THEN NULL; END;
                   BEGIN INSERT INTO ub.size_raise VALUES (1); EXCEPTION WHEN unique_violation THEN NULL; END;
               END LOOP; END \$\$" >/dev/null
    printf '\ntable size after %s rejected duplicates (mode=raise): unguarded %s, guarded %s\n' "$dups" \
        "$(psql_q -c "SELECT pg_size_pretty(pg_relation_size('ub.size_plain'))")" \
        "$(psql_q -c "SELECT pg_size_pretty(pg_relation_size('ub.size_raise'))")"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
    trap stop_clusters EXIT
    ROWS=${ROWS:-300000}
    REPS=${REPS:-3}
    build_install
    start_cluster dir "shared_preload_libraries = 'pg_integrity_guard'" \
        "shared_buffers = '512MB'" "synchronous_commit = off" \
        "max_wal_size = '4GB'" "checkpoint_timeout = '30min'" "autovacuum = off"
    cluster_env "$dir"
    "$PGBIN/createdb" bench
    psql_q() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d bench "$@"; }
    timed() { psql_q -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'; }
    median_ms() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    row() { awk -v l="$1" -v b="$2" -v t="$3" 'BEGIN {printf "| %-62s | %10.1f | %10.1f | %6.2fx |\n", l, b, t, t / b}'; }
    declare -A MS
    psql_q -c "CREATE EXTENSION pg_integrity_guard" 2>/dev/null
    unique_bench
fi
