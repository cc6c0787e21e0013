/*-------------------------------------------------------------------------
 *
 * pg_integrity_guard.c
 *		Module entry point: every setting, hook and callback, in one place.
 *
 * The library is loaded by the first guard trigger that fires in a backend,
 * or earlier through shared_preload_libraries / session_preload_libraries.
 * This is the top floor (doc/design.md, "Layers"): it may call any room,
 * and no room calls it.  Each hook below does what the rooms ask of that
 * moment, in a fixed order, and chains to the hook installed before it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "optimizer/planner.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/plancache.h"
#include "utils/syscache.h"

#include "capture.h"
#include "children.h"
#include "citus.h"
#include "citus_meta.h"
#include "compat.h"
#include "counter.h"
#include "incident.h"
#include "queue.h"
#include "range.h"
#include "registry.h"
#include "rewrite.h"
#include "settings.h"
#include "unique.h"
#include "worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request = NULL;
static shmem_startup_hook_type prev_shmem_startup = NULL;
static planner_hook_type prev_planner = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static emit_log_hook_type prev_emit_log = NULL;

/*
 * Statements prepared under one setting hold rewritten (or plain) plans:
 * a change drops every cached plan, so the next execution re-analyzes.
 */
static void
reset_plans(bool newval, void *extra)
{
	if (IsUnderPostmaster)
		ResetPlanCache();
}

static void
define_settings(void)
{
	DefineCustomBoolVariable("integrity_guard.enabled",
							 "Lets the integrity guards act.",
							 "When off, every guard trigger passes rows through unchanged and the server's own errors are raised again.",
							 &ig_enabled,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, reset_plans, NULL);

	DefineCustomBoolVariable("integrity_guard.rewrite",
							 "Rewrites arithmetic assigned to guarded columns so that it saturates.",
							 "Needs the library loaded before statements are parsed (shared_preload_libraries or session_preload_libraries).",
							 &ig_rewrite,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, reset_plans, NULL);

	DefineCustomBoolVariable("integrity_guard.log_key_values",
							 "Records key values in the detail of audit incidents.",
							 "Audit rows are visible only to roles that can read the audited table.",
							 &ig_log_key_values,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("integrity_guard.flush_interval",
							"Time within which queued incidents reach the audit table.",
							NULL,
							&ig_flush_interval,
							1000, 10, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("integrity_guard.max_flush_jobs",
							"Flush jobs (background workers) running at once.",
							"Databases with queued incidents are served round robin; the rest of max_worker_processes stays free for parallel query.",
							&ig_max_flush_jobs,
							1, 1, 64,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("integrity_guard.retention",
							"Age after which flush jobs delete audit rows (by last_seen); 0 keeps them.",
							NULL,
							&ig_retention,
							30 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("integrity_guard.durable_audit",
							 "Sends incidents through the shared queue, so they survive the rollback of their transaction.",
							 "Needs shared_preload_libraries.  When off, incidents are written in the transaction that produced them.",
							 &ig_durable_audit,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	/* sizes of shared memory exist only where it is made */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("integrity_guard.queue_size",
								"Distinct pending incidents the shared audit queue holds.",
								"Events of an incident already queued add to it; a new incident finding the queue full takes the place of one of a database or role above its fair share, or is counted as dropped.",
								&ig_queue_size,
								1024, 16, 1000000,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

		DefineCustomIntVariable("integrity_guard.max_stats",
								"Distinct (database, table, event type, target) counters kept in shared memory.",
								"When full, the least-used 5% are evicted.",
								&ig_max_stats,
								1000, 100, 1000000,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);
	}

	DefineCustomStringVariable("integrity_guard.capture_errors",
							   "Errors sent to clients that become audit incidents.",
							   "Condition names, SQLSTATEs or two-character classes, comma-separated; empty to capture nothing.  Needs shared_preload_libraries.",
							   &ig_capture_errors,
							   IG_CAPTURE_DEFAULT,
							   PGC_SUSET,
							   GUC_LIST_INPUT,
							   ig_capture_check, ig_capture_assign, NULL);

	MarkGUCPrefixReserved("integrity_guard");
}

/* Shared memory: the queue and statistics (preloading only). */
static void
ig_shmem_request(void)
{
	if (prev_shmem_request)
		prev_shmem_request();
	ig_queue_shmem_request();
}

static void
ig_shmem_startup(void)
{
	if (prev_shmem_startup)
		prev_shmem_startup();
	ig_queue_shmem_startup();
}

/* Planning: the assignment rewrite. */
static PlannedStmt *
ig_planner(Query *parse, const char *query_string, int cursorOptions,
		   ParamListInfo boundParams)
{
	ig_rewrite_query(parse);
	if (prev_planner)
		return prev_planner(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

/* A statement starts: incidents of earlier statements are written. */
static void
ig_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (!(eflags & EXEC_FLAG_EXPLAIN_ONLY))
		ig_incident_statement_start();
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * Running and finishing: guard_unique's stack of running statements.  A
 * statement that writes no rows (a SELECT without a data-modifying WITH)
 * needs no level: whatever it runs that writes is a statement of its own,
 * with its own level, so it goes straight through.
 */
static inline bool
writes_rows(QueryDesc *queryDesc)
{
	return queryDesc->operation != CMD_SELECT ||
		queryDesc->plannedstmt->hasModifyingCTE;
}

static void
ig_ExecutorRun(IG_EXECUTOR_RUN_PARAMS)
{
	int			depth;

	if (!writes_rows(queryDesc))
	{
		/* Citus distributing a guarded table: see citus.c */
		int			nest = ig_citus_allow_guarded(queryDesc);

		if (prev_ExecutorRun)
			prev_ExecutorRun(IG_EXECUTOR_RUN_ARGS);
		else
			standard_ExecutorRun(IG_EXECUTOR_RUN_ARGS);
		if (nest != 0)
			AtEOXact_GUC(true, nest);
		return;
	}
	depth = ig_unique_enter(queryDesc);

	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(IG_EXECUTOR_RUN_ARGS);
		else
			standard_ExecutorRun(IG_EXECUTOR_RUN_ARGS);
	}
	PG_FINALLY();
	{
		ig_unique_leave(depth);
	}
	PG_END_TRY();
}

static void
ig_ExecutorFinish(QueryDesc *queryDesc)
{
	int			depth;

	if (!writes_rows(queryDesc))
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
		return;
	}
	depth = ig_unique_enter(queryDesc);

	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		ig_unique_leave(depth);
	}
	PG_END_TRY();
}

/*
 * Utility statements, in this order: SET CONSTRAINTS switches the children
 * guard's companions with their keys; COPY, CALL and DO run as a level of
 * guard_unique's stack; and, except for transaction control, incidents of
 * earlier statements are written.
 */
static void
run_utility(PlannedStmt *pstmt, const char *queryString,
			bool readOnlyTree, ProcessUtilityContext context,
			ParamListInfo params, QueryEnvironment *queryEnv,
			DestReceiver *dest, QueryCompletion *qc)
{
	int			depth = ig_unique_enter(NULL);

	PG_TRY();
	{
		if (!IsA(pstmt->utilityStmt, TransactionStmt))
			ig_incident_statement_start();
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		ig_unique_leave(depth);
	}
	PG_END_TRY();
}

static void
ig_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc)
{
	PlannedStmt *stmt = ig_children_set_constraints(pstmt);

	/* a statement of our own making may be scribbled on */
	run_utility(stmt, queryString, readOnlyTree && stmt == pstmt, context,
				params, queryEnv, dest, qc);
}

/* Errors sent to clients: capture (preloading only). */
static void
ig_emit_log(ErrorData *edata)
{
	ig_capture_error(edata);
	if (prev_emit_log)
		prev_emit_log(edata);
}

static void
ig_xact_callback(XactEvent event, void *arg)
{
	ig_unique_xact_event(event);
	ig_incident_xact_event(event);
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		ig_registry_abort();
	ig_worker_xact_event(event);
}

static void
ig_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	ig_unique_subxact_event(event, mySubid);
	if (event == SUBXACT_EVENT_ABORT_SUB)
		ig_registry_abort();
}

/*
 * A relation changed: guards parsed against it parse again, and what was
 * read of Citus's catalog is read again.
 */
static void
ig_relcache_callback(Datum arg, Oid relid)
{
	ig_registry_relation_changed(relid);
	ig_citus_meta_forget();
}

/* A function changed: the guard functions and the rewrite's may be new. */
static void
ig_proc_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	ig_registry_functions_changed();
	ig_rewrite_functions_changed();
}

void
_PG_init(void)
{
	bool		preloading = process_shared_preload_libraries_in_progress;

	ig_preloaded = preloading;
	define_settings();

	ig_incident_init();
	ig_registry_add_kind(&ig_counter_kind);
	ig_registry_add_kind(&ig_range_kind);
	ig_registry_add_kind(&ig_children_kind);
	ig_registry_add_kind(&ig_unique_kind);

	if (preloading)
	{
		prev_shmem_request = shmem_request_hook;
		shmem_request_hook = ig_shmem_request;
		prev_shmem_startup = shmem_startup_hook;
		shmem_startup_hook = ig_shmem_startup;
	}
	prev_planner = planner_hook;
	planner_hook = ig_planner;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = ig_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = ig_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = ig_ExecutorFinish;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = ig_ProcessUtility;
	if (preloading)
	{
		prev_emit_log = emit_log_hook;
		emit_log_hook = ig_emit_log;
		ig_capture_hooked();
	}

	/* possibly in the postmaster: no catalog caches yet */
	CacheRegisterRelcacheCallback(ig_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, ig_proc_callback, (Datum) 0);
	RegisterXactCallback(ig_xact_callback, NULL);
	RegisterSubXactCallback(ig_subxact_callback, NULL);

	if (preloading)
		ig_worker_register_launcher();
}

/*
 * integrity_guard._preloaded() returns bool: whether this backend got the
 * library from shared_preload_libraries.
 */
PG_FUNCTION_INFO_V1(ig_preloaded_fn);

Datum
ig_preloaded_fn(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ig_preloaded);
}
