# Issue 23, point 4: DROP EXTENSION never deadlocks with a flush job.  A job
# waiting for the audit table (held here by a session) gets it once that
# session ends, while DROP EXTENSION, queued behind it, holds the sequence it
# dropped first; the job must not then wait for that sequence while it holds
# the table.  20 tries, no 40P01.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('dropjob');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '100ms'
integrity_guard.capture_errors = '22003'
deadlock_timeout = '100ms'
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');

my ($deadlocks, $dropped) = (0, 0);
for my $try (1 .. 20) {
    $node->safe_psql('app', 'CREATE EXTENSION pg_integrity_guard');
    my $locker = $node->background_psql('app');
    $locker->query_safe('BEGIN; LOCK TABLE integrity_guard.audit_log IN SHARE MODE');
    $node->psql('app', "SELECT 2147483647 + $try", on_error_stop => 0);
    # a job waits for the table
    $node->poll_query_until('app', q{
        SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
         WHERE NOT l.granted AND a.backend_type = 'pg_integrity_guard flush'});
    my ($out, $err) = ('', '');
    my $drop = IPC::Run::start(
        [ 'psql', '-X', '-d', $node->connstr('app'), '-c', 'DROP EXTENSION pg_integrity_guard' ],
        '>', \$out, '2>', \$err);
    # DROP EXTENSION queued behind the job
    $node->poll_query_until('app', q{
        SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
         WHERE NOT l.granted AND a.query LIKE 'DROP EXTENSION%'});
    $locker->query_safe('COMMIT');
    $locker->quit;
    $drop->finish;
    $deadlocks++ if $err =~ /deadlock detected/;
    $dropped++ if $out =~ /DROP EXTENSION/;
    # the job saw the extension go: its incidents are discarded, nothing waits
    $node->poll_query_until('app', q{
        SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_integrity_guard flush'});
    $node->safe_psql('app', 'DROP EXTENSION IF EXISTS pg_integrity_guard');
}
is($deadlocks, 0, 'no deadlock between DROP EXTENSION and a flush job in 20 tries');
is($dropped, 20, 'DROP EXTENSION succeeded every time');
$node->stop;
done_testing();
