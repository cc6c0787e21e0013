-- pg_integrity_guard 1.6 -> 1.7: one audit for a Citus cluster.
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.7'" to load this file. \quit

-- == the cluster's readers (issue 26) ==
-- Each node of a Citus cluster keeps its own audit: a guard on a shard
-- records its incident under the logical table and constraint, on the node
-- that holds the shard.  The cluster readers ask every node the same
-- question, as the calling role over Citus's own connections, so that each
-- node applies its visibility rule to that role, and merge the answers.
-- A node that does not answer is reported by a WARNING and left out.
--
-- _cluster_read(reader, ...) runs one of the two fixed readers on every
-- node and returns each node's answer as JSON.  Its arguments go into the
-- command only as quoted literals; 'reader' is one of two words.
CREATE FUNCTION integrity_guard._cluster_read(reader text, since timestamptz,
                                              rel regclass DEFAULT NULL,
                                              event_type text DEFAULT NULL)
RETURNS TABLE (node text, answer json)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- since is written out in ISO, which every node reads whatever its DateStyle
SET DateStyle = 'ISO, YMD'
AS $$
DECLARE
  command text;
  relname text;
  r record;
BEGIN
  IF reader IS NULL OR reader NOT IN ('events', 'summary') THEN
    RAISE EXCEPTION 'unknown cluster reader "%"', reader
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Call integrity_guard.cluster_events() or integrity_guard.cluster_summary().';
  END IF;
  IF to_regproc('pg_catalog.run_command_on_all_nodes') IS NULL
     OR to_regclass('pg_catalog.pg_dist_node') IS NULL THEN
    RAISE EXCEPTION 'integrity_guard.cluster_%() needs Citus', reader
      USING ERRCODE = 'feature_not_supported',
            DETAIL = 'The citus extension is not installed in this database.',
            HINT = format('On a single server, call integrity_guard.%s().', reader);
  END IF;
  IF reader = 'events' THEN
    -- the table by its qualified name: each node has its own OID for it,
    -- and a node where the name is unknown has no incidents of it
    IF rel IS NOT NULL THEN
      SELECT format('%I.%I', n.nspname, c.relname) INTO relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.oid = rel;
      IF relname IS NULL THEN
        RETURN;                 -- no such table: no incidents of it
      END IF;
    END IF;
    command := format(
      'SELECT COALESCE(pg_catalog.json_agg(e), ''[]''::pg_catalog.json)'
      ' FROM (SELECT pg_catalog.to_regclass(%L) AS rel) r,'
      ' integrity_guard.events(%L::pg_catalog.timestamptz, r.rel, %L) e'
      ' WHERE %L IS NULL OR r.rel IS NOT NULL',
      relname, since, event_type, relname);
  ELSE
    command := format(
      'SELECT COALESCE(pg_catalog.json_agg(s), ''[]''::pg_catalog.json)'
      ' FROM integrity_guard.summary(%L::pg_catalog.timestamptz) s', since);
  END IF;
  FOR r IN
    SELECT coalesce(d.nodename || ':' || d.nodeport,
                    current_setting('citus.local_hostname') || ':' || current_setting('port')) AS node,
           o.success, o.result
      FROM run_command_on_all_nodes(command) o
      LEFT JOIN pg_dist_node d ON d.nodeid = o.nodeid
     ORDER BY 1
  LOOP
    IF r.success THEN
      node := r.node;
      answer := r.result::json;
      RETURN NEXT;
    ELSE
      RAISE WARNING 'could not read the audit of node %: it is left out', r.node
        USING DETAIL = r.result,
              HINT = 'Check that the node is up and that this role may connect to it.';
    END IF;
  END LOOP;
END;
$$;

CREATE FUNCTION integrity_guard.cluster_events(since timestamptz DEFAULT NULL,
                                               rel regclass DEFAULT NULL,
                                               event_type text DEFAULT NULL)
RETURNS TABLE (node text, id bigint, event_type text, schema_name name, table_name name,
               relid oid, target text, occurrences bigint, first_seen timestamptz,
               last_seen timestamptz, role_name name, database_name name,
               application_name text, detail jsonb, rel_incarnation uuid,
               key_columns smallint[])
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT c.node, e.*
  FROM integrity_guard._cluster_read('events', cluster_events.since, cluster_events.rel,
                                     cluster_events.event_type) c,
       json_populate_recordset(NULL::integrity_guard.audit_log, c.answer) e
  ORDER BY e.last_seen DESC, e.id DESC, c.node;
$$;
COMMENT ON FUNCTION integrity_guard.cluster_events(timestamptz, regclass, text) IS
  'events() of every node of a Citus cluster, merged, with the node; a node that does not answer is reported';

CREATE FUNCTION integrity_guard.cluster_summary(since timestamptz DEFAULT NULL)
RETURNS TABLE (node text, schema_name name, table_name name, event_type text, target text,
               incidents bigint, occurrences bigint,
               first_seen timestamptz, last_seen timestamptz)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT c.node, s.*
  FROM integrity_guard._cluster_read('summary', cluster_summary.since) c,
       json_to_recordset(c.answer) AS s(schema_name name, table_name name, event_type text,
                                        target text, incidents bigint, occurrences bigint,
                                        first_seen timestamptz, last_seen timestamptz)
  ORDER BY s.occurrences DESC, c.node, 2, 3, 4, 5;
$$;
COMMENT ON FUNCTION integrity_guard.cluster_summary(timestamptz) IS
  'summary() of every node of a Citus cluster, one row per node and group; a node that does not answer is reported';

-- == check() on a Citus cluster (issue 26) ==
-- Its guards rows are the logical tables', as the guards view lists them:
-- not the triggers Citus copies to the shards a node holds (a reference
-- table's copy on the coordinator).  The rest is 1.3's.
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
          AND NOT integrity_guard._citus_shard(t.tgrelid)
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

-- == guard_children on Citus tables (issue 26, point 3) ==
-- Attached like the other guards: on each parent shard it acts on the
-- co-located shard of each child (nullify_children resolves it, and
-- refuses references that are not co-located or do not join the
-- distribution columns).  The rest is 1.6's.
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
    citus boolean := false;
    unsafe text;
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

    -- A Citus table (distributed, reference, local): Citus copies its triggers to
    -- the shards, where the row-local guards (counter, range, unique) act on
    -- each shard's rows, and a children guard on each parent shard's
    -- co-located children (_check_args above refused any other reference);
    -- it asks for citus.enable_unsafe_triggers, which the guard turns on for
    -- its own CREATE TRIGGER only.
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition d
                                 WHERE d.logicalrelid = $1)'
           INTO citus USING rel;
    END IF;
    IF citus THEN
        unsafe := current_setting('citus.enable_unsafe_triggers', true);
        PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    END IF;

    EXECUTE format('CREATE TRIGGER %I %s ON %s %s FOR EACH %s %s EXECUTE FUNCTION integrity_guard.%I(%s)',
                   trigger_name, timing_sql, rel,
                   CASE WHEN transition IS NULL THEN ''
                        ELSE format('REFERENCING OLD TABLE AS %I', transition) END,
                   level_sql, CASE WHEN inert THEN 'WHEN (false)' ELSE '' END, func,
                   (SELECT string_agg(quote_literal(a), ', ' ORDER BY n)
                    FROM unnest(args) WITH ORDINALITY AS u(a, n)));
    IF citus THEN
        PERFORM set_config('citus.enable_unsafe_triggers', coalesce(unsafe, 'off'), true);
    END IF;

    IF kind_of_rel = 'r' AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = rel) THEN
        RAISE NOTICE 'the % guard covers rows stored in % itself, not in its inheritance children', kind, rel
              USING HINT = 'Row triggers are not inherited: attach the guard to each child table too.';
    END IF;
    RETURN trigger_name;
END
$$;

