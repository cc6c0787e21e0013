"""`manage.py test` as the application role (issue 25, point 4): Django's
test runner creates a fresh database from template1 and migrates it.  The
role is no superuser, so the migration's CREATE EXTENSION IF NOT EXISTS can
only work because the DBA created the extension in template1 once (the
README's "Installing for an application role"); the guards the migration
attaches then work in the new database."""
from django.db import connection

from conftest import sql


def test_test_database_is_created_and_migrated_as_the_app_role():
    assert sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0][0] is False
    old_name = connection.settings_dict["NAME"]
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        assert sql("SELECT current_database()")[0][0] == test_name
        guards = sql("SELECT table_name::text, kind FROM integrity_guard.guards ORDER BY 1, 2")
        assert ("sentry_conference", "unique") in guards
        assert ("sentry_groupedmessage", "counter") in guards
        sql("INSERT INTO sentry_consumedmessage (message_id, payload) VALUES ('m1', ''), ('m1', '')")
        assert sql("SELECT count(*) FROM sentry_consumedmessage")[0][0] == 1
        assert sql("SELECT sum(occurrences) FROM integrity_guard.events(event_type => 'duplicate_key')")[0][0] == 1
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    assert sql("SELECT current_database()")[0][0] == old_name
