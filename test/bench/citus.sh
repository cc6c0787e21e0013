#!/usr/bin/env bash
# Guards on Citus (issue 26): a coordinator and two workers on this
# machine, co-located distributed tables of 32 shards: an unguarded one,
# one with guard_counter on times_seen, one with guard_duplicates in skip
# mode.  pgbench on the coordinator, the two sides alternating, RUNS runs
# of SECS seconds, median tps:
#  - a multi-shard UPDATE of the counter of two rows (two shards), on the
#    counter table;
#  - a router INSERT of a new row (ON CONFLICT DO NOTHING, as an ingest
#    that may replay), on the deduplicated table;
#  - a replayed row (every INSERT a duplicate): the guard skips and audits
#    it, against the unguarded table told ON CONFLICT DO NOTHING.
# Prints measured numbers only; nothing here passes or fails.  Needs Citus
# (built by ensure_citus from ../shared/citus).
#   RUNS=3 SECS=10 CLIENTS=2 bash test/bench/citus.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
trap stop_clusters EXIT
trap 'exit 130' INT TERM

RUNS=${RUNS:-3}
SECS=${SECS:-10}
CLIENTS=${CLIENTS:-2}

ensure_packages
build_install
ensure_citus || { log "no Citus: nothing to measure"; exit 0; }
nodes=()
for n in 1 2 3; do
    start_cluster dir "shared_preload_libraries = 'citus,pg_integrity_guard'" \
        "synchronous_commit = off" "max_worker_processes = 32" "max_prepared_transactions = 100" || exit 1
    nodes+=("$dir")
done
for d in "${nodes[@]}"; do
    echo "citus.local_hostname = '$d/sock'" >>"$d/data/postgresql.conf"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d/data" -w restart >/dev/null
done
coord=${nodes[0]}
sql() {  # sql DIR SQL...
    local d=$1
    shift
    PGHOST="$d/sock" PGPORT=5432 PGUSER=postgres "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"
}
for d in "${nodes[@]}"; do sql "$d" -c 'CREATE EXTENSION citus'; done
sql "$coord" -c "SELECT citus_set_coordinator_host('$coord/sock', 5432)" >/dev/null
for d in "${nodes[@]:1}"; do sql "$coord" -c "SELECT citus_add_node('$d/sock', 5432)" >/dev/null; done
sql "$coord" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION pg_integrity_guard;
SET citus.shard_count = 32;
CREATE TABLE plain_gm (project_id int, id bigint, times_seen int NOT NULL DEFAULT 0, PRIMARY KEY (project_id, id));
CREATE TABLE counter_gm (LIKE plain_gm INCLUDING ALL);
CREATE TABLE dedupe_gm (LIKE plain_gm INCLUDING ALL);
SELECT create_distributed_table('plain_gm', 'project_id');
SELECT create_distributed_table('counter_gm', 'project_id', colocate_with => 'plain_gm');
SELECT create_distributed_table('dedupe_gm', 'project_id', colocate_with => 'plain_gm');
SELECT integrity_guard.guard_counter('counter_gm', ARRAY['times_seen']);
SELECT integrity_guard.guard_duplicates('dedupe_gm', 'skip');
INSERT INTO plain_gm SELECT g % 64, g, 0 FROM generate_series(1, 64000) g;
INSERT INTO counter_gm SELECT * FROM plain_gm;
INSERT INTO dedupe_gm SELECT * FROM plain_gm;
SQL

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
script() {  # script KIND TABLE: a pgbench script file
    local f
    f=$(mktemp /tmp/pg_integrity_guard_citus.XXXXXX)
    case $1 in
        update) printf '%s\n' '\set i1 random(1, 64000)' '\set i2 random(1, 64000)' \
            '\set p1 :i1 % 64' '\set p2 :i2 % 64' \
            "UPDATE $2 SET times_seen = times_seen + 1 WHERE (project_id, id) IN ((:p1, :i1), (:p2, :i2));" >"$f" ;;
        insert) printf '%s\n' '\set p random(0, 63)' '\set id random(100000, 2000000000)' \
            "INSERT INTO $2 VALUES (:p, :id, 1) ON CONFLICT DO NOTHING;" >"$f" ;;
        # a replayed row: the unguarded side asks the server to skip it, the
        # guarded side sends the plain INSERT a consumer sends
        replay) printf '%s\n' '\set id random(1, 64000)' '\set p :id % 64' \
            "INSERT INTO $2 VALUES (:p, :id, 1)$([ "$2" = plain_gm ] && echo ' ON CONFLICT DO NOTHING');" >"$f" ;;
    esac
    echo "$f"
}
tps() {
    PGHOST="$coord/sock" PGPORT=5432 PGUSER=postgres \
        "$PGBIN/pgbench" -n -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" -M prepared -f "$1" postgres 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}
printf '\n3 nodes on this machine, 32 shards; %s runs of %s s each, alternating, %s clients; median tps\n\n' \
    "$RUNS" "$SECS" "$CLIENTS"
printf '| %-52s | %10s | %10s | %7s |\n' "case" "unguarded" "guarded" "cost"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..54})" "------------" "------------" "---------"
for kind in update insert replay; do
    p=$(script "$kind" plain_gm)
    g=$(script "$kind" "$([ "$kind" = update ] && echo counter_gm || echo dedupe_gm)")
    b=() a=()
    for ((r = 0; r < RUNS; r++)); do
        b+=("$(tps "$p")")
        a+=("$(tps "$g")")
    done
    rm -f "$p" "$g"
    case $kind in
        update) label="guard_counter: multi-shard UPDATE of 2 rows" ;;
        insert) label="guard_duplicates skip: router INSERT of a new row" ;;
        replay) label="replayed row: skip + audit vs ON CONFLICT DO NOTHING" ;;
    esac
    awk -v l="$label" -v b="$(median "${b[@]}")" -v a="$(median "${a[@]}")" \
        'BEGIN {printf "| %-52s | %10.0f | %10.0f | %6.3fx |\n", l, b, a, b / a}'
    printf '  runs, unguarded: %s\n  runs, guarded: %s\n' "${b[*]}" "${a[*]}"
done
