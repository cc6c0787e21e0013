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
