from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Project",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.TextField()),
            ],
            options={"db_table": "deferredfk_project"},
        ),
        migrations.CreateModel(
            name="Release",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("version", models.TextField()),
                (
                    "project",
                    models.ForeignKey(null=True, on_delete=models.DO_NOTHING, to="deferredfk.project"),
                ),
            ],
            options={"db_table": "deferredfk_release"},
        ),
    ]
