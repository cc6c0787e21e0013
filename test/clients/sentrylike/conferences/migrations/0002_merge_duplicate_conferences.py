"""Data migration (seed 004's PR did this by hand, model by model): keep the
oldest conference of each (conference_id, app_id) group, move sessions,
summaries and participant links to it, delete the others.  Not atomic, so
that the procedure commits between batches instead of holding every lock
until the end."""
from django.db import migrations

MERGE = (
    "CALL integrity_guard.merge_duplicates('conferences_conference', ARRAY['conference_id', 'app_id'], "
    "keep_order => 'created_at, id', batch_groups => 2)"
)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("conferences", "0001_initial"), ("incidents", "0002_integrity_guards")]

    operations = [
        migrations.RunSQL(sql=MERGE, reverse_sql=migrations.RunSQL.noop),
    ]
