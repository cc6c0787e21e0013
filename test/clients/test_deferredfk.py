"""Django's deferred foreign keys and the children guard (issue 12.5): the
guard acts at COMMIT, on what the transaction left dangling, and leaves
alone what it fixed."""
import pytest
from django.db import IntegrityError, transaction

from conftest import events, sql
from sentrylike.deferredfk.models import Project, Release


@pytest.fixture(autouse=True)
def clean_deferredfk():
    sql("TRUNCATE deferredfk_release, deferredfk_project RESTART IDENTITY")
    yield


def guard_off():
    sql("SELECT integrity_guard.unguard('deferredfk_project')")


def guard_on():
    sql("SELECT integrity_guard.guard_children('deferredfk_project')")


def make():
    old, new = Project.objects.create(name="old"), Project.objects.create(name="new")
    Release.objects.bulk_create(Release(project=old, version=str(v)) for v in range(5))
    return old, new


def test_children_repointed_before_commit_keep_their_new_parent():
    old, new = make()
    with transaction.atomic():
        Project.objects.filter(id=old.id).delete()
        # inside the transaction the children still point at the deleted row
        assert Release.objects.filter(project_id=old.id).count() == 5
        Release.objects.filter(project_id=old.id).update(project=new)
    assert Release.objects.filter(project=new).count() == 5
    assert Release.objects.filter(project__isnull=True).count() == 0
    assert events("deferredfk_project", "children_nullified") == 0


def test_parent_deleted_children_left_are_cleared_at_commit():
    old, _ = make()
    guard_off()
    try:
        with pytest.raises(IntegrityError, match="violates foreign key constraint"):
            with transaction.atomic():
                Project.objects.filter(id=old.id).delete()
    finally:
        guard_on()
    with transaction.atomic():
        Project.objects.filter(id=old.id).delete()
        assert Release.objects.filter(project_id=old.id).count() == 5
    assert Release.objects.filter(project__isnull=True).count() == 5
    assert events("deferredfk_project", "children_nullified") == 5


def test_parent_recreated_with_the_same_key_keeps_its_children():
    old, _ = make()
    with transaction.atomic():
        Project.objects.filter(id=old.id).delete()
        Project.objects.create(id=old.id, name="again")
    assert Release.objects.filter(project_id=old.id).count() == 5
