# Issue 23, point 2: owners below their share never lose an incident to a
# flood.  One role floods one database with incidents of distinct keys from
# 4 clients; a quiet role in the same database and one in another database
# each raise 100 over half a minute.  The queue (512 entries) is shared by
# two databases and, in the flooder's, by two roles: a share of 128 entries
# at the least, so the quiet ones stay below theirs however far behind the
# flush jobs fall.  All their incidents are written, none is dropped, and
# the counts reconcile.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('fairness');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '200ms'
integrity_guard.queue_size = 512
integrity_guard.capture_errors = '22003'
});
$node->start;
for my $db ('app', 'quiet') {
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    $node->safe_psql($db, 'CREATE EXTENSION pg_integrity_guard');
}
# app's flush jobs write slowly, so the flooder's entries are often all taken
# (being written) when a quiet role needs a place: taken entries cannot be
# displaced, and the quiet ones must still get in
$node->safe_psql('app', q{
    CREATE FUNCTION slow_audit() RETURNS trigger LANGUAGE plpgsql
        AS $$BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END$$;
    CREATE TRIGGER slow_audit BEFORE INSERT ON integrity_guard.audit_log
        FOR EACH ROW EXECUTE FUNCTION slow_audit()});
$node->safe_psql('postgres', q{
    CREATE ROLE flooder LOGIN; CREATE ROLE calm LOGIN; CREATE ROLE far LOGIN});

# Scripts are read from files so that every client runs at once.
sub client
{
    my ($role, $db, $name, $body) = @_;
    my $file = "${PostgreSQL::Test::Utils::tmp_check}/$name.sql";
    open(my $fh, '>', $file) or die "could not write $file: $!";
    print $fh $body;
    close($fh);
    return IPC::Run::start(
        [ 'psql', '-X', '-q', '-U', $role, '-d', $node->connstr($db) ],
        '<', $file, '>', '/dev/null', '2>', '/dev/null');
}

# the flood: 4 clients of failing statements with keys of their own (the
# application name tells them apart), stopped once the quiet ones are done
my @flood = map {
    my $c = $_;
    client('flooder', 'app', "flood$c", join('', map {
        "SET application_name = 'flood $c $_'; SELECT 2147483647 + 1;\n" } 1 .. 400000));
} 1 .. 4;
# the quiet ones start once the queue overflows
$node->poll_query_until('app', q{
    SELECT coalesce(sum(dropped), 0) > 0 FROM integrity_guard.queue_usage
     WHERE role_name = 'flooder'}) or die 'the flood never filled the queue';
my @quiet = map {
    my ($role, $db) = @$_;
    client($role, $db, $role, join('', map {
        "SET application_name = '$role $_'; SELECT 2147483647 + 1; SELECT pg_sleep(0.3);\n" } 1 .. 100));
} ([ 'calm', 'app' ], [ 'far', 'quiet' ]);
$_->finish for @quiet;
ok($node->safe_psql('postgres', q{
    SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = 'flooder'}) eq 't',
    'the flood outlasted the quiet ones');
$_->kill_kill for @flood;
$node->poll_query_until('postgres', q{
    SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'flooder'})
  or die 'the flood did not stop';

my $usage = q{SELECT string_agg(format('%s/%s: queued %s dropped %s discarded %s',
    database_name, role_name, queued, dropped, discarded), '; ') FROM integrity_guard.queue_usage};
for my $q ([ 'calm', 'app', 'the quiet role in the flooder\'s database' ],
           [ 'far', 'quiet', 'the quiet role in another database' ]) {
    my ($role, $db, $what) = @$q;
    ok($node->poll_query_until($db, qq{
        SELECT coalesce(sum(occurrences), 0) = 100 FROM integrity_guard.audit_log
         WHERE role_name = '$role'}),
        "$what keeps all 100 of its incidents")
      or diag($node->safe_psql($db, $usage));
    is($node->safe_psql($db, qq{
        SELECT coalesce(sum(dropped), 0) FROM integrity_guard.queue_usage
         WHERE role_name = '$role'}), '0', "$what drops none");
}
# counts reconcile: every event of app (the stats count each one) is
# written or counted as dropped
ok($node->poll_query_until('app', q{
    SELECT value::int = 0 FROM integrity_guard.status() WHERE name = 'queue_used'}),
    'the queue empties');
my ($sent, $kept) = split /\|/, $node->safe_psql('app', q{
    SELECT (SELECT sum(occurrences) FROM integrity_guard.stats
             WHERE database_name = 'app'),
           (SELECT coalesce(sum(occurrences), 0) FROM integrity_guard.audit_log)
         + (SELECT coalesce(sum(dropped), 0) FROM integrity_guard.queue_usage
             WHERE database_name = 'app')});
cmp_ok($sent, '>', 10000, 'the flood sent thousands of events');
is($kept, $sent, "app's events are written or counted as dropped");
$node->stop;
done_testing();
