-- guard_unique() and the server's own write paths: upserts, MERGE, partition
-- moves, STORED generated columns, indexes not yet valid (issue 12, 1-3)
\set SHOW_CONTEXT never

-- A fresh session whose first statement is an upsert: the library is loaded
-- by that statement's first guard, after its executor started.
CREATE TABLE first_up (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
CREATE TRIGGER integrity_guard_unique BEFORE INSERT OR UPDATE ON first_up
  FOR EACH ROW EXECUTE FUNCTION integrity_guard.guard_unique('mode=skip');
INSERT INTO first_up VALUES (1, 0);
\c
INSERT INTO first_up VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET n = first_up.n + 1;
SELECT * FROM first_up;

-- 1. Upserts: a conflict the statement's own arbiter handles is not a
-- duplicate attempt, in either mode; other unique indexes stay guarded.
CREATE TABLE up_raise (id int PRIMARY KEY, email text UNIQUE, n int NOT NULL DEFAULT 0);
CREATE TABLE up_skip (LIKE up_raise INCLUDING ALL);
SELECT integrity_guard.guard_duplicates('up_raise');
SELECT integrity_guard.guard_duplicates('up_skip', 'skip');
SELECT integrity_guard.purge('0') >= 0 AS emptied;
INSERT INTO up_raise VALUES (1, 'a'), (2, 'b');
INSERT INTO up_skip VALUES (1, 'a'), (2, 'b');
-- DO NOTHING, with and without a conflict target
INSERT INTO up_raise VALUES (1, 'x') ON CONFLICT DO NOTHING;
INSERT INTO up_skip VALUES (1, 'x'), (3, 'b') ON CONFLICT DO NOTHING;
INSERT INTO up_raise VALUES (1, 'x') ON CONFLICT (id) DO NOTHING;
INSERT INTO up_skip VALUES (1, 'x') ON CONFLICT ON CONSTRAINT up_skip_pkey DO NOTHING;
-- DO UPDATE: the update happens (it used to be raised, or lost in skip)
INSERT INTO up_raise VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET n = up_raise.n + 1;
INSERT INTO up_skip VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET n = up_skip.n + 1;
INSERT INTO up_skip VALUES (7, 'b') ON CONFLICT (email) DO UPDATE SET n = up_skip.n + 10
  RETURNING *;
-- the row conflicts on its arbiter and on another index with the same row:
-- it takes the update path, so no other index sees a duplicate from it
INSERT INTO up_raise VALUES (2, 'b') ON CONFLICT (id) DO UPDATE SET n = 5;
-- a conflict on a non-arbiter index is a duplicate attempt: raised, skipped
INSERT INTO up_raise VALUES (3, 'a') ON CONFLICT (id) DO UPDATE SET n = 9;
INSERT INTO up_skip VALUES (3, 'a') ON CONFLICT (id) DO UPDATE SET n = 9;
-- the DO UPDATE's own update is a write like any other
INSERT INTO up_raise VALUES (2) ON CONFLICT (id) DO UPDATE SET email = 'a';
INSERT INTO up_skip VALUES (2) ON CONFLICT (id) DO UPDATE SET email = 'a';
-- nested: an upsert inside a function called by a plain INSERT, and the
-- other way round; a writable CTE upserting beside a plain insert
CREATE FUNCTION upsert_skip(k int) RETURNS int LANGUAGE sql AS
$$ INSERT INTO up_skip VALUES (k, 'f' || k) ON CONFLICT (id) DO UPDATE SET n = up_skip.n + 100 RETURNING n $$;
INSERT INTO up_raise SELECT 4, 'e', upsert_skip(1);
INSERT INTO up_skip VALUES (2, 'g', upsert_skip(1)) ON CONFLICT (id) DO UPDATE SET n = up_skip.n + 1000;
WITH u AS (INSERT INTO up_skip VALUES (2, 'zz') ON CONFLICT (id) DO NOTHING RETURNING id)
INSERT INTO up_skip VALUES (1, 'cte');
-- deep nesting (more levels than the stack first holds), and a unique
-- expression index whose function runs a query of its own while probed
CREATE FUNCTION norm(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS
$$ DECLARE r text; BEGIN SELECT lower(t) INTO r; RETURN r; END $$;
CREATE TABLE up_deep (id int PRIMARY KEY, code text, n int NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX up_deep_code ON up_deep (norm(code));
SELECT integrity_guard.guard_duplicates('up_deep', 'skip');
INSERT INTO up_deep VALUES (1, 'A');
CREATE FUNCTION deep(d int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    IF d > 0 THEN
        RETURN deep(d - 1);
    END IF;
    INSERT INTO up_deep VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET n = up_deep.n + 1;
    INSERT INTO up_deep VALUES (2, 'a') ON CONFLICT (id) DO UPDATE SET n = up_deep.n + 1;
    RETURN 0;
END $$;
SELECT deep(40);
INSERT INTO up_deep SELECT 3, 'b', deep(20) ON CONFLICT (id) DO NOTHING;
SELECT * FROM up_deep ORDER BY id;
SELECT * FROM up_raise ORDER BY id;
SELECT * FROM up_skip ORDER BY id;
-- only the attempts on non-arbiter indexes are audited
SELECT table_name, constraint_name, key, mode, occurrences
  FROM integrity_guard.duplicate_keys ORDER BY table_name, constraint_name, key;

-- MERGE: its inserts and updates are plain writes
MERGE INTO up_skip t USING (VALUES (1, 'a'), (8, 'b'), (9, 'h')) s(id, email) ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET n = t.n + 1
  WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.email);
SELECT * FROM up_skip ORDER BY id;

-- on a partitioned table the arbiters are the partitions' own indexes
CREATE TABLE up_part (id int, part int, email text, n int NOT NULL DEFAULT 0,
                      PRIMARY KEY (id, part), UNIQUE (email, part)) PARTITION BY LIST (part);
CREATE TABLE up_part_1 PARTITION OF up_part FOR VALUES IN (1);
CREATE TABLE up_part_2 PARTITION OF up_part FOR VALUES IN (2);
SELECT integrity_guard.guard_duplicates('up_part', 'skip');
INSERT INTO up_part VALUES (1, 1, 'a'), (1, 2, 'a');
INSERT INTO up_part VALUES (1, 1, 'x'), (1, 2, 'y'), (2, 2, 'a')
  ON CONFLICT (id, part) DO UPDATE SET n = up_part.n + 1;
SELECT tableoid::regclass, * FROM up_part ORDER BY 1, 2;

-- 2. mode=skip and an UPDATE moving a row to another partition: it moves,
-- or raises the server's 23505 when the key is taken there; never lost
INSERT INTO up_part VALUES (3, 1, 'c'), (3, 2, 'd'), (4, 1, 'm'), (5, 2, 'n');
UPDATE up_part SET part = 2 WHERE id = 4;
MERGE INTO up_part t USING (VALUES (5)) s(id) ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET part = 1;
UPDATE up_part SET part = 2 WHERE id = 3 AND part = 1;
MERGE INTO up_part t USING (VALUES (3)) s(id) ON t.id = s.id AND t.part = 1
  WHEN MATCHED THEN UPDATE SET part = 2;
MERGE INTO up_part t USING (VALUES (1)) s(id) ON t.id = s.id AND t.part = 2
  WHEN MATCHED THEN UPDATE SET part = 1;
-- a MERGE insert that repeats a key is still skipped
MERGE INTO up_part t USING (VALUES (3, 1, 'zz')) s(id, part, email) ON false
  WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.part, s.email);
SELECT tableoid::regclass, id, part, email FROM up_part ORDER BY 1, 2;

-- 3. STORED generated columns are computed as the server will
CREATE TABLE gen_u (id int PRIMARY KEY, email text,
                    email_lower text GENERATED ALWAYS AS (lower(email)) STORED UNIQUE);
SELECT integrity_guard.guard_duplicates('gen_u', 'skip');
INSERT INTO gen_u (id, email) VALUES (1, 'Ann@X'), (2, 'ann@x'), (3, 'bob@x');
UPDATE gen_u SET email = 'BOB@X' WHERE id = 1;
SELECT * FROM gen_u ORDER BY id;
-- NULLS NOT DISTINCT on a generated column: no false positives
CREATE TABLE gen_nnd (id int PRIMARY KEY, a int, twice int GENERATED ALWAYS AS (a * 2) STORED);
CREATE UNIQUE INDEX gen_nnd_twice ON gen_nnd (twice) NULLS NOT DISTINCT;
SELECT integrity_guard.guard_duplicates('gen_nnd');
INSERT INTO gen_nnd (id, a) VALUES (1, NULL);
INSERT INTO gen_nnd (id, a) VALUES (2, 1);
INSERT INTO gen_nnd (id, a) VALUES (3, 2);
INSERT INTO gen_nnd (id, a) VALUES (4, 1);
INSERT INTO gen_nnd (id, a) VALUES (5, NULL);
SELECT * FROM gen_nnd ORDER BY id;
-- an index ready for inserts but not yet valid (as while CREATE UNIQUE
-- INDEX CONCURRENTLY runs) is checked by the server, so by the guard
CREATE TABLE building (id int PRIMARY KEY, code text);
CREATE UNIQUE INDEX building_code ON building (code);
UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'building_code'::regclass;
SELECT integrity_guard.guard_duplicates('building', 'skip');
INSERT INTO building VALUES (1, 'a'), (2, 'a'), (3, 'b');
SELECT * FROM building ORDER BY id;
