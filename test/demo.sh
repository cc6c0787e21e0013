#!/usr/bin/env bash
# The main job: install what is missing, build and install the extension,
# start a throwaway cluster, show each guard absorbing a real failure, query
# the audit, stop the cluster.  Ends with one verdict line per guard (what
# was absorbed, what was recorded) and a final PASS/FAIL line; exit status 1
# when a guard did not do what it promises.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap stop_clusters EXIT
trap 'exit 130' INT TERM
# The server and its clients run as the postgres OS user, which may not be
# allowed into the caller's directory (root's home): work from /.
cd /

ensure_packages
build_install
# preloaded, as production should run it: the assignment rewrite in every
# session, the durable audit, error capture and stats (README, "Loading
# and preload")
start_cluster dir "shared_preload_libraries = 'pg_integrity_guard'"
cluster_env "$dir"
log "cluster running on socket $PGHOST; running test/demo.sql"
"$PGBIN/createdb" sentry
"$PGBIN/psql" -X -d sentry -f "$TOP/test/demo.sql" 2>&1

# One line per guard: "PASS|FAIL guard: what the tables show; what the audit
# recorded".  Each is checked against the tables themselves, not only the audit.
echo
echo "=== Verdict"
verdicts=$("$PGBIN/psql" -X -At -F '|' -d sentry -v ON_ERROR_STOP=1 <<'SQL'
WITH s AS (SELECT table_name::text AS t, event_type AS e, sum(incidents) AS rows, sum(occurrences) AS n
             FROM integrity_guard.summary() GROUP BY 1, 2)
SELECT CASE WHEN ok AND n > 0 THEN 'PASS' ELSE 'FAIL' END, guard, absorbed, coalesce(n, 0), coalesce(rows, 0)
FROM (
  SELECT 'guard_counter' AS guard,
         (SELECT min(times_seen) = 2147483647 AND max(times_seen) = 2147483647 FROM sentry_groupedmessage)
         AND (SELECT num_comments = 0 FROM sentry_groupedmessage WHERE id = 1) AS ok,
         (SELECT format('%s of %s counters held at 2147483647, num_comments at %s',
                        count(*) FILTER (WHERE times_seen = 2147483647), count(*),
                        min(num_comments)) FROM sentry_groupedmessage) AS absorbed,
         (SELECT n FROM s WHERE t = 'sentry_groupedmessage' AND e = 'counter_saturated') AS n,
         (SELECT rows FROM s WHERE t = 'sentry_groupedmessage' AND e = 'counter_saturated') AS rows
  UNION ALL
  SELECT 'guard_range',
         (SELECT bool_and(date_ended = date_started) FROM sentry_groupopenperiod),
         (SELECT format('%s of %s periods closed before they started end when they started',
                        count(*) FILTER (WHERE date_ended = date_started), count(*))
            FROM sentry_groupopenperiod),
         (SELECT n FROM s WHERE t = 'sentry_groupopenperiod' AND e = 'range_clamped'),
         (SELECT rows FROM s WHERE t = 'sentry_groupopenperiod' AND e = 'range_clamped')
  UNION ALL
  SELECT 'guard_children',
         (SELECT count(*) = 10000 FROM sentry_monitorcheckin)
         AND NOT EXISTS (SELECT FROM sentry_monitorincident i
                          WHERE i.starting_checkin_id NOT IN (SELECT id FROM sentry_monitorcheckin)
                             OR i.resolving_checkin_id NOT IN (SELECT id FROM sentry_monitorcheckin))
         AND NOT EXISTS (SELECT FROM sentry_checkinnote n
                          WHERE n.checkin_id NOT IN (SELECT id FROM sentry_monitorcheckin)),
         format('%s of 20000 check-ins deleted, %s references cleared',
                20000 - (SELECT count(*) FROM sentry_monitorcheckin),
                (SELECT count(*) FILTER (WHERE starting_checkin_id IS NULL)
                        + count(*) FILTER (WHERE resolving_checkin_id IS NULL) FROM sentry_monitorincident)
                + (SELECT count(*) FROM sentry_checkinnote WHERE checkin_id IS NULL)),
         (SELECT n FROM s WHERE t = 'sentry_monitorcheckin' AND e = 'children_nullified'),
         (SELECT rows FROM s WHERE t = 'sentry_monitorcheckin' AND e = 'children_nullified')
  UNION ALL
  SELECT 'guard_duplicates',
         (SELECT count(*) = 1 FROM sentry_conference) AND (SELECT count(*) = 3 FROM sentry_consumed)
         AND (SELECT n >= 2 FROM s WHERE t = 'sentry_conference' AND e = 'duplicate_key'),
         format('get_or_create kept %s row, the replay left %s distinct messages of 3',
                (SELECT count(*) FROM sentry_conference), (SELECT count(*) FROM sentry_consumed)),
         (SELECT sum(n) FROM s WHERE t IN ('sentry_conference', 'sentry_consumed') AND e = 'duplicate_key'),
         (SELECT sum(rows) FROM s WHERE t IN ('sentry_conference', 'sentry_consumed') AND e = 'duplicate_key')
) v
SQL
) || verdicts=""
failed=0
while IFS='|' read -r verdict guard absorbed events rows; do
    [ -n "$guard" ] || continue
    printf '%-4s %-17s absorbed: %s; recorded: %s events in %s audit rows\n' \
        "$verdict" "$guard" "$absorbed" "$events" "$rows"
    [ "$verdict" = PASS ] || failed=$((failed + 1))
done <<<"$verdicts"
guards=$(grep -c . <<<"$verdicts" || true)
if [ "$guards" -eq 4 ] && [ "$failed" -eq 0 ]; then
    echo "PASS: all 4 guards absorbed their failure and recorded it"
else
    echo "FAIL: $failed of 4 guards did not absorb or record their failure (verdicts for $guards)"
    exit 1
fi
