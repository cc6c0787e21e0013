# Captured errors without a table (an int4 overflow inside an expression)
# say what they are in summary() and the stats view: the SQLSTATE as the
# target, "(statement on T)" with the first table of the recorded statement,
# or "(none)" when the statement names no table.  The stored rows keep NULL
# names, so only superusers and pg_read_all_stats see them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tableless');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_integrity_guard'
integrity_guard.flush_interval = '200ms'
});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_integrity_guard;
    CREATE TABLE counters (id int PRIMARY KEY, n int);
    INSERT INTO counters VALUES (1, 2147483647);
    CREATE ROLE reader LOGIN;
    GRANT SELECT ON counters TO reader;
});
$node->psql('postgres', 'UPDATE counters SET n = n + 1');
$node->psql('postgres', 'SELECT 2147483647 + 1');
$node->psql('postgres', 'SELECT n * 2 FROM public.counters');

my $summary = q{SELECT table_name || '|' || event_type || '|' || target || '|' || occurrences
                  FROM integrity_guard.summary() WHERE schema_name IS NULL ORDER BY 1};
ok($node->poll_query_until('postgres',
    q{SELECT sum(occurrences) = 3 FROM integrity_guard.summary() WHERE schema_name IS NULL}),
   'three tableless errors are captured');
is($node->safe_psql('postgres', $summary),
   join("\n", '(none)|numeric_out_of_range|SQLSTATE 22003|1',
              '(statement on counters)|numeric_out_of_range|SQLSTATE 22003|1',
              '(statement on public.counters)|numeric_out_of_range|SQLSTATE 22003|1'),
   'summary() names the statement\'s first table, or (none), and the SQLSTATE');
# (readers show queued incidents too; the table gets them from the flush job)
ok($node->poll_query_until('postgres',
    q{SELECT count(*) = 3 FROM integrity_guard.audit_log WHERE table_name IS NULL AND schema_name IS NULL}),
   'the stored rows keep NULL names');
is($node->safe_psql('postgres',
    q{SELECT table_name || '|' || occurrences FROM integrity_guard.stats
       WHERE event_type = 'numeric_out_of_range'}),
   '(none)|3', 'the stats view labels them (none)');
is($node->safe_psql('postgres', q{SELECT count(*) FROM integrity_guard.summary()},
                    extra_params => ['-U', 'reader']),
   '0', 'a role without pg_read_all_stats sees none of them, labels or not');
is($node->safe_psql('postgres', q{
    SELECT string_agg(coalesce(integrity_guard._statement_table(s), '-'), ',' ORDER BY o)
      FROM (VALUES (1, 'update only "My Schema"."T" set a = 1'), (2, 'INSERT INTO s.t VALUES (1)'),
                   (3, 'delete from t2'), (4, 'copy t3 from stdin'), (5, 'select 1 + 1'),
                   (6, 'MERGE INTO tgt USING src ON true WHEN MATCHED THEN DELETE')) v(o, s)}),
   '"My Schema"."T",s.t,t2,t3,-,tgt', 'the statement\'s first table, as written');
$node->stop;
done_testing();
