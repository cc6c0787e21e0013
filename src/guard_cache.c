/*-------------------------------------------------------------------------
 *
 * guard_cache.c
 *		Trigger-argument parsing and the per-trigger configuration cache.
 *
 * Every guard parses its trigger arguments once per trigger, resolves
 * column names to attribute numbers, and keeps the result in a cache keyed
 * by the trigger's OID.  A relcache invalidation of the trigger's relation
 * (ALTER TABLE, CREATE/DROP TRIGGER, a renamed or dropped column) marks the
 * entry stale, so the next row re-parses against the current catalog and a
 * guard can never act on the wrong column.
 *
 * The same parser serves attach time: integrity_guard._check_args() runs it
 * on the arguments a helper is about to put into CREATE TRIGGER.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"
#include "utils/catcache.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/acl.h"
#include "access/relation.h"
#include "catalog/pg_class.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"

#include "pg_integrity_guard.h"

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

static void
ig_cache_invalidate(Datum arg, Oid relid)
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

static void
ig_xact_abort_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		ig_abort_generation++;
}

static void
ig_subxact_abort_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		ig_abort_generation++;
}

/* Called from _PG_init, possibly in the postmaster: no catalog caches yet. */
void
ig_cache_init(void)
{
	CacheRegisterRelcacheCallback(ig_cache_invalidate, (Datum) 0);
	RegisterXactCallback(ig_xact_abort_callback, NULL);
	RegisterSubXactCallback(ig_subxact_abort_callback, NULL);
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
 * Return the parsed configuration of the firing trigger, parsing it on the
 * first row after any invalidation of the trigger's relation.
 */
void *
ig_trigger_config(FunctionCallInfo fcinfo, const char *guard,
				  IgParseFunc parse)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Trigger    *trigger = td->tg_trigger;
	IgCacheEntry *entry;
	bool		found;
	IgArgs		args;
	MemoryContext oldcxt;

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

	if (trigger_cache == NULL)
		ig_cache_create();
	entry = hash_search(trigger_cache, &trigger->tgoid, HASH_ENTER, &found);
	extra->entry = entry;
	if (!found)
	{
		entry->valid = false;
		entry->cxt = NULL;
		entry->config = NULL;
	}
	if (entry->valid)
		return entry->config;

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
	entry->relid = RelationGetRelid(td->tg_relation);

	/*
	 * Mark the entry valid before parsing: an invalidation that arrives while
	 * the parser reads the catalog clears the flag again and is not lost.
	 */
	entry->valid = true;
	oldcxt = MemoryContextSwitchTo(entry->cxt);
	PG_TRY();
	{
		ig_split_args(&args, guard, td->tg_relation,
					  trigger->tgnargs, trigger->tgargs);
		args.trigger = trigger;
		entry->config = parse(&args);
		entry->depends = args.depends;
	}
	PG_CATCH();
	{
		entry->valid = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);

	return entry->config;
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
	}

	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" of relation \"%s\" does not exist",
					column, RelationGetRelationName(args->rel)),
			 errdetail("%s() was given column \"%s\".", args->guard, column),
			 caseless ?
			 errhint("Column names are matched exactly; did you mean \"%s\"?",
					 caseless) :
			 errhint("If the column was renamed or dropped, unguard the table and attach the guard again.")));
	return InvalidAttrNumber;	/* keep compiler quiet */
}

/* Append "key": "value" to a JSON object under construction. */
void
ig_append_json_string(StringInfo buf, const char *key, const char *value,
					  bool first)
{
	if (!first)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
	escape_json(buf, value);
}

/*
 * integrity_guard._check_args(guard text, rel regclass, args text[])
 *
 * Run a guard's fire-time parser on the arguments a helper is about to give
 * CREATE TRIGGER, so that bad input fails at attach time with the very
 * message the trigger would raise later.
 */
PG_FUNCTION_INFO_V1(ig_check_args);

static void *ig_check_args_config(FunctionCallInfo fcinfo);

Datum
ig_check_args(PG_FUNCTION_ARGS)
{
	(void) ig_check_args_config(fcinfo);
	PG_RETURN_VOID();
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
	return BoolGetDatum(ig_children_has_immediate(ig_check_args_config(fcinfo)));
}

static void *
ig_check_args_config(FunctionCallInfo fcinfo)
{
	bool		children = fcinfo->nargs == 2;
	char	   *guard = children ? "nullify_children" :
		text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			relid = PG_GETARG_OID(children ? 0 : 1);
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(children ? 1 : 2);
	void	   *config;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	char	  **argv;
	IgParseFunc parse;
	Relation	rel;
	IgArgs		args;
	AclResult	aclresult;
	int			i;

	if (strcmp(guard, "saturate_counter") == 0)
		parse = ig_counter_parse;
	else if (strcmp(guard, "clamp_range") == 0)
		parse = ig_range_parse;
	else if (strcmp(guard, "nullify_children") == 0)
		parse = ig_children_parse;
	else if (strcmp(guard, "guard_unique") == 0)
		parse = ig_unique_parse;
	else
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
	ig_split_args(&args, guard, rel, nelems, argv);
	config = parse(&args);
	relation_close(rel, AccessShareLock);

	return config;
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
