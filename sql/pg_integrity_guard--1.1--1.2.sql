-- pg_integrity_guard 1.1 -> 1.2: guards that behave like the server on every
-- write path, fire-time privilege checks, readers that never write, and the
-- repair kit.  Each section below is headed by what it changes.
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.2'" to load this file. \quit

-- == versions: volatility and parallel safety (issue 15) ==
-- An IMMUTABLE function is one the planner may run anywhere, parallel
-- workers included: _trigger_name() only formats its arguments.
ALTER FUNCTION integrity_guard._trigger_name(text, text[]) PARALLEL SAFE;
