-- test/core.sh's third run: every table PostgreSQL's own suites create gets
-- guard_duplicates and guard_counter on each integer column (bounds left
-- out: the column type's own range), as an application guarding every
-- table would.  Run in template1 after CREATE EXTENSION; the function and
-- the event trigger live in the extension's schema so that no test's
-- listing of public objects shows them.  A table a guard cannot take (no
-- integer column, a partition: it gets its parent's clones) is left alone.
CREATE FUNCTION integrity_guard.core_guard_everything() RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    cols text[];
BEGIN
    FOR r IN SELECT c.objid::regclass AS rel
               FROM pg_event_trigger_ddl_commands() c
               JOIN pg_class k ON k.oid = c.objid
              WHERE c.classid = 'pg_class'::regclass AND c.objsubid = 0
                AND k.relkind IN ('r', 'p') AND NOT k.relispartition
                AND k.relnamespace <> 'integrity_guard'::regnamespace
    LOOP
        BEGIN
            PERFORM integrity_guard.guard_duplicates(r.rel);
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
        SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO cols
          FROM pg_attribute a
         WHERE a.attrelid = r.rel AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attgenerated = ''
           AND a.atttypid IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype);
        IF cols IS NOT NULL THEN
            BEGIN
                PERFORM integrity_guard.guard_counter(r.rel, cols);
            EXCEPTION WHEN OTHERS THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION integrity_guard.core_guard_everything() TO PUBLIC;
CREATE EVENT TRIGGER integrity_guard_core_guard_everything ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
    EXECUTE FUNCTION integrity_guard.core_guard_everything();
