-- Who sees which incident (issue 13): tied to the relation that raised it,
-- never raising because of another role's incident, key values under the
-- rule of the server's own error DETAIL.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_integrity_guard;
CREATE ROLE regress_ig_p_owner1;
CREATE ROLE regress_ig_p_owner2;
CREATE ROLE regress_ig_p_reader;
CREATE ROLE regress_ig_p_stats IN ROLE pg_read_all_stats;
GRANT CREATE ON SCHEMA public TO regress_ig_p_owner1, regress_ig_p_owner2;
RESET client_min_messages;
-- what a role sees, by table and event type
CREATE FUNCTION seen(role name) RETURNS TABLE (tab text, ev text, n bigint)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', role);
    RETURN QUERY SELECT coalesce(e.schema_name || '.' || e.table_name, '-'), e.event_type, sum(e.occurrences)::bigint
                 FROM integrity_guard.events() e
                 WHERE e.table_name LIKE 'privs\_%' OR e.schema_name = 'privs_hidden'
                 GROUP BY 1, 2 ORDER BY 1, 2;
END $$;

-- 4. an incident in a schema the reader may not use
CREATE SCHEMA privs_hidden AUTHORIZATION regress_ig_p_owner1;
SET ROLE regress_ig_p_owner1;
CREATE TABLE privs_hidden.c (id int PRIMARY KEY, n int);
SELECT integrity_guard.guard_counter('privs_hidden.c', ARRAY['n'], 10, 0);
INSERT INTO privs_hidden.c VALUES (1, 50);
CREATE TABLE public.privs_open (id int PRIMARY KEY, n int);
SELECT integrity_guard.guard_counter('public.privs_open', ARRAY['n'], 10, 0);
INSERT INTO public.privs_open VALUES (1, 50);
GRANT SELECT ON public.privs_open TO regress_ig_p_reader;
RESET ROLE;
SELECT * FROM seen('regress_ig_p_reader');
SET ROLE regress_ig_p_reader;
SELECT table_name, event_type FROM integrity_guard.summary() WHERE table_name LIKE 'privs\_%' OR schema_name = 'privs_hidden';
SELECT table_name FROM integrity_guard.recent_events WHERE table_name LIKE 'privs\_%' OR schema_name = 'privs_hidden';
SELECT count(*) FROM integrity_guard.duplicate_keys WHERE table_name LIKE 'privs\_%' OR schema_name = 'privs_hidden';
SELECT table_name FROM integrity_guard.audit_log WHERE table_name LIKE 'privs\_%' OR schema_name = 'privs_hidden';
RESET ROLE;
SELECT * FROM seen('regress_ig_p_stats');

-- 5. dropped and recreated under the same name by another owner
SET ROLE regress_ig_p_owner1;
CREATE TABLE public.privs_victim (id int PRIMARY KEY, n int);
SELECT integrity_guard.guard_counter('public.privs_victim', ARRAY['n'], 10, 0);
INSERT INTO public.privs_victim VALUES (1, 99);
DROP TABLE public.privs_victim;
RESET ROLE;
SET ROLE regress_ig_p_owner2;
CREATE TABLE public.privs_victim (id int PRIMARY KEY, n int);
GRANT SELECT ON public.privs_victim TO regress_ig_p_reader;
RESET ROLE;
-- the new table's reader does not see the old table's incident ...
SELECT * FROM seen('regress_ig_p_reader') WHERE tab = 'public.privs_victim';
SET ROLE regress_ig_p_reader;
SELECT count(*) FROM integrity_guard.events(rel => 'public.privs_victim');
RESET ROLE;
-- ... a gone relation's incident is for superusers and pg_read_all_stats
SELECT * FROM seen('regress_ig_p_stats') WHERE tab = 'public.privs_victim';
SELECT * FROM seen('regress_ig_p_owner2') WHERE tab = 'public.privs_victim';

-- 5. renamed: the incident follows its table, not the name
SET ROLE regress_ig_p_owner1;
CREATE TABLE public.privs_old (id int PRIMARY KEY, n int);
SELECT integrity_guard.guard_counter('public.privs_old', ARRAY['n'], 10, 0);
INSERT INTO public.privs_old VALUES (1, 99);
ALTER TABLE public.privs_old RENAME TO privs_new;
GRANT SELECT ON public.privs_new TO regress_ig_p_reader;
RESET ROLE;
SET ROLE regress_ig_p_owner2;
CREATE TABLE public.privs_old (id int PRIMARY KEY, n int);
RESET ROLE;
SELECT * FROM seen('regress_ig_p_owner2') WHERE tab = 'public.privs_old';
SELECT * FROM seen('regress_ig_p_reader') WHERE tab IN ('public.privs_old', 'public.privs_new');
SET ROLE regress_ig_p_reader;
SELECT count(*) FROM integrity_guard.events(rel => 'public.privs_new');
RESET ROLE;

-- 5. a temporary table: its incidents are its owner's, and gone with it
SET ROLE regress_ig_p_owner1;
CREATE TEMP TABLE tmp_c (id int PRIMARY KEY, n int);
SELECT integrity_guard.guard_counter('tmp_c', ARRAY['n'], 10, 0);
INSERT INTO tmp_c VALUES (1, 99);
SELECT count(*) FROM integrity_guard.events(rel => 'tmp_c');
DROP TABLE tmp_c;
CREATE TEMP TABLE tmp_c (id int PRIMARY KEY, n int);
SELECT count(*) FROM integrity_guard.events(rel => 'tmp_c');
DROP TABLE tmp_c;
RESET ROLE;

-- 6. key values: SELECT on every key column, and no row-level security in force
SET ROLE regress_ig_p_owner1;
CREATE TABLE public.privs_keyed (id int PRIMARY KEY, code text UNIQUE, note text);
SELECT integrity_guard.guard_duplicates('public.privs_keyed', 'skip');
INSERT INTO public.privs_keyed VALUES (1, 'secret-code', 'x');
INSERT INTO public.privs_keyed VALUES (2, 'secret-code', 'y');
GRANT SELECT ON public.privs_keyed TO regress_ig_p_reader;
GRANT SELECT (note) ON public.privs_keyed TO regress_ig_p_owner2;
RESET ROLE;
CREATE FUNCTION keys_seen(role name) RETURNS TABLE (k text, via_view text, raw bigint)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', role);
    RETURN QUERY SELECT e.detail->>'key',
                        (SELECT d.key FROM integrity_guard.duplicate_keys d WHERE d.table_name = 'privs_keyed'),
                        (SELECT count(*) FROM integrity_guard.audit_keys k
                         JOIN integrity_guard.audit_log a USING (id) WHERE a.table_name = 'privs_keyed')
                 FROM integrity_guard.events(rel => 'public.privs_keyed') e;
END $$;
SELECT * FROM keys_seen('regress_ig_p_owner1');
SELECT * FROM keys_seen('regress_ig_p_reader');
-- a column privilege on another column: the incident, not the key
SELECT * FROM keys_seen('regress_ig_p_owner2');
GRANT SELECT (code) ON public.privs_keyed TO regress_ig_p_owner2;
SELECT * FROM keys_seen('regress_ig_p_owner2');
-- pg_read_all_stats sees incidents, not key values it could not read
SELECT * FROM keys_seen('regress_ig_p_stats');
-- row-level security in force for the reader: no key values
ALTER TABLE public.privs_keyed ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_one ON public.privs_keyed FOR SELECT USING (id = 1);
SELECT * FROM keys_seen('regress_ig_p_reader');
SELECT * FROM keys_seen('regress_ig_p_owner1');
SELECT * FROM keys_seen(current_user);
-- the stored row itself carries no key; audit_keys holds it
SELECT detail ? 'key' AS key_in_row, key_columns FROM integrity_guard.audit_log WHERE table_name = 'privs_keyed';
SELECT key_values FROM integrity_guard.audit_keys k JOIN integrity_guard.audit_log a USING (id)
 WHERE a.table_name = 'privs_keyed';
-- a row loaded from a dump (of 1.1: key in detail, an OID of the source) is
-- bound by name and its key values are kept apart
INSERT INTO integrity_guard.audit_log (event_type, schema_name, table_name, relid, target,
                                       first_seen, last_seen, detail)
VALUES ('duplicate_key', 'public', 'privs_keyed', 1, 'loaded', now(), now(),
        '{"mode": "skip", "key": "(code)=(loaded)"}');
SELECT a.relid = 'public.privs_keyed'::regclass AS bound, a.detail, k.key_values
FROM integrity_guard.audit_log a JOIN integrity_guard.audit_keys k USING (id)
WHERE a.target = 'loaded';

-- 6. clamp_range on_inverted=error names values only to a role that may read them
SET ROLE regress_ig_p_owner1;
CREATE TABLE public.privs_periods (id int, lo date, hi date);
SELECT integrity_guard.guard_range('public.privs_periods', 'lo', 'hi', 'error');
GRANT INSERT ON public.privs_periods TO regress_ig_p_reader, regress_ig_p_owner2;
GRANT SELECT (lo, hi) ON public.privs_periods TO regress_ig_p_owner2;
INSERT INTO public.privs_periods VALUES (1, '2024-02-01', '2024-01-01');
RESET ROLE;
SET ROLE regress_ig_p_reader;
INSERT INTO public.privs_periods VALUES (1, '2024-02-01', '2024-01-01');
RESET ROLE;
SET ROLE regress_ig_p_owner2;
INSERT INTO public.privs_periods VALUES (1, '2024-02-01', '2024-01-01');
RESET ROLE;

-- the rule itself: one function, never raising, also for rows not written yet
SET ROLE regress_ig_p_reader;
SELECT integrity_guard._incident_visible(jsonb_populate_record(NULL::integrity_guard.audit_log,
         jsonb_build_object('relid', 'public.privs_open'::regclass::oid))) AS pending_open,
       integrity_guard._incident_visible(jsonb_populate_record(NULL::integrity_guard.audit_log,
         jsonb_build_object('relid', 4294967295, 'schema_name', 'privs_hidden', 'table_name', 'c'))) AS missing_oid,
       integrity_guard._incident_detail(jsonb_populate_record(NULL::integrity_guard.audit_log,
         jsonb_build_object('relid', 'public.privs_open'::regclass::oid,
                            'detail', '{"mode": "skip", "key": "(id)=(1)", "key_columns": [1]}'::jsonb))) AS pending_key_shown,
       integrity_guard._incident_detail(jsonb_populate_record(NULL::integrity_guard.audit_log,
         jsonb_build_object('relid', 'public.privs_periods'::regclass::oid,
                            'detail', '{"mode": "skip", "key": "(id)=(1)", "key_columns": [1]}'::jsonb))) AS pending_key_hidden;
RESET ROLE;
-- an incident from another database (a logically replicated row keeps the
-- source's rel_incarnation): its relid names no relation here, whatever
-- table has that OID here.  pg_read_all_stats sees the incident, and no
-- role but a superuser its key values (issue 17: one home for that rule).
GRANT SELECT ON public.privs_open TO regress_ig_p_stats;
CREATE FUNCTION foreign_seen(role name) RETURNS TABLE (inc text, visible boolean, key_visible boolean)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', role);
    RETURN QUERY SELECT v.inc, integrity_guard._incident_visible(x.r), integrity_guard._key_visible(x.r)
                 FROM (VALUES ('here', NULL::uuid), ('elsewhere', '00000000-0000-0000-0000-000000000001')) v(inc, token),
                      LATERAL (SELECT jsonb_populate_record(NULL::integrity_guard.audit_log,
                                 jsonb_build_object('relid', 'public.privs_open'::regclass::oid,
                                                    'rel_incarnation', v.token,
                                                    'detail', '{"key_columns": [1]}'::jsonb)) AS r) x
                 ORDER BY 1;
END $$;
SELECT * FROM foreign_seen('regress_ig_p_stats');
SELECT * FROM foreign_seen('regress_ig_p_reader');

DROP FUNCTION foreign_seen(name);
DROP FUNCTION seen(name);
DROP FUNCTION keys_seen(name);
DROP TABLE public.privs_open, public.privs_victim, public.privs_new, public.privs_old, public.privs_keyed, public.privs_periods;
-- a key set decides its visibility from copies of its audit row's columns:
-- a dropped table unbinds both, so no later relation that reuses the OID
-- can show its keys
SELECT count(*) FILTER (WHERE k.relid IS NULL) AS keys_unbound,
       count(*) FILTER (WHERE (k.last_seen, k.relid, k.rel_incarnation, k.key_columns)
                              IS DISTINCT FROM (a.last_seen, a.relid, a.rel_incarnation, a.key_columns)) AS copies_differ
FROM integrity_guard.audit_keys k JOIN integrity_guard.audit_log a USING (id)
WHERE a.table_name = 'privs_keyed';
DROP SCHEMA privs_hidden CASCADE;
REVOKE CREATE ON SCHEMA public FROM regress_ig_p_owner1, regress_ig_p_owner2;
DROP ROLE regress_ig_p_owner1, regress_ig_p_owner2, regress_ig_p_reader, regress_ig_p_stats;
