# Issue 23, point 8: the retention reaches every database that has the
# extension, and never loses an incident unseen.  A database where nothing
# new happens is purged all the same (the launcher's sweep); incidents a
# locked audit table held in the queue past the retention are counted as not
# written instead of being inserted and deleted by one job; the counts
# reconcile with the stats.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('retention');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '200ms'
integrity_guard.retention = '3s'
integrity_guard.capture_errors = '22003'
});
$node->start;
for my $db ('quiet', 'held', 'bare') {
    $node->safe_psql('postgres', "CREATE DATABASE $db");
}
$node->safe_psql($_, 'CREATE EXTENSION pg_integrity_guard') for 'quiet', 'held';
$node->safe_psql('postgres', 'CREATE ROLE app LOGIN');

# -- a database with one incident and nothing after it
$node->psql('quiet', 'SELECT 2147483647 + 1', extra_params => [ '-U', 'app' ]);
ok($node->poll_query_until('quiet',
    'SELECT count(*) = 1 FROM integrity_guard.audit_log'), 'the incident is written');
ok($node->poll_query_until('quiet',
    'SELECT count(*) = 0 FROM integrity_guard.audit_log'),
    'the retention purges a database where no new incident comes');
# the sweep also visited a database without the extension, harmlessly
is($node->safe_psql('bare', q{
    SELECT count(*) FROM pg_extension WHERE extname = 'pg_integrity_guard'}), '0',
    'a database without the extension is left as it was');

# -- incidents held in the queue past the retention
my $lock = $node->background_psql('held');
$lock->query_safe('BEGIN');
$lock->query_safe('LOCK integrity_guard.audit_log IN ACCESS EXCLUSIVE MODE');
$node->psql('held', join('', map {
    "SET application_name = 'client $_'; SELECT 2147483647 + 1;\n" } 1 .. 5),
    extra_params => [ '-U', 'app' ], on_error_stop => 0);
is($node->safe_psql('held', q{
    SELECT value FROM integrity_guard.status() WHERE name = 'queue_used'}), '5',
    'the locked audit table keeps the incidents queued');
sleep 4;
$lock->query_safe('COMMIT');
$lock->quit;
ok($node->poll_query_until('held', q{
    SELECT value::int = 0 FROM integrity_guard.status() WHERE name = 'queue_used'}),
    'the queue empties once the table is free');
is($node->safe_psql('held', 'SELECT count(*) FROM integrity_guard.audit_log'), '0',
    'incidents older than the retention are not written');
is($node->safe_psql('held', q{
    SELECT dropped || '/' || discarded FROM integrity_guard.queue_usage
     WHERE database_name = 'held' AND role_name = 'app'}), '0/5',
    'they are counted as not written, for their role');
# every event is written, dropped or counted as not written
is($node->safe_psql('held', q{
    SELECT (SELECT sum(occurrences) FROM integrity_guard.stats)
         = (SELECT value::bigint FROM integrity_guard.status() WHERE name = 'events_not_written')
         + (SELECT value::bigint FROM integrity_guard.status() WHERE name = 'queue_dropped') + 1}),
    't', 'the counts reconcile (the one written incident of quiet, purged since)');

# -- a backlog (retention shortened, or a large audit swept for the first
# time) goes in batches of 10,000, each in its own transaction, all by the
# job that finds it: not one long transaction, and not one batch per job
$node->append_conf('postgresql.conf', "integrity_guard.retention = '1h'");
$node->reload;
$node->safe_psql('quiet', q{
    INSERT INTO integrity_guard.audit_log (event_type, target, occurrences, first_seen,
                                           last_seen, detail)
    SELECT 'backlog', 't', 1, now() - interval '2 hours', now() - interval '2 hours',
           CASE WHEN g % 10 = 0 THEN jsonb_build_object('key', g) END
    FROM generate_series(1, 25000) g});
is($node->safe_psql('quiet', 'SELECT count(*) FROM integrity_guard.audit_keys'), '2500',
    'the backlog has key values apart');
$node->psql('quiet', 'SELECT 2147483647 + 1', extra_params => [ '-U', 'app' ]);
ok($node->poll_query_until('quiet', q{
    SELECT count(*) = 1 AND bool_and(event_type <> 'backlog') FROM integrity_guard.audit_log}),
    'one job writes the new incident and deletes the whole backlog');
is($node->safe_psql('quiet', 'SELECT count(*) FROM integrity_guard.audit_keys'), '0',
    'with its key values');
like($node->safe_psql('quiet', q{
    SELECT n_tup_del FROM pg_stat_user_tables
     WHERE relid = 'integrity_guard.audit_log'::regclass}), qr/^2500[0-9]$/,
    'the rows deleted are the backlog (and the earlier incident)');
$node->stop;
done_testing();
