"""The production incidents through Django's ORM: each first failing without
its guard, then absorbed with it."""
import datetime
import threading
import time

import psycopg2
import pytest
from django.db import DataError, IntegrityError, connection, connections, transaction
from django.db.models import F
from django.utils import timezone

from conftest import dsn, events, sql, unguarded
from sentrylike.incidents.models import (
    CheckInNote,
    Conference,
    Group,
    GroupOpenPeriod,
    MonitorCheckIn,
    MonitorIncident,
)

MAX_INT = 2_147_483_647
BULK_DELETE = (
    "DELETE FROM sentry_monitorcheckin WHERE id IN "
    "(SELECT id FROM sentry_monitorcheckin ORDER BY id LIMIT 10000)"
)


def test_migrations_attached_the_guards():
    kinds = dict(sql("SELECT table_name::text, string_agg(DISTINCT kind, ',') FROM integrity_guard.guards WHERE table_name::text LIKE 'sentry%' GROUP BY 1"))
    assert kinds == {
        "sentry_groupedmessage": "counter",
        "sentry_groupopenperiod": "range",
        "sentry_monitorcheckin": "children",
        "sentry_conference": "unique",
        "sentry_consumedmessage": "unique",
    }


def test_times_seen_increment_past_2_31():
    group = Group.objects.create(times_seen=MAX_INT - 50)
    with unguarded("sentry_groupedmessage"):
        with pytest.raises(DataError, match="integer out of range"):
            with transaction.atomic():
                Group.objects.filter(id=group.id).update(times_seen=F("times_seen") + 100)
    Group.objects.filter(id=group.id).update(times_seen=F("times_seen") + 100)
    Group.objects.filter(id=group.id).update(times_seen=F("times_seen") + 1)
    group.refresh_from_db()
    assert group.times_seen == MAX_INT
    assert events("sentry_groupedmessage", "counter_saturated") == 2


def test_open_period_closed_before_it_started():
    started = timezone.now()
    period = GroupOpenPeriod.objects.create(group=Group.objects.create(), date_started=started)
    with unguarded("sentry_groupopenperiod"):
        with pytest.raises(DataError, match="range lower bound"):
            with transaction.atomic():
                GroupOpenPeriod.objects.filter(id=period.id).update(
                    date_ended=started - datetime.timedelta(seconds=2)
                )
    period.date_ended = started - datetime.timedelta(seconds=2)
    period.save()
    period.refresh_from_db()
    assert period.date_ended == period.date_started
    assert events("sentry_groupopenperiod", "range_clamped") == 1


def make_checkins(n):
    now = timezone.now()
    checkins = MonitorCheckIn.objects.bulk_create(MonitorCheckIn(date_added=now) for _ in range(n))
    ids = [c.id for c in checkins]
    MonitorIncident.objects.bulk_create(
        MonitorIncident(starting_checkin_id=i, resolving_checkin_id=i + 1) for i in ids[:-1:4]
    )
    CheckInNote.objects.bulk_create(CheckInNote(checkin_id=i) for i in ids[::2])
    return ids


def test_bulk_delete_referenced_checkins_in_atomic():
    make_checkins(12000)
    with unguarded("sentry_monitorcheckin"):
        # the deferred FK fails at COMMIT, as in Sentry's cleanup job
        with pytest.raises(IntegrityError, match="violates foreign key constraint"):
            with transaction.atomic():
                with connection.cursor() as cur:
                    cur.execute(BULK_DELETE)
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(BULK_DELETE)
            assert cur.rowcount == 10000
    assert MonitorCheckIn.objects.count() == 2000
    dangling = sql(
        "SELECT count(*) FROM sentry_monitorincident i WHERE NOT EXISTS "
        "(SELECT 1 FROM sentry_monitorcheckin c WHERE c.id = i.starting_checkin_id) "
        "AND i.starting_checkin_id IS NOT NULL"
    )[0][0]
    assert dangling == 0
    assert MonitorIncident.objects.filter(starting_checkin__isnull=True).count() == 2500
    assert events("sentry_monitorcheckin", "children_nullified") == 2500 + 2500 + 5000


def test_bulk_delete_referenced_checkins_in_autocommit():
    make_checkins(12000)
    with unguarded("sentry_monitorcheckin"):
        with pytest.raises(IntegrityError, match="violates foreign key constraint"):
            with connection.cursor() as cur:
                cur.execute(BULK_DELETE)
    with connection.cursor() as cur:
        cur.execute(BULK_DELETE)
    assert MonitorCheckIn.objects.count() == 2000
    assert CheckInNote.objects.filter(checkin_id__isnull=True).count() == 5000


def test_deleting_a_parent_behind_a_soft_reference():
    checkin = MonitorCheckIn.objects.create(date_added=timezone.now())
    note = CheckInNote.objects.create(checkin_id=checkin.id)
    with unguarded("sentry_monitorcheckin"):
        with transaction.atomic():
            MonitorCheckIn.objects.filter(id=checkin.id).delete()
            transaction.set_rollback(True)
        note.refresh_from_db()
        # nothing fails without the guard: the id silently dangles
        assert note.checkin_id == checkin.id
    MonitorCheckIn.objects.filter(id=checkin.id).delete()
    note.refresh_from_db()
    assert note.checkin_id is None


def waiting_backends():
    with psycopg2.connect(dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cur.fetchone()[0]


def test_get_or_create_from_eight_threads():
    """One thread's INSERT stays uncommitted until the seven others are
    waiting on it inside the guard's probe; then all of them race."""
    results = []
    errors = []
    inserted = threading.Event()

    def winner():
        try:
            with transaction.atomic():
                obj = Conference.objects.create(conference_id=42, app="web")
                inserted.set()
                deadline = time.time() + 20
                while waiting_backends() < 7 and time.time() < deadline:
                    time.sleep(0.05)
            results.append((obj.id, True))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def loser():
        try:
            inserted.wait(10)
            with transaction.atomic():  # Django code runs in a request transaction
                obj, created = Conference.objects.get_or_create(conference_id=42, app="web")
            results.append((obj.id, created))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=winner)] + [threading.Thread(target=loser) for _ in range(7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(results) == 8
    assert Conference.objects.count() == 1
    assert len({pk for pk, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    attempts = sql(
        "SELECT sum(occurrences), min(detail->>'key') "
        "FROM integrity_guard.duplicate_key_attempts(rel => 'sentry_conference')"
    )[0]
    assert attempts == (7, "(conference_id, app)=(42, web)")


def test_consumer_replaying_messages_skips_duplicates():
    insert = "INSERT INTO sentry_consumedmessage (message_id, payload) VALUES (%s, %s)"
    first = [("m%d" % i, "first") for i in range(5)]
    replay = [("m%d" % i, "replay") for i in range(3, 8)]
    with connection.cursor() as cur:
        cur.executemany(insert, first)
    with unguarded("sentry_consumedmessage"):
        with pytest.raises(IntegrityError, match="duplicate key"):
            with transaction.atomic():
                with connection.cursor() as cur:
                    cur.executemany(insert, replay)
    with connection.cursor() as cur:
        cur.executemany(insert, replay)
    rows = dict(sql("SELECT message_id, payload FROM sentry_consumedmessage"))
    assert rows == {**dict(first), "m5": "replay", "m6": "replay", "m7": "replay"}
    assert events("sentry_consumedmessage", "duplicate_key") == 2
