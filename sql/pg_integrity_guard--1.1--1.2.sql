-- pg_integrity_guard 1.1 -> 1.2: guards that behave like the server on every
-- write path, fire-time privilege checks, readers that never write, and the
-- repair kit.  Each section below is headed by what it changes.
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.2'" to load this file. \quit

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
                        HINT = format('%s names columns of %s as stored: case-sensitive, without quotes.', what, rel);
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
LANGUAGE sql IMMUTABLE
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
              USING DETAIL = 'A procedure can commit between batches only when CALLed outside a transaction block.';
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
    key := coalesce(integrity_guard._repair_pkey(child), ARRAY['ctid']);
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
    key := coalesce(integrity_guard._repair_pkey(child), ARRAY['ctid']);
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
