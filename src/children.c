/*-------------------------------------------------------------------------
 *
 * children.c
 *		nullify_children(): clear (or delete) child rows that still reference
 *		a parent row being deleted, so that the delete never trips a foreign
 *		key and undeclared references never dangle.
 *
 * On the parent table, for DELETE.  Arguments:
 *		none						every FK referencing the table whose delete
 *									action is NO ACTION or RESTRICT
 *		'[schema.]child(col[, col])'			against the parent's primary key
 *												(no schema: the parent's)
 *		'[schema.]child(col[, col]) = (pcol[, pcol])'	against those columns
 *		'action=set_null' (default) or 'action=delete'
 * Relation and column names in a reference follow SQL identifier rules.
 *
 * Placements (doc/design.md, "Server facts", 3):
 *	BEFORE ROW			one indexed UPDATE per parent row.  Breaks when a
 *						self-referencing table deletes parent and child in one
 *						statement ("tuple to be deleted was already modified").
 *	AFTER ROW			the same per row, or, with REFERENCING OLD TABLE, one
 *						set-based statement per reference at the statement's
 *						first row event.  Fires before the server's RI checks
 *						only if its name sorts before "RI_ConstraintTrigger".
 *	AFTER STATEMENT		set-based over the transition table; runs after
 *						immediate RI checks, so only for deferred or undeclared
 *						references.
 *
 * Deferred foreign keys (INITIALLY DEFERRED) are left to a companion
 * deferrable constraint trigger, "IG_integrity_guard_children_deferred",
 * when the parent has one: it fires with the server's own deferred checks,
 * just before them (same event, name order), and clears only what still
 * dangles then.
 *
 * Security, decided at fire time (doc/design.md, "Children owned by someone
 * else"): a child table is changed only as its owner, as the server's own
 * foreign key actions are, and only when that owner agreed: it owns the
 * parent too, or it registered its consent in
 * integrity_guard.children_consent (consent_children(), or guard_children()
 * run by the child's owner).  Any other child is left to the server: the
 * foreign key error stands, an undeclared reference dangles as it would
 * without the guard, and a children_left incident counts the rows, read as
 * the child's owner.  The deleting role's rights are never used on a child:
 * none of a child owner's triggers, operators or policies run with them,
 * and no privilege the deleter lacks on a child can fail its delete.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"
#include "utils/varlena.h"

#include "children.h"
#include "citus_meta.h"
#include "incident.h"
#include "registry.h"
#include "settings.h"
#include "util.h"

/* RI action triggers are named RI_ConstraintTrigger_a_<oid>. */
#define RI_TRIGGER_PREFIX "RI_ConstraintTrigger"

/* A saved plan and the role it was prepared as. */
typedef struct RolePlan
{
	struct RolePlan *next;
	Oid			role;
	bool		set_based;
	bool		probe;			/* the children_left count */
	SPIPlanPtr	plan;
} RolePlan;

typedef struct ChildRef
{
	Oid			child_relid;
	Oid			child_owner;
	bool		declared;		/* backed by a foreign key constraint */
	bool		deferred;		/* ... that is INITIALLY DEFERRED */
	bool		active;			/* handled by this trigger */
	bool		consented;		/* child_owner registered its consent */
	const char *notnull_col;	/* set_null column made NOT NULL since */
	int			nkeys;
	AttrNumber	parent_attnums[INDEX_MAX_KEYS];
	Oid			parent_types[INDEX_MAX_KEYS];
	char	   *row_sql;		/* per parent row, $n = parent key */
	char	   *set_sql;		/* over the transition table, or NULL */
	char	   *probe_row_sql;	/* a declared FK's children_left: any child */
	char	   *probe_set_sql;	/* ... over the transition table */
	RolePlan   *plans;			/* saved on first use, per acting role */
	char	   *target;			/* audit target, "schema.child(cols)" */
	char	   *detail;
	char	   *left_detail;	/* of a children_left incident */
} ChildRef;

typedef enum RefSplit
{
	REF_OK,
	REF_BAD,
	REF_BAD_COLUMNS
} RefSplit;

typedef struct ChildrenConfig
{
	bool		delete_action;
	bool		has_immediate_declared;
	bool		companion;		/* a deferrable trigger: deferred FKs only */
	Oid			parent_owner;
	MemoryContext cxt;			/* where the configuration lives */
	const char *tgname;
	int			nrefs;
	ChildRef   *refs;
	/* set-based AFTER ROW: which statement was handled already */
	Tuplestorestate *done_store;
	int64		done_remaining;
	uint64		done_generation;
} ChildrenConfig;

static const char *const children_options[] = {"action", NULL};

/*
 * Free the saved plans with the configuration.  A replaced configuration is
 * freed at the end of the transaction (registry.c), so no plan goes away
 * while an outer, recursive firing of the trigger still runs it.
 */
static void
children_config_reset(void *arg)
{
	ChildrenConfig *cfg = arg;
	int			i;

	for (i = 0; i < cfg->nrefs; i++)
	{
		RolePlan   *rp;

		for (rp = cfg->refs[i].plans; rp != NULL; rp = rp->next)
			SPI_freeplan(rp->plan);
	}
}

static const char *const children_actions[] = {"set_null", "delete", NULL};

/* The equality operator between a parent and a child key type, if any. */
static Oid
key_equality_lookup(Oid parent_type, Oid child_type)
{
	Oid			opr;
	TypeCacheEntry *tce;

	opr = OpernameGetOprid(list_make2(makeString("pg_catalog"),
									  makeString("=")),
						   parent_type, child_type);
	if (OidIsValid(opr))
		return opr;
	if (getBaseType(parent_type) == getBaseType(child_type))
	{
		tce = lookup_type_cache(getBaseType(parent_type), TYPECACHE_EQ_OPR);
		if (OidIsValid(tce->eq_opr))
			return tce->eq_opr;
	}
	return InvalidOid;
}

/* The same, or an error naming the columns. */
static Oid
key_equality_operator(Oid parent_type, Oid child_type,
					  const char *parent_col, const char *child_col)
{
	Oid			opr = key_equality_lookup(parent_type, child_type);

	if (OidIsValid(opr))
		return opr;
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_FUNCTION),
			 errmsg("no equality operator between parent column \"%s\" (%s) and child column \"%s\" (%s)",
					parent_col, format_type_be(parent_type),
					child_col, format_type_be(child_type)),
			 errhint("Reference columns of the same type, or of types pg_catalog can compare.")));
	return InvalidOid;			/* keep compiler quiet */
}

/*
 * Whether the child's owner consented to this parent's guard acting on its
 * table: a row (parent, child, owner) in integrity_guard.children_consent
 * whose owner is the child's owner now (a new owner must consent again).
 * Read directly, as the catalogs are: the table's privileges and policies
 * govern who writes it, not who may learn a consent.  Changes to it
 * invalidate the parent's trigger configurations (_consent_changed).
 */
#define CONSENT_NATTS 3

static bool
child_owner_consents(Oid parent, Oid child, Oid owner)
{
	Oid			nsp = get_namespace_oid(IG_SCHEMA_NAME, true);
	Oid			relid;
	Relation	rel;
	SysScanDesc scan;
	Snapshot	snapshot;
	HeapTuple	tuple;
	bool		found = false;

	relid = OidIsValid(nsp) ? get_relname_relid("children_consent", nsp) : InvalidOid;
	if (!OidIsValid(relid))
		return false;			/* before 1.3 */
	rel = table_open(relid, AccessShareLock);
	if (RelationGetDescr(rel)->natts < CONSENT_NATTS)
	{
		table_close(rel, AccessShareLock);
		return false;
	}
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = systable_beginscan(rel, InvalidOid, false, snapshot, 0, NULL);
	while (!found && (tuple = systable_getnext(scan)) != NULL)
	{
		Datum		values[CONSENT_NATTS];
		bool		nulls[CONSENT_NATTS];
		int			i;

		for (i = 0; i < CONSENT_NATTS; i++)
			values[i] = heap_getattr(tuple, i + 1, RelationGetDescr(rel),
									 &nulls[i]);
		found = !nulls[0] && !nulls[1] && !nulls[2] &&
			DatumGetObjectId(values[0]) == parent &&
			DatumGetObjectId(values[1]) == child &&
			DatumGetObjectId(values[2]) == owner;
	}
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Whether a unique index of the parent (valid, immediate, not partial, no
 * expressions) has exactly these key columns, in any order: what the
 * server demands of the columns a foreign key references.
 */
static bool
parent_columns_unique(Relation parent, AttrNumber *attnums, int nkeys)
{
	List	   *indexes = RelationGetIndexList(parent);
	ListCell   *lc;
	bool		found = false;

	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ind = index->rd_index;
		int			i,
					k;

		if (ind->indisunique && ind->indimmediate && ind->indisvalid &&
			ind->indnkeyatts == nkeys &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indexprs, NULL))
		{
			found = true;
			for (i = 0; i < nkeys && found; i++)
			{
				bool		match = false;

				for (k = 0; k < nkeys; k++)
					match |= (ind->indkey.values[k] == attnums[i]);
				found = match;
			}
		}
		index_close(index, AccessShareLock);
		if (found)
			break;
	}
	list_free(indexes);
	return found;
}

/* The parent's primary key columns, for a reference that names none. */
static int
parent_primary_key(IgArgs *args, AttrNumber *attnums)
{
	Oid			indexoid = ig_RelationGetPrimaryKeyIndex(args->rel);
	Relation	index;
	int			n,
				i;

	if (!OidIsValid(indexoid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table \"%s\" has no primary key for nullify_children() to match",
						RelationGetRelationName(args->rel)),
				 errhint("Name the parent columns: 'child(col) = (parent_col)'.")));
	index = index_open(indexoid, AccessShareLock);
	n = index->rd_index->indnkeyatts;
	for (i = 0; i < n; i++)
		attnums[i] = index->rd_index->indkey.values[i];
	index_close(index, AccessShareLock);
	return n;
}

static void
bad_reference(const char *spec)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid reference \"%s\" for nullify_children()", spec),
			 errhint("Write references as '[schema.]child(col[, col])' or '[schema.]child(col) = (parent_col)'.")));
}

/* The text between the parentheses that start at *p (NULL if none); advance *p. */
static char *
take_parenthesized(const char **p)
{
	const char *start;
	bool		quoted = false;

	while (**p == ' ')
		(*p)++;
	if (**p != '(')
		return NULL;
	start = ++(*p);
	for (; **p != '\0'; (*p)++)
	{
		if (**p == '"')
			quoted = !quoted;
		else if (**p == ')' && !quoted)
		{
			char	   *inner = pnstrdup(start, *p - start);

			(*p)++;
			return inner;
		}
	}
	return NULL;
}

/* Split "a, "B c"" into column names, with identifier rules; NIL if invalid. */
static List *
split_column_list(const char *text)
{
	char	   *copy = pstrdup(text);
	List	   *names;

	if (!SplitIdentifierString(copy, ',', &names))
		return NIL;
	return names;
}

/*
 * Split a reference argument, '[schema.]child(cols)' or
 * '[schema.]child(cols) = (parent_cols)', without resolving any name.
 * *parent_cols is NIL when the parent's primary key is meant.
 */
static RefSplit
split_reference(const char *spec, char **relname, List **child_cols,
				List **parent_cols)
{
	const char *p = spec;
	const char *paren = NULL;
	bool		quoted = false;
	char	   *cols;

	*parent_cols = NIL;
	for (; *p != '\0'; p++)
	{
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '(' && !quoted)
		{
			paren = p;
			break;
		}
	}
	if (paren == NULL || paren == spec)
		return REF_BAD;
	*relname = pnstrdup(spec, paren - spec);
	if ((cols = take_parenthesized(&p)) == NULL)
		return REF_BAD;
	if ((*child_cols = split_column_list(cols)) == NIL)
		return REF_BAD_COLUMNS;
	while (*p == ' ')
		p++;
	if (*p == '=')
	{
		p++;
		if ((cols = take_parenthesized(&p)) == NULL)
			return REF_BAD;
		if ((*parent_cols = split_column_list(cols)) == NIL)
			return REF_BAD_COLUMNS;
		while (*p == ' ')
			p++;
	}
	return *p == '\0' ? REF_OK : REF_BAD;
}

/* The reference argument for these names, each quoted as needed. */
static char *
join_reference(const char *relname, List *child_cols, List *parent_cols)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s(", relname);
	foreach(lc, child_cols)
		appendStringInfo(&buf, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 quote_identifier(lfirst(lc)));
	appendStringInfoChar(&buf, ')');
	if (parent_cols != NIL)
	{
		appendStringInfoString(&buf, " = (");
		foreach(lc, parent_cols)
			appendStringInfo(&buf, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
							 quote_identifier(lfirst(lc)));
		appendStringInfoChar(&buf, ')');
	}
	return buf.data;
}

/*
 * The child table a reference names: an unqualified child is in the
 * parent's schema, never resolved through a search_path, which differs
 * between the attaching and deleting roles.
 */
static RangeVar *
reference_rangevar(Relation parent, const char *relname)
{
	List	   *names = ig_stringToQualifiedNameList(relname);

	if (list_length(names) == 1)
		names = lcons(makeString(get_namespace_name(RelationGetNamespace(parent))),
					  names);
	return makeRangeVarFromNameList(names);
}

/* Find the FK constraint from child(cols) to the parent's (pcols), if any. */
static HeapTuple
find_declared_fk(Relation parent, Oid child_relid, AttrNumber *child_attnums,
				 AttrNumber *parent_attnums, int nkeys)
{
	Relation	conrel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	HeapTuple	result = NULL;

	ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(child_relid));
	scan = systable_beginscan(conrel, ConstraintRelidTypidNameIndexId, true,
							  NULL, 1, &key);
	while ((tuple = systable_getnext(scan)) != NULL)
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tuple);
		AttrNumber	conkey[INDEX_MAX_KEYS];
		AttrNumber	confkey[INDEX_MAX_KEYS];
		int			n,
					i;

		if (con->contype != CONSTRAINT_FOREIGN ||
			con->confrelid != RelationGetRelid(parent))
			continue;
		DeconstructFkConstraintRow(tuple, &n, conkey, confkey,
								   NULL, NULL, NULL, NULL, NULL);
		if (n != nkeys)
			continue;
		for (i = 0; i < n; i++)
			if (conkey[i] != child_attnums[i] || confkey[i] != parent_attnums[i])
				break;
		if (i == n)
		{
			result = heap_copytuple(tuple);
			break;
		}
	}
	systable_endscan(scan);
	table_close(conrel, AccessShareLock);
	return result;
}

/*
 * Fill in a reference and build its SQL.  'fk' is the declared constraint
 * (with its operators), or NULL for an undeclared reference.
 */
static void
build_reference(IgArgs *args, ChildRef *ref, ChildrenConfig *cfg,
				Relation child, AttrNumber *child_attnums,
				AttrNumber *parent_attnums, int nkeys, HeapTuple fk)
{
	bool		delete_action = cfg->delete_action;
	TupleDesc	ptupdesc = RelationGetDescr(args->rel);
	TupleDesc	ctupdesc = RelationGetDescr(child);
	Oid			pf_eq_oprs[INDEX_MAX_KEYS];
	StringInfoData set_clause,
				row_where,
				set_where,
				parent_match,
				buf;
	const char *child_name;
	const char *parent_name;
	const char *only;
	const char *notnull_first = NULL;
	char		matchtype = FKCONSTR_MATCH_SIMPLE;
	const char *fkname = NULL;
	int			nclear = 0;
	IgCitusShard shard;
	int			i;

	ref->child_relid = RelationGetRelid(child);
	ref->child_owner = child->rd_rel->relowner;
	ref->consented = child_owner_consents(RelationGetRelid(args->rel),
										  RelationGetRelid(child),
										  child->rd_rel->relowner);
	ref->notnull_col = NULL;
	ref->plans = NULL;
	ref->nkeys = nkeys;
	ref->declared = (fk != NULL);
	if (fk)
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(fk);
		AttrNumber	conkey[INDEX_MAX_KEYS];
		AttrNumber	confkey[INDEX_MAX_KEYS];
		int			n;

		if (con->confdeltype != FKCONSTR_ACTION_NOACTION &&
			con->confdeltype != FKCONSTR_ACTION_RESTRICT)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("foreign key \"%s\" on table \"%s\" has its own ON DELETE action",
							NameStr(con->conname), RelationGetRelationName(child)),
					 errhint("The server already acts on it; leave it out of nullify_children().")));
		ref->deferred = con->condeferred;
		matchtype = con->confmatchtype;
		fkname = pstrdup(NameStr(con->conname));
		DeconstructFkConstraintRow(fk, &n, conkey, confkey, pf_eq_oprs,
								   NULL, NULL, NULL, NULL);
	}

	child_name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(child)),
											RelationGetRelationName(child));
	only = child->rd_rel->relkind == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ";

	initStringInfo(&set_clause);
	initStringInfo(&row_where);
	initStringInfo(&set_where);
	initStringInfo(&parent_match);
	for (i = 0; i < nkeys; i++)
	{
		Form_pg_attribute patt = TupleDescAttr(ptupdesc, parent_attnums[i] - 1);
		Form_pg_attribute catt = TupleDescAttr(ctupdesc, child_attnums[i] - 1);
		const char *ccol = quote_identifier(NameStr(catt->attname));
		char		param[16];
		char	   *cref;
		char	   *pref;
		Oid			opr;

		/*
		 * set_null clears the columns that can be cleared and keeps the
		 * NOT NULL ones, as ON DELETE SET NULL (columns) does: one NULL
		 * column is enough for the reference to match no parent.
		 */
		if (!delete_action && catt->attnotnull)
		{
			if (notnull_first == NULL)
				notnull_first = NameStr(catt->attname);
		}
		else
			appendStringInfo(&set_clause, "%s%s = NULL",
							 nclear++ > 0 ? ", " : "", ccol);

		ref->parent_attnums[i] = parent_attnums[i];
		ref->parent_types[i] = patt->atttypid;
		opr = fk ? pf_eq_oprs[i] :
			key_equality_operator(patt->atttypid, catt->atttypid,
								  NameStr(patt->attname), NameStr(catt->attname));

		cref = psprintf("x.%s", ccol);
		pref = psprintf("o.%s", quote_identifier(NameStr(patt->attname)));
		snprintf(param, sizeof(param), "$%d", i + 1);
		appendStringInfoString(&row_where, i > 0 ? " AND " : "");
		generate_operator_clause(&row_where, param, patt->atttypid, opr,
								 cref, catt->atttypid);
		appendStringInfoString(&set_where, i > 0 ? " AND " : "");
		generate_operator_clause(&set_where, pref, patt->atttypid, opr,
								 cref, catt->atttypid);

		/* the parent key present again: p.col = $n with the type's own = */
		appendStringInfoString(&parent_match, i > 0 ? " AND " : "");
		generate_operator_clause(&parent_match,
								 psprintf("p.%s", quote_identifier(NameStr(patt->attname))),
								 patt->atttypid,
								 lookup_type_cache(patt->atttypid, TYPECACHE_EQ_OPR)->eq_opr,
								 param, patt->atttypid);
	}

	/*
	 * Nothing to clear (every column NOT NULL), or a MATCH FULL key that
	 * some NULLs would leave invalid: refused at attach; a NOT NULL added
	 * since fails only the deletes that have a child to clear (see
	 * run_reference).
	 */
	if (!delete_action && notnull_first != NULL &&
		(nclear == 0 || matchtype == FKCONSTR_MATCH_FULL))
	{
		if (args->trigger != NULL)
			ref->notnull_col = pstrdup(notnull_first);
		else if (nclear == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" of table \"%s\" is NOT NULL: action=set_null cannot clear it",
							notnull_first, RelationGetRelationName(child)),
					 nkeys > 1 ? errdetail("Every column of the reference is NOT NULL.") : 0,
					 errhint("Use action=delete for this reference, or drop the NOT NULL constraint.")));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" of table \"%s\" is NOT NULL: action=set_null cannot clear it",
							notnull_first, RelationGetRelationName(child)),
					 errdetail("Foreign key \"%s\" is MATCH FULL: a row with some of its columns NULL and others not fails it.",
							   fkname),
					 errhint("Use action=delete for this reference, or drop the NOT NULL constraint.")));
	}

	/*
	 * At the deferred check, a parent row with the same key inserted again
	 * satisfies the constraint, as the server's own check finds.
	 */
	if (cfg->companion)
	{
		parent_name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(args->rel)),
												 RelationGetRelationName(args->rel));
		appendStringInfo(&row_where, " AND NOT EXISTS (SELECT 1 FROM %s%s p WHERE %s)",
						 args->rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ",
						 parent_name, parent_match.data);

		/*
		 * A child this transaction wrote after the delete and before the
		 * check (inserted, or pointed at the deleted key) fails the server's
		 * own check of that write: leave it to the server.  $n+1: the
		 * transaction's xids; $n+2, $n+3: the command ids of the delete and
		 * of the start of this check.
		 */
		appendStringInfo(&row_where,
						 " AND NOT (x.xmin OPERATOR(pg_catalog.=) ANY ($%d)"
						 " AND x.cmin::pg_catalog.text::pg_catalog.int8 > $%d"
						 " AND x.cmin::pg_catalog.text::pg_catalog.int8 < $%d)",
						 nkeys + 1, nkeys + 2, nkeys + 3);
	}

	/* a column that cannot be cleared: only look for a child to refuse */
	initStringInfo(&buf);
	if (ref->notnull_col)
		appendStringInfo(&buf, "SELECT 1 FROM %s%s x WHERE %s LIMIT 1",
						 only, child_name, row_where.data);
	else if (delete_action)
		appendStringInfo(&buf, "DELETE FROM %s%s x WHERE %s",
						 only, child_name, row_where.data);
	else
		appendStringInfo(&buf, "UPDATE %s%s x SET %s WHERE %s",
						 only, child_name, set_clause.data, row_where.data);
	ref->row_sql = buf.data;

	ref->set_sql = NULL;
	if (args->trigger && args->trigger->tgoldtable)
	{
		initStringInfo(&buf);
		if (ref->notnull_col)
			appendStringInfo(&buf, "SELECT 1 FROM %s%s x", only, child_name);
		else if (delete_action)
			appendStringInfo(&buf, "DELETE FROM %s%s x", only, child_name);
		else
			appendStringInfo(&buf, "UPDATE %s%s x SET %s", only, child_name,
							 set_clause.data);
		appendStringInfo(&buf, " WHERE EXISTS (SELECT 1 FROM %s o WHERE %s)%s",
						 quote_identifier(args->trigger->tgoldtable),
						 set_where.data, ref->notnull_col ? " LIMIT 1" : "");
		ref->set_sql = buf.data;
	}

	ref->probe_row_sql = psprintf("SELECT 1 FROM %s%s x WHERE %s LIMIT 1",
								  only, child_name, row_where.data);
	ref->probe_set_sql = NULL;
	if (args->trigger && args->trigger->tgoldtable)
		ref->probe_set_sql = psprintf("SELECT 1 FROM %s%s x WHERE EXISTS (SELECT 1 FROM %s o WHERE %s) LIMIT 1",
									  only, child_name,
									  quote_identifier(args->trigger->tgoldtable),
									  set_where.data);

	/* the audit names a shard's child by its logical table */
	initStringInfo(&buf);
	appendStringInfo(&buf, "%s.%s(",
					 get_namespace_name(RelationGetNamespace(child)),
					 ig_citus_shard_of(RelationGetRelid(child), &shard) ?
					 get_rel_name(shard.logical) : RelationGetRelationName(child));
	for (i = 0; i < nkeys; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "",
						 NameStr(TupleDescAttr(ctupdesc, child_attnums[i] - 1)->attname));
	appendStringInfoChar(&buf, ')');
	ref->target = buf.data;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	ig_append_json_string(&buf, "action", delete_action ? "delete" : "set_null", true);
	appendStringInfo(&buf, ", \"declared\": %s}", ref->declared ? "true" : "false");
	ref->detail = buf.data;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	ig_append_json_string(&buf, "action", delete_action ? "delete" : "set_null", true);
	appendStringInfo(&buf, ", \"declared\": %s", ref->declared ? "true" : "false");
	ig_append_json_string(&buf, "reason", ref->declared ?
						  "the child table's owner has not consented: its foreign key check decides" :
						  "the child table's owner has not consented: its rows were not read",
						  false);
	appendStringInfoChar(&buf, '}');
	ref->left_detail = buf.data;

	args->depends = lappend_oid(args->depends, ref->child_relid);
}

/*
 * A reference on a Citus table.  A distributed table's rows are split in
 * shards by its distribution column; the children of a parent shard's rows
 * are all in one shard of the child, on the same node, only when the two
 * tables are co-located and the reference joins their distribution
 * columns.  On a parent shard (at fire time, on a worker) *child, the
 * logical child the reference names, is swapped for that co-located shard
 * and child_attnums resolved there: the logical child's statements would
 * go to every node and reach other tenants' rows.
 */
static void
citus_reference(IgArgs *args, const char *spec, Relation *child,
				AttrNumber *child_attnums, AttrNumber *parent_attnums, int nkeys)
{
	IgCitusShard shard;
	bool		on_shard = ig_citus_shard_of(RelationGetRelid(args->rel), &shard);
	Oid			parent = on_shard ? shard.logical : RelationGetRelid(args->rel);
	Oid			logical_child = RelationGetRelid(*child);
	IgCitusTable ptable;
	IgCitusTable ctable;
	const char *pdist;
	const char *cdist;
	bool		joined = false;
	Oid			shard_child;
	int			i;

	if (!ig_citus_table_of(parent, &ptable))
		return;
	if (ptable.method != 'h' || !ig_citus_table_of(logical_child, &ctable) ||
		ctable.method != 'h' || ctable.colocation != ptable.colocation)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("reference \"%s\" of nullify_children() on Citus table \"%s\" does not name a co-located distributed table",
						spec, get_rel_name(parent)),
				 errdetail("A guard on a Citus table acts on each shard's co-located children, on the shard's node."),
				 errhint("Distribute both tables co-located (colocate_with) and join their distribution columns, or declare the foreign key: a reference table's children must be declared.")));
	pdist = get_attname(parent, ptable.distcol, true);
	cdist = get_attname(logical_child, ctable.distcol, true);
	for (i = 0; i < nkeys && pdist && cdist; i++)
		if (strcmp(get_attname(RelationGetRelid(args->rel), parent_attnums[i], false), pdist) == 0 &&
			strcmp(get_attname(logical_child, child_attnums[i], false), cdist) == 0)
			joined = true;
	if (!joined)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("reference \"%s\" of nullify_children() on Citus table \"%s\" does not join the distribution columns",
						spec, get_rel_name(parent)),
				 errdetail("Children are found on the parent's node only through %s.%s = %s.%s.",
						   get_rel_name(logical_child), cdist ? cdist : "?",
						   get_rel_name(parent), pdist ? pdist : "?"),
				 errhint("Name the child's distribution column against the parent's: 'child(%s, col) = (%s, pcol)'.",
						 cdist ? cdist : "dist_col", pdist ? pdist : "dist_col")));
	if (!on_shard)
		return;

	shard_child = ig_citus_colocated_shard(shard.shardid, logical_child);
	if (!OidIsValid(shard_child))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the shard of \"%s\" co-located with \"%s\" is not on this node",
						get_rel_name(logical_child), RelationGetRelationName(args->rel)),
				 errhint("Move co-located shards together (Citus does).")));
	LockRelationOid(shard_child, AccessShareLock);
	for (i = 0; i < nkeys; i++)
		child_attnums[i] = get_attnum(shard_child,
									  get_attname(logical_child, child_attnums[i], false));
	table_close(*child, NoLock);
	*child = table_open(shard_child, NoLock);
}

/* An explicit reference argument. */
static void
parse_reference(IgArgs *args, const char *spec, ChildRef *ref,
				ChildrenConfig *cfg)
{
	char	   *relname;
	List	   *child_cols;
	List	   *parent_cols;
	RangeVar   *rv;
	Oid			child_relid;
	Relation	child;
	AttrNumber	child_attnums[INDEX_MAX_KEYS];
	AttrNumber	parent_attnums[INDEX_MAX_KEYS];
	int			nkeys;
	int			i;
	ListCell   *lc;
	HeapTuple	fk;

	switch (split_reference(spec, &relname, &child_cols, &parent_cols))
	{
		case REF_OK:
			break;
		case REF_BAD_COLUMNS:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid column list in reference \"%s\" for nullify_children()",
							spec),
					 errhint("Write references as '[schema.]child(col[, col])' or '[schema.]child(col) = (parent_col)'.")));
			break;
		case REF_BAD:
			bad_reference(spec);
	}
	rv = reference_rangevar(args->rel, relname);

	/*
	 * At fire time the deleting role may lack USAGE on the child's schema
	 * (the guard may act as the child's owner): resolve the name without
	 * that check.  Whoever acts is checked when the statement is prepared.
	 */
	if (args->trigger != NULL)
	{
		Oid			nsp = get_namespace_oid(rv->schemaname, true);

		child_relid = OidIsValid(nsp) ? get_relname_relid(rv->relname, nsp) : InvalidOid;
		if (OidIsValid(child_relid))
			LockRelationOid(child_relid, AccessShareLock);
	}
	else
		child_relid = RangeVarGetRelid(rv, AccessShareLock, true);
	if (!OidIsValid(child_relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("child table \"%s\" of nullify_children() on table \"%s\" does not exist",
						relname, RelationGetRelationName(args->rel)),
				 errhint("If the child was dropped or renamed, unguard the parent and attach the guard again.")));
	child = table_open(child_relid, NoLock);
	if (child->rd_rel->relkind != RELKIND_RELATION &&
		child->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", relname)));

	nkeys = list_length(child_cols);
	if (nkeys > INDEX_MAX_KEYS)
		bad_reference(spec);
	i = 0;
	foreach(lc, child_cols)
	{
		char	   *name = (char *) lfirst(lc);
		IgArgs		cargs = *args;

		cargs.rel = child;
		child_attnums[i++] = ig_column_attnum(&cargs, name);
	}

	if (parent_cols == NIL)
	{
		int			npk = parent_primary_key(args, parent_attnums);

		if (npk != nkeys)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("reference \"%s\" names %d column(s) but the primary key of \"%s\" has %d",
							spec, nkeys, RelationGetRelationName(args->rel), npk),
					 errhint("Name the parent columns: 'child(cols) = (parent_cols)'.")));
	}
	else
	{
		if (list_length(parent_cols) != nkeys)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("reference \"%s\" pairs %d child column(s) with %d parent column(s)",
							spec, nkeys, list_length(parent_cols))));
		i = 0;
		foreach(lc, parent_cols)
			parent_attnums[i++] = ig_column_attnum(args, (char *) lfirst(lc));
	}

	citus_reference(args, spec, &child, child_attnums, parent_attnums, nkeys);
	child_relid = RelationGetRelid(child);
	fk = find_declared_fk(args->rel, child_relid, child_attnums,
						  parent_attnums, nkeys);
	if (fk == NULL && parent_cols != NIL && args->trigger == NULL &&
		!parent_columns_unique(args->rel, parent_attnums, nkeys))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FOREIGN_KEY),
				 errmsg("there is no unique constraint matching the columns of reference \"%s\" in table \"%s\"",
						spec, RelationGetRelationName(args->rel)),
				 errdetail("Two parent rows may hold the same value; deleting one would clear children that the other still serves."),
				 errhint("Reference the primary key or the columns of a unique constraint, as a foreign key must.")));
	build_reference(args, ref, cfg, child, child_attnums,
					parent_attnums, nkeys, fk);
	table_close(child, NoLock);
}

/*
 * Every FK referencing the parent whose delete action is NO ACTION or
 * RESTRICT.  Constraints that partitions of a referencing table inherit are
 * skipped: the one on the partitioned table covers them.
 */
static List *
declared_references(IgArgs *args)
{
	Relation	conrel = table_open(ConstraintRelationId, AccessShareLock);
	SysScanDesc scan;
	HeapTuple	tuple;
	List	   *fks = NIL;
	List	   *oids = NIL;
	List	   *result = NIL;
	ListCell   *lc;

	/* pg_constraint has no index on confrelid; this runs once per trigger. */
	scan = systable_beginscan(conrel, InvalidOid, false, NULL, 0, NULL);
	while ((tuple = systable_getnext(scan)) != NULL)
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tuple);

		if (con->contype == CONSTRAINT_FOREIGN &&
			con->confrelid == RelationGetRelid(args->rel) &&
			(con->confdeltype == FKCONSTR_ACTION_NOACTION ||
			 con->confdeltype == FKCONSTR_ACTION_RESTRICT))
		{
			fks = lappend(fks, heap_copytuple(tuple));
			oids = lappend_oid(oids, con->oid);
		}
	}
	systable_endscan(scan);
	table_close(conrel, AccessShareLock);

	foreach(lc, fks)
	{
		HeapTuple	fk = (HeapTuple) lfirst(lc);
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(fk);

		if (!list_member_oid(oids, con->conparentid))
			result = lappend(result, fk);
	}
	return result;
}

static void *
children_parse(IgArgs *args)
{
	ChildrenConfig *cfg = palloc0(sizeof(ChildrenConfig));
	int			i;

	ig_reject_unknown_options(args, children_options);
	cfg->delete_action = ig_option_choice(args, "action", "action",
										  children_actions) == 1;
	cfg->cxt = CurrentMemoryContext;
	cfg->companion = args->trigger != NULL && args->trigger->tgdeferrable;
	cfg->tgname = args->trigger ? pstrdup(args->trigger->tgname) : NULL;

	if (args->ncolumns > 0)
	{
		cfg->nrefs = args->ncolumns;
		cfg->refs = palloc0(sizeof(ChildRef) * cfg->nrefs);
		for (i = 0; i < args->ncolumns; i++)
			parse_reference(args, args->columns[i], &cfg->refs[i], cfg);
	}
	else
	{
		List	   *fks = declared_references(args);
		ListCell   *lc;

		if (fks == NIL && args->trigger == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("no foreign key with ON DELETE NO ACTION or RESTRICT references table \"%s\"",
							RelationGetRelationName(args->rel)),
					 errhint("Name undeclared references explicitly: 'child(col)' or 'child(col) = (parent_col)'.")));
		cfg->nrefs = list_length(fks);
		cfg->refs = palloc0(sizeof(ChildRef) * Max(cfg->nrefs, 1));
		i = 0;
		foreach(lc, fks)
		{
			HeapTuple	fk = (HeapTuple) lfirst(lc);
			Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(fk);
			AttrNumber	conkey[INDEX_MAX_KEYS];
			AttrNumber	confkey[INDEX_MAX_KEYS];
			int			n;
			Relation	child;

			DeconstructFkConstraintRow(fk, &n, conkey, confkey,
									   NULL, NULL, NULL, NULL, NULL);
			child = table_open(con->conrelid, AccessShareLock);
			build_reference(args, &cfg->refs[i++], cfg,
							child, conkey, confkey, n, fk);
			table_close(child, AccessShareLock);
		}
	}

	/*
	 * Which references this trigger acts on.  A deferrable trigger acts on
	 * the INITIALLY DEFERRED foreign keys only; the other trigger leaves
	 * those to it when the parent has one (otherwise, as before 1.2, it
	 * clears them at DELETE time).
	 */
	{
		bool		has_companion = cfg->companion;
		Oid			parent_owner = args->rel->rd_rel->relowner;

		if (!has_companion && args->trigger != NULL && args->rel->trigdesc)
		{
			TriggerDesc *trigdesc = args->rel->trigdesc;
			int			t;

			for (t = 0; t < trigdesc->numtriggers; t++)
			{
				Trigger    *other = &trigdesc->triggers[t];

				if (other->tgfoid == args->trigger->tgfoid &&
					other->tgdeferrable && other->tginitdeferred &&
					other->tgenabled != TRIGGER_DISABLED &&
					TRIGGER_FOR_ROW(other->tgtype) &&
					TRIGGER_FOR_DELETE(other->tgtype))
					has_companion = true;
			}
		}

		for (i = 0; i < cfg->nrefs; i++)
		{
			ChildRef   *ref = &cfg->refs[i];

			if (cfg->companion)
				ref->active = ref->declared && ref->deferred;
			else
				ref->active = !(has_companion && ref->declared && ref->deferred);
			if (ref->active && ref->declared && !ref->deferred)
				cfg->has_immediate_declared = true;

		}
		cfg->parent_owner = parent_owner;
	}

	if (args->trigger != NULL)
	{
		MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));

		cb->func = children_config_reset;
		cb->arg = cfg;
		MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	}
	return cfg;
}

static bool
children_has_immediate(void *config)
{
	return ((ChildrenConfig *) config)->has_immediate_declared;
}

/* Refuse placements that cannot work, at fire time, before any row. */
static void
check_placement(TriggerData *td, ChildrenConfig *cfg)
{
	Trigger    *trigger = td->tg_trigger;
	const char *relname = RelationGetRelationName(td->tg_relation);

	if (!TRIGGER_FIRED_BY_DELETE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("nullify_children() must be fired for DELETE"),
				 errdetail("Trigger \"%s\" on table \"%s\" fired for another event.",
						   trigger->tgname, relname),
				 errhint("Attach it with integrity_guard.guard_children().")));

	if (TRIGGER_FIRED_BEFORE(td->tg_event) && !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("nullify_children() cannot run BEFORE DELETE FOR EACH STATEMENT"),
				 errdetail("Trigger \"%s\" on table \"%s\" fires before the rows to delete are known.",
						   trigger->tgname, relname),
				 errhint("Attach it with integrity_guard.guard_children(), which picks a working placement.")));

	if (!TRIGGER_FIRED_FOR_ROW(td->tg_event) && trigger->tgoldtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("nullify_children() FOR EACH STATEMENT needs a transition table"),
				 errdetail("Trigger \"%s\" on table \"%s\" has no REFERENCING OLD TABLE clause.",
						   trigger->tgname, relname),
				 errhint("Recreate it with REFERENCING OLD TABLE AS old_rows, or use integrity_guard.guard_children().")));

	if (cfg->companion && strcmp(trigger->tgname, RI_TRIGGER_PREFIX) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" fires after the deferred foreign key checks of table \"%s\"",
						trigger->tgname, relname),
				 errdetail("Deferred triggers of one row fire in name order (byte order), and the server's checks are named \"" RI_TRIGGER_PREFIX "_...\"."),
				 errhint("Give the trigger a name that sorts first, such as \"IG_children_deferred\", or use integrity_guard.guard_children().")));

	if (TRIGGER_FIRED_AFTER(td->tg_event) && cfg->has_immediate_declared)
	{
		if (!TRIGGER_FIRED_FOR_ROW(td->tg_event))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("nullify_children() AFTER DELETE FOR EACH STATEMENT runs after the foreign key checks of table \"%s\"",
							relname),
					 errdetail("A foreign key that references it is not INITIALLY DEFERRED, so the server checks it at each row."),
					 errhint("Use an AFTER ROW trigger whose name sorts before \"" RI_TRIGGER_PREFIX "\", such as \"IG_children\", or integrity_guard.guard_children().")));
		if (strcmp(trigger->tgname, RI_TRIGGER_PREFIX) >= 0)
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("trigger \"%s\" fires after the foreign key checks of table \"%s\"",
							trigger->tgname, relname),
					 errdetail("AFTER ROW triggers fire in name order (byte order), and the server's checks are named \"" RI_TRIGGER_PREFIX "_...\"."),
					 errhint("Give the trigger a name that sorts first, such as \"IG_children\" (quoted, upper case), or use integrity_guard.guard_children().")));
	}
}

/* The saved plan of a reference for the acting role, prepared as it. */
static SPIPlanPtr
reference_plan(ChildrenConfig *cfg, ChildRef *ref, bool set_based, bool probe,
			   Oid role)
{
	RolePlan   *rp;
	SPIPlanPtr	plan;
	const char *sql = probe ?
		(set_based ? ref->probe_set_sql : ref->probe_row_sql) :
		(set_based ? ref->set_sql : ref->row_sql);

	for (rp = ref->plans; rp != NULL; rp = rp->next)
		if (rp->role == role && rp->set_based == set_based &&
			rp->probe == probe)
			return rp->plan;

	/* parsing checks schema USAGE: the acting role is current here */
	if (cfg->companion && !set_based)
	{
		Oid			types[INDEX_MAX_KEYS + 3];

		memcpy(types, ref->parent_types, sizeof(Oid) * ref->nkeys);
		types[ref->nkeys] = XIDARRAYOID;
		types[ref->nkeys + 1] = INT8OID;
		types[ref->nkeys + 2] = INT8OID;
		plan = SPI_prepare(sql, ref->nkeys + 3, types);
	}
	else
		plan = SPI_prepare(sql, set_based ? 0 : ref->nkeys, ref->parent_types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	rp = MemoryContextAlloc(cfg->cxt, sizeof(RolePlan));
	rp->role = role;
	rp->set_based = set_based;
	rp->probe = probe;
	rp->plan = plan;
	rp->next = ref->plans;
	ref->plans = rp;
	return plan;
}

/*
 * Run one reference's statement as the child's owner, as the server runs
 * its own foreign key actions: its triggers, policies and operators run
 * with that owner's rights, never with the deleting role's.  Returns the
 * number of child rows changed, or with probe, the number of rows that
 * still reference the deleted ones (changing nothing, under a
 * security-restricted operation).
 */
static uint64
run_reference(TriggerData *td, ChildrenConfig *cfg, ChildRef *ref,
			  bool set_based, bool probe, Datum *values, char *nulls)
{
	Oid			save_userid;
	int			save_sec_context;
	SPIPlanPtr	plan;
	int			rc;
	uint64		processed;
	const char *sql = probe ?
		(set_based ? ref->probe_set_sql : ref->probe_row_sql) :
		(set_based ? ref->set_sql : ref->row_sql);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(ref->child_owner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS |
						   (probe ? SECURITY_RESTRICTED_OPERATION : 0));
	/* an error restores the user id with the (sub)transaction's abort */
	{
		plan = reference_plan(cfg, ref, set_based, probe, ref->child_owner);

		/*
		 * As the server's RI actions: under REPEATABLE READ and SERIALIZABLE
		 * find rows with the latest snapshot and raise a serialization
		 * failure (40001) for one the transaction's snapshot cannot see.
		 */
		if (IsolationUsesXactSnapshot() && !probe)
		{
			CommandCounterIncrement();
			rc = SPI_execute_snapshot(plan, values, nulls, GetLatestSnapshot(),
									  GetTransactionSnapshot(), false, true,
									  0);
		}
		else
			rc = SPI_execute_plan(plan, values, nulls, probe, 0);
		processed = SPI_processed;
	}
	SetUserIdAndSecContext(save_userid, save_sec_context);

	if (rc != (probe || ref->notnull_col ? SPI_OK_SELECT :
			   cfg->delete_action ? SPI_OK_DELETE : SPI_OK_UPDATE))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("guard \"%s\" on table \"%s\" could not act on table \"%s\"",
						cfg->tgname, RelationGetRelationName(td->tg_relation),
						get_rel_name(ref->child_relid)),
				 errdetail("Its statement \"%s\" was rewritten (SPI result %d).", sql, rc),
				 errhint("A rule on table \"%s\" most likely rewrote it, as it would the server's own foreign key actions: drop the rule, or withdraw the consent (integrity_guard.consent_children(..., allow => false)).",
						 get_rel_name(ref->child_relid))));
	if (probe)
		return processed;		/* the LIMIT 1: whether a child remains */
	if (ref->notnull_col)
	{
		if (processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("guard \"%s\" on table \"%s\" cannot set column \"%s\" of table \"%s\" to NULL",
							cfg->tgname, RelationGetRelationName(td->tg_relation),
							ref->notnull_col, get_rel_name(ref->child_relid)),
					 errdetail("The column was made NOT NULL after the guard was attached, and a child row still references a deleted row."),
					 errhint("Attach the guard again with action => 'delete' (integrity_guard.unguard(), then integrity_guard.guard_children()), or drop the NOT NULL constraint.")));
		return 0;
	}
	return processed;
}

/*
 * In a set-based AFTER ROW trigger, only the statement's first row event
 * works; the others count down.  The transition table identifies the
 * statement; the countdown and the abort generation keep a reused address
 * from passing for the previous statement.
 */
static bool
first_row_event(TriggerData *td, ChildrenConfig *cfg)
{
	if (cfg->done_store == td->tg_oldtable &&
		cfg->done_remaining > 0 &&
		cfg->done_generation == ig_abort_generation)
	{
		cfg->done_remaining--;
		return false;
	}
	cfg->done_store = td->tg_oldtable;
	cfg->done_remaining = tuplestore_tuple_count(td->tg_oldtable) - 1;
	cfg->done_generation = ig_abort_generation;
	return true;
}

/*
 * What the companion needs to tell the application's writes after a delete
 * from its own: the transaction's xids (the top one, the committed
 * subtransactions and the current one), and the command id at which this
 * check began.  A check runs within one statement (COMMIT, SET CONSTRAINTS,
 * or the end of a statement once immediate); every companion firing of that
 * statement shares the first one's command id, so that the children the
 * guard itself cleared for one row are not taken for the application's.
 */
static TimestampTz check_statement = 0;
static TransactionId check_xid = InvalidTransactionId;
static CommandId check_start = InvalidCommandId;

static Datum
companion_window(int64 *check_cid)
{
	TransactionId *children;
	int			nchildren = xactGetCommittedChildren(&children);
	Datum	   *xids = palloc(sizeof(Datum) * (nchildren + 2));
	int			n = 0;
	int			k;

	if (check_statement != GetCurrentStatementStartTimestamp() ||
		!TransactionIdEquals(check_xid, GetTopTransactionIdIfAny()))
	{
		check_statement = GetCurrentStatementStartTimestamp();
		check_xid = GetTopTransactionIdIfAny();
		check_start = GetCurrentCommandId(false);
	}
	*check_cid = (int64) check_start;

	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		xids[n++] = TransactionIdGetDatum(GetTopTransactionIdIfAny());
	if (TransactionIdIsValid(GetCurrentTransactionIdIfAny()))
		xids[n++] = TransactionIdGetDatum(GetCurrentTransactionIdIfAny());
	for (k = 0; k < nchildren; k++)
		xids[n++] = TransactionIdGetDatum(children[k]);
	return PointerGetDatum(construct_array(xids, n, XIDOID, sizeof(TransactionId),
										   true, TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(nullify_children);

Datum
nullify_children(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	ChildrenConfig *cfg;
	bool		set_based;
	Datum		values[INDEX_MAX_KEYS + 3];
	char		nulls[INDEX_MAX_KEYS + 3];
	Datum		result;
	Datum		own_xids = (Datum) 0;
	int64		check_cid = 0;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("nullify_children() was not called by trigger manager")));
	td = (TriggerData *) fcinfo->context;
	result = TRIGGER_FIRED_BEFORE(td->tg_event) ?
		PointerGetDatum(td->tg_trigtuple) : PointerGetDatum(NULL);

	cfg = ig_trigger_config(fcinfo, &ig_children_kind);
	check_placement(td, cfg);
	if (!ig_enabled || cfg->nrefs == 0)
		return result;

	/*
	 * An UPDATE that moves a row to another partition fires DELETE row
	 * triggers on the source partition; the server treats it as an update
	 * of the key (its own RI triggers check it), so the guard stays out.
	 */
	if (TRIGGER_FIRED_FOR_ROW(td->tg_event) && td->tg_trigtuple != NULL &&
		td->tg_trigtuple->t_data != NULL &&
		HeapTupleHeaderIndicatesMovedPartitions(td->tg_trigtuple->t_data))
		return result;

	/*
	 * The transition table of an inheritance parent also holds the rows
	 * deleted from its inheritance children, which fire no row event here
	 * and are referenced by no foreign key on the parent: go row by row.
	 */
	set_based = (td->tg_oldtable != NULL);
	if (set_based && TRIGGER_FIRED_FOR_ROW(td->tg_event) &&
		td->tg_relation->rd_rel->relhassubclass)
		set_based = false;
	if (set_based && TRIGGER_FIRED_FOR_ROW(td->tg_event) &&
		!first_row_event(td, cfg))
		return result;

	if (cfg->companion && !set_based)
		own_xids = companion_window(&check_cid);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (td->tg_oldtable != NULL &&
		SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");

	for (i = 0; i < cfg->nrefs; i++)
	{
		ChildRef   *ref = &cfg->refs[i];
		uint64		changed;

		if (!ref->active)
			continue;
		if (!set_based)
		{
			TupleDesc	tupdesc = RelationGetDescr(td->tg_relation);
			bool		any_null = false;
			int			k;

			for (k = 0; k < ref->nkeys; k++)
			{
				bool		isnull;

				values[k] = heap_getattr(td->tg_trigtuple,
										 ref->parent_attnums[k],
										 tupdesc, &isnull);
				nulls[k] = isnull ? 'n' : ' ';
				any_null |= isnull;
			}
			/* a NULL parent key is referenced by nothing */
			if (any_null)
				continue;
			if (cfg->companion)
			{
				values[ref->nkeys] = own_xids;
				values[ref->nkeys + 1] =
					Int64GetDatum((int64) HeapTupleHeaderGetCmax(td->tg_trigtuple->t_data));
				values[ref->nkeys + 2] = Int64GetDatum(check_cid);
				nulls[ref->nkeys] = nulls[ref->nkeys + 1] = nulls[ref->nkeys + 2] = ' ';
			}
		}

		if (ref->child_owner == cfg->parent_owner || ref->consented)
		{
			changed = run_reference(td, cfg, ref, set_based, false,
									values, nulls);
			ig_incident_record(cfg->delete_action ? IG_EVENT_CHILDREN_DELETED :
							   IG_EVENT_CHILDREN_NULLIFIED,
							   td->tg_relation, ref->target, ref->detail,
							   (int64) changed);
		}
		else if (ref->declared)
		{
			/*
			 * No consent: the server's check decides.  Whether a child
			 * remains is what that check (the same query, as the same
			 * owner) tells the deleting role anyway; nothing more is read.
			 */
			if (run_reference(td, cfg, ref, set_based, true, values, nulls) > 0)
				ig_incident_record(IG_EVENT_CHILDREN_LEFT, td->tg_relation,
								   ref->target, ref->left_detail, 1);
		}
		else
		{
			/*
			 * An undeclared reference nobody agreed to: the child is not
			 * read at all (a count would tell its contents to whoever reads
			 * the parent's incidents); the parent rows it may have served
			 * are counted.
			 */
			ig_incident_record(IG_EVENT_CHILDREN_LEFT, td->tg_relation,
							   ref->target, ref->left_detail,
							   set_based ? (int64) tuplestore_tuple_count(td->tg_oldtable) : 1);
		}
	}

	SPI_finish();
	return result;
}

/*
 * SET CONSTRAINTS naming a deferrable foreign key IMMEDIATE runs the
 * server's checks of that key now, but not the guard's companion trigger,
 * which is a constraint of its own: name the companion too, so that it runs
 * first, as at commit (and follows the key back to DEFERRED).  The companion
 * is named in its table's schema, so every guard's companion in that schema
 * follows.  This needs the library loaded in the session, as it is once any
 * guard has fired, or when preloaded.
 */
#define COMPANION_NAME "IG_integrity_guard_children_deferred"

/* Whether every constraint named COMPANION_NAME in nsp is deferrable. */
static bool
companion_name_deferrable(Relation conrel, Oid nsp)
{
	ScanKeyData skey[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		ok = true;

	ScanKeyInit(&skey[0], Anum_pg_constraint_conname,
				BTEqualStrategyNumber, F_NAMEEQ, CStringGetDatum(COMPANION_NAME));
	ScanKeyInit(&skey[1], Anum_pg_constraint_connamespace,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(nsp));
	scan = systable_beginscan(conrel, ConstraintNameNspIndexId, true,
							  NULL, 2, skey);
	while (ok && HeapTupleIsValid(tup = systable_getnext(scan)))
		ok = ((Form_pg_constraint) GETSTRUCT(tup))->condeferrable;
	systable_endscan(scan);
	return ok;
}

static List *
companions_of_named_keys(List *constraints)
{
	Relation	conrel = table_open(ConstraintRelationId, AccessShareLock);
	Relation	tgrel = table_open(TriggerRelationId, AccessShareLock);
	List	   *parents = NIL;
	List	   *result = NIL;
	List	   *done = NIL;
	ListCell   *lc;

	foreach(lc, constraints)
	{
		RangeVar   *rv = lfirst_node(RangeVar, lc);
		List	   *namespaces;
		ListCell   *nlc;

		/* the server's own lookup: explicit schema, or the first match */
		if (rv->schemaname)
		{
			Oid			nsp = LookupExplicitNamespace(rv->schemaname, true);

			if (!OidIsValid(nsp))
				continue;
			namespaces = list_make1_oid(nsp);
		}
		else
			namespaces = fetch_search_path(true);

		foreach(nlc, namespaces)
		{
			ScanKeyData skey[2];
			SysScanDesc scan;
			HeapTuple	tup;
			bool		found = false;

			ScanKeyInit(&skey[0], Anum_pg_constraint_conname,
						BTEqualStrategyNumber, F_NAMEEQ,
						CStringGetDatum(rv->relname));
			ScanKeyInit(&skey[1], Anum_pg_constraint_connamespace,
						BTEqualStrategyNumber, F_OIDEQ,
						ObjectIdGetDatum(lfirst_oid(nlc)));
			scan = systable_beginscan(conrel, ConstraintNameNspIndexId, true,
									  NULL, 2, skey);
			while (HeapTupleIsValid(tup = systable_getnext(scan)))
			{
				Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);

				found = true;
				if (con->contype == CONSTRAINT_FOREIGN && con->condeferrable)
					parents = list_append_unique_oid(parents, con->confrelid);
			}
			systable_endscan(scan);
			if (found)
				break;
		}
	}

	foreach(lc, parents)
	{
		Oid			parent = lfirst_oid(lc);
		ScanKeyData skey[2];
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&skey[0], Anum_pg_trigger_tgrelid,
					BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(parent));
		ScanKeyInit(&skey[1], Anum_pg_trigger_tgname,
					BTEqualStrategyNumber, F_NAMEEQ,
					CStringGetDatum(COMPANION_NAME));
		scan = systable_beginscan(tgrel, TriggerRelidNameIndexId, true,
								  NULL, 2, skey);
		if (HeapTupleIsValid(tup = systable_getnext(scan)) &&
			((Form_pg_trigger) GETSTRUCT(tup))->tgdeferrable &&
			((Form_pg_trigger) GETSTRUCT(tup))->tgenabled != TRIGGER_DISABLED)
		{
			Oid			nsp = get_rel_namespace(parent);
			char	   *nspname = get_namespace_name(nsp);

			/*
			 * Never make the statement fail where the server would run it:
			 * the caller resolves the added name, so it needs USAGE on the
			 * schema, and every constraint of that name there must be
			 * deferrable (another role may have taken the name).
			 */
			if (nspname != NULL &&
				!list_member_oid(done, nsp) &&
				ig_namespace_aclcheck(nsp, GetUserId(), ACL_USAGE) == ACLCHECK_OK &&
				companion_name_deferrable(conrel, nsp))
				result = lappend(result, makeRangeVar(nspname, COMPANION_NAME, -1));
			done = lappend_oid(done, nsp);
		}
		systable_endscan(scan);
	}

	table_close(tgrel, AccessShareLock);
	table_close(conrel, AccessShareLock);
	return result;
}

/*
 * SET CONSTRAINTS naming foreign keys: the statement to run instead, naming
 * their companions too (the utility hook, pg_integrity_guard.c).  Returns
 * pstmt itself when there is nothing to add.
 */
PlannedStmt *
ig_children_set_constraints(PlannedStmt *pstmt)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, ConstraintsSetStmt) &&
		((ConstraintsSetStmt *) parsetree)->constraints != NIL &&
		IsTransactionState())
	{
		List	   *extra = companions_of_named_keys(((ConstraintsSetStmt *) parsetree)->constraints);

		if (extra != NIL)
		{
			PlannedStmt *copy = copyObject(pstmt);
			ConstraintsSetStmt *stmt = (ConstraintsSetStmt *) copy->utilityStmt;

			stmt->constraints = list_concat(list_copy(stmt->constraints), extra);
			return copy;
		}
	}
	return pstmt;
}

/*
 * integrity_guard._consent_changed(): AFTER ROW trigger on
 * integrity_guard.children_consent.  A consent given or withdrawn changes
 * what the parent's guards do: drop their cached configurations.
 */
PG_FUNCTION_INFO_V1(ig_consent_changed);

Datum
ig_consent_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	HeapTuple	rows[2];
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_FOR_ROW(((TriggerData *) fcinfo->context)->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_consent_changed() must be fired as a row trigger")));
	td = (TriggerData *) fcinfo->context;
	rows[0] = td->tg_trigtuple;
	rows[1] = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : NULL;
	for (i = 0; i < 2; i++)
	{
		bool		isnull;
		Datum		parent;

		if (rows[i] == NULL)
			continue;
		parent = heap_getattr(rows[i], 1, RelationGetDescr(td->tg_relation),
							  &isnull);
		if (!isnull &&
			SearchSysCacheExists1(RELOID, parent))
			CacheInvalidateRelcacheByRelid(DatumGetObjectId(parent));
	}
	return PointerGetDatum(NULL);
}

/*
 * integrity_guard.consent_children(child regclass, parent regclass,
 *									allow boolean) returns boolean
 *
 * The only writer of integrity_guard.children_consent.  PUBLIC may call it:
 * every argument is checked, and the caller must have the privileges of the
 * child's owner.  The row is written as the table's owner (the extension's),
 * so that no other role holds a privilege on the table that could lock it.
 */
PG_FUNCTION_INFO_V1(ig_consent_children);

static void
consent_table_check(Oid relid, const char *what)
{
	char		relkind = get_rel_relkind(relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s with OID %u is not a table", what, relid)));
}

Datum
ig_consent_children(PG_FUNCTION_ARGS)
{
	Oid			child;
	Oid			parent;
	bool		allow;
	Oid			child_owner;
	Oid			nsp;
	Oid			consent_relid;
	Oid			save_userid;
	int			save_sec_context;
	Oid			argtypes[3] = {OIDOID, OIDOID, OIDOID};
	Datum		values[3];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("child, parent and allow must not be NULL")));
	child = PG_GETARG_OID(0);
	parent = PG_GETARG_OID(1);
	allow = PG_GETARG_BOOL(2);
	consent_table_check(child, "child relation");
	consent_table_check(parent, "parent relation");
	child_owner = ig_rel_owner(child);
	if (!has_privs_of_role(GetUserId(), child_owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only the owner of table \"%s\" may consent to changes of its rows",
						get_rel_name(child)),
				 errhint("Run it as %s or a member of it.",
						 GetUserNameFromId(child_owner, false))));

	nsp = get_namespace_oid(IG_SCHEMA_NAME, false);
	consent_relid = get_relname_relid("children_consent", nsp);
	if (!OidIsValid(consent_relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("integrity_guard.children_consent does not exist"),
				 errhint("Update the extension: ALTER EXTENSION pg_integrity_guard UPDATE.")));

	values[0] = ObjectIdGetDatum(parent);
	values[1] = ObjectIdGetDatum(child);
	values[2] = ObjectIdGetDatum(child_owner);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(ig_rel_owner(consent_relid),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("DELETE FROM integrity_guard.children_consent"
							  " WHERE parent OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
							  " AND child OPERATOR(pg_catalog.=) $2::pg_catalog.regclass",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_DELETE ||
		(allow &&
		 SPI_execute_with_args("INSERT INTO integrity_guard.children_consent (parent, child, owner)"
							   " VALUES ($1::pg_catalog.regclass, $2::pg_catalog.regclass,"
							   " $3::pg_catalog.regrole)",
							   3, argtypes, values, NULL, false, 0) != SPI_OK_INSERT))
		elog(ERROR, "could not write integrity_guard.children_consent");
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec_context);
	PG_RETURN_BOOL(allow);
}

/*
 * integrity_guard._children_immediate(rel regclass, args text[]) returns bool
 *
 * Whether nullify_children() with these arguments covers a foreign key that
 * the server checks at each row (not INITIALLY DEFERRED): guard_children()
 * then needs a placement that fires before those checks.
 */
PG_FUNCTION_INFO_V1(ig_children_immediate);

Datum
ig_children_immediate(PG_FUNCTION_ARGS)
{
	ChildrenConfig *cfg = ig_check_args_config(fcinfo, ig_children_kind.function,
											   PG_GETARG_OID(0),
											   PG_GETARG_ARRAYTYPE_P(1));

	PG_RETURN_BOOL(children_has_immediate(cfg));
}

/* Replace 'from' by 'to' in a list of names; true if it was there. */
static bool
rename_in(List *names, const char *from, const char *to)
{
	ListCell   *lc;
	bool		found = false;

	foreach(lc, names)
		if (strcmp(lfirst(lc), from) == 0)
		{
			lfirst(lc) = pstrdup(to);
			found = true;
		}
	return found;
}

/* The position of a name in a list (it is there). */
static int
list_position_str(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp(lfirst(lc), name) == 0)
			return foreach_current_index(lc);
	return 0;
}

static bool
name_in(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	return false;
}

/*
 * How a children guard follows a change (registry.c, "Guards follow the
 * schema").  Its references name the child table, the child's columns and
 * the parent's columns:
 * - a renamed column on either side, a renamed or moved child: the
 *   reference names the new names (a child schema-qualified once moved);
 * - the parent moved to another schema: a child named without its schema
 *   is named with the schema it stays in;
 * - a dropped column on either side, a dropped child: the reference goes,
 *   and the guard with its last one (without any it would act on every
 *   declared foreign key instead).
 * A guard without references reads the declared foreign keys at fire time
 * and has nothing to follow.
 */
static void
children_follow(IgArgs *args, Trigger *tg, const IgSchemaChange *change,
				IgFollow *out)
{
	bool		own = change->relid == RelationGetRelid(args->rel);
	List	   *specs = NIL;
	const char *what = NULL;
	int			i;

	for (i = 0; i < args->ncolumns; i++)
	{
		const char *spec = args->columns[i];
		char	   *relname;
		List	   *ccols;
		List	   *pcols;
		RangeVar   *rv;
		Oid			nsp;
		Oid			child;
		bool		is_child;
		bool		qualified;

		if (split_reference(spec, &relname, &ccols, &pcols) != REF_OK)
		{
			specs = lappend(specs, (char *) spec);
			continue;
		}
		qualified = list_length(ig_stringToQualifiedNameList(relname)) > 1;
		rv = reference_rangevar(args->rel, relname);
		nsp = get_namespace_oid(rv->schemaname, true);
		child = OidIsValid(nsp) ? get_relname_relid(rv->relname, nsp) : InvalidOid;
		is_child = OidIsValid(child) && child == change->relid;

		switch (change->kind)
		{
			case IG_COLUMN_RENAMED:
				{
					bool		renamed = false;

					if (own && rename_in(pcols, change->column, change->newname))
						renamed = true;
					if (is_child && rename_in(ccols, change->column, change->newname))
						renamed = true;
					if (renamed)
					{
						spec = join_reference(relname, ccols, pcols);
						what = psprintf("follows column \"%s\" to its new name \"%s\"",
										change->column, change->newname);
					}
				}
				break;
			case IG_COLUMN_DROPPED:
				if ((own && name_in(pcols, change->column)) ||
					(is_child && name_in(ccols, change->column)))
				{
					what = psprintf("no longer follows reference \"%s\": column \"%s\" was dropped",
									spec, change->column);
					spec = NULL;
				}
				break;
			case IG_TABLE_RENAMED:
				if (is_child)
				{
					spec = join_reference(quote_qualified_identifier(rv->schemaname,
																	 change->newname),
										  ccols, pcols);
					what = psprintf("follows child table \"%s\" to its new name \"%s\"",
									rv->relname, change->newname);
				}
				break;
			case IG_TABLE_MOVED:
				if (is_child)
				{
					spec = join_reference(quote_qualified_identifier(change->newschema,
																	 rv->relname),
										  ccols, pcols);
					what = psprintf("follows child table \"%s\" to schema \"%s\"",
									rv->relname, change->newschema);
				}
				else if (own && !qualified)
				{
					spec = join_reference(quote_qualified_identifier(rv->schemaname,
																	 rv->relname),
										  ccols, pcols);
					what = psprintf("names its children with their schema, \"%s\", which they stay in",
									rv->schemaname);
				}
				break;
			case IG_TABLE_DROPPED:
				if (!OidIsValid(child) &&
					strcmp(rv->schemaname, change->schema) == 0 &&
					strcmp(rv->relname, change->table) == 0)
				{
					what = psprintf("no longer follows reference \"%s\": the child table was dropped",
									spec);
					spec = NULL;
				}
				break;
			case IG_COLUMN_RETYPED:
				{
					/* the pair's other column, as it is now */
					const char *other = NULL;
					Oid			other_type = InvalidOid;
					bool		child_side = is_child && name_in(ccols, change->column);
					bool		parent_side = own && name_in(pcols, change->column);

					if (child_side)
					{
						Oid			parent = RelationGetRelid(args->rel);
						int			pos = list_position_str(ccols, change->column);
						AttrNumber	pk[INDEX_MAX_KEYS];
						AttrNumber	attnum = InvalidAttrNumber;

						if (pcols != NIL)
							attnum = get_attnum(parent, list_nth(pcols, pos));
						else if (OidIsValid(ig_RelationGetPrimaryKeyIndex(args->rel)) &&
								 pos < parent_primary_key(args, pk))
							attnum = pk[pos];
						if (attnum != InvalidAttrNumber)
						{
							other = get_attname(parent, attnum, false);
							other_type = get_atttype(parent, attnum);
						}
					}
					else if (parent_side)
					{
						other = list_nth(ccols, list_position_str(pcols, change->column));
						other_type = get_atttype(child, get_attnum(child, other));
					}
					if (OidIsValid(other_type) &&
						!OidIsValid(key_equality_lookup(child_side ? other_type : change->newtype,
														child_side ? change->newtype : other_type)))
					{
						what = psprintf("no longer follows reference \"%s\": column \"%s\" as %s cannot be compared with column \"%s\"",
										spec, change->column,
										format_type_be(change->newtype), other);
						spec = NULL;
					}
				}
				break;
			default:
				break;			/* indexes: names stay */
		}
		if (spec != NULL)
			specs = lappend(specs, (char *) spec);
	}

	if (what == NULL)
		return;
	out->what = what;
	out->columns = specs;
	out->action = specs == NIL ? IG_FOLLOW_REMOVE : IG_FOLLOW_REWRITE;
	if (specs == NIL)
		out->what = psprintf("was removed with its last reference: %s", what);
}

const IgGuardKind ig_children_kind = {
	.function = "nullify_children",
	.label = "children",
	.follow = children_follow,
	.follows_tables = true,
	.parse = children_parse,
};
