# Issue 26, first part: the row-local guards on Citus.  A coordinator and
# two workers, shared_preload_libraries = 'citus,pg_integrity_guard'.  The
# helpers attach to distributed and reference tables, and a guarded table
# can be distributed, with no setting asked of the user; the rewrite leaves
# the logical statement to Citus and each shard's statement saturates
# (router, multi-shard, prepared, ON CONFLICT, after a shard move); skip
# mode skips on a shard, also a guard that names its constraint; guards
# lists logical tables; a children guard acts on co-located shards; the
# cluster readers merge every node's audit, each incident once.
# Skipped where Citus is not installed (test/run.sh builds it from the
# release sources in ../shared/citus when they are there).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $libdir = `pg_config --pkglibdir`;
chomp $libdir;
plan skip_all => "Citus is not installed in $libdir"
  unless -f "$libdir/citus.so";

my @nodes;
for my $name ('coordinator', 'worker1', 'worker2') {
    my $n = PostgreSQL::Test::Cluster->new($name);
    $n->init;
    # Citus reaches the node itself (shard moves) at citus.local_hostname
    $n->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'citus,pg_integrity_guard'
integrity_guard.flush_interval = '200ms'
max_worker_processes = 32
citus.local_hostname = '@{[ $n->host ]}'
});
    $n->start;
    $n->safe_psql('postgres', 'CREATE EXTENSION citus');
    push @nodes, $n;
}
my ($coord, @workers) = @nodes;
$coord->safe_psql('postgres', sprintf(q{SELECT citus_set_coordinator_host('%s', %d)},
    $coord->host, $coord->port));
$coord->safe_psql('postgres', sprintf(q{SELECT citus_add_node('%s', %d)}, $_->host, $_->port))
  for @workers;
$coord->safe_psql('postgres', 'CREATE EXTENSION pg_integrity_guard');
is(join(',', map { $_->safe_psql('postgres',
    q{SELECT extversion FROM pg_extension WHERE extname = 'pg_integrity_guard'}) } @workers),
    '1.7,1.7', 'Citus creates the extension on the workers');

my $max = '2147483647';
sub coord { return $coord->safe_psql('postgres', shift) }

# a counter attached to a distributed table, with no setting
coord(q{
    CREATE TABLE groupedmessage (project_id int, id int, times_seen int NOT NULL DEFAULT 0,
                                 PRIMARY KEY (project_id, id));
    SELECT create_distributed_table('groupedmessage', 'project_id');
    INSERT INTO groupedmessage SELECT g % 8, g, 2147483600 FROM generate_series(1, 40) g});
is(coord(q{SELECT integrity_guard.guard_counter('groupedmessage', ARRAY['times_seen']);
           SHOW citus.enable_unsafe_triggers}),
    "integrity_guard_counter\noff", 'a counter attaches to a distributed table, the setting left as it was');
is(coord(q{UPDATE groupedmessage SET times_seen = times_seen + 100 WHERE project_id = 1 AND id = 1
           RETURNING times_seen}), $max, 'a router UPDATE saturates');
is(coord(q{UPDATE groupedmessage SET times_seen = times_seen + 1000 WHERE id < 20;
           SELECT count(*) FROM groupedmessage WHERE id < 20 AND times_seen = 2147483647}),
    '19', 'a multi-shard UPDATE saturates on every shard');
is(coord(q{PREPARE bump(int) AS UPDATE groupedmessage SET times_seen = times_seen + $1 WHERE project_id = 3;
           EXECUTE bump(50); EXECUTE bump(50); EXECUTE bump(50);
           EXECUTE bump(50); EXECUTE bump(50); EXECUTE bump(50);
           SELECT min(times_seen) FROM groupedmessage WHERE project_id = 3}),
    $max, 'a prepared UPDATE saturates, generic plan included');
is(coord(q{INSERT INTO groupedmessage VALUES (2, 2, 1)
           ON CONFLICT (project_id, id) DO UPDATE SET times_seen = groupedmessage.times_seen + 1000
           RETURNING times_seen}), $max, 'ON CONFLICT DO UPDATE saturates');
is(coord(q{INSERT INTO groupedmessage (project_id, id, times_seen)
           SELECT project_id, id + 1000, times_seen + 2000000000 FROM groupedmessage WHERE id <= 40;
           SELECT count(*) || ' ' || min(times_seen) FROM groupedmessage WHERE id > 1000}),
    "40 $max", 'a co-located INSERT ... SELECT saturates on every shard');

# a range pair on a distributed table: an inverted period is clamped on
# its shard
is(coord(q{
    CREATE TABLE groupopenperiod (project_id int, id int, date_started timestamptz NOT NULL,
                                  date_ended timestamptz, PRIMARY KEY (project_id, id));
    SELECT create_distributed_table('groupopenperiod', 'project_id');
    SELECT integrity_guard.guard_range('groupopenperiod', 'date_started', 'date_ended');
    INSERT INTO groupopenperiod VALUES (4, 1, '2026-01-02', NULL);
    UPDATE groupopenperiod SET date_ended = '2026-01-01' WHERE project_id = 4 AND id = 1
    RETURNING date_ended = date_started}),
    "\nintegrity_guard_range_date_started_date_ended\nt", 'a range pair is clamped on a distributed table');

# guarded first, then distributed
is(coord(q{
    CREATE TABLE conference (project_id int, id int, times_seen int NOT NULL DEFAULT 0,
                             PRIMARY KEY (project_id, id));
    SELECT integrity_guard.guard_counter('conference', ARRAY['times_seen']);
    SELECT integrity_guard.guard_duplicates('conference', 'skip');
    SELECT create_distributed_table('conference', 'project_id');
    SHOW citus.enable_unsafe_triggers}),
    "integrity_guard_counter\nintegrity_guard_unique\n\noff",
    'a guarded table is distributed with no setting, and the setting is left as it was');
is(coord(q{INSERT INTO conference VALUES (1, 1, 2147483647), (5, 5, 0);
           INSERT INTO conference VALUES (1, 1, 7), (5, 5, 7) ON CONFLICT DO NOTHING;
           INSERT INTO conference VALUES (1, 1, 9);
           UPDATE conference SET times_seen = times_seen + 1;
           SELECT string_agg(project_id || ':' || times_seen, ',' ORDER BY project_id) FROM conference}),
    "1:$max,5:1", 'its shards skip a duplicate and saturate a counter');
# a guard naming its constraint finds the shard's copy (Citus names it
# NAME_SHARDID): a duplicate is skipped, not every write refused
is(coord(q{
    CREATE TABLE release (project_id int, version text, n int, PRIMARY KEY (project_id, version));
    CREATE TRIGGER named_unique BEFORE INSERT OR UPDATE ON release FOR EACH ROW
        EXECUTE FUNCTION integrity_guard.guard_unique('mode=skip', 'constraint=release_pkey');
    SELECT create_distributed_table('release', 'project_id');
    INSERT INTO release VALUES (1, 'a', 1), (2, 'b', 1);
    INSERT INTO release VALUES (1, 'a', 2);
    SELECT string_agg(project_id || version || n, ',' ORDER BY project_id) FROM release}),
    "\n1a1,2b1", 'a guard naming its constraint skips a duplicate on the shards');
# another trigger: Citus's own rule still decides
my ($rc, $out, $err) = $coord->psql('postgres', q{
    CREATE TABLE other (project_id int, n int);
    CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
    CREATE TRIGGER noop BEFORE INSERT ON other FOR EACH ROW EXECUTE FUNCTION noop();
    SELECT integrity_guard.guard_counter('other', ARRAY['n']);
    SELECT create_distributed_table('other', 'project_id')});
like($err, qr/because it has triggers/, 'a table with a trigger of its own is still refused by Citus');

# a reference table: every copy, the coordinator's local one included
coord(q{
    CREATE TABLE project (id int PRIMARY KEY, events int NOT NULL);
    SELECT create_reference_table('project');
    INSERT INTO project VALUES (1, 2147483000);
    SELECT integrity_guard.guard_counter('project', ARRAY['events'])});
is(coord(q{UPDATE project SET events = events + 1000 RETURNING events}), $max,
    'a reference table saturates');
is(join(',', map { $_->safe_psql('postgres', q{
    SELECT events FROM project_} . $_->safe_psql('postgres', q{
        SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'project'::regclass})) } @workers),
    "$max,$max", 'on each worker\'s copy');

# a shard moved to the other worker keeps its guard
my ($shard, $from) = split /\|/, coord(q{
    SELECT s.shardid, p.nodeport FROM pg_dist_shard s JOIN pg_dist_placement pl USING (shardid)
    JOIN pg_dist_node p USING (groupid)
    WHERE s.logicalrelid = 'groupedmessage'::regclass AND p.nodeport <> } . $coord->port . q{
    ORDER BY s.shardid LIMIT 1});
my ($to) = grep { $_->port != $from } @workers;
coord(sprintf(q{SELECT citus_move_shard_placement(%d, '%s', %d, '%s', %d, shard_transfer_mode => 'block_writes')},
    $shard, $workers[0]->host, $from, $to->host, $to->port));
is($to->safe_psql('postgres', qq{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'groupedmessage_$shard'::regclass
                                 AND tgfoid = 'integrity_guard.saturate_counter'::regproc}), '1',
    'a moved shard keeps its guard');
is(coord(q{UPDATE groupedmessage SET times_seen = times_seen + 1000;
           SELECT count(*) = count(*) FILTER (WHERE times_seen = 2147483647) FROM groupedmessage
            WHERE times_seen > 2147483000}), 't', 'and saturates after the move');

# guards lists logical tables, on every node: not the shards' copies of
# their triggers, nor the coordinator's copy of the reference table
my $listed = q{SELECT string_agg(table_name || ':' || kind, ',' ORDER BY table_name::text, kind)
               FROM integrity_guard.guards};
is(coord($listed), 'conference:counter,conference:unique,groupedmessage:counter,groupopenperiod:range,other:counter,project:counter,release:unique',
    'guards lists the logical tables on the coordinator');
is($workers[0]->safe_psql('postgres', $listed),
    'conference:counter,conference:unique,groupedmessage:counter,groupopenperiod:range,project:counter,release:unique',
    'and on a worker');

# children: a composite foreign key of co-located tables (Citus requires
# the distribution column in it); set_null clears the reference and keeps
# the NOT NULL distribution column, shard by shard
coord(q{
    CREATE TABLE parents (project_id int, id int, PRIMARY KEY (project_id, id));
    CREATE TABLE kids (project_id int NOT NULL, id int, pid int,
                       FOREIGN KEY (project_id, pid) REFERENCES parents);
    SELECT create_distributed_table('parents', 'project_id');
    SELECT create_distributed_table('kids', 'project_id', colocate_with => 'parents');
    SELECT integrity_guard.guard_children('parents');
    INSERT INTO parents SELECT p, i FROM generate_series(1, 4) p, generate_series(1, 3) i;
    INSERT INTO kids SELECT p, i * 10, i FROM generate_series(1, 4) p, generate_series(1, 3) i;
    DELETE FROM parents WHERE id = 2});
is(coord(q{SELECT string_agg(project_id || ':' || coalesce(pid::text, '-'), ',' ORDER BY project_id, id)
      FROM kids WHERE id = 20}),
    "1:-,2:-,3:-,4:-",
    'a co-located composite foreign key: the children of deleted parents are cleared on every shard');
# against an unguarded twin on plain tables with the native action (Citus
# refuses ON DELETE SET NULL on a key that holds the distribution column)
my $kids_rows = q{SELECT string_agg(project_id || ':' || id || ':' || coalesce(pid::text, '-'), ','
                                    ORDER BY project_id, id) FROM };
coord(q{
    CREATE TABLE parents_twin (project_id int, id int, PRIMARY KEY (project_id, id));
    CREATE TABLE kids_twin (project_id int NOT NULL, id int, pid int,
                            FOREIGN KEY (project_id, pid) REFERENCES parents_twin ON DELETE SET NULL (pid));
    INSERT INTO parents_twin SELECT p, i FROM generate_series(1, 4) p, generate_series(1, 3) i;
    INSERT INTO kids_twin SELECT p, i * 10, i FROM generate_series(1, 4) p, generate_series(1, 3) i;
    DELETE FROM parents_twin WHERE id = 2});
is(coord($kids_rows . 'kids'), coord($kids_rows . 'kids_twin'),
    'the same rows as ON DELETE SET NULL (pid) on an unguarded twin');
# an undeclared reference resolves to the co-located shard: one tenant's
# delete never touches another tenant's rows with the same key
coord(q{
    CREATE TABLE issues (project_id int, id int, PRIMARY KEY (project_id, id));
    CREATE TABLE notes (project_id int NOT NULL, id int, issue_id int);
    SELECT create_distributed_table('issues', 'project_id');
    SELECT create_distributed_table('notes', 'project_id', colocate_with => 'issues');
    SELECT integrity_guard.guard_children('issues',
        ARRAY['notes(project_id, issue_id) = (project_id, id)'], 'delete');
    INSERT INTO issues SELECT p, i FROM generate_series(1, 4) p, generate_series(1, 3) i;
    INSERT INTO notes SELECT p, i * 10, i FROM generate_series(1, 4) p, generate_series(1, 3) i;
    DELETE FROM issues WHERE project_id = 1 AND id = 3;
    DELETE FROM issues WHERE id = 1});
is(coord(q{SELECT string_agg(project_id || ':' || n, ',' ORDER BY project_id)
      FROM (SELECT project_id, count(*) n FROM notes GROUP BY 1) c}),
    "1:1,2:2,3:2,4:2",
    'an undeclared reference deletes only the children of the deleted parents\' tenants');
coord(q{
    CREATE TABLE issues_twin (project_id int, id int, PRIMARY KEY (project_id, id));
    CREATE TABLE notes_twin (project_id int NOT NULL, id int, issue_id int,
                             FOREIGN KEY (project_id, issue_id) REFERENCES issues_twin ON DELETE CASCADE);
    INSERT INTO issues_twin SELECT p, i FROM generate_series(1, 4) p, generate_series(1, 3) i;
    INSERT INTO notes_twin SELECT p, i * 10, i FROM generate_series(1, 4) p, generate_series(1, 3) i;
    DELETE FROM issues_twin WHERE project_id = 1 AND id = 3;
    DELETE FROM issues_twin WHERE id = 1});
my $notes_rows = q{SELECT string_agg(project_id || ':' || id || ':' || issue_id, ',' ORDER BY project_id, id) FROM };
is(coord($notes_rows . 'notes'), coord($notes_rows . 'notes_twin'),
    'the same rows as ON DELETE CASCADE on an unguarded twin');

($rc, $out, $err) = $coord->psql('postgres', q{
    SELECT integrity_guard.guard_children('issues', ARRAY['notes(issue_id) = (id)'])});
like($err, qr/does not join the distribution columns.*HINT:  Name the child's distribution column against the parent's: 'child\(project_id, col\) = \(project_id, pcol\)'/s,
    'an undeclared reference that does not join the distribution columns is refused, with the fix');
($rc, $out, $err) = $coord->psql('postgres', q{
    CREATE TABLE loose (project_id int NOT NULL, id int, issue_id int);
    SELECT create_distributed_table('loose', 'id', colocate_with => 'none');
    SELECT integrity_guard.guard_children('issues', ARRAY['loose(project_id, issue_id) = (project_id, id)'])});
like($err, qr/ERROR:  reference .* does not name a co-located distributed table/,
    'a reference to a table that is not co-located is refused');
# a reference table's children, declared: each node clears its own shards
# and tells its own count
coord(q{
    CREATE TABLE platform (id int PRIMARY KEY);
    SELECT create_reference_table('platform');
    CREATE TABLE event (project_id int, id int, platform_id int REFERENCES platform);
    SELECT create_distributed_table('event', 'project_id');
    SELECT integrity_guard.guard_children('platform');
    INSERT INTO platform SELECT generate_series(1, 3);
    INSERT INTO event SELECT p, i, i FROM generate_series(1, 8) p, generate_series(1, 3) i;
    DELETE FROM platform WHERE id = 2});
is(coord(q{SELECT count(*) FROM event WHERE platform_id IS NULL}),
    "8", 'a reference table\'s declared children are cleared on every worker');
is(coord(q{SELECT count(DISTINCT node) || ' ' || sum(occurrences) || ' ' || string_agg(DISTINCT target, ',')
           FROM integrity_guard.cluster_events(rel => 'platform', event_type => 'children_nullified')}),
    '2 8 public.event(platform_id)', 'each worker tells the children it cleared, under the logical tables');
($rc, $out, $err) = $coord->psql('postgres', q{
    SELECT integrity_guard.guard_children('platform', ARRAY['event(platform_id)'])});
like($err, qr/ERROR:  reference "event\(platform_id\)" .* does not name a co-located distributed table/,
    'an undeclared reference from a reference table is refused: its children must be declared');

# one audit for the cluster: each incident once, on the node that absorbed
# it, under the logical table and constraint; read from the coordinator
coord(q{
    CREATE TABLE dup (project_id int, id int, n int, CONSTRAINT dup_key UNIQUE (project_id, id));
    SELECT create_distributed_table('dup', 'project_id');
    SELECT integrity_guard.guard_duplicates('dup', 'raise');
    CREATE TABLE tag (id int PRIMARY KEY, name text);
    SELECT create_reference_table('tag');
    SELECT integrity_guard.guard_duplicates('tag', 'skip');
    INSERT INTO dup VALUES (1, 1, 1);
    INSERT INTO tag VALUES (1, 'a');
    INSERT INTO tag VALUES (1, 'b');
    CREATE ROLE reader LOGIN;
    GRANT SELECT ON tag TO reader});
($rc, $out, $err) = $coord->psql('postgres', 'INSERT INTO dup VALUES (1, 1, 2)');
like($err, qr/duplicate key value violates unique constraint "dup_key_\d+"/,
    'raise mode: the server\'s own error, relayed from the worker');
my $dup_node = coord(q{
    SELECT n.nodename || ':' || n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
    WHERE p.shardid = get_shard_id_for_distribution_column('dup', 1)});
# (the coordinator's own capture of the error relayed from the worker
# would be a second event, on no table)
is(coord(q{SELECT string_agg(node || ' ' || coalesce(table_name, '-') || ' ' || coalesce(target, '-')
                             || ' ' || occurrences, ',')
           FROM integrity_guard.cluster_events(event_type => 'duplicate_key')
           WHERE table_name = 'dup' OR detail->>'message' LIKE '%dup_key%'}),
    "$dup_node dup dup_key 1",
    'a duplicate raised on a worker is one event, on that node, under the logical table and constraint');
# an exclusion violation likewise: the worker's capture, not the coordinator's
coord(q{
    CREATE EXTENSION btree_gist;
    CREATE TABLE slot (project_id int, during tstzrange,
                       EXCLUDE USING gist (project_id WITH =, during WITH &&));
    SELECT create_distributed_table('slot', 'project_id');
    INSERT INTO slot VALUES (1, '[2026-01-01,2026-01-03)')});
($rc, $out, $err) = $coord->psql('postgres', q{INSERT INTO slot VALUES (1, '[2026-01-02,2026-01-04)')});
like($err, qr/conflicting key value violates exclusion constraint/, 'an exclusion violation, relayed');
my $slot_node = coord(q{
    SELECT n.nodename || ':' || n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
    WHERE p.shardid = get_shard_id_for_distribution_column('slot', 1)});
is(coord(q{SELECT string_agg(node || ' ' || coalesce(table_name, '-') || ' ' || coalesce(target, '-'), ',')
           FROM integrity_guard.cluster_events(event_type => 'exclusion_violation')}),
    "$slot_node slot slot_project_id_during_excl",
    'is one event, on the worker, under the logical table and constraint');
is(coord(q{SELECT string_agg(table_name || ' ' || target || ' ' || (detail->>'constraint'), ',')
           FROM integrity_guard.cluster_events(rel => 'tag')}),
    'tag tag_pkey tag_pkey', 'a reference table\'s duplicate is one event, not one per copy');
is(coord(q{SELECT count(*) FROM integrity_guard.cluster_events()
           WHERE table_name ~ '_[0-9]+$' OR target ~ '_[0-9]+$'}),
    '0', 'no incident is shown under a shard\'s name');
is(coord(q{SELECT count(DISTINCT node) || ' ' || bool_and(table_name = 'groupedmessage' AND target = 'times_seen')
           FROM integrity_guard.cluster_events(rel => 'groupedmessage', event_type => 'counter_saturated')}),
    '2 true', 'the saturations of both workers\' shards, under the logical table');
# Citus creates the extension on a worker by two-phase commit: the
# worker's queue must take its incidents from then on, none discarded
is(join(',', map { $_->safe_psql('postgres', q{
    SELECT value FROM integrity_guard.check() WHERE check_name = 'audit' AND target = 'dropped'}) } @workers),
    '0,0', 'the workers keep every incident (a prepared CREATE EXTENSION counts)');
is(coord(q{SELECT sum(incidents) || ' ' || sum(occurrences) FROM integrity_guard.cluster_summary()
           WHERE table_name = 'dup' AND event_type = 'duplicate_key'}),
    '1 1', 'cluster_summary counts it once');
is(coord(q{SET ROLE reader;
           SELECT string_agg(DISTINCT table_name, ',') FROM integrity_guard.cluster_events()}),
    'tag', 'each node shows a role the incidents of the tables it may read, no others');
is(coord(q{SELECT string_agg(DISTINCT rel::text, ',' ORDER BY rel::text)
           FROM integrity_guard.check() WHERE check_name = 'guards'}),
    'conference,dup,groupedmessage,groupopenperiod,issues,other,parents,platform,project,release,tag',
    'check() runs on the coordinator and reports the logical tables\' guards, no shard\'s');

# a captured error that cannot bind (an older transaction was running when
# its table was made: the name may not be the one the error meant) stays
# unbound, shown only to those who see all, but under the logical names
my @holders = map { my $h = $_->background_psql('postgres');
                    $h->query_safe('BEGIN; SELECT txid_current()'); $h } @workers;
coord(q{CREATE TABLE fresh (project_id int, id int, CONSTRAINT fresh_key UNIQUE (project_id, id));
        SELECT create_distributed_table('fresh', 'project_id');
        INSERT INTO fresh VALUES (1, 1)});
$coord->psql('postgres', 'INSERT INTO fresh VALUES (1, 1)');
is(coord(q{SELECT string_agg(coalesce(relid::text, 'unbound') || ' ' || table_name || ' ' || target, ',')
           FROM integrity_guard.cluster_events(event_type => 'duplicate_key')
           WHERE detail->>'message' LIKE '%fresh_key%'}),
    'unbound fresh fresh_key', 'an unbound captured error on a shard is labelled with the logical names');
$_->quit for @holders;

# a table another role makes under a shard's name, on a node that does not
# hold that shard, is not the shard: its incidents are not the table's
my $elsewhere = coord(q{
    SELECT s.shardid FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
    JOIN pg_dist_node n USING (groupid)
    WHERE s.logicalrelid = 'conference'::regclass AND n.nodeport = } . $workers[0]->port . q{
    ORDER BY 1 LIMIT 1});
coord(q{CREATE ROLE mallory LOGIN; GRANT CREATE ON SCHEMA public TO mallory});
$workers[1]->safe_psql('postgres', qq{
    SET ROLE mallory;
    CREATE TABLE public.conference_$elsewhere (project_id int, id int, PRIMARY KEY (project_id, id));
    CREATE TRIGGER look_alike BEFORE INSERT OR UPDATE ON public.conference_$elsewhere
        FOR EACH ROW EXECUTE FUNCTION integrity_guard.guard_unique('mode=skip');
    INSERT INTO public.conference_$elsewhere VALUES (1, 1);
    INSERT INTO public.conference_$elsewhere VALUES (1, 1)});
is($workers[1]->safe_psql('postgres', q{
    SELECT string_agg(table_name || ' ' || target, ',') FROM integrity_guard.events()
    WHERE role_name = 'mallory'}),
    "conference_$elsewhere conference_${elsewhere}_pkey",
    'a look-alike of a shard made by another role keeps its own name in the audit');

# a node that does not answer is reported, and the others still read
$workers[1]->stop;
($rc, $out, $err) = $coord->psql('postgres',
    q{SELECT count(*) FROM integrity_guard.cluster_events(rel => 'tag')});
is($out, '1', 'the cluster readers answer without a node that is down');
like($err, qr/WARNING:  could not read the audit of node \S+:@{[ $workers[1]->port ]}/,
    'and report it');

$_->stop for reverse @nodes;
done_testing();
