# Sourced by test/bench/run.sh: deleting parents that children reference.
# Declared FKs: every placement of nullify_children() on NO ACTION against
# native ON DELETE SET NULL.  Undeclared references: the set-based
# placement against a per-row PL/pgSQL trigger.

children_setup() {  # children_setup NPARENTS NCHILDREN
    local n=$1 k=$2 v i
    psql_q -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS cb CASCADE" \
           -c "CREATE SCHEMA cb" >/dev/null
    for v in native check_only before_row after_row after_row_set soft_plpgsql soft_set; do
        psql_q -c "CREATE UNLOGGED TABLE cb.${v}_p (id int PRIMARY KEY)" >/dev/null
        for ((i = 1; i <= k; i++)); do
            case $v in
                native) fk="REFERENCES cb.${v}_p ON DELETE SET NULL" ;;
                soft_*) fk="" ;;
                *) fk="REFERENCES cb.${v}_p" ;;
            esac
            psql_q -c "CREATE UNLOGGED TABLE cb.${v}_c$i (id int, p int $fk)" \
                   -c "CREATE INDEX ON cb.${v}_c$i (p)" >/dev/null
        done
    done
    psql_q <<SQL >/dev/null
CREATE TRIGGER g BEFORE DELETE ON cb.before_row_p FOR EACH ROW EXECUTE FUNCTION integrity_guard.nullify_children();
CREATE TRIGGER "IG_g" AFTER DELETE ON cb.after_row_p FOR EACH ROW EXECUTE FUNCTION integrity_guard.nullify_children();
SELECT integrity_guard.guard_children('cb.after_row_set_p');
SELECT integrity_guard.guard_children('cb.soft_set_p',
    ARRAY(SELECT format('cb.soft_set_c%s(p)', i) FROM generate_series(1, $k) i));
CREATE OR REPLACE FUNCTION cb_plpgsql_nullify() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    FOR i IN 1..TG_NARGS LOOP
        EXECUTE format('UPDATE cb.%I SET p = NULL WHERE p = \$1', TG_ARGV[i - 1]) USING OLD.id;
    END LOOP;
    RETURN OLD;
END \$\$;
CREATE TRIGGER g BEFORE DELETE ON cb.soft_plpgsql_p FOR EACH ROW EXECUTE FUNCTION
    cb_plpgsql_nullify($(for ((i = 1; i <= k; i++)); do printf "'soft_plpgsql_c%s'%s" $i $([ $i -lt $k ] && echo ,); done));
SQL
}

# children_fill NPARENTS NCHILDREN: fresh rows before every timed delete
children_fill() {
    local n=$1 k=$2 v i sql=""
    for v in native check_only before_row after_row after_row_set soft_plpgsql soft_set; do
        for ((i = k; i >= 1; i--)); do sql+="TRUNCATE cb.${v}_c$i; "; done
        sql+="DELETE FROM cb.${v}_p; INSERT INTO cb.${v}_p SELECT generate_series(1, $n); "
        for ((i = 1; i <= k; i++)); do
            # check_only: the same rows, referencing nothing: what the
            # server's own NO ACTION check costs on its own
            sql+="INSERT INTO cb.${v}_c$i SELECT g, $([ $v = check_only ] && echo NULL || echo "(g % $n) + 1") FROM generate_series(1, $n) g; "
        done
    done
    psql_q -c "SET integrity_guard.enabled = off" -c "$sql" -c "VACUUM ANALYZE" >/dev/null
}

children_bench() {
    local n k v r
    local -A runs
    for n in 10000 100000; do
        for k in 1 3; do
            children_setup "$n" "$k"
            runs=()
            for ((r = 0; r < REPS; r++)); do
                children_fill "$n" "$k"
                for v in native check_only before_row after_row after_row_set soft_plpgsql soft_set; do
                    psql_q -c "CHECKPOINT" >/dev/null
                    runs[$v]+="$(timed "DELETE FROM cb.${v}_p") "
                done
            done
            for v in "${!runs[@]}"; do MS[$v]=$(median_ms "${runs[$v]}"); done
            row "$n parents, $k child table(s): NO ACTION check alone vs native" "${MS[native]}" "${MS[check_only]}"
            row "$n parents, $k child table(s): BEFORE ROW vs native SET NULL" "${MS[native]}" "${MS[before_row]}"
            row "$n parents, $k child table(s): AFTER ROW vs native SET NULL" "${MS[native]}" "${MS[after_row]}"
            row "$n parents, $k child table(s): guard_children() vs native SET NULL" "${MS[native]}" "${MS[after_row_set]}"
            row "$n parents, $k child table(s): guard's own work (minus the check) vs native" \
                "${MS[native]}" "$(awk -v a="${MS[after_row_set]}" -v b="${MS[check_only]}" 'BEGIN {print a - b}')"
            row "$n parents, $k undeclared: guard_children() vs PL/pgSQL per row" "${MS[soft_plpgsql]}" "${MS[soft_set]}"
        done
    done
}
