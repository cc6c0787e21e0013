"""Guards attached and detached by migrations: Django's RunSQL with its
reverse_sql migrates backwards and forwards again, and the README's Alembic
revision upgrades and downgrades."""
import os
import re

import pytest
import sqlalchemy as sa
from django.core.management import call_command
from django.db import DataError, transaction
from django.db.models import F

from conftest import sql
from sentrylike.incidents.models import Group

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def guards():
    return sorted(sql("SELECT table_name::text, kind FROM integrity_guard.guards"))


def test_django_migration_reverses_and_reapplies():
    attached = guards()
    assert ("sentry_groupedmessage", "counter") in attached
    call_command("migrate", "incidents", "0001", verbosity=0)
    try:
        assert [g for g in guards() if g[0].startswith("sentry_")] == []
        # the guard is really gone: the server's own error is back
        group = Group.objects.create(times_seen=2_147_483_600)
        with pytest.raises(DataError, match="integer out of range"):
            with transaction.atomic():
                Group.objects.filter(id=group.id).update(times_seen=F("times_seen") + 100)
    finally:
        call_command("migrate", verbosity=0)
    assert guards() == attached
    Group.objects.filter(id=group.id).update(times_seen=F("times_seen") + 100)
    group.refresh_from_db()
    assert group.times_seen == 2_147_483_647


def readme_block(after):
    """The first python block of the README after the line containing `after`."""
    text = open(README, encoding="utf-8").read()
    rest = text[text.index(after):]
    return re.search(r"```python\n(.*?)```", rest, re.S).group(1)


def test_readme_alembic_revision_upgrades_and_downgrades():
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    # the README's revision, on a table of its own (Django's is guarded already)
    revision = readme_block("in an Alembic revision").replace("sentry_groupedmessage", "alembic_group")
    engine = sa.create_engine(sa.engine.URL.create(
        "postgresql+psycopg2", username=os.environ.get("PGUSER", "postgres"),
        database=os.environ.get("IG_CLIENT_DB", "clients"),
        query={"host": os.environ.get("PGHOST", ""), "port": os.environ.get("PGPORT", "5432")}), future=True)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS alembic_group"))
            conn.execute(sa.text("CREATE TABLE alembic_group (id int PRIMARY KEY, times_seen int NOT NULL)"))
            conn.execute(sa.text("INSERT INTO alembic_group VALUES (1, 2147483600)"))

        def run(step):
            with engine.begin() as conn:
                with Operations.context(MigrationContext.configure(conn)):
                    namespace = {}
                    exec(revision, namespace)
                    namespace[step]()

        def bump():
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE alembic_group SET times_seen = times_seen + 100"))
                return conn.execute(sa.text("SELECT times_seen FROM alembic_group")).scalar()

        run("upgrade")
        assert ("alembic_group", "counter") in guards()
        assert bump() == 2_147_483_647
        run("downgrade")
        assert [g for g in guards() if g[0] == "alembic_group"] == []
        with pytest.raises(sa.exc.DataError, match="integer out of range"):
            bump()
        run("upgrade")
        assert bump() == 2_147_483_647
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS alembic_group"))
        engine.dispose()
