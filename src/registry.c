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
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/pg_list.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "storage/lmgr.h"
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

#include "incident.h"
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
static bool installed_1_4 = false;

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

/*
 * Is the extension's SQL at 1.4 or later (its _guard_follow_drop exists)?
 * Until ALTER EXTENSION ... UPDATE has run, a newer library keeps 1.3's
 * meaning of the trigger arguments it finds.
 */
bool
ig_extension_1_4(void)
{
	(void) ig_guard_kind_of(InvalidOid);
	return installed_1_4;
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
		{
			Oid			argtypes[3] = {TEXTOID, OIDOID, TEXTARRAYOID};

			installed_1_4 =
				OidIsValid(LookupFuncName(list_make2(makeString(IG_SCHEMA_NAME),
													 makeString("_guard_follow_drop")),
										  3, argtypes, true));
		}
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
 * Guards follow the schema.  A guard names its columns in its trigger's
 * arguments, as pg_dump shows them; a migration that renames, retypes or
 * drops such a column must not turn every later write into an error.  So
 * each guard trigger naming the column is asked, through its kind, what it
 * becomes, and its arguments are rewritten in pg_trigger, the trigger is
 * attached again (a counter marker that must now fire), or the guard is
 * removed.  A NOTICE and a guard_changed incident say what changed.  The
 * DDL itself is never refused.
 *
 * RENAME COLUMN and ALTER COLUMN ... TYPE are seen at ddl_command_start
 * (_guard_retype), where the old name and type are still known, and reach
 * every inheritor, as the server's recursion does; a dropped column at
 * sql_drop (_guard_follow_drop), which reports each table that lost it.
 */

/* Does a guard argument mention this name, in any letter case? */
static bool
args_mention(bytea *raw, const char *name)
{
	const char *p = VARDATA_ANY(raw);
	const char *end = p + VARSIZE_ANY_EXHDR(raw);
	size_t		len = strlen(name);

	for (; p + len <= end; p++)
		if (pg_strncasecmp(p, name, len) == 0)
			return true;
	return false;
}

/*
 * The name a guard of the changed table must mention to be concerned by a
 * change (NULL: any guard that follows changes is; a moved table's own
 * children guard).
 */
static const char *
change_name(const IgSchemaChange *change)
{
	if (change->column)
		return change->column;
	if (change->index)
		return change->index;
	return change->kind == IG_TABLE_MOVED ? NULL : change->table;
}

/*
 * Does the relation have a guard that follows changes and mentions 'name'
 * (NULL: any)?  Read from pg_trigger, without locking the relation.
 */
static bool
has_following_guard(Oid relid, const char *name)
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
		bool		isnull;
		Datum		args;

		if (kind == NULL || kind->follow == NULL)
			continue;
		if (name == NULL)
		{
			found = true;
			continue;
		}
		args = heap_getattr(tup, Anum_pg_trigger_tgargs,
							RelationGetDescr(tgrel), &isnull);
		found = !isnull && args_mention(DatumGetByteaPP(args), name);
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	return found;
}

/*
 * Every other table with a guard that names what changed: a scan of
 * pg_trigger (no index leads by function), done for DDL only.  The
 * arguments are only searched for the changed name here, so that no table
 * is opened (or locked) unless its guard may follow.
 */
static List *
relations_with_following_guards(const IgSchemaChange *change)
{
	Relation	tgrel = table_open(TriggerRelationId, AccessShareLock);
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *result = NIL;
	bool		index_change = change->kind == IG_INDEX_RENAMED ||
		change->kind == IG_INDEX_DROPPED;
	const char *name = change->column ? change->column :
		index_change ? change->index : change->table;

	scan = systable_beginscan(tgrel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);
		const IgGuardKind *kind = ig_guard_kind_of(tg->tgfoid);
		bool		isnull;
		Datum		args;

		if (kind == NULL || tg->tgnargs == 0 ||
			!(index_change ? kind->follows_indexes : kind->follows_tables))
			continue;
		args = heap_getattr(tup, Anum_pg_trigger_tgargs,
							RelationGetDescr(tgrel), &isnull);
		if (!isnull && args_mention(DatumGetByteaPP(args), name))
			result = list_append_unique_oid(result, tg->tgrelid);
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	return result;
}

/* An argument that ig_split_args would take for an option. */
bool
ig_spec_is_option(const char *arg)
{
	const char *eq;

	return ig_is_option(arg, &eq);
}

/* Replace a trigger's arguments in pg_trigger. */
static void
set_trigger_args(Oid tgoid, List *argv)
{
	Relation	tgrel = table_open(TriggerRelationId, RowExclusiveLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	HeapTuple	newtup;
	StringInfoData buf;
	Datum		values[Natts_pg_trigger] = {0};
	bool		nulls[Natts_pg_trigger] = {0};
	bool		replace[Natts_pg_trigger] = {0};
	ListCell   *lc;

	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(tgoid));
	scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "could not find trigger %u", tgoid);

	/* the layout CREATE TRIGGER writes: each argument NUL-terminated */
	initStringInfo(&buf);
	foreach(lc, argv)
		appendBinaryStringInfo(&buf, lfirst(lc), strlen(lfirst(lc)) + 1);
	values[Anum_pg_trigger_tgnargs - 1] = Int16GetDatum(list_length(argv));
	replace[Anum_pg_trigger_tgnargs - 1] = true;
	values[Anum_pg_trigger_tgargs - 1] =
		DirectFunctionCall1(byteain, CStringGetDatum(""));
	{
		bytea	   *raw = palloc(VARHDRSZ + buf.len);

		SET_VARSIZE(raw, VARHDRSZ + buf.len);
		memcpy(VARDATA(raw), buf.data, buf.len);
		values[Anum_pg_trigger_tgargs - 1] = PointerGetDatum(raw);
	}
	replace[Anum_pg_trigger_tgargs - 1] = true;

	newtup = heap_modify_tuple(tup, RelationGetDescr(tgrel), values, nulls, replace);
	CatalogTupleUpdate(tgrel, &newtup->t_self, newtup);
	CacheInvalidateRelcacheByRelid(((Form_pg_trigger) GETSTRUCT(newtup))->tgrelid);
	systable_endscan(scan);
	table_close(tgrel, RowExclusiveLock);
	CommandCounterIncrement();
}

/*
 * Attach a guard (again, when drop_first) as a BEFORE INSERT OR UPDATE row
 * trigger of the same name and state.
 */
static void
reattach_trigger(Relation rel, Trigger *tg, const IgGuardKind *kind, List *argv,
				 bool drop_first)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(argv), 1));
	Datum		values[4];
	Oid			types[4] = {REGCLASSOID, TEXTOID, NAMEOID, TEXTARRAYOID};
	ListCell   *lc;
	int			n = 0;
	char	   *relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
													 RelationGetRelationName(rel));

	foreach(lc, argv)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	values[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	values[1] = CStringGetTextDatum(kind->label);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(tg->tgname));
	values[3] = PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));

	SPI_connect();
	if (drop_first &&
		SPI_execute(psprintf("DROP TRIGGER %s ON %s", quote_identifier(tg->tgname), relname),
					false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not drop trigger \"%s\"", tg->tgname);
	if (SPI_execute_with_args(psprintf("SELECT " IG_SCHEMA_NAME "._attach($1, $2, $3, %s, $4)",
									   quote_literal_cstr(kind->function)),
							  4, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not attach the %s guard again", kind->label);
	if (tg->tgenabled != TRIGGER_FIRES_ON_ORIGIN)
		SPI_execute(psprintf("ALTER TABLE %s %s TRIGGER %s", relname,
							 tg->tgenabled == TRIGGER_DISABLED ? "DISABLE" :
							 tg->tgenabled == TRIGGER_FIRES_ALWAYS ? "ENABLE ALWAYS" :
							 "ENABLE REPLICA",
							 quote_identifier(tg->tgname)), false, 0);
	SPI_finish();
}

/* The NOTICE and the incident of one followed change. */
static void
report_follow(Relation rel, Trigger *tg, const IgGuardKind *kind,
			  const IgSchemaChange *change, const IgFollow *out)
{
	StringInfoData detail;
	const char *change_word = NULL;
	const char *to = NULL;

	switch (change->kind)
	{
		case IG_COLUMN_RENAMED:
			change_word = "column renamed";
			to = change->newname;
			break;
		case IG_COLUMN_RETYPED:
			change_word = "column retyped";
			to = format_type_be(change->newtype);
			break;
		case IG_COLUMN_DROPPED:
			change_word = "column dropped";
			break;
		case IG_TABLE_RENAMED:
			change_word = "table renamed";
			to = change->newname;
			break;
		case IG_TABLE_MOVED:
			change_word = "table moved";
			to = change->newschema;
			break;
		case IG_TABLE_DROPPED:
			change_word = "table dropped";
			break;
		case IG_INDEX_RENAMED:
			change_word = "index renamed";
			to = change->newname;
			break;
		case IG_INDEX_DROPPED:
			change_word = "index dropped";
			break;
		case IG_TABLE_ATTACHED:
			change_word = "table attached";
			to = change->newname;
			break;
		case IG_TABLE_DETACHED:
			change_word = "table detached";
			to = change->newname;
			break;
	}

	ereport(NOTICE,
			(errmsg("%s guard \"%s\" on table \"%s\" %s",
					kind->label, tg->tgname, RelationGetRelationName(rel), out->what),
			 change->kind == IG_COLUMN_RENAMED ?
			 errdetail("Column \"%s\" of table \"%s\" was renamed to \"%s\".",
					   change->column, change->table, to) :
			 change->kind == IG_COLUMN_RETYPED ?
			 errdetail("Column \"%s\" of table \"%s\" was changed to type %s.",
					   change->column, change->table, to) :
			 change->kind == IG_COLUMN_DROPPED ?
			 errdetail("Column \"%s\" of table \"%s\" was dropped.",
					   change->column, change->table) :
			 change->kind == IG_TABLE_RENAMED ?
			 errdetail("Table \"%s\" was renamed to \"%s\".", change->table, to) :
			 change->kind == IG_TABLE_MOVED ?
			 errdetail("Table \"%s\" was moved to schema \"%s\".", change->table, to) :
			 change->kind == IG_TABLE_DROPPED ?
			 errdetail("Table \"%s\" was dropped.", change->table) :
			 change->kind == IG_INDEX_RENAMED ?
			 errdetail("Index \"%s\" of table \"%s\" was renamed to \"%s\".",
					   change->index, change->table, to) :
			 change->kind == IG_INDEX_DROPPED ?
			 errdetail("Index \"%s\" was dropped.", change->index) :
			 change->kind == IG_TABLE_ATTACHED ?
			 errdetail("Table \"%s\" was attached as a partition of \"%s\".",
					   change->table, to) :
			 errdetail("Table \"%s\" was detached from \"%s\".", change->table, to)));

	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	ig_append_json_string(&detail, "guard", kind->label, true);
	ig_append_json_string(&detail, "trigger", tg->tgname, false);
	ig_append_json_string(&detail, "change", change_word, false);
	if (change->table)
		ig_append_json_string(&detail, "table", change->table, false);
	if (change->index)
		ig_append_json_string(&detail, "index", change->index, false);
	if (to)
		ig_append_json_string(&detail, "to", to, false);
	ig_append_json_string(&detail, "result", out->what, false);
	appendStringInfoChar(&detail, '}');
	ig_incident_record(IG_EVENT_GUARD_CHANGED, rel,
					   change->column ? change->column :
					   change->index ? change->index : change->table,
					   detail.data, 1);
}

/*
 * Ask each guard of one relation to follow the change.  With dry_run, only
 * say whether one would act (the relation is then opened with
 * AccessShareLock, which no writer waits for).
 */
static bool
follow_relation(Oid relid, const IgSchemaChange *change, bool dry_run)
{
	Relation	rel;
	int			ntriggers;
	Trigger    *triggers = NULL;
	int			i;

	if (!has_following_guard(relid, change_name(change)))
		return false;
	rel = try_relation_open(relid, dry_run ? AccessShareLock : NoLock);
	if (rel == NULL)
		return false;
	ntriggers = rel->trigdesc ? rel->trigdesc->numtriggers : 0;

	/* copied: a rewrite or re-attach rebuilds the relcache entry */
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
		const IgGuardKind *kind = ig_guard_kind_of(tg->tgfoid);
		IgArgs		args;
		IgFollow	out;
		List	   *argv;
		int			j;

		if (kind == NULL || kind->follow == NULL)
			continue;
		ig_split_args(&args, kind->function, rel, tg->tgnargs, tg->tgargs);
		memset(&out, 0, sizeof(out));
		kind->follow(&args, tg, change, &out);
		if (out.action == IG_FOLLOW_NONE)
			continue;
		if (dry_run)
		{
			relation_close(rel, NoLock);
			return true;
		}

		argv = out.columns;
		if (out.set_options)
			argv = list_concat(argv, out.options);
		else
			for (j = 0; j < args.noptions; j++)
				argv = lappend(argv, psprintf("%s=%s", args.options[j].key,
											  args.options[j].value));

		/*
		 * A partition's clone follows its parent's trigger: its arguments
		 * are rewritten here, its removal and re-attach come with the
		 * parent's.
		 */
		if (tg->tgisclone)
		{
			if (out.action != IG_FOLLOW_REMOVE && out.action != IG_FOLLOW_REATTACH)
				set_trigger_args(tg->tgoid, argv);
			continue;
		}
		report_follow(rel, tg, kind, change, &out);
		if (out.action == IG_FOLLOW_REWRITE)
			set_trigger_args(tg->tgoid, argv);
		else if (out.action == IG_FOLLOW_REATTACH)
			reattach_trigger(rel, tg, kind, argv, true);
		else
		{
			ObjectAddress addr;

			ObjectAddressSet(addr, TriggerRelationId, tg->tgoid);
			performDeletion(&addr, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
			CommandCounterIncrement();
		}
	}
	relation_close(rel, NoLock);
	return false;
}

/*
 * Follow one change: on the tables it reaches ('rels', parents first), then
 * on every table whose guard may name the changed one (a children guard's
 * references), each locked as CREATE TRIGGER locks it.
 */
static void
follow_change(List *rels, IgSchemaChange *change)
{
	List	   *others = NIL;
	ListCell   *lc;

	foreach(lc, rels)
		(void) follow_relation(lfirst_oid(lc), change, false);
	others = relations_with_following_guards(change);
	foreach(lc, others)
	{
		Oid			relid = lfirst_oid(lc);

		/* lock only a table whose guard must change */
		if (list_member_oid(rels, relid) || !follow_relation(relid, change, true))
			continue;
		LockRelationOid(relid, ShareRowExclusiveLock);
		(void) follow_relation(relid, change, false);
	}
}

/*
 * The tables a command on 'rv' reaches (with its inheritors when 'recurse'
 * and rv->inh, as the server's recursion); NIL when the caller does not own
 * the table (the command then fails by itself) or it is not a table.  When
 * one of them has a guard that names what changes, all are locked in 'lockmode' now,
 * as the command will lock them; a table without guards is not locked
 * ahead of the command.
 */
static List *
changed_relations(RangeVar *rv, bool recurse, LOCKMODE lockmode,
				  List *changes, const char **name)
{
	Oid			relid = RangeVarGetRelid(rv, NoLock, true);
	char		relkind;
	List	   *rels;
	ListCell   *lc;
	bool		guarded = false;

	if (!OidIsValid(relid) || !ig_class_ownercheck(relid, GetUserId()))
		return NIL;
	relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		return NIL;
	*name = get_rel_name(relid);
	rels = recurse && rv->inh ? find_all_inheritors(relid, NoLock, NULL) :
		list_make1_oid(relid);
	foreach(lc, rels)
	{
		ListCell   *cc;

		foreach(cc, changes)
			guarded = guarded ||
				has_following_guard(lfirst_oid(lc), change_name(lfirst(cc)));
	}
	if (guarded)
		foreach(lc, rels)
			LockRelationOid(lfirst_oid(lc), lockmode);
	return rels;
}

static IgSchemaChange *
new_change(IgChangeKind kind, const char *column)
{
	IgSchemaChange *change = palloc0(sizeof(IgSchemaChange));

	change->kind = kind;
	change->column = column;
	return change;
}

/*
 * The guard triggers of a relation that the server clones to partitions:
 * row triggers (not internal, not constraint triggers), as copies.
 */
static List *
cloned_guard_triggers(Relation rel)
{
	List	   *result = NIL;
	int			i;

	if (rel->trigdesc == NULL)
		return NIL;
	for (i = 0; i < rel->trigdesc->numtriggers; i++)
	{
		Trigger    *tg = &rel->trigdesc->triggers[i];
		Trigger    *copy;
		int			j;

		if (!TRIGGER_FOR_ROW(tg->tgtype) || tg->tgisinternal ||
			OidIsValid(tg->tgconstraint) || ig_guard_kind_of(tg->tgfoid) == NULL)
			continue;
		copy = palloc(sizeof(Trigger));
		memcpy(copy, tg, sizeof(Trigger));
		copy->tgname = pstrdup(tg->tgname);
		copy->tgargs = palloc(sizeof(char *) * Max(tg->tgnargs, 1));
		for (j = 0; j < tg->tgnargs; j++)
			copy->tgargs[j] = pstrdup(tg->tgargs[j]);
		result = lappend(result, copy);
	}
	return result;
}

/*
 * ATTACH PARTITION of a table that carries its own guard under the name of
 * one the parent clones to its partitions: the server would refuse the
 * clone ("trigger ... already exists").  The table's own guard gives way
 * to the parent's, which its other partitions have too.
 */
static void
follow_attach(RangeVar *parent_rv, RangeVar *part_rv)
{
	Oid			parentid = RangeVarGetRelid(parent_rv, NoLock, true);
	Oid			partid = RangeVarGetRelid(part_rv, NoLock, true);
	Relation	parent;
	Relation	part;
	List	   *cloned;
	ListCell   *lc;

	if (!OidIsValid(parentid) || !OidIsValid(partid) ||
		get_rel_relkind(parentid) != RELKIND_PARTITIONED_TABLE ||
		!ig_class_ownercheck(parentid, GetUserId()) ||
		!ig_class_ownercheck(partid, GetUserId()) ||
		!has_following_guard(partid, NULL))
		return;
	LockRelationOid(parentid, ShareUpdateExclusiveLock);
	LockRelationOid(partid, AccessExclusiveLock);
	parent = table_open(parentid, NoLock);
	cloned = cloned_guard_triggers(parent);
	table_close(parent, NoLock);

	part = table_open(partid, NoLock);
	foreach(lc, cloned)
	{
		Trigger    *ptg = lfirst(lc);
		int			i;

		for (i = 0; part->trigdesc && i < part->trigdesc->numtriggers; i++)
		{
			Trigger    *tg = &part->trigdesc->triggers[i];
			const IgGuardKind *kind = ig_guard_kind_of(tg->tgfoid);
			ObjectAddress addr;
			IgSchemaChange change;
			IgFollow	out;

			if (strcmp(tg->tgname, ptg->tgname) != 0 || tg->tgisclone ||
				kind == NULL || tg->tgfoid != ptg->tgfoid)
				continue;
			memset(&change, 0, sizeof(change));
			change.kind = IG_TABLE_ATTACHED;
			change.relid = partid;
			change.table = RelationGetRelationName(part);
			change.newname = RelationGetRelationName(parent);
			memset(&out, 0, sizeof(out));
			out.action = IG_FOLLOW_REMOVE;
			out.what = psprintf("gives way to the guard of the same name on \"%s\"",
								RelationGetRelationName(parent));
			report_follow(part, tg, kind, &change, &out);
			ObjectAddressSet(addr, TriggerRelationId, tg->tgoid);
			performDeletion(&addr, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
			CommandCounterIncrement();
			break;
		}
	}
	table_close(part, NoLock);
}

/*
 * integrity_guard._guard_follow_end(): the ddl_command_end event trigger
 * for ALTER TABLE.  DETACH PARTITION drops the partition's clones of its
 * parent's row triggers; a detached table keeps its guards, attached again
 * as its own, with the same names, arguments and state.
 */
PG_FUNCTION_INFO_V1(ig_guard_follow_end);

Datum
ig_guard_follow_end(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	AlterTableStmt *stmt;
	ListCell   *lc;

	trigdata = ig_event_trigger_data(fcinfo, "integrity_guard._guard_follow_end");
	if (!ig_enabled || !IsA(trigdata->parsetree, AlterTableStmt))
		PG_RETURN_VOID();
	stmt = (AlterTableStmt *) trigdata->parsetree;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);
		Oid			parentid;
		Oid			partid;
		Relation	parent;
		Relation	part;
		List	   *cloned;
		ListCell   *tc;

		if (cmd->subtype != AT_DetachPartition)
			continue;
		parentid = RangeVarGetRelid(stmt->relation, NoLock, true);
		partid = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name, NoLock, true);
		if (!OidIsValid(parentid) || !OidIsValid(partid) ||
			(get_rel_relispartition(partid) &&
			 get_partition_parent(partid, true) == parentid))
			continue;			/* not detached (yet: CONCURRENTLY's first step) */
		parent = table_open(parentid, AccessShareLock);
		cloned = cloned_guard_triggers(parent);
		table_close(parent, NoLock);
		part = table_open(partid, ShareRowExclusiveLock);
		foreach(tc, cloned)
		{
			Trigger    *tg = lfirst(tc);
			const IgGuardKind *kind = ig_guard_kind_of(tg->tgfoid);
			List	   *argv = NIL;
			int			i;
			bool		taken = false;
			IgSchemaChange change;
			IgFollow	out;

			for (i = 0; part->trigdesc && i < part->trigdesc->numtriggers; i++)
				if (strcmp(part->trigdesc->triggers[i].tgname, tg->tgname) == 0)
					taken = true;
			if (taken || !TRIGGER_FOR_BEFORE(tg->tgtype) ||
				!TRIGGER_FOR_INSERT(tg->tgtype) || !TRIGGER_FOR_UPDATE(tg->tgtype) ||
				TRIGGER_FOR_DELETE(tg->tgtype) || tg->tgqual != NULL)
				continue;
			for (i = 0; i < tg->tgnargs; i++)
				argv = lappend(argv, tg->tgargs[i]);
			reattach_trigger(part, tg, kind, argv, false);
			memset(&change, 0, sizeof(change));
			change.kind = IG_TABLE_DETACHED;
			change.relid = partid;
			change.table = RelationGetRelationName(part);
			change.newname = RelationGetRelationName(parent);
			memset(&out, 0, sizeof(out));
			out.action = IG_FOLLOW_REATTACH;
			out.what = psprintf("stays, detached from \"%s\"", RelationGetRelationName(parent));
			report_follow(part, tg, kind, &change, &out);
		}
		table_close(part, NoLock);
	}
	PG_RETURN_VOID();
}

/*
 * CREATE RULE "_RETURN" turns an empty table into a view (PostgreSQL 15;
 * 16 removed it), which the server refuses for a table with triggers.  A
 * table whose only triggers are guards becomes the view without them, as it
 * would without the guards: a view has no rows to guard.
 */
static void
follow_view_conversion(RuleStmt *stmt)
{
	Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	Relation	rel;
	List	   *guards = NIL;
	List	   *names = NIL;
	bool		others = false;
	int			i;
	ListCell   *lc;
	ListCell   *nc;

	if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_RELATION ||
		!ig_class_ownercheck(relid, GetUserId()) ||
		!has_following_guard(relid, NULL))
		return;
	rel = table_open(relid, AccessExclusiveLock);
	for (i = 0; rel->trigdesc && i < rel->trigdesc->numtriggers; i++)
	{
		Trigger    *tg = &rel->trigdesc->triggers[i];

		if (ig_guard_kind_of(tg->tgfoid) != NULL && !tg->tgisclone)
		{
			guards = lappend_oid(guards, tg->tgoid);
			names = lappend(names, psprintf("%s guard \"%s\"",
											ig_guard_kind_of(tg->tgfoid)->label,
											tg->tgname));
		}
		else
			others = true;
	}
	if (!others)
		forboth(lc, guards, nc, names)
		{
			ObjectAddress addr;

			ereport(NOTICE,
					(errmsg("%s on table \"%s\" was removed: the table becomes a view",
							(char *) lfirst(nc), RelationGetRelationName(rel))));
			ObjectAddressSet(addr, TriggerRelationId, lfirst_oid(lc));
			performDeletion(&addr, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
		}
	CommandCounterIncrement();

	/*
	 * The server refuses the conversion while relhastriggers is set, which
	 * DROP TRIGGER leaves to VACUUM to clear.  No trigger is left, and the
	 * table is locked: clear it, as VACUUM would.
	 */
	if (!others && guards != NIL)
	{
		Relation	classrel = table_open(RelationRelationId, RowExclusiveLock);
		HeapTuple	tup = SearchSysCacheCopy1(RELOID, ObjectIdGetDatum(relid));

		if (HeapTupleIsValid(tup))
		{
			((Form_pg_class) GETSTRUCT(tup))->relhastriggers = false;
			CatalogTupleUpdate(classrel, &tup->t_self, tup);
			heap_freetuple(tup);
		}
		table_close(classrel, RowExclusiveLock);
		CommandCounterIncrement();
	}
	table_close(rel, NoLock);
}

/*
 * integrity_guard._guard_retype(): the ddl_command_start event trigger for
 * ALTER TABLE (RENAME COLUMN, ALTER COLUMN ... TYPE, RENAME TO, SET SCHEMA,
 * ATTACH PARTITION), ALTER INDEX ... RENAME and CREATE RULE "_RETURN".
 */
PG_FUNCTION_INFO_V1(ig_guard_retype);

Datum
ig_guard_retype(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	List	   *changes = NIL;
	List	   *rels;
	RangeVar   *rv;
	bool		recurse = true;
	const char *table = NULL;
	ListCell   *lc;
	Node	   *tree;

	trigdata = ig_event_trigger_data(fcinfo, "integrity_guard._guard_retype");
	if (!ig_enabled)
		PG_RETURN_VOID();
	tree = trigdata->parsetree;

	if (IsA(tree, RuleStmt))
	{
		RuleStmt   *rule = (RuleStmt *) tree;

		if (rule->event == CMD_SELECT && strcmp(rule->rulename, "_RETURN") == 0)
			follow_view_conversion(rule);
		PG_RETURN_VOID();
	}
	if (IsA(tree, RenameStmt) &&
		((RenameStmt *) tree)->renameType == OBJECT_COLUMN &&
		((RenameStmt *) tree)->relationType == OBJECT_TABLE)
	{
		RenameStmt *stmt = (RenameStmt *) tree;
		IgSchemaChange *change = new_change(IG_COLUMN_RENAMED, stmt->subname);

		change->newname = stmt->newname;
		changes = list_make1(change);
		rv = stmt->relation;
	}
	else if (IsA(tree, RenameStmt) &&
			 ((RenameStmt *) tree)->renameType == OBJECT_TABLE)
	{
		RenameStmt *stmt = (RenameStmt *) tree;
		IgSchemaChange *change = new_change(IG_TABLE_RENAMED, NULL);

		change->newname = stmt->newname;
		changes = list_make1(change);
		rv = stmt->relation;
		recurse = false;
	}
	else if (IsA(tree, RenameStmt) &&
			 (((RenameStmt *) tree)->renameType == OBJECT_TABCONSTRAINT ||
			  ((RenameStmt *) tree)->renameType == OBJECT_INDEX))
	{
		RenameStmt *stmt = (RenameStmt *) tree;
		IgSchemaChange *change = new_change(IG_INDEX_RENAMED, NULL);

		rv = stmt->relation;
		if (stmt->renameType == OBJECT_INDEX)
		{
			Oid			indexoid = RangeVarGetRelid(rv, NoLock, true);

			if (!OidIsValid(indexoid) ||
				(get_rel_relkind(indexoid) != RELKIND_INDEX &&
				 get_rel_relkind(indexoid) != RELKIND_PARTITIONED_INDEX))
				PG_RETURN_VOID();
			change->index = get_rel_name(indexoid);
			indexoid = IndexGetRelation(indexoid, true);
			if (!OidIsValid(indexoid))
				PG_RETURN_VOID();
			rv = makeRangeVar(get_namespace_name(get_rel_namespace(indexoid)),
							  get_rel_name(indexoid), -1);
		}
		else
			change->index = stmt->subname;
		change->newname = stmt->newname;
		changes = list_make1(change);
	}
	else if (IsA(tree, AlterObjectSchemaStmt) &&
			 ((AlterObjectSchemaStmt *) tree)->objectType == OBJECT_TABLE)
	{
		AlterObjectSchemaStmt *stmt = (AlterObjectSchemaStmt *) tree;
		IgSchemaChange *change = new_change(IG_TABLE_MOVED, NULL);

		change->newschema = stmt->newschema;
		changes = list_make1(change);
		rv = stmt->relation;
		recurse = false;
	}
	else if (IsA(tree, AlterTableStmt) &&
			 ((AlterTableStmt *) tree)->objtype == OBJECT_TABLE)
	{
		AlterTableStmt *stmt = (AlterTableStmt *) tree;

		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);
			IgSchemaChange *change;
			Oid			typid;

			if (cmd->subtype == AT_AttachPartition)
				follow_attach(stmt->relation, ((PartitionCmd *) cmd->def)->name);
			if (cmd->subtype != AT_AlterColumnType || cmd->name == NULL)
				continue;
			typid = LookupTypeNameOid(NULL, ((ColumnDef *) cmd->def)->typeName, true);
			if (!OidIsValid(typid))
				continue;		/* the command fails by itself */
			change = new_change(IG_COLUMN_RETYPED, cmd->name);
			change->newtype = typid;
			changes = lappend(changes, change);
		}
		rv = stmt->relation;
	}
	else
		PG_RETURN_VOID();

	if (changes == NIL)
		PG_RETURN_VOID();
	rels = changed_relations(rv, recurse,
							 changes != NIL &&
							 ((IgSchemaChange *) linitial(changes))->kind == IG_INDEX_RENAMED ?
							 ShareRowExclusiveLock : AccessExclusiveLock,
							 changes, &table);
	if (rels == NIL)
		PG_RETURN_VOID();
	foreach(lc, changes)
	{
		IgSchemaChange *change = lfirst(lc);

		change->relid = linitial_oid(rels);
		change->table = table;
		change->statement = changes;
	}

	/*
	 * A rename reaches each inheritor under the same column name; the
	 * change names each table as it is followed.
	 */
	foreach(lc, changes)
	{
		IgSchemaChange *change = lfirst(lc);
		ListCell   *rc;

		if (change->column == NULL)
		{
			follow_change(rels, change);
			continue;
		}
		foreach(rc, rels)
		{
			IgSchemaChange one = *change;

			one.relid = lfirst_oid(rc);
			one.table = get_rel_name(one.relid);
			follow_change(list_make1_oid(one.relid), &one);
		}
	}
	PG_RETURN_VOID();
}

/*
 * integrity_guard._guard_follow_drop(object_type text, objid oid,
 * names text[]), from the sql_drop event trigger, for each dropped 'table',
 * 'table column' or 'index' with its pg_event_trigger_dropped_objects()
 * address_names.  Acts only on what is really gone.
 */
PG_FUNCTION_INFO_V1(ig_guard_follow_drop);

Datum
ig_guard_follow_drop(PG_FUNCTION_ARGS)
{
	char	   *type;
	Oid			objid;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	int			i;
	IgSchemaChange *change;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("integrity_guard._guard_follow_drop() arguments must not be NULL")));
	type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	objid = PG_GETARG_OID(1);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	for (i = 0; i < nelems; i++)
		if (nulls[i])
			PG_RETURN_VOID();
	if (!ig_enabled)
		PG_RETURN_VOID();

	if (strcmp(type, "table column") == 0 && nelems == 3)
	{
		change = new_change(IG_COLUMN_DROPPED, TextDatumGetCString(elems[2]));
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(objid)) ||
			get_attnum(objid, change->column) != InvalidAttrNumber)
			PG_RETURN_VOID();
		change->table = TextDatumGetCString(elems[1]);
	}
	else if ((strcmp(type, "table") == 0 || strcmp(type, "index") == 0) &&
			 nelems == 2)
	{
		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(objid)))
			PG_RETURN_VOID();
		if (strcmp(type, "table") == 0)
		{
			change = new_change(IG_TABLE_DROPPED, NULL);
			change->schema = TextDatumGetCString(elems[0]);
			change->table = TextDatumGetCString(elems[1]);
		}
		else
		{
			change = new_change(IG_INDEX_DROPPED, NULL);
			change->index = TextDatumGetCString(elems[1]);
		}
	}
	else
		PG_RETURN_VOID();
	change->relid = objid;
	follow_change(change->kind == IG_COLUMN_DROPPED ? list_make1_oid(objid) : NIL,
				  change);
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

/* Set the arguments of a trigger and of its partition clones, at any depth. */
static void
set_trigger_args_tree(Oid tgoid, List *argv)
{
	Relation	tgrel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *clones = NIL;
	ListCell   *lc;

	set_trigger_args(tgoid, argv);
	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_tgparentid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(tgoid));
	scan = systable_beginscan(tgrel, InvalidOid, false, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		clones = lappend_oid(clones, ((Form_pg_trigger) GETSTRUCT(tup))->oid);
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	foreach(lc, clones)
		set_trigger_args_tree(lfirst_oid(lc), argv);
}

/*
 * integrity_guard._guard_set_args(trigger_oid oid, args text[]): give a
 * guard trigger (and its partition clones) new arguments, once its kind
 * has parsed them on its table.  For the upgrade scripts; the caller must
 * own the table.
 */
PG_FUNCTION_INFO_V1(ig_guard_set_args);

Datum
ig_guard_set_args(PG_FUNCTION_ARGS)
{
	Oid			tgoid;
	HeapTuple	tup;
	Relation	tgrel;
	ScanKeyData key;
	SysScanDesc scan;
	Oid			relid = InvalidOid;
	Oid			funcoid = InvalidOid;
	const IgGuardKind *kind;
	Relation	rel;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	char	  **argv;
	List	   *list = NIL;
	IgArgs		args;
	int			i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("integrity_guard._guard_set_args() arguments must not be NULL")));
	tgoid = PG_GETARG_OID(0);

	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(tgoid));
	scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		relid = ((Form_pg_trigger) GETSTRUCT(tup))->tgrelid;
		funcoid = ((Form_pg_trigger) GETSTRUCT(tup))->tgfoid;
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	kind = ig_guard_kind_of(funcoid);
	if (kind == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("trigger with OID %u is not a guard", tgoid)));
	if (!ig_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(relid));

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	argv = palloc(sizeof(char *) * Max(nelems, 1));
	for (i = 0; i < nelems; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s() arguments must not be NULL", kind->function)));
		argv[i] = TextDatumGetCString(elems[i]);
		list = lappend(list, argv[i]);
	}
	rel = table_open(relid, ShareRowExclusiveLock);
	ig_split_args(&args, kind->function, rel, nelems, argv);
	(void) kind->parse(&args);
	set_trigger_args_tree(tgoid, list);
	table_close(rel, NoLock);
	PG_RETURN_VOID();
}
