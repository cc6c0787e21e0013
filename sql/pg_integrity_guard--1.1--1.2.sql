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
-- is stored with no schema and table name.  summary() (defined with the
-- readers, pipeline section) and the stats view label it: "(statement on T)" with the first table its recorded statement
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

CREATE OR REPLACE VIEW integrity_guard.stats AS
SELECT s.schema_name::name AS schema_name,
       integrity_guard._table_label(s.table_name::name, NULL) AS table_name,
       s.event_type, s.target, s.occurrences, s.first_seen, s.last_seen,
       s.stats_reset, d.datname AS database_name
FROM integrity_guard._stats() s
LEFT JOIN pg_catalog.pg_database d ON d.oid = s.dbid;

-- == pipeline: readers that never write, a fair and bounded queue (issue 14, issue 13 point 7) ==

-- This database's incidents still queued (not yet written by a flush job),
-- as audit rows with a NULL id, filtered by the same rule as the table
-- (_incident_visible, privs section).
CREATE FUNCTION integrity_guard._pending()
RETURNS SETOF integrity_guard.audit_log
AS 'MODULE_PATHNAME', 'ig_pending_fn'
LANGUAGE C VOLATILE;

-- Readers read the table plus the queue; they never write nor wait: summary()
-- here (with the labels of the newcomer section above), events() in the
-- privs section (it merges key values back).
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
    ('stats_dropped', (SELECT stats_evicted::text FROM p),
     'least-used counters evicted to make room for new ones (integrity_guard.max_stats) since the last full reset'),
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

-- == repair: orphans, duplicates, check (issue 16) ==
-- Everything here runs as the caller (SECURITY INVOKER): the server's own
-- privilege checks and row-level security decide what a role sees and
-- fixes.  Dynamic SQL is built from quoted identifiers only.  The
-- procedures carry no SET clause (that would forbid COMMIT between
-- batches): their bodies only call the pinned helpers below.

CREATE PROCEDURE integrity_guard._repair_can_commit(INOUT allowed boolean DEFAULT NULL)
AS 'MODULE_PATHNAME', 'ig_repair_can_commit'
LANGUAGE C;

CREATE FUNCTION integrity_guard._repair_record(event text, rel regclass, target text,
                                               detail jsonb, occurrences bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'ig_repair_record'
LANGUAGE C VOLATILE;

-- schema-qualified, quoted name of a table: independent of search_path
CREATE FUNCTION integrity_guard._repair_qualified(rel regclass)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT format('%I.%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = $1
$$;

CREATE FUNCTION integrity_guard._repair_table(rel regclass, what text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind "char";
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', what
              USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = rel;
    IF kind IS DISTINCT FROM 'r' AND kind IS DISTINCT FROM 'p' THEN
        RAISE EXCEPTION '% "%" is not a table', what, rel
              USING ERRCODE = 'wrong_object_type',
                    HINT = 'The repair functions work on ordinary and partitioned tables.';
    END IF;
END
$$;

-- The columns, checked to exist once each; returns them as given.
CREATE FUNCTION integrity_guard._repair_columns(rel regclass, cols text[], what text)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col text;
    seen text[] := '{}';
BEGIN
    IF cols IS NULL OR cardinality(cols) = 0 THEN
        RAISE EXCEPTION '% must name at least one column', what
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = format('Give the column names of %s as a text array, e.g. ARRAY[''parent_id''].', rel);
    END IF;
    FOREACH col IN ARRAY cols LOOP
        IF col IS NULL THEN
            RAISE EXCEPTION '% must not contain NULL', what
                  USING ERRCODE = 'null_value_not_allowed';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = rel AND a.attname = col
                         AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" of table % does not exist', col, rel
                  USING ERRCODE = 'undefined_column',
                        HINT = 'Column names are matched as stored: case-sensitive, without quotes.';
        END IF;
        IF col = ANY (seen) THEN
            RAISE EXCEPTION 'column "%" appears twice in %', col, what
                  USING ERRCODE = 'duplicate_column';
        END IF;
        seen := seen || col;
    END LOOP;
    RETURN cols;
END
$$;

-- The primary key columns in key order, or NULL.
CREATE FUNCTION integrity_guard._repair_pkey(rel regclass)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT array_agg(a.attname::text ORDER BY k.ord)
  FROM pg_index i
  CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
  WHERE i.indrelid = $1 AND i.indisprimary
$$;

-- Child and parent columns must pair up with an equality operator, as a
-- foreign key's do.
CREATE FUNCTION integrity_guard._repair_comparable(child regclass, child_columns text[],
                                                   parent regclass, parent_columns text[])
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    i integer;
    ct text;
    pt text;
BEGIN
    IF cardinality(child_columns) <> cardinality(parent_columns) THEN
        RAISE EXCEPTION 'child_columns has % columns, parent_columns %',
                        cardinality(child_columns), cardinality(parent_columns)
              USING ERRCODE = 'invalid_foreign_key',
                    HINT = 'A reference pairs each child column with one parent column, in order.';
    END IF;
    FOR i IN 1 .. cardinality(child_columns) LOOP
        SELECT format_type(a.atttypid, a.atttypmod) INTO ct FROM pg_attribute a
         WHERE a.attrelid = child AND a.attname = child_columns[i];
        SELECT format_type(a.atttypid, a.atttypmod) INTO pt FROM pg_attribute a
         WHERE a.attrelid = parent AND a.attname = parent_columns[i];
        BEGIN
            EXECUTE format('SELECT NULL::%s = NULL::%s', ct, pt);
        EXCEPTION WHEN undefined_function OR datatype_mismatch OR cannot_coerce THEN
            RAISE EXCEPTION 'column "%" of % (type %) cannot be compared with column "%" of % (type %)',
                            child_columns[i], child, ct, parent_columns[i], parent, pt
                  USING ERRCODE = 'datatype_mismatch',
                        HINT = 'Child and parent columns need comparable types, as a foreign key''s do.';
        END;
    END LOOP;
END
$$;

-- Validates a reference; returns the parent columns (default: primary key).
CREATE FUNCTION integrity_guard._repair_reference(child regclass, child_columns text[],
                                                  parent regclass, parent_columns text[])
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM integrity_guard._repair_table(child, 'child');
    PERFORM integrity_guard._repair_table(parent, 'parent');
    PERFORM integrity_guard._repair_columns(child, child_columns, 'child_columns');
    IF parent_columns IS NULL THEN
        parent_columns := integrity_guard._repair_pkey(parent);
        IF parent_columns IS NULL THEN
            RAISE EXCEPTION 'table % has no primary key', parent
                  USING ERRCODE = 'invalid_column_reference',
                        HINT = 'Give parent_columns, the columns the child columns refer to.';
        END IF;
    ELSE
        PERFORM integrity_guard._repair_columns(parent, parent_columns, 'parent_columns');
    END IF;
    PERFORM integrity_guard._repair_comparable(child, child_columns, parent, parent_columns);
    RETURN parent_columns;
END
$$;

-- "c.a IS NOT NULL AND ... AND NOT EXISTS (parent row)": a child row (alias
-- c) whose whole reference is set and finds no parent row (MATCH SIMPLE).
CREATE FUNCTION integrity_guard._repair_orphan_qual(child_columns text[], parent regclass,
                                                    parent_columns text[])
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT string_agg(format('c.%I IS NOT NULL', cc), ' AND ')
         || format(' AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)',
                   integrity_guard._repair_qualified(parent),
                   string_agg(format('p.%I = c.%I', pc, cc), ' AND '))
  FROM unnest(child_columns, parent_columns) AS u(cc, pc)
$$;

-- jsonb_build_object('col', c.col, ...) of the given columns
CREATE FUNCTION integrity_guard._repair_json(cols text[], alias text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT 'pg_catalog.jsonb_build_object('
         || string_agg(format('%L, %I.%I', c, alias, c), ', ' ORDER BY o) || ')'
  FROM unnest(cols) WITH ORDINALITY AS u(c, o)
$$;

CREATE FUNCTION integrity_guard.orphans(child regclass, child_columns text[],
                                        parent regclass, parent_columns text[] DEFAULT NULL)
RETURNS TABLE (child_key jsonb, reference jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    child_pk text[];
BEGIN
    parent_columns := integrity_guard._repair_reference(child, child_columns, parent, parent_columns);
    child_pk := integrity_guard._repair_pkey(child);
    RETURN QUERY EXECUTE format('SELECT %s, %s FROM %s c WHERE %s',
        CASE WHEN child_pk IS NULL THEN 'pg_catalog.jsonb_build_object(''ctid'', c.ctid)'
             ELSE integrity_guard._repair_json(child_pk, 'c') END,
        integrity_guard._repair_json(child_columns, 'c'),
        integrity_guard._repair_qualified(child),
        integrity_guard._repair_orphan_qual(child_columns, parent, parent_columns));
END
$$;

COMMENT ON FUNCTION integrity_guard.orphans(regclass, text[], regclass, text[]) IS
  'Child rows whose non-NULL reference finds no parent row (parent_columns default: the primary key), as the caller sees them';

--------------------------------------------------------------------------
-- Batched procedures keep their state in two temporary tables of the
-- session: the work list (ig_repair_work) and one state row
-- (ig_repair_state).  A batch is one call of a _step function.
--------------------------------------------------------------------------
CREATE FUNCTION integrity_guard._repair_begin(total bigint, batch bigint, can_commit boolean,
                                              what text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CREATE TEMP TABLE ig_repair_state (total bigint, next bigint, batch bigint,
                                       batches integer, done bigint, moved bigint,
                                       conflicts jsonb);
    IF NOT can_commit THEN
        RAISE NOTICE '%: called inside a transaction block, running as one batch', what
              USING DETAIL = 'A procedure can commit between batches only when CALLed outside a transaction block, and not from a function or a DO block.';
        batch := greatest(total, 1);
    END IF;
    INSERT INTO pg_temp.ig_repair_state VALUES (total, 0, batch, 0, 0, 0, '{}');
END
$$;

CREATE FUNCTION integrity_guard._repair_end()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('pg_temp.ig_repair_work') IS NOT NULL THEN
        DROP TABLE pg_temp.ig_repair_work;
    END IF;
    IF to_regclass('pg_temp.ig_repair_state') IS NOT NULL THEN
        DROP TABLE pg_temp.ig_repair_state;
    END IF;
END
$$;

CREATE FUNCTION integrity_guard._fix_orphans_start(child regclass, child_columns text[],
                                                   parent regclass, parent_columns text[],
                                                   action text, batch_rows integer,
                                                   can_commit boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off                   -- batch statements: compiling costs more than they run
AS $$
DECLARE
    key text[];
    total bigint;
    nn_col text;
BEGIN
    parent_columns := integrity_guard._repair_reference(child, child_columns, parent, parent_columns);
    IF action IS NULL OR action NOT IN ('set_null', 'delete') THEN
        RAISE EXCEPTION 'invalid action "%"', action
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Use set_null or delete.';
    END IF;
    IF batch_rows IS NULL OR batch_rows < 1 THEN
        RAISE EXCEPTION 'batch_rows must be at least 1'
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.attname INTO nn_col FROM pg_attribute a
     WHERE a.attrelid = child AND a.attname = ANY (child_columns) AND a.attnotnull
     LIMIT 1;
    IF action = 'set_null' AND nn_col IS NOT NULL THEN
        RAISE EXCEPTION 'column "%" of % is NOT NULL: orphans cannot be set to NULL', nn_col, child
              USING ERRCODE = 'not_null_violation',
                    HINT = 'Use action => ''delete''.';
    END IF;

    -- The work list: the orphans' keys, read without locking anything.
    key := coalesce(integrity_guard._repair_pkey(child), ARRAY['tableoid', 'ctid']);
    PERFORM integrity_guard._repair_end();
    EXECUTE format('CREATE TEMP TABLE ig_repair_work AS SELECT row_number() OVER () AS "ig#n", %s FROM %s c WHERE %s',
                   (SELECT string_agg(format('c.%I AS "ig#k%s"', k, o), ', ')
                      FROM unnest(key) WITH ORDINALITY AS u(k, o)),
                   integrity_guard._repair_qualified(child),
                   integrity_guard._repair_orphan_qual(child_columns, parent, parent_columns));
    GET DIAGNOSTICS total = ROW_COUNT;
    CREATE INDEX ON pg_temp.ig_repair_work ("ig#n");
    ANALYZE pg_temp.ig_repair_work;
    PERFORM integrity_guard._repair_begin(total, batch_rows, can_commit, 'fix_orphans');
END
$$;

-- One batch; true when nothing is left.
CREATE FUNCTION integrity_guard._fix_orphans_step(child regclass, child_columns text[],
                                                  parent regclass, parent_columns text[],
                                                  action text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off                   -- batch statements: compiling costs more than they run
AS $$
DECLARE
    st record;
    key text[];
    n bigint;
    joinq text;
BEGIN
    parent_columns := coalesce(parent_columns, integrity_guard._repair_pkey(parent));
    SELECT * INTO STRICT st FROM pg_temp.ig_repair_state;
    IF st.next >= st.total THEN
        RETURN true;
    END IF;
    key := coalesce(integrity_guard._repair_pkey(child), ARRAY['tableoid', 'ctid']);
    joinq := format('w."ig#n" > %s AND w."ig#n" <= %s AND %s AND %s',
                    st.next, st.next + st.batch,
                    (SELECT string_agg(format('c.%I = w."ig#k%s"', k, o), ' AND ')
                       FROM unnest(key) WITH ORDINALITY AS u(k, o)),
                    integrity_guard._repair_orphan_qual(child_columns, parent, parent_columns));
    IF action = 'delete' THEN
        EXECUTE format('DELETE FROM %s c USING pg_temp.ig_repair_work w WHERE %s',
                       integrity_guard._repair_qualified(child), joinq);
    ELSE
        EXECUTE format('UPDATE %s c SET %s FROM pg_temp.ig_repair_work w WHERE %s',
                       integrity_guard._repair_qualified(child),
                       (SELECT string_agg(format('%I = NULL', cc), ', ') FROM unnest(child_columns) cc),
                       joinq);
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE pg_temp.ig_repair_state
       SET next = least(next + batch, total), done = done + n, batches = batches + 1
    RETURNING * INTO st;
    RAISE NOTICE 'fix_orphans: batch %: % rows done, % left', st.batches, st.done, st.total - st.next;
    RETURN st.next >= st.total;
END
$$;

CREATE FUNCTION integrity_guard._fix_orphans_finish(child regclass, child_columns text[],
                                                    parent regclass, parent_columns text[],
                                                    action text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st record;
BEGIN
    parent_columns := coalesce(parent_columns, integrity_guard._repair_pkey(parent));
    SELECT * INTO STRICT st FROM pg_temp.ig_repair_state;
    PERFORM integrity_guard._repair_end();
    PERFORM integrity_guard._repair_record('orphans_fixed', child,
        format('(%s) -> %s(%s)',
               (SELECT string_agg(quote_ident(c), ', ') FROM unnest(child_columns) c),
               integrity_guard._repair_qualified(parent),
               (SELECT string_agg(quote_ident(c), ', ') FROM unnest(parent_columns) c)),
        jsonb_build_object('action', action, 'batches', st.batches,
                           'found', st.total),
        st.done);
END
$$;

CREATE PROCEDURE integrity_guard.fix_orphans(child regclass, child_columns text[],
                                             parent regclass, parent_columns text[] DEFAULT NULL,
                                             action text DEFAULT 'set_null',
                                             batch_rows integer DEFAULT 10000)
LANGUAGE plpgsql
AS $$
DECLARE
    can_commit boolean;
    finished boolean;
BEGIN
    CALL integrity_guard._repair_can_commit(can_commit);
    PERFORM integrity_guard._fix_orphans_start(child, child_columns, parent, parent_columns,
                                               action, batch_rows, can_commit);
    IF can_commit THEN
        COMMIT;
    END IF;
    LOOP
        finished := integrity_guard._fix_orphans_step(child, child_columns, parent,
                                                      parent_columns, action);
        EXIT WHEN finished;
        IF can_commit THEN
            COMMIT;
        END IF;
    END LOOP;
    PERFORM integrity_guard._fix_orphans_finish(child, child_columns, parent, parent_columns,
                                                action);
END
$$;

COMMENT ON PROCEDURE integrity_guard.fix_orphans(regclass, text[], regclass, text[], text, integer) IS
  'Sets orphaned references to NULL (or deletes the rows) in batches that commit between them; records orphans_fixed';

--------------------------------------------------------------------------
-- Duplicates before a UNIQUE, and merging them
--------------------------------------------------------------------------
CREATE FUNCTION integrity_guard._repair_rel_key(rel regclass)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key text[] := integrity_guard._repair_pkey(rel);
BEGIN
    IF key IS NULL THEN
        RAISE EXCEPTION 'table % has no primary key', rel
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    DETAIL = 'The rows of a duplicate group are told apart and kept or deleted by their primary key.',
                    HINT = 'Add a primary key to the table first.';
    END IF;
    RETURN key;
END
$$;

-- "created_at DESC, id" -> ORDER BY text over alias t, every name checked.
CREATE FUNCTION integrity_guard._repair_keep_order(rel regclass, keep_order text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    item text;
    m text[];
    col text;
    result text[] := '{}';
BEGIN
    IF keep_order IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH item IN ARRAY regexp_split_to_array(keep_order, ',') LOOP
        m := regexp_match(item, '^\s*("(?:[^"]|"")+"|[^\s"]+)(?:\s+(asc|desc))?\s*$', 'i');
        IF m IS NULL THEN
            RAISE EXCEPTION 'invalid keep_order "%"', keep_order
                  USING ERRCODE = 'invalid_parameter_value',
                        DETAIL = format('Cannot read "%s".', btrim(item)),
                        HINT = 'keep_order is a comma-separated list of column names, each optionally followed by ASC or DESC, e.g. ''created_at DESC, id''.';
        END IF;
        -- SQL identifier rules: quoted as is, unquoted folded to lower case
        col := CASE WHEN left(m[1], 1) = '"' THEN replace(substr(m[1], 2, length(m[1]) - 2), '""', '"')
                    ELSE lower(m[1]) END;
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = rel AND a.attname = col
                         AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" of table % does not exist', col, rel
                  USING ERRCODE = 'undefined_column',
                        HINT = 'keep_order names columns as in SQL: unquoted names are folded to lower case.';
        END IF;
        result := result || format('t.%I %s', col, coalesce(upper(m[2]), 'ASC'));
    END LOOP;
    RETURN array_to_string(result, ', ');
END
$$;

CREATE FUNCTION integrity_guard.duplicates(rel regclass, columns text[])
RETURNS TABLE (key jsonb, row_count bigint, keep jsonb, others jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pk text[];
    cols text;
BEGIN
    PERFORM integrity_guard._repair_table(rel, 'table');
    PERFORM integrity_guard._repair_columns(rel, columns, 'columns');
    pk := integrity_guard._repair_rel_key(rel);
    cols := (SELECT string_agg(format('t.%I', c), ', ') FROM unnest(columns) c);
    RETURN QUERY EXECUTE format(
        'SELECT %s, count(*), (pg_catalog.array_agg(%s ORDER BY %s))[1],'
        ' pg_catalog.to_jsonb((pg_catalog.array_agg(%s ORDER BY %s))[2:])'
        ' FROM %s t WHERE %s GROUP BY %s HAVING count(*) > 1 ORDER BY %s',
        integrity_guard._repair_json(columns, 't'),
        integrity_guard._repair_json(pk, 't'),
        (SELECT string_agg(format('t.%I', c), ', ') FROM unnest(pk) c),
        integrity_guard._repair_json(pk, 't'),
        (SELECT string_agg(format('t.%I', c), ', ') FROM unnest(pk) c),
        integrity_guard._repair_qualified(rel),
        (SELECT string_agg(format('t.%I IS NOT NULL', c), ' AND ') FROM unnest(columns) c),
        cols, cols);
END
$$;

COMMENT ON FUNCTION integrity_guard.duplicates(regclass, text[]) IS
  'Groups of rows that would block a UNIQUE on the columns, with the row kept (lowest primary key) and the others';

-- The references registered with guard_children on a parent, from the
-- trigger arguments '[schema.]child(col, ...)[ = (pcol, ...)]'.
CREATE FUNCTION integrity_guard._repair_registered(parent regclass)
RETURNS TABLE (child regclass, child_columns text[], parent_columns text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    spec text;
    m text[];
    names text[];
    ccols text[];
    pcols text[];
BEGIN
    -- DISTINCT: a parent with deferred foreign keys has a second children
    -- trigger (the deferred companion) with the same arguments
    FOR spec IN
        SELECT DISTINCT a FROM integrity_guard.guards g, unnest(g.columns) a
        WHERE g.table_name = parent AND g.kind = 'children'
        ORDER BY 1
    LOOP
        m := regexp_match(spec, '^((?:[^"(]|"[^"]*")+)\(([^)]*)\)\s*(?:=\s*\(([^)]*)\))?\s*$');
        CONTINUE WHEN m IS NULL;
        names := parse_ident(btrim(m[1]));
        BEGIN
        child := CASE WHEN cardinality(names) = 1
                      THEN to_regclass(format('%I.%I', (SELECT n.nspname FROM pg_class c JOIN pg_namespace n
                                                          ON n.oid = c.relnamespace WHERE c.oid = parent),
                                              names[1]))
                      ELSE to_regclass(format('%I.%I', names[1], names[2])) END;
        EXCEPTION WHEN insufficient_privilege THEN
            child := NULL;      -- in a schema the caller cannot use
        END;
        CONTINUE WHEN child IS NULL;
        SELECT array_agg((parse_ident(btrim(x)))[1] ORDER BY o) INTO ccols
          FROM unnest(regexp_split_to_array(m[2], ',(?=(?:[^"]*"[^"]*")*[^"]*$)')) WITH ORDINALITY AS u(x, o);
        IF m[3] IS NULL THEN
            pcols := integrity_guard._repair_pkey(parent);
        ELSE
            SELECT array_agg((parse_ident(btrim(x)))[1] ORDER BY o) INTO pcols
              FROM unnest(regexp_split_to_array(m[3], ',(?=(?:[^"]*"[^"]*")*[^"]*$)')) WITH ORDINALITY AS u(x, o);
        END IF;
        child_columns := ccols;
        parent_columns := pcols;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Every reference to rel: declared foreign keys, and the undeclared ones
-- registered with guard_children (a registered one that repeats a declared
-- foreign key is listed once).
CREATE FUNCTION integrity_guard._repair_references(rel regclass)
RETURNS TABLE (child regclass, child_columns text[], parent_columns text[], declared boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH fk AS (
    SELECT con.conrelid::regclass AS child,
           ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o) AS cc,
           ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o) AS pc
    FROM pg_constraint con
    WHERE con.contype = 'f' AND con.confrelid = $1 AND con.conparentid = 0
  )
  SELECT fk.child, fk.cc, fk.pc, true FROM fk
  UNION ALL
  SELECT r.child, r.child_columns, r.parent_columns, false
  FROM integrity_guard._repair_registered($1) r
  WHERE NOT EXISTS (SELECT 1 FROM fk WHERE fk.child = r.child AND fk.cc = r.child_columns
                                       AND fk.pc = r.parent_columns)
  ORDER BY 1, 2
$$;

CREATE FUNCTION integrity_guard._merge_start(rel regclass, columns text[], keep_order text,
                                             batch_groups integer, on_child_conflict text,
                                             can_commit boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off                   -- batch statements: compiling costs more than they run
AS $$
DECLARE
    pk text[];
    needed text[];
    ord text;
    total bigint;
    r record;
BEGIN
    PERFORM integrity_guard._repair_table(rel, 'table');
    PERFORM integrity_guard._repair_columns(rel, columns, 'columns');
    pk := integrity_guard._repair_rel_key(rel);
    ord := integrity_guard._repair_keep_order(rel, keep_order);
    IF on_child_conflict IS NULL OR on_child_conflict NOT IN ('delete', 'error') THEN
        RAISE EXCEPTION 'invalid on_child_conflict "%"', on_child_conflict
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Use delete (the losing side''s child row is deleted and recorded) or error.';
    END IF;
    IF batch_groups IS NULL OR batch_groups < 1 THEN
        RAISE EXCEPTION 'batch_groups must be at least 1'
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- every reference must be usable before anything changes
    needed := pk || columns;
    FOR r IN SELECT * FROM integrity_guard._repair_references(rel) LOOP
        PERFORM integrity_guard._repair_columns(r.child, r.child_columns, 'child columns');
        PERFORM integrity_guard._repair_columns(rel, r.parent_columns, 'parent columns');
        needed := needed || r.parent_columns;
    END LOOP;
    needed := ARRAY(SELECT DISTINCT c FROM unnest(needed) c ORDER BY c);

    -- The work list: every row of every duplicate group, numbered by group
    -- ("ig#g") and by rank within it ("ig#rn" = 1 is kept).
    PERFORM integrity_guard._repair_end();
    EXECUTE format(
        'CREATE TEMP TABLE ig_repair_work AS'
        ' SELECT pg_catalog.dense_rank() OVER (ORDER BY %s) AS "ig#g", s.* FROM'
        ' (SELECT pg_catalog.count(*) OVER w AS "ig#cnt",'
        '         pg_catalog.row_number() OVER (w ORDER BY %s) AS "ig#rn", %s'
        '  FROM %s t WHERE %s WINDOW w AS (PARTITION BY %s)) s'
        ' WHERE s."ig#cnt" > 1',
        (SELECT string_agg(format('s.%I', c), ', ') FROM unnest(columns) c),
        concat_ws(', ', ord, (SELECT string_agg(format('t.%I', c), ', ') FROM unnest(pk) c)),
        (SELECT string_agg(format('t.%I', c), ', ') FROM unnest(needed) c),
        integrity_guard._repair_qualified(rel),
        (SELECT string_agg(format('t.%I IS NOT NULL', c), ' AND ') FROM unnest(columns) c),
        (SELECT string_agg(format('t.%I', c), ', ') FROM unnest(columns) c));
    CREATE INDEX ON pg_temp.ig_repair_work ("ig#g", "ig#rn");
    ANALYZE pg_temp.ig_repair_work;
    SELECT coalesce(max("ig#g"), 0) INTO total FROM pg_temp.ig_repair_work;
    PERFORM integrity_guard._repair_begin(total, batch_groups, can_commit, 'merge_duplicates');
END
$$;

-- One batch of groups; true when nothing is left.
CREATE FUNCTION integrity_guard._merge_step(rel regclass, columns text[], on_child_conflict text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off                   -- batch statements: compiling costs more than they run
AS $$
DECLARE
    st record;
    pk text[] := integrity_guard._repair_rel_key(rel);
    r record;
    u record;
    range text;
    pkjoin text;
    refjoin text;
    n bigint;
    moved_now bigint := 0;
    deleted bigint;
    conflicts_now jsonb;
    victims tid[];
    victim_tables oid[];
BEGIN
    SELECT * INTO STRICT st FROM pg_temp.ig_repair_state;
    IF st.next >= st.total THEN
        RETURN true;
    END IF;
    conflicts_now := st.conflicts;
    range := format('l."ig#g" > %s AND l."ig#g" <= %s', st.next, st.next + st.batch);
    pkjoin := (SELECT string_agg(format('t.%I = l.%I', c, c), ' AND ') FROM unnest(pk) c);

    -- Lock the batch's groups first: the rows to delete against writes and
    -- new references, the rows kept against deletion.
    EXECUTE format('SELECT 1 FROM %s t, pg_temp.ig_repair_work l WHERE %s AND %s AND l."ig#rn" > 1 FOR UPDATE OF t',
                   integrity_guard._repair_qualified(rel), range, pkjoin);
    EXECUTE format('SELECT 1 FROM %s t, pg_temp.ig_repair_work l WHERE %s AND %s AND l."ig#rn" = 1 FOR KEY SHARE OF t',
                   integrity_guard._repair_qualified(rel), range, pkjoin);

    FOR r IN SELECT * FROM integrity_guard._repair_references(rel) LOOP
        -- c references loser l of group whose kept row is k
        refjoin := format('%s AND l."ig#rn" > 1 AND k."ig#g" = l."ig#g" AND k."ig#rn" = 1 AND %s',
                          range,
                          (SELECT string_agg(format('c.%I = l.%I', cc, pc), ' AND ')
                             FROM unnest(r.child_columns, r.parent_columns) AS x(cc, pc)));

        -- Child rows that would collide in one of the child's own unique
        -- indexes once re-pointed: the losing side's copy goes.
        FOR u IN
            SELECT i.indexrelid::regclass AS idx,
                   ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
                         ORDER BY k.o) AS cols
            FROM pg_index i
            WHERE i.indrelid = r.child AND i.indisunique AND i.indisvalid
              AND i.indexprs IS NULL AND i.indpred IS NULL
              AND EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) k(n)
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
                          WHERE a.attname = ANY (r.child_columns))
            ORDER BY 1
        LOOP
            EXECUTE format(
                'WITH moving AS ('
                '  SELECT c.tableoid AS toid, c.ctid AS tid, l."ig#rn" AS prio, %1$s'
                '  FROM %2$s c, pg_temp.ig_repair_work l, pg_temp.ig_repair_work k WHERE %3$s),'
                ' ranked AS ('
                '  SELECT m.toid, m.tid, pg_catalog.row_number() OVER (PARTITION BY %4$s ORDER BY m.prio, m.toid, m.tid) AS dup,'
                '         EXISTS (SELECT 1 FROM %2$s o WHERE %5$s'
                '                 AND NOT EXISTS (SELECT 1 FROM pg_temp.ig_repair_work l2'
                '                                 WHERE l2."ig#g" > %7$s AND l2."ig#g" <= %8$s'
                '                                   AND l2."ig#rn" > 1 AND %6$s)) AS taken'
                '  FROM moving m WHERE %9$s)'
                ' SELECT pg_catalog.array_agg(toid), pg_catalog.array_agg(tid) FROM ranked WHERE dup > 1 OR taken',
                -- 1: the unique columns' values after re-pointing
                (SELECT string_agg(format('%s AS "ig#u%s"',
                                          CASE WHEN p.pc IS NULL THEN format('c.%I', uc)
                                               ELSE format('k.%I', p.pc) END, o), ', ')
                   FROM unnest(u.cols) WITH ORDINALITY AS x(uc, o)
                   LEFT JOIN unnest(r.child_columns, r.parent_columns) AS p(cc, pc) ON p.cc = x.uc),
                integrity_guard._repair_qualified(r.child),
                refjoin,
                (SELECT string_agg(format('m."ig#u%s"', o), ', ') FROM generate_subscripts(u.cols, 1) o),
                (SELECT string_agg(format('o.%I = m."ig#u%s"', uc, o), ' AND ')
                   FROM unnest(u.cols) WITH ORDINALITY AS x(uc, o)),
                (SELECT string_agg(format('o.%I = l2.%I', cc, pc), ' AND ')
                   FROM unnest(r.child_columns, r.parent_columns) AS x(cc, pc)),
                st.next, st.next + st.batch,
                (SELECT string_agg(format('m."ig#u%s" IS NOT NULL', o), ' AND ') FROM generate_subscripts(u.cols, 1) o))
            INTO victim_tables, victims;
            n := coalesce(cardinality(victims), 0);
            IF n > 0 AND on_child_conflict = 'error' THEN
                RAISE EXCEPTION 'merging duplicates of % would make % rows of % collide in unique index %',
                                rel, n, r.child, u.idx
                      USING ERRCODE = 'unique_violation',
                            DETAIL = 'Rows of the duplicates to delete and of the row kept (or of two duplicates) would then share a key.',
                            HINT = 'Pass on_child_conflict => ''delete'' to delete the losing side''s rows and record them, or resolve them first.  Batches committed before this one stay merged.';
            ELSIF n > 0 THEN
                -- a ctid names a row within one partition
                EXECUTE format('DELETE FROM %s c WHERE c.ctid = ANY ($2)'
                               ' AND (c.tableoid, c.ctid) IN (SELECT * FROM unnest($1, $2))',
                               integrity_guard._repair_qualified(r.child))
                USING victim_tables, victims;
                GET DIAGNOSTICS n = ROW_COUNT;
                conflicts_now := jsonb_set(conflicts_now, ARRAY[r.child::text],
                                           to_jsonb(coalesce((conflicts_now->>r.child::text)::bigint, 0) + n));
            END IF;
        END LOOP;

        EXECUTE format('UPDATE %s c SET %s FROM pg_temp.ig_repair_work l, pg_temp.ig_repair_work k WHERE %s',
                       integrity_guard._repair_qualified(r.child),
                       (SELECT string_agg(format('%I = k.%I', cc, pc), ', ')
                          FROM unnest(r.child_columns, r.parent_columns) AS x(cc, pc)),
                       refjoin);
        GET DIAGNOSTICS n = ROW_COUNT;
        moved_now := moved_now + n;
    END LOOP;

    EXECUTE format('DELETE FROM %s t USING pg_temp.ig_repair_work l WHERE %s AND l."ig#rn" > 1 AND %s',
                   integrity_guard._repair_qualified(rel), range, pkjoin);
    GET DIAGNOSTICS deleted = ROW_COUNT;

    UPDATE pg_temp.ig_repair_state
       SET next = least(next + batch, total), done = done + deleted, moved = moved + moved_now,
           batches = batches + 1, conflicts = conflicts_now
    RETURNING * INTO st;
    RAISE NOTICE 'merge_duplicates: batch %: % groups done, % left (% rows deleted, % child rows re-pointed)',
                 st.batches, st.next, st.total - st.next, st.done, st.moved;
    RETURN st.next >= st.total;
END
$$;

CREATE FUNCTION integrity_guard._merge_finish(rel regclass, columns text[], keep_order text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st record;
BEGIN
    SELECT * INTO STRICT st FROM pg_temp.ig_repair_state;
    PERFORM integrity_guard._repair_end();
    IF st.conflicts <> '{}' THEN
        RAISE NOTICE 'merge_duplicates: child rows deleted because they collided with the kept row''s: %', st.conflicts;
    END IF;
    PERFORM integrity_guard._repair_record('duplicates_merged', rel,
        format('(%s)', (SELECT string_agg(quote_ident(c), ', ') FROM unnest(columns) c)),
        jsonb_build_object('groups', st.total, 'rows_deleted', st.done,
                           'children_moved', st.moved, 'child_conflicts_deleted', st.conflicts,
                           'keep_order', keep_order, 'batches', st.batches),
        st.done);
END
$$;

CREATE PROCEDURE integrity_guard.merge_duplicates(rel regclass, columns text[],
                                                  keep_order text DEFAULT NULL,
                                                  batch_groups integer DEFAULT 1000,
                                                  on_child_conflict text DEFAULT 'delete')
LANGUAGE plpgsql
AS $$
DECLARE
    can_commit boolean;
    finished boolean;
BEGIN
    CALL integrity_guard._repair_can_commit(can_commit);
    PERFORM integrity_guard._merge_start(rel, columns, keep_order, batch_groups,
                                         on_child_conflict, can_commit);
    IF can_commit THEN
        COMMIT;
    END IF;
    LOOP
        finished := integrity_guard._merge_step(rel, columns, on_child_conflict);
        EXIT WHEN finished;
        IF can_commit THEN
            COMMIT;
        END IF;
    END LOOP;
    PERFORM integrity_guard._merge_finish(rel, columns, keep_order);
END
$$;

COMMENT ON PROCEDURE integrity_guard.merge_duplicates(regclass, text[], text, integer, text) IS
  'Keeps one row per duplicate group, re-points declared and registered references to it, deletes the others in batches; records duplicates_merged';

--------------------------------------------------------------------------
-- check(): headroom, orphans, inverted ranges, guards, audit
--------------------------------------------------------------------------
CREATE FUNCTION integrity_guard._repair_status(ratio numeric)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN $1 >= 0.9 THEN 'critical' WHEN $1 >= 0.75 THEN 'warning' ELSE 'ok' END
$$;

-- The largest value of a column: max() when exact or when an index leads
-- with the column (the planner reads one end of it), otherwise the upper
-- end of the planner statistics; NULL when neither is at hand.
CREATE FUNCTION integrity_guard._repair_column_max(rel regclass, col name, exact boolean,
                                                   OUT max_value numeric, OUT how text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF exact OR EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a
                          ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                        WHERE i.indrelid = rel AND a.attname = col AND i.indpred IS NULL) THEN
        EXECUTE format('SELECT max(%I)::numeric FROM %s', col, integrity_guard._repair_qualified(rel))
           INTO max_value;
        how := CASE WHEN exact THEN 'exact scan' ELSE 'index' END;
        RETURN;
    END IF;
    SELECT max(v::numeric) INTO max_value
    FROM pg_stats s
    CROSS JOIN LATERAL unnest(coalesce(s.histogram_bounds::text::text[], '{}')
                              || coalesce(s.most_common_vals::text::text[], '{}')) v
    WHERE s.schemaname = (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE c.oid = rel)
      AND s.tablename = (SELECT c.relname FROM pg_class c WHERE c.oid = rel)
      AND s.attname = col;
    how := 'statistics';
END
$$;

-- What the caller can read: the table (or a column) and its schema.
CREATE FUNCTION integrity_guard._repair_readable(rel regclass, col smallint DEFAULT NULL)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT has_schema_privilege(c.relnamespace, 'USAGE')
         AND CASE WHEN $2 IS NULL THEN has_table_privilege(c.oid, 'SELECT')
                  ELSE has_column_privilege(c.oid, $2, 'SELECT') END
  FROM pg_class c WHERE c.oid = $1
$$;

CREATE FUNCTION integrity_guard.check(exact boolean DEFAULT false)
RETURNS TABLE (check_name text, rel regclass, target text, status text, value numeric, detail text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
    m record;
    lim numeric;
    n bigint;
    pst record;
BEGIN
    -- counter_headroom: int2/int4 primary keys, sequence-owned columns and
    -- guarded counters
    FOR c IN
        SELECT a.attrelid::regclass AS r, a.attname, a.atttypid,
               -- a guarded counter's own upper bound ('col:min:max') when lower
               least(CASE a.atttypid WHEN 'int2'::regtype THEN 32767 ELSE 2147483647 END,
                     (SELECT min(s.max_value)::numeric
                      FROM integrity_guard.guards g, unnest(g.columns) spec,
                           integrity_guard._counter_spec(spec) s
                      WHERE g.table_name = a.attrelid AND g.kind = 'counter'
                        AND s.column_name = a.attname)) AS type_max
        FROM pg_attribute a
        JOIN pg_class t ON t.oid = a.attrelid
        WHERE t.relkind IN ('r', 'p') AND NOT t.relispartition
          AND t.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace,
                                     'integrity_guard'::regnamespace)
          AND a.attnum > 0 AND NOT a.attisdropped
          AND a.atttypid IN ('int2'::regtype, 'int4'::regtype)
          AND integrity_guard._repair_readable(a.attrelid, a.attnum)
          AND (EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary
                                                  AND a.attnum = ANY (i.indkey::int2[]))
               OR a.attidentity <> ''
               OR EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.refobjid = a.attrelid AND d.refobjsubid = a.attnum
                            AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                            AND EXISTS (SELECT 1 FROM pg_class s WHERE s.oid = d.objid AND s.relkind = 'S'))
               OR EXISTS (SELECT 1 FROM integrity_guard.guards g, unnest(g.columns) spec,
                                        integrity_guard._counter_spec(spec) s
                          WHERE g.table_name = a.attrelid AND g.kind = 'counter'
                            AND s.column_name = a.attname))
        ORDER BY 1, 2
    LOOP
        m := integrity_guard._repair_column_max(c.r, c.attname, exact);
        check_name := 'counter_headroom';
        rel := c.r;
        target := c.attname;
        IF m.max_value IS NULL THEN
            status := 'ok';
            value := NULL;
            detail := CASE WHEN m.how = 'statistics'
                           THEN 'not measured: no index and no statistics (ANALYZE, or check(exact => true))'
                           ELSE 'empty' END;
        ELSE
            value := round(greatest(m.max_value, 0) / c.type_max, 4);
            status := integrity_guard._repair_status(value);
            detail := format('max %s of %s (%s, from %s)', m.max_value, c.type_max,
                             format_type(c.atttypid, NULL), m.how);
        END IF;
        RETURN NEXT;
    END LOOP;

    -- sequence_headroom: sequences narrower than bigint, by type or by
    -- their owning column
    FOR c IN
        SELECT s.seqrelid::regclass AS seq, s.seqtypid, s.seqmax, s.seqincrement,
               ps.last_value, a.atttypid AS coltype, a.attname, d.refobjid::regclass AS owner
        FROM pg_sequence s
        JOIN pg_class sc ON sc.oid = s.seqrelid
        LEFT JOIN pg_depend d ON d.objid = s.seqrelid AND d.classid = 'pg_class'::regclass
             AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
        LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        LEFT JOIN pg_sequences ps ON ps.schemaname = (SELECT nspname FROM pg_namespace WHERE oid = sc.relnamespace)
                                 AND ps.sequencename = sc.relname
        WHERE sc.relnamespace <> 'integrity_guard'::regnamespace
          AND has_schema_privilege(sc.relnamespace, 'USAGE')
          AND (has_sequence_privilege(s.seqrelid, 'SELECT') OR has_sequence_privilege(s.seqrelid, 'USAGE'))
          AND (s.seqtypid IN ('int2'::regtype, 'int4'::regtype)
               OR a.atttypid IN ('int2'::regtype, 'int4'::regtype))
          AND s.seqincrement > 0
        ORDER BY 1
    LOOP
        lim := least(c.seqmax::numeric,
                     CASE c.coltype WHEN 'int2'::regtype THEN 32767
                                    WHEN 'int4'::regtype THEN 2147483647 ELSE c.seqmax END);
        check_name := 'sequence_headroom';
        rel := c.seq;
        target := CASE WHEN c.owner IS NULL THEN NULL ELSE format('%s.%I', c.owner, c.attname) END;
        value := round(coalesce(c.last_value, 0) / lim, 4);
        status := integrity_guard._repair_status(value);
        detail := format('last value %s of %s', coalesce(c.last_value::text, 'none'), lim);
        RETURN NEXT;
    END LOOP;

    -- orphans: NOT VALID foreign keys and registered undeclared references
    FOR c IN
        SELECT con.conrelid::regclass AS child, con.confrelid::regclass AS parent,
               ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o) AS cc,
               ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o) AS pc,
               format(CASE WHEN con.convalidated THEN 'foreign key %I with disabled triggers'
                           ELSE 'NOT VALID foreign key %I' END, con.conname) AS what
        FROM pg_constraint con
        WHERE con.contype = 'f' AND con.conparentid = 0
          AND (NOT con.convalidated
               OR EXISTS (SELECT 1 FROM pg_trigger t
                          WHERE t.tgconstraint = con.oid AND t.tgenabled = 'D'))
        UNION ALL
        SELECT r.child, g.table_name, r.child_columns, r.parent_columns, 'reference registered with guard_children'
        FROM (SELECT DISTINCT table_name FROM integrity_guard.guards
              WHERE kind = 'children' AND integrity_guard._repair_readable(table_name)) g
        CROSS JOIN LATERAL integrity_guard._repair_registered(g.table_name) r
        ORDER BY 1, 3
    LOOP
        CONTINUE WHEN NOT (integrity_guard._repair_readable(c.child) AND integrity_guard._repair_readable(c.parent));
        EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s c WHERE %s %s) s',
                       integrity_guard._repair_qualified(c.child),
                       integrity_guard._repair_orphan_qual(c.cc, c.parent, c.pc),
                       CASE WHEN exact THEN '' ELSE 'LIMIT 1' END)
           INTO n;
        check_name := 'orphans';
        rel := c.child;
        target := format('(%s) -> %s(%s)', array_to_string(c.cc, ', '), c.parent, array_to_string(c.pc, ', '));
        value := n;
        status := CASE WHEN n > 0 THEN 'warning' ELSE 'ok' END;
        detail := c.what || CASE WHEN n = 0 THEN ': no orphans'
                                 WHEN exact THEN format(': %s orphaned rows (integrity_guard.orphans() lists them)', n)
                                 ELSE ': orphaned rows found (check(exact => true) counts them)' END;
        RETURN NEXT;
    END LOOP;

    -- inverted_ranges: rows of guarded lower/upper pairs stored inverted
    FOR c IN
        SELECT g.table_name AS r, g.columns[1] AS lo, g.columns[2] AS hi
        FROM integrity_guard.guards g
        WHERE g.kind = 'range' AND cardinality(g.columns) = 2
        ORDER BY 1, 2
    LOOP
        CONTINUE WHEN NOT integrity_guard._repair_readable(c.r);
        BEGIN
            EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s t WHERE t.%I > t.%I %s) s',
                           integrity_guard._repair_qualified(c.r), c.lo, c.hi,
                           CASE WHEN exact THEN '' ELSE 'LIMIT 1' END)
               INTO n;
        EXCEPTION WHEN undefined_column OR insufficient_privilege THEN
            CONTINUE;           -- reported by the guards check
        END;
        check_name := 'inverted_ranges';
        rel := c.r;
        target := format('%I, %I', c.lo, c.hi);
        value := n;
        status := CASE WHEN n > 0 THEN 'warning' ELSE 'ok' END;
        detail := CASE WHEN n = 0 THEN 'no inverted rows'
                       WHEN exact THEN format('%s rows with lower > upper', n)
                       ELSE 'rows with lower > upper found (check(exact => true) counts them)' END;
        RETURN NEXT;
    END LOOP;

    -- guards: disabled triggers, and guards whose arguments no longer fit
    -- their table (a column dropped, renamed or retyped)
    FOR c IN
        SELECT t.tgrelid::regclass AS r, t.tgname, p.proname, t.tgenabled,
               integrity_guard._trigger_args(t.tgargs) AS args
        FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE p.pronamespace = 'integrity_guard'::regnamespace
          AND p.prorettype = 'pg_catalog.trigger'::regtype AND t.tgparentid = 0
        ORDER BY 1, 2
    LOOP
        CONTINUE WHEN NOT integrity_guard._repair_readable(c.r);
        check_name := 'guards';
        rel := c.r;
        target := c.tgname;
        value := NULL;
        status := 'ok';
        detail := 'enabled';
        BEGIN
            PERFORM integrity_guard._check_args(c.proname, c.r, c.args);
        EXCEPTION WHEN OTHERS THEN
            status := 'critical';
            detail := 'arguments no longer fit the table: ' || SQLERRM;
        END;
        IF status = 'ok' AND c.tgenabled = 'D' THEN
            status := 'warning';
            detail := 'trigger disabled: the guard does not act';
        END IF;
        RETURN NEXT;
    END LOOP;

    -- audit: incidents waiting in the queue (unwritten) and dropped ones
    SELECT * INTO pst FROM integrity_guard._pipeline_status();
    check_name := 'audit';
    rel := NULL;
    IF pst.active THEN
        target := 'queue';
        value := round(pst.queue_used::numeric / greatest(pst.queue_capacity, 1), 4);
        status := integrity_guard._repair_status(value);
        detail := format('%s of %s queue entries unwritten', pst.queue_used, pst.queue_capacity);
        RETURN NEXT;
        target := 'dropped';
        value := pst.queue_dropped + pst.discarded;
        status := CASE WHEN value > 0 THEN 'warning' ELSE 'ok' END;
        detail := format('%s incidents dropped (queue full), %s discarded', pst.queue_dropped, pst.discarded);
        RETURN NEXT;
    ELSE
        target := 'queue';
        value := NULL;
        status := 'ok';
        detail := 'transactional audit (library not preloaded): no queue, nothing dropped';
        RETURN NEXT;
    END IF;
END
$$;

COMMENT ON FUNCTION integrity_guard.check(boolean) IS
  'Headroom of counters and sequences, orphans, inverted ranges, guard health and audit drops, as the caller may see them';

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
      FROM jsonb_each(NEW.detail) e WHERE e.key IN ('key', 'detail', 'samples')
    ON CONFLICT (id) DO NOTHING;
    UPDATE integrity_guard.audit_log a SET detail = a.detail - '{key,detail,samples}'::text[]
     WHERE a.id = NEW.id;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION integrity_guard._audit_keys_apart() FROM PUBLIC;
CREATE TRIGGER audit_log_keys_apart AFTER INSERT ON integrity_guard.audit_log
    FOR EACH ROW WHEN (NEW.detail ?| '{key,detail,samples}')
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
    UPDATE integrity_guard.audit_log a SET relid = NULL
     WHERE a.relid IN (SELECT d.objid FROM pg_event_trigger_dropped_objects() d
                       WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0)
       AND a.rel_incarnation = here;
END
$$;
REVOKE ALL ON FUNCTION integrity_guard._audit_follow_ddl() FROM PUBLIC;

-- Renames: the stored names follow.  Called by _audit_follow_rename (C),
-- which returns at once for every ALTER that is not a rename or SET SCHEMA.
CREATE FUNCTION integrity_guard._audit_follow_names()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    here uuid := (SELECT i.token FROM integrity_guard.database_incarnation i);
BEGIN
    UPDATE integrity_guard.audit_log a
       SET schema_name = n.nspname, table_name = c.relname
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = a.relid AND a.rel_incarnation = here
       AND (a.schema_name, a.table_name) IS DISTINCT FROM (n.nspname, c.relname)
       AND a.relid IN (SELECT cl.oid FROM pg_event_trigger_ddl_commands() d
                       JOIN pg_class cl ON (d.classid = 'pg_class'::regclass AND cl.oid = d.objid)
                                        OR (d.classid = 'pg_namespace'::regclass AND cl.relnamespace = d.objid));
END
$$;
REVOKE ALL ON FUNCTION integrity_guard._audit_follow_names() FROM PUBLIC;

CREATE FUNCTION integrity_guard._audit_follow_rename()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'ig_audit_follow_rename'
LANGUAGE C SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION integrity_guard._audit_follow_rename() FROM PUBLIC;

CREATE EVENT TRIGGER integrity_guard_audit_drop ON sql_drop
    EXECUTE FUNCTION integrity_guard._audit_follow_ddl();
CREATE EVENT TRIGGER integrity_guard_audit_rename ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA')
    EXECUTE FUNCTION integrity_guard._audit_follow_rename();

-- Rows recorded before 1.2 keep their key values in detail: move them.
INSERT INTO integrity_guard.audit_keys (id, key_values)
SELECT a.id, (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(a.detail) e
              WHERE e.key IN ('key', 'detail', 'samples'))
FROM integrity_guard.audit_log a WHERE a.detail ?| '{key,detail,samples}';
UPDATE integrity_guard.audit_log SET detail = detail - '{key,detail,samples}'::text[]
 WHERE detail ?| '{key,detail,samples}';

-- Rows recorded before 1.2 were visible by name: bind them once.
UPDATE integrity_guard.audit_log a
   SET relid = (SELECT c.oid FROM pg_catalog.pg_class c
                JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = a.schema_name AND c.relname = a.table_name
                  AND n.nspname !~ '^pg_(toast_)?temp_'),
       rel_incarnation = (SELECT i.token FROM integrity_guard.database_incarnation i);

-- The relation an incident belongs to in this database (here: this
-- database's incarnation token): its relid when the row was recorded here
-- (rel_incarnation NULL: still pending) or bound here, else NULL: an OID
-- from another database names no relation here.  The one home of that rule,
-- for the visibility functions and events(rel).  A RETURN body, resolved at
-- creation (so no search_path to pin) and inlined into its callers: a
-- nested SQL function call would be planned again for every row.
CREATE FUNCTION integrity_guard._incident_relid(a integrity_guard.audit_log, here uuid)
RETURNS oid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN a.rel_incarnation IS NULL OR a.rel_incarnation = here THEN a.relid END;

-- THE visibility rule, for stored rows and for pending ones of the same row
-- type: superusers and pg_read_all_stats see every incident; other roles
-- those of a relation of this database that still exists and that they can
-- SELECT (some column of).  Never raises: the privilege functions by OID
-- check no schema and give NULL for a relation that is gone (or for NULL).
CREATE FUNCTION integrity_guard._incident_visible(a integrity_guard.audit_log)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
      OR coalesce(pg_catalog.has_any_column_privilege(
                    integrity_guard._incident_relid($1, (SELECT i.token FROM integrity_guard.database_incarnation i)),
                    'SELECT'), false)
$$;

-- Key values: the rule of the server's own error DETAIL
-- (BuildIndexValueDescription): a superuser, or, for an incident of a
-- relation of this database (_incident_relid), no row-level security in
-- force for the role and SELECT on the table or on every key column.  That
-- SELECT makes the incident visible too (_incident_visible); pg_read_all_stats
-- alone does not show key values.
CREATE FUNCTION integrity_guard._key_visible(a integrity_guard.audit_log)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user), false)
      OR coalesce(
           (SELECT NOT pg_catalog.row_security_active(x.relid)
                   AND (pg_catalog.has_table_privilege(x.relid, 'SELECT')
                        OR (SELECT bool_and(coalesce(c > 0 AND pg_catalog.has_column_privilege(x.relid, c, 'SELECT'), false))
                            FROM pg_catalog.unnest(CASE WHEN $1.detail ? 'samples' THEN '{0}'::smallint[]
                                                        ELSE coalesce($1.key_columns,
                                                            (SELECT array_agg(k::smallint)
                                                             FROM jsonb_array_elements_text($1.detail->'key_columns') k),
                                                            '{0}') END) c))
            FROM (SELECT integrity_guard._incident_relid(
                           $1, (SELECT i.token FROM integrity_guard.database_incarnation i)) AS relid) x
            WHERE x.relid IS NOT NULL),
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
  SELECT CASE WHEN $1.detail ?| '{key,detail,samples}' AND NOT integrity_guard._key_visible($1)
              THEN $1.detail - '{key,detail,samples,key_columns}'::text[]
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
    AND ($2 IS NULL
         OR integrity_guard._incident_relid(u.a, (SELECT i.token FROM integrity_guard.database_incarnation i)) = $2)
    AND ($3 IS NULL OR (u.a).event_type = $3)
  ORDER BY (u.a).last_seen DESC, (u.a).id DESC
$$;

-- Internals.  Revoked from PUBLIC: what no ordinary role needs to call.
-- Kept executable (each checks its arguments and the caller's privileges
-- itself, so that a direct call can do no more than the public function):
-- the attach helpers the SECURITY INVOKER guard_*() functions call
-- (_check_args, _children_immediate, _attach, _trigger_name), what the
-- security_invoker views and readers evaluate as the reader (_trigger_args,
-- _incident_relid, _incident_visible, _key_visible, _incident_detail, _stats, _preloaded,
-- _pipeline_status, _pending, _queue_usage, _statement_table, _table_label),
-- and what the assignment rewrite puts into the
-- writer's own statements (_saturate, _sat_*, _numeric_int8_sat,
-- _float8_int8_sat, _*range_guarded), and the repair kit's steps that its
-- invoker-rights procedures call (_repair_*, _fix_orphans_*, _merge_*).
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

-- == sql17: one parser of counter column specs (issue 17) ==
-- A counter guard's column argument ('col', 'col:min:max', 'a:b::' for a
-- name with colons) as saturate_counter() itself reads it, so that the SQL
-- reading guards (check()) splits it the same way: the column and its
-- explicit bounds (NULL: the default); NULLs for a spec the trigger refuses.
-- It only parses text: PUBLIC keeps EXECUTE (check() runs as its caller).
CREATE FUNCTION integrity_guard._counter_spec(spec text, OUT column_name text,
                                              OUT min_value bigint, OUT max_value bigint)
AS 'MODULE_PATHNAME', 'ig_counter_spec'
LANGUAGE C IMMUTABLE PARALLEL SAFE STRICT;
