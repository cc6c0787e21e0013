# Sourced by test/bench/run.sh: guard_unique() costs and savings.

unique_bench() {
    local n=$ROWS dups=100000 r v
    local -A runs=()
    psql_q <<SQL >/dev/null
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS ub CASCADE;
CREATE SCHEMA ub;
-- Sentry-like: a primary key and a unique business key
CREATE UNLOGGED TABLE ub.plain (id bigint PRIMARY KEY, project_id int, key text, UNIQUE (project_id, key));
CREATE UNLOGGED TABLE ub.guarded (LIKE ub.plain INCLUDING ALL);
CREATE UNLOGGED TABLE ub.precheck (LIKE ub.plain INCLUDING ALL);
CREATE UNLOGGED TABLE ub.skip (LIKE ub.plain INCLUDING ALL);
CREATE UNLOGGED TABLE ub.on_conflict (LIKE ub.plain INCLUDING ALL);
CREATE UNLOGGED TABLE ub.plpgsql (LIKE ub.plain INCLUDING ALL);
SELECT integrity_guard.guard_duplicates('ub.guarded');
SELECT integrity_guard.guard_duplicates('ub.skip', 'skip');
CREATE TABLE ub.size_plain (id bigint PRIMARY KEY);
CREATE TABLE ub.size_guarded (id bigint PRIMARY KEY);
SELECT integrity_guard.guard_duplicates('ub.size_guarded');
SQL
    for ((r = 0; r < REPS; r++)); do
        for v in plain guarded precheck; do
            psql_q -c "TRUNCATE ub.$v" -c "CHECKPOINT" >/dev/null
            runs[$v]+="$(timed "INSERT INTO ub.$v SELECT g, g % 1000, 'k' || g FROM generate_series(1, $n) g $([ $v = precheck ] && echo ON CONFLICT DO NOTHING)") "
        done
        # a consumer replaying: 100,000 messages of which 90% were seen
        for v in skip on_conflict plpgsql; do
            psql_q -c "TRUNCATE ub.$v" \
                   -c "INSERT INTO ub.$v SELECT g, g % 1000, 'k' || g FROM generate_series(1, $((dups * 9 / 10))) g" \
                   -c "VACUUM ANALYZE ub.$v" -c "CHECKPOINT" >/dev/null
        done
        runs[dup_skip]+="$(timed "INSERT INTO ub.skip SELECT g, g % 1000, 'k' || g FROM generate_series(1, $dups) g") "
        runs[dup_on_conflict]+="$(timed "INSERT INTO ub.on_conflict SELECT g, g % 1000, 'k' || g FROM generate_series(1, $dups) g ON CONFLICT DO NOTHING") "
        runs[dup_plpgsql]+="$(timed "DO \$\$ BEGIN FOR g IN 1..$dups LOOP BEGIN INSERT INTO ub.plpgsql VALUES (g, g % 1000, 'k' || g); EXCEPTION WHEN unique_violation THEN NULL; END; END LOOP; END \$\$") "
    done
    for v in "${!runs[@]}"; do MS[$v]=$(median_ms "${runs[$v]}"); done
    row "$n new rows (PK + unique key): guard_unique vs none" "${MS[plain]}" "${MS[guarded]}"
    row "$n new rows: the server's ON CONFLICT pre-check vs none" "${MS[plain]}" "${MS[precheck]}"
    row "$n new rows: guard_unique vs ON CONFLICT DO NOTHING" "${MS[precheck]}" "${MS[guarded]}"
    row "$dups rows, 90% seen: mode=skip vs ON CONFLICT DO NOTHING" "${MS[dup_on_conflict]}" "${MS[dup_skip]}"
    row "$dups rows, 90% seen: mode=skip vs PL/pgSQL BEGIN/EXCEPTION" "${MS[dup_plpgsql]}" "${MS[dup_skip]}"

    # each rejected attempt in its own subtransaction, as an ORM does it
    psql_q -c "INSERT INTO ub.size_plain VALUES (1)" -c "INSERT INTO ub.size_guarded VALUES (1)" \
           -c "DO \$\$ BEGIN FOR i IN 1..$dups LOOP
                   BEGIN INSERT INTO ub.size_plain VALUES (1); EXCEPTION WHEN unique_violation THEN NULL; END;
                   BEGIN INSERT INTO ub.size_guarded VALUES (1); EXCEPTION WHEN unique_violation THEN NULL; END;
               END LOOP; END \$\$" >/dev/null
    printf '\ntable size after %s rejected duplicates: unguarded %s, guarded %s\n' "$dups" \
        "$(psql_q -c "SELECT pg_size_pretty(pg_relation_size('ub.size_plain'))")" \
        "$(psql_q -c "SELECT pg_size_pretty(pg_relation_size('ub.size_guarded'))")"
}
