# Operations on a preloaded server: ALTER EXTENSION UPDATE from the released
# 1.0 to 1.1 with guards and audit rows in place, and a pg_dump/pg_restore
# round trip of a database with guards, audit rows and stats.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('ops');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '100ms'
});
$node->start;

# every member of the extension, described
my $members = q{
    SELECT string_agg(pg_describe_object(classid, objid, 0), E'\n' ORDER BY pg_describe_object(classid, objid, 0))
    FROM pg_depend
    WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_integrity_guard')};

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pg_integrity_guard');
is($node->safe_psql('fresh', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_integrity_guard'}),
    '1.7', 'CREATE EXTENSION installs 1.7');

# -- 1.0 with guards and audit data, then ALTER EXTENSION UPDATE
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', q{
    CREATE EXTENSION pg_integrity_guard VERSION '1.0';
    CREATE TABLE grp (id int PRIMARY KEY, times_seen int NOT NULL);
    SELECT integrity_guard.guard_counter('grp', ARRAY['times_seen']);
    CREATE TABLE conference (id int PRIMARY KEY, app text);
    SELECT integrity_guard.guard_duplicates('conference', 'skip');
    INSERT INTO grp VALUES (1, 2147483647);
    INSERT INTO conference VALUES (1, 'a');
});
$node->safe_psql('app', 'UPDATE grp SET times_seen = times_seen + 1');
$node->safe_psql('app', q{INSERT INTO conference VALUES (1, 'b')});
ok($node->poll_query_until('app', 'SELECT count(*) = 2 FROM integrity_guard.audit_log'),
    '1.0 records incidents with the new library');
my $audit_before = $node->safe_psql('app',
    'SELECT string_agg(id || event_type || occurrences, \',\' ORDER BY id) FROM integrity_guard.audit_log');
my $guards_before = $node->safe_psql('app',
    'SELECT string_agg(trigger_name, \',\' ORDER BY 1) FROM integrity_guard.guards');

$node->safe_psql('app', 'ALTER EXTENSION pg_integrity_guard UPDATE');
is($node->safe_psql('app', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_integrity_guard'}),
    '1.7', 'ALTER EXTENSION UPDATE reaches 1.7');
is($node->safe_psql('app', $members), $node->safe_psql('fresh', $members),
    'the updated extension has exactly the objects of a fresh 1.7');
is($node->safe_psql('app',
    'SELECT string_agg(id || event_type || occurrences, \',\' ORDER BY id) FROM integrity_guard.audit_log'),
    $audit_before, 'audit rows are kept');
is($node->safe_psql('app', 'SELECT string_agg(trigger_name, \',\' ORDER BY 1) FROM integrity_guard.guards'),
    $guards_before, 'guards are kept');
# 1.6: a key set carries its audit row's order and visibility columns; the
# update fills them for the rows it finds
my $copies = q{SELECT count(*) || ' key sets, ' ||
    count(*) FILTER (WHERE (k.last_seen, k.relid, k.rel_incarnation, k.key_columns)
                          IS DISTINCT FROM (a.last_seen, a.relid, a.rel_incarnation, a.key_columns))
    || ' differ' FROM integrity_guard.audit_keys k JOIN integrity_guard.audit_log a USING (id)};
is($node->safe_psql('app', $copies), '1 key sets, 0 differ',
    'the update gives the key set its audit row\'s columns');
$node->safe_psql('app', 'UPDATE grp SET times_seen = times_seen + 1');
$node->safe_psql('app', q{INSERT INTO conference VALUES (1, 'c')});
is($node->safe_psql('app', q{SELECT count(*) FROM integrity_guard.events()}), '4',
    'the guards keep auditing after the update');
is($node->safe_psql('app', q{
    SELECT string_agg(event_type || '=' || occurrences, ',' ORDER BY event_type)
    FROM integrity_guard.stats WHERE database_name = 'app'}),
    'counter_saturated=2,duplicate_key=2', 'the stats view of 1.1 counts them');

# -- pg_dump / pg_restore of the updated database
# (flush() waits until the flush job has written what is queued)
$node->safe_psql('app', 'SELECT integrity_guard.flush()');
my $dump = $node->basedir . '/app.dump';
$node->command_ok(['pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('app')], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(['pg_restore', '-d', $node->connstr('restored'), $dump], 'pg_restore');
is($node->safe_psql('restored',
    'SELECT string_agg(id || event_type || occurrences, \',\' ORDER BY id) FROM integrity_guard.audit_log'),
    $node->safe_psql('app',
    'SELECT string_agg(id || event_type || occurrences, \',\' ORDER BY id) FROM integrity_guard.audit_log'),
    'the restored database has the audit rows');
is($node->safe_psql('restored', 'SELECT string_agg(trigger_name, \',\' ORDER BY 1) FROM integrity_guard.guards'),
    $guards_before, 'and the guards');
# the restore binds audit rows to this database's relations and token; their
# key sets follow, so a role that may read the table sees the keys
is($node->safe_psql('restored', $copies), '2 key sets, 0 differ',
    'restored key sets carry the rebound audit rows\' columns');
$node->safe_psql('restored', q{
    CREATE ROLE keyreader; GRANT SELECT ON conference TO keyreader});
is($node->safe_psql('restored', q{
    SET ROLE keyreader;
    SELECT count(*) FROM integrity_guard.events() WHERE detail ? 'key'}),
    '2', 'a role that may read the table sees the restored key values');
$node->safe_psql('restored', 'UPDATE grp SET times_seen = times_seen + 1');
$node->safe_psql('restored', q{INSERT INTO conference VALUES (1, 'd')});
ok($node->poll_query_until('restored', 'SELECT count(*) = 6 FROM integrity_guard.audit_log'),
    'the worker writes the restored database\'s new incidents, with fresh ids');
is($node->safe_psql('restored', q{
    SELECT string_agg(database_name || ':' || event_type || '=' || occurrences, ',' ORDER BY database_name, event_type)
    FROM integrity_guard.stats}),
    'app:counter_saturated=2,app:duplicate_key=2,restored:counter_saturated=1,restored:duplicate_key=1',
    'stats are per database and server-wide: the restored database counts from zero');
$node->stop;
done_testing();
