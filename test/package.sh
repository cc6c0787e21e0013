#!/usr/bin/env bash
# Builds the Debian package postgresql-NN-integrity-guard from debian/ with
# `dpkg-buildpackage -us -uc -b`, in a scratch copy of the tree (the
# package build uses the system's pg_config, not the one the tests chose),
# then checks what the .deb holds.  Its own command because it takes a
# minute or two: bash test/package.sh [OUTDIR]  (.deb files land in OUTDIR,
# default /tmp/pg_integrity_guard-deb).  Prints "ok - ..." / "not ok - ...".
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT=${1:-/tmp/pg_integrity_guard-deb}

ensure_packages build-essential dpkg-dev debhelper postgresql-server-dev-all || exit 1
work=$(mktemp -d /tmp/pg_integrity_guard_pkg.XXXXXX)
trap 'rm -rf "$work"' EXIT
version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$TOP/pg_integrity_guard.control")
src="$work/pg-integrity-guard-$version"
mkdir "$src"
# the files git knows (committed or not), without build products; a copy
# of the tree without .git (test/matrix.sh's chroots) is taken as it is
(cd "$TOP" && { git ls-files -co --exclude-standard -z 2>/dev/null ||
    find . -type f ! -path './.git/*' ! -name '*.o' ! -name '*.so' ! -name '*.bc' -print0; } |
    xargs -0 cp --parents -t "$src")
# debian/control for the PostgreSQL versions this release supports (the
# committed one is for Debian 12's 15; checkcontrol refuses a stale one)
(cd "$src" && pg_buildext updatecontrol) >/dev/null 2>&1

fail=0
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fail=1; fi; }

log "dpkg-buildpackage -us -uc -b in $src (log: $work/build.log)"
(cd "$src" && env -u PG_CONFIG -u PGBIN -u PG_MAJOR dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1
rc=$?
check "dpkg-buildpackage -us -uc -b" '[ $rc -eq 0 ]' || true
[ $rc -eq 0 ] || tail -n 40 "$work/build.log"
mkdir -p "$OUT"
debs=$(ls "$work"/postgresql-*-integrity-guard_*.deb 2>/dev/null)
versions=$(cd "$src" && pg_buildext supported-versions | tr '\n' ' ')
check "one package per PostgreSQL version debian/pgversions and this release support: $versions" \
    '[ -n "$debs" ] && [ "$(echo "$debs" | wc -l)" -eq "$(echo $versions | wc -w)" ]'
for deb in $debs; do
    v=$(basename "$deb" | sed 's/^postgresql-\([0-9]*\)-.*/\1/')
    files=$(dpkg-deb -c "$deb")
    check "$(basename "$deb") holds the library" \
        'grep -q "/usr/lib/postgresql/$v/lib/pg_integrity_guard.so" <<<"$files"'
    # every script in sql/, and the full script of default_version, which
    # the Makefile generates (CREATE EXTENSION runs it alone)
    check "$(basename "$deb") holds the control file and every extension script, pg_integrity_guard--$version.sql among them" \
        '(for f in pg_integrity_guard.control pg_integrity_guard--$version.sql $(cd "$TOP/sql" && ls pg_integrity_guard--*.sql); do
             grep -q "/usr/share/postgresql/$v/extension/$f\$" <<<"$files" || exit 1; done)'
    check "$(basename "$deb") depends on postgresql-$v" \
        'dpkg-deb -f "$deb" Depends | grep -q "postgresql-$v"'
    cp "$deb" "$OUT/"
done
echo "packages in $OUT"
exit $fail
