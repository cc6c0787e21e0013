/*-------------------------------------------------------------------------
 *
 * unique.c
 *		guard_unique(): catch duplicate-key attempts before the heap insert,
 *		the way INSERT ... ON CONFLICT does, audit them, optionally skip.
 *
 * BEFORE INSERT OR UPDATE, FOR EACH ROW.  Options:
 *		'mode=raise'		(default) fail with SQLSTATE 23505 and the server's
 *							own message, DETAIL and constraint field, so an ORM
 *							sees the error it always saw
 *		'mode=skip'			drop the row; the statement goes on
 *		'constraint=name'	(repeatable) watch only these unique indexes
 *
 * Every immediate unique index of the row's table is probed (primary key,
 * unique constraints, multi-column, partial with the predicate evaluated,
 * expression indexes, NULLS NOT DISTINCT) with a dirty snapshot, waiting for
 * an in-progress inserting or deleting transaction and probing again, as
 * ON CONFLICT's pre-check in execIndexing.c does: a concurrent race is seen,
 * not only committed rows.  A rejected row never reaches the heap, so it
 * leaves no dead tuple behind.  Deferrable unique constraints are left to
 * the server, which checks them later.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/partition.h"
#include "executor/executor.h"
#include "lib/stringinfo.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "pg_integrity_guard.h"

typedef struct UniqueIndex
{
	Oid			indexoid;
	char	   *name;
	IndexInfo  *info;			/* with the equality operators; no states */
} UniqueIndex;

typedef struct UniqueConfig
{
	bool		skip;
	int			nindexes;
	UniqueIndex *indexes;
} UniqueConfig;

/* Executor state for one statement, in the trigger's fn_mcxt. */
/*
 * Distinct keys a statement records per index before further attempts
 * aggregate into one incident without a key: a consumer replaying 90,000
 * messages must not write 90,000 audit rows (DESIGN.md fact 6).
 */
#define IG_MAX_KEYED_INCIDENTS 100

typedef struct UniqueStatement
{
	UniqueConfig *config;		/* built for this configuration */
	int		   *keyed;			/* per index: attempts recorded with a key */
	EState	   *estate;
	TupleTableSlot *newslot;
	TupleTableSlot *oldslot;
	TupleTableSlot *existing;
	IndexInfo **infos;			/* per-statement copies */
	ExprState **predicates;
} UniqueStatement;

static const char *const unique_options[] = {"mode", "constraint", NULL};
static const char *const unique_modes[] = {"raise", "skip", NULL};

/* Does the index, or an index it is a partition of, have this name? */
static bool
index_has_name(Oid indexoid, const char *name)
{
	List	   *ancestors;
	ListCell   *lc;

	if (strcmp(get_rel_name(indexoid), name) == 0)
		return true;
	ancestors = get_partition_ancestors(indexoid);
	foreach(lc, ancestors)
		if (strcmp(get_rel_name(lfirst_oid(lc)), name) == 0)
			return true;
	return false;
}

void *
ig_unique_parse(IgArgs *args)
{
	UniqueConfig *cfg = palloc0(sizeof(UniqueConfig));
	List	   *indexoids = RelationGetIndexList(args->rel);
	List	   *wanted = NIL;
	ListCell   *lc;
	int			i;

	ig_reject_unknown_options(args, unique_options);
	if (args->ncolumns > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("guard_unique() takes options only, not \"%s\"",
						args->columns[0]),
				 errhint("Valid options are mode=raise, mode=skip and constraint=NAME.")));

	cfg->skip = ig_option_choice(args, "mode", "mode", unique_modes) == 1;
	for (i = 0; i < args->noptions; i++)
		if (strcmp(args->options[i].key, "constraint") == 0)
			wanted = lappend(wanted, args->options[i].value);

	cfg->indexes = palloc0(sizeof(UniqueIndex) * Max(list_length(indexoids), 1));
	foreach(lc, indexoids)
	{
		Oid			indexoid = lfirst_oid(lc);
		Relation	index = index_open(indexoid, AccessShareLock);
		bool		usable = index->rd_index->indisunique &&
			index->rd_index->indimmediate && index->rd_index->indisvalid;

		if (usable && wanted != NIL)
		{
			ListCell   *wc;

			usable = false;
			foreach(wc, wanted)
				if (index_has_name(indexoid, (char *) lfirst(wc)))
					usable = true;
		}
		if (usable)
		{
			UniqueIndex *ui = &cfg->indexes[cfg->nindexes++];

			ui->indexoid = indexoid;
			ui->name = pstrdup(RelationGetRelationName(index));
			ui->info = BuildIndexInfo(index);
			BuildSpeculativeIndexInfo(index, ui->info);
		}
		index_close(index, AccessShareLock);
	}

	/* every named constraint must exist among the usable indexes */
	foreach(lc, wanted)
	{
		const char *name = (const char *) lfirst(lc);

		for (i = 0; i < cfg->nindexes; i++)
			if (index_has_name(cfg->indexes[i].indexoid, name))
				break;
		if (i == cfg->nindexes)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("table \"%s\" has no immediate unique constraint or index \"%s\"",
							RelationGetRelationName(args->rel), name),
					 errhint("Name a primary key, unique constraint or unique index of the table; deferrable ones are left to the server.")));
	}

	if (cfg->nindexes == 0 && args->trigger == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no immediate unique constraint or index to guard",
						RelationGetRelationName(args->rel)),
				 errhint("Add a unique constraint first; a deferrable one is checked by the server at commit.")));

	return cfg;
}

static UniqueStatement *
statement_state(FunctionCallInfo fcinfo, TriggerData *td, UniqueConfig *cfg)
{
	UniqueStatement **slot = (UniqueStatement **) ig_statement_state(fcinfo);
	UniqueStatement *st = *slot;
	MemoryContext oldcxt;
	TupleDesc	tupdesc;
	int			i;

	if (st != NULL && st->config == cfg)
		return st;

	oldcxt = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	st = palloc0(sizeof(UniqueStatement));
	st->config = cfg;
	st->estate = CreateExecutorState();
	/* an unpinned copy: these slots are never dropped, only freed */
	tupdesc = CreateTupleDescCopy(RelationGetDescr(td->tg_relation));
	st->newslot = MakeSingleTupleTableSlot(tupdesc, &TTSOpsHeapTuple);
	st->oldslot = MakeSingleTupleTableSlot(tupdesc, &TTSOpsHeapTuple);
	st->existing = MakeSingleTupleTableSlot(tupdesc,
											table_slot_callbacks(td->tg_relation));
	st->infos = palloc0(sizeof(IndexInfo *) * Max(cfg->nindexes, 1));
	st->predicates = palloc0(sizeof(ExprState *) * Max(cfg->nindexes, 1));
	st->keyed = palloc0(sizeof(int) * Max(cfg->nindexes, 1));
	for (i = 0; i < cfg->nindexes; i++)
	{
		/* expression and predicate states belong to this statement */
		st->infos[i] = palloc(sizeof(IndexInfo));
		memcpy(st->infos[i], cfg->indexes[i].info, sizeof(IndexInfo));
		st->infos[i]->ii_ExpressionsState = NIL;
		st->infos[i]->ii_PredicateState = NULL;
		if (st->infos[i]->ii_Predicate != NIL)
			st->predicates[i] = ExecPrepareQual(st->infos[i]->ii_Predicate,
												st->estate);
	}
	MemoryContextSwitchTo(oldcxt);
	*slot = st;
	return st;
}

static bool
row_in_index(UniqueStatement *st, int i, TupleTableSlot *slot)
{
	ExprContext *econtext = GetPerTupleExprContext(st->estate);

	if (st->predicates[i] == NULL)
		return true;
	econtext->ecxt_scantuple = slot;
	return ExecQual(st->predicates[i], econtext);
}

/*
 * Look for a live row other than 'self' with these key values, waiting for
 * transactions that are inserting or deleting such a row.  Returns true if
 * one exists.
 */
static bool
probe_index(Relation heap, Relation index, IndexInfo *info, Datum *values,
			bool *isnull, ItemPointer self, TupleTableSlot *existing)
{
	int			nkeys = IndexRelationGetNumberOfKeyAttributes(index);
	ScanKeyData scankeys[INDEX_MAX_KEYS];
	SnapshotData dirty;
	IndexScanDesc scan;
	bool		found;
	int			i;

	/* NULLs never conflict unless the index says NULLS NOT DISTINCT */
	if (!info->ii_NullsNotDistinct)
		for (i = 0; i < nkeys; i++)
			if (isnull[i])
				return false;

	for (i = 0; i < nkeys; i++)
		ScanKeyEntryInitialize(&scankeys[i],
							   isnull[i] ? SK_ISNULL | SK_SEARCHNULL : 0,
							   i + 1,
							   info->ii_UniqueStrats[i],
							   InvalidOid,
							   index->rd_indcollation[i],
							   info->ii_UniqueProcs[i],
							   values[i]);

	InitDirtySnapshot(dirty);
	for (;;)
	{
		TransactionId xwait = InvalidTransactionId;

		found = false;
		scan = ig_index_beginscan(heap, index, &dirty, nkeys, 0);
		index_rescan(scan, scankeys, nkeys, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, existing))
		{
			if (self && ItemPointerEquals(self, &existing->tts_tid))
				continue;
			xwait = TransactionIdIsValid(dirty.xmin) ? dirty.xmin : dirty.xmax;
			if (!TransactionIdIsValid(xwait))
				found = true;
			break;
		}
		index_endscan(scan);

		if (!TransactionIdIsValid(xwait))
			break;

		/* another transaction is inserting or deleting it: wait, look again */
		if (dirty.speculativeToken)
			SpeculativeInsertionWait(dirty.xmin, dirty.speculativeToken);
		else
			XactLockTableWait(xwait, heap, &existing->tts_tid,
							  XLTW_InsertIndexUnique);
		ExecClearTuple(existing);
	}
	ExecClearTuple(existing);
	return found;
}

static bool
same_key(Relation index, Datum *a, bool *anull, Datum *b, bool *bnull)
{
	int			nkeys = IndexRelationGetNumberOfKeyAttributes(index);
	int			i;

	for (i = 0; i < nkeys; i++)
	{
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(index), i);

		if (anull[i] != bnull[i])
			return false;
		if (!anull[i] && !datum_image_eq(a[i], b[i], att->attbyval, att->attlen))
			return false;
	}
	return true;
}

PG_FUNCTION_INFO_V1(guard_unique);

Datum
guard_unique(PG_FUNCTION_ARGS)
{
	TriggerData *td = ig_require_before_row_write(fcinfo, "guard_unique");
	HeapTuple	tuple = ig_new_row(td);
	bool		is_update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
	Relation	heap = td->tg_relation;
	UniqueConfig *cfg;
	UniqueStatement *st;
	int			i;

	if (!ig_enabled)
		return PointerGetDatum(tuple);

	cfg = ig_trigger_config(fcinfo, "guard_unique", ig_unique_parse);
	if (cfg->nindexes == 0)
		return PointerGetDatum(tuple);
	st = statement_state(fcinfo, td, cfg);
	ResetPerTupleExprContext(st->estate);

	ExecStoreHeapTuple(tuple, st->newslot, false);
	if (is_update)
		ExecStoreHeapTuple(td->tg_trigtuple, st->oldslot, false);

	for (i = 0; i < cfg->nindexes; i++)
	{
		UniqueIndex *ui = &cfg->indexes[i];
		IndexInfo  *info = st->infos[i];
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];
		Relation	index;
		bool		duplicate;
		char	   *key;
		StringInfoData detail;
		StringInfoData key_columns;
		int			k;

		if (!row_in_index(st, i, st->newslot))
			continue;

		index = index_open(ui->indexoid, RowExclusiveLock);
		GetPerTupleExprContext(st->estate)->ecxt_scantuple = st->newslot;
		FormIndexDatum(info, st->newslot, st->estate, values, isnull);

		/* an UPDATE that keeps its key in the index cannot add a duplicate */
		if (is_update && row_in_index(st, i, st->oldslot))
		{
			Datum		oldvalues[INDEX_MAX_KEYS];
			bool		oldisnull[INDEX_MAX_KEYS];

			GetPerTupleExprContext(st->estate)->ecxt_scantuple = st->oldslot;
			FormIndexDatum(info, st->oldslot, st->estate, oldvalues, oldisnull);
			if (same_key(index, values, isnull, oldvalues, oldisnull))
			{
				index_close(index, RowExclusiveLock);
				continue;
			}
		}

		duplicate = probe_index(heap, index, info, values, isnull,
								is_update ? &td->tg_trigtuple->t_self : NULL,
								st->existing);
		if (!duplicate)
		{
			index_close(index, RowExclusiveLock);
			continue;
		}

		/*
		 * The server's own description, NULL if the role may not see the
		 * key.  A skipped row needs it only for the audit.
		 */
		key = NULL;
		if (!cfg->skip || (ig_log_key_values &&
						   st->keyed[i] < IG_MAX_KEYED_INCIDENTS))
			key = BuildIndexValueDescription(index, values, isnull);

		/* the key's columns: who may read the values (0: an expression) */
		initStringInfo(&key_columns);
		appendStringInfoChar(&key_columns, '[');
		for (k = 0; k < IndexRelationGetNumberOfKeyAttributes(index); k++)
			appendStringInfo(&key_columns, "%s%d", k > 0 ? ", " : "",
							 index->rd_index->indkey.values[k]);
		appendStringInfoChar(&key_columns, ']');
		index_close(index, RowExclusiveLock);

		initStringInfo(&detail);
		appendStringInfoChar(&detail, '{');
		ig_append_json_string(&detail, "constraint", ui->name, true);
		ig_append_json_string(&detail, "mode", cfg->skip ? "skip" : "raise", false);
		if (ig_log_key_values && key != NULL &&
			st->keyed[i] < IG_MAX_KEYED_INCIDENTS)
		{
			ig_append_json_string(&detail, "key", key, false);
			appendStringInfo(&detail, ", \"key_columns\": %s", key_columns.data);
			st->keyed[i]++;
		}
		appendStringInfoChar(&detail, '}');
		ig_audit_record(IG_EVENT_DUPLICATE_KEY, heap, ui->name, detail.data, 1);

		if (cfg->skip)
			return PointerGetDatum(NULL);

		ig_unique_raised = true;
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("duplicate key value violates unique constraint \"%s\"",
						ui->name),
				 key ? errdetail("Key %s already exists.", key) : 0,
				 errtableconstraint(heap, ui->name)));
	}

	return PointerGetDatum(tuple);
}
