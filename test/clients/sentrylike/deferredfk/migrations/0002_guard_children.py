"""Guard the project's children: every FK referencing it (Django's deferred one)."""
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("deferredfk", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=[
                "CREATE EXTENSION IF NOT EXISTS pg_integrity_guard",
                "SELECT integrity_guard.guard_children('deferredfk_project')",
            ],
            reverse_sql=["SELECT integrity_guard.unguard('deferredfk_project')"],
        )
    ]
