# A CREATE EXTENSION committed by two-phase commit (Citus creates the
# extension on its workers so) counts as a registration: a database whose
# flush job found no extension before it keeps the incidents that follow,
# and a job that finds no extension while that prepared transaction is
# undecided does not conclude that the database has none; any other
# prepared transaction changes nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('prepared');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '100ms'
integrity_guard.capture_errors = '22003'
max_prepared_transactions = 2
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_integrity_guard');
$node->safe_psql('postgres', 'CREATE DATABASE app');
my $discarded = q{SELECT coalesce(sum(discarded), 0) FROM integrity_guard.queue_usage
                  WHERE database_name = 'app'};

# no extension in app: a job finds none, and the incident goes
$node->psql('app', 'SELECT 2147483647 + 1');
ok($node->poll_query_until('postgres', "SELECT ($discarded) > 0"),
    'an incident of a database without the extension is discarded');

# created by two-phase commit: the next incident is written
$node->safe_psql('app', q{BEGIN; CREATE EXTENSION pg_integrity_guard;
                          PREPARE TRANSACTION 'ext'; COMMIT PREPARED 'ext'});
$node->psql('app', 'SELECT 2147483647 + 2');
ok($node->poll_query_until('app', q{SELECT count(*) = 1 FROM integrity_guard.audit_log}),
    'after a prepared CREATE EXTENSION, the next incident is written');
is($node->safe_psql('postgres', $discarded), '1', 'and none more is discarded');

# a job that runs while CREATE EXTENSION is prepared but not committed
$node->safe_psql('app', 'DROP EXTENSION pg_integrity_guard');
$node->safe_psql('app', q{BEGIN; CREATE EXTENSION pg_integrity_guard; PREPARE TRANSACTION 'ext2'});
$node->psql('app', 'SELECT 2147483647 + 3');
# let jobs look (flush_interval is 100ms)
$node->poll_query_until('postgres', q{
    SELECT pg_sleep(0.5) IS NOT NULL AND count(*) = 0 FROM pg_stat_activity
     WHERE backend_type = 'pg_integrity_guard flush'});
$node->safe_psql('app', q{COMMIT PREPARED 'ext2'});
ok($node->poll_query_until('app', q{SELECT count(*) = 1 FROM integrity_guard.audit_log}),
    'an incident queued while CREATE EXTENSION was prepared is written once it commits');
is($node->safe_psql('postgres', $discarded), '1', 'nothing is discarded meanwhile');

# any other prepared transaction says nothing: a database without the
# extension still lets its incidents go, however long it stays prepared
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', q{BEGIN; CREATE TABLE t (); PREPARE TRANSACTION 'orphan'});
$node->psql('other', 'SELECT 2147483647 + 4');
ok($node->poll_query_until('postgres', q{
    SELECT coalesce(sum(discarded), 0) > 0 FROM integrity_guard.queue_usage WHERE database_name = 'other'}),
    'a prepared transaction that creates no extension does not hold back the discard');
$node->safe_psql('other', q{ROLLBACK PREPARED 'orphan'});

$node->stop;
done_testing();
