from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = [("incidents", "0002_integrity_guards")]

    operations = [
        migrations.CreateModel(
            name="Release",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("project_id", models.IntegerField()),
                ("version", models.CharField(max_length=64)),
                ("commits", models.IntegerField(default=0)),
            ],
            options={"db_table": "upserts_release", "unique_together": {("project_id", "version")}},
        ),
        migrations.CreateModel(
            name="Tag",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=64, unique=True)),
                ("slug", models.CharField(max_length=64, unique=True)),
                ("seen", models.IntegerField(default=0)),
            ],
            options={"db_table": "upserts_tag"},
        ),
        migrations.RunSQL(
            sql=[
                "SELECT integrity_guard.guard_duplicates('upserts_release')",
                "SELECT integrity_guard.guard_duplicates('upserts_tag', 'skip')",
            ],
            reverse_sql=[
                "SELECT integrity_guard.unguard('upserts_release')",
                "SELECT integrity_guard.unguard('upserts_tag')",
            ],
        ),
    ]
