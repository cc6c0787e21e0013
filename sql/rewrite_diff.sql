-- Differential test of the counter and range guards (issue 12): the same
-- statements on a guarded table and on its unguarded twin, plain and
-- partitioned, give the same outcome and the same rows wherever the server
-- accepts every statement: upserts, MERGE, COPY, savepoints.
SELECT current_database() AS db \gset
ALTER DATABASE :"db" SET session_preload_libraries = 'pg_integrity_guard';
\c
\set SHOW_CONTEXT never
SELECT setseed(0.4242);

CREATE TABLE rwd_plain (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, s smallint,
                      b bigint, p tstzrange, lo timestamptz, hi timestamptz,
                      CHECK (n >= -1000000));
CREATE TABLE rwd_parted (LIKE rwd_plain INCLUDING ALL) PARTITION BY RANGE (id);
CREATE TABLE rwd_parted_1 PARTITION OF rwd_parted FOR VALUES FROM (MINVALUE) TO (50);
CREATE TABLE rwd_parted_2 PARTITION OF rwd_parted FOR VALUES FROM (50) TO (MAXVALUE);
CREATE TABLE rwg_plain (LIKE rwd_plain INCLUDING ALL);
CREATE TABLE rwg_parted (LIKE rwd_plain INCLUDING ALL) PARTITION BY RANGE (id);
CREATE TABLE rwg_parted_1 PARTITION OF rwg_parted FOR VALUES FROM (MINVALUE) TO (50);
CREATE TABLE rwg_parted_2 PARTITION OF rwg_parted FOR VALUES FROM (50) TO (MAXVALUE);
SELECT integrity_guard.guard_counter(t, ARRAY['n', 's']),
       integrity_guard.guard_counter(t, ARRAY['b'], max_value => 9223372036854775807,
                                     min_value => -9223372036854775808),
       integrity_guard.guard_range(t, 'p'),
       integrity_guard.guard_range(t, 'lo', 'hi', 'swap')
  FROM unnest(ARRAY['rwg_plain', 'rwg_parted']::regclass[]) t;

-- stmt uses %1$I for the table; run on the guarded table and its twin
CREATE TABLE rwd_log (seq serial, stmt text, guarded text, unguarded text);
CREATE FUNCTION rwd_both(stmt text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    outcome text[];
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['rwg_plain', 'rwd_plain', 'rwg_parted', 'rwd_parted'] LOOP
        BEGIN
            EXECUTE format(stmt, t);
            outcome := outcome || 'ok'::text;
        EXCEPTION WHEN others THEN
            outcome := outcome || SQLSTATE::text;
        END;
    END LOOP;
    INSERT INTO rwd_log (stmt, guarded, unguarded) VALUES (stmt, outcome[1], outcome[2]);
    INSERT INTO rwd_log (stmt, guarded, unguarded) VALUES (stmt, outcome[3], outcome[4]);
END $$;

-- random statements of every write path, values the server accepts except
-- where a constraint refuses them (duplicate keys, the CHECK)
CREATE FUNCTION rwd_random_statement() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    k int := (random() * 99)::int;
    v int := (random() * 2000000 - 1000000)::int;
    d int := (random() * 2000 - 1000)::int;
    t0 timestamptz := timestamptz '2026-01-01 00:00+00' + random() * interval '30 days';
    t1 timestamptz := timestamptz '2026-01-01 00:00+00' + random() * interval '30 days';
    lo text := format('%L::timestamptz', least(t0, t1));
    hi text := format('%L::timestamptz', greatest(t0, t1));
BEGIN
    RETURN CASE (random() * 11)::int
        WHEN 0 THEN format('INSERT INTO %%1$I VALUES (%s, %s, %s, %s, tstzrange(%s, %s), %s, %s)',
                           k, v, d, v::bigint * 1000, lo, hi, lo, hi)
        WHEN 1 THEN format('INSERT INTO %%1$I (id, n) VALUES (%s, %s) ON CONFLICT DO NOTHING', k, v)
        WHEN 2 THEN format('INSERT INTO %%1$I AS t (id, n, s) VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE
                            SET n = t.n + excluded.n / 4, s = greatest(t.s, excluded.s) - 1', k, v, d)
        WHEN 3 THEN format('UPDATE %%1$I SET n = n / 2 + %s, s = -s, b = b - %s WHERE id %%%% 7 = %s',
                           d, v, k % 7)
        WHEN 4 THEN format('MERGE INTO %%1$I t USING (VALUES (%s, %s)) v(id, x) ON t.id = v.id
                            WHEN MATCHED AND t.n > 0 THEN UPDATE SET n = t.n - v.x, p = tstzrange(%s, %s, ''[]'')
                            WHEN MATCHED THEN DELETE
                            WHEN NOT MATCHED THEN INSERT (id, n, lo, hi) VALUES (v.id, v.x * 3, %s, %s)',
                           k, d, lo, hi, lo, hi)
        WHEN 5 THEN format('UPDATE %%1$I SET lo = %s, hi = %s, p = coalesce(tstzrange(%s, %s), p)
                            WHERE id BETWEEN %s AND %s', lo, hi, lo, hi, k, k + 10)
        WHEN 6 THEN format('DELETE FROM %%1$I WHERE id = %s', k)
        WHEN 7 THEN format('UPDATE %%1$I SET id = id + 50 WHERE id = %s', k)
        WHEN 8 THEN format('INSERT INTO %%1$I (id, n, s) SELECT id + 1, n - %s, abs(s) FROM %%1$I WHERE id = %s
                            ON CONFLICT (id) DO UPDATE SET n = excluded.n', d, k)
        WHEN 9 THEN format('UPDATE %%1$I SET n = n - 2000000 WHERE id = %s', k)
        ELSE format('WITH m AS (UPDATE %%1$I SET n = CASE WHEN n > 0 THEN n / 2 ELSE n + %s END
                                WHERE id < %s RETURNING id) SELECT count(*) FROM m', d, k)
    END;
END $$;

SELECT count(*) FROM (SELECT rwd_both(rwd_random_statement()) FROM generate_series(1, 300)) s;

-- savepoints and COPY, the same on both
BEGIN;
SAVEPOINT a;
SELECT rwd_both('UPDATE %1$I SET n = n + 1');
ROLLBACK TO SAVEPOINT a;
SELECT rwd_both('UPDATE %1$I SET s = 7 WHERE id < 30');
SAVEPOINT b;
SELECT rwd_both('DELETE FROM %1$I WHERE id > 60');
RELEASE SAVEPOINT b;
COMMIT;
COPY rwg_plain (id, n, s, b, p, lo, hi) FROM stdin;
200	5	6	7	["2026-01-01 00:00:00+00","2026-01-02 00:00:00+00")	2026-01-01 00:00+00	2026-01-03 00:00+00
201	-5	-6	-7	\N	\N	2026-01-03 00:00+00
\.
COPY rwd_plain (id, n, s, b, p, lo, hi) FROM stdin;
200	5	6	7	["2026-01-01 00:00:00+00","2026-01-02 00:00:00+00")	2026-01-01 00:00+00	2026-01-03 00:00+00
201	-5	-6	-7	\N	\N	2026-01-03 00:00+00
\.
COPY rwg_parted (id, n, s, b, p, lo, hi) FROM stdin;
200	5	6	7	["2026-01-01 00:00:00+00","2026-01-02 00:00:00+00")	2026-01-01 00:00+00	2026-01-03 00:00+00
\.
COPY rwd_parted (id, n, s, b, p, lo, hi) FROM stdin;
200	5	6	7	["2026-01-01 00:00:00+00","2026-01-02 00:00:00+00")	2026-01-01 00:00+00	2026-01-03 00:00+00
\.

-- every statement had the same outcome on both; some were refused by a
-- constraint on both, most were accepted
SELECT count(*) AS statements, count(*) FILTER (WHERE guarded IS DISTINCT FROM unguarded) AS different,
       count(*) FILTER (WHERE unguarded = 'ok') > 300 AS mostly_accepted,
       count(*) FILTER (WHERE unguarded <> 'ok') > 0 AS some_refused
  FROM rwd_log;
SELECT stmt, guarded, unguarded FROM rwd_log WHERE guarded IS DISTINCT FROM unguarded LIMIT 5;
-- the same rows
SELECT count(*) AS rows,
       (SELECT count(*) FROM (TABLE rwg_plain EXCEPT ALL TABLE rwd_plain) x) +
       (SELECT count(*) FROM (TABLE rwd_plain EXCEPT ALL TABLE rwg_plain) x) AS plain_different,
       (SELECT count(*) FROM (TABLE rwg_parted EXCEPT ALL TABLE rwd_parted) x) +
       (SELECT count(*) FROM (TABLE rwd_parted EXCEPT ALL TABLE rwg_parted) x) AS parted_different
  FROM rwg_plain;
-- and the guard had nothing to do
SELECT count(*) AS incidents FROM integrity_guard.audit_log
 WHERE table_name IN ('rwg_plain', 'rwg_parted', 'rwg_parted_1', 'rwg_parted_2');

ALTER DATABASE :"db" RESET session_preload_libraries;
