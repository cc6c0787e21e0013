#!/usr/bin/env bash
# Real client stacks (Django, psycopg 3, SQLAlchemy) on a database with the
# library in session_preload_libraries, run by Debian's pytest under
# Debian's /usr/bin/python3.  Prints "ok - ..." / "not ok - ..." per test.
set -uo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/${PG_MAJOR:-15}/bin}
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export IG_CLIENT_DB=clients PYTHONDONTWRITEBYTECODE=1
"$PGBIN/createdb" "$IG_CLIENT_DB" || { echo "not ok - create the client database"; exit 0; }
"$PGBIN/psql" -X -q -c "ALTER DATABASE $IG_CLIENT_DB SET session_preload_libraries = 'pg_integrity_guard'"
cd "$TOP/test/clients" || exit 0
/usr/bin/python3 -m pytest -p no:cacheprovider -q -rA . 2>&1 |
    tee /dev/stderr |
    sed -n -e 's/^PASSED \(.*\)$/ok - \1/p' -e 's/^FAILED \(.*\)$/not ok - \1/p' -e 's/^ERROR \(.*\)$/not ok - \1/p'
