# The durable audit pipeline under faults and load (issue 14): a read-only
# database, a reader holding a lock on the audit table, a reader that rolls
# back, one database stalled while another keeps every incident, a flood of
# distinct keys by one role next to another role, a storm over 30 databases
# next to parallel queries, the stats eviction, the retention, and the
# correctness details of capture (zeroed keys, the guard_unique flag,
# log_min_messages), and who sees which counts (issue 13 point 7).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('faults');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '200ms'
integrity_guard.queue_size = 64
integrity_guard.max_stats = 100
max_worker_processes = 8
max_parallel_workers = 6
max_parallel_workers_per_gather = 4
});
$node->start;

# a database with the extension and a table guarded against duplicates
sub make_db {
    my ($db, $mode) = @_;
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    $node->safe_psql($db, qq{
        CREATE EXTENSION pg_integrity_guard;
        CREATE TABLE t (id int PRIMARY KEY);
        INSERT INTO t VALUES (1);
    });
}

# statements each failing with a captured error, one incident each
# (distinct application names keep them apart)
sub errors {
    my ($db, $n, $prefix) = @_;
    $node->psql($db, join('', map {
        "SET application_name = '$prefix $_'; SELECT 2147483647 + $_;\n" } 1 .. $n),
        on_error_stop => 0);
}

# -- 1. a read-only database: the job sets its own transaction characteristics
make_db('ro');
$node->safe_psql('postgres', 'ALTER DATABASE ro SET default_transaction_read_only = on');
$node->psql('ro', 'SELECT 2147483647 + 1') for 1 .. 5;
ok($node->poll_query_until('ro', q{
    SELECT coalesce(sum(occurrences), 0) = 5 FROM integrity_guard.audit_log
    WHERE event_type = 'numeric_out_of_range'}),
    'a database with default_transaction_read_only gets its incidents written');
is($node->safe_psql('ro', q{SELECT value FROM integrity_guard.status() WHERE name = 'flush_failures'}),
    '0', 'without a single failed job');

# -- 2. and 3. a reader holding a lock on the audit table; a reader rolling back
make_db('app');
my $reader = $node->background_psql('app');
$reader->query_safe('BEGIN; LOCK TABLE integrity_guard.audit_log IN SHARE MODE');
$node->psql('app', 'INSERT INTO t VALUES (1)') for 1 .. 3;
# a flush job waits for the reader's lock: a reader that waited for the job
# in turn would deadlock
ok($node->poll_query_until('app', q{
    SELECT count(*) > 0 FROM pg_stat_activity
    WHERE backend_type = 'pg_integrity_guard flush' AND wait_event_type = 'Lock'}),
    'a flush job waits for the lock the reader holds');
is($reader->query_safe(q{
    SELECT sum(occurrences) FROM integrity_guard.events(NULL, 't', 'duplicate_key')}),
    '3', 'a reader whose transaction locks the audit table sees the queued incidents, no deadlock');
ok($node->poll_query_until('app', q{
    SELECT value::int > 0 FROM integrity_guard.status() WHERE name = 'flush_failures'}),
    'the flush jobs it blocks fail and are counted');
like($node->safe_psql('app', q{SELECT detail FROM integrity_guard.status() WHERE name = 'flush_failures'}),
    qr/incidents kept and retried.*lock timeout/, 'status() says why, and that nothing is lost');
is($reader->query_safe(q{
    SELECT sum(occurrences) FROM integrity_guard.events(NULL, 't', 'duplicate_key')}),
    '3', 'the incidents are still there after the failures');
$reader->query_safe('ROLLBACK');
$node->safe_psql('app', q{
    BEGIN;
    SELECT count(*) FROM integrity_guard.events();
    SELECT * FROM integrity_guard.summary();
    ROLLBACK});
is($node->safe_psql('app', q{
    SELECT sum(occurrences) FROM integrity_guard.events(NULL, 't', 'duplicate_key')}),
    '3', 'a reader that rolls back loses nothing');
ok($node->poll_query_until('app', q{
    SELECT coalesce(sum(occurrences), 0) = 3 FROM integrity_guard.audit_log WHERE event_type = 'duplicate_key'}),
    'once the lock is gone, the job writes them, once');
ok($node->poll_query_until('app', q{
    SELECT value = '0' FROM integrity_guard.status() WHERE name = 'queue_used'}),
    'and the queue empties');

# -- 4. one database stalled, another keeps every incident (queue_size 64)
make_db('stall');
my $staller = $node->background_psql('stall');
$staller->query_safe('BEGIN; LOCK TABLE integrity_guard.audit_log IN SHARE MODE');
errors('stall', 150, 'stalled');
is($node->safe_psql('stall', q{SELECT value FROM integrity_guard.status() WHERE name = 'queue_used'}),
    '64', 'the stalled database filled the queue while alone');
ok($node->poll_query_until('stall', q{
    SELECT value::int > 0 FROM integrity_guard.status() WHERE name = 'flush_failures'}),
    'its flush jobs fail');
errors('app', 50, 'healthy');
ok($node->poll_query_until('app', q{
    SELECT count(*) = 50 FROM integrity_guard.audit_log WHERE application_name LIKE 'healthy %'}),
    'the healthy database keeps all 50 of its incidents');
cmp_ok($node->safe_psql('stall', q{
    SELECT dropped FROM integrity_guard.queue_usage WHERE role_name = 'postgres' AND database_name = 'stall'}), '>=', 86,
    'the stalled database loses only its own overflow, counted for it');
is($node->safe_psql('app', q{
    SELECT dropped FROM integrity_guard.queue_usage WHERE role_name = 'postgres' AND database_name = 'app'}), '0',
    'and the healthy one none');
$staller->query_safe('COMMIT');
$staller->quit;
ok($node->poll_query_until('stall', q{
    SELECT count(*) > 0 FROM integrity_guard.audit_log WHERE application_name LIKE 'stalled %'}),
    'the stalled database gets what it kept once it recovers');

# -- 5. a flood of distinct keys by one role while another role's incidents land
$node->safe_psql('app', q{
    CREATE ROLE flooder LOGIN;
    CREATE ROLE quiet LOGIN;
    CREATE TABLE flood (id int PRIMARY KEY);
    INSERT INTO flood SELECT generate_series(1, 100000);
    SELECT integrity_guard.guard_duplicates('flood', 'skip');
    GRANT SELECT, INSERT ON flood TO flooder;
    CREATE TABLE own (id int PRIMARY KEY);
    GRANT SELECT, INSERT ON own TO quiet;
    INSERT INTO own VALUES (0);
});
my $rows_before = $node->safe_psql('app', 'SELECT count(*) FROM integrity_guard.audit_log');
my $script = $node->basedir . '/flood.sql';
PostgreSQL::Test::Utils::append_to_file($script,
    "\\set k random(1, 100000)\nINSERT INTO flood VALUES (:k);\n");
my $start = time;
my $bench = IPC::Run::start(
    [ 'pgbench', '-n', '-T', '20', '-c', '2', '-f', $script, '-U', 'flooder',
      '-h', $node->host, '-p', $node->port, 'app' ],
    '>', \my $bench_out, '2>', \my $bench_err);
sleep 3;
for my $i (1 .. 10) {
    $node->psql('app', "SET ROLE quiet; INSERT INTO own VALUES (0)");
    sleep 1;
}
$bench->finish;
my ($attempts) = $bench_out =~ /number of transactions actually processed: (\d+)/;
note "flood: $attempts attempts in " . sprintf('%.1f', time - $start) . ' s';
cmp_ok($attempts, '>', 1000, 'the flood made thousands of distinct duplicate attempts');
ok($node->poll_query_until('app', q{
    SELECT coalesce(sum(occurrences), 0) = 10 FROM integrity_guard.audit_log
    WHERE role_name = 'quiet' AND table_name = 'own'}),
    'all 10 incidents of the other role land');
ok($node->poll_query_until('app', qq{
    SELECT coalesce(sum(occurrences), 0) = $attempts FROM integrity_guard.audit_log
    WHERE role_name = 'flooder'}),
    'every flood attempt is counted');
my $grown = $node->safe_psql('app', 'SELECT count(*) FROM integrity_guard.audit_log') - $rows_before;
note "audit rows added by the flood: $grown";
cmp_ok($grown, '<=', 300, 'the audit table grew by a few hundred rows at most, not one per key');
like($node->safe_psql('app', q{
    SELECT a.detail || coalesce(k.key_values, '{}') FROM integrity_guard.audit_log a
    LEFT JOIN integrity_guard.audit_keys k USING (id)
    WHERE a.role_name = 'flooder' ORDER BY a.occurrences DESC LIMIT 1}),
    qr/"key": "\(id\)=\(\d+\)".*"samples": \[\{.*"key": "\(id\)=\(\d+\)"/,
    'an aggregated row keeps the first key and a bounded sample of others');

# -- 6. a storm over 30 databases next to parallel queries
$node->safe_psql('postgres', q{
    CREATE DATABASE tmpl;
});
$node->safe_psql('tmpl', 'CREATE EXTENSION pg_integrity_guard');
$node->safe_psql('postgres', "CREATE DATABASE storm$_ TEMPLATE tmpl") for 1 .. 30;
$node->safe_psql('postgres', q{
    CREATE TABLE big AS SELECT g AS n FROM generate_series(1, 300000) g;
    ANALYZE big;
});
my @storms = map {
    IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr("storm$_"), '-c', 'SELECT 2147483647 + 1' ],
        '>', \my $o, '2>', \my $e)
} 1 .. 30;
my ($short, $max_jobs) = (0, 0);
for (1 .. 15) {
    my $plan = $node->safe_psql('postgres', q{
        SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
        EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM big});
    my ($planned) = $plan =~ /Workers Planned: (\d+)/;
    my ($launched) = $plan =~ /Workers Launched: (\d+)/;
    $short++ if !defined $launched || $launched < $planned;
    my $jobs = $node->safe_psql('postgres', q{
        SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_integrity_guard flush'});
    $max_jobs = $jobs if $jobs > $max_jobs;
}
$_->finish for @storms;
is($short, 0, 'every parallel query got all its planned workers during the storm');
cmp_ok($max_jobs, '<=', 1, 'never more flush jobs than integrity_guard.max_flush_jobs');
my $all = 1;
for my $i (1 .. 30) {
    $all &&= $node->poll_query_until("storm$i", q{
        SELECT count(*) = 1 FROM integrity_guard.audit_log WHERE event_type = 'numeric_out_of_range'});
}
ok($all, 'every one of the 30 databases gets its incident, served in turn');

# -- a database refusing connections keeps its incidents; a dropped one's are
# discarded and counted
make_db('doomed');
my $locker = $node->background_psql('doomed');
$locker->query_safe('BEGIN; LOCK TABLE integrity_guard.audit_log IN SHARE MODE');
errors('doomed', 4, 'doomed');
$node->safe_psql('postgres', 'ALTER DATABASE doomed ALLOW_CONNECTIONS false');
# a job connected before that could still write once the lock is gone
$node->poll_query_until('postgres', q{
    SELECT count(*) = 0 FROM pg_stat_activity
    WHERE datname = 'doomed' AND backend_type = 'pg_integrity_guard flush'});
$locker->quit;
sleep 2;
is($node->safe_psql('app', q{
    SELECT queued FROM integrity_guard.queue_usage WHERE database_name = 'doomed'}),
    '4', 'a database whose jobs cannot connect keeps its queued incidents');
my $lost_before = $node->safe_psql('app',
    q{SELECT value FROM integrity_guard.status() WHERE name = 'events_not_written'});
$node->safe_psql('postgres', 'DROP DATABASE doomed');
ok($node->poll_query_until('app', qq{
    SELECT value::int = $lost_before + 4 FROM integrity_guard.status() WHERE name = 'events_not_written'}),
    'once it is dropped, they are discarded and counted in events_not_written');

# -- a dropped database is noticed from the shared catalog: no flush job
# tries to connect to it (issue 27: a test runner's dropped databases)
make_db('gone');
my $holder = $node->background_psql('gone');
$holder->query_safe('BEGIN; LOCK TABLE integrity_guard.audit_log IN SHARE MODE');
errors('gone', 3, 'gone');
$lost_before = $node->safe_psql('app',
    q{SELECT value FROM integrity_guard.status() WHERE name = 'events_not_written'});
my $log_from = -s $node->logfile;
$node->safe_psql('postgres', 'DROP DATABASE gone WITH (FORCE)');
eval { $holder->quit };
ok($node->poll_query_until('app', qq{
    SELECT value::int = $lost_before + 3 FROM integrity_guard.status() WHERE name = 'events_not_written'}),
    'a dropped database\'s queued incidents are discarded and counted');
sleep 3;    # several launcher rounds
# A job the launcher started just before DROP DATABASE committed waits for
# the drop and then finds no database: the server's own race, at most once.
# Retrying a database known to be gone would show here again and again.
my @tries = slurp_file($node->logfile, $log_from) =~ /database \d+ does not exist/g;
cmp_ok(scalar(@tries), '<=', 1,
    'no flush job tries to connect to the dropped database once it is gone');
# its statistics go too (issue 23, point 6): no row with an empty database
# name, and a database created again under the name never gives two rows
# with the same labels
ok($node->poll_query_until('app', q{
    SELECT count(*) = 0 FROM integrity_guard.stats
     WHERE database_name IS NULL OR database_name = '' OR database_name = 'gone'}),
    'a dropped database\'s statistics are forgotten');
make_db('gone');
errors('gone', 3, 'gone');
ok($node->poll_query_until('app', q{
    SELECT count(*) > 0 FROM integrity_guard.stats WHERE database_name = 'gone'}),
    'the database created again under the name counts anew');
is($node->safe_psql('app', q{
    SELECT count(*) - count(DISTINCT (database_name, schema_name, table_name, event_type, target))
      FROM integrity_guard.stats}), '0', 'and no two statistics rows have the same labels');

# -- the stats hash evicts the least-used entries (max_stats 100)
$node->safe_psql('app', join('', map { "CREATE TABLE s$_ (id int PRIMARY KEY); INSERT INTO s$_ VALUES (1);\n" } 1 .. 120));
$node->psql('app', 'INSERT INTO t VALUES (1)') for 1 .. 20;    # a well-used entry
$node->psql('app', join('', map { "INSERT INTO s$_ VALUES (1);\n" } 1 .. 120), on_error_stop => 0);
cmp_ok($node->safe_psql('app', q{SELECT value::int FROM integrity_guard.status() WHERE name = 'stats_dropped'}),
    '>', 0, 'a full stats table evicts entries instead of refusing new ones');
is($node->safe_psql('app', q{SELECT count(*) FROM integrity_guard.stats WHERE table_name = 's120'}), '1',
    'the newest table is counted');
is($node->safe_psql('app', q{SELECT occurrences >= 23 FROM integrity_guard.stats WHERE table_name = 't' AND database_name = 'app'}),
    't', 'and the well-used entry was kept');

# -- retention: flush jobs delete rows last seen longer ago than the setting
$node->safe_psql('app', q{
    INSERT INTO integrity_guard.audit_log (event_type, occurrences, first_seen, last_seen)
    VALUES ('ancient', 1, now() - interval '40 days', now() - interval '40 days')});
$node->psql('app', 'INSERT INTO t VALUES (1)');
ok($node->poll_query_until('app', q{
    SELECT count(*) = 0 FROM integrity_guard.audit_log WHERE event_type = 'ancient'}),
    'rows older than integrity_guard.retention (30 days by default) are deleted by the jobs');

# -- 7. zeroed keys: a session's own capture list splits nothing
# (the audit table locked: all three stay in the queue, one entry or three)
# The queue first empties: the 120 incidents above are this role's, and
# while they fill its share a new one would be dropped.
$node->poll_query_until('app', q{
    SELECT value::int = 0 FROM integrity_guard.status() WHERE name = 'queue_used'});
my $hold = $node->background_psql('app');
$hold->query_safe('BEGIN; LOCK TABLE integrity_guard.audit_log IN SHARE MODE');
$node->psql('app', q{
    SET integrity_guard.capture_errors = 'check_violation, unique_violation';
    SET application_name = 'zeroed';
    INSERT INTO t VALUES (1);
    INSERT INTO t VALUES (1);
    INSERT INTO t VALUES (1);}, on_error_stop => 0);
is($node->safe_psql('app', q{
    SELECT count(*) || ' ' || sum(occurrences) FROM integrity_guard.events() WHERE application_name = 'zeroed'}),
    '1 3', 'three identical errors after SET capture_errors are one incident');
$hold->query_safe('ROLLBACK');
$hold->quit;

# -- 7. a guard error caught by a savepoint does not hide the next native 23505
$node->safe_psql('app', q{
    CREATE TABLE g (id int PRIMARY KEY);
    SELECT integrity_guard.guard_duplicates('g');
    INSERT INTO g VALUES (1);
    CREATE TABLE native (id int PRIMARY KEY);
    INSERT INTO native VALUES (1);
});
$node->psql('app', q{
    SET application_name = 'caught';
    DO $$ BEGIN INSERT INTO g VALUES (1); EXCEPTION WHEN unique_violation THEN NULL; END $$;
    INSERT INTO native VALUES (1);}, on_error_stop => 0);
is($node->safe_psql('app', q{
    SELECT count(*) FROM integrity_guard.events() WHERE application_name = 'caught' AND table_name = 'native'}),
    '1', 'a native duplicate after a caught guard error is captured');

# -- 8. capture needs errors to be logged
$node->safe_psql('postgres', q{ALTER SYSTEM SET log_min_messages = 'fatal'; SELECT pg_reload_conf()});
$node->poll_query_until('app', q{SELECT current_setting('log_min_messages') = 'fatal'});
like($node->safe_psql('app', q{SELECT value || ': ' || detail FROM integrity_guard.status() WHERE name = 'warning'}),
    qr/error capture sees nothing: log_min_messages = fatal is above error/,
    'status() warns that capture sees nothing when errors are not logged');
$node->psql('app', q{SET application_name = 'unlogged'; SELECT 2147483647 + 1});
is($node->safe_psql('app', q{
    SELECT count(*) FROM integrity_guard.events() WHERE application_name = 'unlogged'}),
    '0', 'and indeed an error the server does not log is not captured');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET log_min_messages; SELECT pg_reload_conf()});
$node->poll_query_until('app', q{SELECT current_setting('log_min_messages') = 'warning'});
is($node->safe_psql('app', q{SELECT count(*) FROM integrity_guard.status() WHERE name = 'warning'}),
    '0', 'no warning once errors are logged again');

# -- issue 13 point 7: who sees which counts, who resets what
$node->safe_psql('app', q{
    CREATE ROLE tenant LOGIN;
    CREATE ROLE app_owner LOGIN;
    GRANT SELECT, INSERT ON own TO tenant;
    UPDATE pg_extension SET extowner = 'app_owner'::regrole WHERE extname = 'pg_integrity_guard';
});
$node->psql('app', q{SET ROLE tenant; SET application_name = 'tenant'; INSERT INTO own VALUES (0)});
is($node->safe_psql('app', q{SET ROLE tenant;
    SELECT string_agg(role_name || '@' || database_name, ',') FROM integrity_guard.queue_usage}),
    'tenant@app', 'a role sees its own queue use, not other roles\' nor other databases\'');
is($node->safe_psql('app', q{SET ROLE tenant;
    SELECT count(*) FROM integrity_guard.events() WHERE application_name = 'tenant'}),
    '1', 'it sees its incident, written or still queued');
is($node->safe_psql('app', q{SET ROLE flooder;
    SELECT count(*) FROM integrity_guard.events() WHERE application_name = 'tenant'}),
    '0', 'a role that cannot read the table does not, written or still queued');
like($node->safe_psql('app', q{SET ROLE tenant;
    SELECT detail FROM integrity_guard.status() WHERE name = 'queue_used'}),
    qr/own roles in this database/, 'status() counts only its own roles in this database');
cmp_ok($node->safe_psql('app', q{SELECT count(DISTINCT database_name) FROM integrity_guard.queue_usage}),
    '>', 1, 'a superuser sees every database');
my $ro_stats = $node->safe_psql('ro', q{SELECT count(*) FROM integrity_guard.stats WHERE database_name = 'ro'});
cmp_ok($ro_stats, '>', 0, 'the read-only database has stats');
$node->safe_psql('app', q{SET ROLE app_owner; SELECT integrity_guard.stats_reset()});
is($node->safe_psql('app', q{SELECT count(*) FROM integrity_guard.stats WHERE database_name = 'app'}),
    '0', 'the extension owner resets this database\'s stats');
is($node->safe_psql('ro', q{SELECT count(*) FROM integrity_guard.stats WHERE database_name = 'ro'}), $ro_stats,
    'and not those of another database');
my ($ret, $out, $err) = $node->psql('app', q{SET ROLE tenant; SELECT integrity_guard.stats_reset()});
like($err, qr/permission denied to reset/, 'another role resets nothing');

$node->stop;
done_testing();
