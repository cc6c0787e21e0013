# Hostile roles on a preloaded server with the durable pipeline (issue 22):
# no crash from a public function, one refused audit entry never blocks the
# others, an incident of a delete left to the server survives its rollback,
# and captured errors stay with the relation that raised them when it is
# renamed and another role takes its name.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('hostile');
$node->init;
# a long flush interval: incidents stay queued until flush() asks
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '10min'
});
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE app');
# a fresh install: check() reports nothing critical (the audit's own
# triggers are no guards)
is($node->safe_psql('app', q{CREATE EXTENSION pg_integrity_guard;
                             SELECT count(*) FROM integrity_guard.check() WHERE status = 'critical'}),
    '0', 'check() on a fresh install reports no critical row');
$node->safe_psql('app', q{
    CREATE ROLE alice LOGIN;
    CREATE ROLE bob LOGIN;
    CREATE ROLE mallory LOGIN;
    CREATE ROLE watcher LOGIN IN ROLE pg_read_all_stats;
    CREATE SCHEMA shared;
    GRANT USAGE, CREATE ON SCHEMA shared TO PUBLIC;
    GRANT CREATE ON SCHEMA public TO alice, bob, mallory;
});
sub as_role {
    my ($role, $sql) = @_;
    return $node->safe_psql('app', "SET ROLE $role; $sql");
}
sub flush { $node->safe_psql('app', 'SELECT integrity_guard.flush()'); }
my $started = $node->safe_psql('app', 'SELECT pg_postmaster_start_time()');

# -- 1. NULL arguments: an error, no crash, nobody's queued incidents lost
as_role('alice', q{CREATE TABLE a_own (id int PRIMARY KEY, n int);
                   SELECT integrity_guard._repair_record('orphans_fixed', 'a_own', 'queued before', '{}', 3);});
for my $call ("_repair_record('orphans_fixed', 'pg_class', NULL, NULL, 1)",
              "_repair_record(NULL, 'pg_class', 'x', NULL, 1)",
              "_repair_record(NULL, NULL, NULL, NULL, NULL)")
{
    my ($ret, $out, $err) = $node->psql('app', "SET ROLE mallory; SELECT integrity_guard.$call");
    like($err, qr/must not be null/, "$call: a clear error");
}
is($node->safe_psql('app', 'SELECT pg_postmaster_start_time()'), $started,
    'the server never restarted');
unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no backend crashed');
flush();
is($node->safe_psql('app', q{SELECT occurrences FROM integrity_guard.audit_log WHERE target = 'queued before'}),
    '3', "another role's queued incident was kept and written");

# -- 2. a row the audit table refuses is set aside; the others are written
$node->safe_psql('app', q{ALTER TABLE integrity_guard.audit_log
                            ADD CONSTRAINT no_poison CHECK (target IS DISTINCT FROM 'poison')});
as_role('mallory', q{CREATE TABLE m_own (id int PRIMARY KEY);
                     SELECT integrity_guard._repair_record('orphans_fixed', 'm_own', 'poison', '{}', 1);});
as_role('alice', q{SELECT integrity_guard._repair_record('orphans_fixed', 'a_own', 'after poison', '{}', 2);});
as_role('bob', q{CREATE TABLE b_own (id int PRIMARY KEY);
                 SELECT integrity_guard._repair_record('duplicates_merged', 'b_own', 'bob too', '{}', 1);});
flush();
is($node->safe_psql('app', q{SELECT string_agg(target, ',' ORDER BY target) FROM integrity_guard.audit_log
                              WHERE target IN ('poison', 'after poison', 'bob too')}),
    'after poison,bob too', 'every other role\'s incident is written');
is($node->safe_psql('app', q{SELECT value FROM integrity_guard.status() WHERE name = 'set_aside'}),
    '1', 'status() counts the entry set aside');
like($node->safe_psql('app', q{SELECT detail FROM integrity_guard.status() WHERE name = 'set_aside'}),
    qr/no_poison/, 'status() shows its error');
like(slurp_file($node->logfile), qr/set aside an incident the audit table refused/,
    'the server log says what was set aside');
is($node->safe_psql('app', q{SELECT count(*) FROM integrity_guard._pending() WHERE target = 'poison'}),
    '0', 'the entry set aside is not retried forever');
as_role('alice', q{SELECT integrity_guard._repair_record('orphans_fixed', 'a_own', 'later', '{}', 1);});
flush();
is($node->safe_psql('app', q{SELECT count(*) FROM integrity_guard.audit_log WHERE target = 'later'}),
    '1', 'later flushes write as before');
for my $role ('postgres', 'watcher', 'mallory')
{
    my ($ret) = $node->psql('app', "SET ROLE $role; SELECT count(*) FROM integrity_guard.events();
                                    SELECT count(*) FROM integrity_guard.summary();");
    is($ret, 0, "the readers work for $role");
}
$node->safe_psql('app', 'ALTER TABLE integrity_guard.audit_log DROP CONSTRAINT no_poison');

# -- 3. a delete left to the server (no consent) fails with the server's
# error; its children_left incident outlives the rollback
as_role('alice', q{CREATE TABLE pa (id int PRIMARY KEY);
                   CREATE TABLE pac (a_id int REFERENCES pa);
                   INSERT INTO pa VALUES (1), (2);
                   SELECT integrity_guard.guard_children('pa');
                   GRANT REFERENCES ON pa TO mallory;});
as_role('mallory', q{CREATE TABLE mc (a_id int REFERENCES pa); INSERT INTO mc VALUES (1);});
my ($ret, $out, $err) = $node->psql('app', 'DELETE FROM pa WHERE id = 1');
like($err, qr/violates foreign key constraint "mc_a_id_fkey"/, 'the foreign key error stands');
flush();
is($node->safe_psql('app', q{SELECT target || ':' || occurrences FROM integrity_guard.audit_log
                              WHERE event_type = 'children_left'}),
    'public.mc(a_id):1', 'children_left is recorded though the delete failed');

# -- 5. a captured duplicate of bob's table: bob renames it, mallory takes
# the name; neither the queued nor the written incident, nor the stats,
# reach mallory
as_role('bob', q{CREATE TABLE shared.accounts (ssn text PRIMARY KEY);
                 INSERT INTO shared.accounts VALUES ('123-45-6789');});
($ret, $out, $err) = $node->psql('app', q{SET ROLE bob; INSERT INTO shared.accounts VALUES ('123-45-6789')});
like($err, qr/duplicate key/, 'bob gets the server\'s error');
as_role('bob', 'ALTER TABLE shared.accounts RENAME TO accounts_old');
as_role('mallory', 'CREATE TABLE shared.accounts (ssn text PRIMARY KEY)');
my $peek = q{SELECT count(*) FROM integrity_guard.events() WHERE detail::text LIKE '%123-45-6789%'
             OR table_name = 'accounts'};
is(as_role('mallory', $peek), '0', 'queued: mallory sees nothing of it');
is(as_role('mallory', q{SELECT count(*) FROM integrity_guard.stats WHERE table_name = 'accounts'}),
    '0', 'queued: mallory sees no stats of it');
is($node->safe_psql('app', q{SELECT count(*) FROM integrity_guard.events()
                              WHERE detail::text LIKE '%123-45-6789%'}),
    '1', 'the superuser sees it');
flush();
is(as_role('mallory', $peek), '0', 'written: mallory sees nothing of it');
is(as_role('mallory', q{SELECT count(*) FROM integrity_guard.stats WHERE table_name = 'accounts'}),
    '0', 'written: mallory sees no stats of it');
is($node->safe_psql('app', q{SELECT relid IS NULL FROM integrity_guard.audit_log
                              WHERE detail->>'sqlstate' = '23505' AND table_name = 'accounts'}),
    't', 'the written row is bound to no table that took the name');
# an error of a table that kept its name is bound to it as before
($ret, $out, $err) = $node->psql('app', q{SET ROLE mallory; INSERT INTO shared.accounts VALUES ('1'), ('1')});
flush();
is(as_role('mallory', q{SELECT count(*) FROM integrity_guard.events()
                        WHERE relid = 'shared.accounts'::regclass AND detail->>'sqlstate' = '23505'}),
    '1', "mallory sees her own table's captured error");
is(as_role('mallory', q{SELECT sum(occurrences) FROM integrity_guard.stats
                        WHERE table_name = 'accounts' AND event_type = 'duplicate_key'}),
    '1', 'and its counter, not bob\'s');

# a dropped table's name retires its captured errors and counters, even
# when the catalog rows of a table that takes the name are frozen
as_role('alice', q{CREATE TABLE shared.acct (id int CONSTRAINT acct_pkey PRIMARY KEY);
                   INSERT INTO shared.acct VALUES (42);});
for (1 .. 2) { $node->psql('app', 'SET ROLE alice; INSERT INTO shared.acct VALUES (42)'); }
flush();
as_role('alice', 'DROP TABLE shared.acct');
as_role('mallory', 'CREATE TABLE shared.acct (id int)');
$node->safe_psql('app', 'VACUUM FREEZE pg_class; VACUUM FREEZE pg_namespace;');
is(as_role('mallory', q{SELECT count(*) FROM integrity_guard.stats WHERE table_name = 'acct'}),
    '0', 'frozen or not, the new table inherits no counter of the dropped one');
is(as_role('mallory', q{SELECT count(*) FROM integrity_guard.events() WHERE table_name = 'acct'}),
    '0', 'nor its incidents');

# a guarded table dropped and created again: its counters carry each
# relation's OID, and stats still shows one row per label set (two alike
# would fail a Prometheus scrape)
for (1 .. 2)
{
    as_role('alice', q{DROP TABLE IF EXISTS ctr;
                       CREATE TABLE ctr (id int PRIMARY KEY, n int);
                       SELECT integrity_guard.guard_counter('ctr', ARRAY['n']);
                       INSERT INTO ctr VALUES (1, 2147483647);
                       UPDATE ctr SET n = n + 1;});
}
is($node->safe_psql('app', q{SELECT count(*) || ':' || sum(occurrences) FROM integrity_guard.stats
                              WHERE table_name = 'ctr'}),
    '1:2', 'one stats row per label set, its counts added up');

is($node->safe_psql('app', 'SELECT pg_postmaster_start_time()'), $started,
    'the server never restarted');
$node->stop;
done_testing();
