#!/usr/bin/env bash
# test/demo.sh, run as a user would: from a directory the postgres OS user
# cannot enter, it prints no "could not change directory" noise, ends with a
# PASS verdict per guard and a final PASS line, and exits 0.  With the
# guards switched off it says FAIL and exits 1, so the verdict can fail.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fi; }

private=$(mktemp -d /tmp/pg_integrity_guard_demo.XXXXXX)
chmod 700 "$private"
trap 'rm -rf "$private"' EXIT
out=$(cd "$private" && env -u PGHOST -u PGPORT bash "$TOP/test/demo.sh" 2>&1)
rc=$?
printf '%s\n' "$out" | tail -n 8 >&2
check "the demo exits 0" '[ $rc -eq 0 ]'
check "no \"could not change directory\" or other permission noise" \
    '! grep -qiE "could not change directory|permission denied" <<<"$out"'
for guard in guard_counter guard_range guard_children guard_duplicates; do
    check "a PASS verdict for $guard, with what it absorbed and recorded" \
        'grep -qE "^PASS $guard +absorbed: .+; recorded: [1-9][0-9]* events in [1-9][0-9]* audit rows$" <<<"$out"'
done
check "the audited duplicate shows its key values (issue 25 point 7)" \
    'grep -qE "^ duplicate_key +\| sentry_conference .*\| \(conference_id, app\)=\(7, web\) +\|" <<<"$out"'
check "the last line is the final PASS" '[ "$(tail -n 1 <<<"$out")" = "PASS: all 4 guards absorbed their failure and recorded it" ]'

out=$(cd "$private" && env -u PGHOST -u PGPORT PGOPTIONS="-c integrity_guard.enabled=off" bash "$TOP/test/demo.sh" 2>&1)
rc=$?
printf '%s\n' "$out" | tail -n 6 >&2
check "with the guards off the demo says FAIL and exits 1" \
    '[ $rc -eq 1 ] && grep -q "^FAIL guard_range" <<<"$out" && tail -n 1 <<<"$out" | grep -q "^FAIL: "'
