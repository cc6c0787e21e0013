-- What a session caches about the extension follows it when the extension
-- is dropped and created again: the guard registry (which functions are
-- guards), the rewrite's helper functions, the kept audit INSERT and the
-- extension owner behind it all get new OIDs.  A database of its own, so
-- that the other suites keep their extension.
SELECT current_database() AS home \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS ig_registry;
CREATE DATABASE ig_registry;
\c ig_registry
SET client_min_messages = warning;
CREATE EXTENSION pg_integrity_guard;
ALTER DATABASE ig_registry SET session_preload_libraries = 'pg_integrity_guard';
\c ig_registry
\set SHOW_CONTEXT never

CREATE TABLE g (id int PRIMARY KEY, n int NOT NULL, period tstzrange);
INSERT INTO g VALUES (1, 2147483600, NULL);
SELECT integrity_guard.guard_counter('g', ARRAY['n']);
SELECT integrity_guard.guard_range('g', 'period'::name);
-- the rewrite saturates what would overflow inside int4pl
UPDATE g SET n = n + 100;
UPDATE g SET period = tstzrange('2026-01-02', '2026-01-01');
SELECT n, period FROM g;
SELECT event_type, target, occurrences FROM integrity_guard.audit_log ORDER BY id;

-- the same session, a new extension: every OID it cached is gone
SET client_min_messages = warning;
DROP EXTENSION pg_integrity_guard CASCADE;
CREATE EXTENSION pg_integrity_guard;
RESET client_min_messages;
SELECT count(*) AS guards_left FROM pg_trigger WHERE tgrelid = 'g'::regclass;
UPDATE g SET n = 2147483647;
-- unguarded now: the server's own errors
UPDATE g SET n = n + 100;
UPDATE g SET period = tstzrange('2026-01-02', '2026-01-01');
SELECT integrity_guard.guard_counter('g', ARRAY['n']);
SELECT integrity_guard.guard_range('g', 'period'::name);
-- guarded again: the rewrite finds the new guard functions and helpers,
-- and the incidents go into the new audit table
UPDATE g SET n = n + 100;
UPDATE g SET period = tstzrange('2026-01-04', '2026-01-03');
SELECT n, period FROM g;
SELECT event_type, target, occurrences FROM integrity_guard.audit_log ORDER BY id;

-- a guard the registry does not know
SELECT integrity_guard._check_args('no_such_guard', 'g', '{}');

-- ALTER EXTENSION UPDATE in the same session: the kept INSERT of 1.1 (key
-- values inside detail) gives way to 1.2's (key values in audit_keys)
SET client_min_messages = warning;
DROP EXTENSION pg_integrity_guard CASCADE;
CREATE EXTENSION pg_integrity_guard VERSION '1.1';
RESET client_min_messages;
CREATE TABLE u (id int PRIMARY KEY);
SELECT integrity_guard.guard_duplicates('u', 'skip');
INSERT INTO u VALUES (1), (1);
SELECT event_type, detail->>'key' AS key_in_detail FROM integrity_guard.audit_log ORDER BY id;
SET client_min_messages = warning;
ALTER EXTENSION pg_integrity_guard UPDATE TO '1.2';
RESET client_min_messages;
INSERT INTO u VALUES (2), (2);
SELECT a.event_type, a.detail->>'key' AS key_in_detail, k.key_values->>'key' AS key_apart
  FROM integrity_guard.audit_log a LEFT JOIN integrity_guard.audit_keys k USING (id)
 ORDER BY a.id;

\c :home
SET client_min_messages = warning;
DROP DATABASE ig_registry;
