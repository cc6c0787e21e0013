-- pg_integrity_guard 1.3 -> 1.4: guards follow the schema.  A migration
-- that renames, retypes or drops a guarded column succeeds exactly as it
-- would without the guard, and the guard follows the column (or leaves it,
-- saying so); a counter guard's default bounds are its column type's own
-- range.  Each section below is headed by what it changes.
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.4'" to load this file. \quit

-- == guards follow the schema (issue 27) ==
-- RENAME COLUMN, ALTER COLUMN ... TYPE, RENAME TO, SET SCHEMA, RENAME
-- CONSTRAINT and ALTER INDEX ... RENAME are followed by the
-- integrity_guard_retype event trigger (ddl_command_start, the library's
-- ig_guard_retype), now also for ALTER INDEX and CREATE RULE "_RETURN" (a
-- table turned into a view, PostgreSQL 15, loses its guards instead of
-- making the server refuse); a dropped column, table or
-- index here, from sql_drop, which reports each table that lost a column.
-- Only what is really gone is removed.
CREATE FUNCTION integrity_guard._guard_follow_drop(object_type text, objid oid, names text[])
RETURNS void
AS 'MODULE_PATHNAME', 'ig_guard_follow_drop'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION integrity_guard._guard_follow_drop(text, oid, text[]) FROM PUBLIC;

-- DETACH PARTITION drops a partition's clones of its parent's row
-- triggers: the detached table gets its guards back as its own.
CREATE FUNCTION integrity_guard._guard_follow_end() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'ig_guard_follow_end' LANGUAGE C;
REVOKE ALL ON FUNCTION integrity_guard._guard_follow_end() FROM PUBLIC;
CREATE EVENT TRIGGER integrity_guard_follow_end ON ddl_command_end
  WHEN TAG IN ('ALTER TABLE')
  EXECUTE FUNCTION integrity_guard._guard_follow_end();

DROP EVENT TRIGGER integrity_guard_retype;
CREATE EVENT TRIGGER integrity_guard_retype ON ddl_command_start
  WHEN TAG IN ('ALTER TABLE', 'ALTER INDEX', 'CREATE RULE')
  EXECUTE FUNCTION integrity_guard._guard_retype();

-- A guard trigger's arguments replaced in place (its clones too), after its
-- kind parsed them on its table: for this script and later ones.
CREATE FUNCTION integrity_guard._guard_set_args(trigger_oid oid, args text[])
RETURNS void
AS 'MODULE_PATHNAME', 'ig_guard_set_args'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION integrity_guard._guard_set_args(oid, text[]) FROM PUBLIC;

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
    -- a dropped column, table or index leaves the guards that named it
    PERFORM integrity_guard._guard_follow_drop(d.object_type, d.objid, d.address_names)
       FROM pg_event_trigger_dropped_objects() d
      WHERE d.classid = 'pg_class'::regclass
        AND d.object_type IN ('table', 'table column', 'index');
END
$$;

-- == counter guards: default bounds are the column type's own range (issue 27) ==
-- Until 1.3 a bound left out was 32-bit on every column wider than
-- smallint, which clamped valid bigint values.  Bounds left out now mean the
-- column type's own range (the bigint range for numeric); holding a bigint
-- to 32 bits is an explicit max_value.  NULL leaves a bound out.
CREATE OR REPLACE FUNCTION integrity_guard.guard_counter(rel regclass, columns text[],
                                                         max_value bigint DEFAULT NULL,
                                                         min_value bigint DEFAULT NULL)
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text[];
    existing text[];
    taken text;
    inert boolean;
BEGIN
    IF columns IS NULL OR cardinality(columns) = 0 THEN
        RAISE EXCEPTION 'guard_counter() needs at least one column'
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Pass the counter columns as an array, e.g. ARRAY[''times_seen''].';
    END IF;
    IF rel IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL'
              USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF array_position(columns, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'guard_counter() column names must not be NULL'
              USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- A bound left out travels as empty: the trigger reads it as the column
    -- type's own; one given is written out and checked against the type.
    SELECT array_agg(CASE
                       WHEN max_value IS NULL AND min_value IS NULL
                            AND position(':' IN c) = 0 THEN c
                       ELSE c || ':' || coalesce(min_value::text, '') || ':'
                              || coalesce(max_value::text, '')
                     END ORDER BY n)
      INTO args
      FROM unnest(columns) WITH ORDINALITY AS u(c, n);

    -- A table has one counter trigger; a later call adds its columns (with
    -- their own bounds) to it.  A column already guarded is refused.
    SELECT g.columns INTO existing FROM integrity_guard.guards g
     WHERE g.table_name = rel AND g.trigger_name = 'integrity_guard_counter';
    IF existing IS NOT NULL THEN
        PERFORM integrity_guard._check_args('saturate_counter', rel, args);
        SELECT c INTO taken
          FROM unnest(existing) AS e(spec),
               LATERAL (SELECT CASE WHEN spec ~ ':.*:'
                                    THEN regexp_replace(spec, ':[^:]*:[^:]*$', '')
                                    ELSE spec END) AS n(guarded),
               unnest(columns) AS u(c)
         WHERE c = guarded
         LIMIT 1;
        IF taken IS NOT NULL THEN
            RAISE EXCEPTION 'column "%" of table % already has a counter guard', taken, rel
                  USING ERRCODE = 'duplicate_object',
                        HINT = format('To change its bounds, remove the counter guard with integrity_guard.unguard(%L, %L) and attach again.',
                                      rel::text, 'counter');
        END IF;
        EXECUTE format('DROP TRIGGER integrity_guard_counter ON %s', rel);
        args := existing || args;
    END IF;

    -- An integer column held to its own type's whole range never shows the
    -- trigger an out-of-range value: only the assignment rewrite can act for
    -- it.  Then the trigger is a marker the rewrite keys on, AFTER INSERT FOR
    -- EACH STATEMENT WHEN (false): it never fires, and it spares UPDATEs the
    -- row fetch and lock that any BEFORE UPDATE row trigger costs.
    SELECT bool_and(a.atttypid IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)
                    AND (position(':' IN spec) = 0 OR spec ~ '::$'))
      INTO inert
      FROM unnest(args) AS u(spec)
      JOIN pg_attribute a ON a.attrelid = rel
       AND a.attname = CASE WHEN spec ~ ':.*:' THEN regexp_replace(spec, ':[^:]*:[^:]*$', '')
                            ELSE spec END;
    IF coalesce(inert, false) THEN
        RETURN integrity_guard._attach(rel, 'counter', 'integrity_guard_counter',
                                       'saturate_counter', args, 'AFTER INSERT', 'STATEMENT',
                                       inert => true);
    END IF;
    RETURN integrity_guard._attach(rel, 'counter', 'integrity_guard_counter',
                                   'saturate_counter', args);
END
$$;

COMMENT ON FUNCTION integrity_guard.guard_counter(regclass, text[], bigint, bigint) IS
  'Attaches saturate_counter() to the columns and returns the trigger name; bounds left out (NULL) are the column type''s own range';

-- Existing guards keep their meaning: a bigint or numeric column whose
-- bound was left out had the 32-bit bound, which is now written out.  Said
-- as a WARNING: an extension script runs with client_min_messages at
-- WARNING at least, and the user must learn of it.
DO $$
DECLARE
    g record;
    kept text[];
BEGIN
    FOR g IN
        SELECT t.oid, t.tgrelid::regclass AS rel, t.tgname, a.args
          FROM pg_catalog.pg_trigger t
          CROSS JOIN LATERAL integrity_guard._trigger_args(t.tgargs) AS a(args)
         WHERE t.tgfoid = 'integrity_guard.saturate_counter()'::pg_catalog.regprocedure
           AND t.tgparentid = 0
    LOOP
        SELECT array_agg(CASE
                           WHEN s.spec ~ '^[a-z_]+=' OR s.typ IS NULL
                                OR s.typ NOT IN ('bigint'::regtype, 'numeric'::regtype)
                                OR (s.lo <> '' AND s.hi <> '') THEN s.spec
                           ELSE s.name || ':' || CASE WHEN s.lo = '' THEN '-2147483648' ELSE s.lo END
                                       || ':' || CASE WHEN s.hi = '' THEN '2147483647' ELSE s.hi END
                         END ORDER BY s.n)
          INTO kept
          FROM (SELECT u.spec, u.n, p.name, p.lo, p.hi,
                       (SELECT at.atttypid::regtype FROM pg_catalog.pg_attribute at
                         WHERE at.attrelid = g.rel AND at.attname = p.name
                           AND at.attnum > 0 AND NOT at.attisdropped) AS typ
                  FROM unnest(g.args) WITH ORDINALITY AS u(spec, n),
                       LATERAL (SELECT CASE WHEN u.spec ~ ':.*:'
                                            THEN regexp_replace(u.spec, ':[^:]*:[^:]*$', '')
                                            ELSE u.spec END AS name,
                                       coalesce(substring(u.spec FROM ':([^:]*):[^:]*$'), '') AS lo,
                                       CASE WHEN u.spec ~ ':.*:'
                                            THEN substring(u.spec FROM ':([^:]*)$') ELSE '' END AS hi) p
               ) s;
        IF kept IS DISTINCT FROM g.args THEN
            PERFORM integrity_guard._guard_set_args(g.oid, kept);
            RAISE WARNING 'counter guard "%" on table % keeps its 32-bit default bounds on its bigint and numeric columns, now written out', g.tgname, g.rel
                  USING DETAIL = format('Its arguments were %s and are now %s.', g.args, kept),
                        HINT = 'Bounds left out now mean the column type''s own range; attach the guard again without bounds for that.';
        END IF;
    END LOOP;
END
$$;
