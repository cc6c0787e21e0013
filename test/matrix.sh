#!/usr/bin/env bash
# bash test/matrix.sh [MAJOR...]
#
# Every test: the whole suite (test/run.sh) on every supported PostgreSQL
# major, 15 on this machine, 17 in a Debian trixie chroot, 18 in a Debian
# sid chroot; then PostgreSQL's own suites with and without the extension
# (test/core.sh).  Prints one line per run and a final "N passed, N
# failed"; exits non-zero on any failure.  Chroots are made once with mmdebstrap and kept in
# $IG_CHROOT_CACHE (default /var/cache/pg_integrity_guard/chroots), outside
# the checkout; `IG_CHROOT_REFRESH=1` makes them anew.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${IG_CHROOT_CACHE:-/var/cache/pg_integrity_guard/chroots}
VERSIONS=("$@")
[ ${#VERSIONS[@]} -gt 0 ] || VERSIONS=(15 17 18)
MOUNTED=()

log() { printf '==> %s\n' "$*" >&2; }

suite_of() {
    case $1 in
        15) echo host ;;
        16|17) echo trixie ;;
        *) echo sid ;;
    esac
}

# The Debian mirror this machine already uses (deb822 or one-line form).
mirror() {
    local m
    m=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null)
    [ -n "$m" ] || m=$(awk '/^deb / && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
    echo "${m:-http://deb.debian.org/debian}"
}

ensure_mmdebstrap() {
    command -v mmdebstrap >/dev/null && return 0
    log "installing mmdebstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
}

# make_chroot SUITE MAJOR: prints the chroot's directory, made if missing.
make_chroot() {
    local suite=$1 major=$2 dir tmp
    dir=$CACHE/$suite-pg$major
    if [ -f "$dir/.ig-ready" ] && [ -z "${IG_CHROOT_REFRESH:-}" ]; then
        echo "$dir"
        return 0
    fi
    ensure_mmdebstrap || return 1
    mkdir -p "$CACHE"
    rm -rf "$dir" "$dir.tmp"
    tmp=$dir.tmp
    log "making a $suite chroot with PostgreSQL $major in $dir (a few minutes)"
    mmdebstrap --variant=minbase \
        --include="postgresql-$major,postgresql-server-dev-$major,build-essential,git,ca-certificates,libipc-run-perl,procps,python3" \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --customize-hook='printf "#!/bin/sh\nexit 101\n" > "$1/usr/sbin/policy-rc.d"; chmod 755 "$1/usr/sbin/policy-rc.d"' \
        --customize-hook='cp /etc/resolv.conf "$1/etc/resolv.conf"' \
        "$suite" "$tmp" "deb $(mirror) $suite main" >"$CACHE/$suite-pg$major.log" 2>&1 ||
        { tail -n 30 "$CACHE/$suite-pg$major.log" >&2; rm -rf "$tmp"; return 1; }
    touch "$tmp/.ig-ready"
    mv "$tmp" "$dir"
    echo "$dir"
}

mount_chroot() {
    local root=$1 m
    for m in proc dev dev/pts dev/shm; do
        mkdir -p "$root/$m"
        case $m in
            proc) mount -t proc proc "$root/proc" ;;
            *) mount --bind "/$m" "$root/$m" ;;
        esac || return 1
        MOUNTED=("$root/$m" "${MOUNTED[@]}")
    done
}

unmount_all() {
    local m
    for m in "${MOUNTED[@]}"; do
        umount -l "$m" 2>/dev/null
    done
    MOUNTED=()
}
trap unmount_all EXIT
trap 'exit 130' INT TERM

# Copy the checkout as it is (tracked files and untracked ones git does not
# ignore), so the chroot tests exactly what this tree holds.
copy_tree() {
    local dest=$1
    rm -rf "$dest"
    mkdir -p "$dest"
    (cd "$TOP" && { git ls-files -co --exclude-standard -z 2>/dev/null || find . -type f -print0; } |
        tar --null -T - -cf -) | tar -C "$dest" -xf -
}

TOTAL_P=0
TOTAL_F=0
LINES=()
# The host's dump/restore suite leaves its dump here; each chroot restores
# it with its own major (a dump/restore upgrade, test/suites/dump_restore.sh).
CROSS_DUMP=$(mktemp /tmp/pg_integrity_guard_cross.XXXXXX.dump)
CROSS_MAJOR=
trap 'unmount_all; rm -f "$CROSS_DUMP"' EXIT
for v in "${VERSIONS[@]}"; do
    suite=$(suite_of "$v")
    logf=$(mktemp /tmp/pg_integrity_guard_matrix_$v.XXXXXX.log)
    if [ "$suite" = host ]; then
        log "PostgreSQL $v on this machine (log: $logf)"
        PG_MAJOR=$v IG_DUMP_OUT=$CROSS_DUMP bash "$TOP/test/run.sh" >"$logf" 2>&1
        [ -s "$CROSS_DUMP" ] && CROSS_MAJOR=$v
    else
        # One run at a time per chroot: the suite installs into its system
        # directories.
        mkdir -p "$CACHE"
        exec {lockfd}>"$CACHE/.lock-$suite-pg$v"
        flock "$lockfd"
        if root=$(make_chroot "$suite" "$v"); then
            log "PostgreSQL $v in the $suite chroot (log: $logf)"
            copy_tree "$root/build/pg_integrity_guard"
            cross=()
            if [ -n "$CROSS_MAJOR" ]; then
                cp "$CROSS_DUMP" "$root/build/cross.dump"
                cross=(IG_DUMP_IN=/build/cross.dump IG_DUMP_MAJOR="$CROSS_MAJOR")
            fi
            if mount_chroot "$root"; then
                chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
                    PG_MAJOR="$v" "${cross[@]}" bash -c 'cd /build/pg_integrity_guard && bash test/run.sh' >"$logf" 2>&1
            else
                echo "could not mount /proc and /dev in $root" >"$logf"
            fi
            unmount_all
        else
            echo "could not make the $suite chroot" >"$logf"
        fi
        exec {lockfd}>&-
    fi
    res=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logf" | tail -n 1)
    if [ -z "$res" ]; then
        tail -n 40 "$logf" >&2
        res="0 passed, 1 failed"
    elif ! printf '%s' "$res" | grep -q ' 0 failed'; then
        grep -E 'not ok|FAILED|failed \(' "$logf" | head -n 40 >&2
    fi
    p=${res%% passed*}
    f=${res#*passed, }
    f=${f%% failed*}
    TOTAL_P=$((TOTAL_P + p))
    TOTAL_F=$((TOTAL_F + f))
    LINES+=("PostgreSQL $v ($suite): $res  [log $logf]")
done

# PostgreSQL's own suites with and without the extension, on this machine's
# server (IG_SKIP_CORE=1 leaves them out while iterating).
if [ -z "${IG_SKIP_CORE:-}" ]; then
    logf=$(mktemp /tmp/pg_integrity_guard_matrix_core.XXXXXX.log)
    log "PostgreSQL's regression and isolation suites with and without the extension (log: $logf)"
    bash "$TOP/test/core.sh" >"$logf" 2>&1
    res=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logf" | tail -n 1)
    [ -n "$res" ] || res="0 passed, 1 failed"
    printf '%s' "$res" | grep -q ' 0 failed' || grep -E '^==> core' "$logf" | head -n 20 >&2
    p=${res%% passed*}
    f=${res#*passed, }
    f=${f%% failed*}
    TOTAL_P=$((TOTAL_P + p))
    TOTAL_F=$((TOTAL_F + f))
    LINES+=("PostgreSQL core suites, with vs without the extension: $res  [log $logf]")
fi

printf '%s\n' "${LINES[@]}"
echo "$TOTAL_P passed, $TOTAL_F failed"
[ "$TOTAL_F" -eq 0 ]
