/*-------------------------------------------------------------------------
 *
 * citus.c
 *		Distributing a guarded table on Citus.
 *
 * Citus refuses a table with triggers unless citus.enable_unsafe_triggers
 * is on: the helpers turn it on for their own CREATE TRIGGER (the
 * extension script), and a call distributing a table whose only triggers
 * are row-local guards runs with it on (ig_citus_allow_guarded).  What the
 * guards read of Citus's catalog is in citus_meta.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "nodes/plannodes.h"
#include "fmgr.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "citus.h"
#include "registry.h"

/* Citus's functions that make a table distributed or a reference table. */
static bool
distributes(FuncExpr *fe)
{
	static const char *const names[] = {
		"create_distributed_table", "create_distributed_table_concurrently",
		"create_reference_table"
	};
	char	   *name;
	size_t		i;

	if (get_func_namespace(fe->funcid) != PG_CATALOG_NAMESPACE)
		return false;
	name = get_func_name(fe->funcid);
	for (i = 0; name != NULL && i < lengthof(names); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/*
 * Whether every trigger Citus would refuse on relid (not internal, not a
 * partition's clone) is a row-local guard, and there is one.
 */
static bool
only_row_local_guards(Oid relid)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;
	int			guards = 0;
	bool		others = false;

	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, TriggerRelidNameIndexId, true, NULL, 1, &key);
	while (!others && HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tuple);
		const IgGuardKind *kind;

		if (tg->tgisinternal || OidIsValid(tg->tgparentid))
			continue;
		kind = ig_guard_kind_of(tg->tgfoid);
		if (kind == NULL || kind->follows_tables)
			others = true;
		else
			guards++;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return !others && guards > 0;
}

/*
 * A statement that only calls Citus to distribute a guarded table (SELECT
 * create_distributed_table('t', ...)): citus.enable_unsafe_triggers on for
 * its run.  Returns the GUC nest level to close after a normal run (an
 * error's (sub)transaction abort closes it), or 0 when there is nothing to
 * do.  Cheap for every other statement: it looks at a plan that is a bare
 * Result only.
 */
int
ig_citus_allow_guarded(QueryDesc *queryDesc)
{
	Plan	   *plan = queryDesc->plannedstmt->planTree;
	ListCell   *lc;

	if (plan == NULL || !IsA(plan, Result) || plan->lefttree != NULL)
		return 0;
	foreach(lc, plan->targetlist)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		FuncExpr   *fe;
		Node	   *arg;
		int			nest;

		if (!IsA(tle->expr, FuncExpr))
			continue;
		fe = (FuncExpr *) tle->expr;
		if (fe->args == NIL)
			continue;
		/* a table named by a constant first, then the function's name */
		arg = linitial(fe->args);
		if (!IsA(arg, Const) || ((Const *) arg)->consttype != REGCLASSOID ||
			((Const *) arg)->constisnull || !distributes(fe) ||
			!only_row_local_guards(DatumGetObjectId(((Const *) arg)->constvalue)))
			continue;
		nest = NewGUCNestLevel();
		(void) set_config_option("citus.enable_unsafe_triggers", "on",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
		return nest;
	}
	return 0;
}
