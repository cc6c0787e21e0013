-- Differential: native ON DELETE SET NULL against NO ACTION + nullify_children
-- in every placement, on the same random data and the same deletes.
SELECT setseed(0.42);
CREATE TEMP TABLE gen_parent AS
SELECT g AS id,
       CASE WHEN random() < 0.1 THEN NULL ELSE (random() * 2000)::int END AS a,
       g % 7 AS b
  FROM generate_series(1, 2000) g;
-- (a, b) must be unique where not NULL to be referenced
DELETE FROM gen_parent x USING gen_parent y
 WHERE x.a = y.a AND x.b = y.b AND x.id > y.id;
CREATE TEMP TABLE gen_c1 AS
SELECT g AS id, CASE WHEN random() < 0.15 THEN NULL ELSE (random() * 2100)::int END AS p
  FROM generate_series(1, 6000) g;
DELETE FROM gen_c1 WHERE p NOT IN (SELECT id FROM gen_parent);
CREATE TEMP TABLE gen_c2 AS
SELECT g AS id, x.a, CASE WHEN random() < 0.1 THEN NULL ELSE x.b END AS b
  FROM generate_series(1, 4000) g,
       LATERAL (SELECT a, b FROM gen_parent WHERE a IS NOT NULL
                 ORDER BY random() + g * 0 LIMIT 1) x;
CREATE TEMP TABLE gen_c3 AS
SELECT g AS id, (random() * 2100)::int AS p FROM generate_series(1, 3000) g;
DELETE FROM gen_c3 WHERE p NOT IN (SELECT id FROM gen_parent);

-- variant name, FK clause for c1/c2 (c3 is always deferred), trigger DDL
CREATE TEMP TABLE variants (name text, fk text, trig text);
INSERT INTO variants VALUES
 ('native', 'ON DELETE SET NULL', NULL),
 ('before_row', '', 'CREATE TRIGGER g BEFORE DELETE ON %s.parent FOR EACH ROW EXECUTE FUNCTION integrity_guard.nullify_children()'),
 ('after_row_set', '', 'SELECT integrity_guard.guard_children(%L)'),
 ('after_row_plain', '', 'CREATE TRIGGER "IG_plain" AFTER DELETE ON %s.parent FOR EACH ROW EXECUTE FUNCTION integrity_guard.nullify_children()'),
 ('after_statement', 'DEFERRABLE INITIALLY DEFERRED', 'CREATE TRIGGER g AFTER DELETE ON %s.parent REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION integrity_guard.nullify_children()');

DO $$
DECLARE v record;
BEGIN
    FOR v IN SELECT * FROM variants LOOP
        EXECUTE format('CREATE SCHEMA %I', 'd_' || v.name);
        EXECUTE format('CREATE TABLE %I.parent (id int PRIMARY KEY, a int, b int, UNIQUE (a, b))', 'd_' || v.name);
        EXECUTE format('CREATE TABLE %1$I.c1 (id int, p int REFERENCES %1$I.parent %2$s)', 'd_' || v.name, v.fk);
        EXECUTE format('CREATE TABLE %1$I.c2 (id int, a int, b int, FOREIGN KEY (a, b) REFERENCES %1$I.parent (a, b) %2$s)', 'd_' || v.name, v.fk);
        EXECUTE format('CREATE TABLE %1$I.c3 (id int, p int REFERENCES %1$I.parent %2$s)', 'd_' || v.name,
                       CASE WHEN v.name = 'native' THEN 'ON DELETE SET NULL' ELSE 'DEFERRABLE INITIALLY DEFERRED' END);
        EXECUTE format('CREATE INDEX ON %I.c1 (p)', 'd_' || v.name);
        EXECUTE format('CREATE INDEX ON %I.c2 (a, b)', 'd_' || v.name);
        EXECUTE format('INSERT INTO %I.parent SELECT * FROM gen_parent', 'd_' || v.name);
        EXECUTE format('INSERT INTO %I.c1 SELECT * FROM gen_c1', 'd_' || v.name);
        EXECUTE format('INSERT INTO %I.c2 SELECT * FROM gen_c2', 'd_' || v.name);
        EXECUTE format('INSERT INTO %I.c3 SELECT * FROM gen_c3', 'd_' || v.name);
        IF v.trig LIKE 'SELECT%' THEN
            EXECUTE format(v.trig, format('%I.parent', 'd_' || v.name));
        ELSIF v.trig IS NOT NULL THEN
            EXECUTE format(v.trig, quote_ident('d_' || v.name));
        END IF;
    END LOOP;
END $$;

-- The same deletes on every variant, each in its own transaction.
CREATE TEMP TABLE deletes AS
SELECT n, format('id %% %s = %s', 3 + n, n % 3) AS cond FROM generate_series(1, 6) n
UNION ALL SELECT 7, 'a IS NULL'
UNION ALL SELECT 8, 'b = 2 AND a < 20'
UNION ALL SELECT 9, 'true';
CREATE FUNCTION run_delete(variant text, cond text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DELETE FROM %I.parent WHERE %s', 'd_' || variant, cond);
END $$;

CREATE FUNCTION compare(at_step int) RETURNS TABLE (step int, variant text, c1 bool, c2 bool, c3 bool)
LANGUAGE plpgsql AS $$
DECLARE v text;
BEGIN
    FOR v IN SELECT name FROM variants WHERE name <> 'native' ORDER BY name LOOP
        RETURN QUERY EXECUTE format($q$
            SELECT %1$s, %2$L,
              NOT EXISTS ((TABLE d_native.c1 EXCEPT ALL TABLE %3$I.c1) UNION ALL (TABLE %3$I.c1 EXCEPT ALL TABLE d_native.c1)),
              NOT EXISTS ((TABLE d_native.c2 EXCEPT ALL TABLE %3$I.c2) UNION ALL (TABLE %3$I.c2 EXCEPT ALL TABLE d_native.c2)),
              NOT EXISTS ((TABLE d_native.c3 EXCEPT ALL TABLE %3$I.c3) UNION ALL (TABLE %3$I.c3 EXCEPT ALL TABLE d_native.c3))
            $q$, at_step, v, 'd_' || v);
    END LOOP;
END $$;

-- the data is not trivial: every child kind has references and NULLs
SELECT (SELECT count(*) FROM d_native.c1 WHERE p IS NOT NULL) > 1000 AS c1_refs,
       (SELECT count(*) FROM d_native.c1 WHERE p IS NULL) > 100 AS c1_nulls,
       (SELECT count(*) FROM d_native.c2 WHERE b IS NULL) > 100 AS c2_partial,
       (SELECT count(*) FROM d_native.c3) > 1000 AS c3_refs;
SELECT run_delete('native', $$id % 4 = 1$$);
SELECT run_delete('before_row', $$id % 4 = 1$$);
SELECT run_delete('after_row_set', $$id % 4 = 1$$);
SELECT run_delete('after_row_plain', $$id % 4 = 1$$);
SELECT run_delete('after_statement', $$id % 4 = 1$$);
SELECT bool_and(c1 AND c2 AND c3) AS identical FROM compare(1);
SELECT run_delete('native', $$id % 5 = 2$$);
SELECT run_delete('before_row', $$id % 5 = 2$$);
SELECT run_delete('after_row_set', $$id % 5 = 2$$);
SELECT run_delete('after_row_plain', $$id % 5 = 2$$);
SELECT run_delete('after_statement', $$id % 5 = 2$$);
SELECT bool_and(c1 AND c2 AND c3) AS identical FROM compare(2);
SELECT run_delete('native', $$id % 6 = 0$$);
SELECT run_delete('before_row', $$id % 6 = 0$$);
SELECT run_delete('after_row_set', $$id % 6 = 0$$);
SELECT run_delete('after_row_plain', $$id % 6 = 0$$);
SELECT run_delete('after_statement', $$id % 6 = 0$$);
SELECT bool_and(c1 AND c2 AND c3) AS identical FROM compare(3);
SELECT run_delete('native', $$id % 7 = 1$$);
SELECT run_delete('before_row', $$id % 7 = 1$$);
SELECT run_delete('after_row_set', $$id % 7 = 1$$);
SELECT run_delete('after_row_plain', $$id % 7 = 1$$);
SELECT run_delete('after_statement', $$id % 7 = 1$$);
SELECT bool_and(c1 AND c2 AND c3) AS identical FROM compare(4);
SELECT run_delete('native', $$id % 8 = 2$$);
SELECT run_delete('before_row', $$id % 8 = 2$$);
SELECT run_delete('after_row_set', $$id % 8 = 2$$);
SELECT run_delete('after_row_plain', $$id % 8 = 2$$);
SELECT run_delete('after_statement', $$id % 8 = 2$$);
SELECT bool_and(c1 AND c2 AND c3) AS identical FROM compare(5);
SELECT run_delete('native', $$id % 9 = 0$$);
SELECT run_delete('before_row', $$id % 9 = 0$$);
SELECT run_delete('after_row_set', $$id % 9 = 0$$);
SELECT run_delete('after_row_plain', $$id % 9 = 0$$);
SELECT run_delete('after_statement', $$id % 9 = 0$$);
SELECT bool_and(c1 AND c2 AND c3) AS identical FROM compare(6);
SELECT run_delete('native', $$a IS NULL$$);
SELECT run_delete('before_row', $$a IS NULL$$);
SELECT run_delete('after_row_set', $$a IS NULL$$);
SELECT run_delete('after_row_plain', $$a IS NULL$$);
SELECT run_delete('after_statement', $$a IS NULL$$);
SELECT bool_and(c1 AND c2 AND c3) AS identical FROM compare(7);
SELECT run_delete('native', $$b = 2 AND a < 20$$);
SELECT run_delete('before_row', $$b = 2 AND a < 20$$);
SELECT run_delete('after_row_set', $$b = 2 AND a < 20$$);
SELECT run_delete('after_row_plain', $$b = 2 AND a < 20$$);
SELECT run_delete('after_statement', $$b = 2 AND a < 20$$);
SELECT bool_and(c1 AND c2 AND c3) AS identical FROM compare(8);
SELECT run_delete('native', $$true$$);
SELECT run_delete('before_row', $$true$$);
SELECT run_delete('after_row_set', $$true$$);
SELECT run_delete('after_row_plain', $$true$$);
SELECT run_delete('after_statement', $$true$$);
SELECT bool_and(c1 AND c2 AND c3) AS identical FROM compare(9);
-- in the end every reference is cleared, and each variant agrees
SELECT step, variant, c1, c2, c3 FROM compare(10) ORDER BY variant;
SELECT count(*) FILTER (WHERE p IS NOT NULL) AS c1_left FROM d_native.c1;
SELECT sum(occurrences) > 0 AS audited FROM integrity_guard.audit_log WHERE schema_name LIKE 'd\_%';

-- A composite reference with a NOT NULL column (a tenant id, as Citus's
-- distribution column): set_null clears the columns that can be cleared
-- and keeps the others, as ON DELETE SET NULL (columns) does.
CREATE SCHEMA p_native;
CREATE SCHEMA p_guard;
CREATE TABLE p_native.parent (tenant int, id int, PRIMARY KEY (tenant, id));
CREATE TABLE p_guard.parent (tenant int, id int, PRIMARY KEY (tenant, id));
CREATE TABLE p_native.child (id int, tenant int NOT NULL, pid int,
    FOREIGN KEY (tenant, pid) REFERENCES p_native.parent ON DELETE SET NULL (pid));
CREATE TABLE p_guard.child (id int, tenant int NOT NULL, pid int,
    FOREIGN KEY (tenant, pid) REFERENCES p_guard.parent);
INSERT INTO p_native.parent SELECT g % 5, g FROM generate_series(1, 500) g;
INSERT INTO p_guard.parent TABLE p_native.parent;
INSERT INTO p_native.child
SELECT g, t.tenant, t.id FROM generate_series(1, 2000) g,
       LATERAL (SELECT tenant, id FROM p_native.parent ORDER BY random() + g * 0 LIMIT 1) t;
INSERT INTO p_guard.child TABLE p_native.child;
SELECT integrity_guard.guard_children('p_guard.parent');
DELETE FROM p_native.parent WHERE id % 3 = 0;
DELETE FROM p_guard.parent WHERE id % 3 = 0;
BEGIN;
DELETE FROM p_native.parent WHERE tenant = 2;
DELETE FROM p_guard.parent WHERE tenant = 2;
COMMIT;
SELECT NOT EXISTS ((TABLE p_native.child EXCEPT ALL TABLE p_guard.child)
                   UNION ALL (TABLE p_guard.child EXCEPT ALL TABLE p_native.child)) AS identical,
       (SELECT count(*) FROM p_guard.child WHERE pid IS NULL) > 500 AS cleared,
       (SELECT count(*) FROM p_guard.child WHERE tenant IS NULL) AS tenant_cleared;
-- MATCH FULL: some NULLs and some values fail the key, so it is refused;
-- every column NOT NULL: nothing to clear, refused
\set SHOW_CONTEXT never
CREATE TABLE p_guard.fparent (tenant int, id int, PRIMARY KEY (tenant, id));
CREATE TABLE p_guard.full_child (tenant int NOT NULL, pid int,
    FOREIGN KEY (tenant, pid) REFERENCES p_guard.fparent MATCH FULL);
SELECT integrity_guard.guard_children('p_guard.fparent');
CREATE TABLE p_guard.nparent (tenant int, id int, PRIMARY KEY (tenant, id));
CREATE TABLE p_guard.fixed_child (tenant int NOT NULL, pid int NOT NULL,
    FOREIGN KEY (tenant, pid) REFERENCES p_guard.nparent);
SELECT integrity_guard.guard_children('p_guard.nparent');
\set SHOW_CONTEXT errors
