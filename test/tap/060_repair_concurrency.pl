# The repair procedures next to concurrent writers: fix_orphans and
# merge_duplicates, CALLed outside a transaction block, commit between
# batches, so a writer waits at most for one batch.  The control: the same
# call inside a transaction block (one batch) holds the writers until its
# COMMIT.  Writers are pgbench clients; their per-transaction latencies
# come from pgbench's log.  Also: the incidents take the durable pipeline.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('repair');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '200ms'
});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_integrity_guard;
    CREATE TABLE parent (id int PRIMARY KEY);
    INSERT INTO parent SELECT g FROM generate_series(1, 1000) g;
    CREATE TABLE child (id int PRIMARY KEY, parent_id int, hits int NOT NULL DEFAULT 0);
    CREATE INDEX ON child (parent_id);
    -- one child in four is an orphan (undeclared reference)
    INSERT INTO child SELECT g, CASE WHEN g % 4 = 0 THEN 5000 + g ELSE g % 1000 + 1 END
    FROM generate_series(1, 120000) g;
    SELECT integrity_guard.guard_children('parent', ARRAY['child(parent_id)']);

    -- seed 004: group g has conferences g (kept) and g + 2000
    CREATE TABLE conf (id int PRIMARY KEY, conference_id int NOT NULL, app_id int NOT NULL);
    INSERT INTO conf SELECT g, (g - 1) % 2000, 1 FROM generate_series(1, 4000) g;
    CREATE TABLE sess (id serial PRIMARY KEY,
                       conference_id int REFERENCES conf DEFERRABLE INITIALLY DEFERRED,
                       hits int NOT NULL DEFAULT 0);
    INSERT INTO sess (conference_id) SELECT g % 4000 + 1 FROM generate_series(1, 20000) g;
    CREATE TABLE summ (id serial PRIMARY KEY, conference_id int UNIQUE REFERENCES conf);
    INSERT INTO summ (conference_id) SELECT g FROM generate_series(1, 4000) g WHERE g % 3 = 0;
    CREATE TABLE link (conference_id int REFERENCES conf, participant int,
                       PRIMARY KEY (conference_id, participant));
    INSERT INTO link SELECT g, g % 7 FROM generate_series(1, 4000) g;
    INSERT INTO link SELECT g, 100 + g % 5 FROM generate_series(1, 4000) g;
});

my $dir = PostgreSQL::Test::Utils::tempdir;
my $pgbench = $node->config_data('--bindir') . '/pgbench';

# Runs writers (a pgbench script) for $seconds while $sql runs in psql;
# returns (seconds the psql call took, the writers' longest latency in
# seconds, transactions, psql stderr).
sub with_writers {
    my ($script, $seconds, $sql) = @_;
    my $file = "$dir/writers.sql";
    open my $fh, '>', $file or die;
    print $fh $script;
    close $fh;
    unlink glob("$dir/wlog*");
    my ($out, $err) = ('', '');
    my $h = IPC::Run::start([$pgbench, '-n', '-c', '2', '-T', $seconds, '-f', $file,
                             '-l', '--log-prefix', "$dir/wlog",
                             '-h', $node->host, '-p', $node->port, 'postgres'],
                            '>', \$out, '2>', \$err);
    sleep 1;
    my $t0 = time;
    my ($ret, $pout, $perr) = $node->psql('postgres', $sql);
    my $took = time - $t0;
    $h->finish;
    my ($max, $n) = (0, 0);
    for my $log (glob("$dir/wlog*")) {
        open my $lf, '<', $log or die;
        while (<$lf>) {
            my @f = split;
            $n++;
            $max = $f[2] if $f[2] > $max;
        }
    }
    diag("psql took $took s, writers: $n transactions, longest $max us; $perr");
    return ($took, $max / 1e6, $n, $perr, $err);
}

# -- fix_orphans, batched: writers touch random children, orphans included
my $orphan_writer = "\\set id random(1, 120000)\nUPDATE child SET hits = hits + 1 WHERE id = :id;\n";
my ($took, $longest, $n, $perr) = with_writers($orphan_writer, 8,
    q{CALL integrity_guard.fix_orphans('child', '{parent_id}', 'parent', batch_rows => 500)});
like($perr, qr/batch 60: 30000 rows done, 0 left/, 'fix_orphans ran 60 batches');
ok($n > 0, 'writers made progress');
cmp_ok($longest, '<', $took / 2,
    'no writer waited longer than a batch (far less than the whole call)');
is($node->safe_psql('postgres', q{
    SELECT count(*) FROM integrity_guard.orphans('child', '{parent_id}', 'parent')}), '0',
    'no orphan left');
is($node->safe_psql('postgres', 'SELECT count(*), sum(hits) > 0 FROM child'), '120000|t',
    'no child row lost, the writers\' updates kept');
ok($node->poll_query_until('postgres', q{
    SELECT occurrences = 30000 FROM integrity_guard.audit_log WHERE event_type = 'orphans_fixed'}),
    'one orphans_fixed incident with the count, through the durable pipeline');

# -- the control: one batch inside a transaction block holds the writers
$node->safe_psql('postgres', 'UPDATE child SET parent_id = 9000 + id WHERE id % 4 = 0');
($took, $longest, $n, $perr) = with_writers($orphan_writer, 6, q{
    BEGIN;
    CALL integrity_guard.fix_orphans('child', '{parent_id}', 'parent', batch_rows => 500);
    SELECT pg_sleep(2);
    COMMIT;});
like($perr, qr/called inside a transaction block, running as one batch/, 'the one batch is announced');
cmp_ok($longest, '>', 1.5, 'a single batch holds a writer until its COMMIT (the test can tell)');

# -- merge_duplicates, batched: writers touch sessions and add new ones to
# the conferences that are kept
my $merge_writer = "\\set id random(1, 20000)\n\\set c random(1, 2000)\n"
    . "UPDATE sess SET hits = hits + 1 WHERE id = :id;\n"
    . "INSERT INTO sess (conference_id) VALUES (:c);\n";
my $sessions_before = $node->safe_psql('postgres', 'SELECT count(*) FROM sess');
($took, $longest, $n, $perr) = with_writers($merge_writer, 8,
    q{CALL integrity_guard.merge_duplicates('conf', '{conference_id,app_id}', batch_groups => 100)});
like($perr, qr/batch 20: 2000 groups done, 0 left/, 'merge_duplicates ran 20 batches');
ok($n > 0, 'writers made progress');
cmp_ok($longest, '<', $took / 2, 'no writer waited longer than a batch');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sess') - $n, $sessions_before,
    'no session lost: those before plus those the writers added');
$node->safe_psql('postgres', 'CREATE UNIQUE INDEX conf_key ON conf (conference_id, app_id)');
pass('the UNIQUE index can be created');
is($node->safe_psql('postgres', q{
    SELECT count(*) FROM sess s WHERE NOT EXISTS (SELECT 1 FROM conf c WHERE c.id = s.conference_id)}),
    '0', 'every session points at a kept conference');
ok($node->poll_query_until('postgres', q{
    SELECT occurrences = 2000 FROM integrity_guard.audit_log WHERE event_type = 'duplicates_merged'}),
    'one duplicates_merged incident');

$node->stop;
done_testing();
