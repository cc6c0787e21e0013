#!/usr/bin/env bash
# The durable audit pipeline under load (preloaded server):
#  1. CLIENTS clients producing duplicate-key errors for DURATION seconds:
#     the attempts recorded against the errors the clients received;
#  2. a hot saturated counter updated by CLIENTS sessions: throughput with
#     the shared queue against one audit row per event, and against the
#     same updates on an unsaturated, unguarded table;
#  3. what error capture costs a plain INSERT workload;
#  4. a duplicate storm: STORM_CLIENTS clients inserting random existing keys
#     (distinct keys) for DURATION seconds, with error capture off and on:
#     errors per second, incidents recorded per second, audit rows, and the
#     cost of capturing one error.
# Prints measured numbers only; nothing here passes or fails.
#   DURATION=30 CLIENTS=8 SECS=15 REPS=3 bash test/bench/pipeline.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
trap stop_clusters EXIT
trap 'exit 130' INT TERM

DURATION=${DURATION:-30}
CLIENTS=${CLIENTS:-8}
SECS=${SECS:-15}
REPS=${REPS:-3}
PARTS=${PARTS:-"duplicates counter capture storm"}
STORM_CLIENTS=${STORM_CLIENTS:-4}
PY=/usr/bin/python3

ensure_packages python3-psycopg2
build_install
start_cluster dir "shared_preload_libraries = 'pg_integrity_guard'" \
    "synchronous_commit = off" "max_connections = 60" "autovacuum = off"
cluster_env "$dir"
"$PGBIN/createdb" bench
psql_q() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d bench "$@"; }
work=$(mktemp -d "$dir/bench.XXXX")

psql_q <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION pg_integrity_guard;
CREATE TABLE dup_plain (id int PRIMARY KEY);
CREATE TABLE dup_guarded (id int PRIMARY KEY);
SELECT integrity_guard.guard_duplicates('dup_guarded');
INSERT INTO dup_plain VALUES (1);
INSERT INTO dup_guarded VALUES (1);
CREATE TABLE hot_cold (id int PRIMARY KEY, n int NOT NULL);
CREATE TABLE hot_saturated (id int PRIMARY KEY, n int NOT NULL);
SELECT integrity_guard.guard_counter('hot_saturated', ARRAY['n']);
INSERT INTO hot_cold SELECT g, 0 FROM generate_series(1, 64) g;
INSERT INTO hot_saturated SELECT g, 2147483647 FROM generate_series(1, 64) g;
CREATE TABLE ins (id bigserial PRIMARY KEY, v int);
CREATE TABLE storm (id int PRIMARY KEY);
INSERT INTO storm SELECT generate_series(1, 100000);
SQL

# ---- 1. duplicate-key errors from CLIENTS clients
if [[ " $PARTS " == *" duplicates "* ]]; then
printf '\n%s clients inserting existing keys for %ss (psycopg2, autocommit)\n\n' "$CLIENTS" "$DURATION"
received=$(cd "$TOP/test/bench" && "$PY" dup_clients.py "$CLIENTS" "$DURATION" dup_plain dup_guarded)
psql_q -c 'SELECT integrity_guard.flush()' >/dev/null
printf '| %-44s | %14s | %14s | %14s |\n' "table" "errors received" "recorded (audit)" "recorded (stats)"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "----------------" "------------------" "------------------"
while read -r table n; do
    audit=$(psql_q -c "SELECT coalesce(sum(occurrences), 0) FROM integrity_guard.events(NULL, '$table', 'duplicate_key')")
    stats=$(psql_q -c "SELECT coalesce(sum(occurrences), 0) FROM integrity_guard.stats WHERE table_name = '$table' AND event_type = 'duplicate_key'")
    label="$table ($([ "$table" = dup_plain ] && echo captured by the error hook || echo recorded by guard_unique))"
    printf '| %-44s | %15s | %16s | %16s |\n' "$label" "$n" "$audit" "$stats"
done <<<"$received"
printf '\naudit rows for them: %s; queue dropped: %s\n' \
    "$(psql_q -c "SELECT count(*) FROM integrity_guard.audit_log WHERE event_type = 'duplicate_key'")" \
    "$(psql_q -c "SELECT value FROM integrity_guard.status() WHERE name = 'queue_dropped'")"
fi

# pgbench_tps NAME SCRIPT [PGOPTIONS]: transactions per second of one run,
# with application_name NAME (audit rows tell the variants apart)
pgbench_tps() {
    PGAPPNAME=$1 PGOPTIONS=${3:-} "$PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -T "$SECS" -f "$2" bench 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

# best_of NAME SCRIPT OPTIONS [NAME SCRIPT OPTIONS ...]: round-robin runs,
# TPS[NAME] the best (noise here only ever slows a run down)
declare -A TPS
best_of() {
    local -a names=() scripts=() opts=()
    local -A runs=()
    local i r
    while [ $# -gt 0 ]; do names+=("$1"); scripts+=("$2"); opts+=("$3"); shift 3; done
    for ((r = 0; r < REPS; r++)); do
        for i in "${!names[@]}"; do
            runs[${names[$i]}]+="$(pgbench_tps "${names[$i]}" "${scripts[$i]}" "${opts[$i]}") "
        done
    done
    for i in "${!names[@]}"; do
        TPS[${names[$i]}]=$(printf '%s\n' ${runs[${names[$i]}]} | sort -n | tail -n 1)
    done
}

tps_row() {  # tps_row LABEL BASE_TPS TPS
    awk -v l="$1" -v b="$2" -v t="$3" 'BEGIN {printf "| %-62s | %9.0f | %9.0f | %6.2fx |\n", l, b, t, b / t}'
}

# ---- 2. one hot saturated counter
if [[ " $PARTS " == *" counter "* ]]; then
cat >"$work/cold.sql" <<'SQL'
\set id random(1, 64)
UPDATE hot_cold SET n = n + 1 WHERE id = :id;
SQL
sed 's/hot_cold/hot_saturated/' "$work/cold.sql" >"$work/saturated.sql"
psql_q -c 'SELECT integrity_guard.stats_reset()' >/dev/null
best_of cold "$work/cold.sql" "" \
        durable "$work/saturated.sql" "" \
        transactional "$work/saturated.sql" "-c integrity_guard.durable_audit=off"
psql_q -c 'SELECT integrity_guard.flush()' >/dev/null
printf '\n%s sessions updating 64 rows of one table, %ss runs, best of %s (tps; ratio = time per update)\n\n' "$CLIENTS" "$SECS" "$REPS"
printf '| %-62s | %9s | %9s | %7s |\n' "case" "base tps" "tps" "ratio"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..64})" "-----------" "-----------" "---------"
tps_row "saturating every update, durable queue vs unguarded, unsaturated" "${TPS[cold]}" "${TPS[durable]}"
tps_row "saturating every update, one audit row per statement vs unguarded" "${TPS[cold]}" "${TPS[transactional]}"
tps_row "one audit row per statement vs the durable queue" "${TPS[durable]}" "${TPS[transactional]}"
psql_q -F ' ' -c "SELECT application_name, sum(occurrences), count(*) FROM integrity_guard.audit_log
                     WHERE table_name = 'hot_saturated' GROUP BY 1 ORDER BY 1" |
    while read -r mode events rows; do
        printf '%s: %s saturation events in %s audit rows\n' "$mode" "$events" "$rows"
    done
fi

# ---- 3. error capture on a plain INSERT workload
if [[ " $PARTS " == *" capture "* ]]; then
cat >"$work/insert.sql" <<'SQL'
INSERT INTO ins (v) VALUES (1);
SQL
best_of capture_off "$work/insert.sql" "-c integrity_guard.capture_errors=" \
        capture_on "$work/insert.sql" ""
printf '\nPlain INSERTs from %s sessions, %ss runs, best of %s\n\n' "$CLIENTS" "$SECS" "$REPS"
printf '| %-62s | %9s | %9s | %7s |\n' "case" "base tps" "tps" "ratio"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..64})" "-----------" "-----------" "---------"
tps_row "capture_errors at its default vs capture_errors = ''" "${TPS[capture_off]}" "${TPS[capture_on]}"
fi

# ---- 4. a duplicate storm of distinct keys, capture off and on, best of
# REPS alternating runs (noise on a shared machine only slows a run down)
if [[ " $PARTS " == *" storm "* ]]; then
rows_before=$(psql_q -c "SELECT count(*) FROM integrity_guard.audit_log")
psql_q -c 'SELECT integrity_guard.stats_reset()' >/dev/null
best_off=0 best_on=0 total_on=0
start=$(date +%s.%N)
for ((r = 0; r < REPS; r++)); do
    off=$(cd "$TOP/test/bench" && "$PY" storm_clients.py "$STORM_CLIENTS" "$DURATION" storm 100000 \
        "-c integrity_guard.capture_errors=")
    on=$(cd "$TOP/test/bench" && "$PY" storm_clients.py "$STORM_CLIENTS" "$DURATION" storm 100000)
    total_on=$((total_on + on))
    [ "$off" -gt "$best_off" ] && best_off=$off
    [ "$on" -gt "$best_on" ] && best_on=$on
done
psql_q -c 'SELECT integrity_guard.flush()' >/dev/null
end=$(date +%s.%N)
recorded=$(psql_q -c "SELECT coalesce(sum(occurrences), 0) FROM integrity_guard.events(NULL, 'storm')")
rows=$(( $(psql_q -c "SELECT count(*) FROM integrity_guard.audit_log") - rows_before ))
dropped=$(psql_q -c "SELECT value FROM integrity_guard.status() WHERE name = 'queue_dropped'")
printf '\n%s clients inserting random existing keys (1..100000), %s x %ss runs each, best run\n\n' \
    "$STORM_CLIENTS" "$REPS" "$DURATION"
awk -v off="$best_off" -v on="$best_on" -v d="$DURATION" -v c="$STORM_CLIENTS" -v rec="$recorded" \
    -v total="$total_on" -v rows="$rows" -v dropped="$dropped" -v reps="$REPS" 'BEGIN {
    printf "| %-44s | %12s |\n", "measure", "value"
    printf "|%s|%s|\n", "----------------------------------------------", "--------------"
    printf "| %-44s | %12.0f |\n", "errors/s, capture off (best run)", off / d
    printf "| %-44s | %12.0f |\n", "errors/s, capture on (best run)", on / d
    printf "| %-44s | %12.1f |\n", "cost per captured error (us of client time)", (d * c / on - d * c / off) * 1e6
    printf "| %-44s | %12s |\n", "errors received with capture on (all runs)", total
    printf "| %-44s | %12s |\n", "occurrences recorded in the audit", rec
    printf "| %-44s | %12.0f |\n", "incidents recorded per second of capture", rec / (reps * d)
    printf "| %-44s | %12s |\n", "audit rows written", rows
    printf "| %-44s | %12s |\n", "queue_dropped", dropped
}'
fi
