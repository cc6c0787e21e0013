# A backend killed with SIGKILL in the middle of a guarded transaction:
# after crash recovery the audit table holds exactly the committed
# incidents, the killed transaction left nothing, and every guard works.
# Then a clean restart keeps guards and incidents.  This is the
# transactional audit (durable_audit = off) under preload; the durable
# pipeline has its own test, 002_pipeline.pl.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_integrity_guard'");
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->append_conf('postgresql.conf', 'integrity_guard.durable_audit = off');
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_integrity_guard;
    CREATE TABLE grp (id int PRIMARY KEY, times_seen int NOT NULL);
    SELECT integrity_guard.guard_counter('grp', ARRAY['times_seen']);
    CREATE TABLE checkin (id int PRIMARY KEY);
    CREATE TABLE incident (id int, checkin_id int REFERENCES checkin DEFERRABLE INITIALLY DEFERRED);
    SELECT integrity_guard.guard_children('checkin');
    INSERT INTO grp VALUES (1, 2147483647);
    INSERT INTO checkin SELECT generate_series(1, 10);
    INSERT INTO incident SELECT g, g FROM generate_series(1, 10) g;
});
$node->safe_psql('postgres', 'UPDATE grp SET times_seen = times_seen + 1');
is($node->safe_psql('postgres', 'SELECT count(*) FROM integrity_guard.audit_log'),
    '1', 'a committed saturation is one incident');

# a session saturates, clears children and flushes its incidents, all in an
# open transaction, and is then killed
my $bg = $node->background_psql('postgres');
$bg->query_safe('BEGIN');
$bg->query_safe('UPDATE grp SET times_seen = times_seen + 5');
$bg->query_safe('INSERT INTO grp VALUES (2, 2147483647 + 5)');
$bg->query_safe('DELETE FROM checkin WHERE id <= 5');
$bg->query_safe('SELECT integrity_guard.flush()');
is($bg->query_safe('SELECT count(*) FROM integrity_guard.audit_log'), '4',
    'the killed transaction had written its three incidents');
my $pid = $bg->query_safe('SELECT pg_backend_pid()');
my $log_offset = -s $node->logfile;
kill 'KILL', $pid;
eval { $bg->quit };

# A connection can slip in before the postmaster has reaped the killed
# backend; wait for the crash restart itself, then for connections.
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
$node->poll_query_until('postgres', 'SELECT true')
  or die 'the server did not come back after the crash';
pass('the server recovered from the killed backend');

is($node->safe_psql('postgres', 'SELECT count(*), sum(occurrences) FROM integrity_guard.audit_log'),
    '1|1', 'only the committed incident is in the audit table');
is($node->safe_psql('postgres', 'SELECT count(*) FROM grp'), '1',
    'the killed transaction inserted nothing');
is($node->safe_psql('postgres',
    'SELECT count(*) FILTER (WHERE checkin_id IS NULL) FROM incident'), '0',
    'the killed transaction cleared no child');
is($node->safe_psql('postgres',
    q{SET enable_seqscan = off; SELECT count(*) FROM integrity_guard.audit_log WHERE id > 0}),
    '1', 'the audit index agrees with the table');

# the extension works after recovery
$node->safe_psql('postgres', 'UPDATE grp SET times_seen = times_seen + 5');
$node->safe_psql('postgres', 'DELETE FROM checkin WHERE id <= 5');
is($node->safe_psql('postgres', 'SELECT times_seen FROM grp'), '2147483647',
    'the counter saturates after recovery');
is($node->safe_psql('postgres',
    'SELECT count(*) FILTER (WHERE checkin_id IS NULL) FROM incident'), '5',
    'the children guard works after recovery');
is($node->safe_psql('postgres',
    q{SELECT string_agg(event_type || ':' || occurrences, ',' ORDER BY id) FROM integrity_guard.audit_log}),
    'counter_saturated:1,counter_saturated:1,children_nullified:5',
    'new incidents are recorded after recovery');

# a clean restart keeps guards and incidents
$node->restart;
is($node->safe_psql('postgres', 'SELECT count(*) FROM integrity_guard.guards'), '2',
    'guards survive a restart');
is($node->safe_psql('postgres', 'SELECT count(*) FROM integrity_guard.audit_log'), '3',
    'incidents survive a restart');
is($node->safe_psql('postgres', q{SELECT value FROM integrity_guard.status() WHERE name = 'preloaded'}),
    'true', 'the library is preloaded after the restart');

$node->stop;
done_testing();
