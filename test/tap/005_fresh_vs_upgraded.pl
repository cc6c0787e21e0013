# A fresh install (CREATE EXTENSION: the one generated 1.3 script) and 1.0
# updated along the chain (ALTER EXTENSION UPDATE: 1.0, 1.0--1.1, 1.1--1.2,
# 1.2--1.3) give the same catalog.  The Makefile builds the 1.3 script from
# that chain; this proves the two routes agree, object by object: every
# member and every object in the extension's schema is described as
# canonical text (names, never OIDs) and the two descriptions must be equal.
# On a difference the diff says what differs.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('fresh_vs_upgraded');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '100ms'
});
$node->start;

# One row per fact (object, attribute, value); the value is split into lines
# so that a diff points at the line of a function body that differs.
# Objects: the extension's members, and every relation, function and type in
# its schema (a non-member there is a difference too).
my $describe = q{
WITH ext AS (
    SELECT oid, extnamespace FROM pg_extension WHERE extname = 'pg_integrity_guard'),
members AS (
    SELECT d.classid, d.objid
    FROM pg_depend d, ext
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
objs AS (
    SELECT classid, objid FROM members
    UNION SELECT 'pg_class'::regclass, c.oid FROM pg_class c, ext WHERE c.relnamespace = ext.extnamespace
    UNION SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p, ext WHERE p.pronamespace = ext.extnamespace
    UNION SELECT 'pg_type'::regclass, t.oid FROM pg_type t, ext WHERE t.typnamespace = ext.extnamespace),
rels AS (
    SELECT c.*, pg_describe_object('pg_class'::regclass, c.oid, 0) AS obj
    FROM pg_class c JOIN objs o ON o.classid = 'pg_class'::regclass AND o.objid = c.oid),
procs AS (
    SELECT p.*, pg_describe_object('pg_proc'::regclass, p.oid, 0) AS obj
    FROM pg_proc p JOIN objs o ON o.classid = 'pg_proc'::regclass AND o.objid = p.oid),
types AS (
    SELECT t.*, pg_describe_object('pg_type'::regclass, t.oid, 0) AS obj
    FROM pg_type t JOIN objs o ON o.classid = 'pg_type'::regclass AND o.objid = t.oid),
facts(obj, attr, val) AS (
    -- the set of objects, and which of them are members
    SELECT pg_describe_object(o.classid, o.objid, 0), 'member',
           ((o.classid, o.objid) IN (SELECT classid, objid FROM members))::text
    FROM objs o
    UNION ALL
    SELECT pg_describe_object(o.classid, o.objid, 0), 'comment', d.description
    FROM objs o JOIN pg_description d ON d.classoid = o.classid AND d.objoid = o.objid AND d.objsubid = 0
    UNION ALL
    -- initial privileges (pg_init_privs: what pg_dump takes as the extension's own)
    SELECT pg_describe_object(o.classid, o.objid, 0),
           'init_privs' || coalesce(' column ' || a.attname, ''),
           i.privtype::text || ' ' || i.initprivs::text
    FROM objs o JOIN pg_init_privs i ON i.classoid = o.classid AND i.objoid = o.objid
    LEFT JOIN pg_attribute a ON i.classoid = 'pg_class'::regclass AND a.attrelid = i.objoid
        AND a.attnum = i.objsubid AND i.objsubid > 0

    -- functions and procedures
    UNION ALL
    SELECT obj, 'definition', CASE WHEN prokind = 'a'
        THEN (SELECT format('aggregate sfunc=%s stype=%s finalfunc=%s combinefunc=%s initcond=%s',
                            a.aggtransfn, format_type(a.aggtranstype, NULL), a.aggfinalfn,
                            a.aggcombinefn, a.agginitval)
              FROM pg_aggregate a WHERE a.aggfnoid = procs.oid)
        ELSE pg_get_functiondef(oid) END FROM procs
    UNION ALL SELECT obj, 'prokind', prokind::text FROM procs
    UNION ALL SELECT obj, 'proacl', coalesce(proacl::text, '(default)') FROM procs
    UNION ALL SELECT obj, 'proisstrict', proisstrict::text FROM procs
    UNION ALL SELECT obj, 'prosecdef', prosecdef::text FROM procs
    UNION ALL SELECT obj, 'provolatile', provolatile::text FROM procs
    UNION ALL SELECT obj, 'proparallel', proparallel::text FROM procs
    UNION ALL SELECT obj, 'proleakproof', proleakproof::text FROM procs
    UNION ALL SELECT obj, 'proconfig', coalesce(proconfig::text, '(none)') FROM procs
    UNION ALL SELECT obj, 'owner', pg_get_userbyid(proowner)::text FROM procs

    -- tables, views, sequences, indexes, composite types
    UNION ALL SELECT obj, 'relkind', relkind::text || ' ' || relpersistence::text FROM rels
    UNION ALL SELECT obj, 'owner', pg_get_userbyid(relowner)::text FROM rels
    UNION ALL SELECT obj, 'relacl', coalesce(relacl::text, '(default)') FROM rels
    UNION ALL SELECT obj, 'relrowsecurity', relrowsecurity::text || ' force ' || relforcerowsecurity::text FROM rels
    UNION ALL SELECT obj, 'reloptions', coalesce(reloptions::text, '(none)') FROM rels
    UNION ALL SELECT obj, 'replica identity', relreplident::text FROM rels WHERE relkind IN ('r', 'p', 'm')
    -- columns: position among the non-dropped ones, name, type, NOT NULL,
    -- default, identity, generated, collation, column privileges
    UNION ALL
    SELECT r.obj, 'column ' || lpad((row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum))::text, 3, '0'),
           concat_ws(' ', quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
                     CASE WHEN a.attnotnull THEN 'NOT NULL' END,
                     'DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid),
                     CASE WHEN a.attidentity <> '' THEN 'IDENTITY ' || a.attidentity::text END,
                     CASE WHEN a.attgenerated <> '' THEN 'GENERATED ' || a.attgenerated::text END,
                     CASE WHEN a.attcollation <> t.typcollation
                          THEN 'COLLATE ' || a.attcollation::regcollation::text END,
                     'ACL ' || a.attacl::text)
    FROM rels r
    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    UNION ALL
    SELECT r.obj, 'column comment ' || a.attname, d.description
    FROM rels r
    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_description d ON d.classoid = 'pg_class'::regclass AND d.objoid = r.oid AND d.objsubid = a.attnum
    UNION ALL
    SELECT r.obj, 'constraint ' || c.conname, pg_get_constraintdef(c.oid)
    FROM rels r JOIN pg_constraint c ON c.conrelid = r.oid
    UNION ALL
    SELECT r.obj, 'index ' || i.indexrelid::regclass::text,
           pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisclustered THEN ' CLUSTERED' ELSE '' END
    FROM rels r JOIN pg_index i ON i.indrelid = r.oid
    UNION ALL
    SELECT r.obj, 'trigger ' || tg.tgname, pg_get_triggerdef(tg.oid) || ' (enabled ' || tg.tgenabled::text || ')'
    FROM rels r JOIN pg_trigger tg ON tg.tgrelid = r.oid AND NOT tg.tgisinternal
    UNION ALL
    SELECT r.obj, 'policy ' || p.polname,
           concat_ws(' ', CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                     'FOR ' || p.polcmd::text,
                     'TO ' || (SELECT string_agg(r, ',' ORDER BY r)
                               FROM unnest(p.polroles) AS u,
                                    LATERAL (SELECT CASE WHEN u = 0 THEN 'public'
                                                         ELSE pg_get_userbyid(u)::text END) AS x(r)),
                     'USING (' || pg_get_expr(p.polqual, p.polrelid) || ')',
                     'WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')')
    FROM rels r JOIN pg_policy p ON p.polrelid = r.oid
    UNION ALL
    SELECT r.obj, 'rule ' || rw.rulename, pg_get_ruledef(rw.oid)
    FROM rels r JOIN pg_rewrite rw ON rw.ev_class = r.oid AND rw.rulename <> '_RETURN'
    UNION ALL
    SELECT obj, 'view definition', pg_get_viewdef(oid, true) FROM rels WHERE relkind IN ('v', 'm')
    UNION ALL
    SELECT r.obj, 'sequence',
           format('AS %s START %s INCREMENT %s MINVALUE %s MAXVALUE %s CACHE %s CYCLE %s',
                  format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
                  s.seqcache, s.seqcycle)
    FROM rels r JOIN pg_sequence s ON s.seqrelid = r.oid
    UNION ALL
    SELECT r.obj, 'owned by', pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
    FROM rels r JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = r.oid
        AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'
    WHERE r.relkind = 'S'

    -- types (a table's row type is described with the table)
    UNION ALL SELECT obj, 'typtype', typtype::text FROM types
    UNION ALL SELECT obj, 'owner', pg_get_userbyid(typowner)::text FROM types
    UNION ALL SELECT obj, 'typacl', coalesce(typacl::text, '(default)') FROM types
    UNION ALL
    SELECT obj, 'domain', concat_ws(' ', format_type(typbasetype, typtypmod),
                                    CASE WHEN typnotnull THEN 'NOT NULL' END, 'DEFAULT ' || typdefault)
    FROM types WHERE typtype = 'd'
    UNION ALL
    SELECT ty.obj, 'domain constraint ' || c.conname, pg_get_constraintdef(c.oid)
    FROM types ty JOIN pg_constraint c ON c.contypid = ty.oid
    UNION ALL
    SELECT ty.obj, 'enum labels', string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
    FROM types ty JOIN pg_enum e ON e.enumtypid = ty.oid GROUP BY ty.obj
    UNION ALL
    SELECT ty.obj, 'range', format_type(rg.rngsubtype, NULL)
    FROM types ty JOIN pg_range rg ON rg.rngtypid = ty.oid
    UNION ALL
    SELECT obj, 'element', format_type(typelem, NULL) FROM types WHERE typelem <> 0
    UNION ALL
    SELECT obj, 'relation', typrelid::regclass::text FROM types WHERE typrelid <> 0

    -- event triggers
    UNION ALL
    SELECT pg_describe_object(m.classid, m.objid, 0), 'event trigger',
           format('ON %s WHEN TAG IN %s EXECUTE %s (enabled %s) owner %s', e.evtevent,
                  coalesce(e.evttags::text, '(any)'), e.evtfoid::regprocedure, e.evtenabled,
                  pg_get_userbyid(e.evtowner))
    FROM members m JOIN pg_event_trigger e ON m.classid = 'pg_event_trigger'::regclass AND e.oid = m.objid

    -- the extension: schema, configuration tables and their conditions
    UNION ALL
    SELECT 'extension', 'schema',
           format('%s owner %s acl %s', n.nspname, pg_get_userbyid(n.nspowner), coalesce(n.nspacl::text, '(default)'))
    FROM ext JOIN pg_namespace n ON n.oid = ext.extnamespace
    UNION ALL
    SELECT 'extension', 'default privileges ' || pg_get_userbyid(da.defaclrole) || ' ' || da.defaclobjtype::text,
           da.defaclacl::text
    FROM ext JOIN pg_default_acl da ON da.defaclnamespace = ext.extnamespace
    UNION ALL
    SELECT 'extension', 'version', extversion || CASE WHEN extrelocatable THEN ' relocatable' ELSE '' END
    FROM pg_extension WHERE extname = 'pg_integrity_guard'
    UNION ALL
    SELECT 'extension', 'config ' || c.rel::regclass::text, coalesce(quote_literal(c.cond), '(none)')
    FROM pg_extension x,
         unnest(x.extconfig, x.extcondition) AS c(rel, cond)
    WHERE x.extname = 'pg_integrity_guard'
)
SELECT string_agg(obj || ' | ' || attr || ': ' || line, E'\n'
                  ORDER BY obj COLLATE "C", attr COLLATE "C", n)
FROM facts, regexp_split_to_table(coalesce(val, '(null)'), E'\n') WITH ORDINALITY AS l(line, n)
};

sub describe { my ($db) = @_; return $node->safe_psql($db, $describe) . "\n"; }

# The lines that differ: diff -u when there is one, else the lines each has
# that the other lacks.
sub differences {
    my ($name_a, $a, $name_b, $b) = @_;
    my ($file_a, $file_b) = map { $node->basedir . "/$_.catalog" } $name_a, $name_b;
    for ([$file_a, $a], [$file_b, $b]) {
        open my $fh, '>', $_->[0] or die "cannot write $_->[0]: $!";
        print $fh $_->[1];
        close $fh;
    }
    my ($out) = eval { run_command(['diff', '-U1', $file_a, $file_b]) };
    return $out if defined $out && $out ne '';
    my (%in_a, %in_b);
    $in_a{$_}++ for split /\n/, $a;
    $in_b{$_}++ for split /\n/, $b;
    return join('', (map { "-$_\n" } grep { !$in_b{$_} } split /\n/, $a),
                    (map { "+$_\n" } grep { !$in_a{$_} } split /\n/, $b));
}

sub same_catalog {
    my ($name_a, $a, $name_b, $b, $what) = @_;
    ok($a eq $b, $what) and return 1;
    diag("lines of $name_a (-) and $name_b (+) that differ:\n" . differences($name_a, $a, $name_b, $b));
    return 0;
}

my $version = q{SELECT extversion FROM pg_extension WHERE extname = 'pg_integrity_guard'};

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pg_integrity_guard');
is($node->safe_psql('fresh', $version), '1.7', 'CREATE EXTENSION installs 1.7');

$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('upgraded', q{CREATE EXTENSION pg_integrity_guard VERSION '1.0'});
is($node->safe_psql('upgraded', $version), '1.0', 'VERSION 1.0 installs 1.0');
$node->safe_psql('upgraded', 'ALTER EXTENSION pg_integrity_guard UPDATE');
is($node->safe_psql('upgraded', $version), '1.7', 'ALTER EXTENSION UPDATE from 1.0 reaches 1.7');

my $fresh = describe('fresh');
my $upgraded = describe('upgraded');

# the description covers what it claims to (an empty or partial query would
# make any two installs look the same)
like($fresh, qr/^function integrity_guard\.\S.*\| definition: CREATE OR REPLACE FUNCTION/m,
    'the description has function definitions');
like($fresh, qr/^table integrity_guard\.audit_log \| column 001: /m, 'and table columns');
like($fresh, qr/^table integrity_guard\.audit_log \| relacl: /m, 'and table privileges');
like($fresh, qr/^view integrity_guard\.\S+ \| view definition: /m, 'and view definitions');
like($fresh, qr/^event trigger \S+ \| event trigger: ON /m, 'and event triggers');
like($fresh, qr/^sequence integrity_guard\.\S+ \| sequence: AS /m, 'and sequences');
like($fresh, qr/^extension \| config integrity_guard\.audit_log: /m, 'and the configuration tables');

same_catalog('fresh', $fresh, 'upgraded', $upgraded,
    'fresh 1.7 and 1.0 updated to 1.7 have the same catalog: members, definitions, privileges, config');

$node->stop;
done_testing();
