#!/usr/bin/env bash
# test/run.sh's output: a header naming the full log, one line per suite
# with its counts, the details of a failing suite only, and the last line
# "N passed, N failed" with exit status 1 on failure.  Runs the driver on
# two small suites of its own (IG_SUITES_DIR) and on META.json's (IG_ONLY).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fi; }

work=$(mktemp -d /tmp/pg_integrity_guard_runner.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/suites"
cat >"$work/suites/good.sh" <<'SH'
echo "ok - one"
echo "a detail nobody needs on the console"
echo "ok - two"
SH
cat >"$work/suites/broken.sh" <<'SH'
echo "ok - fine"
echo "not ok - deliberately broken"
SH

out=$(IG_ONLY="good broken" IG_SUITES_DIR="$work/suites" IG_TEST_LOG="$work/run.log" \
      bash "$TOP/test/run.sh" 2>&1)
rc=$?
printf '%s\n' "$out" >&2
check "a failing suite makes it exit 1" '[ $rc -eq 1 ]'
check "the first line names the full log" 'head -n 1 <<<"$out" | grep -q "full log: $work/run.log$"'
check "one line per suite with its counts" \
    'grep -qE "^good +2 passed, 0 failed  \([0-9]+s\)$" <<<"$out" &&
     grep -qE "^broken +1 passed, 1 failed  \([0-9]+s\)$" <<<"$out"'
check "the failing suite shows what failed, the passing one no detail" \
    'grep -q "^    not ok - deliberately broken$" <<<"$out" && ! grep -q "a detail nobody needs" <<<"$out" &&
     grep -q "^    (more in $work/run.log)$" <<<"$out"'
check "the full log keeps every suite's output" \
    'grep -q "a detail nobody needs on the console" "$work/run.log" && grep -q "^==> suite good" "$work/run.log"'
check "the last line is \"3 passed, 1 failed\"" '[ "$(tail -n 1 <<<"$out")" = "3 passed, 1 failed" ]'
check "the console has nothing else (6 lines)" '[ "$(wc -l <<<"$out")" -eq 6 ]'

out=$(env -u IG_SUITES_DIR IG_ONLY=meta IG_TEST_LOG="$work/meta.log" bash "$TOP/test/run.sh" 2>&1)
rc=$?
check "a passing run exits 0 and ends with \"N passed, 0 failed\"" \
    '[ $rc -eq 0 ] && tail -n 1 <<<"$out" | grep -qE "^[1-9][0-9]* passed, 0 failed$" && [ "$(wc -l <<<"$out")" -eq 3 ]'

# From a checkout where only root may look (a clone in root's home on
# Debian is mode 0700): the clusters and the exporter run as postgres, so
# nothing they read may be under the checkout.  The suites that start other
# programs run from such a copy.
home=$(mktemp -d /tmp/pg_integrity_guard_home.XXXXXX)
chmod 700 "$home"
cp -a "$TOP" "$home/checkout"
out=$(env -u IG_SUITES_DIR IG_ONLY="exporter package" IG_TEST_LOG="$work/home.log" \
      bash "$home/checkout/test/run.sh" 2>&1)
rc=$?
printf '%s\n' "$out" >&2
[ $rc -eq 0 ] || tail -n 60 "$work/home.log" >&2
check "from a checkout in a 0700 directory, the exporter and package suites pass ($(tail -n 1 <<<"$out"))" \
    '[ $rc -eq 0 ] && tail -n 1 <<<"$out" | grep -qE "^[1-9][0-9]* passed, 0 failed$"'
rm -rf "$home"
