-- pg_integrity_guard 1.1 -> 1.2: guards that behave like the server on every
-- write path, fire-time privilege checks, readers that never write, and the
-- repair kit.  Each section below is headed by what it changes.
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.2'" to load this file. \quit

-- == versions: volatility and parallel safety (issue 15) ==
-- An IMMUTABLE function is one the planner may run anywhere, parallel
-- workers included: _trigger_name() only formats its arguments.
ALTER FUNCTION integrity_guard._trigger_name(text, text[]) PARALLEL SAFE;

-- == newcomer: incidents without a table say what they are (issue 18) ==
-- A captured error without a table (an int4 overflow inside an expression)
-- is stored with no schema and table name.  summary() and the stats view
-- label it: "(statement on T)" with the first table its recorded statement
-- names, else "(none)"; summary() shows its SQLSTATE as the target.  The
-- stored rows keep NULL names, so the visibility rule is unchanged.
CREATE FUNCTION integrity_guard._statement_table(statement text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT (regexp_match($1,
    '(?:\mupdate(?:\s+only)?|\minsert\s+into|\mdelete\s+from(?:\s+only)?|\mmerge\s+into|\mcopy|\mfrom(?:\s+only)?)\s+((?:"[^"]+"|[[:alpha:]_][[:alnum:]_$]*)(?:\s*\.\s*(?:"[^"]+"|[[:alpha:]_][[:alnum:]_$]*))?)',
    'i'))[1]
$$;

CREATE FUNCTION integrity_guard._table_label(table_name name, statement text)
RETURNS name
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce($1, ('(' || coalesce('statement on ' || integrity_guard._statement_table($2), 'none')
                       || ')')::name)
$$;

CREATE OR REPLACE FUNCTION integrity_guard.summary(since timestamptz DEFAULT NULL)
RETURNS TABLE (schema_name name, table_name name, event_type text, target text,
               incidents bigint, occurrences bigint,
               first_seen timestamptz, last_seen timestamptz)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT integrity_guard.flush();
  SELECT a.schema_name, a.table_name, a.event_type, a.target,
         count(*), sum(a.occurrences)::bigint, min(a.first_seen), max(a.last_seen)
  FROM (SELECT b.schema_name,
               integrity_guard._table_label(b.table_name, b.detail->>'statement') AS table_name,
               b.event_type,
               coalesce(b.target, 'SQLSTATE ' || (b.detail->>'sqlstate')) AS target,
               b.occurrences, b.first_seen, b.last_seen
        FROM integrity_guard.audit_log b
        WHERE $1 IS NULL OR b.last_seen >= $1) a
  GROUP BY a.schema_name, a.table_name, a.event_type, a.target
  ORDER BY sum(a.occurrences) DESC, a.schema_name, a.table_name, a.event_type, a.target
$$;

CREATE OR REPLACE VIEW integrity_guard.stats AS
SELECT s.schema_name::name AS schema_name,
       integrity_guard._table_label(s.table_name::name, NULL) AS table_name,
       s.event_type, s.target, s.occurrences, s.first_seen, s.last_seen,
       s.stats_reset, d.datname AS database_name
FROM integrity_guard._stats() s
LEFT JOIN pg_catalog.pg_database d ON d.oid = s.dbid;

-- == pipeline: readers that never write, a fair and bounded queue (issue 14, issue 13 point 7) ==

-- Who sees an incident: the one rule of the audit table's row-level policy,
-- applied as well to the incidents still queued in shared memory.
CREATE FUNCTION integrity_guard._incident_visible(a integrity_guard.audit_log)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
         OR coalesce(pg_catalog.has_table_privilege(
                integrity_guard._incident_table(a.schema_name, a.table_name), 'SELECT'), false)
$$;

ALTER POLICY audit_log_visible ON integrity_guard.audit_log
  USING (integrity_guard._incident_visible(audit_log));

-- This database's incidents still queued (not yet written by a flush job),
-- as audit rows with a NULL id, filtered by the same rule as the table.
CREATE FUNCTION integrity_guard._pending()
RETURNS SETOF integrity_guard.audit_log
AS 'MODULE_PATHNAME', 'ig_pending_fn'
LANGUAGE C VOLATILE;

-- Readers read the table plus the queue; they never write nor wait.
-- (summary() keeps the labels of the newcomer section above.)
CREATE OR REPLACE FUNCTION integrity_guard.events(since timestamptz DEFAULT NULL,
                                                  rel regclass DEFAULT NULL,
                                                  event_type text DEFAULT NULL)
RETURNS SETOF integrity_guard.audit_log
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT a.*
  FROM (SELECT * FROM integrity_guard.audit_log
        UNION ALL
        SELECT * FROM integrity_guard._pending()) a
  WHERE ($1 IS NULL OR a.last_seen >= $1)
    AND ($2 IS NULL OR integrity_guard._incident_table(a.schema_name, a.table_name) = $2)
    AND ($3 IS NULL OR a.event_type = $3)
  ORDER BY a.last_seen DESC, a.id DESC
$$;

CREATE OR REPLACE FUNCTION integrity_guard.summary(since timestamptz DEFAULT NULL)
RETURNS TABLE (schema_name name, table_name name, event_type text, target text,
               incidents bigint, occurrences bigint,
               first_seen timestamptz, last_seen timestamptz)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT a.schema_name, a.table_name, a.event_type, a.target,
         count(*), sum(a.occurrences)::bigint, min(a.first_seen), max(a.last_seen)
  FROM (SELECT b.schema_name,
               integrity_guard._table_label(b.table_name, b.detail->>'statement') AS table_name,
               b.event_type,
               coalesce(b.target, 'SQLSTATE ' || (b.detail->>'sqlstate')) AS target,
               b.occurrences, b.first_seen, b.last_seen
        FROM (SELECT * FROM integrity_guard.audit_log
              UNION ALL
              SELECT * FROM integrity_guard._pending()) b
        WHERE $1 IS NULL OR b.last_seen >= $1) a
  GROUP BY a.schema_name, a.table_name, a.event_type, a.target
  ORDER BY sum(a.occurrences) DESC, a.schema_name, a.table_name, a.event_type, a.target
$$;

COMMENT ON FUNCTION integrity_guard.flush() IS
  'Without preload, writes this session''s pending incidents in its transaction; with the durable audit, asks the workers to write this database''s queue now and (outside a transaction block) waits for them; returns the rows written';

-- Queue use and losses per database and role: each role sees its own in
-- this database, superusers and pg_read_all_stats every database's.
CREATE FUNCTION integrity_guard._queue_usage(OUT dbid oid, OUT roleid oid, OUT queued integer,
                                             OUT dropped bigint, OUT discarded bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ig_queue_usage'
LANGUAGE C VOLATILE;

CREATE VIEW integrity_guard.queue_usage AS
SELECT d.datname AS database_name, r.rolname AS role_name, q.queued, q.dropped, q.discarded
FROM integrity_guard._queue_usage() q
LEFT JOIN pg_catalog.pg_database d ON d.oid = q.dbid
LEFT JOIN pg_catalog.pg_roles r ON r.oid = q.roleid;

COMMENT ON VIEW integrity_guard.queue_usage IS
  'Queued incidents, events dropped by a full queue and events not written, per database and role';

GRANT SELECT ON integrity_guard.queue_usage TO PUBLIC;

COMMENT ON FUNCTION integrity_guard.stats_reset() IS
  'Forgets cumulative counters: a superuser every database''s, the extension owner this database''s';

DROP FUNCTION integrity_guard._pipeline_status();
CREATE FUNCTION integrity_guard._pipeline_status(OUT active boolean, OUT scope text,
                                                 OUT queue_capacity integer, OUT queue_used bigint,
                                                 OUT queue_dropped bigint, OUT discarded bigint,
                                                 OUT launcher_pid integer,
                                                 OUT database_last_flush timestamptz,
                                                 OUT database_written bigint,
                                                 OUT flush_failures bigint, OUT flush_retrying integer,
                                                 OUT stats_entries integer, OUT stats_capacity integer,
                                                 OUT stats_evicted bigint, OUT stats_reset timestamptz,
                                                 OUT max_flush_jobs integer, OUT last_error text)
AS 'MODULE_PATHNAME', 'ig_pipeline_status'
LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION integrity_guard.status()
RETURNS TABLE (name text, value text, detail text)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH p AS (SELECT * FROM integrity_guard._pipeline_status()),
       durable AS (SELECT p.active AND current_setting('integrity_guard.durable_audit') = 'on' AS yes FROM p)
  SELECT * FROM (VALUES
    ('preloaded', integrity_guard._preloaded()::text,
     'whether this backend loaded the library from shared_preload_libraries'),
    ('audit_mode', CASE WHEN (SELECT yes FROM durable) THEN 'durable' ELSE 'transactional' END,
     CASE WHEN (SELECT yes FROM durable)
          THEN 'incidents go through a shared-memory queue that background workers write into audit_log within flush_interval; readers show the queue too'
          WHEN (SELECT active FROM p)
          THEN 'integrity_guard.durable_audit is off: incidents are written in the transaction that produced them'
          ELSE 'not preloaded: incidents are written in the transaction that produced them; add pg_integrity_guard to shared_preload_libraries for the queue, error capture and stats' END),
    ('lost_on_rollback', CASE WHEN (SELECT yes FROM durable) THEN 'no' ELSE 'yes' END,
     CASE WHEN (SELECT yes FROM durable)
          THEN 'incidents survive the rollback of their transaction; a crash of the server loses what the queue held'
          ELSE 'incidents of a transaction that rolls back are lost with it: a duplicate raised by guard_unique in mode=raise outside a savepoint aborts its transaction and its own audit row' END),
    ('queue_capacity', (SELECT queue_capacity::text FROM p),
     'integrity_guard.queue_size: distinct incidents the queue holds, shared fairly between databases and their roles'),
    ('queue_used', (SELECT queue_used::text FROM p),
     'incidents queued and not yet written (' || (SELECT scope FROM p) || ')'),
    ('queue_dropped', (SELECT queue_dropped::text FROM p),
     'events refused by a full queue, still counted in stats (' || (SELECT scope FROM p) || '; per role: integrity_guard.queue_usage)'),
    ('events_not_written', (SELECT discarded::text FROM p),
     'events of databases without the extension or dropped: counted in stats only (' || (SELECT scope FROM p) || ')'),
    ('worker', CASE WHEN NOT (SELECT active FROM p) THEN 'not running (needs shared_preload_libraries)'
                    WHEN pg_is_in_recovery() THEN 'standby: nothing is written until promotion'
                    WHEN (SELECT launcher_pid FROM p) IS NULL THEN 'not running'
                    ELSE 'running (launcher pid ' || (SELECT launcher_pid FROM p) || ')' END,
     'the launcher starts flush jobs, at most integrity_guard.max_flush_jobs (' ||
       coalesce((SELECT max_flush_jobs::text FROM p), '-') || ') at a time, databases served in turn'),
    ('last_flush', (SELECT database_last_flush::text FROM p),
     'when queued incidents were last written into this database''s audit_log'),
    ('flush_failures', (SELECT flush_failures::text FROM p),
     CASE WHEN (SELECT flush_retrying FROM p) > 0
          THEN 'failing, incidents kept and retried with a backoff: ' || (SELECT last_error FROM p)
          ELSE 'failed flush jobs of this database since start; their incidents were kept and retried' END),
    ('flush_interval', current_setting('integrity_guard.flush_interval'),
     'integrity_guard.flush_interval'),
    ('retention', current_setting('integrity_guard.retention'),
     'integrity_guard.retention: flush jobs delete audit rows last seen longer ago (0: never)'),
    ('capture_errors', CASE WHEN (SELECT active FROM p) THEN current_setting('integrity_guard.capture_errors')
                            ELSE 'off (needs shared_preload_libraries)' END,
     'errors sent to clients that become incidents'),
    ('stats', CASE WHEN (SELECT active FROM p)
                   THEN (SELECT stats_entries || ' of ' || stats_capacity FROM p)
                   ELSE 'off (needs shared_preload_libraries)' END,
     'cumulative counters in use (integrity_guard.max_stats)'),
    ('stats_evicted', (SELECT stats_evicted::text FROM p),
     'least-used counters evicted to make room since the last full reset'),
    ('stats_reset', (SELECT stats_reset::text FROM p),
     'when the stats were last reset'),
    ('enabled', current_setting('integrity_guard.enabled', true),
     'integrity_guard.enabled'),
    ('log_key_values', current_setting('integrity_guard.log_key_values', true),
     'integrity_guard.log_key_values'),
    ('rewrite', CASE WHEN current_setting('integrity_guard.rewrite', true) = 'off' THEN 'off'
                     WHEN integrity_guard._preloaded()
                          OR current_setting('session_preload_libraries') ~ 'pg_integrity_guard'
                     THEN 'on' ELSE 'not loaded before parsing' END,
     'arithmetic assigned to guarded integer columns saturates only when the library is in shared_preload_libraries or session_preload_libraries')
  ) v(name, value, detail)
  UNION ALL
  SELECT 'warning', 'error capture sees nothing',
         'log_min_messages = ' || current_setting('log_min_messages') ||
         ' is above error: the server calls the error hook only for errors it logs, so integrity_guard.capture_errors records none; set log_min_messages to error or lower'
  WHERE (SELECT active FROM (SELECT * FROM integrity_guard._pipeline_status()) p)
    AND current_setting('integrity_guard.capture_errors') <> ''
    AND current_setting('log_min_messages') IN ('log', 'fatal', 'panic')
$$;

-- == children: deferred foreign keys, partitioned parents (issue 12) ==
-- A parent referenced by an INITIALLY DEFERRED foreign key also gets the
-- deferrable constraint trigger "IG_integrity_guard_children_deferred": it
-- fires with the server's deferred checks (commit, SET CONSTRAINTS ...
-- IMMEDIATE), just before them, and clears what still dangles then.  A
-- partitioned parent always gets a row trigger, so that a DELETE issued on
-- a partition is guarded too.
CREATE OR REPLACE FUNCTION integrity_guard.guard_children(parent regclass, refs text[] DEFAULT NULL,
                                                          action text DEFAULT 'set_null')
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text[];
    kind_of_rel "char";
    trigger_name name;
BEGIN
    IF action IS NULL THEN
        RAISE EXCEPTION 'action must not be NULL'
              USING ERRCODE = 'null_value_not_allowed',
                    HINT = 'Use set_null or delete.';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(refs) r WHERE r IS NULL) THEN
        RAISE EXCEPTION 'references must not be NULL'
              USING ERRCODE = 'null_value_not_allowed';
    END IF;
    args := coalesce(refs, '{}') || ('action=' || action);
    SELECT c.relkind INTO kind_of_rel FROM pg_class c WHERE c.oid = parent;

    -- Names sort before the server's "RI_ConstraintTrigger_..." so that the
    -- guard acts before the foreign key checks of the same row.
    IF kind_of_rel = 'p' THEN
        -- no row trigger with a transition table on a partitioned table
        trigger_name := integrity_guard._attach(parent, 'children', 'IG_integrity_guard_children',
                                                'nullify_children', args, 'AFTER DELETE', 'ROW');
    ELSE
        trigger_name := integrity_guard._attach(parent, 'children', 'IG_integrity_guard_children',
                                                'nullify_children', args, 'AFTER DELETE', 'ROW',
                                                'ig_deleted_rows');
    END IF;

    IF EXISTS (SELECT 1 FROM pg_trigger t
               WHERE t.tgrelid = parent AND t.tgname = 'IG_integrity_guard_children_deferred') THEN
        RAISE EXCEPTION 'table % already has a children guard named "IG_integrity_guard_children_deferred"', parent
              USING ERRCODE = 'duplicate_object',
                    HINT = format('Remove it with integrity_guard.unguard(%L, %L) and attach again.',
                                  parent::text, 'children');
    END IF;

    IF EXISTS (SELECT 1 FROM pg_constraint c
               WHERE c.contype = 'f' AND c.confrelid = parent AND c.condeferred
                 AND c.confdeltype IN ('a', 'r')) THEN
        EXECUTE format('CREATE CONSTRAINT TRIGGER %I AFTER DELETE ON %s '
                       'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW '
                       'EXECUTE FUNCTION integrity_guard.nullify_children(%s)',
                       'IG_integrity_guard_children_deferred', parent,
                       (SELECT string_agg(quote_literal(a), ', ' ORDER BY n)
                        FROM unnest(args) WITH ORDINALITY AS u(a, n)));
    END IF;
    RETURN trigger_name;
END
$$;

-- == rewrite: exact value clamped on every path, any range type (issue 12) ==
-- Saturating division and abs, float casts, and one range constructor for
-- every range type (the result type comes from the trailing NULL::rng).
CREATE FUNCTION integrity_guard._sat_div(bigint, bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_sat_div' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard._sat_abs(bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_sat_abs' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard._float8_int8_sat(double precision) RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_float8_int8_sat' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard._range_guarded(anyelement, anyelement, text, text, oid, smallint,
                                               anyrange)
RETURNS anyrange AS 'MODULE_PATHNAME', 'ig_range_clamped' LANGUAGE C VOLATILE;

-- Truncated by characters so that a multibyte name keeps its hash suffix.
CREATE OR REPLACE FUNCTION integrity_guard._trigger_name(prefix text, parts text[])
RETURNS name
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN octet_length(full_name) <= 63 THEN full_name
              ELSE (SELECT left(full_name, k) FROM generate_series(50, 0, -1) AS g(k)
                     WHERE octet_length(left(full_name, k)) <= 54 LIMIT 1)
                   || '_' || left(md5(full_name), 8)
         END::name
  FROM (SELECT prefix || coalesce('_' || array_to_string(parts, '_'), '') AS full_name) s
$$;

-- A guard follows its column through ALTER COLUMN ... TYPE: the counter
-- guard keeps its bounds (attached again with them written out when the new
-- type would read them differently), a type the guard cannot serve is
-- refused before the table changes.
CREATE FUNCTION integrity_guard._guard_retype() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'ig_guard_retype' LANGUAGE C;
CREATE EVENT TRIGGER integrity_guard_retype ON ddl_command_start
  WHEN TAG IN ('ALTER TABLE')
  EXECUTE FUNCTION integrity_guard._guard_retype();

-- == privs: incidents tied to their relation, key values for readers who could read them, internals closed (issue 13) ==

-- Which database recorded an incident's relid.  Not dumped: a restored or
-- replicated database makes its own at CREATE EXTENSION, so an OID that came
-- from elsewhere is never taken for one of this database's relations.
-- pg_upgrade keeps it with the OIDs it keeps.
CREATE TABLE integrity_guard.database_incarnation (
    token uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    only_one boolean PRIMARY KEY DEFAULT true CHECK (only_one)
);
INSERT INTO integrity_guard.database_incarnation DEFAULT VALUES;
REVOKE ALL ON integrity_guard.database_incarnation FROM PUBLIC;
GRANT SELECT ON integrity_guard.database_incarnation TO PUBLIC;

-- The incarnation relid belongs to (NULL: not yet written, i.e. recorded in
-- this database; the nil uuid, what rows from an older dump get: unknown),
-- and the attribute numbers of the key an incident's key values describe.
ALTER TABLE integrity_guard.audit_log
    ADD COLUMN rel_incarnation uuid DEFAULT '00000000-0000-0000-0000-000000000000',
    ADD COLUMN key_columns smallint[];
COMMENT ON COLUMN integrity_guard.audit_log.relid IS
  'OID of the table that raised the incident, in the database named by rel_incarnation; rebound by name when rows are loaded from a dump';
COMMENT ON COLUMN integrity_guard.audit_log.rel_incarnation IS
  'integrity_guard.database_incarnation.token of the database whose relid this is';
COMMENT ON COLUMN integrity_guard.audit_log.key_columns IS
  'Attribute numbers of the key whose values audit_keys holds (NULL: values of any column)';

-- Key values and the server's DETAIL (row values), apart from the incidents:
-- only readers who could read them get these rows.
CREATE TABLE integrity_guard.audit_keys (
    id         bigint PRIMARY KEY REFERENCES integrity_guard.audit_log (id) ON DELETE CASCADE,
    key_values jsonb NOT NULL
);
COMMENT ON TABLE integrity_guard.audit_keys IS
  'Key values of incidents, readable as the server shows them in its own error DETAIL';
SELECT pg_catalog.pg_extension_config_dump('integrity_guard.audit_keys', '');

-- Whether this backend's audit writer is inserting (the rows it writes
-- carry a relid of this database).
CREATE FUNCTION integrity_guard._writing()
RETURNS boolean
AS 'MODULE_PATHNAME', 'ig_audit_writing'
LANGUAGE C VOLATILE;

-- Rows the writer did not insert (pg_restore, a plain dump, a manual copy)
-- carry an OID of another database: bind them to the table that has their
-- recorded name here, if any.
CREATE FUNCTION integrity_guard._audit_bind()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT integrity_guard._writing() THEN
        -- NULL stays NULL: no relation, or one dropped before the dump
        IF NEW.relid IS NOT NULL THEN
            NEW.relid := (SELECT c.oid FROM pg_class c
                          JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = NEW.schema_name AND c.relname = NEW.table_name
                            AND n.nspname !~ '^pg_(toast_)?temp_');
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = NEW.relid) THEN
        -- queued incidents of a table dropped since
        NEW.relid := NULL;
    END IF;
    NEW.rel_incarnation := (SELECT i.token FROM integrity_guard.database_incarnation i);
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_log_bind BEFORE INSERT ON integrity_guard.audit_log
    FOR EACH ROW EXECUTE FUNCTION integrity_guard._audit_bind();

-- Key values in detail (rows of a 1.1 dump loaded into 1.2): apart, as the
-- writer keeps them (it never leaves them in detail, so this never fires
-- for its rows).
CREATE FUNCTION integrity_guard._audit_keys_apart()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO integrity_guard.audit_keys (id, key_values)
    SELECT NEW.id, jsonb_object_agg(e.key, e.value)
      FROM jsonb_each(NEW.detail) e WHERE e.key IN ('key', 'detail')
    ON CONFLICT (id) DO NOTHING;
    UPDATE integrity_guard.audit_log a SET detail = a.detail - '{key,detail}'::text[]
     WHERE a.id = NEW.id;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION integrity_guard._audit_keys_apart() FROM PUBLIC;
CREATE TRIGGER audit_log_keys_apart AFTER INSERT ON integrity_guard.audit_log
    FOR EACH ROW WHEN (NEW.detail ?| '{key,detail}')
    EXECUTE FUNCTION integrity_guard._audit_keys_apart();

-- Keep the names (what a dump carries) of live relations right, and unbind
-- the incidents of a dropped one, so that a restore never binds them to a
-- table that only took the name.
CREATE INDEX audit_log_relid_idx ON integrity_guard.audit_log (relid);
CREATE FUNCTION integrity_guard._audit_follow_ddl()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    here uuid := (SELECT i.token FROM integrity_guard.database_incarnation i);
BEGIN
    IF TG_EVENT = 'sql_drop' THEN
        UPDATE integrity_guard.audit_log a SET relid = NULL
         WHERE a.relid IN (SELECT d.objid FROM pg_event_trigger_dropped_objects() d
                           WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0)
           AND a.rel_incarnation = here;
    ELSE
        UPDATE integrity_guard.audit_log a
           SET schema_name = n.nspname, table_name = c.relname
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = a.relid AND a.rel_incarnation = here
           AND (a.schema_name, a.table_name) IS DISTINCT FROM (n.nspname, c.relname)
           AND a.relid IN (SELECT cl.oid FROM pg_event_trigger_ddl_commands() d
                           JOIN pg_class cl ON (d.classid = 'pg_class'::regclass AND cl.oid = d.objid)
                                            OR (d.classid = 'pg_namespace'::regclass AND cl.relnamespace = d.objid));
    END IF;
END
$$;
REVOKE ALL ON FUNCTION integrity_guard._audit_follow_ddl() FROM PUBLIC;
CREATE EVENT TRIGGER integrity_guard_audit_drop ON sql_drop
    EXECUTE FUNCTION integrity_guard._audit_follow_ddl();
CREATE EVENT TRIGGER integrity_guard_audit_rename ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA')
    EXECUTE FUNCTION integrity_guard._audit_follow_ddl();

-- Rows recorded before 1.2 keep their key values in detail: move them.
INSERT INTO integrity_guard.audit_keys (id, key_values)
SELECT a.id, (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(a.detail) e
              WHERE e.key IN ('key', 'detail'))
FROM integrity_guard.audit_log a WHERE a.detail ?| '{key,detail}';
UPDATE integrity_guard.audit_log SET detail = detail - '{key,detail}'::text[]
 WHERE detail ?| '{key,detail}';

-- Rows recorded before 1.2 were visible by name: bind them once.
UPDATE integrity_guard.audit_log a
   SET relid = (SELECT c.oid FROM pg_catalog.pg_class c
                JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = a.schema_name AND c.relname = a.table_name
                  AND n.nspname !~ '^pg_(toast_)?temp_'),
       rel_incarnation = (SELECT i.token FROM integrity_guard.database_incarnation i);

-- THE visibility rule, for stored rows and for pending ones of the same row
-- type: superusers and pg_read_all_stats see every incident; other roles
-- those of a relation of this database that still exists and that they can
-- SELECT (some column of).  Never raises: the privilege functions by OID
-- check no schema and give NULL for a relation that is gone.
CREATE OR REPLACE FUNCTION integrity_guard._incident_visible(a integrity_guard.audit_log)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
      OR coalesce($1.relid IS NOT NULL
                  AND ($1.rel_incarnation IS NULL
                       OR $1.rel_incarnation = (SELECT i.token FROM integrity_guard.database_incarnation i))
                  AND pg_catalog.has_any_column_privilege($1.relid, 'SELECT'), false)
$$;

-- Key values: the rule of the server's own error DETAIL
-- (BuildIndexValueDescription): a superuser, or a visible incident, no
-- row-level security in force for the role, and SELECT on the table or on
-- every key column.
CREATE FUNCTION integrity_guard._key_visible(a integrity_guard.audit_log)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user), false)
      OR coalesce(
           integrity_guard._incident_visible($1)
           AND $1.relid IS NOT NULL
           AND NOT pg_catalog.row_security_active($1.relid)
           AND (pg_catalog.has_table_privilege($1.relid, 'SELECT')
                OR (SELECT bool_and(coalesce(c > 0 AND pg_catalog.has_column_privilege($1.relid, c, 'SELECT'), false))
                    FROM pg_catalog.unnest(coalesce($1.key_columns,
                                                    (SELECT array_agg(x::smallint)
                                                     FROM jsonb_array_elements_text($1.detail->'key_columns') x),
                                                    '{0}')) c)),
           false)
$$;

-- What a reader gets as detail: the stored detail, plus the key values it
-- may see (stored rows: from audit_keys, whose policy applies the rule;
-- pending rows: carried in detail itself).
CREATE FUNCTION integrity_guard._incident_detail(a integrity_guard.audit_log)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN $1.detail ?| '{key,detail}' AND NOT integrity_guard._key_visible($1)
              THEN $1.detail - '{key,detail,key_columns}'::text[]
              ELSE $1.detail - 'key_columns' END
         || coalesce((SELECT k.key_values FROM integrity_guard.audit_keys k WHERE k.id = $1.id), '{}')
$$;

DROP POLICY audit_log_visible ON integrity_guard.audit_log;
CREATE POLICY audit_log_visible ON integrity_guard.audit_log FOR SELECT
  USING (integrity_guard._incident_visible(audit_log));
REVOKE ALL ON integrity_guard.audit_keys FROM PUBLIC;
GRANT SELECT ON integrity_guard.audit_keys TO PUBLIC;
ALTER TABLE integrity_guard.audit_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_keys_visible ON integrity_guard.audit_keys FOR SELECT
  USING (EXISTS (SELECT 1 FROM integrity_guard.audit_log a
                 WHERE a.id = audit_keys.id AND integrity_guard._key_visible(a)));

-- Readers: relid, not names, picks a table's incidents; detail carries the
-- key values the reader may see.  The table plus the queue (pipeline
-- section), as there.
CREATE OR REPLACE FUNCTION integrity_guard.events(since timestamptz DEFAULT NULL,
                                                  rel regclass DEFAULT NULL,
                                                  event_type text DEFAULT NULL)
RETURNS SETOF integrity_guard.audit_log
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT (x.r).*
  FROM (SELECT b AS a, k.key_values
        FROM integrity_guard.audit_log b
        LEFT JOIN integrity_guard.audit_keys k ON k.id = b.id
        UNION ALL
        SELECT p, NULL FROM integrity_guard._pending() p) u
  -- once per row (a row expression's .* would evaluate it per column)
  CROSS JOIN LATERAL (SELECT CASE WHEN (u.a).id IS NULL
                                  THEN jsonb_populate_record(u.a, jsonb_build_object('detail',
                                           integrity_guard._incident_detail(u.a)))
                                  WHEN u.key_values IS NULL THEN u.a
                                  ELSE jsonb_populate_record(u.a, jsonb_build_object('detail',
                                           coalesce((u.a).detail, '{}') || u.key_values)) END AS r
                      OFFSET 0) x
  WHERE ($1 IS NULL OR (u.a).last_seen >= $1)
    AND ($2 IS NULL OR ((u.a).relid = $2
                        AND ((u.a).rel_incarnation IS NULL
                             OR (u.a).rel_incarnation = (SELECT i.token FROM integrity_guard.database_incarnation i))))
    AND ($3 IS NULL OR (u.a).event_type = $3)
  ORDER BY (u.a).last_seen DESC, (u.a).id DESC
$$;

-- Internals.  Revoked from PUBLIC: what no ordinary role needs to call.
-- Kept executable (each checks its arguments and the caller's privileges
-- itself, so that a direct call can do no more than the public function):
-- the attach helpers the SECURITY INVOKER guard_*() functions call
-- (_check_args, _children_immediate, _attach, _trigger_name), what the
-- security_invoker views and readers evaluate as the reader (_trigger_args,
-- _incident_visible, _key_visible, _incident_detail, _stats, _preloaded,
-- _pipeline_status, _pending, _queue_usage, _statement_table, _table_label),
-- and what the assignment rewrite puts into the
-- writer's own statements (_saturate, _sat_*, _numeric_int8_sat,
-- _float8_int8_sat, _*range_guarded).
REVOKE ALL ON FUNCTION integrity_guard._incident_table(name, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION integrity_guard._writing() FROM PUBLIC;
REVOKE ALL ON FUNCTION integrity_guard._audit_bind() FROM PUBLIC;
REVOKE ALL ON FUNCTION integrity_guard._guard_retype() FROM PUBLIC;

-- _attach: SQL from quoted identifiers and fixed keywords only.
CREATE OR REPLACE FUNCTION integrity_guard._attach(rel regclass, kind text, trigger_name name,
                                                   func text, args text[],
                                                   timing text DEFAULT 'BEFORE INSERT OR UPDATE',
                                                   level text DEFAULT 'ROW',
                                                   transition name DEFAULT NULL,
                                                   inert boolean DEFAULT false)
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind_of_rel "char";
    timing_sql text;
    level_sql text;
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL'
              USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF kind IS NULL OR trigger_name IS NULL OR func IS NULL OR args IS NULL
       OR inert IS NULL THEN
        RAISE EXCEPTION 'integrity_guard._attach() arguments must not be NULL'
              USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind INTO kind_of_rel FROM pg_class c WHERE c.oid = rel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table with OID % does not exist', rel::oid
              USING ERRCODE = 'undefined_table';
    END IF;
    IF kind_of_rel IS DISTINCT FROM 'r' AND kind_of_rel IS DISTINCT FROM 'p' THEN
        RAISE EXCEPTION '"%" is not a table', rel
              USING ERRCODE = 'wrong_object_type',
                    HINT = 'Guards attach to ordinary and partitioned tables.';
    END IF;
    IF (kind, func) NOT IN (('counter', 'saturate_counter'), ('range', 'clamp_range'),
                            ('children', 'nullify_children'), ('unique', 'guard_unique')) THEN
        RAISE EXCEPTION 'unknown guard "%" with function "%"', kind, func
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the keywords come from this list, never from the argument's text
    timing_sql := CASE timing WHEN 'BEFORE INSERT OR UPDATE' THEN 'BEFORE INSERT OR UPDATE'
                              WHEN 'AFTER INSERT' THEN 'AFTER INSERT'
                              WHEN 'AFTER DELETE' THEN 'AFTER DELETE' END;
    level_sql := CASE level WHEN 'ROW' THEN 'ROW' WHEN 'STATEMENT' THEN 'STATEMENT' END;
    IF timing_sql IS NULL OR level_sql IS NULL THEN
        RAISE EXCEPTION 'invalid trigger timing "%" or level "%"', timing, level
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Timing is BEFORE INSERT OR UPDATE, AFTER INSERT or AFTER DELETE; level ROW or STATEMENT.';
    END IF;

    PERFORM integrity_guard._check_args(func, rel, args);

    IF EXISTS (SELECT 1 FROM pg_trigger t
               WHERE t.tgrelid = rel AND t.tgname = trigger_name) THEN
        RAISE EXCEPTION 'table % already has a % guard named "%"', rel, kind, trigger_name
              USING ERRCODE = 'duplicate_object',
                    HINT = format('Remove it with integrity_guard.unguard(%L, %L) and attach again with all columns and options in one call.',
                                  rel::text, trigger_name);
    END IF;

    EXECUTE format('CREATE TRIGGER %I %s ON %s %s FOR EACH %s %s EXECUTE FUNCTION integrity_guard.%I(%s)',
                   trigger_name, timing_sql, rel,
                   CASE WHEN transition IS NULL THEN ''
                        ELSE format('REFERENCING OLD TABLE AS %I', transition) END,
                   level_sql, CASE WHEN inert THEN 'WHEN (false)' ELSE '' END, func,
                   (SELECT string_agg(quote_literal(a), ', ' ORDER BY n)
                    FROM unnest(args) WITH ORDINALITY AS u(a, n)));

    IF kind_of_rel = 'r' AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = rel) THEN
        RAISE NOTICE 'the % guard covers rows stored in % itself, not in its inheritance children', kind, rel
              USING HINT = 'Row triggers are not inherited: attach the guard to each child table too.';
    END IF;
    RETURN trigger_name;
END
$$;

-- The guards are the four guard functions' triggers, not every trigger
-- function of the schema (audit_log_bind is none).
CREATE OR REPLACE VIEW integrity_guard.guards
WITH (security_invoker = true) AS
SELECT t.tgrelid::regclass AS table_name,
       CASE p.proname
            WHEN 'saturate_counter' THEN 'counter'
            WHEN 'clamp_range' THEN 'range'
            WHEN 'nullify_children' THEN 'children'
            WHEN 'guard_unique' THEN 'unique'
       END AS kind,
       ARRAY(SELECT a FROM unnest(g.args) a WHERE a !~ '^[a-z_]+=') AS columns,
       ARRAY(SELECT a FROM unnest(g.args) a WHERE a ~ '^[a-z_]+=') AS options,
       t.tgname AS trigger_name,
       t.tgenabled <> 'D' AS enabled
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
CROSS JOIN LATERAL integrity_guard._trigger_args(t.tgargs) AS g(args)
WHERE p.pronamespace = 'integrity_guard'::regnamespace
  AND p.proname IN ('saturate_counter', 'clamp_range', 'nullify_children', 'guard_unique')
  AND t.tgparentid = 0;
