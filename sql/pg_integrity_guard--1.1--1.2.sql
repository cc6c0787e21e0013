-- pg_integrity_guard 1.1 -> 1.2: guards that behave like the server on every
-- write path, fire-time privilege checks, readers that never write, and the
-- repair kit.  Each section below is headed by what it changes.
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.2'" to load this file. \quit

-- == versions: volatility and parallel safety (issue 15) ==
-- An IMMUTABLE function is one the planner may run anywhere, parallel
-- workers included: _trigger_name() only formats its arguments.
ALTER FUNCTION integrity_guard._trigger_name(text, text[]) PARALLEL SAFE;

-- == rewrite: exact value clamped on every path, any range type (issue 12) ==
-- Saturating division and abs, float casts, and one range constructor for
-- every range type (the result type comes from the trailing NULL::rng).
CREATE FUNCTION integrity_guard._sat_div(bigint, bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_sat_div' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard._sat_abs(bigint) RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_sat_abs' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard._float8_int8_sat(double precision) RETURNS bigint
AS 'MODULE_PATHNAME', 'ig_float8_int8_sat' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION integrity_guard._range_guarded(anyelement, anyelement, text, text, oid, smallint,
                                               anyrange)
RETURNS anyrange AS 'MODULE_PATHNAME', 'ig_range_clamped' LANGUAGE C VOLATILE;

-- Truncated by characters so that a multibyte name keeps its hash suffix.
CREATE OR REPLACE FUNCTION integrity_guard._trigger_name(prefix text, parts text[])
RETURNS name
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN octet_length(full_name) <= 63 THEN full_name
              ELSE (SELECT left(full_name, k) FROM generate_series(50, 0, -1) AS g(k)
                     WHERE octet_length(left(full_name, k)) <= 54 LIMIT 1)
                   || '_' || left(md5(full_name), 8)
         END::name
  FROM (SELECT prefix || coalesce('_' || array_to_string(parts, '_'), '') AS full_name) s
$$;

-- A guard follows its column through ALTER COLUMN ... TYPE: the counter
-- guard keeps its bounds (attached again with them written out when the new
-- type would read them differently), a type the guard cannot serve is
-- refused before the table changes.
CREATE FUNCTION integrity_guard._guard_retype() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'ig_guard_retype' LANGUAGE C;
CREATE EVENT TRIGGER integrity_guard_retype ON ddl_command_start
  WHEN TAG IN ('ALTER TABLE')
  EXECUTE FUNCTION integrity_guard._guard_retype();
