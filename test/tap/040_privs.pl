# Privileges and visibility with several roles on a preloaded server
# (issue 13): forged incidents, another session's temporary table, a
# schema without USAGE, and pg_dump/pg_restore of the audit with its
# visibility intact.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('privs');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '100ms'
});
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', q{
    CREATE EXTENSION pg_integrity_guard;
    CREATE ROLE owner1 LOGIN;
    CREATE ROLE tenant LOGIN;
    CREATE ROLE reader LOGIN;
    CREATE ROLE watcher LOGIN IN ROLE pg_read_all_stats;
    GRANT CREATE ON SCHEMA public TO owner1, tenant, reader;
    GRANT TEMPORARY ON DATABASE app TO tenant, reader;
    SET ROLE owner1;
    CREATE TABLE victim (id int PRIMARY KEY, secret text);
    INSERT INTO victim VALUES (1, 'a');
    GRANT SELECT ON victim TO reader;
});

# rows of the audit table and its keys, as the superuser, without draining
sub raw {
    my ($db, $sql) = @_;
    return $node->safe_psql($db, $sql);
}
sub as_role {
    my ($db, $role, $sql) = @_;
    return $node->safe_psql($db, "SET ROLE $role; $sql");
}
sub wait_rows {
    my ($db, $cond, $what) = @_;
    ok($node->poll_query_until($db, "SELECT $cond FROM integrity_guard.audit_log"), $what);
}

# -- 8. a forged duplicate key: RAISE with the server's SQLSTATE and fields
my ($ret, $out, $err) = $node->psql('app', q{
    SET ROLE tenant;
    DO $$ BEGIN
        RAISE EXCEPTION 'duplicate key value violates unique constraint "victim_pkey"'
              USING ERRCODE = 'unique_violation', SCHEMA = 'public', TABLE = 'victim',
                    CONSTRAINT = 'victim_pkey', DETAIL = 'Key (id)=(666) already exists.';
    END $$;});
like($err, qr/duplicate key value violates unique constraint "victim_pkey"/,
    'the forger gets its own error back');
wait_rows('app', q{count(*) = 1}, 'the raised error is recorded');
is(raw('app', q{SELECT event_type || '|' || coalesce(table_name, '-') || '|' || coalesce(relid::text, '-')
                || '|' || role_name || '|' || target || '|' || (detail->>'claimed_table') || '|'
                || (detail->>'raised_in')
                FROM integrity_guard.audit_log}),
    'user_raised|-|-|tenant|duplicate_key|victim|exec_stmt_raise',
    'as user_raised, by the raising role, on no table, with what it claimed');
is(raw('app', q{SELECT count(*) FROM integrity_guard.audit_log WHERE event_type = 'duplicate_key'}),
    '0', 'not as the server\'s duplicate_key');
is(as_role('app', 'reader', q{SELECT count(*) FROM integrity_guard.events()}),
    '0', 'the victim\'s reader is shown nothing of it');
is(as_role('app', 'watcher', q{SELECT string_agg(event_type, ',') FROM integrity_guard.events()}),
    'user_raised', 'pg_read_all_stats sees it, labelled');

# a forged error with any other PL-raised SQLSTATE is labelled the same way
$node->psql('app', q{SET ROLE tenant;
    DO $$ BEGIN RAISE EXCEPTION 'forged' USING ERRCODE = 'foreign_key_violation',
                    TABLE = 'victim'; END $$;});
wait_rows('app', q{count(*) = 2}, 'a second raised error is recorded');
is(raw('app', q{SELECT string_agg(event_type || ':' || target, ',' ORDER BY id) FROM integrity_guard.audit_log}),
    'user_raised:duplicate_key,user_raised:foreign_key_violation', 'also as user_raised');

# -- the server's own duplicate key: the table's incident, bound to its OID
$node->psql('app', q{SET ROLE owner1; INSERT INTO victim VALUES (1, 'b')});
wait_rows('app', q{count(*) FILTER (WHERE event_type = 'duplicate_key') = 1},
    'the server\'s duplicate key is recorded');
is(raw('app', q{SELECT table_name || '|' || (relid = 'victim'::regclass) FROM integrity_guard.audit_log
                WHERE event_type = 'duplicate_key'}),
    'victim|true', 'as the server\'s duplicate_key on the table, by its OID');
is(as_role('app', 'reader', q{SELECT event_type || '|' || (detail->>'detail') FROM integrity_guard.events()}),
    'duplicate_key|Key (id)=(1) already exists.', 'shown with its DETAIL to a reader of the table');
is(raw('app', q{SELECT count(*) FROM integrity_guard.audit_log WHERE detail ? 'detail'}),
    '0', 'the DETAIL is kept apart from the incident row');

# -- 4. a private schema's incident breaks no reader
$node->safe_psql('app', q{
    CREATE SCHEMA private AUTHORIZATION owner1;
    SET ROLE owner1;
    CREATE TABLE private.t (id int PRIMARY KEY);
    INSERT INTO private.t VALUES (1);});
$node->psql('app', q{SET ROLE owner1; INSERT INTO private.t VALUES (1)});
wait_rows('app', q{count(*) FILTER (WHERE table_name = 't') = 1}, 'a private table\'s incident is recorded');
($ret, $out, $err) = $node->psql('app', q{SET ROLE reader;
    SELECT count(*) FROM integrity_guard.events();
    SELECT count(*) FROM integrity_guard.summary();
    SELECT count(*) FROM integrity_guard.recent_events;
    SELECT count(*) FROM integrity_guard.duplicate_keys;});
is($ret, 0, 'readers without USAGE on its schema read without an error');
is($out, "1\n1\n1\n1", 'and see only their table\'s incident');

# -- 5. another session's temporary table
my $tmp = $node->background_psql('app');
$tmp->query_safe(q{SET ROLE tenant;
    CREATE TEMP TABLE t (id int PRIMARY KEY, n int);
    SELECT integrity_guard.guard_counter('t', ARRAY['n'], 10, 0);
    INSERT INTO t VALUES (1, 99);});
wait_rows('app', q{count(*) FILTER (WHERE event_type = 'counter_saturated') = 1},
    'a temporary table\'s incident is recorded');
($ret, $out, $err) = $node->psql('app', q{SET ROLE reader;
    CREATE TEMP TABLE t (id int PRIMARY KEY, n int);
    SELECT count(*) FROM integrity_guard.events() WHERE event_type = 'counter_saturated';});
is("$ret|$out", '0|0', 'while it lives, another session reads without an error and does not see it');
is($tmp->query_safe(q{SELECT count(*) FROM integrity_guard.events() WHERE event_type = 'counter_saturated'}),
    '1', 'its owner does');
$tmp->quit;
# the next session is likely to get the same pg_temp_N schema
($ret, $out, $err) = $node->psql('app', q{SET ROLE reader;
    CREATE TEMP TABLE t (id int PRIMARY KEY, n int);
    SELECT count(*) FROM integrity_guard.events() WHERE event_type = 'counter_saturated';});
is("$ret|$out", '0|0', 'once it is gone, a new temporary table of that name does not inherit it');
is(as_role('app', 'watcher', q{SELECT count(*) FROM integrity_guard.events() WHERE event_type = 'counter_saturated'}),
    '1', 'pg_read_all_stats still sees it');

# -- 5. pg_dump / pg_restore: visibility kept, stale OIDs never trusted
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
    CREATE EXTENSION pg_integrity_guard;
    GRANT CREATE ON SCHEMA public TO owner1;
    SET ROLE owner1;
    CREATE TABLE keyed (id int PRIMARY KEY, n int);
    SELECT integrity_guard.guard_duplicates('keyed', 'skip');
    SELECT integrity_guard.guard_counter('keyed', ARRAY['n'], 10, 0);
    INSERT INTO keyed VALUES (1, 5);
    GRANT SELECT ON keyed TO reader;
    CREATE TABLE gone (id int PRIMARY KEY, n int);
    SELECT integrity_guard.guard_counter('gone', ARRAY['n'], 10, 0);
    GRANT SELECT ON gone TO reader;});
$node->safe_psql('src', q{SET ROLE owner1; INSERT INTO keyed VALUES (1, 6); UPDATE keyed SET n = 50;
    INSERT INTO gone VALUES (1, 50); DROP TABLE gone; CREATE TABLE gone (id int);
    GRANT SELECT ON gone TO reader;});
wait_rows('src', q{count(*) = 3}, 'three incidents in the source database');
my $visible = q{SELECT string_agg(table_name || ':' || event_type || ':' || coalesce(detail->>'key', '-'), ',' ORDER BY table_name, event_type)
                FROM integrity_guard.events()};
is(as_role('src', 'reader', $visible), 'keyed:counter_saturated:-,keyed:duplicate_key:(id)=(1)',
    'the reader sees its table\'s incidents with the key, not those of the dropped table');
is(raw('src', q{SELECT count(*) FROM integrity_guard.audit_log WHERE table_name = 'gone' AND relid IS NULL}), '1',
    'the dropped table\'s incident is unbound, so that no restore binds it to the new table of its name');

my $dump = $node->basedir . '/src.dump';
$node->command_ok(['pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src')], 'pg_dump');
for my $db ('dst', 'dst_notrig') {
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    # take OIDs so that restored tables do not get their old ones back
    $node->safe_psql($db, 'CREATE TABLE filler1 (a int); CREATE TABLE filler2 (a int); CREATE TABLE filler3 (a int)');
}
$node->command_ok(['pg_restore', '--exit-on-error', '-d', $node->connstr('dst'), $dump], 'pg_restore');
is(as_role('dst', 'reader', $visible), 'keyed:counter_saturated:-,keyed:duplicate_key:(id)=(1)',
    'after restore the reader sees the same incidents and key values');
is(raw('dst', q{SELECT count(*) FROM integrity_guard.audit_log WHERE relid = 'keyed'::regclass}),
    '2', 'restored incidents are bound to the restored table\'s OID');
is(as_role('dst', 'watcher', q{SELECT count(*) FROM integrity_guard.events()}), '3',
    'pg_read_all_stats sees all three');
is(as_role('dst', 'reader', q{SELECT count(*) FROM integrity_guard.events(rel => 'keyed')}), '2',
    'events(rel) finds restored incidents by table');
$node->safe_psql('dst', q{DROP TABLE keyed; CREATE TABLE keyed (id int PRIMARY KEY); GRANT SELECT ON keyed TO reader;});
is(as_role('dst', 'reader', q{SELECT count(*) FROM integrity_guard.events()}), '0',
    'a table recreated after the restore does not inherit them');

# restored without the audit table's trigger: OIDs of the source are not trusted
$node->command_ok(['pg_restore', '--exit-on-error', '--schema-only', '-d', $node->connstr('dst_notrig'), $dump],
    'pg_restore --schema-only');
$node->command_ok(['pg_restore', '--exit-on-error', '--data-only', '--disable-triggers', '-d', $node->connstr('dst_notrig'), $dump],
    'pg_restore --data-only --disable-triggers');
is(as_role('dst_notrig', 'reader', q{SELECT count(*) FROM integrity_guard.events()}), '0',
    'rows not bound on load are shown to no ordinary reader');
is(as_role('dst_notrig', 'watcher', q{SELECT count(*) FROM integrity_guard.events()}), '3',
    'but to pg_read_all_stats');

# incidents still queued follow the same rule, decided per relation
$node->append_conf('postgresql.conf', "integrity_guard.flush_interval = '1h'");
$node->reload;
sleep(1);
$node->safe_psql('app', q{
    SET ROLE owner1;
    CREATE TABLE qa (n int); CREATE TABLE qb (n int);
    GRANT SELECT (n) ON qa TO reader;
    SELECT integrity_guard.guard_counter('qa', ARRAY['n'], 10, 0);
    SELECT integrity_guard.guard_counter('qb', ARRAY['n'], 10, 0);
    INSERT INTO qa SELECT 99 FROM generate_series(1, 3);
    INSERT INTO qb VALUES (99);});
my $queued = q{SELECT coalesce(string_agg(table_name || ':' || occurrences, ',' ORDER BY table_name), '')
    FROM integrity_guard.events() WHERE id IS NULL AND table_name IN ('qa', 'qb')};
is(as_role('app', 'watcher', $queued), 'qa:3,qb:1', 'both incidents are still queued');
is(as_role('app', 'reader', $queued), 'qa:3',
    'a reader sees the queued incidents of the table it may read (a column of), not the others');
is(as_role('app', 'tenant', $queued), '', 'a role that may read neither sees none');
$node->append_conf('postgresql.conf', "integrity_guard.flush_interval = '100ms'");
$node->reload;

done_testing();
