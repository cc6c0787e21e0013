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

-- Guards attached before 1.2 get the companion too, so that their deferred
-- keys are acted on at the server's check from now on.
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT t.tgrelid::regclass AS rel, a.args
          FROM pg_catalog.pg_trigger t
          JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
         CROSS JOIN LATERAL integrity_guard._trigger_args(t.tgargs) AS a(args)
         WHERE p.proname = 'nullify_children'
           AND p.pronamespace = 'integrity_guard'::regnamespace
           AND t.tgname = 'IG_integrity_guard_children' AND t.tgparentid = 0
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger c
                           WHERE c.tgrelid = t.tgrelid
                             AND c.tgname = 'IG_integrity_guard_children_deferred')
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                       WHERE c.contype = 'f' AND c.confrelid = t.tgrelid AND c.condeferred
                         AND c.confdeltype IN ('a', 'r'))
    LOOP
        EXECUTE format('CREATE CONSTRAINT TRIGGER %I AFTER DELETE ON %s '
                       'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW '
                       'EXECUTE FUNCTION integrity_guard.nullify_children(%s)',
                       'IG_integrity_guard_children_deferred', g.rel,
                       (SELECT string_agg(quote_literal(x), ', ' ORDER BY n)
                        FROM unnest(g.args) WITH ORDINALITY AS u(x, n)));
    END LOOP;
END
$$;
