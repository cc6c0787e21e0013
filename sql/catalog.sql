-- The extension's catalog entries follow the rules PostgreSQL's own
-- opr_sanity applies to built-in functions, and this project's: every
-- IMMUTABLE function is PARALLEL SAFE, every SQL or PL/pgSQL function pins
-- its search_path (procedures that COMMIT cannot: they call functions that
-- do; a SQL function with a RETURN or BEGIN ATOMIC body need not: its names
-- are resolved when it is created).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_integrity_guard;
RESET client_min_messages;
CREATE TEMP VIEW ext_functions AS
SELECT p.oid, p.proname, pg_get_function_identity_arguments(p.oid) AS args,
       p.provolatile, p.proparallel, p.prokind, l.lanname, p.proconfig,
       p.prosqlbody IS NOT NULL AS resolved_at_creation
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_integrity_guard'
JOIN pg_language l ON l.oid = p.prolang;
-- IMMUTABLE but not PARALLEL SAFE (opr_sanity's rule)
SELECT proname, args FROM ext_functions
WHERE provolatile = 'i' AND proparallel = 'u' ORDER BY 1, 2;
-- SQL and PL/pgSQL functions without a pinned search_path
SELECT proname, args, prokind FROM ext_functions
WHERE lanname IN ('sql', 'plpgsql') AND prokind <> 'p' AND NOT resolved_at_creation
  AND NOT coalesce(array_to_string(proconfig, ',') ~ 'search_path=', false)
ORDER BY 1, 2;
