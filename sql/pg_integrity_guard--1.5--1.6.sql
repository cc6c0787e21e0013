-- pg_integrity_guard 1.5 -> 1.6: events() reads the audit in its own
-- order.  The visibility rule is unchanged.
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.6'" to load this file. \quit

-- == key values in the audit's order, visible by their own columns ==
-- A key set carries its audit row's last_seen, relation, incarnation and
-- key columns.  events() then merges key values into rows read in
-- last_seen order (both sides ordered, no sort of the wide rows), and the
-- policy decides from the key row itself, once per relation and column
-- set (_keys_readable), instead of looking its audit row up for each key.
ALTER TABLE integrity_guard.audit_keys
  ADD COLUMN last_seen timestamptz,
  ADD COLUMN relid oid,
  ADD COLUMN rel_incarnation uuid,
  ADD COLUMN key_columns smallint[];
UPDATE integrity_guard.audit_keys k
   SET last_seen = a.last_seen, relid = a.relid,
       rel_incarnation = a.rel_incarnation, key_columns = a.key_columns
  FROM integrity_guard.audit_log a
 WHERE a.id = k.id;
ALTER TABLE integrity_guard.audit_keys ALTER COLUMN last_seen SET NOT NULL;
COMMENT ON COLUMN integrity_guard.audit_keys.last_seen IS
  'Copy of the audit row''s last_seen (the readers'' order)';
COMMENT ON COLUMN integrity_guard.audit_keys.relid IS
  'Copy of the audit row''s relid (the visibility rule)';
COMMENT ON COLUMN integrity_guard.audit_keys.rel_incarnation IS
  'Copy of the audit row''s rel_incarnation (the visibility rule)';
COMMENT ON COLUMN integrity_guard.audit_keys.key_columns IS
  'Copy of the audit row''s key_columns (the visibility rule)';

-- Both tables in (last_seen, id) order: the plain "newest first" read and
-- events() walk these indexes; since => ... is a range of both.
DROP INDEX integrity_guard.audit_log_last_seen_idx;
CREATE INDEX audit_log_last_seen_idx ON integrity_guard.audit_log (last_seen, id);
CREATE INDEX audit_keys_last_seen_idx ON integrity_guard.audit_keys (last_seen, id);
-- summary() groups the rows without a table or target (captured errors)
-- apart, by what their labels are made of: a small index finds them
-- without a second pass over the table.
CREATE INDEX audit_log_unlabelled_idx ON integrity_guard.audit_log (last_seen)
  WHERE table_name IS NULL OR target IS NULL;

-- The copies are the audit row's, whoever inserts the key set: the writer
-- passes them, a restore loads them from the dump (a library older than
-- this version passes none), then this takes them from the audit row
-- whenever it is there to read: a restore rebinds audit rows to this
-- database's relations and incarnation before their keys are loaded.
CREATE FUNCTION integrity_guard._audit_keys_copy()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
BEGIN
    SELECT l.last_seen, l.relid, l.rel_incarnation, l.key_columns INTO a
      FROM integrity_guard.audit_log l WHERE l.id = NEW.id;
    IF FOUND THEN
        NEW.last_seen := a.last_seen;
        NEW.relid := a.relid;
        NEW.rel_incarnation := a.rel_incarnation;
        NEW.key_columns := a.key_columns;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION integrity_guard._audit_keys_copy() FROM PUBLIC;
CREATE TRIGGER audit_keys_copy BEFORE INSERT ON integrity_guard.audit_keys
    FOR EACH ROW EXECUTE FUNCTION integrity_guard._audit_keys_copy();

-- An audit row that changes (a dropped relation unbinds its rows) changes
-- its key set's copies, in one statement however many rows it touched.
-- Every DROP runs an UPDATE of audit_log that mostly touches nothing: then
-- audit_keys is not even locked.
CREATE FUNCTION integrity_guard._audit_keys_follow()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit_new) THEN
        RETURN NULL;
    END IF;
    UPDATE integrity_guard.audit_keys k
       SET last_seen = n.last_seen, relid = n.relid,
           rel_incarnation = n.rel_incarnation, key_columns = n.key_columns
      FROM audit_new n
     WHERE k.id = n.id
       AND (k.last_seen, k.relid, k.rel_incarnation, k.key_columns)
           IS DISTINCT FROM (n.last_seen, n.relid, n.rel_incarnation, n.key_columns);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION integrity_guard._audit_keys_follow() FROM PUBLIC;
CREATE TRIGGER audit_log_keys_follow AFTER UPDATE ON integrity_guard.audit_log
    REFERENCING NEW TABLE AS audit_new
    FOR EACH STATEMENT EXECUTE FUNCTION integrity_guard._audit_keys_follow();

-- Rows of a 1.1 dump loaded into this version: apart, with their copies.
CREATE OR REPLACE FUNCTION integrity_guard._audit_keys_apart()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO integrity_guard.audit_keys (id, key_values, last_seen, relid,
                                            rel_incarnation, key_columns)
    SELECT NEW.id, jsonb_object_agg(e.key, e.value), NEW.last_seen, NEW.relid,
           NEW.rel_incarnation, NEW.key_columns
      FROM jsonb_each(NEW.detail) e WHERE e.key IN ('key', 'detail', 'samples')
    ON CONFLICT (id) DO NOTHING;
    UPDATE integrity_guard.audit_log a SET detail = a.detail - '{key,detail,samples}'::text[]
     WHERE a.id = NEW.id;
    RETURN NULL;
END
$$;

-- THE key-values rule, as _key_row_readable applies it, from the key row's
-- own columns (no pg_read_all_stats here: key values follow the server's
-- own DETAIL rule).  _key_row_readable stays, for one row by id.
DROP POLICY audit_keys_visible ON integrity_guard.audit_keys;
CREATE POLICY audit_keys_visible ON integrity_guard.audit_keys FOR SELECT
  USING ((rel_incarnation IS NULL
          OR rel_incarnation = (SELECT i.token FROM integrity_guard.database_incarnation i))
         AND integrity_guard._keys_readable(relid, key_columns));

-- The stored rows are read in (last_seen, id) order and their key sets
-- merged in that order (the arm's own ORDER BY lets the planner walk both
-- indexes); queued rows are sorted apart and merged in.
CREATE OR REPLACE FUNCTION integrity_guard.events(since timestamptz DEFAULT NULL,
                                                  rel regclass DEFAULT NULL,
                                                  event_type text DEFAULT NULL)
RETURNS SETOF integrity_guard.audit_log
LANGUAGE sql STABLE
BEGIN ATOMIC
  SELECT u.* FROM (
    (SELECT b.id, b.event_type, b.schema_name, b.table_name, b.relid, b.target, b.occurrences,
            b.first_seen, b.last_seen, b.role_name, b.database_name, b.application_name,
            CASE WHEN k.key_values IS NULL THEN b.detail
                 ELSE coalesce(b.detail, '{}') || k.key_values END AS detail,
            b.rel_incarnation, b.key_columns
     FROM integrity_guard.audit_log b
     LEFT JOIN integrity_guard.audit_keys k
            ON k.last_seen = b.last_seen AND k.id = b.id
           AND k.last_seen >= greatest(events.since, '-infinity')
     WHERE b.last_seen >= greatest(events.since, '-infinity')
       AND (events.rel IS NULL
            OR b.relid = events.rel
               AND (b.rel_incarnation IS NULL
                    OR b.rel_incarnation = (SELECT i.token FROM integrity_guard.database_incarnation i)))
       AND (events.event_type IS NULL OR b.event_type = events.event_type)
     ORDER BY b.last_seen DESC, b.id DESC)
    UNION ALL
    SELECT p.id, p.event_type, p.schema_name, p.table_name, p.relid, p.target, p.occurrences,
           p.first_seen, p.last_seen, p.role_name, p.database_name, p.application_name,
           integrity_guard._incident_detail(p), p.rel_incarnation, p.key_columns
    FROM integrity_guard._pending() p
    WHERE p.last_seen >= greatest(events.since, '-infinity')
      AND (events.rel IS NULL
           OR integrity_guard._incident_relid(p, (SELECT i.token FROM integrity_guard.database_incarnation i))
              = events.rel)
      AND (events.event_type IS NULL OR p.event_type = events.event_type)) u
  ORDER BY u.last_seen DESC, u.id DESC;
END;

-- == Citus (issue 26, first part) ==
-- The helpers attach the row-local guards to Citus distributed and
-- reference tables (see the comment inside).
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
    -- each shard's rows; it asks for citus.enable_unsafe_triggers, which the
    -- guard turns on for its own CREATE TRIGGER only.  A children guard
    -- names other tables, which on a worker are not the shards: refused.
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition d
                                 WHERE d.logicalrelid = $1)'
           INTO citus USING rel;
    END IF;
    IF citus AND kind = 'children' THEN
        RAISE EXCEPTION 'guard_children on Citus table % is not supported yet', rel
              USING ERRCODE = 'feature_not_supported',
                    DETAIL = 'On a worker, a guard''s references would name the logical child tables, not the co-located shards.',
                    HINT = 'Declare the foreign key with its own ON DELETE action, which Citus supports.';
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

-- guards shows logical tables: on a Citus cluster, not the copies of their
-- triggers on every shard (nor the coordinator's copy of a reference
-- table).  PUBLIC executes _citus_shard (the view runs as its reader); it
-- never raises, and answers false where Citus is not installed.
CREATE FUNCTION integrity_guard._citus_shard(rel oid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ig_citus_shard_sql'
LANGUAGE C STABLE PARALLEL SAFE;
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
  AND t.tgparentid = 0
  AND NOT integrity_guard._citus_shard(t.tgrelid);
