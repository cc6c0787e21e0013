-- pg_integrity_guard 1.0
\echo Use "CREATE EXTENSION pg_integrity_guard" to load this file. \quit

--------------------------------------------------------------------------
-- Audit table: one row per incident (event type, relation, role, target),
-- with the number of occurrences the incident aggregates.
--------------------------------------------------------------------------
CREATE TABLE integrity_guard.audit_log (
    id               bigserial PRIMARY KEY,
    event_type       text        NOT NULL,
    schema_name      name,
    table_name       name,
    relid            oid,
    target           text,
    occurrences      bigint      NOT NULL DEFAULT 1 CHECK (occurrences > 0),
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL,
    role_name        name,
    database_name    name,
    application_name text,
    detail           jsonb
);
CREATE INDEX audit_log_last_seen_idx ON integrity_guard.audit_log (last_seen);
CREATE INDEX audit_log_table_idx ON integrity_guard.audit_log (schema_name, table_name, last_seen);

COMMENT ON TABLE integrity_guard.audit_log IS
  'Incidents absorbed by pg_integrity_guard; each row aggregates the occurrences of one statement';

-- Audit rows are dumped with the database (pg_dump keeps them).
SELECT pg_catalog.pg_extension_config_dump('integrity_guard.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('integrity_guard.audit_log_id_seq', '');

COMMENT ON COLUMN integrity_guard.audit_log.relid IS
  'OID of the table when the incident was recorded; schema_name and table_name identify it across dump and restore';

-- The table an incident belongs to, by the names it was recorded with.
-- Names, not relid: pg_restore gives tables new OIDs, and a stale OID could
-- name another table.
CREATE FUNCTION integrity_guard._incident_table(schema_name name, table_name name)
RETURNS regclass
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT to_regclass(quote_ident($1) || '.' || quote_ident($2)) $$;

-- Nobody but the owner writes; everybody reads, but only the rows of tables
-- they can SELECT (superusers and pg_read_all_stats members see all).
REVOKE ALL ON integrity_guard.audit_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE integrity_guard.audit_log_id_seq FROM PUBLIC;
GRANT SELECT ON integrity_guard.audit_log TO PUBLIC;
ALTER TABLE integrity_guard.audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_log_visible ON integrity_guard.audit_log FOR SELECT
  USING (pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
         OR coalesce(pg_catalog.has_table_privilege(
                integrity_guard._incident_table(schema_name, table_name), 'SELECT'), false));

--------------------------------------------------------------------------
-- Trigger functions (C)
--------------------------------------------------------------------------
CREATE FUNCTION integrity_guard.saturate_counter()
RETURNS trigger
AS 'MODULE_PATHNAME', 'saturate_counter'
LANGUAGE C;

COMMENT ON FUNCTION integrity_guard.saturate_counter() IS
  'BEFORE INSERT OR UPDATE ROW trigger: stores out-of-bounds counter values as the bound. Arguments: ''col'' or ''col:min:max''';

CREATE FUNCTION integrity_guard.clamp_range()
RETURNS trigger
AS 'MODULE_PATHNAME', 'clamp_range'
LANGUAGE C;

CREATE FUNCTION integrity_guard.nullify_children()
RETURNS trigger
AS 'MODULE_PATHNAME', 'nullify_children'
LANGUAGE C;

COMMENT ON FUNCTION integrity_guard.nullify_children() IS
  'DELETE trigger on a parent: clears or deletes child rows that reference deleted rows. Arguments: none (every NO ACTION/RESTRICT foreign key) or ''[schema.]child(col[, col])[ = (parent_col[, ...])]'', then ''action=set_null|delete''';

CREATE FUNCTION integrity_guard.guard_unique()
RETURNS trigger
AS 'MODULE_PATHNAME', 'guard_unique'
LANGUAGE C;

COMMENT ON FUNCTION integrity_guard.guard_unique() IS
  'BEFORE INSERT OR UPDATE ROW trigger: catches duplicate keys before the heap insert, as ON CONFLICT does, and audits them. Options: ''mode=raise|skip'', ''constraint=NAME'' (repeatable)';

COMMENT ON FUNCTION integrity_guard.clamp_range() IS
  'BEFORE INSERT OR UPDATE ROW trigger: repairs inverted time ranges. Arguments: ''lower_col'', ''upper_col'' or ''range_col'', then ''on_inverted=clamp_upper|clamp_lower|swap|error''';

--------------------------------------------------------------------------
-- Internal helpers
--------------------------------------------------------------------------
CREATE FUNCTION integrity_guard._check_args(guard text, rel regclass, args text[])
RETURNS void
AS 'MODULE_PATHNAME', 'ig_check_args'
LANGUAGE C STRICT;

CREATE FUNCTION integrity_guard._trigger_args(tgargs bytea)
RETURNS text[]
AS 'MODULE_PATHNAME', 'ig_trigger_args'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- A deterministic trigger name within NAMEDATALEN: long names keep a hash.
CREATE FUNCTION integrity_guard._trigger_name(prefix text, parts text[])
RETURNS name
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN octet_length(full_name) <= 63 THEN full_name
              ELSE left(full_name, 50) || '_' || left(md5(full_name), 8)
         END::name
  FROM (SELECT prefix || coalesce('_' || array_to_string(parts, '_'), '') AS full_name) s
$$;

--------------------------------------------------------------------------
-- Saturating arithmetic and clamping range constructors (C)
--------------------------------------------------------------------------
-- Used by the assignment rewrite; int8 arithmetic stuck at the int64 limits.
CREATE FUNCTION integrity_guard._sat_add(bigint, bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_sat_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard._sat_sub(bigint, bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_sat_sub' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard._sat_mul(bigint, bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_sat_mul' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard._sat_neg(bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_sat_neg' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard._numeric_int8_sat(numeric) RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_numeric_int8_sat' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- Clamps to a guard's bounds and records the event: volatile, never folded.
CREATE FUNCTION integrity_guard._saturate(value bigint, min_value bigint, max_value bigint,
                                          rel oid, col smallint) RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_saturate' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION integrity_guard.saturating_add(smallint, smallint) RETURNS smallint
AS 'MODULE_PATHNAME', 'saturating_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_add(integer, integer) RETURNS integer
AS 'MODULE_PATHNAME', 'saturating_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_add(bigint, bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'saturating_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_sub(smallint, smallint) RETURNS smallint
AS 'MODULE_PATHNAME', 'saturating_sub' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_sub(integer, integer) RETURNS integer
AS 'MODULE_PATHNAME', 'saturating_sub' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_sub(bigint, bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'saturating_sub' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_mul(smallint, smallint) RETURNS smallint
AS 'MODULE_PATHNAME', 'saturating_mul' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_mul(integer, integer) RETURNS integer
AS 'MODULE_PATHNAME', 'saturating_mul' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_mul(bigint, bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'saturating_mul' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- with explicit bounds (NULL: the type's own); not STRICT for that reason
CREATE FUNCTION integrity_guard.saturating_add(a smallint, b smallint, min_value bigint, max_value bigint) RETURNS smallint
AS 'MODULE_PATHNAME', 'saturating_add' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_add(a integer, b integer, min_value bigint, max_value bigint) RETURNS integer
AS 'MODULE_PATHNAME', 'saturating_add' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_add(a bigint, b bigint, min_value bigint, max_value bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'saturating_add' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_sub(a smallint, b smallint, min_value bigint, max_value bigint) RETURNS smallint
AS 'MODULE_PATHNAME', 'saturating_sub' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_sub(a integer, b integer, min_value bigint, max_value bigint) RETURNS integer
AS 'MODULE_PATHNAME', 'saturating_sub' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_sub(a bigint, b bigint, min_value bigint, max_value bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'saturating_sub' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_mul(a smallint, b smallint, min_value bigint, max_value bigint) RETURNS smallint
AS 'MODULE_PATHNAME', 'saturating_mul' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_mul(a integer, b integer, min_value bigint, max_value bigint) RETURNS integer
AS 'MODULE_PATHNAME', 'saturating_mul' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION integrity_guard.saturating_mul(a bigint, b bigint, min_value bigint, max_value bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'saturating_mul' LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION integrity_guard.saturating_add(integer, integer) IS
  'a + b, clamped to the result type (that of the wider operand) instead of raising';

CREATE FUNCTION integrity_guard.tstzrange_clamped(lower timestamptz, upper timestamptz,
        bounds text DEFAULT '[)', on_inverted text DEFAULT 'clamp_upper') RETURNS tstzrange
AS 'MODULE_PATHNAME', 'ig_range_clamped' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION integrity_guard.tsrange_clamped(lower timestamp, upper timestamp,
        bounds text DEFAULT '[)', on_inverted text DEFAULT 'clamp_upper') RETURNS tsrange
AS 'MODULE_PATHNAME', 'ig_range_clamped' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION integrity_guard.daterange_clamped(lower date, upper date,
        bounds text DEFAULT '[)', on_inverted text DEFAULT 'clamp_upper') RETURNS daterange
AS 'MODULE_PATHNAME', 'ig_range_clamped' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION integrity_guard.tstzrange_clamped(timestamptz, timestamptz, text, text) IS
  'tstzrange(lower, upper, bounds) that repairs inverted bounds with the policy instead of raising';
-- the rewrite's form: records range_clamped for the guarded column
CREATE FUNCTION integrity_guard._tstzrange_guarded(timestamptz, timestamptz, text, text, oid, smallint)
RETURNS tstzrange AS 'MODULE_PATHNAME', 'ig_range_clamped' LANGUAGE C VOLATILE;
CREATE FUNCTION integrity_guard._tsrange_guarded(timestamp, timestamp, text, text, oid, smallint)
RETURNS tsrange AS 'MODULE_PATHNAME', 'ig_range_clamped' LANGUAGE C VOLATILE;
CREATE FUNCTION integrity_guard._daterange_guarded(date, date, text, text, oid, smallint)
RETURNS daterange AS 'MODULE_PATHNAME', 'ig_range_clamped' LANGUAGE C VOLATILE;

--------------------------------------------------------------------------
-- The guards view: every attached guard
--------------------------------------------------------------------------
CREATE VIEW integrity_guard.guards
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
  AND p.prorettype = 'pg_catalog.trigger'::regtype
  AND t.tgparentid = 0;

COMMENT ON VIEW integrity_guard.guards IS
  'Every guard attached to a table (partition clones are listed through their parent)';

CREATE FUNCTION integrity_guard._children_immediate(rel regclass, args text[])
RETURNS boolean
AS 'MODULE_PATHNAME', 'ig_children_immediate'
LANGUAGE C STRICT;

-- Validate, refuse a second guard of the same name, create the trigger.
-- timing, level and transition come from this script's own callers, never
-- from user input.
CREATE FUNCTION integrity_guard._attach(rel regclass, kind text, trigger_name name,
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
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL'
              USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind INTO kind_of_rel FROM pg_class c WHERE c.oid = rel;
    IF kind_of_rel IS DISTINCT FROM 'r' AND kind_of_rel IS DISTINCT FROM 'p' THEN
        RAISE EXCEPTION '"%" is not a table', rel
              USING ERRCODE = 'wrong_object_type',
                    HINT = 'Guards attach to ordinary and partitioned tables.';
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
                   trigger_name, timing, rel,
                   CASE WHEN transition IS NULL THEN ''
                        ELSE format('REFERENCING OLD TABLE AS %I', transition) END,
                   level, CASE WHEN inert THEN 'WHEN (false)' ELSE '' END, func,
                   (SELECT string_agg(quote_literal(a), ', ' ORDER BY n)
                    FROM unnest(args) WITH ORDINALITY AS u(a, n)));

    IF kind_of_rel = 'r' AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = rel) THEN
        RAISE NOTICE 'the % guard covers rows stored in % itself, not in its inheritance children', kind, rel
              USING HINT = 'Row triggers are not inherited: attach the guard to each child table too.';
    END IF;
    RETURN trigger_name;
END
$$;

--------------------------------------------------------------------------
-- Attach helpers
--------------------------------------------------------------------------
CREATE FUNCTION integrity_guard.guard_counter(rel regclass, columns text[],
                                              max_value bigint DEFAULT 2147483647,
                                              min_value bigint DEFAULT -2147483648)
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
    IF max_value IS NULL OR min_value IS NULL THEN
        RAISE EXCEPTION 'guard_counter() bounds must not be NULL'
              USING ERRCODE = 'null_value_not_allowed',
                    HINT = 'Leave a bound out to get the default 32-bit bound.';
    END IF;
    -- Default bounds travel as empty so that the trigger narrows them to
    -- the column type (smallint); explicit ones are checked against it.
    SELECT array_agg(CASE
                       WHEN max_value = 2147483647 AND min_value = -2147483648
                            AND position(':' IN c) = 0 THEN c
                       ELSE c || ':' ||
                            CASE WHEN min_value = -2147483648 THEN '' ELSE min_value::text END || ':' ||
                            CASE WHEN max_value = 2147483647 THEN '' ELSE max_value::text END
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

    -- A smallint or integer column held to its own type's whole range never
    -- shows the trigger an out-of-range value: only the assignment rewrite
    -- can act for it.  Then the trigger is a marker the rewrite keys on,
    -- AFTER INSERT FOR EACH STATEMENT WHEN (false): it never fires, and it
    -- spares UPDATEs the row fetch and lock that any BEFORE UPDATE row
    -- trigger costs.
    SELECT bool_and(a.atttypid IN ('smallint'::regtype, 'integer'::regtype)
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
  'Attaches saturate_counter() to the columns and returns the trigger name';

CREATE FUNCTION integrity_guard.guard_range(rel regclass, range_column name,
                                            on_inverted text DEFAULT 'clamp_upper')
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF on_inverted IS NULL THEN
        RAISE EXCEPTION 'on_inverted must not be NULL'
              USING ERRCODE = 'null_value_not_allowed',
                    HINT = 'Use clamp_upper, clamp_lower, swap or error.';
    END IF;
    RETURN integrity_guard._attach(rel, 'range',
                                   integrity_guard._trigger_name('integrity_guard_range', ARRAY[range_column::text]),
                                   'clamp_range',
                                   ARRAY[range_column::text, 'on_inverted=' || on_inverted]);
END
$$;

COMMENT ON FUNCTION integrity_guard.guard_range(regclass, name, text) IS
  'Attaches clamp_range() to a tstzrange, tsrange or daterange column and returns the trigger name';

CREATE FUNCTION integrity_guard.guard_range(rel regclass, lower_column text, upper_column text,
                                            on_inverted text DEFAULT 'clamp_upper')
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- guard_range(t, 'period', 'swap') resolves to this form; a range
    -- column in first place means the caller meant the range-column form.
    IF EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
               WHERE a.attrelid = rel AND a.attname = lower_column
                 AND NOT a.attisdropped AND ty.typtype = 'r') THEN
        IF on_inverted IS DISTINCT FROM 'clamp_upper' THEN
            RAISE EXCEPTION 'column "%" is a range column: give it alone, with at most a policy', lower_column
                  USING ERRCODE = 'invalid_parameter_value',
                        HINT = 'Call integrity_guard.guard_range(rel, range_column => ..., on_inverted => ...).';
        END IF;
        RETURN integrity_guard.guard_range(rel, lower_column::name, upper_column);
    END IF;
    IF on_inverted IS NULL THEN
        RAISE EXCEPTION 'on_inverted must not be NULL'
              USING ERRCODE = 'null_value_not_allowed',
                    HINT = 'Use clamp_upper, clamp_lower, swap or error.';
    END IF;
    RETURN integrity_guard._attach(rel, 'range',
                                   integrity_guard._trigger_name('integrity_guard_range', ARRAY[lower_column, upper_column]),
                                   'clamp_range',
                                   ARRAY[lower_column, upper_column, 'on_inverted=' || on_inverted]);
END
$$;

COMMENT ON FUNCTION integrity_guard.guard_range(regclass, text, text, text) IS
  'Attaches clamp_range() to a pair of bound columns and returns the trigger name';

CREATE FUNCTION integrity_guard.guard_children(parent regclass, refs text[] DEFAULT NULL,
                                               action text DEFAULT 'set_null')
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text[];
    kind_of_rel "char";
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

    -- The fastest correct placement (doc/design.md, "Server facts", 3).  Its name sorts
    -- before the server's "RI_ConstraintTrigger_a_..." so that it acts
    -- before immediate foreign key checks.
    IF kind_of_rel = 'p' AND integrity_guard._children_immediate(parent, args) THEN
        -- no row trigger with a transition table on a partitioned table
        RETURN integrity_guard._attach(parent, 'children', 'IG_integrity_guard_children',
                                       'nullify_children', args, 'AFTER DELETE', 'ROW');
    ELSIF kind_of_rel = 'p' THEN
        RETURN integrity_guard._attach(parent, 'children', 'IG_integrity_guard_children',
                                       'nullify_children', args, 'AFTER DELETE', 'STATEMENT',
                                       'ig_deleted_rows');
    END IF;
    RETURN integrity_guard._attach(parent, 'children', 'IG_integrity_guard_children',
                                   'nullify_children', args, 'AFTER DELETE', 'ROW',
                                   'ig_deleted_rows');
END
$$;

COMMENT ON FUNCTION integrity_guard.guard_children(regclass, text[], text) IS
  'Attaches nullify_children() in the fastest correct placement and returns the trigger name';

CREATE FUNCTION integrity_guard.guard_duplicates(rel regclass, mode text DEFAULT 'raise')
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF mode IS NULL THEN
        RAISE EXCEPTION 'mode must not be NULL'
              USING ERRCODE = 'null_value_not_allowed',
                    HINT = 'Use raise or skip.';
    END IF;
    -- sorts after the counter and range guards: it sees their final row
    RETURN integrity_guard._attach(rel, 'unique', 'integrity_guard_unique',
                                   'guard_unique', ARRAY['mode=' || mode]);
END
$$;

COMMENT ON FUNCTION integrity_guard.guard_duplicates(regclass, text) IS
  'Attaches guard_unique() watching every immediate unique index and returns the trigger name';

CREATE FUNCTION integrity_guard.unguard(rel regclass, guard text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    g record;
    removed integer := 0;
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL'
              USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOR g IN SELECT gs.trigger_name FROM integrity_guard.guards gs
             WHERE gs.table_name = rel
               AND (guard IS NULL OR gs.kind = guard OR gs.trigger_name = guard)
             ORDER BY gs.trigger_name
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', g.trigger_name, rel);
        removed := removed + 1;
    END LOOP;
    IF removed = 0 AND guard IS NOT NULL THEN
        RAISE EXCEPTION 'table % has no guard "%"', rel, guard
              USING ERRCODE = 'undefined_object',
                    HINT = 'Name a kind (counter, range, children, unique) or a trigger_name listed in integrity_guard.guards.';
    END IF;
    RETURN removed;
END
$$;

COMMENT ON FUNCTION integrity_guard.unguard(regclass, text) IS
  'Removes the guards of a table (all, one kind, or one trigger) and returns how many';

--------------------------------------------------------------------------
-- Reading the audit
--------------------------------------------------------------------------
CREATE FUNCTION integrity_guard.flush()
RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_flush'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION integrity_guard.flush() IS
  'Writes pending incidents now and returns how many rows were written';

CREATE FUNCTION integrity_guard.events(since timestamptz DEFAULT NULL,
                                       rel regclass DEFAULT NULL,
                                       event_type text DEFAULT NULL)
RETURNS SETOF integrity_guard.audit_log
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT a.*
  FROM integrity_guard.audit_log a
  WHERE ($1 IS NULL OR a.last_seen >= $1)
    AND ($2 IS NULL OR integrity_guard._incident_table(a.schema_name, a.table_name) = $2)
    AND ($3 IS NULL OR a.event_type = $3)
  ORDER BY a.last_seen DESC, a.id DESC
$$;

COMMENT ON FUNCTION integrity_guard.events(timestamptz, regclass, text) IS
  'Incidents, newest first, of the tables the caller can read';

CREATE FUNCTION integrity_guard.summary(since timestamptz DEFAULT NULL)
RETURNS TABLE (schema_name name, table_name name, event_type text, target text,
               incidents bigint, occurrences bigint,
               first_seen timestamptz, last_seen timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT a.schema_name, a.table_name, a.event_type, a.target,
         count(*), sum(a.occurrences)::bigint, min(a.first_seen), max(a.last_seen)
  FROM integrity_guard.audit_log a
  WHERE $1 IS NULL OR a.last_seen >= $1
  GROUP BY a.schema_name, a.table_name, a.event_type, a.target
  ORDER BY sum(a.occurrences) DESC, a.schema_name, a.table_name, a.event_type, a.target
$$;

CREATE FUNCTION integrity_guard.duplicate_key_attempts(since timestamptz DEFAULT NULL,
                                                       rel regclass DEFAULT NULL)
RETURNS SETOF integrity_guard.audit_log
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM integrity_guard.events($1, $2, 'duplicate_key') $$;

COMMENT ON FUNCTION integrity_guard.duplicate_key_attempts(timestamptz, regclass) IS
  'duplicate_key incidents, newest first, of the tables the caller can read';

COMMENT ON FUNCTION integrity_guard.summary(timestamptz) IS
  'Incidents and occurrences per table, event type and target';

CREATE FUNCTION integrity_guard.purge(older_than interval)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner oid;
    removed bigint;
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION 'older_than must not be NULL'
              USING ERRCODE = 'null_value_not_allowed',
                    HINT = 'Use interval ''0'' to remove every incident.';
    END IF;
    SELECT e.extowner INTO owner FROM pg_extension e WHERE e.extname = 'pg_integrity_guard';
    IF NOT pg_has_role(owner, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to purge the integrity_guard audit log'
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'Only the extension owner or a superuser can purge.';
    END IF;
    DELETE FROM integrity_guard.audit_log a WHERE a.last_seen < now() - older_than;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;

COMMENT ON FUNCTION integrity_guard.purge(interval) IS
  'Deletes incidents last seen before now() - older_than (extension owner or superuser)';

CREATE VIEW integrity_guard.recent_events
WITH (security_invoker = true) AS
SELECT a.*
FROM integrity_guard.audit_log a
WHERE a.last_seen > now() - interval '1 day'
ORDER BY a.last_seen DESC, a.id DESC;

CREATE VIEW integrity_guard.duplicate_keys
WITH (security_invoker = true) AS
SELECT a.schema_name, a.table_name, a.target AS constraint_name,
       a.detail->>'key' AS key, a.detail->>'mode' AS mode,
       a.occurrences, a.first_seen, a.last_seen, a.role_name, a.application_name
FROM integrity_guard.audit_log a
WHERE a.event_type = 'duplicate_key'
ORDER BY a.last_seen DESC, a.id DESC;

COMMENT ON VIEW integrity_guard.duplicate_keys IS
  'Duplicate-key attempts, newest first, of the tables the caller can read';

CREATE FUNCTION integrity_guard._preloaded()
RETURNS boolean
AS 'MODULE_PATHNAME', 'ig_preloaded_fn'
LANGUAGE C STABLE;

CREATE FUNCTION integrity_guard.status()
RETURNS TABLE (name text, value text, detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  VALUES
    ('preloaded', integrity_guard._preloaded()::text,
     'whether this backend loaded the library from shared_preload_libraries'),
    ('audit_mode', 'transactional',
     'incidents are written in the transaction that produced them'),
    ('lost_on_rollback', 'yes',
     'incidents of a transaction that rolls back are lost with it: a duplicate raised by guard_unique in mode=raise outside a savepoint aborts its transaction and its own audit row; inside a savepoint (Django atomic/get_or_create in a transaction) it is kept'),
    ('enabled', current_setting('integrity_guard.enabled', true),
     'integrity_guard.enabled'),
    ('log_key_values', current_setting('integrity_guard.log_key_values', true),
     'integrity_guard.log_key_values'),
    ('rewrite', CASE WHEN current_setting('integrity_guard.rewrite', true) = 'off' THEN 'off'
                     WHEN integrity_guard._preloaded()
                          OR current_setting('session_preload_libraries') ~ 'pg_integrity_guard'
                     THEN 'on' ELSE 'not loaded before parsing' END,
     'arithmetic assigned to guarded integer columns saturates only when the library is in shared_preload_libraries or session_preload_libraries')
$$;

COMMENT ON FUNCTION integrity_guard.status() IS
  'How the extension runs in this backend, and what the audit can lose';

COMMENT ON VIEW integrity_guard.recent_events IS
  'Incidents of the last 24 hours, newest first, of the tables the caller can read';

GRANT SELECT ON integrity_guard.guards, integrity_guard.recent_events,
                integrity_guard.duplicate_keys TO PUBLIC;
GRANT USAGE ON SCHEMA integrity_guard TO PUBLIC;
