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
