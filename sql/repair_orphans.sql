-- orphans() and fix_orphans(): declared, NOT VALID, disabled and undeclared
-- references, bad inputs, batches, audit, privileges
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_integrity_guard;
SET client_min_messages = notice;
SELECT integrity_guard.purge('0') >= 0 AS emptied;
-- SQLSTATE, message and hint of a failing statement
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || coalesce(E'\nHINT: ' || nullif(hint, ''), '');
END $$;

CREATE TABLE o_parent (id int PRIMARY KEY, code text UNIQUE);
CREATE TABLE o_child (id int PRIMARY KEY, parent_id bigint, code varchar(10), note text NOT NULL DEFAULT '');
INSERT INTO o_parent SELECT g, 'c' || g FROM generate_series(1, 10) g;
INSERT INTO o_child SELECT g, CASE WHEN g % 4 = 0 THEN NULL ELSE g % 14 END, 'c' || (g % 12)
FROM generate_series(1, 24) g;

-- an undeclared reference
SELECT * FROM integrity_guard.orphans('o_child', '{parent_id}', 'o_parent') ORDER BY child_key->>'id';
-- against other parent columns, varchar against text
SELECT * FROM integrity_guard.orphans('o_child', '{code}', 'o_parent', '{code}') ORDER BY (child_key->>'id')::int;
-- the same as the hand-written anti-join
SELECT count(*) = (SELECT count(*) FROM o_child c WHERE c.parent_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM o_parent p WHERE p.id = c.parent_id)) AS same
FROM integrity_guard.orphans('o_child', '{parent_id}', 'o_parent');

-- a NOT VALID foreign key, and one whose triggers were disabled
CREATE TABLE o_child2 (id int PRIMARY KEY, parent_id int);
INSERT INTO o_child2 VALUES (1, 1), (2, 50), (3, NULL);
ALTER TABLE o_child2 ADD CONSTRAINT o_child2_fk FOREIGN KEY (parent_id) REFERENCES o_parent NOT VALID;
SELECT * FROM integrity_guard.orphans('o_child2', '{parent_id}', 'o_parent');
ALTER TABLE o_child2 DISABLE TRIGGER ALL;
INSERT INTO o_child2 VALUES (4, 60);
ALTER TABLE o_child2 ENABLE TRIGGER ALL;
SELECT * FROM integrity_guard.orphans('o_child2', '{parent_id}', 'o_parent') ORDER BY 1;

-- multi-column reference: a NULL part means no reference (MATCH SIMPLE);
-- a child without a primary key is keyed by ctid
CREATE TABLE o_mparent (a int, b int, PRIMARY KEY (a, b));
CREATE TABLE o_mchild (a int, b int);
INSERT INTO o_mparent VALUES (1, 1);
INSERT INTO o_mchild VALUES (1, 1), (1, 2), (NULL, 2), (2, NULL);
SELECT child_key ? 'ctid' AS by_ctid, reference FROM integrity_guard.orphans('o_mchild', '{a,b}', 'o_mparent');

-- bad inputs
SELECT pg_temp.err($$SELECT * FROM integrity_guard.orphans('o_child', '{parent}', 'o_parent')$$);
SELECT pg_temp.err($$SELECT * FROM integrity_guard.orphans('o_child', '{parent_id}', 'o_parent', '{ID}')$$);
SELECT pg_temp.err($$SELECT * FROM integrity_guard.orphans('o_child', '{note}', 'o_parent')$$);
SELECT pg_temp.err($$SELECT * FROM integrity_guard.orphans('o_child', '{parent_id,code}', 'o_parent')$$);
SELECT pg_temp.err($$SELECT * FROM integrity_guard.orphans('o_child', '{}', 'o_parent')$$);
SELECT pg_temp.err($$SELECT * FROM integrity_guard.orphans('o_child', '{parent_id,parent_id}', 'o_parent', '{id,id}')$$);
SELECT pg_temp.err($$SELECT * FROM integrity_guard.orphans('o_mchild', '{a}', 'o_mchild')$$);
SELECT pg_temp.err($$SELECT * FROM integrity_guard.orphans('o_child', '{parent_id}', 'o_parent_pkey')$$);
SELECT pg_temp.err($$SELECT * FROM integrity_guard.orphans(NULL, '{parent_id}', 'o_parent')$$);
SELECT pg_temp.err($$SELECT * FROM integrity_guard.orphans('o_child', '{"parent_id; DROP TABLE o_parent"}', 'o_parent')$$);
SELECT pg_temp.err($$CALL integrity_guard.fix_orphans('o_child', '{parent_id}', 'o_parent', action => 'cascade')$$);
SELECT pg_temp.err($$CALL integrity_guard.fix_orphans('o_child', '{parent_id}', 'o_parent', batch_rows => 0)$$);
CREATE TABLE o_nn (id int PRIMARY KEY, parent_id int NOT NULL);
SELECT pg_temp.err($$CALL integrity_guard.fix_orphans('o_nn', '{parent_id}', 'o_parent')$$);

-- fix_orphans outside a transaction block: batches that commit, progress
CALL integrity_guard.fix_orphans('o_child', '{parent_id}', 'o_parent', batch_rows => 2);
SELECT count(*) AS left_over FROM integrity_guard.orphans('o_child', '{parent_id}', 'o_parent');
SELECT count(*) AS children FROM o_child;
-- inside a transaction block: one batch, and it says so
BEGIN;
CALL integrity_guard.fix_orphans('o_child2', '{parent_id}', 'o_parent', action => 'delete', batch_rows => 1);
COMMIT;
SELECT * FROM o_child2 ORDER BY id;
ALTER TABLE o_child2 VALIDATE CONSTRAINT o_child2_fk;
-- nothing left: no incident
CALL integrity_guard.fix_orphans('o_child2', '{parent_id}', 'o_parent');
SELECT event_type, table_name, target, occurrences, detail
FROM integrity_guard.audit_log ORDER BY id;

-- privileges: the caller's own
CREATE ROLE repair_reader;
CREATE ROLE repair_writer;
GRANT SELECT ON o_child TO repair_reader, repair_writer;
GRANT SELECT ON o_parent TO repair_writer;
GRANT UPDATE (parent_id) ON o_child TO repair_writer;
UPDATE o_child SET parent_id = 77 WHERE id IN (1, 2);
SET ROLE repair_reader;
SELECT pg_temp.err($$SELECT * FROM integrity_guard.orphans('o_child', '{parent_id}', 'o_parent')$$);
SELECT pg_temp.err($$CALL integrity_guard.fix_orphans('o_child', '{parent_id}', 'o_parent')$$);
-- the audit shows it the incidents of tables it can read
SELECT count(*) AS visible FROM integrity_guard.audit_log;
RESET ROLE;
-- row-level security: a role sees and fixes only its rows
ALTER TABLE o_child ENABLE ROW LEVEL SECURITY;
CREATE POLICY o_child_own ON o_child USING (id = 1);
SET ROLE repair_writer;
SELECT * FROM integrity_guard.orphans('o_child', '{parent_id}', 'o_parent');
CALL integrity_guard.fix_orphans('o_child', '{parent_id}', 'o_parent');
RESET ROLE;
SELECT id, parent_id FROM o_child WHERE id IN (1, 2) ORDER BY id;
SELECT role_name, occurrences FROM integrity_guard.audit_log WHERE role_name = 'repair_writer';

DROP TABLE o_child, o_child2, o_parent, o_mchild, o_mparent, o_nn;
DROP ROLE repair_reader, repair_writer;
SELECT integrity_guard.purge('0') >= 0 AS emptied;
