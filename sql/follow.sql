-- Guards follow the schema (issue 27): a migration succeeds exactly as it
-- would without the guard, and the guard follows what it names (or leaves
-- it, with a NOTICE and a guard_changed incident).  Each change runs on a
-- guarded table and on its unguarded twin; then the same writes go to both.
\set SHOW_CONTEXT never
SET client_min_messages = notice;

-- Walk the catalog's guards: every guarded table takes an UPDATE of each
-- of its columns to itself and a DELETE of its rows (rolled back), so that
-- every guard fires and parses its arguments as a write would.
CREATE FUNCTION guards_fit() RETURNS TABLE (tbl regclass, problem text)
LANGUAGE plpgsql AS $$
DECLARE
    r regclass;
    cols text;
BEGIN
    FOR r IN SELECT DISTINCT t.tgrelid::regclass
               FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
              WHERE p.pronamespace = 'integrity_guard'::regnamespace
                AND p.prorettype = 'trigger'::regtype
                AND t.tgrelid::regclass::text NOT LIKE 'integrity_guard.%'
              ORDER BY 1
    LOOP
        SELECT string_agg(format('%I = %I', attname, attname), ', ') INTO cols
          FROM pg_attribute
         WHERE attrelid = r AND attnum > 0 AND NOT attisdropped
           AND attgenerated = '' AND attidentity <> 'a';
        BEGIN
            EXECUTE format('UPDATE %s SET %s', r, cols);
            EXECUTE format('DELETE FROM %s', r);
            RAISE EXCEPTION USING ERRCODE = 'P0099';
        EXCEPTION
            WHEN SQLSTATE 'P0099' THEN NULL;
            WHEN OTHERS THEN
                tbl := r; problem := SQLERRM;
                RETURN NEXT;
        END;
    END LOOP;
END $$;

CREATE SCHEMA mig;
CREATE SCHEMA mig2;
SET search_path = mig, public;

-- == default bounds are the column type's own (Django's BigAutoField,
-- BigIntegerField, PositiveBigIntegerField) ==
CREATE TABLE big (id bigint PRIMARY KEY, n bigint, p bigint CHECK (p >= 0), small smallint, num numeric);
CREATE TABLE big_twin (LIKE big INCLUDING ALL);
SELECT integrity_guard.guard_counter('big', ARRAY['id', 'n', 'p', 'small']);
SELECT integrity_guard.guard_counter('big', ARRAY['num']);
SELECT columns FROM integrity_guard.guards WHERE table_name = 'big'::regclass;
-- numeric can hold values past the bigint range, where its default bounds
-- end: the trigger fires for each row (integer columns alone have the
-- never-firing marker, below)
SELECT pg_get_triggerdef(oid) ~ 'WHEN \(false\)' AS inert FROM pg_trigger WHERE tgrelid = 'big'::regclass;
INSERT INTO big VALUES (9223372036854775807, 4398046511104, 9223372036854775807, 32767, 1e30),
                       (1, -9223372036854775808, 0, -32768, -1e30);
INSERT INTO big_twin VALUES (9223372036854775807, 4398046511104, 9223372036854775807, 32767, 1e30),
                            (1, -9223372036854775808, 0, -32768, -1e30);
SELECT * FROM big ORDER BY id;
CREATE TABLE big_ints (n bigint);
SELECT integrity_guard.guard_counter('big_ints', ARRAY['n']);
SELECT pg_get_triggerdef(oid) ~ 'WHEN \(false\)' AS inert FROM pg_trigger WHERE tgrelid = 'big_ints'::regclass;
SELECT count(*) AS differ FROM (SELECT id, n, p, small FROM big EXCEPT SELECT id, n, p, small FROM big_twin) d;
-- arithmetic past the type still saturates, where the twin fails
UPDATE big SET n = n + 9223372036854775807, small = small + 1 WHERE id = 1;
UPDATE big SET n = n - 9223372036854775807 - 9223372036854775807 WHERE id = 1;
SELECT n, small FROM big WHERE id = 1;
UPDATE big_twin SET small = small + 1 WHERE id = 1;
-- holding a bigint to 32 bits is explicit; NULL leaves a bound out
CREATE TABLE held (id int, n bigint, m bigint);
SELECT integrity_guard.guard_counter('held', ARRAY['n'], max_value => 2147483647, min_value => -2147483648);
SELECT integrity_guard.guard_counter('held', ARRAY['m'], max_value => NULL, min_value => 0);
SELECT columns FROM integrity_guard.guards WHERE table_name = 'held'::regclass;
INSERT INTO held VALUES (1, 4398046511104, -5), (2, 7, 9223372036854775807);
SELECT * FROM held ORDER BY id;

-- == a model's guarded fields through a migration ==
CREATE TABLE app_m (id int PRIMARY KEY, pink int NOT NULL DEFAULT 0, hits int, score bigint,
                    started timestamptz, ended timestamptz, during tstzrange, code int UNIQUE);
CREATE TABLE app_m_twin (LIKE app_m INCLUDING ALL);
SELECT integrity_guard.guard_counter('app_m', ARRAY['pink', 'hits']);
SELECT integrity_guard.guard_counter('app_m', ARRAY['score'], max_value => 1000);
SELECT integrity_guard.guard_range('app_m', 'started', 'ended');
SELECT integrity_guard.guard_range('app_m', 'during');
SELECT integrity_guard.guard_duplicates('app_m', 'skip');
CREATE TABLE twin_log (n serial, step text, guarded text, twin text);
CREATE FUNCTION step(label text, ddl text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    g text := 'ok';
    t text := 'ok';
BEGIN
    BEGIN
        EXECUTE format(ddl, 'app_m');
    EXCEPTION WHEN OTHERS THEN g := SQLSTATE || ': ' || SQLERRM;
    END;
    BEGIN
        EXECUTE format(ddl, 'app_m_twin');
    EXCEPTION WHEN OTHERS THEN t := SQLSTATE || ': ' || SQLERRM;
    END;
    INSERT INTO twin_log (step, guarded, twin) VALUES (label, g, replace(t, 'app_m_twin', 'app_m'));
END $$;
-- writes that the guard leaves alone must give both tables the same rows
CREATE FUNCTION write_both(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    g text := 'ok';
    t text := 'ok';
BEGIN
    BEGIN
        EXECUTE format(stmt, 'app_m');
    EXCEPTION WHEN OTHERS THEN g := SQLSTATE || ': ' || SQLERRM;
    END;
    BEGIN
        EXECUTE format(stmt, 'app_m_twin');
    EXCEPTION WHEN OTHERS THEN t := SQLSTATE || ': ' || SQLERRM;
    END;
    RETURN CASE WHEN g = replace(t, 'app_m_twin', 'app_m') THEN g ELSE 'guarded: ' || g || ' / twin: ' || t END;
END $$;
CREATE FUNCTION same_rows() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM ((TABLE app_m EXCEPT TABLE app_m_twin) UNION ALL (TABLE app_m_twin EXCEPT TABLE app_m)) d
$$;
SELECT write_both($$INSERT INTO %s (id, pink, hits, score, code) VALUES (1, 5, 5, 5, 1)$$);

-- RenameField
SELECT step('rename pink', 'ALTER TABLE %s RENAME COLUMN pink TO blue');
SELECT write_both($$INSERT INTO %s (id, blue, hits, score, code) VALUES (2, 6, 6, 6, 2)$$);
SELECT write_both($$UPDATE %s SET hits = hits + 1$$);
SELECT same_rows();
UPDATE app_m SET blue = blue + 2147483647 WHERE id = 1;
SELECT blue FROM app_m WHERE id = 1;
UPDATE app_m_twin SET blue = 2147483647 WHERE id = 1;
SELECT * FROM guards_fit();
-- AlterField int -> bigint: default bounds follow the new type
SELECT step('hits to bigint', 'ALTER TABLE %s ALTER COLUMN hits TYPE bigint');
SELECT write_both($$UPDATE %s SET hits = 4398046511104 WHERE id = 2$$);
SELECT same_rows();
-- AlterField bigint -> int (explicit bounds fit) and int -> smallint
SELECT step('score to int', 'ALTER TABLE %s ALTER COLUMN score TYPE int');
SELECT write_both($$UPDATE %s SET blue = 3 WHERE id = 1$$);
SELECT step('blue to smallint', 'ALTER TABLE %s ALTER COLUMN blue TYPE smallint');
SELECT columns FROM integrity_guard.guards WHERE table_name = 'app_m'::regclass AND kind = 'counter';
SELECT write_both($$UPDATE %s SET blue = 7, score = 7 WHERE id = 2$$);
SELECT same_rows();
-- AlterField int -> char: the column leaves the guard
SELECT step('score to varchar', 'ALTER TABLE %s ALTER COLUMN score TYPE varchar(20)');
SELECT write_both($$UPDATE %s SET score = 'high' WHERE id = 2$$);
SELECT columns FROM integrity_guard.guards WHERE table_name = 'app_m'::regclass AND kind = 'counter';
-- a value the new type cannot hold fails the same way on both
SELECT step('hits back to int', 'ALTER TABLE %s ALTER COLUMN hits TYPE int');
SELECT write_both($$UPDATE %s SET hits = 2 WHERE id = 2$$);
SELECT step('hits back to int again', 'ALTER TABLE %s ALTER COLUMN hits TYPE int');
SELECT * FROM guards_fit();
-- RemoveField of a guarded column; of a range bound
SELECT step('remove hits', 'ALTER TABLE %s DROP COLUMN hits');
SELECT step('remove ended', 'ALTER TABLE %s DROP COLUMN ended');
SELECT write_both($$INSERT INTO %s (id, blue, score, code, started) VALUES (3, 1, '1', 3, now())$$);
SELECT same_rows();
SELECT kind, columns FROM integrity_guard.guards WHERE table_name = 'app_m'::regclass ORDER BY 1;
-- the range column: renamed, then retyped to another time range
SELECT step('rename during', 'ALTER TABLE %s RENAME COLUMN during TO span');
SELECT step('span to tsrange', 'ALTER TABLE %s ALTER COLUMN span TYPE tsrange USING NULL');
INSERT INTO app_m (id, code, span) VALUES (4, 4, tsrange('2026-01-02', '2026-01-01'));
SELECT span FROM app_m WHERE id = 4;
DELETE FROM app_m WHERE id = 4;
-- Add/RemoveConstraint under guard_duplicates
SELECT step('add unique', 'ALTER TABLE %s ADD CONSTRAINT %1$s_blue_key UNIQUE (blue)');
SELECT write_both($$INSERT INTO %s (id, blue, score, code) VALUES (5, 1, '5', 5)$$);
SELECT step('drop unique', 'ALTER TABLE %s DROP CONSTRAINT %1$s_blue_key');
SELECT write_both($$INSERT INTO %s (id, blue, score, code) VALUES (5, 1, '5', 5)$$);
SELECT same_rows();
CREATE UNIQUE INDEX CONCURRENTLY app_m_span_idx ON app_m (blue, id);
CREATE UNIQUE INDEX CONCURRENTLY app_m_twin_span_idx ON app_m_twin (blue, id);
SELECT write_both($$INSERT INTO %s (id, blue, score, code) VALUES (6, 1, '6', 6)$$);
DROP INDEX CONCURRENTLY app_m_span_idx;
DROP INDEX CONCURRENTLY app_m_twin_span_idx;
-- RenameModel, and a move to another schema
SELECT step('rename table', 'ALTER TABLE %s RENAME TO %1$s_renamed');
SELECT step('move table', 'ALTER TABLE %s_renamed SET SCHEMA mig2');
SELECT step('rename back', 'ALTER TABLE mig2.%s_renamed RENAME TO %1$s');
SELECT step('move back', 'ALTER TABLE mig2.%s SET SCHEMA mig');
SELECT write_both($$INSERT INTO %s (id, blue, score, code) VALUES (7, 32767, '7', 7)$$);
SELECT write_both($$UPDATE %s SET blue = blue + 1 WHERE id = 7$$);
SELECT blue FROM app_m WHERE id = 7;
-- every step did on the guarded table what it did on its twin
SELECT step, guarded = twin AS alike, guarded FROM twin_log ORDER BY n;
SELECT * FROM guards_fit();
SELECT kind, columns, options FROM integrity_guard.guards WHERE table_name = 'app_m'::regclass ORDER BY 1;

-- == guard_children: references follow their tables and columns ==
CREATE TABLE par (id int PRIMARY KEY, code int UNIQUE);
CREATE TABLE kid (id int, par_id int, par_code int);
CREATE TABLE kid_fk (id int, par_id int REFERENCES par);
SELECT integrity_guard.guard_children('par', ARRAY['kid(par_id)', 'kid(par_code) = (code)']);
INSERT INTO par VALUES (1, 10), (2, 20), (3, 30), (4, 40);
INSERT INTO kid VALUES (1, 1, 20), (2, 2, 10), (3, 3, 30);
ALTER TABLE kid RENAME par_id TO parent_id;
ALTER TABLE par RENAME code TO ref_code;
ALTER TABLE kid RENAME TO kids;
ALTER TABLE kids SET SCHEMA mig2;
SELECT columns FROM integrity_guard.guards WHERE table_name = 'par'::regclass;
DELETE FROM par WHERE id = 1;
SELECT * FROM mig2.kids ORDER BY id;
-- a declared FK added and dropped later: the guard reads them at fire time
SELECT integrity_guard.unguard('par', 'children');
SELECT integrity_guard.guard_children('par');
INSERT INTO kid_fk VALUES (1, 2);
ALTER TABLE mig2.kids ADD CONSTRAINT kids_parent FOREIGN KEY (parent_id) REFERENCES par;
DELETE FROM par WHERE id = 2;
SELECT (SELECT par_id FROM kid_fk WHERE id = 1) AS fk_child, (SELECT parent_id FROM mig2.kids WHERE id = 2) AS kids_child;
ALTER TABLE mig2.kids DROP CONSTRAINT kids_parent;
DROP TABLE kid_fk;
SELECT * FROM guards_fit();
DELETE FROM par WHERE id = 3;
SELECT * FROM mig2.kids ORDER BY id;
-- a dropped child leaves the references that named it
SELECT integrity_guard.unguard('par', 'children');
SELECT integrity_guard.guard_children('par', ARRAY['mig2.kids(parent_id)']);
DROP TABLE mig2.kids;
SELECT count(*) FROM integrity_guard.guards WHERE table_name = 'par'::regclass;
DELETE FROM par WHERE id = 4;

-- == partitions: ATTACH under a guarded parent leaves one guard, DETACH keeps it ==
CREATE TABLE pp (id int, a int, c int, UNIQUE (id, a)) PARTITION BY RANGE (id);
SELECT integrity_guard.guard_duplicates('pp');
SELECT integrity_guard.guard_counter('pp', ARRAY['c'], max_value => 100);
CREATE TABLE q (id int, a int, c int, UNIQUE (id, a));
SELECT integrity_guard.guard_duplicates('q', 'skip');
SELECT integrity_guard.guard_counter('q', ARRAY['c'], max_value => 50);
ALTER TABLE pp ATTACH PARTITION q FOR VALUES FROM (0) TO (10);
SELECT tgrelid::regclass, tgname, tgparentid <> 0 AS clone, integrity_guard._trigger_args(tgargs)
  FROM pg_trigger WHERE tgrelid IN ('pp'::regclass, 'q'::regclass) ORDER BY 1, 2;
INSERT INTO pp VALUES (1, 1, 1000);
SELECT c FROM q;
ALTER TABLE pp DETACH PARTITION q;
SELECT tgrelid::regclass, tgname, tgparentid <> 0 AS clone, integrity_guard._trigger_args(tgargs)
  FROM pg_trigger WHERE tgrelid IN ('pp'::regclass, 'q'::regclass) ORDER BY 1, 2;
INSERT INTO q VALUES (2, 2, 1000);
SELECT c FROM q ORDER BY id;
-- a partitioned parent's column renamed: the clones follow with it
ALTER TABLE pp ATTACH PARTITION q FOR VALUES FROM (0) TO (10);
ALTER TABLE pp RENAME c TO cnt;
SELECT tgrelid::regclass, integrity_guard._trigger_args(tgargs) FROM pg_trigger
 WHERE tgrelid IN ('pp'::regclass, 'q'::regclass) AND tgname = 'integrity_guard_counter' ORDER BY 1;
INSERT INTO pp VALUES (3, 3, 1000);
SELECT cnt FROM q ORDER BY id;

-- == only the table's owner changes a guard; what changed is audited ==
CREATE ROLE regress_follow_stranger;
GRANT USAGE ON SCHEMA mig TO regress_follow_stranger;
SET ROLE regress_follow_stranger;
ALTER TABLE app_m RENAME blue TO green;
RESET ROLE;
SELECT columns FROM integrity_guard.guards WHERE table_name = 'app_m'::regclass AND kind = 'counter';
SELECT integrity_guard.flush() >= 0 AS flushed;
SELECT table_name, target, detail->>'change' AS change, detail->>'result' AS result
  FROM integrity_guard.events(event_type => 'guard_changed')
 WHERE schema_name IN ('mig', 'mig2') ORDER BY table_name, first_seen, target;

-- the internal functions are not for everyone
SET ROLE regress_follow_stranger;
SELECT integrity_guard._guard_follow_drop('table', 'app_m'::regclass, ARRAY['mig', 'app_m']);
SELECT integrity_guard._guard_set_args(0, ARRAY['x']);
RESET ROLE;
SELECT integrity_guard._guard_set_args(0, ARRAY['x']);
SELECT integrity_guard._guard_follow_drop(NULL, 0, NULL);

RESET search_path;
DROP SCHEMA mig CASCADE;
DROP SCHEMA mig2 CASCADE;
DROP ROLE regress_follow_stranger;
DROP FUNCTION guards_fit();
