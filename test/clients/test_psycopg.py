"""The counter, range and duplicate scenarios through psycopg 3 directly:
server-side parameters and psycopg's own range type."""
import datetime

import psycopg
import pytest
from psycopg.types.range import Range

from conftest import dsn

MAX_INT = 2_147_483_647
T0 = datetime.datetime(2024, 3, 10, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def conn():
    with psycopg.connect(dsn(), autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS pg3_group, pg3_period, pg3_plain, pg3_guarded")
        c.execute("CREATE TABLE pg3_group (id int PRIMARY KEY, times_seen int NOT NULL)")
        c.execute("CREATE TABLE pg3_period (id int PRIMARY KEY, during tstzrange, "
                  "started timestamptz, ended timestamptz)")
        c.execute("CREATE TABLE pg3_plain (conference_id int, app text, UNIQUE (conference_id, app))")
        c.execute("CREATE TABLE pg3_guarded (conference_id int, app text, UNIQUE (conference_id, app))")
        yield c


def test_counter_with_server_side_parameters(conn):
    conn.execute("INSERT INTO pg3_group VALUES (%s, %s)", (1, MAX_INT - 10))
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        conn.execute("UPDATE pg3_group SET times_seen = times_seen + %s WHERE id = %s", (100, 1))
    conn.execute("SELECT integrity_guard.guard_counter('pg3_group', ARRAY['times_seen'])")
    # a prepared statement (psycopg prepares after repeated use) is rewritten too
    for _ in range(6):
        conn.execute("UPDATE pg3_group SET times_seen = times_seen + %s WHERE id = %s",
                     (100, 1), prepare=True)
    assert conn.execute("SELECT times_seen FROM pg3_group").fetchone()[0] == MAX_INT


def test_range_constructor_with_parameters(conn):
    conn.execute("SELECT integrity_guard.guard_range('pg3_period', 'during')")
    conn.execute("SELECT integrity_guard.guard_range('pg3_period', 'started', 'ended')")
    conn.execute("INSERT INTO pg3_period (id, started) VALUES (1, %s)", (T0,))
    before = T0 - datetime.timedelta(seconds=1)
    # psycopg2's shape: a constructor call with parameters, rewritten
    conn.execute("UPDATE pg3_period SET during = tstzrange(%s, %s, '[]') WHERE id = 1", (T0, before))
    # the column pair, through the trigger
    conn.execute("UPDATE pg3_period SET ended = %s WHERE id = 1", (before,))
    during, ended = conn.execute("SELECT during, ended FROM pg3_period").fetchone()
    assert (during.lower, during.upper) == (T0, T0)
    assert ended == T0
    # psycopg 3's own Range is sent as a literal, which fails while it is
    # parsed: nothing can rescue it (README, Limitations)
    with pytest.raises(psycopg.errors.DataException, match="range lower bound"):
        conn.execute("UPDATE pg3_period SET during = %s WHERE id = 1", (Range(T0, before),))


def test_duplicate_error_is_the_servers_own(conn):
    conn.execute("SELECT integrity_guard.guard_duplicates('pg3_guarded')")
    diags = []
    for table in ("pg3_plain", "pg3_guarded"):
        conn.execute("INSERT INTO %s VALUES (%%s, %%s)" % table, (1, "web"))
        with pytest.raises(psycopg.errors.UniqueViolation) as err:
            conn.execute("INSERT INTO %s VALUES (%%s, %%s)" % table, (1, "web"))
        d = err.value.diag
        diags.append((d.sqlstate, d.message_primary.replace(table, "T"),
                      d.message_detail, d.schema_name, d.constraint_name.replace(table, "T")))
    assert diags[0] == diags[1]
    n = conn.execute(
        "SELECT sum(occurrences) FROM integrity_guard.duplicate_key_attempts(rel => 'pg3_guarded')"
    ).fetchone()[0]
    # an autocommit INSERT that fails takes its own audit row with it
    # (transactional audit, README): recorded only inside a savepoint
    assert n is None
    with conn.transaction():
        with pytest.raises(psycopg.errors.UniqueViolation):
            with conn.transaction():
                conn.execute("INSERT INTO pg3_guarded VALUES (%s, %s)", (1, "web"))
        conn.execute("SELECT 1")
    n = conn.execute(
        "SELECT sum(occurrences) FROM integrity_guard.duplicate_key_attempts(rel => 'pg3_guarded')"
    ).fetchone()[0]
    assert n == 1


def test_upserts_on_guarded_tables(conn):
    """executemany and pipeline mode with ON CONFLICT on guarded tables, in
    both modes: the statement's own conflicts are no duplicate attempts."""
    conn.execute("DROP TABLE IF EXISTS pg3_up_raise, pg3_up_skip")
    for table, mode in (("pg3_up_raise", "raise"), ("pg3_up_skip", "skip")):
        conn.execute("CREATE TABLE %s (id int PRIMARY KEY, email text UNIQUE, n int NOT NULL DEFAULT 0)" % table)
        conn.execute("SELECT integrity_guard.guard_duplicates(%s, %s)", (table, mode))
        conn.execute("INSERT INTO %s VALUES (1, 'a'), (2, 'b')" % table)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO %s VALUES (%%s, %%s) ON CONFLICT (id) DO UPDATE SET n = %s.n + 1"
                            % (table, table), [(1, "a"), (3, "c"), (1, "a")])
        with conn.pipeline():
            conn.execute("INSERT INTO %s VALUES (%%s, %%s) ON CONFLICT DO NOTHING" % table, (2, "zz"))
            conn.execute("INSERT INTO %s VALUES (%%s, %%s) ON CONFLICT (email) DO UPDATE SET n = 10" % table,
                         (9, "b"))
        rows = conn.execute("SELECT id, email, n FROM %s ORDER BY id" % table).fetchall()
        assert rows == [(1, "a", 2), (2, "b", 10), (3, "c", 0)], mode
        n = conn.execute("SELECT count(*) FROM integrity_guard.duplicate_key_attempts(rel => %s::regclass)",
                         (table,)).fetchone()[0]
        assert n == 0, mode
    # a taken non-arbiter key: the server's error in raise mode, dropped in skip
    with pytest.raises(psycopg.errors.UniqueViolation, match="pg3_up_raise_email_key"):
        conn.execute("INSERT INTO pg3_up_raise VALUES (4, 'a') ON CONFLICT (id) DO UPDATE SET n = 0")
    conn.execute("INSERT INTO pg3_up_skip VALUES (4, 'a') ON CONFLICT (id) DO UPDATE SET n = 0")
    assert conn.execute("SELECT count(*) FROM pg3_up_skip").fetchone()[0] == 3
