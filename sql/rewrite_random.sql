-- One expression, one value (issue 12, point 12): random operands through
-- every write path, each compared with the exact result (numeric
-- arithmetic) clamped to the guard's bounds.  Deterministic seed.
SELECT current_database() AS db \gset
ALTER DATABASE :"db" SET session_preload_libraries = 'pg_integrity_guard';
\c
\set SHOW_CONTEXT never
SELECT setseed(0.1212);

-- operands: boundary values and random ones of each width
CREATE TABLE r12_pool (v bigint);
INSERT INTO r12_pool
SELECT unnest(ARRAY[0, 1, -1, 2, -2, 7, 127, -128, 1000, -1000, 32767, -32768, 32766, -32767,
                    65535, 46341, -46341, 2147483647, -2147483648, 2147483646, -2147483647,
                    1073741824, -1073741824]);
CREATE TABLE r12_src (k int PRIMARY KEY, a int, b int, s smallint, c smallint);
INSERT INTO r12_src
SELECT k,
       CASE WHEN random() < 0.5 THEN (SELECT v FROM r12_pool ORDER BY random() + k * 0 LIMIT 1)
            ELSE (random() * 4294967295 - 2147483648)::bigint END,
       CASE WHEN random() < 0.5 THEN (SELECT v FROM r12_pool ORDER BY random() + k * 0 LIMIT 1)
            ELSE (random() * 200000 - 100000)::bigint END,
       CASE WHEN random() < 0.5 THEN (SELECT v FROM r12_pool WHERE v BETWEEN -32768 AND 32767
                                      ORDER BY random() + k * 0 LIMIT 1)
            ELSE (random() * 65535 - 32768)::bigint END,
       CASE WHEN random() < 0.5 THEN (SELECT v FROM r12_pool WHERE v BETWEEN -32768 AND 32767
                                      ORDER BY random() + k * 0 LIMIT 1)
            ELSE (random() * 600 - 300)::bigint END
FROM generate_series(1, 250) k;
UPDATE r12_src SET b = 3 WHERE b = 0;

-- expression templates: %1$s = a, %2$s = b, %3$s = s, %4$s = c (smallint);
-- the server's form and the exact form over numeric
CREATE TABLE r12_expr (id int PRIMARY KEY, server text, exact text);
INSERT INTO r12_expr VALUES
 (1, '(-32768)::int2 * %4$s', '-32768 * %4$s'),
 (2, '(-32768)::int2 * %1$s', '-32768 * %1$s'),
 (3, '%1$s + %2$s', '%1$s + %2$s'),
 (4, '%1$s * %2$s - %3$s', '%1$s * %2$s - %3$s'),
 (5, '%3$s * %4$s * %3$s', '%3$s * %4$s * %3$s'),
 (6, 'greatest(%1$s + %2$s, %3$s * %4$s)', 'greatest(%1$s + %2$s, %3$s * %4$s)'),
 (7, 'least(%1$s * 2, %2$s - %1$s)', 'least(%1$s * 2, %2$s - %1$s)'),
 (8, '-%1$s + abs(%2$s)', '-%1$s + abs(%2$s)'),
 (9, '%1$s / -1 - %4$s', 'div(%1$s, -1) - %4$s'),
 (10, '(%1$s + %2$s) / (%4$s %% 7 + 8)', 'div(%1$s + %2$s, mod(%4$s, 7) + 8)'),
 (11, '(%1$s * %2$s) %% 1000 + %1$s', 'mod(%1$s * %2$s, 1000) + %1$s'),
 (12, 'coalesce(NULL, %1$s * 3)', '%1$s * 3'),
 (13, 'CASE WHEN %1$s > 0 THEN %1$s * %2$s ELSE %2$s - %1$s END',
      'CASE WHEN %1$s > 0 THEN %1$s * %2$s ELSE %2$s - %1$s END'),
 (14, '(%1$s::numeric * 2.5)::int', 'round(%1$s * 2.5)'),
 (15, '(SELECT %1$s * %3$s)', '%1$s * %3$s'),
 (16, '-(%3$s * %4$s)::int2', '-(%3$s * %4$s)'),
 (17, '%3$s - %4$s * 100', '%3$s - %4$s * 100');

-- guarded targets: integer (its own range), smallint held to [-1000, 1000],
-- bigint held to [-1e12, 1e12] (the last needs the row trigger too)
CREATE TABLE r12 (k int PRIMARY KEY, a int, b int, s smallint, c smallint,
                  i4 int, i2 smallint, i8 bigint);
SELECT integrity_guard.guard_counter('r12', ARRAY['i4']);
SELECT integrity_guard.guard_counter('r12', ARRAY['i2'], min_value => -1000, max_value => 1000);
SELECT integrity_guard.guard_counter('r12', ARRAY['i8'], min_value => -1000000000000,
                                     max_value => 1000000000000);

CREATE TABLE r12_result (path text, expr int, checked int, wrong int, error text);

CREATE FUNCTION r12_check(path text, e r12_expr) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ex text := format(e.exact, 'x.a::numeric', 'x.b::numeric', 'x.s::numeric', 'x.c::numeric');
    n int;
    bad int;
BEGIN
    EXECUTE format($q$
        SELECT count(*), count(*) FILTER (
                 WHERE r.i4 IS DISTINCT FROM least(greatest(%1$s, -2147483648), 2147483647)
                    OR r.i2 IS DISTINCT FROM least(greatest(%1$s, -1000), 1000)
                    OR r.i8 IS DISTINCT FROM least(greatest(%1$s, -1000000000000), 1000000000000))
        FROM r12 r JOIN r12_src x USING (k)$q$, ex) INTO n, bad;
    INSERT INTO r12_result VALUES (path, e.id, n * 3, bad, NULL);
END $$;

CREATE FUNCTION r12_run(path text, e r12_expr) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    col text := format(e.server, 'x.a', 'x.b', 'x.s', 'x.c');
    exc text := format(e.server, 'excluded.a', 'excluded.b', 'excluded.s', 'excluded.c');
    vals text;
BEGIN
    TRUNCATE r12;
    BEGIN
        IF path = 'update' THEN
            INSERT INTO r12 (k, a, b, s, c) SELECT k, a, b, s, c FROM r12_src;
            EXECUTE format('UPDATE r12 SET i4 = %1$s, i2 = %1$s, i8 = %1$s FROM r12_src x WHERE x.k = r12.k', col);
        ELSIF path = 'insert select' THEN
            EXECUTE format('INSERT INTO r12 (k, i4, i2, i8) SELECT x.k, %1$s, %1$s, %1$s FROM r12_src x', col);
        ELSIF path = 'insert values' THEN
            SELECT string_agg(format('(%s, %s, %s, %s)', x.k, v, v, v), ', ')
              INTO vals
              FROM r12_src x,
                   LATERAL (SELECT format(e.server, format('(%s)::int', x.a), format('(%s)::int', x.b),
                                          format('(%s)::int2', x.s), format('(%s)::int2', x.c))) l(v);
            EXECUTE 'INSERT INTO r12 (k, i4, i2, i8) VALUES ' || vals;
        ELSIF path = 'insert one row' THEN
            FOR vals IN
                SELECT format('INSERT INTO r12 (k, i4, i2, i8) VALUES (%s, %s, %s, %s)', x.k, v, v, v)
                  FROM r12_src x,
                       LATERAL (SELECT format(e.server, format('(%s)::int', x.a), format('(%s)::int', x.b),
                                              format('(%s)::int2', x.s), format('(%s)::int2', x.c))) l(v)
                 WHERE x.k <= 40
            LOOP
                EXECUTE vals;
            END LOOP;
            INSERT INTO r12 (k) SELECT k FROM r12_src WHERE k > 40;
            UPDATE r12 SET i4 = NULL, i2 = NULL, i8 = NULL WHERE k > 40;
        ELSIF path = 'on conflict' THEN
            INSERT INTO r12 (k) SELECT k FROM r12_src;
            EXECUTE format('INSERT INTO r12 (k, a, b, s, c) SELECT k, a, b, s, c FROM r12_src
                            ON CONFLICT (k) DO UPDATE SET i4 = %1$s, i2 = %1$s, i8 = %1$s', exc);
        ELSIF path = 'merge update' THEN
            INSERT INTO r12 (k) SELECT k FROM r12_src;
            EXECUTE format('MERGE INTO r12 USING r12_src x ON x.k = r12.k
                            WHEN MATCHED THEN UPDATE SET i4 = %1$s, i2 = %1$s, i8 = %1$s', col);
        ELSIF path = 'merge insert' THEN
            EXECUTE format('MERGE INTO r12 USING r12_src x ON x.k = r12.k
                            WHEN NOT MATCHED THEN INSERT (k, i4, i2, i8) VALUES (x.k, %1$s, %1$s, %1$s)', col);
        END IF;
    EXCEPTION WHEN others THEN
        INSERT INTO r12_result VALUES (path, e.id, 0, 0, SQLERRM);
        RETURN;
    END;
    IF path = 'insert one row' THEN
        DELETE FROM r12 WHERE k > 40;
    END IF;
    PERFORM r12_check(path, e);
END $$;

SELECT count(*) FROM (SELECT r12_run(p, e) FROM r12_expr e,
    unnest(ARRAY['update', 'insert select', 'insert values', 'insert one row', 'on conflict',
                 'merge update', 'merge insert']) p) s;
-- thousands of cases per path, none wrong, none raising
SELECT path, sum(checked) >= 1000 AS thousands, sum(wrong) AS wrong, count(error) AS errors
  FROM r12_result GROUP BY path ORDER BY path;
-- on failure: which expressions
SELECT path, expr, wrong, error FROM r12_result WHERE wrong > 0 OR error IS NOT NULL
 ORDER BY path, expr;
-- and it did saturate: many results sit at a bound
SELECT count(*) FILTER (WHERE i2 IN (-1000, 1000)) > 20 AS saturated FROM r12;

ALTER DATABASE :"db" RESET session_preload_libraries;
