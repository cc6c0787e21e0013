-- nullify_children() at fire time (issues 12 and 13): deferred foreign keys,
-- partition moves, NOT NULL added later, inheritance, replica mode, and as
-- whom the guard writes
\set SHOW_CONTEXT never
CREATE FUNCTION cf_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
CREATE SCHEMA cf;
SET search_path = cf, public;

-- 12.5: a DEFERRABLE INITIALLY DEFERRED key (Django's) is acted on when the
-- server checks it, and only for what still dangles then
CREATE TABLE dparent (id int PRIMARY KEY);
CREATE TABLE dchild (id int PRIMARY KEY,
                     pid int CONSTRAINT dchild_pid_fk REFERENCES dparent DEFERRABLE INITIALLY DEFERRED);
INSERT INTO dparent SELECT generate_series(1, 20);
INSERT INTO dchild SELECT g, g FROM generate_series(1, 20) g;
SELECT integrity_guard.guard_children('dparent');
SELECT trigger_name FROM integrity_guard.guards WHERE table_name = 'dparent'::regclass ORDER BY 1;
-- children re-pointed before commit keep their new parent
BEGIN;
DELETE FROM dparent WHERE id = 1;
UPDATE dchild SET pid = 2 WHERE pid = 1;
COMMIT;
-- a parent inserted again with the same key keeps its children
BEGIN;
DELETE FROM dparent WHERE id = 3;
INSERT INTO dparent VALUES (3);
COMMIT;
-- children the application deleted itself stay deleted, nothing else moves
BEGIN;
DELETE FROM dparent WHERE id = 4;
DELETE FROM dchild WHERE pid = 4;
COMMIT;
-- left dangling: untouched inside the transaction, cleared at commit
BEGIN;
DELETE FROM dparent WHERE id = 5;
SELECT pid FROM dchild WHERE id = 5;
COMMIT;
SELECT pid FROM dchild WHERE id = 5;
-- a re-point rolled back to a savepoint: cleared at commit
BEGIN;
DELETE FROM dparent WHERE id = 6;
SAVEPOINT s;
UPDATE dchild SET pid = 2 WHERE pid = 6;
ROLLBACK TO SAVEPOINT s;
COMMIT;
-- SET CONSTRAINTS ... IMMEDIATE: cleared then, before the server's check
BEGIN;
DELETE FROM dparent WHERE id = 7;
SET CONSTRAINTS ALL IMMEDIATE;
SELECT pid FROM dchild WHERE id = 7;
ROLLBACK;
BEGIN;
SET CONSTRAINTS ALL IMMEDIATE;
DELETE FROM dparent WHERE id = 7;
SELECT pid FROM dchild WHERE id = 7;
COMMIT;
-- ... naming only the foreign key, unqualified and qualified
BEGIN;
DELETE FROM dparent WHERE id = 8;
SET CONSTRAINTS dchild_pid_fk IMMEDIATE;
SELECT pid FROM dchild WHERE id = 8;
DELETE FROM dparent WHERE id = 9;
SET CONSTRAINTS cf.dchild_pid_fk IMMEDIATE;
SELECT pid FROM dchild WHERE id = 9;
COMMIT;
-- ... and a check set immediate again, after the DELETE and a re-point
BEGIN;
DELETE FROM dparent WHERE id = 10;
UPDATE dchild SET pid = 11 WHERE pid = 10;
SET CONSTRAINTS dchild_pid_fk IMMEDIATE;
COMMIT;
-- ... and back to DEFERRED: a later re-point still wins
BEGIN;
SET CONSTRAINTS dchild_pid_fk IMMEDIATE;
SET CONSTRAINTS dchild_pid_fk DEFERRED;
DELETE FROM dparent WHERE id = 12;
UPDATE dchild SET pid = 13 WHERE pid = 12;
COMMIT;
SELECT id, pid FROM dchild WHERE id <= 12 ORDER BY id;
-- a deferrable companion named after the server's checks is refused
CREATE TABLE dparent2 (id int PRIMARY KEY);
CREATE TABLE dchild2 (id int, pid int REFERENCES dparent2 DEFERRABLE INITIALLY DEFERRED);
INSERT INTO dparent2 VALUES (1);
CREATE CONSTRAINT TRIGGER zz_late AFTER DELETE ON dparent2 DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION integrity_guard.nullify_children();
BEGIN;
DELETE FROM dparent2;
SELECT cf_try('SET CONSTRAINTS ALL IMMEDIATE');
ROLLBACK;
DROP TABLE dchild2, dparent2;

-- 12.6: an UPDATE that moves a parent row to another partition is an
-- update of its key, as for the server: 23503, children untouched
CREATE TABLE mparent (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE mparent_1 PARTITION OF mparent FOR VALUES FROM (0) TO (100);
CREATE TABLE mparent_2 PARTITION OF mparent FOR VALUES FROM (100) TO (200);
CREATE TABLE mchild (id int, pid int REFERENCES mparent);
INSERT INTO mparent VALUES (1, 'a'), (2, 'b'), (3, 'c');
INSERT INTO mchild VALUES (1, 1), (3, 3);
SELECT integrity_guard.guard_children('mparent');
SELECT cf_try('UPDATE mparent SET id = 101 WHERE id = 1');
-- a moved row nobody references just moves
UPDATE mparent SET id = 102 WHERE id = 2;
UPDATE mparent SET v = 'c2' WHERE id = 3;
SELECT tableoid::regclass, * FROM mparent ORDER BY id;
SELECT * FROM mchild ORDER BY id;

-- 12.8: NOT NULL added to a child column after attach fails only a delete
-- that has a child to clear, naming the guard, with the fix in the hint
CREATE TABLE nparent (id int PRIMARY KEY);
CREATE TABLE nchild (id int, pid int REFERENCES nparent);
INSERT INTO nparent VALUES (1), (2), (3);
INSERT INTO nchild VALUES (1, 1);
SELECT integrity_guard.guard_children('nparent');
ALTER TABLE nchild ALTER COLUMN pid SET NOT NULL;
DELETE FROM nparent WHERE id = 2;
DELETE FROM nparent WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
-- the set-based placement says the same
DELETE FROM nparent WHERE id IN (1, 3);
SELECT (SELECT array_agg(id ORDER BY id) FROM nparent) AS parents,
       (SELECT array_agg(pid) FROM nchild) AS children;

-- 12.9: an inheritance parent whose DELETE also removes inheritance
-- children's rows keeps clearing on later deletes
CREATE TABLE iparent (id int PRIMARY KEY);
CREATE TABLE iparent_kid () INHERITS (iparent);
CREATE TABLE ichild (id int, pid int REFERENCES iparent);
INSERT INTO iparent SELECT generate_series(1, 6);
INSERT INTO iparent_kid VALUES (100), (101);
INSERT INTO ichild SELECT g, g FROM generate_series(1, 6) g;
SELECT integrity_guard.guard_children('iparent');
DELETE FROM iparent WHERE id IN (1, 100);
DELETE FROM iparent WHERE id = 2;
DELETE FROM iparent WHERE id IN (3, 4, 101);
DELETE FROM iparent WHERE id = 5;
SELECT id, pid FROM ichild ORDER BY id;
-- a partitioned parent: a DELETE on a partition is guarded too
CREATE TABLE sparent (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE sparent_1 PARTITION OF sparent FOR VALUES FROM (0) TO (100);
CREATE TABLE sparent_2 PARTITION OF sparent FOR VALUES FROM (100) TO (200);
CREATE TABLE schild (id int, pid int REFERENCES sparent DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE snote (id int, pid int);
INSERT INTO sparent VALUES (1), (2), (101), (102);
INSERT INTO schild VALUES (1, 1), (2, 2), (3, 101), (4, 102);
INSERT INTO snote VALUES (1, 1), (2, 101);
SELECT integrity_guard.guard_children('sparent', ARRAY['schild(pid)', 'snote(pid)']);
DELETE FROM sparent_1 WHERE id = 1;
DELETE FROM sparent_2 WHERE id = 101;
-- ... and after SET CONSTRAINTS ALL IMMEDIATE, through the parent
BEGIN;
SET CONSTRAINTS ALL IMMEDIATE;
DELETE FROM sparent WHERE id IN (2, 102);
COMMIT;
SELECT (SELECT array_agg(coalesce(pid, 0) ORDER BY id) FROM schild) AS schild,
       (SELECT array_agg(coalesce(pid, 0) ORDER BY id) FROM snote) AS snote;

-- 12.10: session_replication_role = replica: like the server's own RI
-- triggers, the guard does not fire (a subscriber applies the publisher's
-- own child updates); a guarded and a native twin end the same
CREATE TABLE rparent_native (id int PRIMARY KEY);
CREATE TABLE rchild_native (id int, pid int REFERENCES rparent_native ON DELETE SET NULL);
CREATE TABLE rparent (id int PRIMARY KEY);
CREATE TABLE rchild (id int, pid int REFERENCES rparent);
INSERT INTO rparent_native VALUES (1), (2);
INSERT INTO rparent VALUES (1), (2);
INSERT INTO rchild_native VALUES (1, 1), (2, 2);
INSERT INTO rchild VALUES (1, 1), (2, 2);
SELECT integrity_guard.guard_children('rparent');
SET session_replication_role = replica;
DELETE FROM rparent_native WHERE id = 1;
DELETE FROM rparent WHERE id = 1;
RESET session_replication_role;
DELETE FROM rparent_native WHERE id = 2;
DELETE FROM rparent WHERE id = 2;
SELECT (SELECT array_agg(coalesce(pid, 0) ORDER BY id) FROM rchild_native) AS native,
       (SELECT array_agg(coalesce(pid, 0) ORDER BY id) FROM rchild) AS guarded;
-- ENABLE ALWAYS makes it fire in replica mode as well
ALTER TABLE rparent ENABLE ALWAYS TRIGGER "IG_integrity_guard_children";
INSERT INTO rparent VALUES (3); INSERT INTO rchild VALUES (3, 3);
SET session_replication_role = replica;
DELETE FROM rparent WHERE id = 3;
RESET session_replication_role;
SELECT pid FROM rchild WHERE id = 3;

-- 13.1, 13.2: as whom the guard writes
CREATE ROLE regress_cf_parent_owner;
CREATE ROLE regress_cf_child_owner;
CREATE ROLE regress_cf_deleter;
CREATE ROLE regress_cf_trigger;
CREATE ROLE regress_cf_deleter2;
CREATE SCHEMA cf_private;
GRANT USAGE ON SCHEMA cf TO PUBLIC;
GRANT CREATE ON SCHEMA cf TO regress_cf_parent_owner, regress_cf_child_owner;
-- a child owned by another role that has not consented: the guard leaves
-- it to the server, whose foreign key error stands (nothing lost), and
-- never writes it as the deleting role
SET ROLE regress_cf_parent_owner;
CREATE TABLE cf.oparent (id int PRIMARY KEY);
GRANT SELECT, DELETE ON cf.oparent TO regress_cf_deleter, regress_cf_deleter2;
GRANT REFERENCES, TRIGGER ON cf.oparent TO regress_cf_child_owner, regress_cf_trigger;
INSERT INTO cf.oparent SELECT generate_series(1, 10);
SET ROLE regress_cf_child_owner;
CREATE TABLE cf.ochild (id int, pid int REFERENCES cf.oparent);
INSERT INTO cf.ochild SELECT g, g FROM generate_series(1, 10) g;
SET ROLE regress_cf_parent_owner;
SELECT integrity_guard.guard_children('cf.oparent', action => 'delete');
SET ROLE regress_cf_deleter;
SELECT cf_try('DELETE FROM cf.oparent WHERE id = 1');
-- privileges of the deleting role on the child change nothing
SET ROLE regress_cf_child_owner;
GRANT SELECT, DELETE ON cf.ochild TO regress_cf_deleter;
SET ROLE regress_cf_deleter;
SELECT cf_try('DELETE FROM cf.oparent WHERE id = 1');
-- the child's owner consents: the guard deletes as that owner, so the
-- child's row-level security (which binds others, not its owner) and the
-- deleting role's privileges do not matter
SET ROLE regress_cf_child_owner;
REVOKE ALL ON cf.ochild FROM regress_cf_deleter;
ALTER TABLE cf.ochild ENABLE ROW LEVEL SECURITY;
CREATE POLICY below_five ON cf.ochild USING (id < 5);
SELECT integrity_guard.consent_children('cf.ochild', 'cf.oparent');
SET ROLE regress_cf_deleter;
DELETE FROM cf.oparent WHERE id = 1;
RESET ROLE;
SELECT (SELECT array_agg(id ORDER BY id) FROM cf.oparent) AS parents,
       (SELECT array_agg(id ORDER BY id) FROM cf.ochild) AS children;
SELECT integrity_guard.unguard('cf.oparent');
-- a hand-written trigger by a role with TRIGGER on the parent only: the
-- consent is the child owner's for the parent, whoever wrote the trigger
SET ROLE regress_cf_trigger;
CREATE TRIGGER "IG_mine" AFTER DELETE ON cf.oparent FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.nullify_children('action=delete');
SET ROLE regress_cf_deleter2;
SELECT cf_try('DELETE FROM cf.oparent WHERE id = 2');
RESET ROLE;
SELECT (SELECT array_agg(id ORDER BY id) FROM cf.ochild) AS children;
-- the consent withdrawn: left to the server from the next firing on
SET ROLE regress_cf_child_owner;
SELECT integrity_guard.consent_children('cf.ochild', 'cf.oparent', allow => false);
SET ROLE regress_cf_deleter2;
SELECT cf_try('DELETE FROM cf.oparent WHERE id = 3');
RESET ROLE;
SELECT (SELECT array_agg(id ORDER BY id) FROM cf.ochild) AS children;
DROP TRIGGER "IG_mine" ON cf.oparent;
DROP TABLE cf.ochild;
-- the child's owner also owns the parent: the guard writes as that owner,
-- and the deleting role needs no USAGE on the child's schema
GRANT USAGE, CREATE ON SCHEMA cf_private TO regress_cf_parent_owner;
SET ROLE regress_cf_parent_owner;
CREATE TABLE cf_private.pchild (id int, pid int REFERENCES cf.oparent);
INSERT INTO cf_private.pchild SELECT g, g FROM generate_series(3, 10) g;
CREATE TABLE cf_private.soft (id int, pid int);
INSERT INTO cf_private.soft SELECT g, g FROM generate_series(3, 10) g;
GRANT SELECT, UPDATE ON cf_private.soft TO regress_cf_deleter, regress_cf_deleter2;
SELECT integrity_guard.guard_children('cf.oparent', ARRAY['cf_private.pchild(pid)']);
SET ROLE regress_cf_deleter;
DELETE FROM cf.oparent WHERE id = 3;
RESET ROLE;
SELECT pid FROM cf_private.pchild WHERE id = 3;
SELECT integrity_guard.unguard('cf.oparent');
-- an undeclared reference in that schema: changed as its owner too, so
-- neither deleting role needs USAGE on the schema or UPDATE on the child
GRANT USAGE ON SCHEMA cf_private TO regress_cf_deleter;
SET ROLE regress_cf_parent_owner;
SELECT integrity_guard.guard_children('cf.oparent', ARRAY['cf_private.pchild(pid)', 'cf_private.soft(pid)']);
SET ROLE regress_cf_deleter;
DELETE FROM cf.oparent WHERE id = 4;
SET ROLE regress_cf_deleter2;
SELECT cf_try('DELETE FROM cf.oparent WHERE id = 5');
RESET ROLE;
SELECT (SELECT array_agg(coalesce(pid, 0) ORDER BY id) FROM cf_private.soft) AS soft,
       (SELECT array_agg(coalesce(pid, 0) ORDER BY id) FROM cf_private.pchild) AS pchild;
DROP SCHEMA cf_private CASCADE;
DROP TABLE cf.oparent;
REVOKE ALL ON SCHEMA cf FROM PUBLIC, regress_cf_parent_owner, regress_cf_child_owner;
DROP ROLE regress_cf_parent_owner, regress_cf_child_owner, regress_cf_deleter,
          regress_cf_deleter2, regress_cf_trigger;

RESET search_path;
DROP SCHEMA cf CASCADE;
DROP FUNCTION cf_try(text);
