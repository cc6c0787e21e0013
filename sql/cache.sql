-- the per-trigger cache follows the catalog: never the wrong column
\set SHOW_CONTEXT never

CREATE TABLE evolving (a bigint, b bigint, lo date, hi date);
SELECT integrity_guard.guard_counter('evolving', ARRAY['b'], max_value => 10);
SELECT integrity_guard.guard_range('evolving', 'lo', 'hi');
INSERT INTO evolving VALUES (100, 100, '2024-01-02', '2024-01-01');
SELECT * FROM evolving;

-- renamed columns: the guard follows its column (issue 27), and the cache
-- reads the new arguments: 'b_old' is guarded, 'b_new' (once 'a') is not
ALTER TABLE evolving RENAME COLUMN b TO b_old;
ALTER TABLE evolving RENAME COLUMN a TO b_new;
INSERT INTO evolving VALUES (100, 100);
SELECT b_new, b_old FROM evolving ORDER BY b_old;
-- a new column that takes the old name is a new column: not guarded
ALTER TABLE evolving ADD COLUMN b bigint;
INSERT INTO evolving (b_new, b_old, b) VALUES (100, 100, 100);
SELECT b_new, b_old, b FROM evolving ORDER BY b_old, b NULLS FIRST;
-- should a rename slip past (event triggers off), the guard names a column
-- that is gone: the writer gets a clear error and nothing is written (no
-- other column is ever taken for it)
ALTER EVENT TRIGGER integrity_guard_retype DISABLE;
ALTER TABLE evolving RENAME COLUMN b_old TO b_older;
ALTER EVENT TRIGGER integrity_guard_retype ENABLE;
SELECT sqlstate_of($$INSERT INTO evolving VALUES (100, 100)$$);
\set VERBOSITY default
INSERT INTO evolving VALUES (100, 100);
SELECT count(*) FROM evolving;
-- re-attaching is the fix the hint names; then renames are followed again
SELECT integrity_guard.unguard('evolving', 'counter');
SELECT integrity_guard.guard_counter('evolving', ARRAY['b_older'], max_value => 10);
ALTER TABLE evolving RENAME COLUMN b_older TO b_old;
INSERT INTO evolving (b_new, b_old, b) VALUES (100, 100, 100);
SELECT b_new, b_old, b FROM evolving ORDER BY b_old, b NULLS FIRST;

-- dropped column: a range guard needs both bounds, so it goes with one
ALTER TABLE evolving DROP COLUMN hi;
SELECT sqlstate_of($$UPDATE evolving SET lo = lo$$);
SELECT count(*) FROM integrity_guard.guards
 WHERE table_name = 'evolving'::regclass AND kind = 'range';
UPDATE evolving SET b_old = 20;
SELECT b_old FROM evolving;

-- changed type: should a change slip past (event triggers off), the guard
-- refuses rather than misreads
ALTER EVENT TRIGGER integrity_guard_retype DISABLE;
ALTER TABLE evolving ALTER COLUMN b_old TYPE text;
ALTER EVENT TRIGGER integrity_guard_retype ENABLE;
SELECT sqlstate_of($$UPDATE evolving SET b_old = '5'$$);
-- a type it serves again: the guard holds its bounds
ALTER TABLE evolving ALTER COLUMN b_old TYPE numeric USING b_old::numeric;
UPDATE evolving SET b_old = 123.5;
SELECT b_old FROM evolving;
-- a type it does not serve takes its last column, and the guard goes
ALTER TABLE evolving ALTER COLUMN b_old TYPE text;
UPDATE evolving SET b_old = 'x';
SELECT count(*) FROM integrity_guard.guards WHERE table_name = 'evolving'::regclass;

-- a trigger replaced under the same name gets its new arguments at once
CREATE TABLE swapped (n bigint);
CREATE TRIGGER g BEFORE INSERT ON swapped FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.saturate_counter('n::10');
INSERT INTO swapped VALUES (50);
BEGIN;
DROP TRIGGER g ON swapped;
CREATE TRIGGER g BEFORE INSERT ON swapped FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.saturate_counter('n::20');
INSERT INTO swapped VALUES (50);
COMMIT;
SELECT * FROM swapped ORDER BY n;
