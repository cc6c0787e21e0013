#!/usr/bin/env bash
# The README's uninstall path (issue 25 point 5): with a guard of each kind
# and audit rows in place, DROP EXTENSION is refused as the README says; its
# "Uninstalling" SQL block, run as written, keeps the audit, removes every
# guard and the extension, and leaves the tables and their rows working.
# Prints "ok - ..." lines.
# conf: shared_preload_libraries = 'pg_integrity_guard'
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
dir=$1
cluster_env "$dir"
cd / || exit 1
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fi; }
psql_db() { "$PGBIN/psql" -X -At -v ON_ERROR_STOP=1 -d uninstall "$@"; }

block=$dir/uninstall.sql
awk '/^### Uninstalling/ { on = 1; next } on && /^#/ { exit } on' "$TOP/README.md" |
    awk '/^```sql/ { on = 1; next } /^```/ { on = 0 } on' >"$block"
check "the README has an Uninstalling SQL block" '[ -s "$block" ]'

"$PGBIN/createdb" uninstall
psql_db -q <<'SQL' >/dev/null
CREATE EXTENSION pg_integrity_guard;
CREATE TABLE grp (id int PRIMARY KEY, times_seen int NOT NULL);
CREATE TABLE period (id int PRIMARY KEY, lo timestamptz, hi timestamptz);
CREATE TABLE child (id int PRIMARY KEY, grp_id int REFERENCES grp);
CREATE TABLE msg (id int PRIMARY KEY);
SELECT integrity_guard.guard_counter('grp', ARRAY['times_seen']);
SELECT integrity_guard.guard_range('period', 'lo', 'hi');
SELECT integrity_guard.guard_children('grp');
SELECT integrity_guard.guard_duplicates('msg', 'skip');
INSERT INTO grp VALUES (1, 2147483647), (2, 0);
UPDATE grp SET times_seen = times_seen + 5 WHERE id = 1;
INSERT INTO msg VALUES (1), (1);
SELECT integrity_guard.flush();
SQL
incidents=$(psql_db -c "SELECT count(*) FROM integrity_guard.events()")
out=$(psql_db -c "DROP EXTENSION pg_integrity_guard" 2>&1)
check "DROP EXTENSION is refused while guards depend on it" \
    'grep -q "cannot drop extension pg_integrity_guard because other objects depend on it" <<<"$out"'
check "... and names the guard triggers" 'grep -q "trigger integrity_guard_counter on table grp" <<<"$out"'

out=$("$PGBIN/psql" -X -v ON_ERROR_STOP=1 -d uninstall -f "$block" 2>&1)
rc=$?
printf '%s\n' "$out" >&2
check "the README's block runs without an error" '[ $rc -eq 0 ]'
check "the extension is gone" \
    '[ "$(psql_db -c "SELECT count(*) FROM pg_extension WHERE extname = '"'"'pg_integrity_guard'"'"'")" = 0 ]'
check "no guard trigger is left" \
    '[ "$(psql_db -c "SELECT count(*) FROM pg_trigger WHERE tgname ~ '"'"'integrity_guard'"'"'")" = 0 ]'
check "the audit was kept ($incidents incidents)" \
    '[ "$incidents" -gt 0 ] && [ "$(psql_db -c "SELECT count(*) FROM public.audit_log_kept")" = "$incidents" ]'
check "the tables keep their rows and take writes without the guards" \
    'psql_db -c "INSERT INTO msg VALUES (2); DELETE FROM child; DELETE FROM grp WHERE id = 2; UPDATE grp SET times_seen = 1 WHERE id = 1" >/dev/null &&
     [ "$(psql_db -c "SELECT string_agg(id || '"'"':'"'"' || times_seen, '"'"','"'"') FROM grp")" = "1:1" ]'
check "CREATE EXTENSION works again afterwards" \
    'psql_db -c "CREATE EXTENSION pg_integrity_guard" >/dev/null'
