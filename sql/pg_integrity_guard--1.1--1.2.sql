-- pg_integrity_guard 1.1 -> 1.2: guards that behave like the server on every
-- write path, fire-time privilege checks, readers that never write, and the
-- repair kit.  Each section below is headed by what it changes.
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.2'" to load this file. \quit

-- == versions: volatility and parallel safety (issue 15) ==
-- An IMMUTABLE function is one the planner may run anywhere, parallel
-- workers included: _trigger_name() only formats its arguments.
ALTER FUNCTION integrity_guard._trigger_name(text, text[]) PARALLEL SAFE;

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
CREATE FUNCTION integrity_guard._incident_visible(a integrity_guard.audit_log)
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
-- (BuildIndexValueDescription): a visible incident, no row-level security
-- in force for the role, and SELECT on the table or on every key column.
CREATE FUNCTION integrity_guard._key_visible(a integrity_guard.audit_log)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(
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
-- key values the reader may see.
CREATE OR REPLACE FUNCTION integrity_guard.events(since timestamptz DEFAULT NULL,
                                                  rel regclass DEFAULT NULL,
                                                  event_type text DEFAULT NULL)
RETURNS SETOF integrity_guard.audit_log
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT integrity_guard.flush();
  SELECT (x.r).*
  FROM integrity_guard.audit_log a
  LEFT JOIN integrity_guard.audit_keys k ON k.id = a.id
  -- once per row (a row expression's .* would evaluate it per column)
  CROSS JOIN LATERAL (SELECT CASE WHEN k.key_values IS NULL THEN a
                                  ELSE jsonb_populate_record(a, jsonb_build_object('detail',
                                           coalesce(a.detail, '{}') || k.key_values)) END AS r
                      OFFSET 0) x
  WHERE ($1 IS NULL OR a.last_seen >= $1)
    AND ($2 IS NULL OR (a.relid = $2
                        AND a.rel_incarnation = (SELECT i.token FROM integrity_guard.database_incarnation i)))
    AND ($3 IS NULL OR a.event_type = $3)
  ORDER BY a.last_seen DESC, a.id DESC
$$;

-- Internals.  Revoked from PUBLIC: what no ordinary role needs to call.
-- Kept executable (each checks its arguments and the caller's privileges
-- itself, so that a direct call can do no more than the public function):
-- the attach helpers the SECURITY INVOKER guard_*() functions call
-- (_check_args, _children_immediate, _attach, _trigger_name), what the
-- security_invoker views and readers evaluate as the reader (_trigger_args,
-- _incident_visible, _key_visible, _incident_detail, _stats, _preloaded,
-- _pipeline_status), and what the assignment rewrite puts into the
-- writer's own statements (_saturate, _sat_*, _numeric_int8_sat,
-- _*range_guarded).
REVOKE ALL ON FUNCTION integrity_guard._incident_table(name, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION integrity_guard._writing() FROM PUBLIC;
REVOKE ALL ON FUNCTION integrity_guard._audit_bind() FROM PUBLIC;

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
