# Shared shell functions of the test driver, the demo and the benchmarks.
# Source it; it sets PG_CONFIG, PGBIN and the cluster helpers.  Everything
# runs as root on a fresh Debian 12: the server itself runs as the postgres
# OS user, on a private socket directory, and is stopped on exit.

PG_MAJOR=${PG_MAJOR:-15}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
# The server binaries sit beside the pg_config that was chosen, so one
# variable picks the version (or a relocated copy of an installation).
PGBIN=$(dirname "$PG_CONFIG")
export PG_MAJOR PG_CONFIG PGBIN
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IG_CLUSTERS=()

log() { printf '==> %s\n' "$*" >&2; }

# Install what is missing (Debian packages), once.
ensure_packages() {
    local need=()
    [ -x "$PGBIN/postgres" ] || need+=("postgresql-$PG_MAJOR")
    # pgxs.mk alone comes with the client package: the server headers decide.
    [ -x "$PG_CONFIG" ] && [ -f "$($PG_CONFIG --pgxs 2>/dev/null)" ] &&
        [ -f "$($PG_CONFIG --includedir-server 2>/dev/null)/postgres.h" ] ||
        need+=("postgresql-server-dev-$PG_MAJOR")
    command -v make >/dev/null || need+=(make)
    command -v gcc >/dev/null || need+=(gcc libc6-dev)
    command -v runuser >/dev/null || need+=(util-linux)
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        log "installing Debian packages: ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        # A main cluster Debian may start listens on its own socket directory
        # and port; the clusters here use private ones, so the two never meet.
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
}

# Citus for TAP 090 (issue 26), from the release sources in ../shared/citus
# (or IG_CITUS_SOURCES), built once per release and major and kept in
# /var/cache/pg_integrity_guard, installed into PG_CONFIG's installation.
# Returns non-zero, saying why, where it cannot be had: the test skips.
ensure_citus() {
    local libdir ver src tarball="" cache
    libdir=$("$PG_CONFIG" --pkglibdir)
    [ -f "$libdir/citus.so" ] && return 0
    case $PG_MAJOR in
        15) ver=13.2.2 ;;
        16 | 17 | 18) ver=14.0.1 ;;
        *) log "citus: no release here for PostgreSQL $PG_MAJOR; TAP 090 skips"; return 1 ;;
    esac
    for src in "${IG_CITUS_SOURCES:-}" "$TOP/../shared/citus" /work/shared/citus; do
        if [ -n "$src" ] && [ -f "$src/citus-$ver.tar.gz" ]; then tarball=$src/citus-$ver.tar.gz; break; fi
    done
    if [ -z "$tarball" ]; then
        log "citus: citus-$ver.tar.gz not found (../shared/citus, or set IG_CITUS_SOURCES); TAP 090 skips"
        return 1
    fi
    cache=/var/cache/pg_integrity_guard/citus-$ver-pg$PG_MAJOR
    if [ ! -f "$cache/built" ]; then
        ensure_packages liblz4-dev libzstd-dev libkrb5-dev libselinux1-dev libxslt1-dev \
            libpam0g-dev libreadline-dev libicu-dev flex bison perl
        log "citus: building $ver for PostgreSQL $PG_MAJOR (about a minute, kept in $cache)"
        rm -rf "$cache" && mkdir -p "$cache" && tar xzf "$tarball" -C "$cache" --strip-components=1 || return 1
        # a server that declares have_createdb_privilege() (15.20) clashes
        # with the static copy Citus keeps for majors below 16
        if grep -q 'extern bool have_createdb_privilege' \
            "$("$PG_CONFIG" --includedir-server)/commands/dbcommands.h"; then
            perl -0pi -e 's/static inline bool\nhave_createdb_privilege\(void\)\n\{.*?\n\}\n//s' \
                "$cache/src/include/pg_version_compat.h"
        fi
        if ! (cd "$cache" && ./configure PG_CONFIG="$PG_CONFIG" --without-libcurl &&
            make -j2) >"$cache/build.log" 2>&1; then
            log "citus: the build failed (see $cache/build.log); TAP 090 skips"
            return 1
        fi
        touch "$cache/built"
    fi
    make -C "$cache" install >"$cache/install.log" 2>&1 ||
        { log "citus: make install failed (see $cache/install.log); TAP 090 skips"; return 1; }
}

build_install() {
    log "building and installing pg_integrity_guard"
    make -C "$TOP" -s PG_CONFIG="$PG_CONFIG" >/dev/null
    make -C "$TOP" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
}

# start_cluster VAR [postgresql.conf lines...]
# Starts a throwaway cluster; sets VAR to its directory.  Socket and port:
# $dir/sock and 5432 (private directory, so no clash with anything else).
start_cluster() {
    local var=$1; shift
    local _ig_dir
    _ig_dir=$(mktemp -d /tmp/pg_integrity_guard.XXXXXX)
    chmod 755 "$_ig_dir"
    mkdir "$_ig_dir/sock"
    chown -R postgres: "$_ig_dir"
    IG_CLUSTERS+=("$_ig_dir")
    runuser -u postgres -- "$PGBIN/initdb" -D "$_ig_dir/data" -A trust -U postgres \
        --no-sync >"$_ig_dir/initdb.log" 2>&1 || { cat "$_ig_dir/initdb.log" >&2; return 1; }
    {
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$_ig_dir/sock'"
        echo "port = 5432"
        echo "fsync = off"
        echo "max_prepared_transactions = 4"
        for line in "$@"; do echo "$line"; done
    } >>"$_ig_dir/data/postgresql.conf"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$_ig_dir/data" -l "$_ig_dir/server.log" -w start >/dev/null ||
        { cat "$_ig_dir/server.log" >&2; return 1; }
    printf -v "$var" '%s' "$_ig_dir"
}

stop_clusters() {
    local dir
    for dir in "${IG_CLUSTERS[@]}"; do
        # clusters a TAP test left behind when it died
        for pidfile in "$dir"/data/postmaster.pid "$dir"/tmp_check/t_*_data/pgdata/postmaster.pid; do
            [ -f "$pidfile" ] || continue
            runuser -u postgres -- "$PGBIN/pg_ctl" -D "$(dirname "$pidfile")" -m immediate stop >/dev/null 2>&1
        done
        if [ -f "$dir/data/postmaster.pid" ]; then
            runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
        fi
        rm -rf "$dir"
    done
    IG_CLUSTERS=()
}

# Environment for clients of cluster $1.
cluster_env() {
    export PGHOST="$1/sock" PGPORT=5432 PGUSER=postgres
}
