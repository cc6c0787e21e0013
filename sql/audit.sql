-- the audit: aggregation, transactions, reading functions, visibility
\set SHOW_CONTEXT never
SELECT integrity_guard.purge('0') >= 0 AS emptied;

CREATE TABLE counters (id int PRIMARY KEY, n bigint);
SELECT integrity_guard.guard_counter('counters', ARRAY['n'], max_value => 100, min_value => 0);
INSERT INTO counters SELECT g, 0 FROM generate_series(1, 10) g;

-- one statement saturating ten rows writes one incident
UPDATE counters SET n = 1000;
SELECT event_type, schema_name, table_name, relid = 'counters'::regclass AS relid_ok,
       target, occurrences, first_seen <= last_seen AS ordered,
       role_name = current_user AS role_ok, database_name = current_database() AS db_ok,
       detail
  FROM integrity_guard.audit_log;
-- min and max are separate incidents; another statement is another incident
UPDATE counters SET n = CASE WHEN id <= 3 THEN -1 ELSE 101 END;
SELECT target, detail->>'bound' AS bound, occurrences FROM integrity_guard.audit_log ORDER BY occurrences DESC;
-- rows within bounds record nothing
UPDATE counters SET n = 50;
SELECT count(*) FROM integrity_guard.audit_log;

-- the transactional path: a rolled-back transaction keeps nothing...
BEGIN;
UPDATE counters SET n = 1000 WHERE id = 1;
ROLLBACK;
SELECT count(*) FROM integrity_guard.audit_log;
-- ...but a statement that fails inside a savepoint (the get_or_create
-- shape) keeps its events: they are written, as their own incident, when
-- the next statement starts
BEGIN;
SAVEPOINT s;
UPDATE counters SET n = CASE WHEN id = 1 THEN 1000 ELSE 1 / (id - id) END
 WHERE id IN (1, 2);
ROLLBACK TO SAVEPOINT s;
UPDATE counters SET n = 2000 WHERE id IN (2, 3);
COMMIT;
SELECT target, detail->>'bound' AS bound, occurrences FROM integrity_guard.audit_log ORDER BY id DESC LIMIT 2;
SELECT n FROM counters WHERE id <= 3 ORDER BY id;

-- events inside a function are flushed when the top-level statement ends,
-- as one incident; flush() writes them earlier when asked
CREATE FUNCTION bump(k int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE written bigint;
BEGIN
    FOR i IN 1..k LOOP
        UPDATE counters SET n = 1000 WHERE id = 4;
    END LOOP;
    written := integrity_guard.flush();
    RETURN written;
END $$;
SELECT bump(5);
SELECT occurrences FROM integrity_guard.audit_log ORDER BY id DESC LIMIT 1;
SELECT integrity_guard.flush();
-- COPY, DO and CALL flush at their end too
COPY counters (id, n) FROM stdin;
11	-5
12	500
\.
DO $$BEGIN UPDATE counters SET n = 999 WHERE id > 10; END$$;
SELECT bound, occurrences FROM (
  SELECT detail->>'bound' AS bound, occurrences FROM integrity_guard.audit_log
   ORDER BY id DESC LIMIT 3) last3
 ORDER BY 1, 2;
-- prepared statements reuse the cached trigger configuration
PREPARE up(int) AS UPDATE counters SET n = $1 WHERE id = 5;
EXECUTE up(7000);
EXECUTE up(8000);
SELECT count(*) AS incidents, sum(occurrences) FROM integrity_guard.audit_log
 WHERE id > (SELECT max(id) - 2 FROM integrity_guard.audit_log);

-- reading functions
SELECT event_type, target, occurrences FROM integrity_guard.events(rel => 'counters') LIMIT 2;
SELECT count(*) = (SELECT count(*) FROM integrity_guard.audit_log) AS all_rows
  FROM integrity_guard.events();
SELECT count(*) FROM integrity_guard.events(since => now() + interval '1 hour');
SELECT count(*) FROM integrity_guard.events(event_type => 'range_clamped');
SELECT count(*) > 0 FROM integrity_guard.events(event_type => 'counter_saturated');
SELECT schema_name, table_name, event_type, target, incidents, occurrences,
       first_seen <= last_seen AS ordered
  FROM integrity_guard.summary();
SELECT count(*) = (SELECT count(*) FROM integrity_guard.audit_log) AS recent_all
  FROM integrity_guard.recent_events;

-- visibility: a role sees incidents only of tables it can SELECT
CREATE TABLE secret (id int, n bigint);
SELECT integrity_guard.guard_counter('secret', ARRAY['n'], max_value => 10);
CREATE ROLE regress_ig_reader;
CREATE ROLE regress_ig_writer;
CREATE ROLE regress_ig_stats IN ROLE pg_read_all_stats;
GRANT SELECT ON counters TO regress_ig_reader;
GRANT INSERT ON secret TO regress_ig_writer;
-- a writer without any privilege on the audit table is still audited
SET ROLE regress_ig_writer;
INSERT INTO secret VALUES (1, 11);
RESET ROLE;
SELECT table_name, role_name, occurrences FROM integrity_guard.audit_log WHERE table_name = 'secret';
SET ROLE regress_ig_writer;
SELECT count(*) FROM integrity_guard.audit_log;
SELECT count(*) FROM integrity_guard.events();
SET ROLE regress_ig_reader;
SELECT DISTINCT table_name FROM integrity_guard.audit_log;
SELECT DISTINCT table_name FROM integrity_guard.events();
SELECT DISTINCT table_name FROM integrity_guard.recent_events;
SELECT DISTINCT table_name FROM integrity_guard.summary();
-- nobody but the owner writes, purges or forges
SELECT sqlstate_of($$INSERT INTO integrity_guard.audit_log (event_type, first_seen, last_seen) VALUES ('forged', now(), now())$$);
SELECT sqlstate_of($$UPDATE integrity_guard.audit_log SET occurrences = 1$$);
SELECT sqlstate_of($$DELETE FROM integrity_guard.audit_log$$);
SELECT sqlstate_of($$SELECT integrity_guard.purge('0')$$);
SET ROLE regress_ig_stats;
SELECT DISTINCT table_name FROM integrity_guard.audit_log ORDER BY 1;
SELECT sqlstate_of($$SELECT integrity_guard.purge('0')$$);
RESET ROLE;

-- purge: by age, and NULL refused
SELECT sqlstate_of($$SELECT integrity_guard.purge(NULL)$$);
SELECT integrity_guard.purge('1 hour');
SELECT integrity_guard.purge('0') > 0 AS purged;
SELECT count(*) FROM integrity_guard.audit_log;

DROP TABLE secret;
REVOKE ALL ON counters FROM regress_ig_reader;
DROP ROLE regress_ig_reader;
DROP ROLE regress_ig_writer;
DROP ROLE regress_ig_stats;
