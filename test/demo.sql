-- pg_integrity_guard demo: each guard turning a production error into the
-- guarded outcome, on a small Sentry-like schema.  Run by test/demo.sh.
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION pg_integrity_guard;
CREATE EXTENSION btree_gist;
RESET client_min_messages;

\echo
\echo '=== 1. Counters saturate (SENTRY-4E5F: "integer out of range" on times_seen)'
\echo
-- Django's PositiveIntegerField: a 32-bit integer with CHECK (>= 0)
CREATE TABLE sentry_groupedmessage (
    id int PRIMARY KEY,
    times_seen integer NOT NULL DEFAULT 0 CHECK (times_seen >= 0),
    num_comments integer NOT NULL DEFAULT 0 CHECK (num_comments >= 0)
);
INSERT INTO sentry_groupedmessage VALUES (1, 2147483600, 0);
\echo '-- before: the buffer flush, Group.objects.filter(id=...).update(times_seen=F("times_seen") + 100)'
UPDATE sentry_groupedmessage SET times_seen = times_seen + 100 WHERE id = 1;
\echo '-- before: a decrement below zero trips the CHECK constraint'
UPDATE sentry_groupedmessage SET num_comments = num_comments - 1 WHERE id = 1;
\echo '-- attach the guards: times_seen held to 32 bits, num_comments floored at 0'
SELECT integrity_guard.guard_counter('sentry_groupedmessage', ARRAY['times_seen']);
SELECT integrity_guard.guard_counter('sentry_groupedmessage', ARRAY['num_comments'], min_value => 0);
\echo '-- after: the same statements succeed and store the bound'
UPDATE sentry_groupedmessage SET times_seen = times_seen + 100 WHERE id = 1;
UPDATE sentry_groupedmessage SET times_seen = times_seen + 1 WHERE id = 1;
UPDATE sentry_groupedmessage SET num_comments = num_comments - 1 WHERE id = 1;
SELECT id, times_seen, num_comments FROM sentry_groupedmessage;

\echo
\echo '=== 2. Inverted time ranges are clamped (GroupOpenPeriod: "range lower bound must be less than or equal to range upper bound")'
\echo
CREATE TABLE sentry_groupopenperiod (
    id serial PRIMARY KEY,
    group_id int NOT NULL,
    date_started timestamptz NOT NULL,
    date_ended timestamptz,
    EXCLUDE USING gist (group_id WITH =, tstzrange(date_started, date_ended, '[]') WITH &&)
);
INSERT INTO sentry_groupopenperiod (group_id, date_started) VALUES (1, '2024-03-10 12:00:00+00');
\echo '-- before: closing the open period with an end before its start'
UPDATE sentry_groupopenperiod SET date_ended = '2024-03-10 11:59:58+00' WHERE group_id = 1;
\echo '-- attach the guard (default policy clamp_upper: date_ended := date_started)'
SELECT integrity_guard.guard_range('sentry_groupopenperiod', 'date_started', 'date_ended');
\echo '-- after: the same statement succeeds'
UPDATE sentry_groupopenperiod SET date_ended = '2024-03-10 11:59:58+00' WHERE group_id = 1;
SELECT group_id, date_started, date_ended FROM sentry_groupopenperiod;

\echo
\echo '=== 3. Dangling children are nullified (SENTRY-5DCR: "update or delete on table ... violates foreign key constraint")'
\echo
CREATE TABLE sentry_monitorcheckin (id bigint PRIMARY KEY, date_added timestamptz NOT NULL);
-- Django declares every FK DEFERRABLE INITIALLY DEFERRED with NO ACTION
CREATE TABLE sentry_monitorincident (
    id bigint PRIMARY KEY,
    starting_checkin_id bigint REFERENCES sentry_monitorcheckin DEFERRABLE INITIALLY DEFERRED,
    resolving_checkin_id bigint REFERENCES sentry_monitorcheckin DEFERRABLE INITIALLY DEFERRED
);
-- a soft reference: an id column with no constraint at all
CREATE TABLE sentry_checkinnote (id bigint PRIMARY KEY, checkin_id bigint);
CREATE INDEX ON sentry_monitorincident (starting_checkin_id);
CREATE INDEX ON sentry_monitorincident (resolving_checkin_id);
CREATE INDEX ON sentry_checkinnote (checkin_id);
INSERT INTO sentry_monitorcheckin SELECT g, now() - g * interval '1 minute' FROM generate_series(1, 20000) g;
INSERT INTO sentry_monitorincident SELECT g, g * 4, g * 4 + 1 FROM generate_series(1, 4000) g;
INSERT INTO sentry_checkinnote SELECT g, g * 2 FROM generate_series(1, 8000) g;
\echo '-- before: the clean-up job deletes 10,000 old check-ins in one statement'
DELETE FROM sentry_monitorcheckin WHERE id IN (SELECT id FROM sentry_monitorcheckin ORDER BY id LIMIT 10000);
\echo '-- attach the guard: every NO ACTION foreign key, plus the soft reference'
SELECT integrity_guard.guard_children('sentry_monitorcheckin');
SELECT integrity_guard.unguard('sentry_monitorcheckin', 'children');
SELECT integrity_guard.guard_children('sentry_monitorcheckin',
    ARRAY['sentry_monitorincident(starting_checkin_id)', 'sentry_monitorincident(resolving_checkin_id)',
          'sentry_checkinnote(checkin_id)']);
\echo '-- after: the same statement succeeds; references to deleted check-ins are NULL'
DELETE FROM sentry_monitorcheckin WHERE id IN (SELECT id FROM sentry_monitorcheckin ORDER BY id LIMIT 10000);
SELECT count(*) FILTER (WHERE starting_checkin_id IS NULL) AS incidents_started_cleared,
       count(*) FILTER (WHERE resolving_checkin_id IS NULL) AS incidents_resolved_cleared,
       (SELECT count(*) FROM sentry_checkinnote WHERE checkin_id IS NULL) AS notes_cleared
  FROM sentry_monitorincident;

\echo
\echo '=== 4. Duplicate-key attempts are audited (seed 004: get_or_create races; consumers replaying messages)'
\echo
CREATE TABLE sentry_conference (id serial PRIMARY KEY, conference_id int NOT NULL, app text NOT NULL,
                                UNIQUE (conference_id, app));
CREATE TABLE sentry_consumed (message_id text PRIMARY KEY, payload text);
SELECT integrity_guard.guard_duplicates('sentry_conference');
SELECT integrity_guard.guard_duplicates('sentry_consumed', 'skip');
INSERT INTO sentry_conference (conference_id, app) VALUES (7, 'web');
\echo '-- Django get_or_create: INSERT in a savepoint, the same 23505 as ever, then get()'
BEGIN;
SAVEPOINT get_or_create;
INSERT INTO sentry_conference (conference_id, app) VALUES (7, 'web');
ROLLBACK TO SAVEPOINT get_or_create;
SELECT id, conference_id, app FROM sentry_conference WHERE conference_id = 7 AND app = 'web';
COMMIT;
\echo '-- a consumer replays messages: mode=skip drops the replayed rows, the rest goes in'
INSERT INTO sentry_consumed VALUES ('m1', 'first'), ('m2', 'second');
INSERT INTO sentry_consumed VALUES ('m1', 'replay'), ('m2', 'replay'), ('m3', 'third');
SELECT * FROM sentry_consumed ORDER BY message_id;
SELECT table_name, constraint_name, key, mode, occurrences FROM integrity_guard.duplicate_keys;

\echo '-- get_or_create in autocommit: the attempt aborts its own transaction, and is still recorded'
INSERT INTO sentry_conference (conference_id, app) VALUES (7, 'web');
\echo '-- an error from a table without any guard is captured too (integrity_guard.capture_errors)'
CREATE TABLE sentry_project (id int PRIMARY KEY);
CREATE TABLE sentry_projectkey (id int PRIMARY KEY, project_id int REFERENCES sentry_project);
INSERT INTO sentry_projectkey VALUES (1, 42);
\echo '-- without any reader, the background worker writes them within flush_interval (1 s)'
SELECT pg_sleep(1.5);
\echo '-- (key values live apart, in audit_keys, readable as the server shows its own error DETAIL)'
SELECT a.event_type, a.table_name, a.target, a.occurrences, k.key_values->>'key' AS key,
       a.detail->>'sqlstate' AS sqlstate
  FROM integrity_guard.audit_log a LEFT JOIN integrity_guard.audit_keys k ON k.id = a.id
 WHERE a.event_type IN ('duplicate_key', 'foreign_key_violation') ORDER BY a.id;

\echo
\echo '=== 5. A bulk statement is one incident, not 100,000'
\echo
INSERT INTO sentry_groupedmessage SELECT g, 2147483000, 0 FROM generate_series(2, 100001) g;
\echo '-- 100,000 counters pushed past 2^31-1 in one statement'
UPDATE sentry_groupedmessage SET times_seen = times_seen + 1000 WHERE id > 1;

\echo
\echo '=== 6. The audit'
\echo
SELECT * FROM integrity_guard.guards;
SELECT table_name, event_type, target, incidents, occurrences FROM integrity_guard.summary();
SELECT id, event_type, table_name, target, occurrences, role_name, detail
  FROM integrity_guard.events() ORDER BY id;
\echo '-- cumulative counters in shared memory (kept across clean restarts)'
SELECT schema_name, table_name, event_type, target, occurrences FROM integrity_guard.stats
 ORDER BY occurrences DESC, table_name;
SELECT * FROM integrity_guard.status();
