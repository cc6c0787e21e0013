#!/usr/bin/env bash
# The README's Quick start runs as written: its SQL blocks, pasted into psql
# as the postgres OS user on a server preloaded the way its sh block says,
# fail exactly where it says "-- ERROR:", absorb each failure and leave the
# audit it promises.  The same script with the guards switched off fails at
# every "-- was:" line with that error, so each example provokes a real
# failure (the exclusion constraint included).  Prints "ok - ..." lines.
# conf: shared_preload_libraries = 'pg_integrity_guard'
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
dir=$1
cluster_env "$dir"
conf=$(sed -n 's/^# conf: //p' "${BASH_SOURCE[0]}")
cd / || exit 1

check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fi; }

# The section, its sh block and its SQL blocks, in order.
section=$(awk '/^## Quick start/ { on = 1; next } on && /^## / { exit } on' "$TOP/README.md")
script=$dir/quickstart.sql
awk '/^```sql/ { on = 1; next } /^```/ { on = 0 } on' <<<"$section" >"$script"
shblock=$(awk '/^```sh/ { on = 1; next } /^```/ { on = 0 } on' <<<"$section")
chmod 644 "$script"

check "the README has a Quick start with SQL" '[ -s "$script" ]'
check "its preload step sets what this cluster runs with" \
    '[ -n "$conf" ] && grep -qF "$conf" <<<"$shblock"'
check "it opens psql as the postgres user, not psql -c as root" \
    'grep -q "su - postgres -c psql" <<<"$shblock" && ! grep -qE "^\s*(sudo )?psql -c" "$TOP/README.md"'
check "CREATE EXTENSION appears once in the README" \
    '[ "$(grep -c "^CREATE EXTENSION pg_integrity_guard" "$TOP/README.md")" -eq 1 ]'

# Errors psql reports, as "LINE|message", and those the script announces.
run() {
    local db=$1 file=$2
    "$PGBIN/createdb" "$db"
    runuser -u postgres -- "$PGBIN/psql" -X -d "$db" -h "$PGHOST" -p "$PGPORT" -f "$file" 2>&1 >"$dir/$db.out" |
        sed -n 's/^psql:[^:]*:\([0-9]*\): ERROR:  \(.*\)$/\1|\2/p'
}
announced() {
    awk -v re="$1" '{ if (match($0, re)) print NR "|" substr($0, RSTART + RLENGTH) }' "$script"
}
matches() {   # every announced error happened, at its line, and nothing else
    local got=$1 want=$2 line msg
    [ "$(wc -l <<<"$got")" -eq "$(wc -l <<<"$want")" ] || return 1
    while IFS='|' read -r line msg; do
        grep -q "^$line|$msg" <<<"$got" || return 1
    done <<<"$want"
}

guarded=$(run quickstart "$script")
want=$(announced '-- ERROR: ')
check "guarded: psql fails only at the '-- ERROR:' lines ($(wc -l <<<"$want")), with their message" \
    'matches "$guarded" "$want"'
[ "$(wc -l <<<"$want")" -ge 1 ] || echo "not ok - the Quick start announces the duplicate key error"
printf '%s\n' "$guarded" >&2

# Without the guards: the same statements, the guards and the rewrite off.
{ echo "SET integrity_guard.enabled = off;"; echo "SET integrity_guard.rewrite = off;"; cat "$script"; } >"$dir/unguarded.sql"
chmod 644 "$dir/unguarded.sql"
unguarded=$(run unguarded "$dir/unguarded.sql" | awk -F'|' '{ print $1 - 2 "|" $2 }')
want_was=$(announced '-- (was|ERROR): ' | sort -n)
check "unguarded: every '-- was:' line fails with that error ($(announced '-- was: ' | wc -l) of them)" \
    'matches "$unguarded" "$want_was" && [ "$(announced "-- was: " | wc -l)" -ge 4 ]'
printf '%s\n' "$unguarded" >&2

q() { "$PGBIN/psql" -X -At -d quickstart -c "$1"; }
counter=$(q "SELECT times_seen FROM groupedmessage")
clamped=$(q "SELECT date_ended = date_started FROM groupopenperiod")
cleared=$(q "SELECT (SELECT count(*) FROM monitorincident WHERE starting_checkin_id IS NULL) || '/' ||
                    (SELECT count(*) FROM checkinnote WHERE checkin_id IS NULL)")
messages=$(q "SELECT string_agg(message_id, ' ' ORDER BY 1) FROM consumedmessage")
summary=$(q "SELECT string_agg(table_name || ':' || event_type || ':' || target || ':' || occurrences, ' '
                               ORDER BY table_name, target) FROM integrity_guard.summary()")
echo "summary: $summary" >&2
check "the counter stored 2147483647" '[ "$counter" = 2147483647 ]'
check "the period ends when it started" '[ "$clamped" = t ]'
check "the deleted check-ins' 10 incidents and 10 notes point nowhere" '[ "$cleared" = 10/10 ]'
check "the replayed message was skipped, the new one stored" '[ "$messages" = "m1 m2 m3" ]'
check "the audit holds each guard's incident" '[ "$summary" = "conference:duplicate_key:conference_conference_id_app_key:1 consumedmessage:duplicate_key:consumedmessage_pkey:1 groupedmessage:counter_saturated:times_seen:1 groupopenperiod:range_clamped:date_started,date_ended:1 monitorcheckin:children_nullified:public.checkinnote(checkin_id):10 monitorcheckin:children_nullified:public.monitorincident(starting_checkin_id):10" ]'
check "the script's own audit queries printed it" 'grep -q "counter_saturated" "$dir/quickstart.out"'

# The README's repair block, pasted after the Quick start into the same
# database: it runs without an error and repairs what it damaged.
repair=$dir/repair.sql
awk '/^## Repairing existing data/ { on = 1; next } on && /^## / { exit } on' "$TOP/README.md" |
    awk '/^```sql/ { on = 1; next } /^```/ { on = 0 } on' >"$repair"
chmod 644 "$repair"
check "the README has a repair block" '[ -s "$repair" ]'
errors=$(runuser -u postgres -- "$PGBIN/psql" -X -d quickstart -h "$PGHOST" -p "$PGPORT" -f "$repair" 2>&1 >"$dir/repair.out" |
    grep -c 'ERROR:')
check "the repair block runs without an error after the Quick start" '[ "$errors" -eq 0 ]'
check "it printed the three orphans and the duplicate group" \
    'grep -q "{\"release_id\": 8}" "$dir/repair.out" && grep -q "\"name\": \"prod\"" "$dir/repair.out"'
repaired=$(q "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM releasefile) || '/' ||
                     (SELECT string_agg(id::text, ',' ORDER BY id) FROM environment) || '/' ||
                     (SELECT string_agg(environment_id::text, ',' ORDER BY id) FROM environmentproject)")
check "orphans deleted, the later duplicate merged into the first ($repaired)" \
    '[ "$repaired" = "1,2,3,4,5/1,3/1,1,3" ]'
q "SELECT integrity_guard.flush()" >/dev/null
repairs=$(q "SELECT string_agg(event_type || ':' || table_name, ' ' ORDER BY event_type)
               FROM integrity_guard.events() WHERE event_type IN ('orphans_fixed', 'duplicates_merged')")
check "each repair is an incident ($repairs)" \
    '[ "$repairs" = "duplicates_merged:environment orphans_fixed:releasefile" ]'
