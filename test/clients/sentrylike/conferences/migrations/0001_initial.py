from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Participant",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
            ],
        ),
        migrations.CreateModel(
            name="Conference",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("conference_id", models.CharField(max_length=100)),
                ("app_id", models.IntegerField()),
                ("created_at", models.DateTimeField()),
                ("participants", models.ManyToManyField(related_name="conferences", to="conferences.Participant")),
            ],
        ),
        migrations.CreateModel(
            name="Session",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("conference", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                                 related_name="sessions", to="conferences.conference")),
            ],
        ),
        migrations.CreateModel(
            name="Summary",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("text", models.TextField()),
                ("conference", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE,
                                                    related_name="summary", to="conferences.conference")),
            ],
        ),
    ]
