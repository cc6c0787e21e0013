# A children guard attached before 1.2 on a parent that a deferred foreign
# key references: ALTER EXTENSION UPDATE gives it the deferred companion, so
# that from then on a transaction that re-points the children keeps them
# (issue 12.5), and a dump and restore keeps both triggers.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('children_upgrade');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_integrity_guard VERSION '1.1';
    CREATE TABLE parent (id int PRIMARY KEY);
    CREATE TABLE child (id int, pid int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);
    SELECT integrity_guard.guard_children('parent');
    INSERT INTO parent VALUES (1), (2), (3);
    INSERT INTO child VALUES (1, 1), (2, 3);
});
my $triggers = q{SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger
                 WHERE tgrelid = 'parent'::regclass AND tgname LIKE 'IG%'};
is($node->safe_psql('postgres', $triggers), 'IG_integrity_guard_children', '1.1 attaches one trigger');

$node->safe_psql('postgres', 'ALTER EXTENSION pg_integrity_guard UPDATE');
is($node->safe_psql('postgres', $triggers),
    'IG_integrity_guard_children,IG_integrity_guard_children_deferred',
    'the update adds the deferred companion');
$node->safe_psql('postgres', q{
    BEGIN;
    DELETE FROM parent WHERE id = 1;
    UPDATE child SET pid = 2 WHERE pid = 1;
    COMMIT;
    DELETE FROM parent WHERE id = 3;
});
is($node->safe_psql('postgres', q{SELECT string_agg(id || ':' || coalesce(pid::text, '-'), ',' ORDER BY id) FROM child}),
    '1:2,2:-', 're-pointed children are kept, children left are cleared at commit');

my $dump = $node->basedir . '/db.dump';
$node->command_ok(['pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres')], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(['pg_restore', '-d', $node->connstr('restored'), $dump], 'pg_restore');
is($node->safe_psql('restored', $triggers),
    'IG_integrity_guard_children,IG_integrity_guard_children_deferred',
    'both triggers are restored');
$node->safe_psql('restored', q{
    INSERT INTO parent VALUES (5);
    INSERT INTO child VALUES (5, 5);
    BEGIN;
    DELETE FROM parent WHERE id = 5;
    INSERT INTO parent VALUES (5);
    COMMIT;
});
is($node->safe_psql('restored', 'SELECT pid FROM child WHERE id = 5'), '5',
    'after restore, a parent inserted again keeps its children');

$node->stop;
done_testing();
