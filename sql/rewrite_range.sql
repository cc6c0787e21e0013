-- clamp_range on range columns (issue 12, points 15 and 16): no repaired
-- range is empty or loses its start, every range type is handled through
-- the type cache, and trigger names of multibyte columns keep their suffix.
SELECT current_database() AS db \gset
ALTER DATABASE :"db" SET session_preload_libraries = 'pg_integrity_guard';
\c
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO';

-- point 15: every bounds flag and policy, on an inverted pair
CREATE TABLE spans15 (policy text, flags text, during tstzrange, d daterange);
CREATE TABLE spans15_lower (LIKE spans15);
CREATE TABLE spans15_swap (LIKE spans15);
SELECT integrity_guard.guard_range('spans15', 'during'),
       integrity_guard.guard_range('spans15', 'd'),
       integrity_guard.guard_range('spans15_lower', 'during', 'clamp_lower'),
       integrity_guard.guard_range('spans15_lower', 'd', 'clamp_lower'),
       integrity_guard.guard_range('spans15_swap', 'during', 'swap'),
       integrity_guard.guard_range('spans15_swap', 'd', 'swap');
INSERT INTO spans15 SELECT 'clamp_upper', f, tstzrange('2026-01-02', '2026-01-01', f),
                           daterange('2026-01-02', '2026-01-01', f)
  FROM unnest(ARRAY['[)', '(]', '()', '[]']) f;
INSERT INTO spans15_lower SELECT 'clamp_lower', f, tstzrange('2026-01-02', '2026-01-01', f),
                                 daterange('2026-01-02', '2026-01-01', f)
  FROM unnest(ARRAY['[)', '(]', '()', '[]']) f;
INSERT INTO spans15_swap SELECT 'swap', f, tstzrange('2026-01-02', '2026-01-01', f),
                                daterange('2026-01-02', '2026-01-01', f)
  FROM unnest(ARRAY['[)', '(]', '()', '[]']) f;
-- the default constructor is '[)'
INSERT INTO spans15 VALUES ('clamp_upper', 'default', tstzrange('2026-01-02', '2026-01-01'),
                            daterange('2026-01-02', '2026-01-01'));
SELECT policy, flags, during, d, isempty(during) OR isempty(d) AS lost
  FROM (TABLE spans15 UNION ALL TABLE spans15_lower UNION ALL TABLE spans15_swap) s
 ORDER BY 1, 2;
-- valid input keeps the server's result, empty included
INSERT INTO spans15 VALUES ('valid', '[)', tstzrange('2026-01-01', '2026-01-01'),
                            daterange('2026-01-01', '2026-01-01', '()'));
SELECT during, d FROM spans15 WHERE policy = 'valid';
-- the explicit functions follow the same rule
SELECT integrity_guard.tstzrange_clamped('2026-01-02', '2026-01-01') AS clamp_upper,
       integrity_guard.daterange_clamped('2026-01-02', '2026-01-01', '()', 'clamp_lower') AS clamp_lower,
       integrity_guard.daterange_clamped('2026-01-02', '2026-01-01', '()', 'swap') AS swap_adjacent;

-- user-defined range types: handled through the type cache
CREATE TYPE ts_span AS RANGE (subtype = timestamptz);
CREATE TYPE day_span AS RANGE (subtype = date);
CREATE TABLE custom15 (id int, s ts_span, d day_span);
SELECT integrity_guard.guard_range('custom15', 's'),
       integrity_guard.guard_range('custom15', 'd', 'swap');
INSERT INTO custom15 VALUES (1, ts_span('2026-01-02', '2026-01-01'), day_span('2026-01-05', '2026-01-01', '[]'));
UPDATE custom15 SET s = coalesce(ts_span(upper(s), lower(s) - interval '1 day', '()'), s);
SELECT id, s, d FROM custom15;
SELECT target, detail FROM integrity_guard.audit_log
 WHERE table_name = 'custom15' ORDER BY target, detail;
-- a range type over another subtype is refused at attach
CREATE TYPE num_span AS RANGE (subtype = numeric);
CREATE TABLE custom15b (r num_span);
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('custom15b', 'r')$$);

-- point 16: long multibyte column names keep the hash suffix
CREATE TABLE mb16 ("période_éééééééééééééééééééé_première" tstzrange,
                   "période_éééééééééééééééééééé_deuxième" tstzrange);
SELECT integrity_guard.guard_range('mb16', 'période_éééééééééééééééééééé_première') AS first,
       integrity_guard.guard_range('mb16', 'période_éééééééééééééééééééé_deuxième') AS second;
SELECT octet_length(trigger_name) <= 63 AS fits, columns FROM integrity_guard.guards
 WHERE table_name = 'mb16'::regclass ORDER BY 2;
SELECT integrity_guard._trigger_name('integrity_guard_range', ARRAY[repeat('日', 30)]) AS cjk,
       integrity_guard._trigger_name('integrity_guard_range', ARRAY[repeat('x', 60)]) AS ascii;

-- on_inverted=error through the rewrite: the guard's own message, naming the
-- table, the column and (for a role that may read them) the values (issue 25
-- point 14); with the guards off, the server's own error
CREATE TABLE err14 (id int, during tstzrange);
SELECT integrity_guard.guard_range('err14', 'during', 'error');
\set VERBOSITY default
INSERT INTO err14 VALUES (1, tstzrange('2026-01-02', '2026-01-01'));
UPDATE err14 SET during = tstzrange('2026-01-02', '2026-01-01');
SET integrity_guard.enabled = off;
INSERT INTO err14 VALUES (1, tstzrange('2026-01-02', '2026-01-01'));
RESET integrity_guard.enabled;
\set VERBOSITY terse

ALTER DATABASE :"db" RESET session_preload_libraries;
