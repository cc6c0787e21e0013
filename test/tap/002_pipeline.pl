# The durable audit pipeline (preloaded): incidents that survive rollback,
# the background writer, error capture, cumulative stats across a restart,
# queue overflow, several databases, a crash, visibility and privileges.
# And the same extension without preload: transactional, with a NOTICE.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('pipeline');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '200ms'
restart_after_crash = on
});
$node->start;

for my $db ('app', 'other', 'plain') {
    $node->safe_psql('postgres', "CREATE DATABASE $db");
}
for my $db ('app', 'other') {
    $node->safe_psql($db, q{
        CREATE EXTENSION pg_integrity_guard;
        CREATE TABLE conference (id int PRIMARY KEY, app text);
        SELECT integrity_guard.guard_duplicates('conference');
        CREATE TABLE grp (id int PRIMARY KEY, times_seen int NOT NULL);
        SELECT integrity_guard.guard_counter('grp', ARRAY['times_seen']);
        INSERT INTO conference VALUES (1, 'a');
        INSERT INTO grp VALUES (1, 2147483647);
    });
}

# the raw count of rows, without the draining reading functions
sub audit_rows {
    my ($db, $where) = @_;
    return $node->safe_psql($db,
        "SELECT coalesce(sum(occurrences), 0) FROM integrity_guard.audit_log WHERE $where");
}

# -- an attempt whose transaction rolled back, written by the worker alone
my ($ret, $out, $err) = $node->psql('app', q{
    BEGIN;
    INSERT INTO conference VALUES (2, 'b');
    INSERT INTO conference VALUES (1, 'again');
    COMMIT;
});
like($err, qr/duplicate key value violates unique constraint "conference_pkey"/,
    'the client gets the server\'s own duplicate-key error');
ok($node->poll_query_until('app',
    q{SELECT count(*) = 1 FROM integrity_guard.audit_log WHERE event_type = 'duplicate_key'}),
    'the worker writes the attempt of a rolled-back transaction with no reader asking');
is(audit_rows('app', q{event_type = 'duplicate_key' AND id IN
    (SELECT id FROM integrity_guard.audit_keys WHERE key_values->>'key' = '(id)=(1)')}), '1',
    'an attempt rejected by guard_unique is counted once, not again by the error hook');
is($node->safe_psql('app', 'SELECT count(*) FROM conference'), '1',
    'the rolled-back transaction left no row');

# -- error capture from a table without any guard, and without a table
$node->psql('app', q{
    CREATE TABLE p (id int PRIMARY KEY);
    CREATE TABLE c (pid int REFERENCES p);
});
$node->psql('app', 'INSERT INTO c VALUES (42)');
$node->psql('app', 'SELECT 2147483647 + 1');
$node->psql('app', q{SELECT tstzrange('2024-02-01', '2024-01-01')});
is($node->safe_psql('app', q{
    SELECT string_agg(event_type || ':' || coalesce(table_name, '-') || ':' || coalesce(target, '-'), ',' ORDER BY event_type)
    FROM integrity_guard.events() WHERE event_type <> 'duplicate_key'}),
    'data_exception:-:-,foreign_key_violation:c:c_pid_fkey,numeric_out_of_range:-:-',
    'captured errors carry the table and constraint of the error, reading drains first');
is($node->safe_psql('app', q{
    SELECT (detail->>'sqlstate') || ' ' || (detail->>'statement')
    FROM integrity_guard.events() WHERE event_type = 'numeric_out_of_range'}),
    '22003 SELECT 2147483647 + 1', 'an error without a table keeps its SQLSTATE and statement');

# -- capture_errors: its own list, classes, whole characters, bad input
$node->safe_psql('app', q{
    CREATE TABLE checked (n int CHECK (n > 0));
    CREATE TABLE short (s varchar(1));
});
$node->psql('app', q{SET integrity_guard.capture_errors = 'check_violation, 22';
    INSERT INTO checked VALUES (0)});
$node->psql('app', q{SET integrity_guard.capture_errors = 'check_violation, 22';
    INSERT INTO short VALUES ('} . ('é' x 200) . q{')});
$node->psql('app', q{SET integrity_guard.capture_errors = 'check_violation';
    SELECT 2147483647 * 3});
is($node->safe_psql('app', q{
    SELECT string_agg(event_type || ':' || coalesce(table_name, '-') || ':' || (detail->>'sqlstate'), ',' ORDER BY event_type)
    FROM integrity_guard.events() WHERE event_type IN ('check_violation', 'data_exception') AND detail->>'sqlstate' <> '22000'}),
    'check_violation:checked:23514,data_exception:-:22001',
    'a listed condition names its events; a class (22) covers its codes');
is($node->safe_psql('app', q{
    SELECT octet_length(detail->>'statement') <= 256 AND detail->>'statement' LIKE 'INSERT INTO short VALUES (''éé%'
    FROM integrity_guard.events() WHERE detail->>'sqlstate' = '22001'}),
    't', 'a long multibyte statement is cut at a character boundary into valid JSON');
is($node->safe_psql('app', q{
    SELECT count(*) FROM integrity_guard.events(NULL, NULL, 'numeric_out_of_range')}),
    '1', 'an error not in the session\'s list is not captured');
($ret, $out, $err) = $node->psql('app', q{SET integrity_guard.capture_errors = 'unique_violation, no_such_error'});
like($err, qr/invalid value for parameter "integrity_guard.capture_errors".*"no_such_error" is not an error condition name.*HINT:  Use names such as unique_violation/s,
    'an unknown condition is refused, with the accepted forms in the hint');

# -- a hot saturated counter from several sessions: one incident per flush
my @bg = map { $node->background_psql('app') } 1 .. 4;
for my $i (1 .. 50) {
    $_->query_safe('UPDATE grp SET times_seen = times_seen + 1 WHERE id = 1') for @bg;
}
$_->quit for @bg;
is($node->safe_psql('app', q{
    SELECT sum(occurrences) FROM integrity_guard.events(NULL, 'grp', 'counter_saturated')}),
    '200', '200 saturations from 4 sessions are all counted');
cmp_ok($node->safe_psql('app', q{
    SELECT count(*) FROM integrity_guard.events() WHERE event_type = 'counter_saturated'}),
    '<', 200, 'and aggregated into fewer incident rows than events');

# -- two databases, each with its own events; one without the extension
$node->psql('other', q{INSERT INTO conference VALUES (1, 'other')});
$node->psql('plain', 'SELECT 2147483647 * 2');
ok($node->poll_query_until('other',
    q{SELECT count(*) = 1 FROM integrity_guard.audit_log}),
    'the other database gets its own event');
is($node->safe_psql('other', q{SELECT key_values->>'key' FROM integrity_guard.audit_keys}),
    '(id)=(1)', 'and only its own');
is(audit_rows('app', q{event_type = 'duplicate_key'}), '1', 'no event of it reached the first database');
ok($node->poll_query_until('app', q{
    SELECT occurrences = 1 FROM integrity_guard.stats
    WHERE database_name = 'plain' AND event_type = 'numeric_out_of_range'}),
    'a database without the extension only counts in the stats');
ok($node->poll_query_until('app', q{
    SELECT value::int >= 1 FROM integrity_guard.status() WHERE name = 'events_not_written'}),
    'and status() reports its events as not written');

# -- a reader never waits for a flush job, never writes, never deadlocks
my $blocker = $node->background_psql('other');
$blocker->query_safe('BEGIN; LOCK TABLE integrity_guard.audit_log IN SHARE MODE');
$node->psql('other', q{INSERT INTO conference VALUES (1, 'race')});
is($node->safe_psql('other', q{
    SELECT sum(occurrences) FROM integrity_guard.events(NULL, 'conference', 'duplicate_key')}),
    '2', 'while no job can write, a reader sees the new attempt in the queue');
is($blocker->query_safe(q{
    SELECT sum(occurrences) FROM integrity_guard.events(NULL, 'conference', 'duplicate_key')}),
    '2', 'and so does the session holding the lock on the audit table, without a deadlock');
ok($node->poll_query_until('other', q{
    SELECT value::int > 0 FROM integrity_guard.status() WHERE name = 'flush_failures'}),
    'the blocked jobs count as failures');
$blocker->query_safe('COMMIT');
$blocker->quit;
ok($node->poll_query_until('other', q{
    SELECT sum(occurrences) = 2 FROM integrity_guard.audit_log
    WHERE id IN (SELECT id FROM integrity_guard.audit_keys WHERE key_values->>'key' = '(id)=(1)')}),
    'the kept attempt is written once the lock is gone');
is($node->safe_psql('other', q{
    SELECT sum(occurrences) FROM integrity_guard.events(NULL, 'conference', 'duplicate_key')}),
    '2', 'and shown once, not twice');

# -- visibility and privileges
$node->safe_psql('app', q{
    CREATE ROLE outsider LOGIN;
    CREATE TABLE visible (id int);
    GRANT SELECT ON visible TO outsider;
});
is($node->safe_psql('app', q{
    SET ROLE outsider;
    SELECT count(*) FROM integrity_guard.audit_log WHERE table_name = 'conference'}),
    '0', 'a role without SELECT on a table sees none of its audit rows');
is($node->safe_psql('app', q{
    SET ROLE outsider;
    SELECT count(*) FROM integrity_guard.events(NULL, NULL, 'duplicate_key')}),
    '0', 'nor through events()');
is($node->safe_psql('app', q{
    SET ROLE outsider;
    SELECT count(*) FROM integrity_guard.events() WHERE table_name IS NULL}),
    '0', 'nor captured errors without a table, whose statement text only privileged roles see');
is($node->safe_psql('app', q{SET ROLE outsider; SELECT count(*) FROM integrity_guard.stats}),
    '0', 'nor its stats');
($ret, $out, $err) = $node->psql('app', q{SET ROLE outsider;
    INSERT INTO integrity_guard.audit_log (event_type, first_seen, last_seen) VALUES ('forged', now(), now())});
like($err, qr/permission denied/, 'it cannot write the audit table');
($ret, $out, $err) = $node->psql('app', q{SET ROLE outsider; SELECT integrity_guard.purge('0')});
like($err, qr/permission denied/, 'it cannot purge');
($ret, $out, $err) = $node->psql('app', q{SET ROLE outsider; SELECT integrity_guard._pipeline_register()});
like($err, qr/permission denied/, 'nor call the internal pipeline functions that change state');
($ret, $out, $err) = $node->psql('app', q{SET ROLE outsider; SELECT integrity_guard.stats_reset()});
like($err, qr/permission denied to reset/, 'it cannot reset the stats');
is($node->safe_psql('app', q{GRANT pg_read_all_stats TO outsider; SET ROLE outsider;
    SELECT count(*) > 0 FROM integrity_guard.stats WHERE database_name = 'plain'}),
    't', 'pg_read_all_stats sees every database\'s stats');

# -- a clean restart keeps the stats
my $before = $node->safe_psql('app',
    q{SELECT string_agg(database_name || '/' || event_type || '=' || occurrences, ',' ORDER BY 1) FROM integrity_guard.stats});
$node->restart;
is($node->safe_psql('app',
    q{SELECT string_agg(database_name || '/' || event_type || '=' || occurrences, ',' ORDER BY 1) FROM integrity_guard.stats}),
    $before, 'a clean restart keeps the stats');
is($node->safe_psql('app', q{SELECT integrity_guard.stats_reset() > now() - interval '1 minute'}), 't',
    'the owner can reset the stats');
is($node->safe_psql('app', 'SELECT count(*) FROM integrity_guard.stats'), '0',
    'stats_reset() forgets every counter');

# -- a backend killed in the middle: consistent audit, working extension
# A session holding off the flush jobs makes the moment of the crash exact:
# nothing is written after $committed is read, and the queue is lost.
my $holder = $node->background_psql('app');
$holder->query_safe('BEGIN; LOCK TABLE integrity_guard.audit_log IN SHARE MODE');
my $committed = audit_rows('app', 'true');
my $victim = $node->background_psql('app');
$victim->query_safe('BEGIN');
$victim->query_safe('UPDATE grp SET times_seen = times_seen + 1');
my $pid = $victim->query_safe('SELECT pg_backend_pid()');
my $log_offset = -s $node->logfile;
kill 'KILL', $pid;
eval { $victim->quit };
eval { $holder->quit };
# wait for the crash restart itself: a connection could slip in before it
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
ok($node->poll_query_until('app', 'SELECT true'), 'the server recovers from the killed backend');
is(audit_rows('app', 'true'), $committed,
    'the audit table holds exactly what was committed before the crash');
is($node->safe_psql('app', q{SET enable_seqscan = off; SELECT count(*) FROM integrity_guard.audit_log WHERE id > 0}),
    $node->safe_psql('app', q{SELECT count(*) FROM integrity_guard.audit_log}),
    'its index agrees with the table');
my $attempts = $node->safe_psql('app',
    q{SELECT count(*) FROM integrity_guard.audit_log WHERE event_type = 'duplicate_key'});
$node->psql('app', q{INSERT INTO conference VALUES (1, 'after the crash')});
ok($node->poll_query_until('app', qq{
    SELECT count(*) = $attempts + 1 FROM integrity_guard.audit_log WHERE event_type = 'duplicate_key'}),
    'the worker writes new attempts after recovery');
$node->stop;

# -- a full queue counts drops and never fails the statement
my $small = PostgreSQL::Test::Cluster->new('small_queue');
$small->init;
$small->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.queue_size = 16
integrity_guard.flush_interval = '1h'
max_prepared_transactions = 2
});
$small->start;
$small->safe_psql('postgres', q{
    CREATE EXTENSION pg_integrity_guard;
    CREATE TABLE t (id int PRIMARY KEY);
    SELECT integrity_guard.guard_duplicates('t', 'skip');
    INSERT INTO t SELECT generate_series(1, 40);
});
# 40 statements, each its own incident (distinct application names):
# attempts on one table within a flush window would be one incident.
($ret, $out, $err) = $small->psql('postgres', join('', map {
    "SET application_name = 'client $_'; INSERT INTO t VALUES ($_);\n" } 1 .. 40)
    . 'SELECT count(*) FROM t');
is($out, '40', 'statements go on when the queue is full');
is($small->safe_psql('postgres',
    q{SELECT value FROM integrity_guard.status() WHERE name = 'queue_used'}), '16',
    'the queue holds queue_size incidents');
is($small->safe_psql('postgres',
    q{SELECT value FROM integrity_guard.status() WHERE name = 'queue_dropped'}), '24',
    'the rest are counted as dropped');
is($small->safe_psql('postgres',
    q{SELECT dropped FROM integrity_guard.queue_usage WHERE role_name = 'postgres'}), '24',
    'per database and role');
is($small->safe_psql('postgres',
    q{SELECT sum(occurrences) FROM integrity_guard.stats WHERE event_type = 'duplicate_key'}), '40',
    'the stats count every attempt');
is($small->safe_psql('postgres', q{
    BEGIN;
    SELECT count(*) FROM integrity_guard.events();
    PREPARE TRANSACTION 'reader';
    COMMIT PREPARED 'reader'}), '16',
    'a transaction that read the audit can be prepared: readers write nothing');
is($small->safe_psql('postgres', q{
    BEGIN;
    SELECT count(*) FROM integrity_guard.events();
    ROLLBACK}), '16', 'a reader that rolls back');
is($small->safe_psql('postgres', q{SELECT value FROM integrity_guard.status() WHERE name = 'queue_used'}),
    '16', 'leaves the queue as it was');
$small->stop;

# -- without preload: transactional, and CREATE EXTENSION says so
my $plain = PostgreSQL::Test::Cluster->new('no_preload');
$plain->init;
$plain->start;
($ret, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION pg_integrity_guard');
like($err, qr/NOTICE:  pg_integrity_guard is not in shared_preload_libraries/,
    'CREATE EXTENSION says what preloading adds');
is($plain->safe_psql('postgres',
    q{SELECT string_agg(value, ',' ORDER BY name) FROM integrity_guard.status()
      WHERE name IN ('audit_mode', 'lost_on_rollback', 'stats')}),
    'transactional,yes,off (needs shared_preload_libraries)', 'status() says what is degraded');
$plain->safe_psql('postgres', q{
    CREATE TABLE t (id int PRIMARY KEY);
    SELECT integrity_guard.guard_duplicates('t', 'skip');
    INSERT INTO t VALUES (1), (1);
});
is($plain->safe_psql('postgres', 'SELECT sum(occurrences) FROM integrity_guard.events()'), '1',
    'guards still audit in the transactional mode');
is($plain->safe_psql('postgres', 'SELECT count(*) FROM integrity_guard.stats'), '0',
    'the stats view is empty without shared memory');
($ret, $out, $err) = $plain->psql('postgres', 'SELECT integrity_guard.stats_reset()');
like($err, qr/integrity_guard statistics are not available.*HINT:  Add pg_integrity_guard to shared_preload_libraries/s,
    'stats_reset() without preload says how to get statistics');
$plain->stop;

done_testing();
