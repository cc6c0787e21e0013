# Each repair is an incident of its own (issue 25 point 10): two fix_orphans
# calls in one flush window, set_null then delete, are two audit rows, each
# with its action, not one row whose second action shows only in samples.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('repair_incidents');
$node->init;
# one long flush window: both calls are queued before any write
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '10min'
});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_integrity_guard;
    CREATE TABLE parent (id int PRIMARY KEY);
    CREATE TABLE child (id int PRIMARY KEY, parent_id int);
    INSERT INTO parent VALUES (1);
    INSERT INTO child VALUES (1, 1), (2, 7), (3, 8);
});
$node->safe_psql('postgres', q{CALL integrity_guard.fix_orphans('child', '{parent_id}', 'parent', action => 'set_null')});
$node->safe_psql('postgres', q{INSERT INTO child VALUES (4, 9)});
$node->safe_psql('postgres', q{CALL integrity_guard.fix_orphans('child', '{parent_id}', 'parent', action => 'delete')});
$node->safe_psql('postgres', 'SELECT integrity_guard.flush()');
is($node->safe_psql('postgres', q{
    SELECT string_agg(detail->>'action' || ':' || occurrences, ',' ORDER BY first_seen)
    FROM integrity_guard.audit_log WHERE event_type = 'orphans_fixed'}),
    'set_null:2,delete:1', 'two incidents, each with its own action and count');
is($node->safe_psql('postgres', q{SELECT string_agg(id || ':' || coalesce(parent_id::text, '-'), ',' ORDER BY id) FROM child}),
    '1:1,2:-,3:-', 'the repairs did what they said');
$node->stop;
done_testing();
