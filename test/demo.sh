#!/usr/bin/env bash
# The main job: install what is missing, build and install the extension,
# start a throwaway cluster, show each guard absorbing a real failure, query
# the audit, stop the cluster.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap stop_clusters EXIT
trap 'exit 130' INT TERM

ensure_packages
build_install
# preloaded, as production should run it: the assignment rewrite in every
# session, the durable audit, error capture and stats (README, "Loading
# and preload")
start_cluster dir "shared_preload_libraries = 'pg_integrity_guard'"
cluster_env "$dir"
log "cluster running on socket $PGHOST; running test/demo.sql"
"$PGBIN/createdb" sentry
"$PGBIN/psql" -X -d sentry -f "$TOP/test/demo.sql" 2>&1
log "demo done; stopping the cluster"
