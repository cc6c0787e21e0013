-- pg_integrity_guard 1.4 -> 1.5: the audit read at table speed.  The
-- visibility rule is unchanged; it is decided once per relation (and key
-- column set) per query instead of once per row, and the readers read
-- columns, not whole rows.  Each section below is headed by what it changes.
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.5'" to load this file. \quit

-- == readers at table speed (issue 24) ==
-- The rule's two decisions, in C with a per-query cache (audit_table.c).
-- PUBLIC executes them: the policies below evaluate them as the reader.
-- Neither raises, for any argument: what is gone is not readable.
CREATE FUNCTION integrity_guard._relation_readable(relid oid)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ig_relation_readable'
LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION integrity_guard._keys_readable(relid oid, key_columns smallint[])
RETURNS boolean
AS 'MODULE_PATHNAME', 'ig_keys_readable'
LANGUAGE C STABLE PARALLEL SAFE;

-- THE visibility rule, unchanged: superusers and pg_read_all_stats see
-- every incident; other roles those of a relation of this database that
-- still exists and that they can SELECT (some column of).  Used for pending
-- rows (_pending) and by anyone who asks about one row; the policy below
-- is the same rule written out, so that the planner evaluates its
-- role-wide parts once per query (initplans) and no SQL function per row.
CREATE OR REPLACE FUNCTION integrity_guard._incident_visible(a integrity_guard.audit_log)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
      OR integrity_guard._relation_readable(
           integrity_guard._incident_relid($1, (SELECT i.token FROM integrity_guard.database_incarnation i)))
$$;

-- Key values, by the rule of the server's own error DETAIL (see
-- _keys_readable).  The key columns: those stored with the row, or, for a
-- pending row, those its detail carries; a row with samples (several keys)
-- takes SELECT on the table.
CREATE OR REPLACE FUNCTION integrity_guard._key_visible(a integrity_guard.audit_log)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT integrity_guard._keys_readable(
           integrity_guard._incident_relid($1, (SELECT i.token FROM integrity_guard.database_incarnation i)),
           CASE WHEN $1.detail ? 'samples' THEN NULL
                ELSE coalesce($1.key_columns,
                              (SELECT array_agg(k::smallint)
                               FROM pg_catalog.jsonb_array_elements_text($1.detail->'key_columns') k)) END)
$$;

DROP POLICY audit_log_visible ON integrity_guard.audit_log;
CREATE POLICY audit_log_visible ON integrity_guard.audit_log FOR SELECT
  USING ((SELECT pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE'))
         OR ((rel_incarnation IS NULL
              OR rel_incarnation = (SELECT i.token FROM integrity_guard.database_incarnation i))
             AND integrity_guard._relation_readable(relid)));
-- audit_keys: the same rule for the row each key set belongs to, looked up
-- by id in C (_key_row_readable: as the EXISTS over audit_log it replaces,
-- but costed as one call, so that reading keys does not make the planner
-- compile the query).  Stored rows keep their key columns in key_columns.
CREATE FUNCTION integrity_guard._key_row_readable(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ig_key_row_readable'
LANGUAGE C STABLE PARALLEL SAFE;
DROP POLICY audit_keys_visible ON integrity_guard.audit_keys;
CREATE POLICY audit_keys_visible ON integrity_guard.audit_keys FOR SELECT
  USING (integrity_guard._key_row_readable(id));

-- Readers: SQL-standard bodies, bound to their objects when created (no
-- search_path to pin) and inlined into the caller's query, so each call is
-- planned for its arguments (since => NULL is a full read, a recent hour an
-- index range; greatest(), unlike coalesce(), lets the planner use that
-- range under the row-level policy), with no result set kept in between.
-- Columns, not whole rows; the key values the reader may see are merged
-- into detail.  _pending() is STABLE (it only reads) and runs in the leader
-- only, so that the table's part can be read by parallel workers.
ALTER FUNCTION integrity_guard._pending() STABLE PARALLEL RESTRICTED;

CREATE OR REPLACE FUNCTION integrity_guard.events(since timestamptz DEFAULT NULL,
                                                  rel regclass DEFAULT NULL,
                                                  event_type text DEFAULT NULL)
RETURNS SETOF integrity_guard.audit_log
LANGUAGE sql STABLE
BEGIN ATOMIC
  SELECT u.* FROM (
    SELECT b.id, b.event_type, b.schema_name, b.table_name, b.relid, b.target, b.occurrences,
           b.first_seen, b.last_seen, b.role_name, b.database_name, b.application_name,
           CASE WHEN k.key_values IS NULL THEN b.detail
                ELSE coalesce(b.detail, '{}') || k.key_values END AS detail,
           b.rel_incarnation, b.key_columns
    FROM integrity_guard.audit_log b
    LEFT JOIN integrity_guard.audit_keys k ON k.id = b.id
    WHERE b.last_seen >= greatest(events.since, '-infinity')
      AND (events.rel IS NULL
           OR b.relid = events.rel
              AND (b.rel_incarnation IS NULL
                   OR b.rel_incarnation = (SELECT i.token FROM integrity_guard.database_incarnation i)))
      AND (events.event_type IS NULL OR b.event_type = events.event_type)
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

-- Aggregated before labelled: rows with a table and a target (nearly all)
-- group by those columns, which the planner can count; the rest, and the
-- queue's, also by what their labels are made of; the labels are computed
-- once per group, and the groups regroup by label.  Readers never fail
-- because of stored rows: occurrences that add up past bigint (each row
-- may hold up to its maximum) show the maximum.
CREATE OR REPLACE FUNCTION integrity_guard.summary(since timestamptz DEFAULT NULL)
RETURNS TABLE (schema_name name, table_name name, event_type text, target text,
               incidents bigint, occurrences bigint,
               first_seen timestamptz, last_seen timestamptz)
LANGUAGE sql STABLE
BEGIN ATOMIC
  SELECT g.schema_name, integrity_guard._table_label(g.table_name, g.statement) AS table_name,
         g.event_type, coalesce(g.target, 'SQLSTATE ' || g.sqlstate) AS target,
         sum(g.incidents)::bigint, least(sum(g.occurrences), 9223372036854775807)::bigint,
         min(g.first_seen), max(g.last_seen)
  FROM (SELECT a.schema_name, a.table_name, a.event_type, a.target,
               NULL::text AS statement, NULL::text AS sqlstate,
               count(*) AS incidents, sum(a.occurrences) AS occurrences,
               min(a.first_seen) AS first_seen, max(a.last_seen) AS last_seen
        FROM integrity_guard.audit_log a
        WHERE a.last_seen >= greatest(summary.since, '-infinity')
          AND a.table_name IS NOT NULL AND a.target IS NOT NULL
        GROUP BY 1, 2, 3, 4
        UNION ALL
        SELECT b.schema_name, b.table_name, b.event_type, b.target,
               CASE WHEN b.table_name IS NULL THEN b.detail->>'statement' END,
               CASE WHEN b.target IS NULL THEN b.detail->>'sqlstate' END,
               count(*), sum(b.occurrences), min(b.first_seen), max(b.last_seen)
        FROM (SELECT a.schema_name, a.table_name, a.event_type, a.target, a.detail,
                     a.occurrences, a.first_seen, a.last_seen
              FROM integrity_guard.audit_log a
              WHERE a.last_seen >= greatest(summary.since, '-infinity')
                AND (a.table_name IS NULL OR a.target IS NULL)
              UNION ALL
              SELECT p.schema_name, p.table_name, p.event_type, p.target, p.detail,
                     p.occurrences, p.first_seen, p.last_seen
              FROM integrity_guard._pending() p
              WHERE p.last_seen >= greatest(summary.since, '-infinity')) b
        GROUP BY 1, 2, 3, 4, 5, 6) g
  GROUP BY g.schema_name, 2, g.event_type, 4
  ORDER BY sum(g.occurrences) DESC, 1, 2, 3, 4;
END;
