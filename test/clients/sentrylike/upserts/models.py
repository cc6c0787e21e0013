"""Upsert paths on guarded tables (issue 12): Django's bulk_create with
ignore_conflicts / update_conflicts and get_or_create."""
from django.db import models


class Release(models.Model):
    """Guarded with guard_duplicates(mode=raise)."""

    project_id = models.IntegerField()
    version = models.CharField(max_length=64)
    commits = models.IntegerField(default=0)

    class Meta:
        db_table = "upserts_release"
        unique_together = (("project_id", "version"),)


class Tag(models.Model):
    """Guarded with guard_duplicates(mode=skip); a second unique key."""

    key = models.CharField(max_length=64, unique=True)
    slug = models.CharField(max_length=64, unique=True)
    seen = models.IntegerField(default=0)

    class Meta:
        db_table = "upserts_tag"
