-- Internal functions (issue 13, point 3): closed where no ordinary role
-- needs them, argument-checked where the public functions need them.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_integrity_guard;
RESET client_min_messages;
CREATE FUNCTION privs_sqlstate_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SET client_min_messages = warning;
CREATE ROLE regress_ig_i_owner;
CREATE ROLE regress_ig_i_other;
GRANT CREATE ON SCHEMA public TO regress_ig_i_owner;
RESET client_min_messages;

-- Internal functions PUBLIC may execute: only those that the SECURITY
-- INVOKER public functions, the security_invoker views, the readers and
-- the assignment rewrite call as the caller (README, Security).  Any other
-- shows up here.
SELECT p.proname
FROM pg_proc p
WHERE p.pronamespace = 'integrity_guard'::regnamespace AND p.proname LIKE '\_%'
  AND has_function_privilege('regress_ig_i_other', p.oid, 'EXECUTE')
  AND p.proname NOT IN ('_attach', '_check_args', '_children_immediate', '_trigger_name',
                        '_trigger_args', '_incident_relid', '_incident_visible', '_key_visible',
                        '_relation_readable', '_keys_readable', '_key_row_readable',
                        '_incident_detail', '_counter_spec', '_consent_attached',
                        '_stats', '_preloaded', '_pipeline_status', '_pending', '_queue_usage',
                        '_statement_table', '_table_label', '_citus_shard', '_cluster_read',
                        '_saturate', '_sat_add', '_sat_sub', '_sat_mul', '_sat_neg',
                        '_sat_div', '_sat_abs', '_numeric_int8_sat', '_float8_int8_sat',
                        '_tstzrange_guarded', '_tsrange_guarded', '_daterange_guarded',
                        '_range_guarded')
  -- the repair kit's steps, called by its invoker-rights procedures
  AND p.proname !~ '^_(repair_|fix_orphans_|merge_)'
ORDER BY 1;
SELECT p.proname, has_function_privilege('regress_ig_i_other', p.oid, 'EXECUTE') AS public_execute
FROM pg_proc p
WHERE p.pronamespace = 'integrity_guard'::regnamespace
  AND p.proname IN ('_incident_table', '_writing', '_audit_bind', '_audit_follow_ddl', '_audit_keys_apart',
                    '_audit_keys_copy', '_audit_keys_follow', '_guard_retype', '_pipeline_register')
ORDER BY 1;

SET ROLE regress_ig_i_owner;
CREATE TABLE public.privs_mine (id int PRIMARY KEY, n int, p tstzrange);
RESET ROLE;

-- a missing OID: a clear error, not "could not open relation with OID"
SELECT privs_sqlstate_of($$SELECT integrity_guard._check_args('saturate_counter', 4294967295, '{n}')$$);
SELECT privs_sqlstate_of($$SELECT integrity_guard._children_immediate(4294967295, '{}')$$);
SELECT privs_sqlstate_of($$SELECT integrity_guard._attach(4294967295, 'counter', 'x', 'saturate_counter', '{n}')$$);
SELECT privs_sqlstate_of($$SELECT integrity_guard._check_args('no_such_guard', 'public.privs_mine', '{n}')$$);

-- the cluster readers run one of two fixed readers, and need Citus
SELECT privs_sqlstate_of($$SELECT * FROM integrity_guard._cluster_read(NULL, NULL)$$);
SELECT privs_sqlstate_of($$SELECT * FROM integrity_guard._cluster_read('pg_sleep(10)', now())$$);
SELECT privs_sqlstate_of($$SELECT * FROM integrity_guard._cluster_read('events', NULL, 4294967295, NULL)$$);
SELECT privs_sqlstate_of($$SELECT * FROM integrity_guard.cluster_events()$$);
SELECT privs_sqlstate_of($$SELECT * FROM integrity_guard.cluster_summary(NULL)$$);

-- a role that may not attach triggers to a table cannot lock it or probe it
SET ROLE regress_ig_i_other;
SELECT privs_sqlstate_of($$SELECT integrity_guard._check_args('saturate_counter', 'public.privs_mine', '{n}')$$);
SELECT privs_sqlstate_of($$SELECT integrity_guard._children_immediate('public.privs_mine', '{}')$$);
SELECT privs_sqlstate_of($$SELECT integrity_guard._attach('public.privs_mine', 'counter', 'x', 'saturate_counter', '{n}')$$);
SELECT privs_sqlstate_of($$SELECT integrity_guard._incident_table('public', 'mine')$$);
SELECT privs_sqlstate_of($$SELECT integrity_guard._writing()$$);
RESET ROLE;

-- _attach builds its SQL from quoted identifiers and fixed keywords: the
-- timing argument that once ran a statement of its caller's choosing
SET ROLE regress_ig_i_owner;
SELECT privs_sqlstate_of($$SELECT integrity_guard._attach('public.privs_mine', 'range', 'x', 'clamp_range', '{p}',
    'BEFORE INSERT OR UPDATE ON public.privs_mine FOR EACH ROW EXECUTE FUNCTION integrity_guard.clamp_range(''p''); CREATE TABLE public.injected (); CREATE TRIGGER y BEFORE INSERT')$$);
SELECT privs_sqlstate_of($$SELECT integrity_guard._attach('public.privs_mine', 'range', 'x', 'clamp_range', '{p}',
    'BEFORE INSERT OR UPDATE', 'ROW EXECUTE FUNCTION integrity_guard.clamp_range(''p''); CREATE TABLE public.injected (); --')$$);
SELECT privs_sqlstate_of($$SELECT integrity_guard._attach('public.privs_mine', 'counter', 'x', 'clamp_range', '{p}')$$);
SELECT to_regclass('public.injected') AS injected;
-- the ordinary path still works, with a name that needs quoting
SELECT integrity_guard._attach('public.privs_mine', 'range', 'x"; DROP TABLE public.privs_mine; --', 'clamp_range', '{p}');
SELECT trigger_name, kind FROM integrity_guard.guards WHERE table_name = 'public.privs_mine'::regclass;
RESET ROLE;

-- _trigger_args: text in the database encoding, multibyte names intact
SET ROLE regress_ig_i_owner;
CREATE TABLE public."privs_tàblé" (id int PRIMARY KEY, "cömpteur" int);
SELECT integrity_guard.guard_counter('public."privs_tàblé"', ARRAY['cömpteur']);
SELECT table_name, columns, octet_length(columns[1]) AS bytes FROM integrity_guard.guards
 WHERE table_name = 'public."privs_tàblé"'::regclass;
RESET ROLE;
SELECT privs_sqlstate_of($$SELECT integrity_guard._trigger_args('\xc3'::bytea)$$);
SELECT integrity_guard._trigger_args(convert_to('cömpteur', 'UTF8') || '\x00'::bytea || convert_to('action=x', 'UTF8'));

DROP TABLE public.privs_mine, public."privs_tàblé";
REVOKE CREATE ON SCHEMA public FROM regress_ig_i_owner;
DROP ROLE regress_ig_i_owner, regress_ig_i_other;
DROP FUNCTION privs_sqlstate_of(text);
