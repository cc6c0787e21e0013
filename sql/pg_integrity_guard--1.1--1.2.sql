-- pg_integrity_guard 1.1 -> 1.2: guards that behave like the server on every
-- write path, fire-time privilege checks, readers that never write, and the
-- repair kit.  Each section below is headed by what it changes.
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.2'" to load this file. \quit
