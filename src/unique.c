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
 * The guard checks the unique indexes the server will check on insert:
 * immediate, ready for inserts (also while CREATE UNIQUE INDEX CONCURRENTLY
 * is still building one), with partial predicates, expressions, NULLS NOT
 * DISTINCT and STORED generated columns computed as the server will.  It
 * probes with a dirty snapshot, waiting for an in-progress inserting or
 * deleting transaction and probing again, as ON CONFLICT's pre-check in
 * execIndexing.c does: a concurrent race is seen, not only committed rows.
 * A rejected row never reaches the heap, so it leaves no dead tuple.
 *
 * The guard must know which statement writes the row, which a trigger is
 * not told.  Hooks on ExecutorRun, ExecutorFinish and ProcessUtility keep
 * a stack of what is running; the innermost entry's ModifyTable nodes say
 * whether the insert has an ON CONFLICT clause (its arbiter indexes are the
 * server's business: a conflict there is no duplicate attempt) and whether
 * it is the insert half of an UPDATE or MERGE moving a row to another
 * partition (never skipped: skipping would lose the row).
 *
 * In mode=raise with the server's 23505 captured (preloaded), probing buys
 * only the saved dead tuple.  The guard then probes only a table that is
 * seeing duplicates right now: after a rejected attempt it let through, it
 * probes the next IG_PROBE_BUDGET rows, and every duplicate it finds
 * renews that.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/partition.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "parser/parsetree.h"
#include "storage/lmgr.h"
#include "tcop/pquery.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "citus_meta.h"
#include "incident.h"
#include "registry.h"
#include "settings.h"
#include "unique.h"
#include "util.h"

/* rows probed after a duplicate, in mode=raise with capture (see above) */
#define IG_PROBE_BUDGET 10000

typedef struct UniqueIndex
{
	Oid			indexoid;
	char	   *name;
	const char *label;			/* the name the audit shows (a shard's: its table's) */
	IndexInfo  *info;			/* with the equality operators; no states */
	bool		watched;		/* else probed only as an ON CONFLICT arbiter */
} UniqueIndex;

typedef struct UniqueConfig
{
	bool		skip;
	Oid			logical;		/* on a Citus shard: its table, else InvalidOid */
	int			nindexes;
	int			nwatched;
	UniqueIndex *indexes;		/* every unique index the server checks */
} UniqueConfig;

/*
 * Distinct keys a statement records per index before further attempts
 * aggregate into one incident without a key: a consumer replaying 90,000
 * messages must not write 90,000 audit rows (doc/design.md, "Server facts", 5).
 */
#define IG_MAX_KEYED_INCIDENTS 100

/*
 * Per relation and backend: the adaptive probe, and the last row let
 * through unprobed (was it rejected by the server?).  In TopMemoryContext.
 */
typedef struct RelProbe
{
	Oid			relid;			/* hash key */
	int			budget;			/* rows still to probe */
	bool		pending;		/* 'row' was let through unprobed ... */
	bool		suspect;		/* ... and its subtransaction aborted */
	SubTransactionId subid;
	uint64		captured;		/* ig_unique_captured then */
	int			natts;
	NameData	schema_name;	/* for the error hook, which reads no catalog */
	NameData	table_name;
	Size		bufsize;
	HeapTupleData row;			/* t_data points into a buffer */
} RelProbe;

/* Executor state for one statement, in the trigger's fn_mcxt. */
typedef struct UniqueStatement
{
	UniqueConfig *config;		/* built for this configuration */
	int		   *keyed;			/* per index: attempts recorded with a key */
	EState	   *estate;
	TupleTableSlot *newslot;
	TupleTableSlot *oldslot;
	TupleTableSlot *existing;
	TupleTableSlot *genslot;	/* the row with its generated columns */
	ResultRelInfo *rri;			/* to compute them */
	bool		has_generated;
	Bitmapset  *indexed;		/* columns any index of the table uses */
	RelProbe   *probe;
	IndexInfo **infos;			/* per-statement copies */
	ExprState **predicates;
	bool		named;			/* probe's names set for this statement */
} UniqueStatement;

/* What writes the row: the innermost running statement's ModifyTable. */
typedef struct WriteContext
{
	CmdType		operation;		/* CMD_UNKNOWN when no ModifyTable does */
	OnConflictAction action;
	List	   *arbiters;		/* NIL with an action: every unique index */
	bool		by_ancestor;	/* arbiters are indexes of an ancestor */
	struct RunLevel *level;
	ResultRelInfo *rri;			/* the writing node's, and its EState */
	EState	   *estate;
} WriteContext;

typedef struct RunLevel
{
	QueryDesc  *queryDesc;		/* NULL: a utility statement (COPY, CALL) */
	bool		scanned;
	List	   *mtstates;		/* ModifyTableStates that matter here */
	Oid			last_relid;		/* cache of the last lookup */
	WriteContext last;
	HeapTuple	merge_update;	/* MERGE: the last row updated, for moves */
	TupleDesc	merge_update_desc;
} RunLevel;

/* levels are allocated once and never move: pointers to them stay valid */
static RunLevel **run_stack = NULL;
static int	run_depth = 0;
static int	run_size = 0;

static HTAB *rel_probes = NULL;
static RelProbe *last_pass = NULL;	/* the latest row let through unprobed */

/* Kept up to date by the error hook (capture.c). */
uint64		ig_unique_captured = 0;
bool		ig_unique_capture_on = false;

static const char *const unique_options[] = {"mode", "constraint", NULL};
static const char *const unique_modes[] = {"raise", "skip", NULL};

/* ---------------------------------------------------------------------
 * The stack of running statements
 * ---------------------------------------------------------------------
 */
static void
push_level(QueryDesc *queryDesc)
{
	RunLevel   *level;

	if (run_depth >= run_size)
	{
		int			newsize = Max(run_size * 2, 16);
		int			i;

		if (run_stack == NULL)
			run_stack = MemoryContextAlloc(TopMemoryContext,
										   sizeof(RunLevel *) * newsize);
		else
			run_stack = repalloc(run_stack, sizeof(RunLevel *) * newsize);
		for (i = run_size; i < newsize; i++)
			run_stack[i] = MemoryContextAlloc(TopMemoryContext,
											  sizeof(RunLevel));
		run_size = newsize;
	}
	level = run_stack[run_depth++];
	memset(level, 0, sizeof(RunLevel));
	level->queryDesc = queryDesc;
}

/*
 * A statement starts running (ExecutorRun, ExecutorFinish: queryDesc; a
 * utility statement: NULL).  Returns the depth to give ig_unique_leave()
 * when it ends, also by error (the executor hooks, pg_integrity_guard.c).
 */
int
ig_unique_enter(QueryDesc *queryDesc)
{
	int			depth = run_depth;

	push_level(queryDesc);
	return depth;
}

void
ig_unique_leave(int depth)
{
	run_depth = depth;
}

static void
consider_mtstate(RunLevel *level, PlanState *ps)
{
	if (ps != NULL && IsA(ps, ModifyTableState) &&
		((ModifyTableState *) ps)->operation != CMD_DELETE)
		level->mtstates = lappend(level->mtstates, ps);
}

static void
scan_level(RunLevel *level)
{
	EState	   *estate = level->queryDesc->estate;
	MemoryContext oldcxt;
	ListCell   *lc;

	level->scanned = true;
	if (estate == NULL)
		return;
	oldcxt = MemoryContextSwitchTo(estate->es_query_cxt);
	consider_mtstate(level, level->queryDesc->planstate);
	foreach(lc, estate->es_auxmodifytables)
		consider_mtstate(level, (PlanState *) lfirst(lc));
	MemoryContextSwitchTo(oldcxt);
}

/* The node's result relation for relid: a target, or a routed partition. */
static ResultRelInfo *
mt_result_rel(ModifyTableState *mt, EState *estate, Oid relid)
{
	ListCell   *lc;
	int			i;

	for (i = 0; i < mt->mt_nrels; i++)
		if (RelationGetRelid(mt->resultRelInfo[i].ri_RelationDesc) == relid)
			return &mt->resultRelInfo[i];
	foreach(lc, estate->es_tuple_routing_result_relations)
	{
		ResultRelInfo *rri = lfirst(lc);

		if (rri->ri_RootResultRelInfo == mt->rootResultRelInfo &&
			RelationGetRelid(rri->ri_RelationDesc) == relid)
			return rri;
	}
	return NULL;
}

static bool
plan_writes(PlannedStmt *pstmt, Plan *plan, Oid relid, List *ancestors,
			WriteContext *wc)
{
	ModifyTable *mt;
	ListCell   *lc;

	if (plan == NULL || !IsA(plan, ModifyTable))
		return false;
	mt = (ModifyTable *) plan;
	foreach(lc, mt->resultRelations)
	{
		Oid			target = rt_fetch(lfirst_int(lc), pstmt->rtable)->relid;

		if (target == relid || list_member_oid(ancestors, target))
		{
			wc->operation = mt->operation;
			wc->action = mt->onConflictAction;
			wc->arbiters = mt->arbiterIndexes;
			wc->by_ancestor = target != relid;
			return true;
		}
	}
	return false;
}

/*
 * The library was loaded by this very statement's first guard, after its
 * executor started: read the active portal's plans instead.
 */
static void
portal_write(Relation rel, WriteContext *wc)
{
	Oid			relid = RelationGetRelid(rel);
	List	   *ancestors = NIL;
	ListCell   *lc;

	if (ActivePortal == NULL)
		return;
	if (rel->rd_rel->relispartition)
		ancestors = get_partition_ancestors(relid);
	foreach(lc, ActivePortal->stmts)
	{
		PlannedStmt *pstmt = lfirst(lc);
		ListCell   *sc;

		if (!IsA(pstmt, PlannedStmt) || pstmt->commandType == CMD_UTILITY)
			continue;
		if (plan_writes(pstmt, pstmt->planTree, relid, ancestors, wc))
			return;
		foreach(sc, pstmt->subplans)
			if (plan_writes(pstmt, lfirst(sc), relid, ancestors, wc))
				return;
	}
}

/* Did this node hand the trigger its row?  Each node has its own slots. */
static bool
slot_of(ModifyTableState *mt, ResultRelInfo *rri, TupleTableSlot *slot)
{
	PlanState  *sub = outerPlanState(mt);

	return slot != NULL &&
		(slot == rri->ri_newTupleSlot || slot == rri->ri_PartitionTupleSlot ||
		 (sub != NULL && slot == sub->ps_ResultTupleSlot));
}

static void
current_write(Relation rel, TupleTableSlot *slot, WriteContext *wc)
{
	RunLevel   *level;
	Oid			relid = RelationGetRelid(rel);
	ListCell   *lc;
	int			nfound = 0;

	memset(wc, 0, sizeof(WriteContext));
	wc->operation = CMD_UNKNOWN;
	wc->action = ONCONFLICT_NONE;
	if (run_depth == 0)
	{
		portal_write(rel, wc);
		return;
	}
	level = run_stack[run_depth - 1];
	if (level->queryDesc == NULL)
		return;
	if (!level->scanned)
		scan_level(level);
	if (level->mtstates == NIL)
		return;
	if (level->last_relid == relid)
	{
		*wc = level->last;
		return;
	}
	wc->level = level;
	foreach(lc, level->mtstates)
	{
		ModifyTableState *mt = lfirst(lc);
		ResultRelInfo *rri = mt_result_rel(mt, level->queryDesc->estate, relid);

		if (rri == NULL)
			continue;

		/*
		 * Several nodes write this table (writable CTEs): the one whose
		 * slot holds the row, else the first one without ON CONFLICT.
		 */
		if (nfound++ > 0 && !slot_of(mt, rri, slot) &&
			(wc->action == ONCONFLICT_NONE ||
			 ((ModifyTable *) mt->ps.plan)->onConflictAction != ONCONFLICT_NONE))
			continue;
		wc->operation = mt->operation;
		wc->action = ((ModifyTable *) mt->ps.plan)->onConflictAction;
		wc->arbiters = rri->ri_onConflictArbiterIndexes;
		wc->rri = rri;
		wc->estate = level->queryDesc->estate;
		if (slot_of(mt, rri, slot))
			break;
	}
	if (nfound <= 1)
	{
		level->last_relid = relid;
		level->last = *wc;
	}
}

static bool
is_arbiter(WriteContext *wc, Oid indexoid)
{
	ListCell   *lc;

	if (wc->action == ONCONFLICT_NONE)
		return false;
	if (wc->arbiters == NIL || list_member_oid(wc->arbiters, indexoid))
		return true;
	if (wc->by_ancestor)
		foreach(lc, get_partition_ancestors(indexoid))
			if (list_member_oid(wc->arbiters, lfirst_oid(lc)))
				return true;
	return false;
}

/*
 * MERGE: is this insert the second half of the UPDATE just let through,
 * moving its row to another partition?  Same values, column by name.
 */
static bool
merge_moves(RunLevel *level, HeapTuple tuple, TupleDesc desc)
{
	HeapTuple	old = level->merge_update;
	TupleDesc	olddesc = level->merge_update_desc;
	int			i,
				j;

	if (old == NULL)
		return false;
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Datum		v1,
					v2;
		bool		n1,
					n2;

		if (att->attisdropped)
			continue;
		for (j = 0; j < olddesc->natts; j++)
			if (!TupleDescAttr(olddesc, j)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(olddesc, j)->attname),
					   NameStr(att->attname)) == 0)
				break;
		if (j == olddesc->natts)
			return false;
		v1 = heap_getattr(tuple, i + 1, desc, &n1);
		v2 = heap_getattr(old, j + 1, olddesc, &n2);
		if (n1 != n2 ||
			(!n1 && !datum_image_eq(v1, v2, att->attbyval, att->attlen)))
			return false;
	}
	return true;
}

static void
merge_remember(RunLevel *level, HeapTuple tuple, TupleDesc desc)
{
	MemoryContext oldcxt;

	if (level->merge_update)
		heap_freetuple(level->merge_update);
	level->merge_update = NULL;
	if (tuple == NULL)
		return;
	oldcxt = MemoryContextSwitchTo(level->queryDesc->estate->es_query_cxt);
	level->merge_update = heap_copytuple(tuple);
	level->merge_update_desc = desc;
	MemoryContextSwitchTo(oldcxt);
}

/* ---------------------------------------------------------------------
 * The last row let through unprobed: did its subtransaction abort?
 * ---------------------------------------------------------------------
 */
void
ig_unique_xact_event(XactEvent event)
{
	if (last_pass == NULL || !last_pass->pending)
		return;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		last_pass->suspect = true;
	else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PREPARE ||
			 event == XACT_EVENT_PARALLEL_COMMIT)
		last_pass->pending = false;
}

void
ig_unique_subxact_event(SubXactEvent event, SubTransactionId mySubid)
{
	if (last_pass == NULL || !last_pass->pending ||
		last_pass->subid != mySubid)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		last_pass->suspect = true;
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		last_pass->pending = false;
}

static RelProbe *
rel_probe(Oid relid)
{
	bool		found;
	RelProbe   *probe;

	if (rel_probes == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RelProbe);
		ctl.hcxt = TopMemoryContext;
		rel_probes = hash_create("integrity_guard unique probes", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	probe = hash_search(rel_probes, &relid, HASH_ENTER, &found);
	if (!found)
	{
		probe->budget = 0;
		probe->pending = false;
		probe->suspect = false;
		probe->bufsize = 0;
		probe->row.t_data = NULL;
	}
	return probe;
}

/* Keep a copy of the row let through, in case the server rejects it. */
static void
remember_pass(RelProbe *probe, HeapTuple tuple, TupleDesc desc)
{
	if (probe->bufsize < tuple->t_len)
	{
		Size		size = Max(tuple->t_len, 256);

		if (probe->row.t_data)
			pfree(probe->row.t_data);
		probe->row.t_data = MemoryContextAlloc(TopMemoryContext, size);
		probe->bufsize = size;
	}
	memcpy(probe->row.t_data, tuple->t_data, tuple->t_len);
	probe->row.t_len = tuple->t_len;
	ItemPointerSetInvalid(&probe->row.t_self);
	probe->row.t_tableOid = tuple->t_tableOid;
	probe->natts = desc->natts;
	probe->subid = GetCurrentSubTransactionId();
	probe->captured = ig_unique_captured;
	probe->pending = true;
	probe->suspect = false;
	if (last_pass != NULL && last_pass != probe)
		last_pass->pending = false;
	last_pass = probe;
}

/*
 * Is the server's 23505 on this table about the row guard_unique let
 * through?  Called by the error hook: no catalog, no allocation.
 */
bool
ig_unique_passed(const char *schema_name, const char *table_name)
{
	return last_pass != NULL && last_pass->pending &&
		schema_name != NULL && table_name != NULL &&
		strcmp(NameStr(last_pass->schema_name), schema_name) == 0 &&
		strcmp(NameStr(last_pass->table_name), table_name) == 0;
}

/* ---------------------------------------------------------------------
 * Configuration and per-statement state
 * ---------------------------------------------------------------------
 */

/* An index name, or that name with a Citus shard's suffix. */
static bool
name_matches(const char *indexname, const char *name, const char *suffix)
{
	return strcmp(indexname, name) == 0 ||
		strcmp(ig_citus_unsuffixed(indexname, suffix), name) == 0;
}

/*
 * Does the index, or an index it is a partition of, have this name?  On a
 * Citus shard (suffix: "_" and its shard id, else NULL) the shard's copy of
 * the named index answers too: Citus names it NAME_SHARDID.
 */
static bool
index_has_name(Oid indexoid, const char *name, const char *suffix)
{
	List	   *ancestors;
	ListCell   *lc;

	if (name_matches(get_rel_name(indexoid), name, suffix))
		return true;
	ancestors = get_partition_ancestors(indexoid);
	foreach(lc, ancestors)
		if (name_matches(get_rel_name(lfirst_oid(lc)), name, suffix))
			return true;
	return false;
}

static void *
unique_parse(IgArgs *args)
{
	UniqueConfig *cfg = palloc0(sizeof(UniqueConfig));
	List	   *indexoids = RelationGetIndexList(args->rel);
	List	   *wanted = NIL;
	const char *suffix = NULL;
	IgCitusShard shard;
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
	/* a shard's indexes answer to their table's names (NAME_SHARDID) */
	if (ig_citus_shard_of(RelationGetRelid(args->rel), &shard))
	{
		cfg->logical = shard.logical;
		suffix = shard.suffix;
	}

	cfg->indexes = palloc0(sizeof(UniqueIndex) * Max(list_length(indexoids), 1));
	foreach(lc, indexoids)
	{
		Oid			indexoid = lfirst_oid(lc);
		Relation	index = index_open(indexoid, AccessShareLock);

		/*
		 * What the server checks on insert: ready (CREATE UNIQUE INDEX
		 * CONCURRENTLY may not have made it valid yet) and immediate.
		 */
		if (index->rd_index->indisunique && index->rd_index->indimmediate &&
			index->rd_index->indisready && index->rd_index->indislive)
		{
			UniqueIndex *ui = &cfg->indexes[cfg->nindexes++];

			ui->indexoid = indexoid;
			ui->name = pstrdup(RelationGetRelationName(index));
			ui->label = ig_citus_unsuffixed(ui->name, suffix);
			ui->info = BuildIndexInfo(index);
			BuildSpeculativeIndexInfo(index, ui->info);
			ui->watched = (wanted == NIL);
			if (wanted != NIL)
			{
				ListCell   *wc;

				foreach(wc, wanted)
					if (index_has_name(indexoid, (char *) lfirst(wc), suffix))
						ui->watched = true;
			}
			if (ui->watched)
				cfg->nwatched++;
		}
		index_close(index, AccessShareLock);
	}

	/* every named constraint must exist among the usable indexes */
	foreach(lc, wanted)
	{
		const char *name = (const char *) lfirst(lc);

		for (i = 0; i < cfg->nindexes; i++)
			if (index_has_name(cfg->indexes[i].indexoid, name, suffix))
				break;
		if (i == cfg->nindexes)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("table \"%s\" has no immediate unique constraint or index \"%s\"",
							RelationGetRelationName(args->rel), name),
					 errhint("Name a primary key, unique constraint or unique index of the table; deferrable ones are left to the server.")));
	}

	if (cfg->nwatched == 0 && args->trigger == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no immediate unique constraint or index to guard",
						RelationGetRelationName(args->rel)),
				 errhint("Add a unique constraint first; a deferrable one is checked by the server at commit.")));

	return cfg;
}

/*
 * The statement's state, in two steps: what every row needs (the indexed
 * columns, the probe), made with the statement; what probing and recording
 * need (executor state, slots, index infos), made on first use, so that a
 * single-row UPDATE that keeps its keys or a row let through to the server
 * pays for none of it.
 */
static UniqueStatement *
statement_state(FunctionCallInfo fcinfo, TriggerData *td, UniqueConfig *cfg)
{
	UniqueStatement **slot = (UniqueStatement **) ig_statement_state(fcinfo);
	UniqueStatement *st = *slot;
	Relation	heap = td->tg_relation;
	MemoryContext oldcxt;

	if (st != NULL && st->config == cfg)
		return st;

	oldcxt = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	st = palloc0(sizeof(UniqueStatement));
	st->config = cfg;
	st->has_generated = RelationGetDescr(heap)->constr != NULL &&
		RelationGetDescr(heap)->constr->has_generated_stored;
	st->indexed = RelationGetIndexAttrBitmap(heap, IG_INDEX_ATTR_BITMAP_ALL);
	st->probe = rel_probe(RelationGetRelid(heap));
	MemoryContextSwitchTo(oldcxt);
	*slot = st;
	return st;
}

/* The table's names for the error hook, which reads no catalog. */
static void
statement_name(UniqueStatement *st, Relation heap)
{
	if (st->named)
		return;
	namestrcpy(&st->probe->schema_name,
			   get_namespace_name(RelationGetNamespace(heap)));
	namestrcpy(&st->probe->table_name, RelationGetRelationName(heap));
	st->named = true;
}

static void
statement_prepare(FunctionCallInfo fcinfo, UniqueStatement *st, Relation heap)
{
	UniqueConfig *cfg = st->config;
	MemoryContext oldcxt;
	TupleDesc	tupdesc;
	int			i;

	statement_name(st, heap);
	if (st->estate != NULL)
		return;
	oldcxt = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	st->estate = CreateExecutorState();
	/* an unpinned copy: these slots are never dropped, only freed */
	tupdesc = CreateTupleDescCopy(RelationGetDescr(heap));
	st->newslot = MakeSingleTupleTableSlot(tupdesc, &TTSOpsHeapTuple);
	st->oldslot = MakeSingleTupleTableSlot(tupdesc, &TTSOpsHeapTuple);
	st->existing = MakeSingleTupleTableSlot(tupdesc,
											table_slot_callbacks(heap));
	if (st->has_generated)
	{
		/* the server computes them after BEFORE ROW triggers */
		st->genslot = MakeSingleTupleTableSlot(tupdesc, &TTSOpsVirtual);
		st->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(st->rri, heap, 0, NULL, 0);
	}
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
}

/*
 * An UPDATE that leaves every indexed column as it was (binary equal) keeps
 * its own keys: index_conflict() would find each key the same as the old
 * row's and probe nothing, so nothing is formed or compared per index.
 * Predicates and expressions read only indexed columns.  Stored generated
 * columns are computed after this trigger, so their tables take the full
 * path.
 */
static bool
keys_unchanged(UniqueStatement *st, HeapTuple oldtup, HeapTuple newtup,
			   TupleDesc desc)
{
	int			x = -1;

	if (st->has_generated)
		return false;
	while ((x = bms_next_member(st->indexed, x)) >= 0)
	{
		AttrNumber	attnum = x + FirstLowInvalidHeapAttributeNumber;
		Form_pg_attribute att;
		Datum		a;
		Datum		b;
		bool		anull;
		bool		bnull;

		if (attnum <= 0)
			return false;
		att = TupleDescAttr(desc, attnum - 1);
		a = heap_getattr(oldtup, attnum, desc, &anull);
		b = heap_getattr(newtup, attnum, desc, &bnull);
		if (anull != bnull ||
			(!anull && !datumIsEqual(a, b, att->attbyval, att->attlen)))
			return false;
	}
	return true;
}

/* The row as the server will index it: STORED generated columns computed. */
static TupleTableSlot *
indexed_row(UniqueStatement *st, TupleTableSlot *slot)
{
	if (!st->has_generated)
		return slot;
	ExecCopySlot(st->genslot, slot);
	ExecComputeStoredGenerated(st->rri, st->estate, st->genslot, CMD_INSERT);
	return st->genslot;
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


/*
 * Does a live row other than 'self' hold the row's key in index i?  An
 * UPDATE that keeps its key in the index ('oldrow') cannot add a duplicate.
 * Fills values/isnull with the key.
 */
static bool
index_conflict(UniqueStatement *st, Relation heap, int i, TupleTableSlot *row,
			   TupleTableSlot *oldrow, ItemPointer self,
			   Datum *values, bool *isnull)
{
	IndexInfo  *info = st->infos[i];
	Relation	index;
	bool		duplicate;

	if (!row_in_index(st, i, row))
		return false;

	index = index_open(st->config->indexes[i].indexoid, RowExclusiveLock);
	GetPerTupleExprContext(st->estate)->ecxt_scantuple = row;
	FormIndexDatum(info, row, st->estate, values, isnull);

	if (oldrow != NULL && row_in_index(st, i, oldrow))
	{
		Datum		oldvalues[INDEX_MAX_KEYS];
		bool		oldisnull[INDEX_MAX_KEYS];

		GetPerTupleExprContext(st->estate)->ecxt_scantuple = oldrow;
		FormIndexDatum(info, oldrow, st->estate, oldvalues, oldisnull);
		if (same_key(index, values, isnull, oldvalues, oldisnull))
		{
			index_close(index, RowExclusiveLock);
			return false;
		}
	}

	duplicate = probe_index(heap, index, info, values, isnull, self,
							st->existing);
	index_close(index, RowExclusiveLock);
	return duplicate;
}

/*
 * Audit one attempt on index i.  Returns the server's description of the
 * key, NULL if the role may not see it or it was not needed.
 */
static char *
record_attempt(UniqueStatement *st, Relation heap, int i, Datum *values,
			   bool *isnull, const char *mode, bool need_key)
{
	UniqueIndex *ui = &st->config->indexes[i];
	bool		keyed = ig_log_key_values &&
		st->keyed[i] < IG_MAX_KEYED_INCIDENTS;
	char	   *key = NULL;
	StringInfoData detail;

	StringInfoData key_columns;

	initStringInfo(&key_columns);
	if (need_key || keyed)
	{
		Relation	index = index_open(ui->indexoid, AccessShareLock);
		int			k;

		key = BuildIndexValueDescription(index, values, isnull);
		/* the key's columns: who may read the values (0: an expression) */
		appendStringInfoChar(&key_columns, '[');
		for (k = 0; k < IndexRelationGetNumberOfKeyAttributes(index); k++)
		{
			AttrNumber	att = index->rd_index->indkey.values[k];

			/* on a shard: the table's own column, which readers are granted */
			if (OidIsValid(st->config->logical) && att > 0)
				att = get_attnum(st->config->logical,
								 get_attname(RelationGetRelid(heap), att, false));
			appendStringInfo(&key_columns, "%s%d", k > 0 ? ", " : "", att);
		}
		appendStringInfoChar(&key_columns, ']');
		index_close(index, AccessShareLock);
	}

	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	ig_append_json_string(&detail, "constraint", ui->label, true);
	ig_append_json_string(&detail, "mode", mode, false);
	if (keyed && key != NULL)
	{
		ig_append_json_string(&detail, "key", key, false);
		appendStringInfo(&detail, ", \"key_columns\": %s", key_columns.data);
		st->keyed[i]++;
	}
	appendStringInfoChar(&detail, '}');
	ig_incident_record(IG_EVENT_DUPLICATE_KEY, heap, ui->label, detail.data, 1);
	return key;
}

/*
 * The server's own error.  The error hook knows this function by name
 * (IG_UNIQUE_RAISE_FUNC): the attempt is audited here already.
 */
static void
ig_unique_raise(Relation heap, const char *constraint, const char *key)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("duplicate key value violates unique constraint \"%s\"",
					constraint),
			 key ? errdetail("Key %s already exists.", key) : 0,
			 errtableconstraint(heap, constraint)));
}

/*
 * The last row this relation let through unprobed was in a subtransaction
 * that aborted.  If its key is taken, the server rejected it: the attempt
 * is counted here unless the error hook counted it (a reported error), and
 * the table is seeing duplicates.
 */
static void
recheck_pass(UniqueStatement *st, Relation heap)
{
	RelProbe   *probe = st->probe;
	TupleTableSlot *row;
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];
	int			i;

	probe->pending = false;
	if (probe->captured != ig_unique_captured)
	{
		probe->budget = IG_PROBE_BUDGET;
		return;
	}
	if (probe->natts != RelationGetDescr(heap)->natts)
		return;
	ExecStoreHeapTuple(&probe->row, st->newslot, false);
	row = indexed_row(st, st->newslot);
	for (i = 0; i < st->config->nindexes; i++)
	{
		if (!st->config->indexes[i].watched ||
			!index_conflict(st, heap, i, row, NULL, NULL, values, isnull))
			continue;
		probe->budget = IG_PROBE_BUDGET;
		(void) record_attempt(st, heap, i, values, isnull, "raise", false);
		break;
	}
	ExecClearTuple(st->newslot);
	ResetPerTupleExprContext(st->estate);
}

/*
 * What the server checks before a unique index sees the row (ExecInsert,
 * ExecUpdate): row-level security WITH CHECK policies, then NOT NULL and
 * CHECK constraints, then (an insert) the partition constraint.  A row
 * found a duplicate must first pass these, so that it gets the error the
 * server would report first, as INSERT ... ON CONFLICT DO NOTHING does.
 * Without the writing node (COPY), NOT NULL and CHECK on a ResultRelInfo
 * of its own.  A table with stored generated columns is left out: they
 * are computed only after the BEFORE triggers.
 */
static void
server_checks_first(WriteContext *wc, Relation heap, TupleTableSlot *slot,
					bool is_update)
{
	TupleConstr *constr = RelationGetDescr(heap)->constr;

	if (constr != NULL && constr->has_generated_stored)
		return;
	if (wc->rri != NULL && RelationGetRelid(wc->rri->ri_RelationDesc) == RelationGetRelid(heap))
	{
		if (wc->rri->ri_WithCheckOptions != NIL)
			ExecWithCheckOptions(is_update ? WCO_RLS_UPDATE_CHECK : WCO_RLS_INSERT_CHECK,
								 wc->rri, slot, wc->estate);
		if (constr != NULL)
			ExecConstraints(wc->rri, slot, wc->estate);
		if (!is_update && heap->rd_rel->relispartition)
			(void) ExecPartitionCheck(wc->rri, slot, wc->estate, true);
		return;
	}
	if (constr != NULL && (constr->has_not_null || constr->num_check > 0))
	{
		ResultRelInfo *rri = makeNode(ResultRelInfo);
		EState	   *estate = CreateExecutorState();

		InitResultRelInfo(rri, heap, 0, NULL, 0);
		ExecConstraints(rri, slot, estate);
		FreeExecutorState(estate);
	}
}

PG_FUNCTION_INFO_V1(guard_unique);

Datum
guard_unique(PG_FUNCTION_ARGS)
{
	TriggerData *td = ig_require_before_row_write(fcinfo, "guard_unique");
	HeapTuple	tuple = ig_new_row(td);
	bool		is_update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
	Relation	heap = td->tg_relation;
	TupleDesc	desc = RelationGetDescr(heap);
	UniqueConfig *cfg;
	UniqueStatement *st;
	RelProbe   *probe;
	WriteContext wc;
	TupleTableSlot *row;
	TupleTableSlot *oldrow = NULL;
	bool		skip;
	bool		upsert;
	bool		merge_moves_tracked;
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];
	int			i;

	if (!ig_enabled)
		return PointerGetDatum(tuple);

	cfg = ig_trigger_config(fcinfo, &ig_unique_kind);
	if (cfg->nwatched == 0)
		return PointerGetDatum(tuple);
	st = statement_state(fcinfo, td, cfg);
	probe = st->probe;

	/* the row let through before this one: accepted, or rejected? */
	if (probe->pending)
	{
		if (probe->suspect)
		{
			statement_prepare(fcinfo, st, heap);
			recheck_pass(st, heap);
		}
		probe->pending = false;
	}

	current_write(heap, is_update ? td->tg_newslot : td->tg_trigslot, &wc);
	upsert = !is_update && wc.action != ONCONFLICT_NONE;
	merge_moves_tracked = cfg->skip && wc.operation == CMD_MERGE &&
		wc.level != NULL;
	skip = cfg->skip;

	/*
	 * The insert half of an UPDATE (or MERGE ... UPDATE) moving a row to
	 * another partition: the row was deleted from its old partition
	 * already, so dropping it would lose it.  Raise, as the server does.
	 */
	if (skip && !is_update &&
		(wc.operation == CMD_UPDATE ||
		 (merge_moves_tracked && merge_moves(wc.level, tuple, desc))))
		skip = false;
	if (merge_moves_tracked && !is_update)
		merge_remember(wc.level, NULL, NULL);

	/* ON CONFLICT without a conflict target: every unique index arbitrates */
	if (upsert && wc.arbiters == NIL)
		return PointerGetDatum(tuple);

	/*
	 * mode=raise with the server's 23505 captured by the error hook: let
	 * the row through unless this table is seeing duplicates right now.
	 */
	if (!skip && !is_update && probe->budget <= 0 &&
		ig_unique_capture_on && MyBackendType == B_BACKEND)
	{
		if (!upsert)
		{
			statement_name(st, heap);
			remember_pass(probe, tuple, desc);
		}
		return PointerGetDatum(tuple);
	}

	if (is_update && keys_unchanged(st, td->tg_trigtuple, tuple, desc))
	{
		if (probe->budget > 0)
			probe->budget--;
		if (merge_moves_tracked)
			merge_remember(wc.level, tuple, desc);
		return PointerGetDatum(tuple);
	}

	statement_prepare(fcinfo, st, heap);
	ResetPerTupleExprContext(st->estate);
	ExecStoreHeapTuple(tuple, st->newslot, false);
	row = indexed_row(st, st->newslot);
	if (is_update)
	{
		ExecStoreHeapTuple(td->tg_trigtuple, st->oldslot, false);
		oldrow = st->oldslot;
	}

	/*
	 * An upsert: a conflict on one of its arbiters is the statement's own
	 * business (nothing, or its DO UPDATE), and then the row is never
	 * inserted, so no other index can see a duplicate from it either.
	 */
	if (upsert)
	{
		int			narbiters = 0;

		for (i = 0; i < cfg->nindexes; i++)
		{
			if (!is_arbiter(&wc, cfg->indexes[i].indexoid))
				continue;
			narbiters++;
			if (index_conflict(st, heap, i, row, NULL, NULL, values, isnull))
				return PointerGetDatum(tuple);
		}
		/* an arbiter the guard cannot probe (an exclusion constraint) */
		if (!wc.by_ancestor && narbiters < list_length(wc.arbiters))
			return PointerGetDatum(tuple);
	}

	for (i = 0; i < cfg->nindexes; i++)
	{
		UniqueIndex *ui = &cfg->indexes[i];
		char	   *key;

		if (!ui->watched || (upsert && is_arbiter(&wc, ui->indexoid)))
			continue;
		if (!index_conflict(st, heap, i, row, oldrow,
							is_update ? &td->tg_trigtuple->t_self : NULL,
							values, isnull))
			continue;

		probe->budget = IG_PROBE_BUDGET;
		server_checks_first(&wc, heap, st->newslot, is_update);
		key = record_attempt(st, heap, i, values, isnull,
							 skip ? "skip" : "raise", !skip);
		if (skip)
		{
			if (merge_moves_tracked)
				merge_remember(wc.level, NULL, NULL);
			return PointerGetDatum(NULL);
		}
		ig_unique_raise(heap, ui->name, key);
	}

	if (probe->budget > 0)
		probe->budget--;
	if (merge_moves_tracked && is_update)
		merge_remember(wc.level, tuple, desc);
	return PointerGetDatum(tuple);
}

/* Does the table still have an index that answers to this name? */
static bool
table_has_index_named(Relation rel, const char *name)
{
	List	   *indexoids = RelationGetIndexList(rel);
	const char *suffix = ig_citus_shard_suffix(RelationGetRelid(rel));
	ListCell   *lc;

	foreach(lc, indexoids)
		if (index_has_name(lfirst_oid(lc), name, suffix))
			return true;
	return false;
}

/*
 * How a duplicates guard follows a change: a guard that watches named
 * constraints follows a renamed one (RENAME CONSTRAINT, ALTER INDEX ...
 * RENAME) and stops watching a dropped one; with none left it is removed,
 * since without the option it would watch every unique index.  A guard
 * without names reads the table's indexes at fire time and has nothing to
 * follow.
 */
static void
unique_follow(IgArgs *args, Trigger *tg, const IgSchemaChange *change,
			  IgFollow *out)
{
	List	   *options = NIL;
	const char *what = NULL;
	int			nnamed = 0;
	int			i;

	if (change->kind != IG_INDEX_RENAMED && change->kind != IG_INDEX_DROPPED)
		return;
	if (change->kind == IG_INDEX_RENAMED &&
		change->relid != RelationGetRelid(args->rel) &&
		!list_member_oid(get_partition_ancestors(RelationGetRelid(args->rel)),
						 change->relid))
		return;

	for (i = 0; i < args->noptions; i++)
	{
		IgOption   *opt = &args->options[i];
		const char *option = psprintf("%s=%s", opt->key, opt->value);

		if (strcmp(opt->key, "constraint") == 0 &&
			strcmp(opt->value, change->index) == 0)
		{
			if (change->kind == IG_INDEX_RENAMED)
			{
				option = psprintf("constraint=%s", change->newname);
				what = psprintf("follows constraint \"%s\" to its new name \"%s\"",
								change->index, change->newname);
			}
			else if (!table_has_index_named(args->rel, opt->value))
			{
				what = psprintf("no longer watches constraint \"%s\", which was dropped",
								change->index);
				option = NULL;
			}
		}
		if (option == NULL)
			continue;
		if (strcmp(opt->key, "constraint") == 0)
			nnamed++;
		options = lappend(options, (char *) option);
	}

	if (what == NULL)
		return;
	out->what = what;
	out->columns = NIL;
	out->options = options;
	out->set_options = true;
	out->action = nnamed == 0 ? IG_FOLLOW_REMOVE : IG_FOLLOW_REWRITE;
	if (nnamed == 0)
		out->what = psprintf("was removed with the last constraint it watched, \"%s\"",
							 change->index);
}

const IgGuardKind ig_unique_kind = {
	.function = "guard_unique",
	.label = "unique",
	.follow = unique_follow,
	.follows_indexes = true,
	.parse = unique_parse,
};
