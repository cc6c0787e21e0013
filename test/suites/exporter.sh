#!/usr/bin/env bash
# doc/postgres_exporter.yaml works with Debian's prometheus-postgres-exporter:
# the exporter, on the loopback and a free port, against this preloaded
# cluster, loads the file (pg_exporter_user_queries_load_error 0), and the
# scraped metrics show each kind of incident per table, the queue, drops and
# unwritten events with their help texts.  Prints "ok - ..." / "not ok - ...".
# conf: shared_preload_libraries = 'pg_integrity_guard'
# conf: integrity_guard.flush_interval = '200ms'
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
dir=$1
cluster_env "$dir"
cd / || exit 1
ensure_packages prometheus-postgres-exporter curl >/dev/null || { echo "not ok - install prometheus-postgres-exporter"; exit 0; }
EXPORTER=/usr/bin/prometheus-postgres-exporter

check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fi; }
psql_q() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d shop "$@"; }

"$PGBIN/createdb" shop
psql_q >/dev/null <<'SQL'
CREATE EXTENSION pg_integrity_guard;
CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO counters VALUES (1, 2147483600);
SELECT integrity_guard.guard_counter('counters', ARRAY['n']);
UPDATE counters SET n = n + 100;
CREATE TABLE messages (id text PRIMARY KEY);
SELECT integrity_guard.guard_duplicates('messages', 'skip');
INSERT INTO messages VALUES ('a'), ('b');
INSERT INTO messages VALUES ('a'), ('b'), ('c');
CREATE ROLE prometheus LOGIN IN ROLE pg_monitor;
SQL
psql_q -c 'SELECT 2147483647 + 1' >/dev/null 2>&1
psql_q -c 'SELECT count(*) FROM integrity_guard.summary()' >/dev/null
# readers do not write: wait (30 s at most) until the worker has written the queue
for _ in $(seq 1 150); do
    [ "$(psql_q -c "SELECT value FROM integrity_guard.status() WHERE name = 'queue_used'")" = 0 ] && break
    sleep 0.2
done

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log_file=$dir/exporter.log
# a copy the postgres user can read wherever the checkout is (a clone in
# root's 0700 home directory included)
install -o postgres -m 644 "$TOP/doc/postgres_exporter.yaml" "$dir/postgres_exporter.yaml"
# as the monitoring role Debian's README recommends, over the socket
runuser -u postgres -- env DATA_SOURCE_NAME="user=prometheus host=$PGHOST port=$PGPORT dbname=shop sslmode=disable" \
    "$EXPORTER" --web.listen-address="127.0.0.1:$port" \
    --extend.query-path="$dir/postgres_exporter.yaml" --log.level=warn >"$log_file" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT

metrics=
for _ in $(seq 1 50); do
    metrics=$(/usr/bin/python3 -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())" "http://127.0.0.1:$port/metrics" 2>/dev/null) && grep -q '^pg_integrity_guard_events_total' <<<"$metrics" && break
    sleep 0.2
done
check "the exporter answers on 127.0.0.1:$port" '[ -n "$metrics" ]'
[ -n "$metrics" ] || { cat "$log_file" >&2; exit 0; }
printf '%s\n' "$metrics" | grep -E '^(# (HELP|TYPE) )?pg_(integrity_guard|exporter_user_queries)' >&2

has() { grep -qE "$1" <<<"$metrics"; }
check "it loaded doc/postgres_exporter.yaml without error" \
    'has "^pg_exporter_user_queries_load_error\{[^}]*postgres_exporter.yaml[^}]*\} 0$"'
check "no custom query failed (pg_exporter_last_scrape_error 0)" 'has "^pg_exporter_last_scrape_error 0$"'
check "saturated counter events per table: pg_integrity_guard_events_total{kind=counter_saturated,table=counters} 1" \
    'has "^pg_integrity_guard_events_total\{[^}]*kind=\"counter_saturated\"[^}]*table=\"counters\"[^}]*\} 1$"'
check "skipped duplicates per table and constraint: pg_integrity_guard_events_total{kind=duplicate_key,table=messages,target=messages_pkey} 2" \
    'has "^pg_integrity_guard_events_total\{[^}]*kind=\"duplicate_key\"[^}]*table=\"messages\",target=\"messages_pkey\"\} 2$"'
check "an error without a table is labelled table=(none)" \
    'has "^pg_integrity_guard_events_total\{[^}]*kind=\"numeric_out_of_range\"[^}]*table=\"\(none\)\"[^}]*\} 1$"'
check "audit rows of the last hour per kind and table" \
    'has "^pg_integrity_guard_recent_incidents_occurrences\{[^}]*kind=\"duplicate_key\"[^}]*table=\"messages\"\} 2$"'
check "pg_integrity_guard_events_total is a counter with a help text" \
    'has "^# TYPE pg_integrity_guard_events_total counter$" && has "^# HELP pg_integrity_guard_events_total Events absorbed"'
check "queue use: capacity 1024, used 0 after the flush" \
    'has "^pg_integrity_guard_queue_capacity(\{[^}]*\})? 1024$" && has "^pg_integrity_guard_queue_used(\{[^}]*\})? 0$"'
check "drops, unwritten events and stats drops are counters at 0" \
    'has "^pg_integrity_guard_queue_dropped_total(\{[^}]*\})? 0$" &&
     has "^pg_integrity_guard_events_not_written_total(\{[^}]*\})? 0$" &&
     has "^pg_integrity_guard_stats_dropped_total(\{[^}]*\})? 0$" &&
     has "^# TYPE pg_integrity_guard_queue_dropped_total counter$"'
check "preloaded, durable and the launcher running" \
    'has "^pg_integrity_guard_preloaded(\{[^}]*\})? 1$" && has "^pg_integrity_guard_durable_audit(\{[^}]*\})? 1$" &&
     has "^pg_integrity_guard_worker_running(\{[^}]*\})? 1$"'
# Every metric the README's monitoring section and alert rules name exists.
section=$(awk '/^## Monitoring/ { on = 1; next } on && /^## / { exit } on' "$TOP/README.md")
named=$(grep -oE 'pg_integrity_guard_[a-z_]+' <<<"$section" | sort -u)
missing=$(for m in $named; do has "^# TYPE $m " || echo "$m"; done)
check "every metric the README names is exported ($(wc -w <<<"$named") names; missing: ${missing:-none})" \
    '[ -n "$named" ] && [ -z "$missing" ]'
