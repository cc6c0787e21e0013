/*-------------------------------------------------------------------------
 *
 * citus.c
 *		What the guards need to know of Citus, when it is installed.
 *
 * Nothing here links to Citus: its catalog and functions are found by
 * name, and where they are absent every answer is "not Citus".  Citus
 * copies a distributed or reference table's triggers to its shards, where
 * the row-local guards (counter, range, unique) act on the shards' rows
 * and the assignment rewrite protects the shards' statements; the logical
 * table's own statements are Citus's to plan (ig_citus_table).  Citus
 * refuses a table with triggers unless citus.enable_unsafe_triggers is on:
 * the helpers turn it on for their own CREATE TRIGGER (the extension
 * script), and a call distributing a table whose only triggers are such
 * guards runs with it on (ig_citus_allow_guarded).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

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

/*
 * A scan of Citus's catalog 'catalog' for rows whose 'column' equals
 * 'value' (by 'eq'), through 'index' when there is one; NULL where Citus
 * is not installed.  The caller ends the scan and closes *rel.
 */
static SysScanDesc
citus_scan(const char *catalog, const char *index, const char *column,
		   RegProcedure eq, Datum value, Relation *rel)
{
	Oid			relid = get_relname_relid(catalog, PG_CATALOG_NAMESPACE);
	Oid			indexid;
	AttrNumber	attnum;
	ScanKeyData key;

	if (!OidIsValid(relid) ||
		(attnum = get_attnum(relid, column)) == InvalidAttrNumber)
		return NULL;
	indexid = get_relname_relid(index, PG_CATALOG_NAMESPACE);
	*rel = table_open(relid, AccessShareLock);
	ScanKeyInit(&key, attnum, BTEqualStrategyNumber, eq, value);
	return systable_beginscan(*rel, indexid, OidIsValid(indexid), NULL, 1, &key);
}

/*
 * Whether relid is a table Citus plans itself (distributed, reference, or
 * local in its metadata): a row of pg_catalog.pg_dist_partition.
 */
bool
ig_citus_table(Oid relid)
{
	Relation	rel;
	SysScanDesc scan;
	bool		found;

	scan = citus_scan("pg_dist_partition", "pg_dist_partition_logical_relid_index",
					  "logicalrelid", F_OIDEQ, ObjectIdGetDatum(relid), &rel);
	if (scan == NULL)
		return false;
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * If relid is one of Citus's shards (a table named after its logical table
 * and its shard id, which pg_catalog.pg_dist_shard holds), the suffix
 * Citus gives the names of the shard's objects ("_102008"); else NULL.
 */
char *
ig_citus_shard_suffix(Oid relid)
{
	char	   *name = get_rel_name(relid);
	char	   *suffix;
	char	   *end;
	int64		shardid;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;
	bool		shard = false;

	if (name == NULL || (suffix = strrchr(name, '_')) == NULL ||
		suffix == name || !isdigit((unsigned char) suffix[1]))
		return NULL;
	errno = 0;
	shardid = strtoi64(suffix + 1, &end, 10);
	if (errno != 0 || *end != '\0')
		return NULL;
	scan = citus_scan("pg_dist_shard", "pg_dist_shard_shardid_index", "shardid",
					  F_INT8EQ, Int64GetDatum(shardid), &rel);
	if (scan == NULL)
		return NULL;
	if (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		AttrNumber	att = get_attnum(RelationGetRelid(rel), "logicalrelid");
		bool		isnull = true;
		Datum		logical = att == InvalidAttrNumber ? (Datum) 0 :
			heap_getattr(tuple, att, RelationGetDescr(rel), &isnull);
		char	   *logical_name = isnull ? NULL :
			get_rel_name(DatumGetObjectId(logical));

		/* the shard of that logical table: its name and schema */
		shard = logical_name != NULL &&
			strlen(logical_name) == (size_t) (suffix - name) &&
			strncmp(logical_name, name, suffix - name) == 0 &&
			get_rel_namespace(DatumGetObjectId(logical)) == get_rel_namespace(relid);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return shard ? suffix : NULL;
}

/*
 * Whether relid is one of Citus's shards: what lists guards shows the
 * logical tables, not the copies of their triggers on each shard.
 */
bool
ig_citus_shard(Oid relid)
{
	return ig_citus_shard_suffix(relid) != NULL;
}

/*
 * integrity_guard._citus_shard(rel oid) returns boolean: ig_citus_shard for
 * the guards view.  False for NULL, a relation that is gone, or a server
 * without Citus; it never raises.
 */
PG_FUNCTION_INFO_V1(ig_citus_shard_sql);

Datum
ig_citus_shard_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(ig_citus_shard(PG_GETARG_OID(0)));
}

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
