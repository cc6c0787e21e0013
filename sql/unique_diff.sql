-- Differential: the same statements on an unguarded table and on guarded
-- twins (mode=raise, mode=skip).  Raise gives the same outcome and rows as
-- the server on every statement; skip gives the same rows wherever the
-- server accepted the statement.
\set SHOW_CONTEXT never
CREATE FUNCTION ud_make_twin(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE %I (id int, part int, email text, n int NOT NULL DEFAULT 0,
                    tag text GENERATED ALWAYS AS (lower(email)) STORED,
                    PRIMARY KEY (id, part), UNIQUE (email, part)) PARTITION BY LIST (part)', name);
    EXECUTE format('CREATE UNIQUE INDEX ON %I (tag, part) NULLS NOT DISTINCT', name);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES IN (1)', name || '_1', name);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES IN (2)', name || '_2', name);
END $$;
SELECT ud_make_twin('d_plain'), ud_make_twin('d_raise'), ud_make_twin('d_skip');
SELECT integrity_guard.guard_duplicates('d_raise');
SELECT integrity_guard.guard_duplicates('d_skip', 'skip');

CREATE TABLE ud_steps (step int PRIMARY KEY, sql text NOT NULL);
INSERT INTO ud_steps VALUES
 (1, $$INSERT INTO %1$I VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c')$$),
 (2, $$INSERT INTO %1$I VALUES (1, 1, 'z') ON CONFLICT DO NOTHING$$),
 (3, $$INSERT INTO %1$I VALUES (1, 1, 'a') ON CONFLICT (id, part) DO UPDATE SET n = %1$I.n + 1$$),
 (4, $$INSERT INTO %1$I VALUES (4, 1, 'a') ON CONFLICT (id, part) DO UPDATE SET n = 5$$),
 (5, $$INSERT INTO %1$I VALUES (4, 1, 'b') ON CONFLICT (email, part) DO UPDATE SET n = excluded.n + 7$$),
 (6, $$INSERT INTO %1$I VALUES (1, 1, 'q')$$),
 (7, $$INSERT INTO %1$I VALUES (5, 1, 'A')$$),
 (8, $$INSERT INTO %1$I VALUES (5, 1, 'A') ON CONFLICT (id, part) DO UPDATE SET n = 1$$),
 (9, $$UPDATE %1$I SET part = 2 WHERE id = 1$$),
 (10, $$INSERT INTO %1$I VALUES (2, 2, 'b2')$$),
 (11, $$UPDATE %1$I SET part = 2 WHERE id = 2 AND part = 1$$),
 (12, $$UPDATE %1$I SET part = 1 WHERE id = 3$$),
 (13, $$MERGE INTO %1$I t USING (VALUES (3, 1, 'c'), (6, 1, 'f')) s(id, part, email)
        ON t.id = s.id AND t.part = s.part
        WHEN MATCHED THEN UPDATE SET n = t.n + 1
        WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.part, s.email)$$),
 (14, $$MERGE INTO %1$I t USING (VALUES (2)) s(id) ON t.id = s.id AND t.part = 1
        WHEN MATCHED THEN UPDATE SET part = 2$$),
 (15, $$MERGE INTO %1$I t USING (VALUES (7, 1, 'f')) s(id, part, email) ON t.id = s.id
        WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.part, s.email)$$),
 (16, $$INSERT INTO %1$I SELECT g, 1, 'g' || g FROM generate_series(5, 9) g
        ON CONFLICT (id, part) DO UPDATE SET n = %1$I.n + 10$$),
 (17, $$WITH c AS (INSERT INTO %1$I VALUES (20, 1, 'u') ON CONFLICT DO NOTHING RETURNING id)
        INSERT INTO %1$I SELECT 21, 1, 'v' FROM c$$),
 (18, $$INSERT INTO %1$I VALUES (22, 2, 'c') ON CONFLICT ON CONSTRAINT %2$I DO NOTHING$$),
 (19, $$INSERT INTO %1$I VALUES (9, 1, 'w') ON CONFLICT (email, part) DO UPDATE SET id = 6$$),
 (20, $$UPDATE %1$I SET email = 'B2' WHERE id = 1 AND part = 2$$),
 (21, $$INSERT INTO %1$I VALUES (30, 2, 'X'), (31, 2, 'x') ON CONFLICT (tag, part) DO NOTHING$$);

CREATE TABLE ud_outcomes (step int, twin text, ok boolean, rows_same boolean);
CREATE FUNCTION ud_rows_of(t text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT right(tableoid::regclass::text, 1) || %L || row(id, part, email, n, tag)::text FROM %I',
        ':', t);
END $$;
CREATE FUNCTION ud_same_rows(a text, b text) RETURNS boolean LANGUAGE sql AS $$
    SELECT NOT EXISTS ((SELECT ud_rows_of(a) EXCEPT ALL SELECT ud_rows_of(b))
                       UNION ALL (SELECT ud_rows_of(b) EXCEPT ALL SELECT ud_rows_of(a)))
$$;
CREATE PROCEDURE ud_run() LANGUAGE plpgsql AS $$
DECLARE s record; t text; ok boolean;
BEGIN
    TRUNCATE ud_outcomes, d_plain, d_raise, d_skip;
    FOR s IN SELECT * FROM ud_steps ORDER BY step LOOP
        FOREACH t IN ARRAY ARRAY['d_plain', 'd_raise', 'd_skip'] LOOP
            BEGIN
                EXECUTE format(s.sql, t, t || '_pkey');
                ok := true;
            EXCEPTION WHEN unique_violation THEN
                ok := false;
            END;
            INSERT INTO ud_outcomes VALUES (s.step, t, ok, ud_same_rows('d_plain', t));
        END LOOP;
        -- after a statement the server refused, skip may differ: re-align
        IF NOT ud_same_rows('d_plain', 'd_skip') THEN
            SET LOCAL integrity_guard.enabled = off;
            DELETE FROM d_skip;
            INSERT INTO d_skip (id, part, email, n) SELECT id, part, email, n FROM d_plain;
            SET LOCAL integrity_guard.enabled = on;
        END IF;
    END LOOP;
END $$;
CREATE VIEW ud_diff AS
SELECT p.step, p.ok AS server_ok,
       r.ok = p.ok AND r.rows_same AS raise_same,
       CASE WHEN p.ok THEN s.ok AND s.rows_same END AS skip_same
  FROM ud_outcomes p JOIN ud_outcomes r USING (step) JOIN ud_outcomes s USING (step)
 WHERE p.twin = 'd_plain' AND r.twin = 'd_raise' AND s.twin = 'd_skip';
CALL ud_run();
-- per step: did the server accept it; raise: same outcome and rows; skip:
-- same rows when the server accepted it
SELECT * FROM ud_diff ORDER BY step;
-- again with the server's 23505 captured: preloaded, mode=raise then lets
-- rows through to the server's own check (the adaptive probe)
SET integrity_guard.capture_errors = 'unique_violation';
CALL ud_run();
SELECT count(*) AS steps, bool_and(raise_same) AS raise_same,
       bool_and(coalesce(skip_same, true)) AS skip_same FROM ud_diff;
RESET integrity_guard.capture_errors;

-- savepoints and COPY
BEGIN;
SAVEPOINT a;
INSERT INTO d_plain VALUES (40, 1, 'sp') ON CONFLICT (id, part) DO UPDATE SET n = 1;
INSERT INTO d_raise VALUES (40, 1, 'sp') ON CONFLICT (id, part) DO UPDATE SET n = 1;
INSERT INTO d_skip VALUES (40, 1, 'sp') ON CONFLICT (id, part) DO UPDATE SET n = 1;
ROLLBACK TO SAVEPOINT a;
INSERT INTO d_plain VALUES (41, 2, 'sp') ON CONFLICT (id, part) DO UPDATE SET n = 2;
INSERT INTO d_raise VALUES (41, 2, 'sp') ON CONFLICT (id, part) DO UPDATE SET n = 2;
INSERT INTO d_skip VALUES (41, 2, 'sp') ON CONFLICT (id, part) DO UPDATE SET n = 2;
RELEASE SAVEPOINT a;
COMMIT;
COPY d_plain (id, part, email) FROM stdin;
50	1	copy1
51	2	copy2
\.
COPY d_raise (id, part, email) FROM stdin;
50	1	copy1
51	2	copy2
\.
COPY d_skip (id, part, email) FROM stdin;
50	1	copy1
51	2	copy2
\.
SELECT ud_same_rows('d_plain', 'd_raise') AS raise_same, ud_same_rows('d_plain', 'd_skip') AS skip_same;
SELECT count(*) AS rows FROM d_plain;

-- UPDATEs that change no indexed column skip the guard's index work (a
-- binary comparison of the old and new row).  A key changed through an
-- expression index, a partial index's predicate or another BEFORE trigger
-- is still guarded: the same statements on an unguarded twin and guarded
-- ones.  No generated column here, so that the shortcut is the one taken.
CREATE FUNCTION uk_rename() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.n = 100 THEN NEW.email := 'a'; END IF;
    RETURN NEW;
END $$;
CREATE FUNCTION uk_make_twin(name text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, email text, tag text, active boolean, n int)', name);
    EXECUTE format('CREATE UNIQUE INDEX ON %I (lower(email))', name);
    EXECUTE format('CREATE UNIQUE INDEX ON %I (tag) WHERE active', name);
    -- sorts before the guard's trigger, so the guard sees what it wrote
    EXECUTE format('CREATE TRIGGER aa_rename BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION uk_rename()', name);
    EXECUTE format($$INSERT INTO %I VALUES (1, 'a', 't1', true, 0), (2, 'B', 't1', false, 0),
                                           (3, 'x', 't3', false, 0)$$, name);
END $f$;
SELECT uk_make_twin('uk_plain'), uk_make_twin('uk_raise'), uk_make_twin('uk_skip');
SELECT integrity_guard.guard_duplicates('uk_raise');
SELECT integrity_guard.guard_duplicates('uk_skip', 'skip');
CREATE TABLE uk_steps (step int PRIMARY KEY, sql text NOT NULL);
INSERT INTO uk_steps VALUES
 (1, $$UPDATE %I SET n = n + 1$$),
 (2, $$UPDATE %I SET email = 'A' WHERE id = 2$$),
 (3, $$UPDATE %I SET active = true WHERE id = 2$$),
 (4, $$UPDATE %I SET n = 100 WHERE id = 3$$),
 (5, $$UPDATE %I SET email = 'b', n = n + 1 WHERE id = 2$$),
 (6, $$UPDATE %I SET n = n + 1, active = true WHERE id = 3$$);
CREATE TABLE uk_outcomes (step int, twin text, ok boolean, rows text);
DO $$
DECLARE s record; t text; ok boolean; r text;
BEGIN
    FOR s IN SELECT * FROM uk_steps ORDER BY step LOOP
        FOREACH t IN ARRAY ARRAY['uk_plain', 'uk_raise', 'uk_skip'] LOOP
            BEGIN
                EXECUTE format(s.sql, t);
                ok := true;
            EXCEPTION WHEN unique_violation THEN
                ok := false;
            END;
            EXECUTE format('SELECT string_agg(row(id, email, tag, active, n)::text, %L ORDER BY id) FROM %I', ' ', t)
              INTO STRICT r;
            INSERT INTO uk_outcomes VALUES (s.step, t, ok, r);
        END LOOP;
    END LOOP;
END $$;
-- the server refuses steps 2 to 4; raise does the same, skip leaves the
-- duplicate out and keeps the rows the server kept
SELECT p.step, p.ok AS server_ok, r.ok = p.ok AND r.rows = p.rows AS raise_same,
       s.ok AS skip_ok, s.rows = p.rows AS skip_rows_same
  FROM uk_outcomes p JOIN uk_outcomes r USING (step) JOIN uk_outcomes s USING (step)
 WHERE p.twin = 'uk_plain' AND r.twin = 'uk_raise' AND s.twin = 'uk_skip'
 ORDER BY step;
