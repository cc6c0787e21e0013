from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Group",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("times_seen", models.PositiveIntegerField(default=0)),
            ],
            options={"db_table": "sentry_groupedmessage"},
        ),
        migrations.CreateModel(
            name="MonitorCheckIn",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("date_added", models.DateTimeField()),
            ],
            options={"db_table": "sentry_monitorcheckin"},
        ),
        migrations.CreateModel(
            name="CheckInNote",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("checkin_id", models.BigIntegerField(db_index=True, null=True)),
            ],
            options={"db_table": "sentry_checkinnote"},
        ),
        migrations.CreateModel(
            name="Conference",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("conference_id", models.IntegerField()),
                ("app", models.CharField(max_length=64)),
            ],
            options={"db_table": "sentry_conference", "unique_together": {("conference_id", "app")}},
        ),
        migrations.CreateModel(
            name="ConsumedMessage",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("message_id", models.CharField(max_length=64, unique=True)),
                ("payload", models.TextField()),
            ],
            options={"db_table": "sentry_consumedmessage"},
        ),
        migrations.CreateModel(
            name="GroupOpenPeriod",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("date_started", models.DateTimeField()),
                ("date_ended", models.DateTimeField(null=True)),
                ("group", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="incidents.group")),
            ],
            options={"db_table": "sentry_groupopenperiod"},
        ),
        migrations.CreateModel(
            name="MonitorIncident",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("starting_checkin", models.ForeignKey(null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name="+", to="incidents.monitorcheckin")),
                ("resolving_checkin", models.ForeignKey(null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name="+", to="incidents.monitorcheckin")),
            ],
            options={"db_table": "sentry_monitorincident"},
        ),
        # Sentry's GroupOpenPeriod constraint: no range column, an expression
        migrations.RunSQL(
            sql=[
                "CREATE EXTENSION IF NOT EXISTS btree_gist",
                "ALTER TABLE sentry_groupopenperiod ADD CONSTRAINT exclusion_open_period "
                "EXCLUDE USING gist (group_id WITH =, tstzrange(date_started, date_ended, '[]') WITH &&)",
            ],
            reverse_sql=["ALTER TABLE sentry_groupopenperiod DROP CONSTRAINT exclusion_open_period"],
        ),
    ]
