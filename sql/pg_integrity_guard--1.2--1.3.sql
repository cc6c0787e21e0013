-- pg_integrity_guard 1.2 -> 1.3: every entry point defends itself against a
-- hostile caller, children owned by someone else are changed only with their
-- owner's consent, captured errors stay with the relation that raised them,
-- and one bad audit entry never blocks the others.  Each section below is
-- headed by what it changes.
\echo Use "ALTER EXTENSION pg_integrity_guard UPDATE TO '1.3'" to load this file. \quit
