"""Seed 004: conferences split by a get_or_create race, before and after the
UniqueConstraint on (conference_id, app_id)."""
from django.db import models


class Participant(models.Model):
    name = models.CharField(max_length=100)


class Conference(models.Model):
    conference_id = models.CharField(max_length=100)
    app_id = models.IntegerField()
    created_at = models.DateTimeField()
    participants = models.ManyToManyField(Participant, related_name="conferences")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conference_id", "app_id"], name="conference_unique_per_app"),
        ]


class Session(models.Model):
    """Django declares the FK DEFERRABLE INITIALLY DEFERRED."""

    conference = models.ForeignKey(Conference, on_delete=models.CASCADE, related_name="sessions")


class Summary(models.Model):
    """One-to-one: two duplicates may both have one."""

    conference = models.OneToOneField(Conference, on_delete=models.CASCADE, related_name="summary")
    text = models.TextField()
