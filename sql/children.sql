-- nullify_children(): forms, placements, bad input, security
\set SHOW_CONTEXT never
SELECT integrity_guard.purge('0') >= 0 AS emptied;

-- SENTRY-5DCR: MonitorIncident still references MonitorCheckIn; Django
-- declares the FK DEFERRABLE INITIALLY DEFERRED with NO ACTION
CREATE TABLE monitor_checkin (id bigint PRIMARY KEY);
CREATE TABLE monitor_incident (
    id bigint PRIMARY KEY,
    starting_checkin_id bigint REFERENCES monitor_checkin DEFERRABLE INITIALLY DEFERRED,
    resolving_checkin_id bigint REFERENCES monitor_checkin DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX ON monitor_incident (starting_checkin_id);
CREATE INDEX ON monitor_incident (resolving_checkin_id);
INSERT INTO monitor_checkin SELECT generate_series(1, 100);
INSERT INTO monitor_incident SELECT g, g, g + 1 FROM generate_series(1, 30) g;
-- before: the bulk clean-up fails (autocommit: at the end of the statement)
DELETE FROM monitor_checkin WHERE id IN (SELECT id FROM monitor_checkin ORDER BY id LIMIT 10);
-- inside atomic(): at COMMIT
BEGIN;
DELETE FROM monitor_checkin WHERE id IN (SELECT id FROM monitor_checkin ORDER BY id LIMIT 10);
COMMIT;
SELECT integrity_guard.guard_children('monitor_checkin');
SELECT table_name, kind, columns, options, trigger_name FROM integrity_guard.guards
 WHERE table_name = 'monitor_checkin'::regclass;
-- after: both forms succeed; the references are cleared
DELETE FROM monitor_checkin WHERE id IN (SELECT id FROM monitor_checkin ORDER BY id LIMIT 10);
BEGIN;
DELETE FROM monitor_checkin WHERE id IN (SELECT id FROM monitor_checkin ORDER BY id LIMIT 10);
COMMIT;
SELECT count(*) AS incidents,
       count(*) FILTER (WHERE starting_checkin_id IS NULL) AS starting_cleared,
       count(*) FILTER (WHERE resolving_checkin_id IS NULL) AS resolving_cleared
  FROM monitor_incident;
-- one incident per statement and reference
SELECT event_type, table_name, target, occurrences, detail
  FROM integrity_guard.audit_log ORDER BY target, occurrences;

-- immediate FKs, multi-column keys, NULL parent keys
CREATE TABLE account (org int, num int, PRIMARY KEY (org, num));
CREATE TABLE invoice (id int, org int, num int, note text,
                      FOREIGN KEY (org, num) REFERENCES account);
CREATE TABLE payment (id int, org int, num int,
                      FOREIGN KEY (org, num) REFERENCES account ON DELETE RESTRICT);
CREATE TABLE keepme (id int, org int, num int,
                     FOREIGN KEY (org, num) REFERENCES account ON DELETE CASCADE);
INSERT INTO account VALUES (1, 1), (1, 2), (2, 1);
INSERT INTO invoice VALUES (1, 1, 1, 'a'), (2, 1, 2, 'b'), (3, 2, 1, 'c'), (4, NULL, 1, 'd');
INSERT INTO payment VALUES (1, 1, 1), (2, 2, 1);
INSERT INTO keepme VALUES (1, 1, 1);
SELECT integrity_guard.guard_children('account');
SELECT columns FROM integrity_guard.guards WHERE table_name = 'account'::regclass;
DELETE FROM account WHERE org = 1;
SELECT * FROM invoice ORDER BY id;
SELECT * FROM payment ORDER BY id;
-- the CASCADE constraint was left to the server
SELECT count(*) FROM keepme;

-- action=delete, through a chain A <- B <- C, each guarded
CREATE TABLE chain_a (id int PRIMARY KEY);
CREATE TABLE chain_b (id int PRIMARY KEY, a_id int REFERENCES chain_a);
CREATE TABLE chain_c (id int PRIMARY KEY, b_id int NOT NULL REFERENCES chain_b);
INSERT INTO chain_a VALUES (1), (2);
INSERT INTO chain_b VALUES (10, 1), (11, 1), (12, 2);
INSERT INTO chain_c VALUES (100, 10), (101, 11), (102, 12);
SELECT integrity_guard.guard_children('chain_a', action => 'delete');
SELECT integrity_guard.guard_children('chain_b', action => 'delete');
DELETE FROM chain_a WHERE id = 1;
SELECT (SELECT array_agg(id ORDER BY id) FROM chain_b) AS b,
       (SELECT array_agg(id ORDER BY id) FROM chain_c) AS c;
SELECT table_name, event_type, target, occurrences FROM integrity_guard.audit_log
 WHERE table_name LIKE 'chain%' ORDER BY table_name;

-- self-referencing: parent and child deleted in one statement
CREATE TABLE node (id int PRIMARY KEY, parent_id int REFERENCES node);
INSERT INTO node VALUES (1, NULL), (2, 1), (3, 2), (4, 1), (5, 3);
SELECT integrity_guard.guard_children('node');
DELETE FROM node WHERE id IN (1, 2);
SELECT * FROM node ORDER BY id;
-- a BEFORE ROW placement cannot do this (doc/design.md, "Server facts", 3)
CREATE TABLE node2 (id int PRIMARY KEY, parent_id int REFERENCES node2);
INSERT INTO node2 VALUES (1, NULL), (2, 1);
CREATE TRIGGER before_row BEFORE DELETE ON node2 FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.nullify_children();
SELECT sqlstate_of($$DELETE FROM node2$$);
-- ... but is fine for one row at a time
DELETE FROM node2 WHERE id = 1;
SELECT * FROM node2;

-- every placement, hand-written
CREATE TABLE p_parent (id int PRIMARY KEY);
CREATE TABLE p_child (id int, p int REFERENCES p_parent);
CREATE TABLE p_child_deferred (id int, p int REFERENCES p_parent DEFERRABLE INITIALLY DEFERRED);
INSERT INTO p_parent SELECT generate_series(1, 6);
INSERT INTO p_child SELECT g, g FROM generate_series(1, 6) g;
INSERT INTO p_child_deferred SELECT g, g FROM generate_series(1, 6) g;
-- AFTER ROW per row (no transition table), named to sort before RI
CREATE TRIGGER "IG_per_row" AFTER DELETE ON p_parent FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.nullify_children();
DELETE FROM p_parent WHERE id = 1;
DROP TRIGGER "IG_per_row" ON p_parent;
-- placements that fire after the server's immediate FK checks are too late:
-- where a child still refers, the server's own error comes first; where
-- none does, the guard refuses, so the misplacement never goes unnoticed
INSERT INTO p_parent VALUES (0);
CREATE TRIGGER late AFTER DELETE ON p_parent FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.nullify_children();
SELECT sqlstate_of($$DELETE FROM p_parent WHERE id = 2$$);
\set VERBOSITY default
DELETE FROM p_parent WHERE id = 0;
DROP TRIGGER late ON p_parent;
CREATE TRIGGER "IG_stmt" AFTER DELETE ON p_parent REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION integrity_guard.nullify_children();
SELECT sqlstate_of($$DELETE FROM p_parent WHERE id = 2$$);
SELECT sqlstate_of($$DELETE FROM p_parent WHERE id = 0$$);
DROP TRIGGER "IG_stmt" ON p_parent;
-- ... fine for a deferred one
CREATE TRIGGER "IG_stmt" AFTER DELETE ON p_parent REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION integrity_guard.nullify_children('p_child_deferred(p)');
DELETE FROM p_child WHERE p = 2;
DELETE FROM p_parent WHERE id = 2;
DROP TRIGGER "IG_stmt" ON p_parent;
-- AFTER STATEMENT without a transition table, BEFORE STATEMENT, INSERT: refused
CREATE TRIGGER "IG_stmt" AFTER DELETE ON p_parent
  FOR EACH STATEMENT EXECUTE FUNCTION integrity_guard.nullify_children('p_child_deferred(p)');
SELECT sqlstate_of($$DELETE FROM p_parent WHERE id = 0$$);
DROP TRIGGER "IG_stmt" ON p_parent;
CREATE TRIGGER bs BEFORE DELETE ON p_parent
  FOR EACH STATEMENT EXECUTE FUNCTION integrity_guard.nullify_children();
SELECT sqlstate_of($$DELETE FROM p_parent WHERE id = 0$$);
DROP TRIGGER bs ON p_parent;
CREATE TRIGGER ins BEFORE INSERT ON p_parent
  FOR EACH ROW EXECUTE FUNCTION integrity_guard.nullify_children();
SELECT sqlstate_of($$INSERT INTO p_parent VALUES (7)$$);
DROP TRIGGER ins ON p_parent;
SELECT (SELECT array_agg(id ORDER BY id) FROM p_parent) AS parents,
       (SELECT array_agg(coalesce(p, 0) ORDER BY id) FROM p_child) AS child,
       (SELECT array_agg(coalesce(p, 0) ORDER BY id) FROM p_child_deferred) AS deferred_child;

-- partitioned parent and partitioned child
CREATE TABLE events (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (100);
CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM (100) TO (200);
CREATE TABLE attachments (id int PRIMARY KEY, event_id int REFERENCES events) PARTITION BY HASH (id);
CREATE TABLE attachments_0 PARTITION OF attachments FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE attachments_1 PARTITION OF attachments FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE notes (id int, att_id int);
INSERT INTO events VALUES (1), (2), (150), (151);
INSERT INTO attachments VALUES (1, 1), (2, 2), (3, 150), (4, 151);
INSERT INTO notes VALUES (1, 3), (2, 4);
SELECT integrity_guard.guard_children('events');
DELETE FROM events WHERE id IN (1, 150);
SELECT id, event_id FROM attachments ORDER BY id;
-- a partitioned parent with only undeclared references: row by row too, so
-- that a DELETE issued on a partition is guarded (issue 12.9)
-- (a reference needs a unique key of the parent, as a foreign key does:
-- two attachments may share an event_id, issue 25 point 12)
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('attachments', ARRAY['notes(att_id) = (event_id)'])$$);
SELECT integrity_guard.guard_children('attachments', ARRAY['notes(att_id) = (id)']);
SELECT trigger_name, columns FROM integrity_guard.guards WHERE table_name = 'attachments'::regclass;
SELECT tgname, tgtype & 1 = 1 AS for_row, tgoldtable FROM pg_trigger
 WHERE tgrelid IN ('events'::regclass, 'attachments'::regclass) AND tgname LIKE 'IG%' ORDER BY 1, 2;
DELETE FROM attachments WHERE event_id = 151;
SELECT * FROM notes ORDER BY id;

-- an inheritance child is guarded row by row (no transition table: the
-- server allows none on an inheritance child; issue 25 point 11)
CREATE TABLE inh_base (id int PRIMARY KEY);
CREATE TABLE inh_kid (id int PRIMARY KEY) INHERITS (inh_base);
CREATE TABLE inh_ref (id int, kid_id int REFERENCES inh_kid);
INSERT INTO inh_kid VALUES (1), (2);
INSERT INTO inh_ref VALUES (1, 1), (2, 2);
SELECT integrity_guard.guard_children('inh_kid');
SELECT tgname, tgtype & 1 = 1 AS for_row, tgoldtable FROM pg_trigger
 WHERE tgrelid = 'inh_kid'::regclass AND tgname LIKE 'IG%';
DELETE FROM inh_kid WHERE id = 1;
DELETE FROM inh_base WHERE id = 2;   -- through the parent: the child's row trigger fires
SELECT * FROM inh_ref ORDER BY id;
DROP TABLE inh_ref, inh_kid, inh_base;

-- hostile identifiers and other schemas
CREATE SCHEMA "Kid Schema";
CREATE TABLE "Parent ""P""" (id int PRIMARY KEY);
CREATE TABLE "Kid Schema"."Child; DROP TABLE node; --" (id int, "Parent Id" int REFERENCES "Parent ""P""");
CREATE TABLE "Kid Schema"."Soft kid" ("the ref" int);
INSERT INTO "Parent ""P""" VALUES (1), (2);
INSERT INTO "Kid Schema"."Child; DROP TABLE node; --" VALUES (1, 1), (2, 2);
INSERT INTO "Kid Schema"."Soft kid" VALUES (1), (2);
SELECT integrity_guard.guard_children('"Parent ""P"""',
    ARRAY['"Kid Schema"."Child; DROP TABLE node; --"("Parent Id")',
          '"Kid Schema"."Soft kid"("the ref") = (id)']);
DELETE FROM "Parent ""P""" WHERE id = 1;
SELECT * FROM "Kid Schema"."Child; DROP TABLE node; --" ORDER BY id;
SELECT * FROM "Kid Schema"."Soft kid" ORDER BY 1;
SELECT count(*) AS node_survived FROM node;
SELECT target FROM integrity_guard.audit_log WHERE table_name = 'Parent "P"' ORDER BY 1;

-- attach-time validation
CREATE TABLE lonely (id int PRIMARY KEY);
CREATE TABLE no_pk (code text);
CREATE TABLE kid (id int NOT NULL, ref int, t text, k1 int, k2 int);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely')$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('no_pk', ARRAY['kid(ref)'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid(id)'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid(t)'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid(k1, k2)'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid(k1) = (id, id)'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid(nope)'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['nokid(ref)'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid(ref'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid(ref) junk'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid()'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid(ref)'], 'cascade')$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid(ref)'], NULL)$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid(ref)', NULL])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('account', ARRAY['keepme(org, num)'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('monitor_checkin')$$);
SELECT integrity_guard.guard_children('lonely', ARRAY['kid(ref)']);
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('lonely', ARRAY['kid(k1)'])$$);
INSERT INTO lonely VALUES (1), (2), (3), (4);
CREATE TRIGGER t AFTER DELETE ON lonely FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.nullify_children('kid(ref)', 'mode=x');
SELECT sqlstate_of($$DELETE FROM lonely WHERE id = 4$$);
DROP TRIGGER t ON lonely;

-- a child altered or dropped later: the guard follows (issue 27) or lets
-- the reference go, and deletes of the parent go on
INSERT INTO kid VALUES (1, 1, 'x', 1, 1), (2, 2, 'y', 2, 2);
ALTER TABLE kid RENAME COLUMN ref TO ref_old;
DELETE FROM lonely WHERE id = 1;
SELECT ref_old FROM kid ORDER BY k1;
ALTER TABLE kid RENAME COLUMN ref_old TO ref;
-- a type the parent's key compares with: kept
ALTER TABLE kid ALTER COLUMN ref TYPE bigint;
SELECT columns FROM integrity_guard.guards WHERE table_name = 'lonely'::regclass;
-- one it cannot: the reference goes with it, and with its last, the guard
ALTER TABLE kid ALTER COLUMN ref TYPE text;
SELECT count(*) FROM integrity_guard.guards WHERE table_name = 'lonely'::regclass;
DELETE FROM lonely WHERE id = 2;
SELECT * FROM kid ORDER BY k1;
ALTER TABLE kid ALTER COLUMN ref TYPE bigint USING ref::bigint;
SELECT integrity_guard.guard_children('lonely', ARRAY['kid(ref)']);
DROP TABLE kid;
SELECT count(*) FROM integrity_guard.guards WHERE table_name = 'lonely'::regclass;
DELETE FROM lonely WHERE id = 3;
SELECT id FROM lonely ORDER BY id;

-- security: every child is changed as its owner, and only with its
-- consent; a role that may act as the child's owner (here a superuser)
-- gives it by attaching the guard (children_fire covers the other cases)
CREATE ROLE regress_ig_owner;
CREATE ROLE regress_ig_deleter;
CREATE TABLE sec_parent (id int PRIMARY KEY);
CREATE TABLE sec_declared (id int, p int REFERENCES sec_parent);
CREATE TABLE sec_soft (id int, p int);
ALTER TABLE sec_declared OWNER TO regress_ig_owner;
ALTER TABLE sec_soft OWNER TO regress_ig_owner;
INSERT INTO sec_parent VALUES (1), (2), (3);
INSERT INTO sec_declared VALUES (1, 1), (2, 2), (3, 3);
INSERT INTO sec_soft VALUES (1, 1), (2, 2), (3, 3);
GRANT SELECT, DELETE ON sec_parent TO regress_ig_deleter;
SELECT integrity_guard.guard_children('sec_parent', ARRAY['sec_declared(p)', 'sec_soft(p)']);
SET ROLE regress_ig_deleter;
-- no privilege of the deleting role on the children: the owner acts
SELECT sqlstate_of($$DELETE FROM sec_parent WHERE id = 1$$);
RESET ROLE;
GRANT SELECT, UPDATE ON sec_soft, sec_declared TO regress_ig_deleter;
SET ROLE regress_ig_deleter;
DELETE FROM sec_parent WHERE id = 1;
RESET ROLE;
SELECT (SELECT array_agg(coalesce(p, 0) ORDER BY id) FROM sec_declared) AS declared,
       (SELECT array_agg(coalesce(p, 0) ORDER BY id) FROM sec_soft) AS soft;
-- row-level security on the child binds other roles, not its owner
ALTER TABLE sec_soft ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_odd ON sec_soft USING (id % 2 = 1);
SET ROLE regress_ig_deleter;
DELETE FROM sec_parent WHERE id IN (2, 3);
RESET ROLE;
SELECT (SELECT array_agg(coalesce(p, 0) ORDER BY id) FROM sec_declared) AS declared,
       (SELECT array_agg(coalesce(p, 0) ORDER BY id) FROM sec_soft) AS soft;
-- attaching as a role that may not act as the child's owner: the child is
-- left to the server until its owner consents
CREATE TABLE sec_parent2 (id int PRIMARY KEY);
ALTER TABLE sec_parent2 OWNER TO regress_ig_deleter;
REVOKE UPDATE ON sec_soft FROM regress_ig_deleter;
SET ROLE regress_ig_deleter;
SELECT sqlstate_of($$SELECT integrity_guard.guard_children('sec_parent2', ARRAY['sec_soft(p)'])$$);
RESET ROLE;
DROP TABLE sec_parent, sec_parent2, sec_declared, sec_soft;
DROP ROLE regress_ig_owner;
DROP ROLE regress_ig_deleter;

-- one incident per statement and reference, with the rows changed
CREATE TABLE big_parent (id int PRIMARY KEY);
CREATE TABLE big_child (id int, p int REFERENCES big_parent);
CREATE INDEX ON big_child (p);
INSERT INTO big_parent SELECT generate_series(1, 10000);
INSERT INTO big_child SELECT g, (g % 10000) + 1 FROM generate_series(1, 30000) g;
SELECT integrity_guard.guard_children('big_parent');
DELETE FROM big_parent WHERE id <= 5000;
SELECT target, occurrences FROM integrity_guard.audit_log WHERE table_name = 'big_parent';
SELECT count(*) FILTER (WHERE p IS NULL) FROM big_child;
-- the guard's own cost of a repeat: a second, empty delete records nothing
DELETE FROM big_parent WHERE id <= 5000;
SELECT count(*) FROM integrity_guard.audit_log WHERE table_name = 'big_parent';
-- a fresh backend: the library is loaded by the first trigger call, in the
-- middle of this DELETE, and each row runs a nested UPDATE; still one
-- incident for the statement
CREATE TABLE row_parent (id int PRIMARY KEY);
CREATE TABLE row_child (id int, p int REFERENCES row_parent);
INSERT INTO row_parent SELECT generate_series(1, 1000);
INSERT INTO row_child SELECT g, g FROM generate_series(1, 1000) g;
CREATE TRIGGER "IG_per_row" AFTER DELETE ON row_parent FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.nullify_children();
\c -
DELETE FROM row_parent;
SELECT count(*) AS incidents, sum(occurrences) FROM integrity_guard.audit_log
 WHERE table_name = 'row_parent';
