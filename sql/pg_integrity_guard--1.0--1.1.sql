-- pg_integrity_guard 1.0 -> 1.1: the durable audit pipeline (shared-memory
-- queue, background flush, server-wide error capture, cumulative stats).
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.1'" to load this file. \quit

--------------------------------------------------------------------------
-- Readers drain first: this backend's pending incidents and, with the
-- durable pipeline, everything queued for this database.  VOLATILE so that
-- the query after the drain takes a snapshot that sees what it wrote.
--------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION integrity_guard.events(since timestamptz DEFAULT NULL,
                                                  rel regclass DEFAULT NULL,
                                                  event_type text DEFAULT NULL)
RETURNS SETOF integrity_guard.audit_log
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT integrity_guard.flush();
  SELECT a.*
  FROM integrity_guard.audit_log a
  WHERE ($1 IS NULL OR a.last_seen >= $1)
    AND ($2 IS NULL OR integrity_guard._incident_table(a.schema_name, a.table_name) = $2)
    AND ($3 IS NULL OR a.event_type = $3)
  ORDER BY a.last_seen DESC, a.id DESC
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
  FROM integrity_guard.audit_log a
  WHERE $1 IS NULL OR a.last_seen >= $1
  GROUP BY a.schema_name, a.table_name, a.event_type, a.target
  ORDER BY sum(a.occurrences) DESC, a.schema_name, a.table_name, a.event_type, a.target
$$;

CREATE OR REPLACE FUNCTION integrity_guard.duplicate_key_attempts(since timestamptz DEFAULT NULL,
                                                                  rel regclass DEFAULT NULL)
RETURNS SETOF integrity_guard.audit_log
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM integrity_guard.events($1, $2, 'duplicate_key') $$;

CREATE OR REPLACE VIEW integrity_guard.recent_events
WITH (security_invoker = true) AS
SELECT a.*
FROM integrity_guard.events(now() - interval '1 day') a
ORDER BY a.last_seen DESC, a.id DESC;

CREATE OR REPLACE VIEW integrity_guard.duplicate_keys
WITH (security_invoker = true) AS
SELECT a.schema_name, a.table_name, a.target AS constraint_name,
       a.detail->>'key' AS key, a.detail->>'mode' AS mode,
       a.occurrences, a.first_seen, a.last_seen, a.role_name, a.application_name
FROM integrity_guard.events(NULL, NULL, 'duplicate_key') a
ORDER BY a.last_seen DESC, a.id DESC;

COMMENT ON FUNCTION integrity_guard.flush() IS
  'Writes pending incidents (this backend''s, and with the durable pipeline every queued one of this database) and returns how many rows were written';

--------------------------------------------------------------------------
-- Cumulative statistics (shared memory; needs shared_preload_libraries)
--------------------------------------------------------------------------
CREATE FUNCTION integrity_guard._stats(OUT dbid oid, OUT schema_name text, OUT table_name text,
                                       OUT event_type text, OUT target text, OUT occurrences bigint,
                                       OUT first_seen timestamptz, OUT last_seen timestamptz,
                                       OUT stats_reset timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ig_stats_fn'
LANGUAGE C VOLATILE STRICT;

-- pg_stat_* style: members of pg_read_all_stats (pg_monitor) see every
-- database's counters, other roles those of this database's tables they can
-- SELECT.  database_name comes last so that the documented columns keep
-- their places.
CREATE VIEW integrity_guard.stats AS
SELECT s.schema_name::name AS schema_name, s.table_name::name AS table_name,
       s.event_type, s.target, s.occurrences, s.first_seen, s.last_seen,
       s.stats_reset, d.datname AS database_name
FROM integrity_guard._stats() s
LEFT JOIN pg_catalog.pg_database d ON d.oid = s.dbid;

COMMENT ON VIEW integrity_guard.stats IS
  'Cumulative incident counters since stats_reset, kept in shared memory and across clean restarts';

CREATE FUNCTION integrity_guard.stats_reset()
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'ig_stats_reset'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION integrity_guard.stats_reset() IS
  'Forgets every cumulative counter of the stats view (extension owner or superuser)';

GRANT SELECT ON integrity_guard.stats TO PUBLIC;

--------------------------------------------------------------------------
-- status(): how the extension runs, what the pipeline holds
--------------------------------------------------------------------------
CREATE FUNCTION integrity_guard._pipeline_status(OUT active boolean, OUT queue_capacity integer,
                                                 OUT queue_used integer, OUT queue_dropped bigint,
                                                 OUT discarded bigint, OUT launcher_pid integer,
                                                 OUT last_flush timestamptz,
                                                 OUT database_last_flush timestamptz,
                                                 OUT database_written bigint,
                                                 OUT stats_entries integer, OUT stats_capacity integer,
                                                 OUT stats_dropped bigint, OUT stats_reset timestamptz)
AS 'MODULE_PATHNAME', 'ig_pipeline_status'
LANGUAGE C VOLATILE;

CREATE FUNCTION integrity_guard._pipeline_register()
RETURNS void
AS 'MODULE_PATHNAME', 'ig_pipeline_register'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION integrity_guard._pipeline_register() FROM PUBLIC;

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
          THEN 'incidents go through a shared-memory queue that background workers write into audit_log within flush_interval'
          WHEN (SELECT active FROM p)
          THEN 'integrity_guard.durable_audit is off: incidents are written in the transaction that produced them'
          ELSE 'not preloaded: incidents are written in the transaction that produced them; add pg_integrity_guard to shared_preload_libraries for the queue, error capture and stats' END),
    ('lost_on_rollback', CASE WHEN (SELECT yes FROM durable) THEN 'no' ELSE 'yes' END,
     CASE WHEN (SELECT yes FROM durable)
          THEN 'incidents survive the rollback of their transaction; a crash of the server loses what the queue held'
          ELSE 'incidents of a transaction that rolls back are lost with it: a duplicate raised by guard_unique in mode=raise outside a savepoint aborts its transaction and its own audit row' END),
    ('queue_capacity', (SELECT queue_capacity::text FROM p),
     'integrity_guard.queue_size: distinct incidents the queue holds'),
    ('queue_used', (SELECT queue_used::text FROM p),
     'incidents queued and not yet written'),
    ('queue_dropped', (SELECT queue_dropped::text FROM p),
     'events refused by a full queue since start (still counted in stats)'),
    ('events_not_written', (SELECT discarded::text FROM p),
     'events of databases without the extension, or that could not be reached: counted in stats only'),
    ('worker', CASE WHEN NOT (SELECT active FROM p) THEN 'not running (needs shared_preload_libraries)'
                    WHEN (SELECT launcher_pid FROM p) IS NULL THEN 'not running'
                    ELSE 'running (launcher pid ' || (SELECT launcher_pid FROM p) || ')' END,
     'the launcher starts a short job per database with queued incidents'),
    ('last_flush', (SELECT database_last_flush::text FROM p),
     'when queued incidents were last written into this database''s audit_log'),
    ('flush_interval', current_setting('integrity_guard.flush_interval'),
     'integrity_guard.flush_interval'),
    ('capture_errors', CASE WHEN (SELECT active FROM p) THEN current_setting('integrity_guard.capture_errors')
                            ELSE 'off (needs shared_preload_libraries)' END,
     'errors sent to clients that become incidents'),
    ('stats', CASE WHEN (SELECT active FROM p)
                   THEN (SELECT stats_entries || ' of ' || stats_capacity FROM p)
                   ELSE 'off (needs shared_preload_libraries)' END,
     'cumulative counters in use (integrity_guard.max_stats)'),
    ('stats_dropped', (SELECT stats_dropped::text FROM p),
     'events not counted because the stats table was full'),
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
$$;

COMMENT ON FUNCTION integrity_guard.status() IS
  'How the extension runs in this backend: preload, audit mode, queue, workers, capture and stats';

-- From now on this database's queued events are written, not only counted.
-- Without preload this also makes CREATE EXTENSION end with a NOTICE on
-- what preloading adds (scripts run with client_min_messages = warning).
SELECT integrity_guard._pipeline_register();
