#!/usr/bin/env bash
# Real client stacks (Django, psycopg 3, SQLAlchemy) on a database with the
# library in session_preload_libraries, run by Debian's pytest under
# Debian's /usr/bin/python3.  Prints "ok - ..." / "not ok - ..." per test.
set -uo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/${PG_MAJOR:-15}/bin}
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export IG_CLIENT_DB=clients PYTHONDONTWRITEBYTECODE=1
# What the README's "Installing for an application role" asks of the DBA,
# once: an application role that is no superuser owns the database; the
# extension is created in it and in template1 (so the test databases Django
# creates have it); the library is preloaded for the database.  Everything
# after runs as that role; only the tests' clean-up (purge) runs as the DBA.
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 <<SQL || { echo "not ok - the DBA's set-up"; exit 0; }
CREATE ROLE ig_app LOGIN CREATEDB;
CREATE DATABASE $IG_CLIENT_DB OWNER ig_app;
ALTER DATABASE $IG_CLIENT_DB SET session_preload_libraries = 'pg_integrity_guard';
\c $IG_CLIENT_DB
CREATE EXTENSION pg_integrity_guard;
\c template1
CREATE EXTENSION pg_integrity_guard;
SQL
export IG_ADMIN_USER=$PGUSER PGUSER=ig_app
is_super=$("$PGBIN/psql" -X -At -d "$IG_CLIENT_DB" -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
if [ "$is_super" = f ]; then echo "ok - the client suites run as a role that is no superuser"
else echo "not ok - the client suites run as a role that is no superuser"; fi
cd "$TOP/test/clients" || exit 0
/usr/bin/python3 -m pytest -p no:cacheprovider -q -rA . 2>&1 |
    tee /dev/stderr |
    sed -n -e 's/^PASSED \(.*\)$/ok - \1/p' -e 's/^FAILED \(.*\)$/not ok - \1/p' -e 's/^ERROR \(.*\)$/not ok - \1/p'
