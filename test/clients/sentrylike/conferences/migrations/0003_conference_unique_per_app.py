from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("conferences", "0002_merge_duplicate_conferences")]

    operations = [
        migrations.AddConstraint(
            model_name="conference",
            constraint=models.UniqueConstraint(fields=("conference_id", "app_id"), name="conference_unique_per_app"),
        ),
    ]
