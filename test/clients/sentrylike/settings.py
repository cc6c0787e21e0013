"""A minimal Django project modelled on the Sentry incidents (seeds 000-004).

The database comes from the libpq environment the test driver sets
(PGHOST, PGPORT, PGUSER) and IG_CLIENT_DB.
"""
import os

SECRET_KEY = "pg-integrity-guard-tests"
USE_TZ = True
INSTALLED_APPS = ["sentrylike.incidents", "sentrylike.upserts", "sentrylike.deferredfk",
                  "sentrylike.conferences"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("IG_CLIENT_DB", "clients"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "HOST": os.environ.get("PGHOST", ""),
        "PORT": os.environ.get("PGPORT", ""),
    }
}
