# guard_unique in mode=raise on a preloaded server that captures 23505:
# non-duplicate inserts are not probed (the server's own error is captured
# with table, constraint and key), a table seeing duplicates is probed so
# that at most 2% of rejected attempts leave a dead tuple, and every
# attempt is counted exactly once, by the hook or by the guard.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('unique_adaptive');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '200ms'
});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_integrity_guard;
    CREATE TABLE burst (id int PRIMARY KEY, v text);
    CREATE TABLE lone (id int PRIMARY KEY, v text);
    CREATE TABLE skipped (id int PRIMARY KEY, v text);
    CREATE TABLE nocapture (id int PRIMARY KEY, v text);
    SELECT integrity_guard.guard_duplicates('burst');
    SELECT integrity_guard.guard_duplicates('lone');
    SELECT integrity_guard.guard_duplicates('skipped', 'skip');
    SELECT integrity_guard.guard_duplicates('nocapture');
    INSERT INTO burst VALUES (1, 'one');
    INSERT INTO lone VALUES (1, 'one');
    INSERT INTO skipped VALUES (1, 'one');
    INSERT INTO nocapture VALUES (1, 'one');
});

# Attempts recorded for a table, once the queue is written.  With an
# expected count, waits for it first (a flush job on a loaded machine can
# take longer than flush() waits); a count that never comes fails the is().
sub attempts {
    my ($table, $expect) = @_;
    my $q = qq{SELECT coalesce(sum(occurrences), 0) FROM integrity_guard.audit_log
                WHERE event_type = 'duplicate_key' AND table_name = '$table'};
    $node->safe_psql('postgres', 'SELECT integrity_guard.flush()');
    $node->poll_query_until('postgres', "SELECT ($q) = $expect") if defined $expect;
    return $node->safe_psql('postgres', $q);
}

# Line pointers the attempts used on the table's only page: a new row's
# offset minus the live rows before it, minus one.
sub dead_tuples {
    my ($table, $next) = @_;
    return $node->safe_psql('postgres', qq{
        INSERT INTO $table VALUES ($next, 'next');
        SELECT (ctid::text::point)[1]::int - (SELECT count(*) FROM $table)
          FROM $table WHERE id = $next});
}

# -- one attempt in a fresh session: not probed, the server's error is
#    captured with the guard's members, counted once
my ($ret, $out, $err) = $node->psql('postgres', q{INSERT INTO lone VALUES (1, 'again')});
like($err, qr/duplicate key value violates unique constraint "lone_pkey"/,
    'the client gets the server\'s own error');
is(attempts('lone', 1), '1', 'the attempt is counted once');
is($node->safe_psql('postgres', q{
    SELECT constraint_name || ' ' || key || ' ' || mode FROM integrity_guard.duplicate_keys
     WHERE table_name = 'lone'}),
    'lone_pkey (id)=(1) raise', 'captured with constraint, key and mode like the guard\'s own record');
is(dead_tuples('lone', 2), '1', 'a lone duplicate is not probed for: one dead tuple');

# -- a burst of 200 attempts in one session, each in its own subtransaction
#    (an EXCEPTION block: the hook never sees these errors)
$node->safe_psql('postgres', q{
    DO $$ BEGIN
        FOR i IN 1..200 LOOP
            BEGIN INSERT INTO burst VALUES (1, 'again'); EXCEPTION WHEN unique_violation THEN NULL; END;
        END LOOP;
    END $$});
is(attempts('burst', 200), '200', 'a burst of 200 caught attempts is counted exactly 200 times');
my $dead = dead_tuples('burst', 2);
ok($dead <= 4, "at most 2% of the burst's attempts left a dead tuple ($dead)");

# -- the same through the client: each error reaches the client (the hook),
#    or is raised by the probing guard (not again by the hook)
$node->safe_psql('postgres', 'TRUNCATE burst; INSERT INTO burst VALUES (1, \'one\')');
$node->safe_psql('postgres', 'SELECT integrity_guard.purge(\'0\')');
my $script = join('', map { "INSERT INTO burst VALUES (1, 'again');\n" } 1 .. 50);
($ret, $out, $err) = $node->psql('postgres', $script, on_error_stop => 0);
my $errors = () = $err =~ /duplicate key value violates unique constraint "burst_pkey"/g;
is($errors, 50, 'the client got 50 errors');
is(attempts('burst', 50), '50', '50 attempts through the client are counted exactly 50 times');
$dead = dead_tuples('burst', 2);
ok($dead <= 1, "only the first attempt of the burst left a dead tuple ($dead)");

# -- after a clean stretch the table is no longer probed (one session)
$node->safe_psql('postgres', q{
    CREATE EXTENSION pageinspect;
    CREATE TABLE decay (id int PRIMARY KEY);
    SELECT integrity_guard.guard_duplicates('decay');
    INSERT INTO decay VALUES (1)});
$node->safe_psql('postgres', q{
    DO $$ BEGIN
        BEGIN INSERT INTO decay VALUES (1); EXCEPTION WHEN unique_violation THEN NULL; END;
        INSERT INTO decay SELECT generate_series(100, 10200);
        FOR i IN 1..3 LOOP
            BEGIN INSERT INTO decay VALUES (1); EXCEPTION WHEN unique_violation THEN NULL; END;
        END LOOP;
    END $$});
is(attempts('decay', 4), '4', 'attempts before and after a clean stretch are counted once each');
is($node->safe_psql('postgres', q{
    SELECT sum((SELECT count(*) FROM heap_page_items(get_raw_page('decay', b::int))))
           - (SELECT count(*) FROM decay)
      FROM generate_series(0, pg_relation_size('decay') / 8192 - 1) b}),
    '2', 'the first attempt of each burst left a dead tuple, the others none');

# -- mode=skip, and a session that captures no 23505, always probe
$node->safe_psql('postgres', q{
    DO $$ BEGIN
        FOR i IN 1..20 LOOP
            INSERT INTO skipped VALUES (1, 'again');
        END LOOP;
    END $$});
is(dead_tuples('skipped', 2), '0', 'mode=skip probes every row: no dead tuple');
$node->safe_psql('postgres', q{
    SET integrity_guard.capture_errors = 'foreign_key_violation';
    DO $$ BEGIN
        FOR i IN 1..20 LOOP
            BEGIN INSERT INTO nocapture VALUES (1, 'again'); EXCEPTION WHEN unique_violation THEN NULL; END;
        END LOOP;
    END $$});
is(dead_tuples('nocapture', 2), '0', 'without capture of 23505 every row is probed: no dead tuple');
is(attempts('nocapture', 20), '20', 'and each attempt is counted by the guard');

# -- upserts need no probe either way, and are no attempts
my $lone = attempts('lone');
$node->safe_psql('postgres', q{
    INSERT INTO lone VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET v = 'upserted';
    INSERT INTO lone VALUES (1, 'x') ON CONFLICT DO NOTHING});
is($node->safe_psql('postgres', 'SELECT v FROM lone WHERE id = 1'), 'upserted',
    'ON CONFLICT DO UPDATE updates');
is(attempts('lone', $lone), $lone, 'upserts are not duplicate attempts');

$node->stop;
done_testing();
