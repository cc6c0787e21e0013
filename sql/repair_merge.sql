-- merge_duplicates, shaped like seed 004: conferences duplicated on
-- (conference_id, app_id), sessions through a deferred FK, a one-to-one
-- summary, a many-to-many participant link table, and an undeclared
-- reference registered with guard_children.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_integrity_guard;
SET client_min_messages = notice;
SELECT integrity_guard.purge('0') >= 0 AS emptied;
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || coalesce(E'\nHINT: ' || nullif(hint, ''), '');
END $$;
CREATE TABLE conf (id serial PRIMARY KEY, conference_id text NOT NULL, app_id int NOT NULL,
                   created_at timestamptz NOT NULL);
CREATE TABLE conf_session (id serial PRIMARY KEY,
                           conference_id int NOT NULL REFERENCES conf DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE conf_summary (id serial PRIMARY KEY, conference_id int UNIQUE REFERENCES conf, txt text);
CREATE TABLE conf_participant (id serial PRIMARY KEY, name text);
CREATE TABLE conf_link (conference_id int REFERENCES conf, participant_id int REFERENCES conf_participant,
                        PRIMARY KEY (conference_id, participant_id));
CREATE TABLE conf_note (id serial PRIMARY KEY, conf int);   -- no foreign key
CREATE TABLE conf_note_line (id serial PRIMARY KEY, note_id int REFERENCES conf_note);  -- grandchild
-- a partitioned child: a ctid names a row only within its partition
CREATE TABLE conf_tag (conference_id int REFERENCES conf, tag text, PRIMARY KEY (conference_id, tag))
  PARTITION BY LIST (tag);
CREATE TABLE conf_tag_x PARTITION OF conf_tag FOR VALUES IN ('x');
CREATE TABLE conf_tag_y PARTITION OF conf_tag FOR VALUES IN ('y');
SELECT integrity_guard.guard_children('conf', ARRAY['conf_note(conf)']);
INSERT INTO conf (conference_id, app_id, created_at) VALUES
  ('a', 1, '2024-01-03'), ('a', 1, '2024-01-01'), ('a', 1, '2024-01-02'),
  ('b', 1, '2024-01-01'), ('b', 2, '2024-01-01'),
  ('c', 3, '2024-01-01'), ('c', 3, '2024-01-05');
INSERT INTO conf_participant (name) VALUES ('p1'), ('p2'), ('p3');
INSERT INTO conf_session (conference_id) VALUES (1), (2), (3), (3), (4), (5), (6), (7);
INSERT INTO conf_summary (conference_id, txt) VALUES (2, 's2'), (3, 's3'), (7, 's7');
INSERT INTO conf_link VALUES (1, 1), (2, 1), (2, 2), (3, 3), (6, 1), (7, 1), (7, 2);
INSERT INTO conf_note (conf) VALUES (2), (7), (4);
INSERT INTO conf_note_line (note_id) VALUES (1), (2), (3);
INSERT INTO conf_tag VALUES (3, 'x'), (2, 'x'), (1, 'y');

SELECT * FROM integrity_guard.duplicates('conf', '{conference_id,app_id}');
SELECT child, child_columns, parent_columns, declared
FROM integrity_guard._repair_references('conf');

-- bad inputs
SELECT pg_temp.err($$CALL integrity_guard.merge_duplicates('conf', '{conference_id,nope}')$$);
SELECT pg_temp.err($$CALL integrity_guard.merge_duplicates('conf', '{}')$$);
SELECT pg_temp.err($$CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}', keep_order => 'created_at DESC; DROP TABLE conf')$$);
SELECT pg_temp.err($$CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}', keep_order => 'created_at sideways')$$);
SELECT pg_temp.err($$CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}', keep_order => 'Created_At DESC, "Created_At"')$$);
SELECT pg_temp.err($$CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}', keep_order => '')$$);
SELECT pg_temp.err($$CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}', batch_groups => 0)$$);
SELECT pg_temp.err($$CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}', on_child_conflict => 'ignore')$$);
CREATE TABLE nopk (a int, b int);
SELECT pg_temp.err($$SELECT * FROM integrity_guard.duplicates('nopk', '{a}')$$);
SELECT pg_temp.err($$CALL integrity_guard.merge_duplicates('nopk', '{a}')$$);
SELECT pg_temp.err($$CALL integrity_guard.merge_duplicates('conf_session_pkey', '{id}')$$);

-- on_child_conflict => 'error' stops before the colliding batch changes anything
BEGIN;
CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}', on_child_conflict => 'error');
ROLLBACK;
SELECT count(*) FROM conf;

-- privileges: the caller's own; a child table it cannot write stops the
-- merge before anything changes
CREATE ROLE merge_limited;
GRANT SELECT, UPDATE, DELETE ON conf TO merge_limited;
GRANT SELECT ON conf_session, conf_summary, conf_link, conf_note, conf_tag TO merge_limited;
SET ROLE merge_limited;
SELECT row_count FROM integrity_guard.duplicates('conf', '{conference_id,app_id}');
SELECT pg_temp.err($$CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}')$$);
RESET ROLE;
REVOKE SELECT ON conf FROM merge_limited;
SET ROLE merge_limited;
SELECT pg_temp.err($$SELECT * FROM integrity_guard.duplicates('conf', '{conference_id,app_id}')$$);
RESET ROLE;
SELECT count(*) FROM conf;
DROP OWNED BY merge_limited;
DROP ROLE merge_limited;

CREATE TABLE counts AS
SELECT (SELECT count(*) FROM conf_session) AS sessions, (SELECT count(*) FROM conf_summary) AS summaries,
       (SELECT count(*) FROM conf_link) AS links, (SELECT count(*) FROM conf_note) AS notes,
       (SELECT count(*) FROM conf_note_line) AS lines, (SELECT count(*) FROM conf_tag) AS tags;

-- keep the oldest conference of each group; one group per batch, each
-- committed (the CALL is outside a transaction block)
CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}', keep_order => 'created_at, id',
                                      batch_groups => 1);
SELECT id, conference_id, app_id FROM conf ORDER BY id;
SELECT conference_id, count(*) FROM conf_session GROUP BY 1 ORDER BY 1;
SELECT conference_id, txt FROM conf_summary ORDER BY 1;
SELECT * FROM conf_link ORDER BY 1, 2;
SELECT id, conf FROM conf_note ORDER BY 1;
SELECT id, note_id FROM conf_note_line ORDER BY 1;
SELECT tableoid::regclass, * FROM conf_tag ORDER BY 1, 2;
-- nothing lost but the recorded collisions
SELECT a.event_type, a.target, a.occurrences,
       a.detail - 'keep_order' AS detail
FROM integrity_guard.audit_log a WHERE a.event_type = 'duplicates_merged';
SELECT c.sessions - (SELECT count(*) FROM conf_session) AS sessions_lost,
       c.summaries - (SELECT count(*) FROM conf_summary)
         - coalesce((a.detail #>> '{child_conflicts_deleted,public.conf_summary}')::int, 0) AS summaries_unrecorded,
       c.links - (SELECT count(*) FROM conf_link)
         - coalesce((a.detail #>> '{child_conflicts_deleted,public.conf_link}')::int, 0) AS links_unrecorded,
       c.notes - (SELECT count(*) FROM conf_note) AS notes_lost,
       c.tags - (SELECT count(*) FROM conf_tag)
         - coalesce((a.detail #>> '{child_conflicts_deleted,public.conf_tag}')::int, 0) AS tags_unrecorded,
       c.lines - (SELECT count(*) FROM conf_note_line) AS lines_lost
FROM counts c, integrity_guard.audit_log a WHERE a.event_type = 'duplicates_merged';
CREATE UNIQUE INDEX conf_key ON conf (conference_id, app_id);
SELECT * FROM integrity_guard.duplicates('conf', '{conference_id,app_id}');
-- nothing to do: no incident
CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}');
SELECT count(*) FROM integrity_guard.audit_log a WHERE a.event_type = 'duplicates_merged';
DROP TABLE conf_tag, conf_note_line, conf_note, conf_link, conf_participant, conf_summary, conf_session, conf, nopk, counts;
SELECT integrity_guard.purge('0') >= 0 AS emptied;
