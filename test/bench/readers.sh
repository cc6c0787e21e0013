#!/usr/bin/env bash
# Reading the audit: events() and summary() against the plain queries a
# table owner would write over the same rows, as a superuser and as an
# ordinary role that may SELECT half of the audited tables (the row-level
# policy in force).  ROWS audit rows over 20 tables, half of them duplicate
# keys with key values in audit_keys.  Each figure is the median server-side
# execution time (EXPLAIN ANALYZE, TIMING OFF) of REPS runs in one session,
# so that no client transfer or connection start is counted.  Prints
# measured numbers only; nothing here passes or fails.
# FULL=0 leaves out the full reads (for a large ROWS: 10,000,000 rows are
# what 30 days of retention hold on a busy server).
#   ROWS=200000 REPS=7 bash test/bench/readers.sh
#   ROWS=10000000 FULL=0 bash test/bench/readers.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
trap stop_clusters EXIT
trap 'exit 130' INT TERM

ROWS=${ROWS:-200000}
REPS=${REPS:-7}
FULL=${FULL:-1}

ensure_packages
build_install
start_cluster dir "shared_preload_libraries = 'pg_integrity_guard'" \
    "synchronous_commit = off" "autovacuum = off"
cluster_env "$dir"
"$PGBIN/createdb" bench
psql_q() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d bench "$@"; }

log "writing $ROWS audit rows"
psql_q <<SQL >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION pg_integrity_guard;
DO \$\$ BEGIN
  FOR i IN 1..20 LOOP
    EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, k text UNIQUE, n int)', i);
  END LOOP;
END \$\$;
CREATE ROLE bench_reader LOGIN;
DO \$\$ BEGIN
  FOR i IN 1..10 LOOP EXECUTE format('GRANT SELECT ON t%s TO bench_reader', i); END LOOP;
END \$\$;
-- one more table readable through a column only: visible incidents, hidden keys
GRANT SELECT (id) ON t11 TO bench_reader;
-- loaded as a restore would, without the audit tables' triggers (what they
-- would do is done here: this database's token, key values apart with
-- their audit rows' columns)
SET session_replication_role = replica;
INSERT INTO integrity_guard.audit_log (event_type, schema_name, table_name, relid, target,
                                       occurrences, first_seen, last_seen, role_name,
                                       database_name, detail, rel_incarnation, key_columns)
SELECT CASE WHEN g % 2 = 0 THEN 'duplicate_key' ELSE 'counter_saturated' END,
       'public', 't' || (g % 20 + 1), ('public.t' || (g % 20 + 1))::regclass,
       CASE WHEN g % 2 = 0 THEN 't' || (g % 20 + 1) || '_k_key' ELSE 'n' END, 1 + g % 7,
       now() - ($ROWS - g) * interval '10 s', now() - ($ROWS - g) * interval '10 s',
       'app', 'bench',
       CASE WHEN g % 2 = 0 THEN '{"mode": "skip"}'::jsonb
            ELSE jsonb_build_object('column', 'n', 'bound', 2147483647) END,
       (SELECT token FROM integrity_guard.database_incarnation),
       CASE WHEN g % 2 = 0 THEN '{2}'::smallint[] END
FROM generate_series(1, $ROWS) g;
INSERT INTO integrity_guard.audit_keys (id, key_values, last_seen, relid, rel_incarnation, key_columns)
SELECT id, jsonb_build_object('key', '(k)=(v' || id || ')'), last_seen, relid, rel_incarnation, key_columns
FROM integrity_guard.audit_log WHERE event_type = 'duplicate_key';
RESET session_replication_role;
VACUUM ANALYZE integrity_guard.audit_log;
VACUUM ANALYZE integrity_guard.audit_keys;
SQL

# ms ROLE SQL: median execution time of REPS runs in one session
ms() {
    local i
    for ((i = 0; i < REPS; i++)); do
        echo "EXPLAIN (ANALYZE, TIMING OFF) $2;"
    done | "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U "$1" -d bench |
        sed -n 's/^Execution Time: \([0-9.]*\) ms.*/\1/p' | sort -n |
        awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}
row() {  # row LABEL BASE_MS MS
    awk -v l="$1" -v b="$2" -v t="$3" 'BEGIN {printf "| %-66s | %9.2f | %9.2f | %6.2fx |\n", l, b, t, t / b}'
}

plain="SELECT * FROM integrity_guard.audit_log ORDER BY last_seen DESC, id DESC"
events="SELECT * FROM integrity_guard.events()"
pgroup="SELECT schema_name, table_name, event_type, target, count(*), sum(occurrences), min(first_seen), max(last_seen) FROM integrity_guard.audit_log GROUP BY 1, 2, 3, 4"
summary="SELECT * FROM integrity_guard.summary()"
since="now() - interval '1 hour'"
psince="SELECT * FROM integrity_guard.audit_log WHERE last_seen >= $since ORDER BY last_seen DESC, id DESC"
esince="SELECT * FROM integrity_guard.events(since => $since)"
ssince="SELECT * FROM integrity_guard.summary(since => $since)"
pgsince="SELECT schema_name, table_name, event_type, target, count(*), sum(occurrences), min(first_seen), max(last_seen) FROM integrity_guard.audit_log WHERE last_seen >= $since GROUP BY 1, 2, 3, 4"

log "measuring (median of $REPS runs each)"
printf '\n%s audit rows; median server time of %s runs; base: the plain query read by the table owner\n\n' "$ROWS" "$REPS"
printf '| %-66s | %9s | %9s | %7s |\n' "case" "base ms" "ms" "ratio"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..68})" "-----------" "-----------" "---------"
if [ "$FULL" = 1 ]; then
    p=$(ms postgres "$plain")
    row "events(), superuser, vs SELECT * ... ORDER BY last_seen DESC" "$p" "$(ms postgres "$events")"
    row "events(), ordinary role (row-level policy), vs the same" "$p" "$(ms bench_reader "$events")"
    g=$(ms postgres "$pgroup")
    row "summary(), superuser, vs the plain GROUP BY" "$g" "$(ms postgres "$summary")"
    row "summary(), ordinary role, vs the same" "$g" "$(ms bench_reader "$summary")"
fi
p=$(ms postgres "$psince")
row "events(since => 1 hour), superuser, vs the plain index range" "$p" "$(ms postgres "$esince")"
row "events(since => 1 hour), ordinary role, vs the same" "$p" "$(ms bench_reader "$esince")"
g=$(ms postgres "$pgsince")
row "summary(since => 1 hour), superuser, vs the plain GROUP BY" "$g" "$(ms postgres "$ssince")"
row "summary(since => 1 hour), ordinary role, vs the same" "$g" "$(ms bench_reader "$ssince")"
printf "\nrows: %s stored, %s with key values; the ordinary role sees %s of the last hour's %s\n" \
    "$(psql_q -c 'SELECT count(*) FROM integrity_guard.audit_log')" \
    "$(psql_q -c 'SELECT count(*) FROM integrity_guard.audit_keys')" \
    "$("$PGBIN/psql" -X -q -At -U bench_reader -d bench -c "SELECT count(*) FROM integrity_guard.events(since => $since)")" \
    "$(psql_q -c "SELECT count(*) FROM integrity_guard.events(since => $since)")"

# the retention over a backlog: one job deletes the rows older than half the
# audit's span, IG_RETENTION_BATCH at a time
span=$(psql_q -c "SELECT extract(epoch FROM now() - min(last_seen))::bigint / 2 FROM integrity_guard.audit_log")
before=$(psql_q -c 'SELECT count(*) FROM integrity_guard.audit_log')
start=$(date +%s.%N)
psql_q -c "ALTER SYSTEM SET integrity_guard.retention = '${span}s'" -c 'SELECT pg_reload_conf()' >/dev/null
# an incident, so that a job runs now
psql_q -c 'CREATE TABLE rt (n int)' \
    -c "SELECT integrity_guard.guard_counter('rt', ARRAY['n'], 10, 0)" \
    -c 'INSERT INTO rt VALUES (99)' >/dev/null
until [ "$(psql_q -c "SELECT count(*) FROM integrity_guard.audit_log WHERE last_seen < now() - interval '${span} s'")" = 0 ]; do
    sleep 0.2
done
printf 'retention: %s of %s rows deleted by the flush jobs in %.1f s, in transactions of 10,000\n' \
    "$((before - $(psql_q -c 'SELECT count(*) FROM integrity_guard.audit_log')))" "$before" \
    "$(echo "$(date +%s.%N) - $start" | bc)"

