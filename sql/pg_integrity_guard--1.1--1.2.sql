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
