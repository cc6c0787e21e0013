# Issue 23, point 1: an open transaction elsewhere does not pin the audit
# queue.  Written entries stay only while a snapshot of their own database
# might miss the rows (the readers of the pending copy); a transaction in
# another database, one idle in transaction at READ COMMITTED with an xid, and
# a prepared transaction hold none.  Counts reconcile: events sent = written
# + counted drops, and the queue empties.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('horizon');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '500ms'
integrity_guard.queue_size = 256
integrity_guard.capture_errors = '22003'
max_prepared_transactions = 2
});
$node->start;
for my $db ('app', 'elsewhere') {
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    $node->safe_psql($db, q{
        CREATE EXTENSION pg_integrity_guard;
        CREATE TABLE wide (id int PRIMARY KEY, c1 bigint, c2 bigint, c3 bigint);
        SELECT integrity_guard.guard_counter('wide', ARRAY['c1', 'c2', 'c3'], max_value => 10);
        INSERT INTO wide VALUES (1, 0, 0, 0);
    });
}

sub status {
    my ($name) = @_;
    return $node->safe_psql('app', "SELECT value FROM integrity_guard.status() WHERE name = '$name'");
}

# transactions that hold no snapshot of 'app': a long one in another
# database, an idle one with an xid here, a prepared one here
my $elsewhere = $node->background_psql('elsewhere');
$elsewhere->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$elsewhere->query_safe('SELECT txid_current(), count(*) FROM pg_class');
my $idle = $node->background_psql('app');
$idle->query_safe('BEGIN');
$idle->query_safe('SELECT txid_current()');
$node->safe_psql('app', q{
    BEGIN; CREATE TABLE scratch (n int); PREPARE TRANSACTION 'forgotten'});

# 600 distinct captured errors (each statement of its own shape: the
# column alias differs), in bursts below the queue's size, then repeats of
# 3 counter incidents
for my $burst (0 .. 5) {
    $node->psql('app', join('', map { "SELECT 2147483647 + 1 AS c" . ($burst * 100 + $_) . ";\n" } 1 .. 100),
        on_error_stop => 0);
    sleep 1;
}
for my $round (1 .. 4) {
    $node->safe_psql('app', 'UPDATE wide SET c1 = c1 + 100, c2 = c2 + 100, c3 = c3 + 100');
    sleep 1;
}
ok($node->poll_query_until('app', q{
    SELECT coalesce(sum(occurrences), 0) = 600 FROM integrity_guard.audit_log
     WHERE event_type = 'numeric_out_of_range'}),
    'every distinct incident is written while the other transactions stay open');
ok($node->poll_query_until('app', q{
    SELECT coalesce(sum(occurrences), 0) = 12 FROM integrity_guard.audit_log
     WHERE event_type = 'counter_saturated'}),
    'repeats reach the table within the flush interval');
is(status('queue_dropped'), '0', 'nothing was dropped');
ok($node->poll_query_until('app', q{
    SELECT value::int = 0 FROM integrity_guard.status() WHERE name = 'queue_used'}),
    'the queue empties: written entries free their place');

# errors that name no table are told apart by their statement's shape
# (issue 23, point 3): 2,000 statements that differ only in a constant are
# one incident per flush window, with a few texts as samples
$node->psql('app', join('', map { "SELECT 2147483647::int + $_;\n" } 1 .. 2000),
    on_error_stop => 0);
ok($node->poll_query_until('app', q{
    SELECT coalesce(sum(occurrences), 0) = 2000 FROM integrity_guard.audit_log
     WHERE detail->>'statement' LIKE 'SELECT 2147483647::int + %'}),
    '2,000 statements of one shape are all counted');
cmp_ok($node->safe_psql('app', q{
    SELECT count(*) FROM integrity_guard.audit_log
     WHERE detail->>'statement' LIKE 'SELECT 2147483647::int + %'}), '<', 50,
    'in fewer than 50 rows');
is($node->safe_psql('app', q{
    SELECT count(*) FROM integrity_guard.audit_log
     WHERE detail->>'statement' LIKE 'SELECT 2147483647 + 1 AS c%'}), '600',
    'while statements of different shapes stay apart');

# a continuous storm of one incident over several flush windows (issue 23,
# point 7): each window's row carries its own first event
$node->safe_psql('app', q{
    DO $$
    BEGIN
        FOR i IN 1 .. 30 LOOP
            UPDATE wide SET c1 = c1 + 100;
            COMMIT;
            PERFORM pg_sleep(0.1);
        END LOOP;
    END $$});
ok($node->poll_query_until('app', q{
    SELECT coalesce(sum(occurrences), 0) = 34 FROM integrity_guard.audit_log
     WHERE event_type = 'counter_saturated' AND target = 'c1'}),
    'the storm is written');
is($node->safe_psql('app', q{
    SELECT count(*) > 2 AND count(*) = count(DISTINCT first_seen)
           AND bool_and(first_seen <= last_seen)
      FROM integrity_guard.audit_log
     WHERE event_type = 'counter_saturated' AND target = 'c1'}), 't',
    'in several rows, each with its own first_seen');
is($node->safe_psql('app', q{
    SELECT count(*) FROM (
        SELECT first_seen, lag(last_seen) OVER (ORDER BY first_seen) AS prev_last
          FROM integrity_guard.audit_log
         WHERE event_type = 'counter_saturated' AND target = 'c1') w
     WHERE first_seen < prev_last}), '0',
    'and the windows do not overlap');

# a reader of this database with an old snapshot keeps the pending copy it
# may need: it sees each incident exactly once, in the table or pending
my $reader = $node->background_psql('app');
$reader->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$reader->query_safe('SELECT count(*) FROM integrity_guard.audit_log');
$node->psql('app', join('', map { "SELECT 2147483647 + 7000 AS r$_;\n" } 1 .. 20),
    on_error_stop => 0);
ok($node->poll_query_until('app', q{
    SELECT count(*) = 20 FROM integrity_guard.audit_log
     WHERE detail->>'statement' LIKE 'SELECT 2147483647 + 7000 AS r%'}),
    'the new incidents are written');
is($reader->query_safe(q{
    SELECT count(*) FROM integrity_guard.events()
     WHERE detail->>'statement' LIKE 'SELECT 2147483647 + 7000 AS r%'}), '20',
    'an older snapshot of this database still sees each of them once (pending copy kept)');
cmp_ok(status('queue_used'), '>', 0, 'and its entries wait for it');
$reader->query_safe('COMMIT');
ok($node->poll_query_until('app', q{
    SELECT value::int = 0 FROM integrity_guard.status() WHERE name = 'queue_used'}),
    'once it ends, they go');

$elsewhere->quit;
$idle->quit;
$reader->quit;
$node->safe_psql('app', q{ROLLBACK PREPARED 'forgotten'});

# an immediate stop while a job writes (issue 23, point 5): the shared
# queue is lost, but what the job held is counted as not written
$node->safe_psql('app', q{
    CREATE FUNCTION public.slow_audit() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$;
    CREATE TRIGGER slow BEFORE INSERT ON integrity_guard.audit_log
      FOR EACH ROW EXECUTE FUNCTION public.slow_audit()});
my $gate = $node->background_psql('app');
$gate->query_safe('BEGIN; LOCK TABLE integrity_guard.audit_log IN SHARE MODE');
$node->psql('app', join('', map { "SELECT 2147483647 + 1 AS z$_;\n" } 1 .. 40), on_error_stop => 0);
$gate->query_safe('COMMIT');
$gate->quit;
ok($node->poll_query_until('app', q{
    SELECT count(*) = 1 FROM pg_stat_activity
     WHERE backend_type = 'pg_integrity_guard flush' AND wait_event = 'PgSleep'}),
    'a job is writing (held in a slow trigger)');
$node->stop('immediate');
$node->start;
ok($node->poll_query_until('app', q{
    SELECT value::int = 40 FROM integrity_guard.status() WHERE name = 'events_not_written'}),
    'after an immediate stop, the events the job held are counted as not written');
ok($node->log_contains('40 incidents a flush job was writing when the server stopped were not written'),
    'and the server log says so');
$node->safe_psql('app', 'DROP TRIGGER slow ON integrity_guard.audit_log');
$node->stop;
done_testing();
