"""SQLAlchemy Core: the upsert counter with on_conflict_do_update, the range
constructor, and duplicates as IntegrityError."""
import datetime
import os

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

MAX_INT = 2_147_483_647
T0 = datetime.datetime(2024, 3, 10, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def engine():
    url = sa.engine.URL.create(
        "postgresql+psycopg2",
        username=os.environ.get("PGUSER", "postgres"),
        database=os.environ.get("IG_CLIENT_DB", "clients"),
        query={"host": os.environ.get("PGHOST", ""), "port": os.environ.get("PGPORT", "5432")},
    )
    eng = sa.create_engine(url, future=True)
    with eng.begin() as c:
        c.execute(sa.text("DROP TABLE IF EXISTS sa_group, sa_period, sa_conference"))
    yield eng
    eng.dispose()


def test_upsert_counter_saturates(engine):
    meta = sa.MetaData()
    group = sa.Table("sa_group", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("times_seen", sa.Integer, nullable=False))
    meta.create_all(engine)

    def upsert(conn, n):
        stmt = insert(group).values(id=1, times_seen=n)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[group.c.id],
            set_={"times_seen": group.c.times_seen + stmt.excluded.times_seen}))

    with engine.begin() as conn:
        upsert(conn, MAX_INT - 5)
    with pytest.raises(sa.exc.DataError, match="integer out of range"):
        with engine.begin() as conn:
            upsert(conn, 10)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT integrity_guard.guard_counter('sa_group', ARRAY['times_seen'])"))
    with engine.begin() as conn:
        upsert(conn, 10)
        upsert(conn, MAX_INT)
        assert conn.execute(sa.select(group.c.times_seen)).scalar_one() == MAX_INT


def test_range_constructor_and_duplicates(engine):
    meta = sa.MetaData()
    from sqlalchemy.dialects.postgresql import TSTZRANGE
    period = sa.Table("sa_period", meta, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("during", TSTZRANGE))
    conference = sa.Table("sa_conference", meta, sa.Column("id", sa.Integer, primary_key=True),
                          sa.Column("conference_id", sa.Integer),
                          sa.Column("app", sa.Text),
                          sa.UniqueConstraint("conference_id", "app"))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT integrity_guard.guard_range('sa_period', 'during', 'swap')"))
        conn.execute(sa.text("SELECT integrity_guard.guard_duplicates('sa_conference')"))
        before = T0 - datetime.timedelta(hours=1)
        conn.execute(period.insert().values(id=1, during=sa.func.tstzrange(T0, before)))
        during = conn.execute(sa.select(period.c.during)).scalar_one()
        assert (during.lower, during.upper) == (before, T0)
        conn.execute(conference.insert().values(id=1, conference_id=7, app="web"))
    with pytest.raises(sa.exc.IntegrityError, match="conference_id, app\\)=\\(7, web\\) already exists"):
        with engine.begin() as conn:
            conn.execute(conference.insert().values(id=2, conference_id=7, app="web"))


def test_on_conflict_on_guarded_tables(engine):
    """on_conflict_do_update / do_nothing on tables guarded in either mode."""
    meta = sa.MetaData()
    tables = {mode: sa.Table("sa_upsert_%s" % mode, meta, sa.Column("id", sa.Integer, primary_key=True),
                             sa.Column("email", sa.Text, unique=True),
                             sa.Column("n", sa.Integer, nullable=False, server_default="0"))
              for mode in ("raise", "skip")}
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS sa_upsert_raise, sa_upsert_skip"))
    meta.create_all(engine)
    for mode, t in tables.items():
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT integrity_guard.guard_duplicates(:t, :m)"),
                         {"t": t.name, "m": mode})
            conn.execute(t.insert().values([{"id": 1, "email": "a"}, {"id": 2, "email": "b"}]))
        with engine.begin() as conn:
            stmt = insert(t).values([{"id": 1, "email": "a", "n": 5}, {"id": 3, "email": "c", "n": 1}])
            conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.id],
                                                    set_={"n": t.c.n + stmt.excluded.n}))
            conn.execute(insert(t).values(id=2, email="x").on_conflict_do_nothing())
            conn.execute(insert(t).values(id=7, email="b").on_conflict_do_nothing(index_elements=[t.c.email]))
            stmt = insert(t).values(id=8, email="c", n=4)
            conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.email], set_={"n": stmt.excluded.n}))
            rows = conn.execute(sa.select(t.c.id, t.c.email, t.c.n).order_by(t.c.id)).all()
            assert [tuple(r) for r in rows] == [(1, "a", 5), (2, "b", 0), (3, "c", 4)], mode
            n = conn.execute(sa.text("SELECT count(*) FROM integrity_guard.duplicate_key_attempts(rel => :t)"),
                             {"t": t.name}).scalar_one()
            assert n == 0, mode
    # a taken non-arbiter key: IntegrityError in raise mode, dropped in skip
    with pytest.raises(sa.exc.IntegrityError, match="sa_upsert_raise_email_key"):
        with engine.begin() as conn:
            conn.execute(insert(tables["raise"]).values(id=4, email="a")
                         .on_conflict_do_update(index_elements=[tables["raise"].c.id], set_={"n": 0}))
    with engine.begin() as conn:
        t = tables["skip"]
        conn.execute(insert(t).values(id=4, email="a").on_conflict_do_update(index_elements=[t.c.id], set_={"n": 0}))
        assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 3
