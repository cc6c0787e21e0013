#!/usr/bin/env bash
# The layering of src/, checked on the built objects (doc/design.md, "Layers").
#
# Each room is a src/NAME.c with its header src/NAME.h.  FLOORS lists them
# bottom first; a room may use (call, read a variable of) only rooms on lower
# floors, so data flows one way and no cycle can form.  What a room uses is
# read from its object's undefined symbols (nm), matched to the object that
# defines them; what it includes is read from its #include lines.  Also:
# every global symbol carries the project prefix ig_, unless it is one the
# server looks up by name (_PG_init, Pg_magic_func, a function the extension
# script names, which has its pg_finfo_ record).
#
#   bash test/layers.sh [OBJDIR]   (default src/, after make)
#
# Prints "ok - ..." / "not ok - ..." and exits non-zero if anything failed.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$TOP/src
OBJ=${1:-$SRC}

FLOORS=(
    "compat"                                # version shims (header only)
    "util settings"                         # shared helpers, setting values
    "citus_meta"                            # what the rooms read of Citus's catalog
    "stats"                                 # cumulative statistics
    "queue"                                 # shared-memory queue, flush state
    "audit_table"                           # writes into the audit table
    "worker"                                # launcher and flush jobs
    "incident"                              # incident API
    "registry"                              # guard registry
    "citus"                                 # distributing a guarded table
    "counter range children unique repair"  # the guards, the repair kit
    "saturate rewrite capture"              # the rewrite, error capture
    "pg_integrity_guard"                    # _PG_init: settings, hooks
)

failed=0
ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; failed=1; }

declare -A floor
for i in "${!FLOORS[@]}"; do
    for room in ${FLOORS[$i]}; do floor[$room]=$i; done
done

# every source file belongs to a room on a floor
unplaced=""
for f in "$SRC"/*.c "$SRC"/*.h; do
    room=$(basename "$f"); room=${room%.*}
    [ "$room" = ig_errcodes ] && continue   # generated table, capture.c's
    [ -n "${floor[$room]+x}" ] || unplaced+=" $(basename "$f")"
done
if [ -z "$unplaced" ]; then ok "every file of src/ is a room on a floor"
else notok "files on no floor:$unplaced (add them to FLOORS in test/layers.sh)"; fi

# symbols: who defines what
declare -A owner
missing=""
for room in "${!floor[@]}"; do
    [ -f "$SRC/$room.c" ] || continue
    if [ ! -f "$OBJ/$room.o" ]; then missing+=" $room.o"; continue; fi
    while read -r sym; do owner[$sym]=$room; done < <(nm -g --defined-only "$OBJ/$room.o" | awk '{print $3}')
done
if [ -n "$missing" ]; then
    notok "objects to read are built (missing:$missing; run make first)"
    exit 1
fi

nedges=0; nup=0
for room in $(printf '%s\n' "${!floor[@]}" | sort); do
    [ -f "$SRC/$room.c" ] || continue
    # uses: undefined symbols that another room defines
    up=""; uses=""
    while read -r sym; do
        other=${owner[$sym]:-}
        [ -z "$other" ] || [ "$other" = "$room" ] && continue
        case " $uses " in *" $other "*) ;; *) uses+=" $other"; nedges=$((nedges + 1));; esac
        if [ "${floor[$other]}" -ge "${floor[$room]}" ]; then up+=" $other($sym)"; nup=$((nup + 1)); fi
    done < <(nm -u "$OBJ/$room.o" | awk '{print $2}')
    if [ -z "$up" ]; then ok "$room (floor ${floor[$room]}) uses only lower floors:${uses:- nothing}"
    else notok "$room (floor ${floor[$room]}) uses rooms on its own floor or above:$up"; fi
done

# nm saw the rooms use each other (a check that read nothing proves nothing)
if [ "$nedges" -gt 10 ]; then ok "read $nedges uses between rooms from the objects"
else notok "read only $nedges uses between rooms (is nm working?)"; fi
if [ "$nup" -eq 0 ]; then ok "no cycle: every use goes down at least one floor"
else notok "$nup uses go sideways or up, so cycles are possible"; fi

for f in "$SRC"/*.c "$SRC"/*.h; do
    room=$(basename "$f"); room=${room%.*}
    [ -n "${floor[$room]+x}" ] || continue
    bad=""
    while read -r inc; do
        other=${inc%.h}
        [ -f "$SRC/$inc" ] || continue      # a server header
        [ "$other" = "$room" ] || [ "$other" = ig_errcodes ] && continue
        if [ -z "${floor[$other]+x}" ]; then bad+=" $inc(no room)"
        elif [ "${floor[$other]}" -ge "${floor[$room]}" ]; then bad+=" $inc"; fi
    done < <(sed -n 's/^#include "\([^"/]*\.h\)".*/\1/p' "$f")
    if [ -z "$bad" ]; then ok "$(basename "$f") includes only headers of lower floors"
    else notok "$(basename "$f") includes headers of its own floor or above:$bad"; fi
done

# global names: the project prefix, or an entry point the server finds by name
loose=""
for sym in "${!owner[@]}"; do
    case $sym in
        ig_*|_PG_init|Pg_magic_func|pg_finfo_*) ;;
        *) [ -n "${owner[pg_finfo_$sym]:-}" ] || loose+=" $sym(${owner[$sym]})";;
    esac
done
if [ -z "$loose" ]; then ok "every global symbol is ig_-prefixed or an SQL-callable entry point"
else notok "global symbols without the ig_ prefix:$loose (make them static or prefix them)"; fi

exit $failed
