#!/usr/bin/env bash
# pg_dump / pg_restore round trip: guards, audit rows and their visibility
# survive, and the restored guards keep working.  Prints "ok - ..." or
# "not ok - ..." per check.  Expects PGHOST/PGPORT/PGUSER of a running
# cluster; $1 is the cluster's directory (for the dump file).
set -uo pipefail
dir=$1
PGBIN=${PGBIN:-/usr/lib/postgresql/${PG_MAJOR:-15}/bin}
q() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

check() {   # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" == "$3" ]; then
        echo "ok - $1"
    else
        echo "not ok - $1"
        printf '#   expected: %s\n#   actual:   %s\n' "$2" "$3"
    fi
}

"$PGBIN/createdb" ig_src || { echo "not ok - create source database"; exit 0; }
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d ig_src >/dev/null <<'SQL' || echo "not ok - set up source database"
CREATE EXTENSION pg_integrity_guard;
CREATE EXTENSION btree_gist;
CREATE TABLE sentry_groupedmessage (id int PRIMARY KEY, times_seen bigint NOT NULL DEFAULT 0);
CREATE TABLE "Open Periods" (id serial, group_id int, date_started timestamptz NOT NULL,
    date_ended timestamptz,
    EXCLUDE USING gist (group_id WITH =, tstzrange(date_started, date_ended, '[]') WITH &&));
SELECT integrity_guard.guard_counter('sentry_groupedmessage', ARRAY['times_seen'], max_value => 2147483647);
SELECT integrity_guard.guard_range('"Open Periods"', 'date_started', 'date_ended', 'swap');
INSERT INTO sentry_groupedmessage VALUES (1, 2147483600), (2, 5);
UPDATE sentry_groupedmessage SET times_seen = times_seen + 100;
INSERT INTO "Open Periods" (group_id, date_started, date_ended) VALUES (1, '2024-01-02', '2024-01-01');
CREATE ROLE regress_ig_dump_reader;
GRANT SELECT ON sentry_groupedmessage TO regress_ig_dump_reader;
SQL

guards_sql="SELECT string_agg(format('%s|%s|%s|%s|%s', table_name, kind, columns, options, trigger_name), ';' ORDER BY trigger_name) FROM integrity_guard.guards"
audit_sql="SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s', id, event_type, schema_name, table_name, target, occurrences, first_seen, last_seen, detail), ';' ORDER BY id) FROM integrity_guard.audit_log"
src_guards=$(q ig_src "$guards_sql")
src_audit=$(q ig_src "$audit_sql")
check "source has two guards" 2 "$(q ig_src 'SELECT count(*) FROM integrity_guard.guards')"
check "source has two incidents" 2 "$(q ig_src 'SELECT count(*) FROM integrity_guard.audit_log')"

"$PGBIN/pg_dump" -Fc -f "$dir/src.dump" ig_src || echo "not ok - pg_dump"
"$PGBIN/createdb" ig_dst
# Take some OIDs so restored tables cannot get their old ones back.
q ig_dst "CREATE TABLE filler AS SELECT 1; CREATE TABLE filler2 (a int); CREATE TABLE filler3 (a int)" >/dev/null
if "$PGBIN/pg_restore" --exit-on-error -d ig_dst "$dir/src.dump"; then
    echo "ok - pg_restore succeeds"
else
    echo "not ok - pg_restore succeeds"
fi

check "restored guards are the same" "$src_guards" "$(q ig_dst "$guards_sql")"
check "restored audit rows are the same" "$src_audit" "$(q ig_dst "$audit_sql")"
check "restored incidents stay visible to a reader of their table" 1 \
    "$(q ig_dst 'SET ROLE regress_ig_dump_reader; SELECT count(*) FROM integrity_guard.events()')"
check "events(rel) finds restored incidents by table" 1 \
    "$(q ig_dst "SELECT count(*) FROM integrity_guard.events(rel => 'sentry_groupedmessage')")"

# The restored triggers act, and new incidents continue the id sequence.
q ig_dst "UPDATE sentry_groupedmessage SET times_seen = times_seen + 2147483647" >/dev/null
check "restored counter guard saturates" "2147483647,2147483647" \
    "$(q ig_dst 'SELECT string_agg(times_seen::text, $$,$$ ORDER BY id) FROM sentry_groupedmessage')"
q ig_dst "UPDATE \"Open Periods\" SET date_ended = date_started - interval '1 day'" >/dev/null
check "restored range guard swaps" "t" \
    "$(q ig_dst 'SELECT bool_and(date_started < date_ended) FROM "Open Periods"')"
check "new incidents follow the restored ones" "t" \
    "$(q ig_dst 'SELECT min(id) > 2 FROM integrity_guard.audit_log WHERE id NOT IN (SELECT id FROM integrity_guard.audit_log ORDER BY id LIMIT 2)')"
check "two new incidents were recorded" 4 "$(q ig_dst 'SELECT count(*) FROM integrity_guard.audit_log')"

# Across majors (test/matrix.sh): the host's run leaves its dump in
# IG_DUMP_OUT; a chroot's run restores it (IG_DUMP_IN, made by PostgreSQL
# IG_DUMP_MAJOR) with its own major, as a dump/restore upgrade does.
if [ -n "${IG_DUMP_OUT:-}" ]; then
    cp "$dir/src.dump" "$IG_DUMP_OUT" && chmod 644 "$IG_DUMP_OUT" ||
        echo "not ok - the dump is left for the other majors"
fi
if [ -n "${IG_DUMP_IN:-}" ]; then
    from=${IG_DUMP_MAJOR:-another major}
    if [ -s "$IG_DUMP_IN" ] && "$PGBIN/createdb" ig_cross &&
        "$PGBIN/pg_restore" --exit-on-error -d ig_cross "$IG_DUMP_IN"; then
        echo "ok - a dump made by PostgreSQL $from restores into ${PG_MAJOR:-15}"
    else
        echo "not ok - a dump made by PostgreSQL $from restores into ${PG_MAJOR:-15}"
    fi
    check "its guards are the same" "$src_guards" "$(q ig_cross "$guards_sql")"
    check "its audit rows came along" "counter_saturated,range_clamped" \
        "$(q ig_cross "SELECT string_agg(event_type, ',' ORDER BY id) FROM integrity_guard.audit_log")"
    q ig_cross "UPDATE sentry_groupedmessage SET times_seen = times_seen + 2147483647" >/dev/null
    q ig_cross "UPDATE \"Open Periods\" SET date_ended = date_started - interval '1 day'" >/dev/null
    check "its guards act under ${PG_MAJOR:-15}" "2147483647,2147483647|t" \
        "$(q ig_cross 'SELECT string_agg(times_seen::text, $$,$$ ORDER BY id) FROM sentry_groupedmessage')|$(q ig_cross 'SELECT bool_and(date_started < date_ended) FROM "Open Periods"')"
    check "new incidents follow the restored ones there" "4|true" \
        "$(q ig_cross 'SELECT count(*) || $$|$$ || (max(id) > 2)::text FROM integrity_guard.audit_log')"
    q postgres "DROP DATABASE IF EXISTS ig_cross" >/dev/null
fi

for stmt in "DROP DATABASE ig_src" "DROP DATABASE ig_dst" "DROP ROLE regress_ig_dump_reader"; do
    q postgres "$stmt" >/dev/null
done
