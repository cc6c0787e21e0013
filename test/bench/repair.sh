#!/usr/bin/env bash
# Repair kit benchmark (standalone): prints ratios, never decides pass/fail.
#   orphans()         vs the hand-written anti-join, CHILDREN child rows
#   merge_duplicates  vs a hand-written set-based merge, NGROUPS duplicate
#                     groups with three child tables (many-to-one, one-to-one,
#                     many-to-many link)
#   CHILDREN=1000000 NGROUPS=10000 REPS=3 bash test/bench/repair.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
trap stop_clusters EXIT
trap 'exit 130' INT TERM

CHILDREN=${CHILDREN:-1000000}
NGROUPS=${NGROUPS:-10000}
REPS=${REPS:-3}

ensure_packages
build_install
start_cluster dir "shared_preload_libraries = 'pg_integrity_guard'" \
    "shared_buffers = '512MB'" "synchronous_commit = off" "work_mem = '64MB'" \
    "max_wal_size = '4GB'" "checkpoint_timeout = '30min'" "autovacuum = off"
cluster_env "$dir"
"$PGBIN/createdb" bench
psql_q() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d bench "$@"; }
timed() {
    psql_q -c '\timing on' -c "$1" 2>/dev/null | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1
}
median_ms() {
    printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

psql_q <<SQL >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION pg_integrity_guard;
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent SELECT generate_series(1, $CHILDREN / 10);
CREATE TABLE child (id int PRIMARY KEY, parent_id int, payload text);
-- one child in a hundred is an orphan
INSERT INTO child SELECT g, CASE WHEN g % 100 = 0 THEN $CHILDREN + g ELSE g % ($CHILDREN / 10) + 1 END,
       'x' FROM generate_series(1, $CHILDREN) g;
VACUUM ANALYZE;
SQL

declare -a fn hand
for ((r = 0; r < REPS; r++)); do
    hand+=("$(timed "SELECT count(*) FROM (SELECT c.id, c.parent_id FROM child c WHERE c.parent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM parent p WHERE p.id = c.parent_id)) s")")
    fn+=("$(timed "SELECT count(*) FROM integrity_guard.orphans('child', '{parent_id}', 'parent')")")
done
h=$(median_ms "${hand[*]}"); f=$(median_ms "${fn[*]}")
printf 'orphans, %s children (1%% orphans): anti-join %s ms, orphans() %s ms, ratio %.2f\n' \
    "$CHILDREN" "$h" "$f" "$(echo "$f / $h" | bc -l)"

# merge: NGROUPS groups of two conferences; sessions (3 per conference),
# a one-to-one summary on a third of them, two links per conference
merge_setup() {
    psql_q <<SQL >/dev/null
SET client_min_messages = warning;
DROP TABLE IF EXISTS link, summ, sess, conf;
CREATE TABLE conf (id int PRIMARY KEY, conference_id int NOT NULL, app_id int NOT NULL);
INSERT INTO conf SELECT g, (g - 1) % $NGROUPS, 1 FROM generate_series(1, 2 * $NGROUPS) g;
CREATE TABLE sess (id serial PRIMARY KEY, conference_id int REFERENCES conf DEFERRABLE INITIALLY DEFERRED);
INSERT INTO sess (conference_id) SELECT g % (2 * $NGROUPS) + 1 FROM generate_series(1, 6 * $NGROUPS) g;
CREATE INDEX ON sess (conference_id);
CREATE TABLE summ (id serial PRIMARY KEY, conference_id int UNIQUE REFERENCES conf);
INSERT INTO summ (conference_id) SELECT g FROM generate_series(1, 2 * $NGROUPS) g WHERE g % 3 = 0;
CREATE TABLE link (conference_id int REFERENCES conf, participant int, PRIMARY KEY (conference_id, participant));
INSERT INTO link SELECT g, g % 7 FROM generate_series(1, 2 * $NGROUPS) g;
INSERT INTO link SELECT g, 100 + g % 5 FROM generate_series(1, 2 * $NGROUPS) g;
VACUUM ANALYZE;
SQL
}

HAND_MERGE="BEGIN;
CREATE TEMP TABLE m AS SELECT id AS loser, keep FROM
  (SELECT id, min(id) OVER (PARTITION BY conference_id, app_id) AS keep FROM conf) s WHERE id <> keep;
CREATE INDEX ON m (loser);
DELETE FROM summ s USING m WHERE s.conference_id = m.loser
  AND EXISTS (SELECT 1 FROM summ k WHERE k.conference_id = m.keep);
UPDATE summ s SET conference_id = m.keep FROM m WHERE s.conference_id = m.loser;
DELETE FROM link l USING m WHERE l.conference_id = m.loser
  AND EXISTS (SELECT 1 FROM link k WHERE k.conference_id = m.keep AND k.participant = l.participant);
UPDATE link l SET conference_id = m.keep FROM m WHERE l.conference_id = m.loser;
UPDATE sess s SET conference_id = m.keep FROM m WHERE s.conference_id = m.loser;
DELETE FROM conf c USING m WHERE c.id = m.loser;
DROP TABLE m;
COMMIT;"

declare -a mf mh m1
for ((r = 0; r < REPS; r++)); do
    merge_setup
    m1+=("$(timed "CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}', batch_groups => $NGROUPS)")")
    merge_setup
    mh+=("$(psql_q -c '\timing on' -c "$HAND_MERGE" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{s += $1} END {print s}')")
    psql_q -c "CREATE UNIQUE INDEX ON conf (conference_id, app_id)" >/dev/null
    merge_setup
    mf+=("$(timed "CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}', batch_groups => 1000)")")
    psql_q -c "CREATE UNIQUE INDEX ON conf (conference_id, app_id)" >/dev/null
done
h=$(median_ms "${mh[*]}"); f=$(median_ms "${mf[*]}"); o=$(median_ms "${m1[*]}")
printf 'merge, %s groups, 3 child tables: set-based SQL %s ms, merge_duplicates (one batch) %s ms, ratio %.2f\n' \
    "$NGROUPS" "$h" "$o" "$(echo "$o / $h" | bc -l)"
printf 'merge, %s groups, 3 child tables: set-based SQL %s ms, merge_duplicates (batches of 1000) %s ms, ratio %.2f\n' \
    "$NGROUPS" "$h" "$f" "$(echo "$f / $h" | bc -l)"
