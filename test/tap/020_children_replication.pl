# nullify_children() and logical replication (issue 12.10).  The guard does
# what the server's own RI triggers do: it fires on the publisher, whose child
# updates replicate as rows, and not in the subscriber's apply worker
# (session_replication_role = replica), so the subscriber ends as the
# publisher, and a row only the subscriber has is left to it, as native
# ON DELETE SET NULL leaves it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $schema = q{
    CREATE EXTENSION pg_integrity_guard;
    CREATE TABLE parent (id int PRIMARY KEY);
    CREATE TABLE child (id int PRIMARY KEY, pid int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);
    CREATE TABLE native_parent (id int PRIMARY KEY);
    CREATE TABLE native_child (id int PRIMARY KEY, pid int REFERENCES native_parent ON DELETE SET NULL);
    SELECT integrity_guard.guard_children('parent');
};

my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->start;
my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->start;

$pub->safe_psql('postgres', $schema);
$sub->safe_psql('postgres', $schema);
$pub->safe_psql('postgres', q{
    INSERT INTO parent SELECT generate_series(1, 4);
    INSERT INTO child SELECT g, g FROM generate_series(1, 3) g;
    INSERT INTO native_parent SELECT generate_series(1, 4);
    INSERT INTO native_child SELECT g, g FROM generate_series(1, 3) g;
    CREATE PUBLICATION pub FOR TABLE parent, child, native_parent, native_child;
});
my $connstr = $pub->connstr . ' dbname=postgres';
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION sub CONNECTION '$connstr' PUBLICATION pub");
$sub->wait_for_subscription_sync($pub, 'sub');

# rows only the subscriber has, referencing parent 4
$sub->safe_psql('postgres', q{
    INSERT INTO child VALUES (100, 4);
    INSERT INTO native_child VALUES (100, 4);
});

$pub->safe_psql('postgres', q{
    DELETE FROM parent WHERE id IN (1, 4);
    DELETE FROM native_parent WHERE id IN (1, 4);
});
my $rows = q{SELECT string_agg(id || ':' || coalesce(pid::text, '-'), ',' ORDER BY id) FROM %s};
is($pub->safe_psql('postgres', sprintf($rows, 'child')), '1:-,2:2,3:3',
    'the publisher clears its children');
$pub->wait_for_catchup('sub');

is($sub->safe_psql('postgres', sprintf($rows, 'child')),
    $sub->safe_psql('postgres', sprintf($rows, 'native_child')),
    'guarded and native children end the same on the subscriber');
is($sub->safe_psql('postgres', sprintf($rows, 'child')), '1:-,2:2,3:3,100:4',
    'the apply worker ran no guard: the publisher\'s clears arrived as rows, the local row is left');
is($sub->safe_psql('postgres',
        q{SELECT count(*) FROM integrity_guard.audit_log WHERE table_name = 'parent'}),
    '0', 'no incident on the subscriber');

# ENABLE ALWAYS makes the guard fire in the apply worker too
$sub->safe_psql('postgres', q{
    ALTER TABLE parent ENABLE ALWAYS TRIGGER "IG_integrity_guard_children";
    ALTER TABLE parent ENABLE ALWAYS TRIGGER "IG_integrity_guard_children_deferred";
    INSERT INTO child VALUES (101, 3);
});
$pub->safe_psql('postgres', 'DELETE FROM parent WHERE id = 3');
$pub->wait_for_catchup('sub');
is($sub->safe_psql('postgres', 'SELECT coalesce(pid::text, \'-\') FROM child WHERE id = 101'), '-',
    'with ENABLE ALWAYS the guard clears the subscriber\'s own child');

$sub->stop;
$pub->stop;
done_testing();
