#!/usr/bin/env bash
# Benchmarks: prints measured ratio tables, side by side in one run.
# Not part of the test suite; timings never decide pass or fail.
#   ROWS=1000000 REPS=5 bash test/bench/run.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
trap stop_clusters EXIT
trap 'exit 130' INT TERM

ROWS=${ROWS:-1000000}
REPS=${REPS:-7}

ensure_packages
build_install
start_cluster dir "shared_preload_libraries = 'pg_integrity_guard'" \
    "shared_buffers = '1GB'" "synchronous_commit = off" \
    "max_wal_size = '4GB'" "checkpoint_timeout = '30min'" "autovacuum = off"
cluster_env "$dir"
"$PGBIN/createdb" bench
psql_q() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d bench "$@"; }

# timed SQL: the milliseconds one statement took (psql's \timing)
timed() {
    psql_q -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
}

# median_ms "MS MS ...": the median of a list of timings
median_ms() {
    printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# time_ms TABLE SQL: wall time of one statement in its own transaction,
# after a VACUUM and a CHECKPOINT so that every run starts alike.
time_ms() {
    psql_q -c "VACUUM $1" -c "CHECKPOINT" >/dev/null
    timed "$2"
}

# measure NAME TABLE SQL [NAME TABLE SQL ...]: the variants run round-robin,
# $REPS rounds, so drift on the machine hits them alike; sets MS[NAME] to
# the fastest run (noise here only ever adds time).
declare -A MS
measure() {
    local -a names=() tables=() sqls=()
    local -A runs=()
    local i r
    while [ $# -gt 0 ]; do names+=("$1"); tables+=("$2"); sqls+=("$3"); shift 3; done
    for ((r = 0; r < REPS; r++)); do
        for i in "${!names[@]}"; do
            runs[${names[$i]}]+="$(time_ms "${tables[$i]}" "${sqls[$i]}") "
        done
    done
    for i in "${!names[@]}"; do
        MS[${names[$i]}]=$(printf '%s\n' ${runs[${names[$i]}]} | sort -n | head -n 1)
    done
}

row() {  # row LABEL BASE_MS MS
    awk -v l="$1" -v b="$2" -v t="$3" 'BEGIN {printf "| %-62s | %10.1f | %10.1f | %6.2fx |\n", l, b, t, t / b}'
}

log "setting up $ROWS-row tables"
psql_q <<SQL
CREATE EXTENSION pg_integrity_guard;
CREATE FUNCTION plpgsql_clamp_counter() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    IF NEW.n > 2147483647 THEN NEW.n := 2147483647;
    ELSIF NEW.n < -2147483648 THEN NEW.n := -2147483648;
    END IF;
    RETURN NEW;
END \$\$;
CREATE FUNCTION plpgsql_clamp_range() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    IF NEW.lo > NEW.hi THEN NEW.hi := NEW.lo; END IF;
    RETURN NEW;
END \$\$;
CREATE UNLOGGED TABLE c_none (id int PRIMARY KEY, n bigint);
INSERT INTO c_none SELECT g, 0 FROM generate_series(1, $ROWS) g;
CREATE UNLOGGED TABLE c_guard AS SELECT * FROM c_none;
CREATE UNLOGGED TABLE c_plpgsql AS SELECT * FROM c_none;
CREATE UNLOGGED TABLE c_builtin AS SELECT * FROM c_none;
CREATE UNLOGGED TABLE s_none AS SELECT id, 2147483647::bigint AS n FROM c_none;
CREATE UNLOGGED TABLE s_guard AS SELECT * FROM s_none;
CREATE UNLOGGED TABLE s_plpgsql AS SELECT * FROM s_none;
SELECT integrity_guard.guard_counter('c_guard', ARRAY['n']);
SELECT integrity_guard.guard_counter('s_guard', ARRAY['n']);
CREATE TRIGGER clamp BEFORE INSERT OR UPDATE ON c_plpgsql FOR EACH ROW EXECUTE FUNCTION plpgsql_clamp_counter();
-- the server's own minimal C row trigger: the floor of any row trigger
CREATE TRIGGER floor BEFORE UPDATE ON c_builtin FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE TRIGGER clamp BEFORE INSERT OR UPDATE ON s_plpgsql FOR EACH ROW EXECUTE FUNCTION plpgsql_clamp_counter();
-- the assignment rewrite: a 32-bit counter column
CREATE UNLOGGED TABLE w_none AS SELECT id, 0::int AS n FROM c_none;
CREATE UNLOGGED TABLE w_guard AS SELECT * FROM w_none;
CREATE UNLOGGED TABLE w_least AS SELECT * FROM w_none;
CREATE UNLOGGED TABLE w_plpgsql AS SELECT id, 0::bigint AS n FROM c_none;
SELECT integrity_guard.guard_counter('w_guard', ARRAY['n']);
CREATE TRIGGER clamp BEFORE INSERT OR UPDATE ON w_plpgsql FOR EACH ROW EXECUTE FUNCTION plpgsql_clamp_counter();
CREATE UNLOGGED TABLE r_none AS SELECT id, '2024-01-01'::timestamptz + id * interval '1 s' AS lo,
                              '2024-01-01'::timestamptz + id * interval '1 s' + interval '1 h' AS hi
                         FROM c_none;
CREATE UNLOGGED TABLE r_guard AS SELECT * FROM r_none;
CREATE UNLOGGED TABLE r_plpgsql AS SELECT * FROM r_none;
-- every table the same shape: a primary key, like a real hot table
DO \$\$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['w_none', 'w_guard', 'w_least', 'w_plpgsql', 'c_guard', 'c_plpgsql', 'c_builtin', 's_none', 's_guard', 's_plpgsql',
                             'r_none', 'r_guard', 'r_plpgsql'] LOOP
        EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (id)', t);
    END LOOP;
END \$\$;
SELECT integrity_guard.guard_range('r_guard', 'lo', 'hi');
CREATE TRIGGER clamp BEFORE INSERT OR UPDATE ON r_plpgsql FOR EACH ROW EXECUTE FUNCTION plpgsql_clamp_range();
VACUUM ANALYZE;
SQL

log "measuring ($REPS round-robin runs each)"
printf '\n%s rows per statement, fastest of %s round-robin runs\n\n' "$ROWS" "$REPS"
printf '| %-58s | %10s | %10s | %7s |\n' "case" "base ms" "ms" "ratio"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..60})" "------------" "------------" "---------"

measure c_none c_none "UPDATE c_none SET n = n + 1" \
        c_guard c_guard "UPDATE c_guard SET n = n + 1" \
        c_plpgsql c_plpgsql "UPDATE c_plpgsql SET n = n + 1" \
        c_builtin c_builtin "UPDATE c_builtin SET n = n + 1" \
        s_none s_none "UPDATE s_none SET n = n + 1" \
        s_guard s_guard "UPDATE s_guard SET n = n + 1" \
        s_plpgsql s_plpgsql "UPDATE s_plpgsql SET n = n + 1" \
        r_none r_none "UPDATE r_none SET hi = lo - interval '1 s'" \
        r_guard r_guard "UPDATE r_guard SET hi = lo - interval '1 s'" \
        r_plpgsql r_plpgsql "UPDATE r_plpgsql SET hi = lo - interval '1 s'"

row "counter, no saturation: saturate_counter vs no trigger" "${MS[c_none]}" "${MS[c_guard]}"
row "counter, no saturation: saturate_counter vs PL/pgSQL clamp" "${MS[c_plpgsql]}" "${MS[c_guard]}"
row "counter, no saturation: vs built-in C trigger (floor)" "${MS[c_builtin]}" "${MS[c_guard]}"
row "counter, every row saturates: saturate_counter vs none" "${MS[s_none]}" "${MS[s_guard]}"
row "counter, every row saturates: saturate_counter vs PL/pgSQL" "${MS[s_plpgsql]}" "${MS[s_guard]}"
row "range, every row inverted: clamp_range vs no trigger" "${MS[r_none]}" "${MS[r_guard]}"
row "range, every row inverted: clamp_range vs PL/pgSQL clamp" "${MS[r_plpgsql]}" "${MS[r_guard]}"

measure w_none w_none "UPDATE w_none SET n = n + 1" \
        w_guard w_guard "UPDATE w_guard SET n = n + 1" \
        w_least w_least "UPDATE w_least SET n = LEAST(n::bigint + 1, 2147483647)" \
        w_plpgsql w_plpgsql "UPDATE w_plpgsql SET n = n + 1"
printf '\nThe assignment rewrite (preloaded), %s rows, fastest of %s runs\n\n' "$ROWS" "$REPS"
printf '| %-62s | %10s | %10s | %7s |\n' "case" "base ms" "ms" "ratio"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..64})" "------------" "------------" "---------"
row "integer SET n = n + 1: guarded (rewrite + trigger) vs unguarded" "${MS[w_none]}" "${MS[w_guard]}"
row "guarded vs the application's LEAST(n::bigint + 1, 2^31-1)" "${MS[w_least]}" "${MS[w_guard]}"
row "guarded vs a PL/pgSQL clamp trigger on a bigint column" "${MS[w_plpgsql]}" "${MS[w_guard]}"

printf '\nDeleting referenced parents, median of %s runs\n\n' "$REPS"
printf '| %-58s | %10s | %10s | %7s |\n' "case" "base ms" "ms" "ratio"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..60})" "------------" "------------" "---------"
source "$TOP/test/bench/children.sh"
children_bench

printf '\nDuplicate keys, median of %s runs\n\n' "$REPS"
printf '| %-62s | %10s | %10s | %7s |\n' "case" "base ms" "ms" "ratio"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..64})" "------------" "------------" "---------"
source "$TOP/test/bench/unique.sh"
unique_bench

printf '\nincidents written for all saturating and clamping statements: %s rows (%s occurrences)\n' \
    "$(psql_q -c 'SELECT count(*) FROM integrity_guard.audit_log')" \
    "$(psql_q -c 'SELECT sum(occurrences) FROM integrity_guard.audit_log')"

# the durable audit pipeline under concurrent load: its own cluster
bash "$TOP/test/bench/pipeline.sh"

# reading the audit: its own cluster
bash "$TOP/test/bench/readers.sh"

# what preloading and guarding cost where there is little to do: its own clusters
bash "$TOP/test/bench/overhead.sh"
