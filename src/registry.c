/*-------------------------------------------------------------------------
 *
 * registry.c
 *		The guard registry: guard kinds, trigger-argument parsing and the
 *		per-trigger configuration cache.
 *
 * Every guard parses its trigger arguments once per trigger, resolves
 * column names to attribute numbers, and keeps the result in a cache keyed
 * by the trigger's OID.  A relcache invalidation of the trigger's relation
 * (ALTER TABLE, CREATE/DROP TRIGGER, a renamed or dropped column) marks the
 * entry stale, so the next row re-parses against the current catalog and a
 * guard can never act on the wrong column.
 *
 * The same parser serves attach time: integrity_guard._check_args() runs it
 * on the arguments a helper is about to put into CREATE TRIGGER.  The
 * assignment rewrite reads the same cached configurations, and finds the
 * guard kind of a trigger by its function's OID, resolved once per
 * backend (again after any change to pg_proc).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/relcache.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "registry.h"
#include "settings.h"
#include "util.h"

typedef struct IgCacheEntry
{
	Oid			tgoid;			/* hash key */
	Oid			relid;
	List	   *depends;		/* further relids, in cxt */
	bool		valid;
	MemoryContext cxt;
	void	   *config;
} IgCacheEntry;

static HTAB *trigger_cache = NULL;

/*
 * What a trigger's FmgrInfo carries for the statement: the cache entry, so
 * later rows skip the hash probe, and a guard's per-statement state.
 * Allocated in fn_mcxt, which lives as long as the statement.
 */
typedef struct IgFnExtra
{
	IgCacheEntry *entry;
	void	   *statement_state;
} IgFnExtra;

/* A relcache invalidation (InvalidOid: all relations). */
void
ig_registry_relation_changed(Oid relid)
{
	HASH_SEQ_STATUS status;
	IgCacheEntry *entry;

	if (trigger_cache == NULL)
		return;

	hash_seq_init(&status, trigger_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (relid == InvalidOid || entry->relid == relid ||
			(entry->valid && list_member_oid(entry->depends, relid)))
			entry->valid = false;
	}
}

uint64		ig_abort_generation = 0;

/* A transaction or subtransaction aborted. */
void
ig_registry_abort(void)
{
	ig_abort_generation++;
}

/*
 * Guard kinds, registered by _PG_init, and the OIDs of their trigger
 * functions in this database, looked up on first need.
 */
#define IG_MAX_KINDS 8

static const IgGuardKind *kinds[IG_MAX_KINDS];
static Oid	kind_funcoids[IG_MAX_KINDS];
static int	nkinds = 0;
static bool kind_funcoids_valid = false;

void
ig_registry_add_kind(const IgGuardKind *kind)
{
	if (nkinds >= IG_MAX_KINDS)
		elog(ERROR, "too many guard kinds");
	kinds[nkinds++] = kind;
	kind_funcoids_valid = false;
}

/* Something in pg_proc changed: the functions may be new. */
void
ig_registry_functions_changed(void)
{
	kind_funcoids_valid = false;
}

static const IgGuardKind *
kind_by_name(const char *function)
{
	int			i;

	for (i = 0; i < nkinds; i++)
		if (strcmp(kinds[i]->function, function) == 0)
			return kinds[i];
	return NULL;
}

/* The guard kind whose trigger function has this OID, or NULL. */
const IgGuardKind *
ig_guard_kind_of(Oid funcoid)
{
	int			i;

	if (!kind_funcoids_valid)
	{
		for (i = 0; i < nkinds; i++)
			kind_funcoids[i] =
				LookupFuncName(list_make2(makeString(IG_SCHEMA_NAME),
										  makeString(unconstify(char *, kinds[i]->function))),
							   0, NULL, true);
		kind_funcoids_valid = true;
	}
	for (i = 0; i < nkinds; i++)
		if (kind_funcoids[i] == funcoid && OidIsValid(funcoid))
			return kinds[i];
	return NULL;
}

static void
ig_cache_create(void)
{
	HASHCTL		ctl;

	if (!CacheMemoryContext)
		CreateCacheMemoryContext();
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(IgCacheEntry);
	ctl.hcxt = CacheMemoryContext;
	trigger_cache = hash_create("integrity_guard trigger cache", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * Check that a counter or range guard runs where it can work: as a BEFORE
 * ROW trigger for INSERT and/or UPDATE.  Cheap bit tests, done every row.
 */
TriggerData *
ig_require_before_row_write(FunctionCallInfo fcinfo, const char *guard)
{
	TriggerData *td;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() was not called by trigger manager", guard),
				 errhint("Attach it with CREATE TRIGGER ... EXECUTE FUNCTION integrity_guard.%s(...) or with the integrity_guard.guard_*() helpers.",
						 guard)));

	td = (TriggerData *) fcinfo->context;

	if (!TRIGGER_FIRED_BEFORE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be fired BEFORE INSERT OR UPDATE", guard),
				 errdetail("Trigger \"%s\" on table \"%s\" fires AFTER the row is written, too late to change it.",
						   td->tg_trigger->tgname,
						   RelationGetRelationName(td->tg_relation)),
				 errhint("Recreate the trigger as BEFORE INSERT OR UPDATE ... FOR EACH ROW.")));

	if (!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be fired FOR EACH ROW", guard),
				 errdetail("Trigger \"%s\" on table \"%s\" is a statement-level trigger.",
						   td->tg_trigger->tgname,
						   RelationGetRelationName(td->tg_relation)),
				 errhint("Recreate the trigger as BEFORE INSERT OR UPDATE ... FOR EACH ROW.")));

	if (!TRIGGER_FIRED_BY_INSERT(td->tg_event) &&
		!TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be fired for INSERT or UPDATE", guard),
				 errdetail("Trigger \"%s\" on table \"%s\" fired for DELETE.",
						   td->tg_trigger->tgname,
						   RelationGetRelationName(td->tg_relation)),
				 errhint("Recreate the trigger as BEFORE INSERT OR UPDATE ... FOR EACH ROW.")));

	return td;
}

/*
 * The cache entry of a trigger, parsed against the current catalog if it
 * was invalidated since.
 */
static IgCacheEntry *
cache_entry(Relation rel, Trigger *trigger, const IgGuardKind *kind)
{
	IgCacheEntry *entry;
	bool		found;
	IgArgs		args;
	MemoryContext oldcxt;

	if (trigger_cache == NULL)
		ig_cache_create();
	entry = hash_search(trigger_cache, &trigger->tgoid, HASH_ENTER, &found);
	if (!found)
	{
		entry->valid = false;
		entry->cxt = NULL;
		entry->config = NULL;
	}
	if (entry->valid)
		return entry;

	/*
	 * The replaced configuration may still be in use by an outer firing of
	 * this trigger (a guard's own statement can fire it again): free it with
	 * the transaction rather than now.
	 */
	if (entry->cxt != NULL)
		MemoryContextSetParent(entry->cxt, TopTransactionContext);
	entry->cxt = AllocSetContextCreate(CacheMemoryContext,
									   "integrity_guard trigger",
									   ALLOCSET_SMALL_SIZES);
	entry->config = NULL;
	entry->depends = NIL;
	entry->relid = RelationGetRelid(rel);

	/*
	 * Mark the entry valid before parsing: an invalidation that arrives while
	 * the parser reads the catalog clears the flag again and is not lost.
	 */
	entry->valid = true;
	oldcxt = MemoryContextSwitchTo(entry->cxt);
	PG_TRY();
	{
		ig_split_args(&args, kind->function, rel,
					  trigger->tgnargs, trigger->tgargs);
		args.trigger = trigger;
		entry->config = kind->parse(&args);
		entry->depends = args.depends;
	}
	PG_CATCH();
	{
		entry->valid = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);

	return entry;
}

/*
 * Return the parsed configuration of the firing trigger, parsing it on the
 * first row after any invalidation of the trigger's relation.
 */
void *
ig_trigger_config(FunctionCallInfo fcinfo, const IgGuardKind *kind)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Trigger    *trigger = td->tg_trigger;
	IgCacheEntry *entry;
	IgFnExtra  *extra = (IgFnExtra *) fcinfo->flinfo->fn_extra;

	/*
	 * The trigger's FmgrInfo lives for the statement: remember the entry
	 * there and skip the hash probe on every later row.  Entries are never
	 * removed from the hash, so the pointer stays good.
	 */
	if (extra == NULL)
		extra = fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(IgFnExtra));
	entry = extra->entry;
	if (entry != NULL && entry->valid && entry->tgoid == trigger->tgoid)
		return entry->config;

	entry = cache_entry(td->tg_relation, trigger, kind);
	extra->entry = entry;
	return entry->config;
}

/*
 * Columns of the relation that an enabled guard asks the assignment
 * rewrite to protect, from the cached configurations.
 */
List *
ig_registry_guarded_columns(Relation rel)
{
	List	   *result = NIL;
	int			i;

	if (rel->trigdesc == NULL)
		return NIL;
	for (i = 0; i < rel->trigdesc->numtriggers; i++)
	{
		Trigger    *tg = &rel->trigdesc->triggers[i];
		const IgGuardKind *kind;

		if (tg->tgenabled == TRIGGER_DISABLED)
			continue;
		kind = ig_guard_kind_of(tg->tgfoid);
		if (kind == NULL || kind->guarded_columns == NULL)
			continue;
		result = list_concat(result,
							 kind->guarded_columns(cache_entry(rel, tg, kind)->config));
	}
	return result;
}

/*
 * A guard's per-statement state slot (NULL on the statement's first row).
 * Memory for it belongs in fcinfo->flinfo->fn_mcxt.  Call after
 * ig_trigger_config().
 */
void	  **
ig_statement_state(FunctionCallInfo fcinfo)
{
	return &((IgFnExtra *) fcinfo->flinfo->fn_extra)->statement_state;
}

/* An option is key=value where key is a non-empty lower-case word. */
static bool
ig_is_option(const char *arg, const char **eq)
{
	const char *p = arg;

	while (*p == '_' || (*p >= 'a' && *p <= 'z'))
		p++;
	if (p == arg || *p != '=')
		return false;
	*eq = p;
	return true;
}

void
ig_split_args(IgArgs *args, const char *guard, Relation rel,
			  int nargs, char **argv)
{
	int			i;

	args->guard = guard;
	args->rel = rel;
	args->trigger = NULL;
	args->depends = NIL;
	args->ncolumns = 0;
	args->noptions = 0;
	args->columns = palloc(sizeof(char *) * Max(nargs, 1));
	args->options = palloc(sizeof(IgOption) * Max(nargs, 1));

	for (i = 0; i < nargs; i++)
	{
		const char *eq;

		if (ig_is_option(argv[i], &eq))
		{
			IgOption   *opt = &args->options[args->noptions++];

			opt->key = pnstrdup(argv[i], eq - argv[i]);
			opt->value = pstrdup(eq + 1);
		}
		else
			args->columns[args->ncolumns++] = pstrdup(argv[i]);
	}
}

void
ig_reject_unknown_options(IgArgs *args, const char *const *known)
{
	int			i;

	for (i = 0; i < args->noptions; i++)
	{
		const char *const *k;
		StringInfoData valid;

		for (k = known; *k != NULL; k++)
			if (strcmp(args->options[i].key, *k) == 0)
				break;
		if (*k != NULL)
			continue;

		initStringInfo(&valid);
		for (k = known; *k != NULL; k++)
			appendStringInfo(&valid, "%s%s=", valid.len > 0 ? ", " : "", *k);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown option \"%s\" for %s() on table \"%s\"",
						args->options[i].key, args->guard,
						RelationGetRelationName(args->rel)),
				 valid.len > 0 ?
				 errhint("Valid options are: %s.", valid.data) :
				 errhint("%s() takes no options.", args->guard)));
	}
}

/*
 * An option that picks one of 'choices' (NULL-terminated; the first is the
 * default): returns the index.  Given twice or with another value, an error
 * that lists the choices.
 */
int
ig_option_choice(IgArgs *args, const char *key, const char *what,
				 const char *const *choices)
{
	const char *value = NULL;
	int			i;

	for (i = 0; i < args->noptions; i++)
	{
		if (strcmp(args->options[i].key, key) != 0)
			continue;
		if (value != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" is given more than once for %s() on table \"%s\"",
							key, args->guard, RelationGetRelationName(args->rel))));
		value = args->options[i].value;
	}
	if (value == NULL)
		return 0;

	for (i = 0; choices[i] != NULL; i++)
		if (strcmp(value, choices[i]) == 0)
			return i;

	{
		StringInfoData valid;

		initStringInfo(&valid);
		for (i = 0; choices[i] != NULL; i++)
			appendStringInfo(&valid, "%s%s%s", i > 0 ? ", " : "", choices[i],
							 i == 0 ? " (the default)" : "");
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown %s \"%s\" for %s() on table \"%s\"",
						what, value, args->guard, RelationGetRelationName(args->rel)),
				 errhint("Valid values are %s.", valid.data)));
	}
	return 0;					/* keep compiler quiet */
}

/*
 * Resolve a column named in a guard argument.  Names are matched exactly, as
 * stored in the catalog (no identifier folding): 'Times_Seen' and
 * 'times_seen' are different columns, as in the server's own trigger
 * arguments (tsvector_update_trigger, refint).
 */
AttrNumber
ig_column_attnum(IgArgs *args, const char *column)
{
	TupleDesc	tupdesc = RelationGetDescr(args->rel);
	const char *caseless = NULL;
	const char *nearest = NULL;
	int			nearest_dist = Max(2, (int) strlen(column) / 3) + 1;
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped)
			continue;
		if (strcmp(NameStr(att->attname), column) == 0)
		{
			if (att->attgenerated)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("column \"%s\" of relation \"%s\" is a generated column",
								column, RelationGetRelationName(args->rel)),
						 errdetail("%s() cannot change a generated column; the server computes it after BEFORE triggers.",
								   args->guard),
						 errhint("Guard the columns the generated column is computed from.")));
			return att->attnum;
		}
		if (pg_strcasecmp(NameStr(att->attname), column) == 0)
			caseless = NameStr(att->attname);
		else if (att->attnum > 0)
		{
			/* a typo at attach: the closest name, as the server suggests one */
			int			d = varstr_levenshtein_less_equal(column, strlen(column),
														  NameStr(att->attname),
														  strlen(NameStr(att->attname)),
														  1, 1, 1, nearest_dist - 1,
														  true);

			if (d < nearest_dist)
			{
				nearest_dist = d;
				nearest = NameStr(att->attname);
			}
		}
	}

	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" of relation \"%s\" does not exist",
					column, RelationGetRelationName(args->rel)),
			 errdetail("%s() was given column \"%s\".", args->guard, column),
			 caseless ?
			 errhint("Column names are matched exactly; did you mean \"%s\"?",
					 caseless) :
			 args->trigger != NULL ?
			 errhint("If the column was renamed or dropped, unguard the table and attach the guard again.") :
			 nearest ?
			 errhint("Perhaps you meant column \"%s\".", nearest) :
			 errhint("Name a column of table \"%s\".",
					 RelationGetRelationName(args->rel))));
	return InvalidAttrNumber;	/* keep compiler quiet */
}

/*
 * integrity_guard._check_args(guard text, rel regclass, args text[])
 *
 * Run a guard's fire-time parser on the arguments a helper is about to give
 * CREATE TRIGGER, so that bad input fails at attach time with the very
 * message the trigger would raise later.
 */
PG_FUNCTION_INFO_V1(ig_check_args);

Datum
ig_check_args(PG_FUNCTION_ARGS)
{
	(void) ig_check_args_config(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)),
								PG_GETARG_OID(1), PG_GETARG_ARRAYTYPE_P(2));
	PG_RETURN_VOID();
}

/*
 * The configuration a guard's parser makes of these arguments on relid,
 * for a caller that may attach a trigger to it.  Callable directly from
 * SQL, so a missing table or a role without TRIGGER gets a clear error.
 */
void *
ig_check_args_config(FunctionCallInfo fcinfo, const char *guard, Oid relid,
					 ArrayType *arr)
{
	const IgGuardKind *kind = kind_by_name(guard);
	void	   *config;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	char	  **argv;
	Relation	rel;
	IgArgs		args;
	AclResult	aclresult;
	int			i;

	if (kind == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown guard function \"%s\"", guard)));

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	argv = palloc(sizeof(char *) * Max(nelems, 1));
	for (i = 0; i < nelems; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s() arguments must not be NULL", guard)));
		argv[i] = TextDatumGetCString(elems[i]);
	}

	/*
	 * Callable directly: a missing OID gets a clear error, and only a role
	 * that may attach a trigger to the table (what the helpers do next)
	 * gets to lock it and learn what the parser says about it.
	 */
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table with OID %u does not exist", relid)));
	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, get_rel_name(relid));
	rel = try_relation_open(relid, AccessShareLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table with OID %u does not exist", relid)));
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
				 errhint("Guards attach to ordinary and partitioned tables.")));
	ig_split_args(&args, kind->function, rel, nelems, argv);
	config = kind->parse(&args);
	relation_close(rel, AccessShareLock);

	return config;
}

/*
 * A guard whose arguments no longer parse (a renamed column, a type changed
 * while event triggers were off) is already refused at fire time with a
 * clear error; it must not also block the ALTER that may repair it.  NULL
 * then.
 */
void *
ig_try_parse(IgParseFunc parse, IgArgs *args)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	void	   *volatile result = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		result = parse(args);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		result = NULL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	return result;
}

/*
 * integrity_guard._guard_retype(): the ddl_command_end event trigger for
 * ALTER TABLE.  A guard whose column changes type is asked, through its
 * kind, to follow the new type or refuse it.
 */
/*
 * Does the relation have a guard that follows ALTER COLUMN TYPE?  Read from pg_trigger,
 * so that an ALTER TABLE of an unguarded table takes no lock of ours.
 */
static bool
has_retype_guard(Oid relid)
{
	Relation	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(tgrel, TriggerRelidNameIndexId, true, NULL, 1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);
		const IgGuardKind *kind = ig_guard_kind_of(tg->tgfoid);

		found = kind != NULL && kind->check_retype != NULL;
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	return found;
}

PG_FUNCTION_INFO_V1(ig_guard_retype);

Datum
ig_guard_retype(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	AlterTableStmt *stmt;
	List	   *retypes = NIL;
	List	   *rels;
	ListCell   *lc;
	Oid			relid;

	trigdata = ig_event_trigger_data(fcinfo, "integrity_guard._guard_retype");
	if (!ig_enabled || !IsA(trigdata->parsetree, AlterTableStmt))
		PG_RETURN_VOID();
	stmt = (AlterTableStmt *) trigdata->parsetree;
	if (stmt->objtype != OBJECT_TABLE)
		PG_RETURN_VOID();
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);
		IgRetype   *r;

		if (cmd->subtype != AT_AlterColumnType || cmd->name == NULL)
			continue;
		r = palloc(sizeof(IgRetype));
		r->column = cmd->name;
		r->typid = LookupTypeNameOid(NULL, ((ColumnDef *) cmd->def)->typeName, true);
		if (OidIsValid(r->typid))
			retypes = lappend(retypes, r);
	}
	if (retypes == NIL)
		PG_RETURN_VOID();
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid))
		PG_RETURN_VOID();
	rels = stmt->relation->inh ? find_all_inheritors(relid, NoLock, NULL) :
		list_make1_oid(relid);

	foreach(lc, rels)
	{
		Relation	rel;
		int			ntriggers;
		Trigger    *triggers = NULL;
		int			i;

		if (!has_retype_guard(lfirst_oid(lc)))
			continue;
		rel = table_open(lfirst_oid(lc), AccessShareLock);
		ntriggers = rel->trigdesc ? rel->trigdesc->numtriggers : 0;

		/* copied: a re-attach rebuilds the relcache entry */
		if (ntriggers > 0)
		{
			triggers = palloc(sizeof(Trigger) * ntriggers);
			memcpy(triggers, rel->trigdesc->triggers, sizeof(Trigger) * ntriggers);
			for (i = 0; i < ntriggers; i++)
			{
				int			j;
				char	  **argv = palloc(sizeof(char *) * Max(triggers[i].tgnargs, 1));

				triggers[i].tgname = pstrdup(triggers[i].tgname);
				for (j = 0; j < triggers[i].tgnargs; j++)
					argv[j] = pstrdup(triggers[i].tgargs[j]);
				triggers[i].tgargs = argv;
			}
		}
		for (i = 0; i < ntriggers; i++)
		{
			Trigger    *tg = &triggers[i];
			const IgGuardKind *kind;

			if (tg->tgisclone)
				continue;
			kind = ig_guard_kind_of(tg->tgfoid);
			if (kind != NULL && kind->check_retype != NULL)
				kind->check_retype(rel, tg, retypes);
		}
		table_close(rel, NoLock);
	}
	PG_RETURN_VOID();
}

/*
 * integrity_guard._trigger_args(tgargs bytea) returns text[]
 *
 * Split pg_trigger.tgargs (NUL-terminated strings) for the guards view.
 */
PG_FUNCTION_INFO_V1(ig_trigger_args);

Datum
ig_trigger_args(PG_FUNCTION_ARGS)
{
	bytea	   *raw = PG_GETARG_BYTEA_PP(0);
	const char *p = VARDATA_ANY(raw);
	const char *end = p + VARSIZE_ANY_EXHDR(raw);
	ArrayBuildState *astate = initArrayResult(TEXTOID, CurrentMemoryContext,
											  false);

	while (p < end)
	{
		const char *nul = memchr(p, '\0', end - p);
		int			len = nul ? nul - p : end - p;

		/* text must be valid in the database encoding */
		(void) pg_verify_mbstr(GetDatabaseEncoding(), p, len, false);
		astate = accumArrayResult(astate,
								  PointerGetDatum(cstring_to_text_with_len(p, len)),
								  false, TEXTOID, CurrentMemoryContext);
		p += len + 1;
	}

	PG_RETURN_DATUM(makeArrayResult(astate, CurrentMemoryContext));
}
