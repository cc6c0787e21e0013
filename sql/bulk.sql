-- 200,000 saturations in one statement: one incident
SELECT integrity_guard.purge('0') >= 0 AS purged;
CREATE TABLE bulk (id int, times_seen bigint, started timestamptz, ended timestamptz);
SELECT integrity_guard.guard_counter('bulk', ARRAY['times_seen'], max_value => 2147483647);
SELECT integrity_guard.guard_range('bulk', 'started', 'ended');
INSERT INTO bulk
SELECT g, 2147483647 - (g % 3), '2024-01-01'::timestamptz + g * interval '1 minute', NULL
  FROM generate_series(1, 200000) g;
UPDATE bulk SET times_seen = times_seen + 10,
                ended = started - interval '1 second';
SELECT event_type, target, occurrences FROM integrity_guard.audit_log ORDER BY event_type;
SELECT count(*) FILTER (WHERE times_seen = 2147483647) AS saturated,
       count(*) FILTER (WHERE ended = started) AS clamped
  FROM bulk;
-- a fresh backend: the library is loaded inside the first row's trigger call
\c -
UPDATE bulk SET times_seen = times_seen + 1 WHERE id <= 1000;
SELECT event_type, occurrences FROM integrity_guard.audit_log ORDER BY id DESC LIMIT 1;
