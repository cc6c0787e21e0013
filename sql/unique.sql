-- guard_unique(): index ukinds, modes, UPDATE, dead tuples, audit, bad input
\set SHOW_CONTEXT never
SELECT integrity_guard.purge('0') >= 0 AS emptied;

-- Shows what an ORM sees of an error: SQLSTATE, message, detail, fields.
CREATE FUNCTION error_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text; con text; tab text; sch text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
        det = PG_EXCEPTION_DETAIL, con = CONSTRAINT_NAME, tab = TABLE_NAME,
        sch = SCHEMA_NAME;
    RETURN format('%s | %s | %s | %s.%s | %s', st, msg, det, sch, tab, con);
END $$;

-- Django's get_or_create target (seed 004): a unique (conference_id, app)
CREATE TABLE conference (id serial PRIMARY KEY, conference_id int NOT NULL,
                         app text NOT NULL, UNIQUE (conference_id, app));
INSERT INTO conference (conference_id, app) VALUES (1, 'web');
-- the server's own error, and the guarded one: the same to an ORM
SELECT error_of($$INSERT INTO conference (conference_id, app) VALUES (1, 'web')$$);
SELECT integrity_guard.guard_duplicates('conference');
SELECT error_of($$INSERT INTO conference (conference_id, app) VALUES (1, 'web')$$);
SELECT error_of($$INSERT INTO conference (id, conference_id, app) VALUES (1, 9, 'x')$$);
-- two duplicates of each other in one statement
SELECT error_of($$INSERT INTO conference (conference_id, app) VALUES (5, 'a'), (5, 'a')$$);
-- UPDATE: onto a taken key is a duplicate; keeping its own key is not
INSERT INTO conference (conference_id, app) VALUES (2, 'web');
SELECT error_of($$UPDATE conference SET conference_id = 1 WHERE conference_id = 2$$);
UPDATE conference SET app = app, conference_id = conference_id;
UPDATE conference SET id = id + 100;
SELECT id, conference_id, app FROM conference ORDER BY id;

-- a rejected duplicate never reaches the heap: no dead tuple, unlike the
-- unguarded twin, which leaves one per attempt
CREATE TABLE twin_plain (k int PRIMARY KEY);
CREATE TABLE twin_guarded (k int PRIMARY KEY);
SELECT integrity_guard.guard_duplicates('twin_guarded');
INSERT INTO twin_plain VALUES (1);
INSERT INTO twin_guarded VALUES (1);
DO $$
BEGIN
    FOR i IN 1..5 LOOP
        BEGIN INSERT INTO twin_plain VALUES (1); EXCEPTION WHEN unique_violation THEN NULL; END;
        BEGIN INSERT INTO twin_guarded VALUES (1); EXCEPTION WHEN unique_violation THEN NULL; END;
    END LOOP;
END $$;
INSERT INTO twin_plain VALUES (2);
INSERT INTO twin_guarded VALUES (2);
-- the next row's line pointer shows what the attempts left behind
SELECT (SELECT ctid FROM twin_plain WHERE k = 2) AS plain_next,
       (SELECT ctid FROM twin_guarded WHERE k = 2) AS guarded_next;

-- every kind of unique index
CREATE TABLE ukinds (id int PRIMARY KEY, email text, tenant int, slug text,
                    deleted bool NOT NULL DEFAULT false, a int, b int);
CREATE UNIQUE INDEX kinds_email_lower ON ukinds (lower(email));
CREATE UNIQUE INDEX kinds_live_slug ON ukinds (tenant, slug) WHERE NOT deleted;
CREATE UNIQUE INDEX kinds_ab_nnd ON ukinds (a, b) NULLS NOT DISTINCT;
SELECT integrity_guard.guard_duplicates('ukinds');
INSERT INTO ukinds VALUES (1, 'Ann@x.org', 1, 'home', false, 1, NULL);
-- expression index
SELECT error_of($$INSERT INTO ukinds (id, email) VALUES (2, 'ann@X.ORG')$$);
-- partial index: a live duplicate conflicts, a deleted one does not
SELECT error_of($$INSERT INTO ukinds (id, tenant, slug) VALUES (3, 1, 'home')$$);
INSERT INTO ukinds (id, tenant, slug, deleted) VALUES (4, 1, 'home', true);
-- NULLS NOT DISTINCT: (1, NULL) twice conflicts; plain NULLs never do
SELECT error_of($$INSERT INTO ukinds (id, a, b) VALUES (5, 1, NULL)$$);
INSERT INTO ukinds (id, email, a) VALUES (6, NULL, 6), (7, NULL, 7);
-- (NULL, NULL) is a value like any other under NULLS NOT DISTINCT
SELECT error_of($$INSERT INTO ukinds (id) VALUES (8)$$);
-- an UPDATE that brings a deleted row back into the partial index
SELECT error_of($$UPDATE ukinds SET deleted = false WHERE id = 4$$);
SELECT id, email, tenant, slug, deleted, a, b FROM ukinds ORDER BY id;

-- deferrable unique constraints are left to the server
CREATE TABLE deferred_u (k int UNIQUE DEFERRABLE INITIALLY DEFERRED);
SELECT error_of($$SELECT integrity_guard.guard_duplicates('deferred_u')$$);
CREATE TABLE mixed_u (k int UNIQUE DEFERRABLE INITIALLY DEFERRED, j int UNIQUE);
SELECT integrity_guard.guard_duplicates('mixed_u');
INSERT INTO mixed_u VALUES (1, 1);
BEGIN;
INSERT INTO mixed_u VALUES (1, 2);
UPDATE mixed_u SET k = 3 WHERE j = 2;
COMMIT;
SELECT * FROM mixed_u ORDER BY j;

-- mode=skip: the row is dropped and the statement goes on (RETURNING then
-- returns no row for it: for plain INSERT and COPY consumers)
CREATE TABLE consumed (message_id text PRIMARY KEY, body text);
SELECT integrity_guard.guard_duplicates('consumed', 'skip');
INSERT INTO consumed VALUES ('m1', 'first');
INSERT INTO consumed VALUES ('m1', 'replayed'), ('m2', 'second') RETURNING *;
COPY consumed FROM stdin;
m2	replayed again
m3	third
\.
SELECT * FROM consumed ORDER BY message_id;

-- constraint=NAME watches only the named indexes
CREATE TABLE only_some (id int PRIMARY KEY, code text UNIQUE);
CREATE TRIGGER g BEFORE INSERT OR UPDATE ON only_some FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.guard_unique('mode=skip', 'constraint=only_some_code_key');
INSERT INTO only_some VALUES (1, 'a');
INSERT INTO only_some VALUES (2, 'a');
SELECT error_of($$INSERT INTO only_some VALUES (1, 'b')$$);
SELECT * FROM only_some;

-- partitioned: the guard on the parent covers each partition's index; the
-- parent's constraint name selects the partitions' indexes
CREATE TABLE uevents (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE uevents_jan PARTITION OF uevents FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE uevents_feb PARTITION OF uevents FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TRIGGER g BEFORE INSERT ON uevents FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.guard_unique('mode=skip', 'constraint=uevents_pkey');
INSERT INTO uevents VALUES (1, '2024-01-05'), (1, '2024-01-05'), (1, '2024-02-05');
SELECT tableoid::regclass, * FROM uevents ORDER BY day;

-- the audit: one incident per statement, constraint and key
SELECT table_name, constraint_name, key, mode, occurrences
  FROM integrity_guard.duplicate_keys ORDER BY table_name, constraint_name, key;
SELECT count(*) = (SELECT count(*) FROM integrity_guard.audit_log WHERE event_type = 'duplicate_key')
  FROM integrity_guard.duplicate_key_attempts();
SELECT count(*) FROM integrity_guard.duplicate_key_attempts(rel => 'consumed');
-- a replay of many distinct keys writes at most 100 keyed incidents per
-- index and statement; the rest aggregate into one incident without a key
CREATE TABLE replayed (id int PRIMARY KEY);
SELECT integrity_guard.guard_duplicates('replayed', 'skip');
INSERT INTO replayed SELECT generate_series(1, 150);
INSERT INTO replayed SELECT generate_series(1, 160);
SELECT count(*) AS rows_kept FROM replayed;
SELECT key IS NOT NULL AS keyed, count(*) AS incidents, sum(occurrences) AS attempts
  FROM integrity_guard.duplicate_keys WHERE table_name = 'replayed'
 GROUP BY 1 ORDER BY 1;
-- without key values
SET integrity_guard.log_key_values = off;
INSERT INTO consumed VALUES ('m1', 'again');
RESET integrity_guard.log_key_values;
SELECT key IS NULL AS no_key FROM integrity_guard.duplicate_keys ORDER BY last_seen DESC LIMIT 1;

-- the get_or_create shape: INSERT in a savepoint, 23505, then get():
-- the attempt is recorded with the surrounding transaction
SELECT count(*) AS before FROM integrity_guard.duplicate_key_attempts(rel => 'conference') \gset
BEGIN;
SAVEPOINT get_or_create;
INSERT INTO conference (conference_id, app) VALUES (1, 'web');
ROLLBACK TO SAVEPOINT get_or_create;
SELECT id FROM conference WHERE conference_id = 1 AND app = 'web';
COMMIT;
SELECT count(*) - :before AS recorded
  FROM integrity_guard.duplicate_key_attempts(rel => 'conference');

-- a role that cannot read the table sees neither the key in the error
-- (as with the server's own error) nor the incident
CREATE ROLE regress_ig_blind;
GRANT INSERT ON conference TO regress_ig_blind;
GRANT USAGE ON SEQUENCE conference_id_seq TO regress_ig_blind;
SET ROLE regress_ig_blind;
SELECT error_of($$INSERT INTO conference (conference_id, app) VALUES (1, 'web')$$);
SELECT count(*) FROM integrity_guard.duplicate_keys;
RESET ROLE;
REVOKE ALL ON conference FROM regress_ig_blind;
REVOKE ALL ON SEQUENCE conference_id_seq FROM regress_ig_blind;
DROP ROLE regress_ig_blind;

-- bad input
CREATE TABLE no_unique (a int);
SELECT error_of($$SELECT integrity_guard.guard_duplicates('no_unique')$$);
SELECT error_of($$SELECT integrity_guard.guard_duplicates('conference')$$);
SELECT error_of($$SELECT integrity_guard.guard_duplicates('twin_plain', 'ignore')$$);
SELECT error_of($$SELECT integrity_guard.guard_duplicates('twin_plain', NULL)$$);
CREATE TABLE raw_u (k int PRIMARY KEY);
CREATE TRIGGER t BEFORE INSERT ON raw_u FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.guard_unique('constraint=nope');
SELECT error_of($$INSERT INTO raw_u VALUES (1)$$);
DROP TRIGGER t ON raw_u;
CREATE TRIGGER t BEFORE INSERT ON raw_u FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.guard_unique('k');
SELECT error_of($$INSERT INTO raw_u VALUES (1)$$);
DROP TRIGGER t ON raw_u;
CREATE TRIGGER t BEFORE INSERT ON raw_u FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.guard_unique('mode=raise', 'mode=skip');
SELECT error_of($$INSERT INTO raw_u VALUES (1)$$);
DROP TRIGGER t ON raw_u;
CREATE TRIGGER t AFTER INSERT ON raw_u FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.guard_unique();
SELECT error_of($$INSERT INTO raw_u VALUES (1)$$);
DROP TRIGGER t ON raw_u;
SELECT count(*) FROM raw_u;
SELECT table_name, kind, options, trigger_name FROM integrity_guard.guards
 WHERE kind = 'unique' ORDER BY table_name::text;

-- error precedence (issue 27): a duplicate that also breaks a CHECK, a NOT
-- NULL or a row-level security WITH CHECK policy gets
-- the error the server reports first, as on an unguarded twin (and, in skip
-- mode, as INSERT ... ON CONFLICT DO NOTHING)
CREATE TABLE prec (id int PRIMARY KEY, v int CHECK (v > 0), w int NOT NULL);
CREATE TABLE prec_twin (LIKE prec INCLUDING ALL);
CREATE TABLE prec_skip (LIKE prec INCLUDING ALL);
SELECT integrity_guard.guard_duplicates('prec');
SELECT integrity_guard.guard_duplicates('prec_skip', 'skip');
INSERT INTO prec VALUES (1, 1, 1), (2, 2, 2);
INSERT INTO prec_twin VALUES (1, 1, 1), (2, 2, 2);
INSERT INTO prec_skip VALUES (1, 1, 1), (2, 2, 2);
SELECT t, error_of(format($$INSERT INTO %s VALUES (1, -1, 1)$$, t)),
          error_of(format($$INSERT INTO %s VALUES (1, 1, NULL)$$, t)),
          error_of(format($$UPDATE %s SET id = 1, v = -2 WHERE id = 2$$, t)),
          error_of(format($$COPY %s FROM PROGRAM 'echo 1,-1,1' (FORMAT csv)$$, t))
  FROM unnest(ARRAY['prec', 'prec_twin']) t;
SELECT error_of($$INSERT INTO prec_skip VALUES (1, -1, 1)$$) AS skip,
       error_of($$INSERT INTO prec_twin VALUES (1, -1, 1) ON CONFLICT DO NOTHING$$) AS on_conflict;
-- a plain duplicate is still the guard's
SELECT error_of($$INSERT INTO prec VALUES (1, 1, 1)$$);
INSERT INTO prec_skip VALUES (1, 1, 1);
SELECT count(*) FROM prec_skip;
-- row-level security: a WITH CHECK policy the row breaks
CREATE ROLE regress_prec_writer;
CREATE TABLE prec_rls (id int PRIMARY KEY, owner name NOT NULL);
CREATE TABLE prec_rls_twin (LIKE prec_rls INCLUDING ALL);
SELECT integrity_guard.guard_duplicates('prec_rls');
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['prec_rls', 'prec_rls_twin'] LOOP
        EXECUTE format('INSERT INTO %I VALUES (1, %L)', t, 'someone');
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY mine ON %I USING (true) WITH CHECK (owner = current_user)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO regress_prec_writer', t);
    END LOOP;
END $$;
GRANT EXECUTE ON FUNCTION error_of(text) TO regress_prec_writer;
SET ROLE regress_prec_writer;
SELECT t, error_of(format($$INSERT INTO %s VALUES (1, 'someone')$$, t)),
          error_of(format($$INSERT INTO %s VALUES (1, current_user)$$, t))
  FROM unnest(ARRAY['prec_rls', 'prec_rls_twin']) t;
RESET ROLE;
DROP TABLE prec_rls, prec_rls_twin;
REVOKE EXECUTE ON FUNCTION error_of(text) FROM regress_prec_writer;
DROP ROLE regress_prec_writer;
