"""Attach pg_integrity_guard to the hot tables (README, "Using it from Django")."""
from django.db import migrations

GUARDS = [
    "SELECT integrity_guard.guard_counter('sentry_groupedmessage', ARRAY['times_seen'])",
    "SELECT integrity_guard.guard_range('sentry_groupopenperiod', 'date_started', 'date_ended')",
    "SELECT integrity_guard.guard_children('sentry_monitorcheckin', ARRAY["
    "'sentry_monitorincident(starting_checkin_id)', "
    "'sentry_monitorincident(resolving_checkin_id)', "
    "'sentry_checkinnote(checkin_id)'])",
    "SELECT integrity_guard.guard_duplicates('sentry_conference')",
    "SELECT integrity_guard.guard_duplicates('sentry_consumedmessage', 'skip')",
]

TABLES = [
    "sentry_groupedmessage",
    "sentry_groupopenperiod",
    "sentry_monitorcheckin",
    "sentry_conference",
    "sentry_consumedmessage",
]


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=["CREATE EXTENSION IF NOT EXISTS pg_integrity_guard"] + GUARDS,
            reverse_sql=["SELECT integrity_guard.unguard('%s')" % t for t in TABLES],
        ),
    ]
