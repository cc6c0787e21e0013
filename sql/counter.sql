-- saturate_counter(): bounds, types, argument forms, bad input
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_integrity_guard;
CREATE EXTENSION IF NOT EXISTS btree_gist;
RESET client_min_messages;
\set SHOW_CONTEXT never

-- Runs a statement and shows the SQLSTATE and message it fails with.
CREATE FUNCTION sqlstate_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN others THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- Sentry's Group with a bigint counter held to 32 bits
CREATE TABLE grp (id int PRIMARY KEY, times_seen bigint NOT NULL DEFAULT 0
                  CHECK (times_seen >= 0));
SELECT integrity_guard.guard_counter('grp', ARRAY['times_seen'], max_value => 2147483647, min_value => -2147483648);
INSERT INTO grp VALUES (1, 2147483646), (2, 2147483647), (3, 2147483648),
                       (4, 9000000000000000000), (5, 0);
SELECT * FROM grp ORDER BY id;
-- the production statement: increment past 2^31-1
UPDATE grp SET times_seen = times_seen + 100 WHERE id IN (1, 5);
UPDATE grp SET times_seen = times_seen + 1 WHERE id = 1;
SELECT * FROM grp ORDER BY id;
-- at and past the lower bound (CHECK would reject negatives; use another table)
CREATE TABLE signed (id int, v bigint);
SELECT integrity_guard.guard_counter('signed', ARRAY['v'], max_value => 2147483647, min_value => -2147483648);
INSERT INTO signed VALUES (1, -2147483648), (2, -2147483649),
                          (3, -9223372036854775808), (4, NULL), (5, 42);
SELECT * FROM signed ORDER BY id;
-- UPDATE to NULL stays NULL
UPDATE signed SET v = NULL WHERE id = 5;
SELECT v IS NULL AS still_null FROM signed WHERE id = 5;

-- explicit bounds on every type; defaults narrowed to smallint
CREATE TABLE kinds (id int, s smallint, i int, b bigint, n numeric, d smallint);
SELECT integrity_guard._check_args('saturate_counter', 'kinds', ARRAY['d']);
CREATE TRIGGER kinds_guard BEFORE INSERT OR UPDATE ON kinds FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.saturate_counter('s:0:100', 'i::1000', 'b:-5:', 'n:-2147483648:2147483647', 'd');
INSERT INTO kinds VALUES
  (1, 100, 1000, -5, 2147483647, 32767),
  (2, 101, 1001, -6, 2147483648, -32768),
  (3, -1, -2147483648, 9223372036854775807, -1e30, 0),
  (4, 32767, 2147483647, -9223372036854775808, 'Infinity', 1),
  (5, NULL, NULL, NULL, 'NaN', NULL),
  (6, 50, 500, 5, 1e30, 2),
  (7, 0, 0, 0, '-Infinity', 3);
SELECT * FROM kinds ORDER BY id;
-- COPY goes through the guard too
COPY kinds FROM stdin;
8	500	5000	-50	99999999999	7
\.
SELECT * FROM kinds WHERE id = 8;
-- with the guard off, rows pass unchanged
SET integrity_guard.enabled = off;
INSERT INTO kinds VALUES (9, 101, 1001, -6, 2147483648, 9);
RESET integrity_guard.enabled;
SELECT * FROM kinds WHERE id = 9;

-- the plain integer column: overflow inside int4pl happens before any
-- trigger (DESIGN fact 1); custom bounds still apply to what reaches it
CREATE TABLE plain (id int, n int);
SELECT integrity_guard.guard_counter('plain', ARRAY['n'], max_value => 1000, min_value => 0);
INSERT INTO plain VALUES (1, 999);
UPDATE plain SET n = n + 5;
SELECT * FROM plain;

-- attach-time validation through guard_counter()
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('no_such_table', ARRAY['x'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('plain', ARRAY['nope'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('plain', ARRAY['N'])$$);
CREATE TABLE wrong (id int, label text, cnt int, cnt2 int, g int GENERATED ALWAYS AS (cnt * 2) STORED);
CREATE DOMAIN posint AS int CHECK (VALUE >= 0);
ALTER TABLE wrong ADD COLUMN dom posint;
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('wrong', ARRAY['label'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('wrong', ARRAY['dom'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('wrong', ARRAY['g'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('wrong', ARRAY['ctid'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('wrong', ARRAY['cnt'], max_value => 10, min_value => 20)$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('wrong', ARRAY['cnt'], max_value => 3000000000)$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('kinds', ARRAY['s'], max_value => 40000)$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('wrong', ARRAY['cnt', 'cnt'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('wrong', ARRAY[]::text[])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('wrong', NULL)$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter(NULL, ARRAY['cnt'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('wrong', ARRAY['cnt', NULL])$$);
CREATE VIEW wrong_view AS SELECT * FROM wrong;
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('wrong_view', ARRAY['cnt'])$$);
-- a column is guarded once; another column joins the table's counter
-- trigger with its own bounds
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('grp', ARRAY['times_seen'])$$);
ALTER TABLE grp ADD COLUMN num_comments int NOT NULL DEFAULT 0 CHECK (num_comments >= 0);
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('grp', ARRAY['num_comments', 'nope'], min_value => 0)$$);
-- a typo at attach gets the closest column as its hint (a rename hint
-- only once a guard fires on a column that is gone)
SELECT integrity_guard.guard_counter('grp', ARRAY['time_seen']);
SELECT integrity_guard.guard_counter('grp', ARRAY['zzzzzz']);
SELECT integrity_guard.guard_counter('grp', ARRAY['num_comments'], min_value => 0);
SELECT columns FROM integrity_guard.guards WHERE table_name = 'grp'::regclass;
UPDATE grp SET num_comments = num_comments - 1, times_seen = times_seen + 1 WHERE id = 5;
SELECT * FROM grp WHERE id = 5;
ALTER TABLE grp DROP COLUMN num_comments;
SELECT integrity_guard.unguard('grp', 'counter');
SELECT integrity_guard.guard_counter('grp', ARRAY['times_seen'], max_value => 2147483647, min_value => -2147483648);
-- nothing was attached by the failures above
SELECT count(*) FROM integrity_guard.guards WHERE table_name = 'wrong'::regclass;

-- hand-written triggers: fire-time checks
CREATE TABLE raw (id int, n bigint);
INSERT INTO raw VALUES (1, 1);
CREATE TRIGGER t_after AFTER INSERT ON raw FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.saturate_counter('n');
SELECT sqlstate_of($$INSERT INTO raw VALUES (2, 2)$$);
DROP TRIGGER t_after ON raw;
CREATE TRIGGER t_stmt BEFORE INSERT ON raw FOR EACH STATEMENT
  EXECUTE FUNCTION integrity_guard.saturate_counter('n');
SELECT sqlstate_of($$INSERT INTO raw VALUES (2, 2)$$);
DROP TRIGGER t_stmt ON raw;
CREATE TRIGGER t_del BEFORE DELETE ON raw FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.saturate_counter('n');
SELECT sqlstate_of($$DELETE FROM raw$$);
DROP TRIGGER t_del ON raw;
CREATE TRIGGER t_bad BEFORE INSERT ON raw FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.saturate_counter('n:5');
SELECT sqlstate_of($$INSERT INTO raw VALUES (2, 2)$$);
DROP TRIGGER t_bad ON raw;
CREATE TRIGGER t_bad BEFORE INSERT ON raw FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.saturate_counter('n:x:');
SELECT sqlstate_of($$INSERT INTO raw VALUES (2, 2)$$);
DROP TRIGGER t_bad ON raw;
CREATE TRIGGER t_bad BEFORE INSERT ON raw FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.saturate_counter('n', 'mode=skip');
SELECT sqlstate_of($$INSERT INTO raw VALUES (2, 2)$$);
DROP TRIGGER t_bad ON raw;
CREATE TRIGGER t_bad BEFORE INSERT ON raw FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.saturate_counter();
SELECT sqlstate_of($$INSERT INTO raw VALUES (2, 2)$$);
DROP TRIGGER t_bad ON raw;
-- the failed inserts lost nothing and wrote nothing
SELECT * FROM raw;

-- a column whose name holds colons is written 'name::' (empty bounds)
CREATE TABLE colons ("a:b" bigint);
SELECT integrity_guard.guard_counter('colons', ARRAY['a:b'], max_value => 10);
SELECT columns FROM integrity_guard.guards WHERE table_name = 'colons'::regclass;
INSERT INTO colons VALUES (11);
SELECT * FROM colons;

-- partitioned table guarded on its parent; one partition has another
-- column order, so attribute numbers differ from the parent's
CREATE TABLE hits (bucket int, cnt bigint) PARTITION BY LIST (bucket);
CREATE TABLE hits_1 PARTITION OF hits FOR VALUES IN (1);
CREATE TABLE hits_2 (junk int, cnt bigint, bucket int);
ALTER TABLE hits_2 DROP COLUMN junk;
ALTER TABLE hits ATTACH PARTITION hits_2 FOR VALUES IN (2);
SELECT integrity_guard.guard_counter('hits', ARRAY['cnt'], max_value => 2147483647, min_value => -2147483648);
INSERT INTO hits VALUES (1, 5000000000), (2, 5000000000), (2, 7);
UPDATE hits SET cnt = cnt + 3000000000 WHERE cnt = 7;
SELECT tableoid::regclass, * FROM hits ORDER BY 1, 3;
-- a partition created after the guard inherits it
CREATE TABLE hits_3 PARTITION OF hits FOR VALUES IN (3);
INSERT INTO hits VALUES (3, -5000000000);
SELECT * FROM hits_3;
SELECT table_name, kind, columns FROM integrity_guard.guards
 WHERE table_name::text LIKE 'hits%' ORDER BY 1;

-- inheritance: the parent's guard does not reach children (a NOTICE says so)
CREATE TABLE base (n bigint);
CREATE TABLE derived () INHERITS (base);
SELECT integrity_guard.guard_counter('base', ARRAY['n'], max_value => 2147483647, min_value => -2147483648);
INSERT INTO base VALUES (3000000000);
INSERT INTO derived VALUES (3000000000);
SELECT integrity_guard.guard_counter('derived', ARRAY['n'], max_value => 2147483647, min_value => -2147483648);
INSERT INTO derived VALUES (3000000000);
SELECT tableoid::regclass, n FROM base ORDER BY 1, 2;
-- an update through the parent reaches the child row through its own guard
UPDATE base SET n = n + 4000000000 WHERE n < 3000000000;
SELECT tableoid::regclass, n FROM base ORDER BY 1, 2;

-- the saturations above were audited, one incident per statement and bound
SELECT table_name, target, detail->>'bound' AS bound, sum(occurrences)
  FROM integrity_guard.audit_log
 WHERE event_type = 'counter_saturated'
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- One parser of column specs (issue 17): integrity_guard._counter_spec()
-- splits as the trigger does, at the last two colons; NULL bound: default;
-- NULLs for what the trigger refuses.
SELECT s AS spec, c.*
FROM unnest(ARRAY['times_seen', 'a:1:5', 'a::5', 'a:1:', 'a::', 'a:b::', 'a:b:-3:7',
                  'a:b', 'a:x:5', 'a:1:9223372036854775808']) WITH ORDINALITY AS u(s, o),
     integrity_guard._counter_spec(s) c
ORDER BY o;
