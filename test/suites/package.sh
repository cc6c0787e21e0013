#!/usr/bin/env bash
# The Debian package builds (dpkg-buildpackage -us -uc -b through
# pg_buildext) and holds the library, the control file and every script.
# About 20 s; the same as the standalone command `bash test/package.sh`.
exec bash "$(dirname "${BASH_SOURCE[0]}")/../package.sh" "${IG_DEB_DIR:-/tmp/pg_integrity_guard-deb}"
