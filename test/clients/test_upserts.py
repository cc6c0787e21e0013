"""Upserts through Django on guarded tables (issue 12): a conflict the
statement's own ON CONFLICT handles is no duplicate attempt, in mode=raise
(upserts_release) and mode=skip (upserts_tag)."""
import threading
import time

import django
import pytest
from django.db import IntegrityError, connection, connections, transaction

from conftest import sql
from sentrylike.upserts.models import Release, Tag


@pytest.fixture(autouse=True)
def clean_upserts():
    sql("TRUNCATE upserts_release, upserts_tag RESTART IDENTITY")
    yield


def attempts(table):
    rows = sql("SELECT coalesce(sum(occurrences), 0) FROM integrity_guard.duplicate_key_attempts(rel => %s::regclass)",
               [table])
    return int(rows[0][0])


def update_conflicts(model, objs, unique_fields, update_fields):
    """bulk_create(update_conflicts=True) (Django 4.1+); on older Django the
    statement it sends, through the ORM's connection."""
    if django.VERSION >= (4, 1):
        model.objects.bulk_create(objs, update_conflicts=True, unique_fields=unique_fields,
                                  update_fields=update_fields)
        return
    table = model._meta.db_table
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    cols = ", ".join(f.column for f in fields)
    values = ", ".join("(%s)" % ", ".join(["%s"] * len(fields)) for _ in objs)
    params = [getattr(o, f.attname) for o in objs for f in fields]
    sets = ", ".join("%s = EXCLUDED.%s" % (c, c) for c in update_fields)
    with connection.cursor() as cur:
        cur.execute("INSERT INTO %s (%s) VALUES %s ON CONFLICT (%s) DO UPDATE SET %s"
                    % (table, cols, values, ", ".join(unique_fields), sets), params)


def test_guards_attached():
    kinds = dict(sql("SELECT table_name::text, options FROM integrity_guard.guards "
                     "WHERE table_name::text LIKE 'upserts%'"))
    assert set(kinds) == {"upserts_release", "upserts_tag"}


def test_bulk_create_ignore_conflicts():
    Release.objects.create(project_id=1, version="1.0", commits=5)
    Tag.objects.create(key="os", slug="os", seen=1)
    Release.objects.bulk_create([Release(project_id=1, version="1.0", commits=99),
                                 Release(project_id=1, version="2.0", commits=7)], ignore_conflicts=True)
    Tag.objects.bulk_create([Tag(key="os", slug="os2"), Tag(key="browser", slug="browser")],
                            ignore_conflicts=True)
    assert sorted(Release.objects.values_list("version", "commits")) == [("1.0", 5), ("2.0", 7)]
    assert sorted(Tag.objects.values_list("key", "seen")) == [("browser", 0), ("os", 1)]
    assert attempts("upserts_release") == 0
    assert attempts("upserts_tag") == 0


def test_bulk_create_update_conflicts():
    Release.objects.create(project_id=1, version="1.0", commits=5)
    Tag.objects.create(key="os", slug="os", seen=1)
    update_conflicts(Release, [Release(project_id=1, version="1.0", commits=6),
                               Release(project_id=2, version="1.0", commits=1)],
                     ["project_id", "version"], ["commits"])
    update_conflicts(Tag, [Tag(key="os", slug="os", seen=2)], ["key"], ["seen"])
    assert sorted(Release.objects.values_list("project_id", "commits")) == [(1, 6), (2, 1)]
    assert list(Tag.objects.values_list("key", "seen")) == [("os", 2)]
    assert attempts("upserts_release") == 0
    assert attempts("upserts_tag") == 0


def test_upsert_duplicate_on_another_key_is_still_guarded():
    Release.objects.create(project_id=1, version="1.0")
    Tag.objects.create(key="os", slug="os")
    Tag.objects.create(key="browser", slug="browser")
    # the server refuses: a non-arbiter key is taken; raise gives its error
    with pytest.raises(IntegrityError, match="already exists"):
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("INSERT INTO upserts_release (project_id, version, commits) VALUES (1, '1.0', 1) "
                            "ON CONFLICT (id) DO NOTHING")
    # skip drops the row that would take a taken slug; the statement goes on
    update_conflicts(Tag, [Tag(key="device", slug="os", seen=3), Tag(key="sdk", slug="sdk", seen=4)],
                     ["key"], ["seen"])
    assert sorted(Tag.objects.values_list("key", flat=True)) == ["browser", "os", "sdk"]
    assert attempts("upserts_tag") == 1


def lock_waiters():
    with connections["default"].cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'")
        return cur.fetchone()[0]


def race(first, others, n_others=5):
    """first() runs in a transaction held open until the n_others threads
    running others() all wait on it; then everyone finishes."""
    results, errors = [], []
    started = threading.Event()

    def run_first():
        try:
            with transaction.atomic():
                results.append(first())
                started.set()
                deadline = time.time() + 20
                while lock_waiters() < n_others and time.time() < deadline:
                    time.sleep(0.05)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            started.set()
            connections.close_all()

    def run_other():
        try:
            started.wait(10)
            with transaction.atomic():
                results.append(others())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run_first)] + [threading.Thread(target=run_other) for _ in range(n_others)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    return results


def test_get_or_create_race_on_guarded_table():
    results = race(lambda: Release.objects.create(project_id=9, version="r").id,
                   lambda: Release.objects.get_or_create(project_id=9, version="r")[0].id)
    assert len(results) == 6 and len(set(results)) == 1
    assert Release.objects.count() == 1
    assert attempts("upserts_release") == 5


def test_upsert_race_on_guarded_table():
    results = race(lambda: Tag.objects.create(key="race", slug="race").id,
                   lambda: update_conflicts(Tag, [Tag(key="race", slug="race", seen=1)], ["key"], ["seen"]))
    assert len(results) == 6
    assert list(Tag.objects.values_list("key", "seen")) == [("race", 1)]
    assert attempts("upserts_tag") == 0
