-- The assignment rewrite: guarded columns saturate inside the expression.
-- It needs the library before parsing: session_preload_libraries here.
SELECT current_database() AS db \gset
ALTER DATABASE :"db" SET session_preload_libraries = 'pg_integrity_guard';
\c
\set SHOW_CONTEXT never
SELECT integrity_guard.purge('0') >= 0 AS emptied;
SELECT value FROM integrity_guard.status() WHERE name = 'rewrite';

-- Sentry's Group: times_seen is a 32-bit integer with CHECK (>= 0)
CREATE TABLE sentry_group (id int PRIMARY KEY, times_seen int NOT NULL DEFAULT 0
                           CHECK (times_seen >= 0), score int);
INSERT INTO sentry_group VALUES (1, 2147483600, 0), (2, 5, 0), (3, 0, 2147483647);
-- before: the production error
SELECT sqlstate_of($$UPDATE sentry_group SET times_seen = times_seen + 100$$);
SELECT integrity_guard.guard_counter('sentry_group', ARRAY['times_seen']);
-- an integer column held to its own range: the trigger could never act, so
-- it is a marker for the rewrite that never fires (AFTER INSERT FOR EACH
-- STATEMENT WHEN (false)) and costs UPDATEs nothing
SELECT pg_get_triggerdef(oid) ~ 'WHEN \(false\)' AS inert FROM pg_trigger
 WHERE tgrelid = 'sentry_group'::regclass;
-- after: F("times_seen") + N saturates, other rows add normally
UPDATE sentry_group SET times_seen = times_seen + 100;
SELECT id, times_seen FROM sentry_group ORDER BY id;
-- exact result clamped, whenever intermediate values fit in 64 bits
UPDATE sentry_group SET times_seen = (times_seen * 3) - 1 WHERE id = 1;
UPDATE sentry_group SET times_seen = -times_seen + 2147483647 * 2 WHERE id = 2;
UPDATE sentry_group SET times_seen = (times_seen::bigint * 1000000)::int WHERE id = 3;
UPDATE sentry_group SET times_seen = 0 WHERE id = 3;
UPDATE sentry_group SET times_seen = (times_seen::numeric + 1e30)::int WHERE id = 3;
SELECT id, times_seen FROM sentry_group ORDER BY id;
-- the CHECK constraint keeps its meaning: below the guard's minimum it fails
SELECT sqlstate_of($$UPDATE sentry_group SET times_seen = times_seen - 2147483647 * 2 WHERE id = 2$$);

-- arithmetic anywhere else is untouched
SELECT sqlstate_of($$UPDATE sentry_group SET score = score + 1 WHERE id = 3$$);
SELECT sqlstate_of($$UPDATE sentry_group SET times_seen = 1 WHERE times_seen + 1 > 0$$);
SELECT sqlstate_of($$UPDATE sentry_group SET times_seen = 1 WHERE id = 1 RETURNING times_seen + 2147483647$$);
SELECT sqlstate_of($$SELECT times_seen + 1 FROM sentry_group WHERE id = 2$$);
SELECT id, times_seen FROM sentry_group ORDER BY id;

-- every statement shape
CREATE TABLE rcounters (id int PRIMARY KEY, i int, s smallint, b bigint);
SELECT integrity_guard.guard_counter('rcounters', ARRAY['i', 'b']);
SELECT integrity_guard.guard_counter('rcounters', ARRAY['s'], max_value => 1000, min_value => -1000);
-- a bigint column or explicit bounds need the trigger too
SELECT pg_get_triggerdef(oid) ~ 'WHEN \(false\)' AS inert FROM pg_trigger
 WHERE tgrelid = 'rcounters'::regclass;
-- INSERT VALUES, single and multi-row, with constants that overflow
INSERT INTO rcounters VALUES (1, 2147483647 + 1, 999 + 2, 1);
INSERT INTO rcounters VALUES (2, -2147483647 - 5, -32768 + 1, 2), (3, 10 * 10, 3 * 3, 3);
-- INSERT ... SELECT
INSERT INTO rcounters SELECT 4, x * 2, x::smallint - 1, 4 FROM (VALUES (2000000000)) v(x)
  WHERE false OR true;
SELECT sqlstate_of($$INSERT INTO rcounters SELECT 5, x * 2, (x * 2)::smallint, 5 FROM (VALUES (2000000000)) v(x)$$);
-- ON CONFLICT DO UPDATE with EXCLUDED
INSERT INTO rcounters VALUES (1, 2147483647, 1000, 1)
  ON CONFLICT (id) DO UPDATE SET i = rcounters.i + EXCLUDED.i, s = rcounters.s * EXCLUDED.s;
-- MERGE
MERGE INTO rcounters c USING (VALUES (3, 2147483647), (6, 7)) v(id, n) ON c.id = v.id
  WHEN MATCHED THEN UPDATE SET i = c.i + v.n
  WHEN NOT MATCHED THEN INSERT VALUES (v.id, v.n * 1000000000, 0, 0);
-- data-modifying CTE
WITH bumped AS (UPDATE rcounters SET i = i + 2147483647 WHERE id = 3 RETURNING id)
SELECT count(*) FROM bumped;
-- a bigint column past the int64 range still saturates at its bounds
UPDATE rcounters SET b = b * 9223372036854775807 WHERE id = 1;
SELECT * FROM rcounters ORDER BY id;

-- PL/pgSQL and SQL functions
CREATE FUNCTION bump_plpgsql(k int, n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE rcounters SET i = i + n WHERE id = k;
END $$;
CREATE FUNCTION bump_sql(k int, n int) RETURNS void LANGUAGE sql AS $$
    UPDATE rcounters SET i = i + n WHERE id = k;
$$;
SELECT bump_plpgsql(6, 2147483647);
SELECT bump_sql(3, -2147483647), bump_sql(3, -2147483647);
SELECT id, i FROM rcounters WHERE id IN (3, 6) ORDER BY id;

-- partitioned and inheritance parents
CREATE TABLE parted (id int, n int) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
SELECT integrity_guard.guard_counter('parted', ARRAY['n']);
INSERT INTO parted VALUES (1, 2147483647);
UPDATE parted SET n = n + 1;
SELECT * FROM parted;
CREATE TABLE inh_parent (id int, n int);
CREATE TABLE inh_child () INHERITS (inh_parent);
SELECT integrity_guard.guard_counter('inh_parent', ARRAY['n']);
INSERT INTO inh_child VALUES (1, 2147483647);
UPDATE inh_parent SET n = n + 1;
SELECT tableoid::regclass, * FROM inh_parent;

-- range columns: the constructor assigned to a guarded column
CREATE TABLE rperiods (id int, during tstzrange, d daterange, t tsrange);
SELECT integrity_guard.guard_range('rperiods', 'during');
SELECT integrity_guard.guard_range('rperiods', range_column => 'd', on_inverted => 'swap');
SELECT integrity_guard.guard_range('rperiods', range_column => 't', on_inverted => 'error');
INSERT INTO rperiods VALUES (1, tstzrange('2024-01-02 00:00+00', '2024-01-01 00:00+00', '[]'),
                               daterange('2024-01-05', '2024-01-01'), NULL);
UPDATE rperiods SET during = tstzrange(upper(during) + interval '1 day', lower(during));
SELECT id, during, d FROM rperiods;
SELECT sqlstate_of($$UPDATE rperiods SET t = tsrange('2024-01-02', '2024-01-01')$$);
-- a literal inverted range fails while the statement is parsed: no rescue
SELECT sqlstate_of($$UPDATE rperiods SET during = '[2024-01-02,2024-01-01)'::tstzrange$$);
-- unguarded columns and other expressions keep the server's behaviour
SELECT sqlstate_of($$SELECT tstzrange('2024-01-02', '2024-01-01')$$);

SELECT table_name, event_type, target, sum(occurrences)
  FROM integrity_guard.audit_log GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- plan-cache correctness: prepared before the guard, rewritten after it
CREATE TABLE later (id int PRIMARY KEY, n int);
INSERT INTO later VALUES (1, 2147483647);
PREPARE bump_later AS UPDATE later SET n = n + 1 WHERE id = 1;
SELECT sqlstate_of($$EXECUTE bump_later$$);
SELECT integrity_guard.guard_counter('later', ARRAY['n']);
EXECUTE bump_later;
SELECT integrity_guard.unguard('later');
SELECT sqlstate_of($$EXECUTE bump_later$$);
SELECT integrity_guard.guard_counter('later', ARRAY['n']);
EXECUTE bump_later;
-- integrity_guard.rewrite and .enabled turn it off, cached plans included
SET integrity_guard.rewrite = off;
SELECT sqlstate_of($$EXECUTE bump_later$$);
RESET integrity_guard.rewrite;
EXECUTE bump_later;
SET integrity_guard.enabled = off;
SELECT sqlstate_of($$EXECUTE bump_later$$);
RESET integrity_guard.enabled;
EXECUTE bump_later;
SELECT n FROM later;

-- the rewrite's internal functions are callable, but record nothing for a
-- role that cannot write the table: no forged incidents
CREATE ROLE regress_ig_forger;
SELECT count(*) AS before FROM integrity_guard.audit_log \gset
SET ROLE regress_ig_forger;
SELECT integrity_guard._saturate(3000000000, -2147483648, 2147483647, 'later'::regclass, 2::smallint) AS clamped_anyway;
SELECT integrity_guard._daterange_guarded('2024-01-02', '2024-01-01', '[)', 'swap',
                                          'rperiods'::regclass, 3::smallint) AS repaired_anyway;
RESET ROLE;
SELECT count(*) - :before AS forged FROM integrity_guard.audit_log;
DROP ROLE regress_ig_forger;

-- the explicit functions
SELECT integrity_guard.saturating_add(2147483647, 1) AS add_int4,
       integrity_guard.saturating_sub((-32768)::smallint, 1::smallint) AS sub_int2,
       integrity_guard.saturating_mul(9223372036854775807, -2) AS mul_int8,
       integrity_guard.saturating_add(5::smallint, 100000) AS wider_operand,
       integrity_guard.saturating_add(90, 20, 0, 100) AS bounded,
       integrity_guard.saturating_sub(5, 10, 0, NULL) AS floor_only;
SELECT sqlstate_of($$SELECT integrity_guard.saturating_add(1, 2, 10, 5)$$);
SELECT sqlstate_of($$SELECT integrity_guard.saturating_add(1::smallint, 2::smallint, 40000, 50000)$$);
-- a bound only partly outside the type is refused too (not clamped to it)
SELECT sqlstate_of($$SELECT integrity_guard.saturating_add(5::smallint, 10::smallint, 0, 100000)$$);
SELECT integrity_guard.saturating_add(5::smallint, 10::smallint, 0, NULL) AS type_bound_by_null;
SELECT integrity_guard.tstzrange_clamped('2024-01-02 00:00+00', '2024-01-01 00:00+00', '[]') AS clamp_upper,
       integrity_guard.tsrange_clamped('2024-01-02', '2024-01-01', '[)', 'clamp_lower') AS clamp_lower,
       integrity_guard.daterange_clamped('2024-01-05', '2024-01-01', '[]', 'swap') AS swapped,
       integrity_guard.daterange_clamped(NULL, '2024-01-01') AS open_lower;
SELECT sqlstate_of($$SELECT integrity_guard.daterange_clamped('2024-01-05', '2024-01-01', '[)', 'error')$$);
SELECT sqlstate_of($$SELECT integrity_guard.daterange_clamped('2024-01-05', '2024-01-01', '[)', 'sideways')$$);
SELECT sqlstate_of($$SELECT integrity_guard.daterange_clamped('2024-01-01', '2024-01-05', '{}')$$);

-- differential: the functions and the rewritten assignments against numeric
-- arithmetic clamped to the bounds, on boundary and random inputs of every
-- integer type and sign combination
CREATE TEMP TABLE vals AS
SELECT v::bigint AS v FROM unnest(ARRAY[0, 1, -1, 2, -2, 127, -128, 32767, -32768, 32766,
     2147483647, -2147483648, 2147483646, 65536, -65536,
     9223372036854775807, -9223372036854775808, 4611686018427387904, 3037000499]) v
UNION ALL SELECT (random() * 4e9 - 2e9)::bigint FROM generate_series(1, 12)
UNION ALL SELECT (random() * 2e4 - 1e4)::bigint FROM generate_series(1, 12);
CREATE TEMP TABLE pairs AS SELECT a.v AS a, b.v AS b FROM vals a, vals b;
CREATE FUNCTION expect(x numeric, lo numeric, hi numeric) RETURNS numeric
  LANGUAGE sql IMMUTABLE AS $$ SELECT least(greatest(x, lo), hi) $$;
SELECT count(*) AS pairs,
  count(*) FILTER (WHERE integrity_guard.saturating_add(a, b) <> expect(a::numeric + b, -9223372036854775808, 9223372036854775807)) AS add8_wrong,
  count(*) FILTER (WHERE integrity_guard.saturating_sub(a, b) <> expect(a::numeric - b, -9223372036854775808, 9223372036854775807)) AS sub8_wrong,
  count(*) FILTER (WHERE integrity_guard.saturating_mul(a, b) <> expect(a::numeric * b, -9223372036854775808, 9223372036854775807)) AS mul8_wrong
FROM pairs;
SELECT count(*) AS pairs,
  count(*) FILTER (WHERE integrity_guard.saturating_add(a::int, b::int) <> expect(a::numeric + b, -2147483648, 2147483647)) AS add4_wrong,
  count(*) FILTER (WHERE integrity_guard.saturating_mul(a::int, b::int) <> expect(a::numeric * b, -2147483648, 2147483647)) AS mul4_wrong,
  count(*) FILTER (WHERE a BETWEEN -32768 AND 32767 AND b BETWEEN -32768 AND 32767 AND
                   integrity_guard.saturating_sub(a::smallint, b::smallint) <> expect(a::numeric - b, -32768, 32767)) AS sub2_wrong,
  count(*) FILTER (WHERE a BETWEEN -32768 AND 32767 AND
                   integrity_guard.saturating_mul(a::smallint, b::int) <> expect(a::numeric * b, -2147483648, 2147483647)) AS mixed_wrong
FROM pairs WHERE a BETWEEN -2147483648 AND 2147483647 AND b BETWEEN -2147483648 AND 2147483647;
-- rewritten assignments: every operator, each integer column type
CREATE TABLE diff (k serial PRIMARY KEY, a bigint, b bigint, i int, s smallint, i_add int, i_sub int,
                   i_mul int, s_add smallint, s_mul smallint, i_neg int);
SELECT integrity_guard.guard_counter('diff', ARRAY['i_add', 'i_sub', 'i_mul', 'i_neg']);
SELECT integrity_guard.guard_counter('diff', ARRAY['s_add', 's_mul'], min_value => -1000, max_value => 1000);
INSERT INTO diff (a, b, i, s)
SELECT a, b, greatest(least(a, 2147483647), -2147483648), greatest(least(b, 32767), -32768) FROM pairs;
UPDATE diff SET i_add = i + s, i_sub = i - s * 2, i_mul = i * s, s_add = s + s, s_mul = s * s * s,
                i_neg = -i;
SELECT count(*) AS rows,
  count(*) FILTER (WHERE i_add <> expect(i::numeric + s, -2147483648, 2147483647)) AS add_wrong,
  count(*) FILTER (WHERE i_sub <> expect(i::numeric - s * 2, -2147483648, 2147483647)) AS sub_wrong,
  count(*) FILTER (WHERE i_mul <> expect(i::numeric * s, -2147483648, 2147483647)) AS mul_wrong,
  count(*) FILTER (WHERE s_add <> expect(s::numeric + s, -1000, 1000)) AS s_add_wrong,
  count(*) FILTER (WHERE s_mul <> expect(s::numeric * s * s, -1000, 1000)) AS s_mul_wrong,
  count(*) FILTER (WHERE i_neg <> expect(-i::numeric, -2147483648, 2147483647)) AS neg_wrong
FROM diff;

-- One rule whatever the statement's shape (issue 25, point 13): the bounds
-- are applied by the guard's row trigger, where it sits among the table's
-- triggers; the rewrite only keeps a value inside the column's type.  A user
-- trigger that sorts before the guard sees the same value for a literal and
-- for arithmetic, and the guard clamps what it hands on.
CREATE TABLE ordered (id int PRIMARY KEY, b bigint, i int);
CREATE FUNCTION add_one() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN NEW.b := NEW.b + 1; NEW.i := NEW.i + 1; RETURN NEW; END$$;
CREATE TRIGGER a_add_one BEFORE INSERT OR UPDATE ON ordered FOR EACH ROW EXECUTE FUNCTION add_one();
SELECT integrity_guard.guard_counter('ordered', ARRAY['b', 'i'], min_value => -100, max_value => 100);
INSERT INTO ordered VALUES (1, -1, -1), (2, -1, -1), (3, 0, 0), (4, 0, 0);
UPDATE ordered SET b = -1100, i = -1100 WHERE id = 1;
UPDATE ordered SET b = b - 1000, i = i - 1000 WHERE id = 2;
UPDATE ordered SET b = 99, i = 99 WHERE id = 3;
UPDATE ordered SET b = b + 99, i = i + 99 WHERE id = 4;
SELECT id, b, i FROM ordered ORDER BY id;
-- a value the column's type cannot hold is clamped by the rewrite (no
-- literal could carry it); the user's trigger and the guard then run as usual
UPDATE ordered SET i = i + 2147483647 WHERE id = 4;
INSERT INTO ordered VALUES (5, 0, 2147483647::bigint * 2);
SELECT id, i FROM ordered WHERE id IN (4, 5) ORDER BY id;

ALTER DATABASE :"db" RESET session_preload_libraries;
