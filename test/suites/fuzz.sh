#!/usr/bin/env bash
# The catalog-walking fuzzer: every function and procedure of the extension
# that an unprivileged role may EXECUTE, found in the catalog (so a new one is
# covered without editing the test), called by that role ("mallory", no
# privilege on the tables of "alice") with NULLs, boundary numbers, NaN and
# infinities, empty, huge and injection text, odd jsonb, arrays with NULLs,
# OIDs of catalogs, of alice's tables and of nothing, polymorphic arguments
# of several types; one argument varied at a time from a plausible baseline,
# plus all-NULL.  Passes: rolled back, committed, and invalid UTF-8 in a
# SQL_ASCII database.  One "ok - ..." / "not ok - ..." line per property:
# (a) no crash, (b) no internal error or hang, (c) nothing changed that
# mallory could not change by hand (tables, catalogs, audit rows; no SQL
# injection), (d) the readers still work, (e) documented contracts of the
# arithmetic and range functions, (f) the audit keeps flushing.  Under a
# failing line, "#   " lines name each offending call: signature, arguments,
# outcome (IG_FUZZ_ALL=FILE: every finding, per-function outcomes and times
# into FILE).  The fuzzer is test/fuzz.py (its docstring says what and why);
# $1 is the cluster's directory, whose server.log it reads.
# conf: shared_preload_libraries = 'pg_integrity_guard'
# conf: integrity_guard.flush_interval = '100ms'
# conf: log_min_error_statement = panic
# Errors are not logged with their statement (log_min_error_statement): the
# log stays small with thousands of failing calls, and the crash lines with
# "Failed process was running" are logged whatever the setting.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
dir=$1
cluster_env "$dir"
cd / || exit 1
if ! /usr/bin/python3 -c 'import psycopg2' 2>/dev/null; then
    echo "not ok - python3-psycopg2 is installed (test/run.sh installs it)"
    exit 0
fi
start=$SECONDS
/usr/bin/python3 "$TOP/test/fuzz.py" "$dir"
echo "# fuzz suite: $((SECONDS - start))s"
