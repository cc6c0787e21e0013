"""Seed 004 through Django: duplicates made by the get_or_create race before
the UniqueConstraint existed, merged by a data migration, then the schema
migration adds the constraint."""
import datetime
import json

from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from conftest import admin, sql
from sentrylike.conferences.models import Conference, Participant, Session, Summary


def test_merge_migration_then_unique_constraint():
    # back to before the merge: no constraint, duplicates can be made
    call_command("migrate", "conferences", "0001", verbosity=0)
    sql("TRUNCATE conferences_conference, conferences_participant RESTART IDENTITY CASCADE")
    admin("DELETE FROM integrity_guard.audit_log WHERE event_type = 'duplicates_merged'")
    t0 = timezone.now()
    people = [Participant.objects.create(name="p%d" % i) for i in range(3)]
    kept = {}
    for n in range(5):
        # the race: two (or three) rows per conference; the oldest is kept
        rows = [
            Conference.objects.create(conference_id="c%d" % n, app_id=1,
                                      created_at=t0 + datetime.timedelta(seconds=s))
            for s in ([3, 1, 2] if n == 0 else [2, 1])
        ]
        kept[n] = min(rows, key=lambda r: r.created_at).id
        for r in rows:
            Session.objects.create(conference=r)
            Session.objects.create(conference=r)
            r.participants.add(people[0])          # the same link on every copy
            r.participants.add(people[r.id % 3])
        Summary.objects.create(conference=rows[0], text="first")
        Summary.objects.create(conference=rows[1], text="second")
    Conference.objects.create(conference_id="c0", app_id=2, created_at=t0)   # another app: no duplicate
    sessions = Session.objects.count()
    links = sql("SELECT count(*) FROM conferences_conference_participants")[0][0]
    summaries = Summary.objects.count()

    call_command("migrate", "conferences", verbosity=0)

    assert Conference.objects.count() == 6
    assert sorted(Conference.objects.filter(app_id=1).values_list("id", flat=True)) == sorted(kept.values())
    assert Session.objects.count() == sessions
    assert set(Session.objects.values_list("conference_id", flat=True)) <= set(kept.values())
    detail = json.loads(sql("SELECT detail::text FROM integrity_guard.events(event_type => 'duplicates_merged')")[0][0])
    conflicts = detail["child_conflicts_deleted"]
    assert detail["rows_deleted"] == 6
    assert detail["batches"] == 3, "committed between batches: the data migration is not atomic"
    assert Summary.objects.count() == summaries - conflicts["public.conferences_summary"]
    assert Summary.objects.count() == 5
    now_links = sql("SELECT count(*) FROM conferences_conference_participants")[0][0]
    assert now_links == links - conflicts["public.conferences_conference_participants"]
    for n, cid in kept.items():
        assert Conference.objects.get(id=cid).participants.filter(id=people[0].id).exists()
    # the schema migration added the constraint: the race now fails loudly
    with transaction.atomic():
        try:
            with transaction.atomic():
                Conference.objects.create(conference_id="c1", app_id=1, created_at=t0)
            raise AssertionError("duplicate accepted")
        except IntegrityError:
            pass
    assert sql("SELECT count(*) FROM pg_constraint WHERE conname = 'conference_unique_per_app'")[0][0] == 1
