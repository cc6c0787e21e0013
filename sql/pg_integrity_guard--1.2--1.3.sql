-- pg_integrity_guard 1.2 -> 1.3: every entry point defends itself against a
-- hostile caller, children owned by someone else are changed only with their
-- owner's consent, captured errors stay with the relation that raised them,
-- and one bad audit entry never blocks the others.  Each section below is
-- headed by what it changes.
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.3'" to load this file. \quit

-- == hostile roles: one bad audit entry never blocks the others (issue 22) ==
-- A detail is a JSON object (the readers take keys out of it).  Rows that
-- are not (only a manual INSERT could make one) keep their value under
-- "value"; from now on the table refuses them, and a flush job sets such an
-- entry aside (counted, its error in status()) and writes the others.
UPDATE integrity_guard.audit_log SET detail = pg_catalog.jsonb_build_object('value', detail)
 WHERE detail IS NOT NULL AND pg_catalog.jsonb_typeof(detail) <> 'object';
ALTER TABLE integrity_guard.audit_log
    ADD CONSTRAINT audit_log_detail_object
    CHECK (detail IS NULL OR pg_catalog.jsonb_typeof(detail) = 'object');

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
                                                 OUT max_flush_jobs integer, OUT last_error text,
                                                 OUT set_aside bigint, OUT set_aside_error text)
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
    ('set_aside', (SELECT set_aside::text FROM p),
     CASE WHEN (SELECT set_aside FROM p) > 0
          THEN 'incidents the audit table refused, set aside so that the others were written; last: ' || (SELECT set_aside_error FROM p)
          ELSE 'incidents the audit table refused and a flush job set aside (the others are written)' END),
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

-- Readers never fail because of stored rows: occurrences that add up past
-- bigint (each row may hold up to its maximum) show the maximum.
CREATE OR REPLACE FUNCTION integrity_guard.summary(since timestamptz DEFAULT NULL)
RETURNS TABLE (schema_name name, table_name name, event_type text, target text,
               incidents bigint, occurrences bigint,
               first_seen timestamptz, last_seen timestamptz)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT a.schema_name, a.table_name, a.event_type, a.target,
         count(*), least(sum(a.occurrences), 9223372036854775807)::bigint, min(a.first_seen), max(a.last_seen)
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

-- == hostile roles: check() reports guards, and what it cannot inspect as such (issue 22) ==
-- The audit's own triggers (audit_log_bind, audit_log_keys_apart) are not
-- guards; a guard whose table the caller may read but whose arguments it
-- may not inspect (a child in a schema it cannot use) is a warning.
CREATE OR REPLACE FUNCTION integrity_guard.check(exact boolean DEFAULT false)
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
          AND p.proname IN ('saturate_counter', 'clamp_range', 'nullify_children', 'guard_unique')
          AND t.tgparentid = 0
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
        EXCEPTION
            WHEN insufficient_privilege THEN
                -- a guard the caller may not inspect is not a broken one
                status := 'warning';
                detail := 'cannot be inspected by ' || current_user || ': ' || SQLERRM;
            WHEN OTHERS THEN
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

-- == hostile roles: children owned by someone else (issue 22) ==
-- A child table is changed only as its owner, and only when that owner
-- agreed: it owns the parent too, or it has a row here (consent_children(),
-- or guard_children() run by a role that may act as the child's owner).
-- Everyone may read the consents (they name tables, as pg_class does);
-- only consent_children() writes them, as the extension's owner, after
-- checking that its caller may act as the child's owner: no other role
-- holds a privilege that could lock the table.  Tables are kept by OID
-- (regclass: dumped by name); a dropped table takes its consents along
-- (_audit_follow_ddl), and a consent holds only while its owner still owns
-- the child.
CREATE TABLE integrity_guard.children_consent (
    parent     regclass    NOT NULL,
    child      regclass    NOT NULL,
    owner      regrole     NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (parent, child)
);
COMMENT ON TABLE integrity_guard.children_consent IS
  'Child tables whose owner lets guard_children() on the parent change them (as that owner)';
SELECT pg_catalog.pg_extension_config_dump('integrity_guard.children_consent', '');
REVOKE ALL ON integrity_guard.children_consent FROM PUBLIC;
GRANT SELECT ON integrity_guard.children_consent TO PUBLIC;

-- A consent given or withdrawn drops the parent's cached guard configuration.
CREATE FUNCTION integrity_guard._consent_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'ig_consent_changed'
LANGUAGE C;
REVOKE ALL ON FUNCTION integrity_guard._consent_changed() FROM PUBLIC;
CREATE TRIGGER children_consent_changed AFTER INSERT OR UPDATE OR DELETE
    ON integrity_guard.children_consent
    FOR EACH ROW EXECUTE FUNCTION integrity_guard._consent_changed();

-- consent_children(child, parent[, allow]): the child's owner (or a role
-- with its privileges) lets guard_children() on parent clear or delete its
-- rows, as the owner, or withdraws that (allow => false).  Returns whether
-- a consent is in place afterwards.
CREATE FUNCTION integrity_guard.consent_children(child regclass, parent regclass,
                                                 allow boolean DEFAULT true)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ig_consent_children'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION integrity_guard.consent_children(regclass, regclass, boolean) IS
  'The owner of child lets guard_children() on parent change its rows (as the owner), or withdraws that';

-- guard_children() run by a role that may act as a child's owner is that
-- owner's consent, for each child of another owner than the parent's.
CREATE FUNCTION integrity_guard._consent_attached(parent regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ch record;
BEGIN
    FOR ch IN
        SELECT DISTINCT x.child, c.relowner
          FROM (SELECT con.conrelid::regclass AS child FROM pg_constraint con
                 WHERE con.contype = 'f' AND con.confrelid = parent
                   AND con.confdeltype IN ('a', 'r') AND con.conparentid = 0
                UNION
                SELECT r.child FROM integrity_guard._repair_registered(parent) r) x
          JOIN pg_class c ON c.oid = x.child
         WHERE c.relowner <> (SELECT p.relowner FROM pg_class p WHERE p.oid = parent)
    LOOP
        IF pg_has_role(ch.relowner, 'USAGE') THEN
            PERFORM integrity_guard.consent_children(ch.child, parent);
        ELSE
            RAISE NOTICE 'the guard leaves table % to the server until its owner consents', ch.child
                  USING DETAIL = format('Its owner %s does not own %s, and deletes never act on a table whose owner has not agreed.',
                                        ch.relowner::regrole, parent),
                        HINT = format('As %s: SELECT integrity_guard.consent_children(%L, %L);',
                                      ch.relowner::regrole, ch.child::text, parent::text);
        END IF;
    END LOOP;
END
$$;

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
    -- no row trigger with a transition table on a partitioned table, nor on
    -- an inheritance child (the guard then goes row by row)
    IF kind_of_rel = 'p'
       OR EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                  WHERE i.inhrelid = parent AND NOT c.relispartition) THEN
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
    -- The attaching role consents for the children it may act for; any
    -- other owner's child is left to the server until its owner consents.
    PERFORM integrity_guard._consent_attached(parent);
    RETURN trigger_name;
END
$$;

-- Captured errors bind by name (ig_queue_bind_relid); a dropped, renamed or
-- moved relation's old name binds to nothing afterwards.
CREATE FUNCTION integrity_guard._unbind_names(schema_name text, table_name text)
RETURNS void
AS 'MODULE_PATHNAME', 'ig_unbind_names'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION integrity_guard._unbind_names(text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION integrity_guard._audit_follow_ddl()
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
    -- a consent names tables by OID: it goes with either of them
    DELETE FROM integrity_guard.children_consent c
     WHERE c.parent::oid IN (SELECT d.objid FROM pg_event_trigger_dropped_objects() d
                             WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0)
        OR c.child::oid IN (SELECT d.objid FROM pg_event_trigger_dropped_objects() d
                            WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0);
    -- captured errors and counters still known by a dropped table's name
    -- bind to nothing from now on, whatever takes the name later
    PERFORM integrity_guard._unbind_names(d.schema_name, d.object_name)
       FROM pg_event_trigger_dropped_objects() d
      WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0;
END
$$;
