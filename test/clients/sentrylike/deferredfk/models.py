"""A parent and its children through Django's usual FK: DEFERRABLE INITIALLY
DEFERRED with NO ACTION in the database (on_delete=DO_NOTHING leaves the
delete to the database, where the children guard acts at commit)."""
from django.db import models


class Project(models.Model):
    name = models.TextField()

    class Meta:
        db_table = "deferredfk_project"


class Release(models.Model):
    project = models.ForeignKey(Project, null=True, on_delete=models.DO_NOTHING)
    version = models.TextField()

    class Meta:
        db_table = "deferredfk_release"
