from django.db import models


class Group(models.Model):
    """Sentry's Group: times_seen is a 32-bit PositiveIntegerField."""

    times_seen = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "sentry_groupedmessage"


class GroupOpenPeriod(models.Model):
    """No range column: an exclusion constraint over
    tstzrange(date_started, date_ended, '[]'); date_ended is NULL while open."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE)
    date_started = models.DateTimeField()
    date_ended = models.DateTimeField(null=True)

    class Meta:
        db_table = "sentry_groupopenperiod"


class MonitorCheckIn(models.Model):
    id = models.BigAutoField(primary_key=True)
    date_added = models.DateTimeField()

    class Meta:
        db_table = "sentry_monitorcheckin"


class MonitorIncident(models.Model):
    """Django declares these FKs DEFERRABLE INITIALLY DEFERRED, NO ACTION."""

    starting_checkin = models.ForeignKey(
        MonitorCheckIn, null=True, on_delete=models.DO_NOTHING, related_name="+"
    )
    resolving_checkin = models.ForeignKey(
        MonitorCheckIn, null=True, on_delete=models.DO_NOTHING, related_name="+"
    )

    class Meta:
        db_table = "sentry_monitorincident"


class CheckInNote(models.Model):
    """A soft reference: a plain id column, no constraint (seeds 001, 003)."""

    checkin_id = models.BigIntegerField(null=True, db_index=True)

    class Meta:
        db_table = "sentry_checkinnote"


class Conference(models.Model):
    """The get_or_create target of seed 004."""

    conference_id = models.IntegerField()
    app = models.CharField(max_length=64)

    class Meta:
        db_table = "sentry_conference"
        unique_together = (("conference_id", "app"),)


class ConsumedMessage(models.Model):
    """A consumer's idempotency table: replayed messages are duplicates."""

    message_id = models.CharField(max_length=64, unique=True)
    payload = models.TextField()

    class Meta:
        db_table = "sentry_consumedmessage"
