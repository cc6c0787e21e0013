-- guards view, unguard(), trigger names, hostile identifiers
\set SHOW_CONTEXT never

CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed ""Case""; DROP TABLE grp; --" (
    "Times Seen" bigint,
    "it's" timestamptz,
    "x""y" timestamptz
);
SELECT integrity_guard.guard_counter('"Odd Schema"."Mixed ""Case""; DROP TABLE grp; --"', ARRAY['Times Seen'], max_value => 2147483647);
SELECT integrity_guard.guard_range('"Odd Schema"."Mixed ""Case""; DROP TABLE grp; --"', 'it''s', 'x"y', 'swap');
INSERT INTO "Odd Schema"."Mixed ""Case""; DROP TABLE grp; --" VALUES (5000000000, '2024-02-01', '2024-01-01');
SELECT * FROM "Odd Schema"."Mixed ""Case""; DROP TABLE grp; --";
-- grp survived
SELECT count(*) FROM grp;
SELECT table_name, kind, columns, options, trigger_name, enabled
  FROM integrity_guard.guards
 WHERE table_name = '"Odd Schema"."Mixed ""Case""; DROP TABLE grp; --"'::regclass
 ORDER BY trigger_name;
SELECT schema_name, table_name, event_type, target FROM integrity_guard.audit_log
 WHERE schema_name = 'Odd Schema' ORDER BY event_type;

-- long column names: the trigger name stays within 63 bytes, deterministically
CREATE TABLE long_names (
    a_very_long_lower_bound_column_name_that_goes_on_and_on timestamptz,
    a_very_long_upper_bound_column_name_that_goes_on_and_on timestamptz
);
SELECT integrity_guard.guard_range('long_names',
    'a_very_long_lower_bound_column_name_that_goes_on_and_on',
    'a_very_long_upper_bound_column_name_that_goes_on_and_on') AS name \gset
SELECT :'name' = integrity_guard._trigger_name('integrity_guard_range',
    ARRAY['a_very_long_lower_bound_column_name_that_goes_on_and_on',
          'a_very_long_upper_bound_column_name_that_goes_on_and_on']) AS deterministic,
       octet_length(:'name') <= 63 AS fits;
SELECT sqlstate_of($$SELECT integrity_guard.guard_range('long_names',
    'a_very_long_lower_bound_column_name_that_goes_on_and_on',
    'a_very_long_upper_bound_column_name_that_goes_on_and_on')$$);

-- a disabled trigger shows as such
CREATE TABLE several (n bigint, m bigint, lo date, hi date, p daterange);
SELECT integrity_guard.guard_counter('several', ARRAY['n', 'm'], max_value => 100);
SELECT integrity_guard.guard_range('several', 'lo', 'hi');
SELECT integrity_guard.guard_range('several', 'p');
ALTER TABLE several DISABLE TRIGGER integrity_guard_counter;
SELECT kind, columns, options, trigger_name, enabled FROM integrity_guard.guards
 WHERE table_name = 'several'::regclass ORDER BY trigger_name;
ALTER TABLE several ENABLE TRIGGER integrity_guard_counter;

-- unguard: one trigger by name, one kind, everything
SELECT integrity_guard.unguard('several', 'integrity_guard_range_p');
SELECT kind, trigger_name FROM integrity_guard.guards WHERE table_name = 'several'::regclass ORDER BY 2;
SELECT integrity_guard.unguard('several', 'counter');
SELECT kind, trigger_name FROM integrity_guard.guards WHERE table_name = 'several'::regclass ORDER BY 2;
SELECT integrity_guard.guard_counter('several', ARRAY['n']);
SELECT integrity_guard.unguard('several');
SELECT count(*) FROM integrity_guard.guards WHERE table_name = 'several'::regclass;
SELECT integrity_guard.unguard('several');
SELECT sqlstate_of($$SELECT integrity_guard.unguard('several', 'counter')$$);
SELECT sqlstate_of($$SELECT integrity_guard.unguard('several', 'no_such_guard')$$);
SELECT sqlstate_of($$SELECT integrity_guard.unguard(NULL)$$);
-- other triggers on the table are not guards and are left alone
CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER user_trigger BEFORE INSERT ON several FOR EACH ROW EXECUTE FUNCTION noop();
SELECT integrity_guard.unguard('several');
SELECT sqlstate_of($$SELECT integrity_guard.unguard('several', 'user_trigger')$$);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'several'::regclass;

-- a role without TRIGGER privilege cannot attach a guard
CREATE ROLE regress_ig_stranger;
GRANT USAGE ON SCHEMA "Odd Schema" TO regress_ig_stranger;
SET ROLE regress_ig_stranger;
SELECT sqlstate_of($$SELECT integrity_guard.guard_counter('several', ARRAY['m'])$$);
SELECT sqlstate_of($$SELECT integrity_guard.unguard('"Odd Schema"."Mixed ""Case""; DROP TABLE grp; --"')$$);
RESET ROLE;
SELECT count(*) FROM integrity_guard.guards
 WHERE table_name = '"Odd Schema"."Mixed ""Case""; DROP TABLE grp; --"'::regclass;
REVOKE USAGE ON SCHEMA "Odd Schema" FROM regress_ig_stranger;
DROP ROLE regress_ig_stranger;
