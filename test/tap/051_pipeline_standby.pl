# The durable audit pipeline on a streaming standby (issue 14 point 3): the
# standby captures errors into its own queue, its readers show them with the
# replicated audit rows, a clean restart keeps them, and promotion writes
# them into the audit table of the new primary.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '200ms'
});
$primary->start;
$primary->safe_psql('postgres', q{
    CREATE EXTENSION pg_integrity_guard;
    CREATE TABLE t (id int PRIMARY KEY);
    INSERT INTO t VALUES (1);
    CREATE ROLE watcher LOGIN;
});
$primary->psql('postgres', 'INSERT INTO t VALUES (1)');
$primary->poll_query_until('postgres', 'SELECT count(*) = 1 FROM integrity_guard.audit_log')
  or die 'the primary did not write its incident';

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT count(*) FROM integrity_guard.events()'), '1',
    'the standby reads the replicated audit rows');
$standby->psql('postgres', q{SET application_name = 'on standby'; SELECT 2147483647 + 1}) for 1 .. 3;
$standby->psql('postgres', q{SET application_name = 'on standby'; SELECT 1 / 0});
is($standby->safe_psql('postgres', q{
    SELECT string_agg(event_type || '=' || occurrences || ':' || (id IS NULL), ',' ORDER BY event_type)
    FROM integrity_guard.events() WHERE application_name = 'on standby'}),
    'data_exception=1:true,numeric_out_of_range=3:true',
    'the standby\'s readers show its own pending incidents (no id: not written yet)');
is($standby->safe_psql('postgres', q{
    SELECT sum(occurrences) FROM integrity_guard.summary() WHERE schema_name IS NULL}), '4',
    'summary() counts them too');
is($standby->safe_psql('postgres', q{
    SELECT sum(occurrences) FROM integrity_guard.stats WHERE event_type IN ('numeric_out_of_range', 'data_exception')}),
    '4', 'and so do its stats');
is($standby->safe_psql('postgres', q{
    SET ROLE watcher; SELECT count(*) FROM integrity_guard.events() WHERE application_name = 'on standby'}),
    '0', 'pending incidents pass the audit table\'s visibility rule (no table: privileged roles only)');
like($standby->safe_psql('postgres', q{SELECT value FROM integrity_guard.status() WHERE name = 'worker'}),
    qr/standby: nothing is written until promotion/, 'status() says nothing is written on a standby');

$standby->restart;
is($standby->safe_psql('postgres', q{
    SELECT sum(occurrences) FROM integrity_guard.events() WHERE application_name = 'on standby'}),
    '4', 'a clean restart of the standby keeps its pending incidents');
is($primary->safe_psql('postgres', q{
    SELECT count(*) FROM integrity_guard.audit_log WHERE application_name = 'on standby'}),
    '0', 'the primary never sees the standby\'s incidents');

$standby->promote;
ok($standby->poll_query_until('postgres', q{
    SELECT coalesce(sum(occurrences), 0) = 4 FROM integrity_guard.audit_log WHERE application_name = 'on standby'}),
    'after promotion, the new primary writes them into its audit table');
is($standby->safe_psql('postgres', q{
    SELECT sum(occurrences) FROM integrity_guard.events() WHERE application_name = 'on standby'}),
    '4', 'once: readers do not show them twice');

$standby->stop;
$primary->stop;
done_testing();
