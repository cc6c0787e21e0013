-- the per-trigger cache follows the catalog: never the wrong column
\set SHOW_CONTEXT never

CREATE TABLE evolving (a bigint, b bigint, lo date, hi date);
SELECT integrity_guard.guard_counter('evolving', ARRAY['b'], max_value => 10);
SELECT integrity_guard.guard_range('evolving', 'lo', 'hi');
INSERT INTO evolving VALUES (100, 100, '2024-01-02', '2024-01-01');
SELECT * FROM evolving;

-- renamed column: the guard names 'b', which no longer exists; the writer
-- gets a clear error and nothing is written (and 'a' is never touched)
ALTER TABLE evolving RENAME COLUMN b TO b_old;
ALTER TABLE evolving RENAME COLUMN a TO b_new;
SELECT sqlstate_of($$INSERT INTO evolving VALUES (100, 100)$$);
\set VERBOSITY default
INSERT INTO evolving VALUES (100, 100);
SELECT count(*) FROM evolving;
-- a new column that takes the old name is a new column: the guard follows it
ALTER TABLE evolving ADD COLUMN b bigint;
INSERT INTO evolving (b_new, b_old, b) VALUES (100, 100, 100);
SELECT b_new, b_old, b FROM evolving ORDER BY b_old, b NULLS FIRST;
-- re-attaching after the rename is the fix the hint names
SELECT integrity_guard.unguard('evolving', 'counter');
SELECT integrity_guard.guard_counter('evolving', ARRAY['b_old'], max_value => 10);
INSERT INTO evolving (b_new, b_old, b) VALUES (100, 100, 100);
SELECT b_new, b_old, b FROM evolving ORDER BY b_old, b NULLS FIRST;

-- dropped column
ALTER TABLE evolving DROP COLUMN hi;
SELECT sqlstate_of($$UPDATE evolving SET lo = lo$$);
SELECT integrity_guard.unguard('evolving', 'range');
UPDATE evolving SET b_old = 20;
SELECT b_old FROM evolving;

-- changed type: refused before the table changes (issue 12)
ALTER TABLE evolving ALTER COLUMN b_old TYPE text;
-- and should a change slip past (event triggers off), the guard refuses
-- rather than misreads
ALTER EVENT TRIGGER integrity_guard_retype DISABLE;
ALTER TABLE evolving ALTER COLUMN b_old TYPE text;
ALTER EVENT TRIGGER integrity_guard_retype ENABLE;
SELECT sqlstate_of($$UPDATE evolving SET b_old = '5'$$);
ALTER TABLE evolving ALTER COLUMN b_old TYPE numeric USING b_old::numeric;
UPDATE evolving SET b_old = 123.5;
SELECT b_old FROM evolving;

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
