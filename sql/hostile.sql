-- Hostile roles (issue 22): no crash, no poison, no borrowed rights, no
-- forged incidents.  Several roles in one database: owners that differ,
-- REFERENCES grants, a schema without USAGE.  The captured-error and flush
-- cases need the durable pipeline: test/tap/080_hostile.pl.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_integrity_guard;
CREATE ROLE regress_h_alice;
CREATE ROLE regress_h_mallory;
CREATE ROLE regress_h_super SUPERUSER;
CREATE SCHEMA h_a AUTHORIZATION regress_h_alice;
CREATE SCHEMA h_m AUTHORIZATION regress_h_mallory;
GRANT CREATE ON DATABASE contrib_regression TO regress_h_mallory;
RESET client_min_messages;
CREATE FUNCTION h_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
GRANT EXECUTE ON FUNCTION h_try(text) TO PUBLIC;
CREATE VIEW h_incidents AS
  SELECT event_type, table_name, target, occurrences FROM integrity_guard.audit_log
  WHERE schema_name IN ('h_a', 'h_m');

-- 1. NULL arguments of a function PUBLIC may execute: a clear error, never
-- a crash (the next statement runs in the same backend)
SET ROLE regress_h_mallory;
SELECT h_try($$SELECT integrity_guard._repair_record('orphans_fixed', 'pg_class', NULL, NULL, 1)$$);
SELECT h_try($$SELECT integrity_guard._repair_record(NULL, 'pg_class', 'x', NULL, 1)$$);
SELECT h_try($$SELECT integrity_guard._repair_record('orphans_fixed', NULL, 'x', NULL, NULL)$$);
SELECT pg_backend_pid() = pg_backend_pid() AS same_backend;
-- ... nor an incident about a catalog or a table the role cannot write
SELECT h_try($$SELECT integrity_guard._repair_record('orphans_fixed', 'pg_class', 'x', NULL, 1)$$);
SELECT h_try($$SELECT integrity_guard._repair_record('counter_saturated', 'pg_class', 'x', NULL, 1)$$);
-- 2. a detail that is not a JSON object is refused where it enters
CREATE TABLE h_m.own (id int PRIMARY KEY, n int);
SELECT h_try($$SELECT integrity_guard._repair_record('orphans_fixed', 'h_m.own', 'x', '"boom"', 1)$$);
SELECT h_try($$SELECT integrity_guard._repair_record('orphans_fixed', 'h_m.own', 'x', '[1, 2]', 1)$$);
SELECT h_try($$SELECT integrity_guard._repair_record('orphans_fixed', 'h_m.own', 'x', '{}', -1)$$);
SELECT h_try($$SELECT integrity_guard._repair_record('orphans_fixed', 'h_m.own', 'x', '{"fixed": 1}', 1)$$);
-- counts that add up past bigint never make a reader fail
SELECT integrity_guard._repair_record('orphans_fixed', 'h_m.own', 'huge', '{}', 9223372036854775807);
SELECT integrity_guard._repair_record('orphans_fixed', 'h_m.own', 'huge', '{}', 9223372036854775807);
SELECT integrity_guard.flush() >= 0 AS flushed;
SELECT occurrences FROM integrity_guard.summary() WHERE target = 'huge';
RESET ROLE;
-- ... and by the table itself, whoever writes it
SELECT h_try($$INSERT INTO integrity_guard.audit_log (event_type, occurrences, first_seen, last_seen, detail)
               VALUES ('orphans_fixed', 1, now(), now(), '"boom"')$$);

-- 3. a child owned by someone else who has not consented is left to the
-- server: mallory, holding only REFERENCES on alice's guarded table, adds a
-- child whose trigger would make her superuser if it ran as the deleter
SET ROLE regress_h_alice;
CREATE TABLE h_a.a (id int PRIMARY KEY);
CREATE TABLE h_a.ac (id int, a_id int REFERENCES h_a.a);
INSERT INTO h_a.a SELECT generate_series(1, 6);
INSERT INTO h_a.ac VALUES (1, 1);
SELECT integrity_guard.guard_children('h_a.a');
GRANT USAGE ON SCHEMA h_a TO regress_h_mallory;
GRANT REFERENCES ON h_a.a TO regress_h_mallory;
SET ROLE regress_h_mallory;
CREATE TABLE h_m.mc (id int, a_id int REFERENCES h_a.a);
CREATE FUNCTION h_m.escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    ALTER ROLE regress_h_mallory SUPERUSER;
    RETURN NULL;
END $$;
CREATE TRIGGER escalate AFTER UPDATE OR DELETE ON h_m.mc
  FOR EACH STATEMENT EXECUTE FUNCTION h_m.escalate();
INSERT INTO h_m.mc VALUES (2, 2);
SET ROLE regress_h_super;
SELECT h_try('DELETE FROM h_a.a WHERE id = 2');
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_h_mallory';
SELECT * FROM h_m.mc;
-- the guard still acts on the child alice owns
DELETE FROM h_a.a WHERE id = 1;
SELECT * FROM h_a.ac;
-- 4. an empty child the deleter cannot reach (a schema without USAGE, a
-- table it may not SELECT) changes nothing: the delete the server accepts
-- succeeds
SET ROLE regress_h_mallory;
CREATE SCHEMA h_hidden;
CREATE TABLE h_hidden.empty (a_id int REFERENCES h_a.a);
CREATE TABLE h_m.noselect (a_id int REFERENCES h_a.a);
SET ROLE regress_h_alice;
SELECT h_try('DELETE FROM h_a.a WHERE id = 3');
-- with consent, the guard changes mallory's child as mallory: her trigger
-- runs with her own rights, and fails there
SET ROLE regress_h_mallory;
SELECT integrity_guard.consent_children('h_m.mc', 'h_a.a');
SELECT child, parent, owner FROM integrity_guard.children_consent ORDER BY 1;
SET ROLE regress_h_super;
SELECT left(h_try('DELETE FROM h_a.a WHERE id = 2'), 5) AS sqlstate;  -- the message differs by major
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_h_mallory';
DROP TRIGGER escalate ON h_m.mc;
-- a rule that rewrites the guard's statement: a clear error, no XX000
SET ROLE regress_h_mallory;
CREATE RULE swallow AS ON UPDATE TO h_m.mc DO INSTEAD NOTHING;
SET ROLE regress_h_super;
SELECT left(h_try('DELETE FROM h_a.a WHERE id = 2'), 5) AS sqlstate;
DROP RULE swallow ON h_m.mc;
DELETE FROM h_a.a WHERE id = 2;
SELECT * FROM h_m.mc;
-- a consent is its owner's only: alice cannot give it for mallory's table,
-- nor withdraw it, nor give one for a table that changed owner since
GRANT USAGE ON SCHEMA h_m TO regress_h_alice;
SET ROLE regress_h_alice;
SELECT h_try($$SELECT integrity_guard.consent_children('h_m.mc', 'h_a.a', false)$$);
SELECT h_try($$INSERT INTO integrity_guard.children_consent (parent, child, owner)
               VALUES ('h_a.a', 'h_m.noselect', 'regress_h_mallory')$$);
SELECT h_try($$DELETE FROM integrity_guard.children_consent$$);
-- ... nor lock the table that every DROP and guard configuration reads
SELECT h_try($$LOCK TABLE integrity_guard.children_consent IN ROW EXCLUSIVE MODE$$);
SELECT count(*) FROM integrity_guard.children_consent;
RESET ROLE;
INSERT INTO h_a.a VALUES (20); INSERT INTO h_m.mc VALUES (20, 20);
ALTER TABLE h_m.mc OWNER TO regress_h_super;
SET ROLE regress_h_alice;
SELECT h_try('DELETE FROM h_a.a WHERE id = 20');
RESET ROLE;
-- ... and holds again for the owner who gave it
ALTER TABLE h_m.mc OWNER TO regress_h_mallory;
SET ROLE regress_h_alice;
SELECT h_try('DELETE FROM h_a.a WHERE id = 20');
RESET ROLE;
SELECT id, a_id FROM h_m.mc ORDER BY id;
-- the reverse: an ordinary role's guard never acts on a superuser's table
-- that references it (the superuser chose NO ACTION: keep these rows)
SET ROLE regress_h_mallory;
CREATE TABLE h_m.p (id int PRIMARY KEY);
INSERT INTO h_m.p VALUES (1), (2);
CREATE TABLE h_m.pc (p_id int REFERENCES h_m.p);
GRANT REFERENCES ON h_m.p TO regress_h_super;
SELECT integrity_guard.guard_children('h_m.p', action => 'delete');
SET ROLE regress_h_super;
CREATE TABLE h_m.invoices (id int, p_id int REFERENCES h_m.p);
INSERT INTO h_m.invoices VALUES (1, 1);
SET ROLE regress_h_mallory;
SELECT h_try('DELETE FROM h_m.p WHERE id = 1');
DELETE FROM h_m.p WHERE id = 2;
RESET ROLE;
SELECT * FROM h_m.invoices;
-- an undeclared reference to another owner's table without consent: left
-- dangling, as without the guard, and a children_left incident says so,
-- without reading the child (its count would tell its contents)
SET ROLE regress_h_alice;
CREATE TABLE h_a.q (id int PRIMARY KEY);
INSERT INTO h_a.q VALUES (1), (2);
SET ROLE regress_h_mallory;
CREATE TABLE h_m.soft (id int, q_id int);
INSERT INTO h_m.soft VALUES (1, 1);
GRANT SELECT, UPDATE ON h_m.soft TO regress_h_alice;
SET ROLE regress_h_alice;
SELECT integrity_guard.guard_children('h_a.q', ARRAY['h_m.soft(q_id)']);
DELETE FROM h_a.q WHERE id = 1;
DELETE FROM h_a.q WHERE id = 2;   -- referenced by no child: the same incident
SELECT * FROM h_m.soft;
RESET ROLE;
SELECT integrity_guard.flush() >= 0 AS flushed;
-- (incidents of the deletes that failed above stay only with the durable
-- pipeline: test/tap/080_hostile.pl)
SELECT event_type, table_name, target, occurrences FROM h_incidents
WHERE event_type = 'children_left' AND target = 'h_m.soft(q_id)';

-- SET CONSTRAINTS naming a key never fails because of the guard's
-- companion: not for a decoy constraint another role gave its name, nor
-- for a caller without USAGE on the parent's schema
RESET ROLE;
CREATE SCHEMA h_shared;
GRANT USAGE, CREATE ON SCHEMA h_shared TO PUBLIC;
SET ROLE regress_h_alice;
CREATE TABLE h_shared.sp (id int PRIMARY KEY);
CREATE TABLE h_a.sc (pid int CONSTRAINT h_sc_fk REFERENCES h_shared.sp DEFERRABLE INITIALLY IMMEDIATE);
CREATE TABLE h_a.sc2 (pid int REFERENCES h_shared.sp DEFERRABLE INITIALLY DEFERRED);
SELECT integrity_guard.guard_children('h_shared.sp') IS NOT NULL AS attached;
SET ROLE regress_h_mallory;
CREATE TABLE h_shared.junk (x int CONSTRAINT "IG_integrity_guard_children_deferred" CHECK (x > 0));
SET ROLE regress_h_alice;
BEGIN;
SET CONSTRAINTS h_a.h_sc_fk DEFERRED;
COMMIT;
RESET ROLE;
DROP TABLE h_shared.junk;
REVOKE USAGE, CREATE ON SCHEMA h_shared FROM PUBLIC;
SET ROLE regress_h_alice;
BEGIN;
SET CONSTRAINTS h_a.h_sc_fk IMMEDIATE;
COMMIT;
RESET ROLE;

-- 6. the rewrite's recording functions record only what a guard attached
-- to that column could have recorded (they clamp only a value the column's
-- type cannot hold: anything else is the trigger's to clamp and record)
SET ROLE regress_h_mallory;
CREATE TABLE h_m.c (id int PRIMARY KEY, n int, r tstzrange);
SELECT integrity_guard.guard_counter('h_m.c', ARRAY['n'], min_value => 0);
SELECT integrity_guard._saturate(3000000000, 0, 5, 'h_m.c'::regclass, 2::smallint);   -- made-up bounds
SELECT integrity_guard._saturate(3000000000, 0, 2147483647, 'h_m.own'::regclass, 2::smallint); -- no guard there
SELECT integrity_guard._saturate(3000000000, 0, 2147483647, 'h_a.a'::regclass, 1::smallint);   -- not writable
SELECT integrity_guard._saturate(100, 0, 2147483647, 'h_m.c'::regclass, 2::smallint);  -- the type holds it
SELECT h_try($$SELECT integrity_guard._range_guarded(5, 1, '[)', 'clamp_upper', 'h_m.c'::regclass,
                                      3::smallint, NULL::int4range)$$);        -- no guard serves it
SELECT integrity_guard._range_guarded('2026-01-02'::timestamptz, '2026-01-01', '[)', 'clamp_upper',
                                      'h_m.c'::regclass, 3::smallint, NULL::tstzrange) IS NOT NULL AS built;
                                                                               -- no range guard on r
SELECT integrity_guard._saturate(3000000000, 0, 2147483647, 'h_m.c'::regclass, 2::smallint);  -- what the guard records
RESET ROLE;
SELECT integrity_guard.flush() >= 0 AS flushed;
SELECT event_type, table_name, target, occurrences FROM h_incidents
WHERE event_type = 'counter_saturated' ORDER BY 1, 2, 3;

-- smaller: the server's NULL rule, bounds that cannot hold
SELECT integrity_guard.saturating_add(NULL::int, 2, NULL, NULL) IS NULL AS null_in_null_out,
       integrity_guard.saturating_sub(5::smallint, NULL::smallint, 0, 10) IS NULL AS sub,
       integrity_guard.saturating_mul(NULL::bigint, NULL::bigint, NULL, NULL) IS NULL AS mul,
       integrity_guard.saturating_add(1::int, 2, NULL, NULL) AS three;
SELECT h_try($$SELECT integrity_guard._saturate(100, 10, 0, 'h_m.c'::regclass, 2::smallint)$$);
-- check(): the audit's own triggers are no guards, and a guard the caller
-- cannot inspect is at most a warning
-- (other suites leave tables behind in this database: the extension's own
-- ones are what a fresh install has; test/tap/080_hostile.pl checks one)
SELECT check_name, rel, target, status FROM integrity_guard.check()
WHERE status = 'critical'
  AND (SELECT c.relnamespace FROM pg_class c WHERE c.oid = rel) = 'integrity_guard'::regnamespace;
REVOKE USAGE ON SCHEMA h_m FROM regress_h_alice;
SET ROLE regress_h_alice;
SELECT check_name, rel, target, status, detail FROM integrity_guard.check()
WHERE check_name = 'guards' ORDER BY 2, 3;
RESET ROLE;

SET client_min_messages = warning;
DROP SCHEMA h_a, h_m, h_hidden, h_shared CASCADE;
DROP VIEW h_incidents;
DROP FUNCTION h_try(text);
DELETE FROM integrity_guard.audit_log;
REVOKE CREATE ON DATABASE contrib_regression FROM regress_h_mallory;
DROP ROLE regress_h_alice, regress_h_mallory, regress_h_super;
