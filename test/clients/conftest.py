"""Shared set-up of the client suites: Django configured on the test
database (migrated once), and helpers to take a guard off and put it back."""
import contextlib
import os
import sys

import django
import psycopg2
import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sentrylike.settings")
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from sentrylike.incidents.migrations import __name__ as _m  # noqa: E402,F401

GUARD_SQL = {
    "sentry_groupedmessage": "SELECT integrity_guard.guard_counter('sentry_groupedmessage', ARRAY['times_seen'])",
    "sentry_groupopenperiod": "SELECT integrity_guard.guard_range('sentry_groupopenperiod', 'date_started', 'date_ended')",
    "sentry_monitorcheckin": "SELECT integrity_guard.guard_children('sentry_monitorcheckin', ARRAY["
    "'sentry_monitorincident(starting_checkin_id)', 'sentry_monitorincident(resolving_checkin_id)', "
    "'sentry_checkinnote(checkin_id)'])",
    "sentry_conference": "SELECT integrity_guard.guard_duplicates('sentry_conference')",
    "sentry_consumedmessage": "SELECT integrity_guard.guard_duplicates('sentry_consumedmessage', 'skip')",
}


def sql(query, params=None):
    with connection.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else None


@contextlib.contextmanager
def unguarded(table):
    """The table as it is without pg_integrity_guard; the guard comes back after."""
    sql("SELECT integrity_guard.unguard(%s)", [table])
    try:
        yield
    finally:
        sql(GUARD_SQL[table])


def events(table, event_type):
    rows = sql(
        "SELECT coalesce(sum(occurrences), 0) FROM integrity_guard.events(rel => %s::regclass, event_type => %s)",
        [table, event_type],
    )
    return int(rows[0][0])


def admin(query):
    """A statement as the DBA (the extension's owner): the tests' clean-up."""
    with psycopg2.connect(dsn(), user=os.environ.get("IG_ADMIN_USER", "postgres")) as conn:
        with conn.cursor() as cur:
            cur.execute(query)
    conn.close()


def dsn():
    return "dbname=%s" % os.environ.get("IG_CLIENT_DB", "clients")


@pytest.fixture(scope="session", autouse=True)
def migrated():
    call_command("migrate", verbosity=0)
    yield


@pytest.fixture(autouse=True)
def clean():
    sql(
        "TRUNCATE sentry_groupedmessage, sentry_groupopenperiod, sentry_monitorcheckin, "
        "sentry_monitorincident, sentry_checkinnote, sentry_conference, sentry_consumedmessage "
        "RESTART IDENTITY CASCADE"
    )
    admin("SELECT integrity_guard.purge('0')")
    yield
