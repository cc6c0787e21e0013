# A preloaded server with integrity_guard.capture_errors set in its
# configuration file: it starts, the list takes effect, and a reload that
# replaces the list frees the old one the way the running server expects
# (malloc/free on 15, guc_malloc/guc_free from 16).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('config_file');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '200ms'
integrity_guard.capture_errors = 'check_violation, unique_violation'
});
ok($node->start(fail_ok => 1), 'a server with capture_errors in postgresql.conf starts');

is($node->safe_psql('postgres', 'SHOW integrity_guard.capture_errors'),
    'check_violation, unique_violation', 'the configured list is in force');

$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_integrity_guard;
    CREATE TABLE positive (n int CHECK (n > 0));
});
$node->psql('postgres', 'INSERT INTO positive VALUES (-1)');
ok($node->poll_query_until('postgres',
    q{SELECT count(*) = 1 FROM integrity_guard.audit_log WHERE event_type = 'check_violation'}),
    'a listed condition from the file is captured');

# Replace the list by a reload, several times: every replaced list is freed.
for my $list ('numeric_value_out_of_range', 'unique_violation', '23') {
    $node->append_conf('postgresql.conf', "integrity_guard.capture_errors = '$list'\n");
    $node->reload;
}
ok($node->poll_query_until('postgres', q{SELECT current_setting('integrity_guard.capture_errors') = '23'}),
    'reloads replace the list');
$node->psql('postgres', 'INSERT INTO positive VALUES (-2)');
ok($node->poll_query_until('postgres',
    q{SELECT count(*) = 1 FROM integrity_guard.audit_log WHERE event_type = 'integrity_constraint_violation'}),
    'the reloaded class list captures its class, under the class name');

$node->restart;
is($node->safe_psql('postgres', 'SHOW integrity_guard.capture_errors'), '23',
    'the server restarts with the last list');
ok(!grep(/pfree called|invalid pointer/, slurp_file($node->logfile)),
    'no invalid free in the server log');
$node->stop;
done_testing();
