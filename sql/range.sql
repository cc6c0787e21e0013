-- clamp_range(): Sentry's GroupOpenPeriod, policies, types, bad input
\set SHOW_CONTEXT never

-- GroupOpenPeriod: no range column, only an exclusion constraint over
-- tstzrange(date_started, date_ended, '[]'); date_ended is NULL while open
CREATE TABLE group_open_period (
    id serial PRIMARY KEY,
    group_id int NOT NULL,
    date_started timestamptz NOT NULL,
    date_ended timestamptz,
    EXCLUDE USING gist (group_id WITH =,
                        tstzrange(date_started, date_ended, '[]') WITH &&)
);
INSERT INTO group_open_period (group_id, date_started)
VALUES (1, '2024-03-10 12:00+00'), (2, '2024-03-10 12:00+00');
-- without the guard: the production error
SELECT sqlstate_of($$UPDATE group_open_period SET date_ended = '2024-03-10 11:59+00' WHERE group_id = 1$$);
SELECT integrity_guard.guard_range('group_open_period', 'date_started', 'date_ended');
-- with it: the update succeeds and stores the clamped end
UPDATE group_open_period SET date_ended = '2024-03-10 11:59+00' WHERE group_id = 1;
SELECT group_id, date_started, date_ended FROM group_open_period ORDER BY id;
-- the exclusion constraint still does its job on the clamped period
SELECT sqlstate_of($$INSERT INTO group_open_period (group_id, date_started, date_ended) VALUES (1, '2024-03-10 12:00+00', '2024-03-10 08:00+00')$$);
-- a later, valid period of the same group is accepted; an open one too
INSERT INTO group_open_period (group_id, date_started, date_ended)
VALUES (1, '2024-03-11 00:00+00', '2024-03-10 00:00+00');
INSERT INTO group_open_period (group_id, date_started)
VALUES (1, '2024-03-12 00:00+00');
-- equal bounds and open (NULL) bounds are never inverted
UPDATE group_open_period SET date_ended = date_started WHERE group_id = 2;
SELECT group_id, date_started, date_ended FROM group_open_period ORDER BY id;
SELECT target, occurrences, detail FROM integrity_guard.audit_log
 WHERE event_type = 'range_clamped' ORDER BY id;

-- every policy, on timestamp, timestamptz and date pairs
CREATE TABLE spans (id int, policy text, lo timestamp, hi timestamp,
                    d_lo date, d_hi date);
CREATE TABLE spans_lower (LIKE spans);
CREATE TABLE spans_swap (LIKE spans);
CREATE TABLE spans_error (LIKE spans);
SELECT integrity_guard.guard_range('spans', 'lo', 'hi');
SELECT integrity_guard.guard_range('spans', 'd_lo', 'd_hi', 'clamp_upper');
SELECT integrity_guard.guard_range('spans_lower', 'lo', 'hi', 'clamp_lower');
SELECT integrity_guard.guard_range('spans_lower', 'd_lo', 'd_hi', on_inverted => 'clamp_lower');
SELECT integrity_guard.guard_range('spans_swap', 'lo', 'hi', 'swap');
SELECT integrity_guard.guard_range('spans_swap', 'd_lo', 'd_hi', 'swap');
SELECT integrity_guard.guard_range('spans_error', 'lo', 'hi', 'error');
INSERT INTO spans VALUES (1, 'clamp_upper', '2024-01-02', '2024-01-01', '2024-01-02', '2024-01-01');
INSERT INTO spans_lower VALUES (1, 'clamp_lower', '2024-01-02', '2024-01-01', '2024-01-02', '2024-01-01');
INSERT INTO spans_swap VALUES (1, 'swap', '2024-01-02', '2024-01-01', '2024-01-02', '2024-01-01');
-- infinity: lower 'infinity' with a finite upper is inverted
INSERT INTO spans VALUES (2, 'clamp_upper', 'infinity', '2024-01-01', '-infinity', '2024-01-01');
-- one microsecond apart, both ways
INSERT INTO spans VALUES (3, 'clamp_upper', '2024-01-01 00:00:00.000001', '2024-01-01', NULL, '2024-01-01');
INSERT INTO spans VALUES (4, 'clamp_upper', '2024-01-01', '2024-01-01 00:00:00.000001', '2024-01-01', NULL);
SELECT * FROM spans ORDER BY id;
SELECT * FROM spans_lower;
SELECT * FROM spans_swap;
-- policy error: SQLSTATE 22000 with the table, the columns and both values
SELECT sqlstate_of($$INSERT INTO spans_error VALUES (1, 'error', '2024-01-02', '2024-01-01')$$);
\set VERBOSITY default
INSERT INTO spans_error VALUES (1, 'error', '2024-01-02', '2024-01-01');
\set VERBOSITY default
INSERT INTO spans_error VALUES (2, 'error', '2024-01-01', '2024-01-02');
SELECT * FROM spans_error;
-- COPY goes through the guard
COPY spans FROM stdin;
5	copy	2024-05-02	2024-05-01	2024-05-02	2024-05-01
\.
SELECT * FROM spans WHERE id = 5;

-- range-column form: accepted and validated (the rewrite acts on it)
CREATE TABLE periods (id int, during tstzrange, d daterange, r int4range, t text);
SELECT integrity_guard.guard_range('periods', 'during');
SELECT integrity_guard.guard_range('periods', range_column => 'd', on_inverted => 'swap');
-- positional (rel, range_column, policy) reaches the range form as well
CREATE TABLE periods2 (during tsrange);
SELECT integrity_guard.guard_range('periods2', 'during', 'error');
SELECT table_name, kind, columns, options FROM integrity_guard.guards
 WHERE table_name IN ('periods'::regclass, 'periods2'::regclass) ORDER BY 1, 3;
INSERT INTO periods VALUES (1, tstzrange('2024-01-01', '2024-01-02'), '[2024-01-01,2024-01-05)', NULL);
SELECT * FROM periods;

-- attach-time validation
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('periods', 'r')$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('periods', 't')$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('periods', 'during', 'd', 'swap')$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('spans', 'lo', 'd_hi')$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('spans', 'id', 'policy')$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('spans', 'lo', 'lo')$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('spans', 'lo', 'missing')$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('spans_error', 'd_lo', 'd_hi', 'sideways')$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('spans_error', 'd_lo', 'd_hi', NULL)$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('spans', 'lo', 'hi', 'swap')$$);
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('no_such_table', 'lo', 'hi')$$);

-- hand-written triggers: fire-time checks
CREATE TABLE rraw (lo date, hi date);
CREATE TRIGGER t BEFORE INSERT ON rraw FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.clamp_range('lo', 'hi', 'on_inverted=swap', 'on_inverted=error');
SELECT sqlstate_of($$INSERT INTO rraw VALUES ('2024-01-02', '2024-01-01')$$);
DROP TRIGGER t ON rraw;
CREATE TRIGGER t BEFORE INSERT ON rraw FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.clamp_range('lo', 'hi', 'policy=swap');
SELECT sqlstate_of($$INSERT INTO rraw VALUES ('2024-01-02', '2024-01-01')$$);
DROP TRIGGER t ON rraw;
CREATE TRIGGER t BEFORE INSERT ON rraw FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.clamp_range('lo', 'hi', 'lo');
SELECT sqlstate_of($$INSERT INTO rraw VALUES ('2024-01-02', '2024-01-01')$$);
DROP TRIGGER t ON rraw;
CREATE TRIGGER t BEFORE INSERT ON rraw FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.clamp_range();
SELECT sqlstate_of($$INSERT INTO rraw VALUES ('2024-01-02', '2024-01-01')$$);
DROP TRIGGER t ON rraw;
CREATE TRIGGER t AFTER UPDATE ON rraw FOR EACH ROW
  EXECUTE FUNCTION integrity_guard.clamp_range('lo', 'hi');
INSERT INTO rraw VALUES ('2024-01-01', '2024-01-02');
SELECT sqlstate_of($$UPDATE rraw SET hi = '2023-01-01'$$);
DROP TRIGGER t ON rraw;
CREATE TRIGGER t BEFORE UPDATE ON rraw FOR EACH STATEMENT
  EXECUTE FUNCTION integrity_guard.clamp_range('lo', 'hi');
SELECT sqlstate_of($$UPDATE rraw SET hi = '2023-01-01'$$);
DROP TRIGGER t ON rraw;
SELECT * FROM rraw;
