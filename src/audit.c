/*-------------------------------------------------------------------------
 *
 * audit.c
 *		The one audit API every guard reports through.
 *
 * Guards call ig_audit_record() per absorbed failure.  Events are
 * aggregated in backend memory by (event type, relation, role, target,
 * detail) for one top-level statement, and written as one incident row per
 * key carrying the number of occurrences.  A statement that saturates
 * 200,000 rows therefore writes one row, not 200,000.
 *
 * The top-level statement is identified by its start timestamp, which the
 * statements it runs (functions, triggers, SPI) share.  Pending events are
 * written when a later statement starts (ExecutorStart, ProcessUtility), at
 * PRE_COMMIT, or by integrity_guard.flush().  Unlike counting executor
 * depth, this is right even when the library is loaded by the first guard
 * trigger in the middle of a statement whose start no hook saw.
 *
 * With the library preloaded (and integrity_guard.durable_audit on), the
 * aggregated incidents go to the shared queue of pipeline.c instead, also
 * when the transaction aborts: the attempt happened.  Only the flush jobs
 * of pipeline.c write them into the table; readers never write, they read
 * the table plus what is still queued (integrity_guard._pending()).
 *
 * Otherwise this is the transactional path: incidents are inserted into
 * integrity_guard.audit_log in the current transaction and share its fate.
 * Events pending when a savepoint rolls back are kept and written with the
 * surrounding transaction; a top-level abort discards them.
 *
 * Rows are written as the extension's owner: the guarded table's writers
 * need no privilege on the audit table, and PUBLIC gets none.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "access/xlog.h"
#include "pgstat.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_integrity_guard.h"

typedef struct IgPendingKey
{
	IgEventType type;
	Oid			relid;
	Oid			roleid;
	const char *target;			/* copied into pending_cxt on insert */
	const char *detail;			/* JSON text or NULL, likewise */
} IgPendingKey;

typedef struct IgPending
{
	IgPendingKey key;
	char	   *schema_name;
	char	   *table_name;
	int64		occurrences;
	TimestampTz first_seen;
	TimestampTz last_seen;
} IgPending;

static MemoryContext pending_cxt = NULL;
static HTAB *pending = NULL;
static TimestampTz pending_statement;	/* statement start of the events */
static bool flushing = false;

/*
 * The entry of the previous event: a statement usually records the same
 * incident row after row, and comparing with it is cheaper than hashing.
 */
static IgPending *last_entry = NULL;

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

#define IG_AUDIT_NPARAMS 12

/* Before 1.2: no audit_keys, no key_columns. */
static const char *const ig_audit_insert_1_1 =
"INSERT INTO integrity_guard.audit_log (event_type, schema_name, table_name,"
" relid, target, occurrences, first_seen, last_seen, role_name,"
" database_name, application_name, detail)"
" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::pg_catalog.jsonb)";

/*
 * Key values ("key", and the other keys aggregated in "samples") and the
 * server's DETAIL ("detail", which shows row values) go to audit_keys, readable under the rule of the server's own
 * error DETAIL; "key_columns" becomes audit_log.key_columns.
 */
static const char *const ig_audit_insert =
"WITH d AS (SELECT $12::pg_catalog.jsonb AS j),"
" ins AS (INSERT INTO integrity_guard.audit_log (event_type, schema_name,"
" table_name, relid, target, occurrences, first_seen, last_seen, role_name,"
" database_name, application_name, detail, key_columns)"
" SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
" d.j OPERATOR(pg_catalog.-) '{key,detail,samples,key_columns}'::pg_catalog.text[],"
" CASE WHEN NOT d.j OPERATOR(pg_catalog.?) 'samples' THEN"
" (SELECT pg_catalog.array_agg(x::pg_catalog.int2)"
" FROM pg_catalog.jsonb_array_elements_text(d.j OPERATOR(pg_catalog.->) 'key_columns') x) END"
" FROM d RETURNING id)"
" INSERT INTO integrity_guard.audit_keys (id, key_values)"
" SELECT ins.id, (SELECT pg_catalog.jsonb_object_agg(e.key, e.value)"
" FROM pg_catalog.jsonb_each(d.j) e WHERE e.key IN ('key', 'detail', 'samples'))"
" FROM ins, d WHERE d.j OPERATOR(pg_catalog.?|) '{key,detail,samples}'::pg_catalog.text[]";

const char *
ig_event_type_name(IgEventType type)
{
	switch (type)
	{
		case IG_EVENT_COUNTER_SATURATED:
			return "counter_saturated";
		case IG_EVENT_RANGE_CLAMPED:
			return "range_clamped";
		case IG_EVENT_CHILDREN_NULLIFIED:
			return "children_nullified";
		case IG_EVENT_CHILDREN_DELETED:
			return "children_deleted";
		case IG_EVENT_DUPLICATE_KEY:
			return "duplicate_key";
		case IG_EVENT_ORPHANS_FIXED:
			return "orphans_fixed";
		case IG_EVENT_DUPLICATES_MERGED:
			return "duplicates_merged";
	}
	return "unknown";
}

static uint32
pending_hash(const void *key, Size keysize)
{
	const IgPendingKey *k = key;
	uint32		h;

	h = hash_bytes_uint32((uint32) k->type);
	h = hash_combine(h, hash_bytes_uint32(k->relid));
	h = hash_combine(h, hash_bytes_uint32(k->roleid));
	h = hash_combine(h, hash_bytes((const unsigned char *) k->target,
								   strlen(k->target)));
	if (k->detail)
		h = hash_combine(h, hash_bytes((const unsigned char *) k->detail,
									   strlen(k->detail)));
	return h;
}

static int
pending_match(const void *key1, const void *key2, Size keysize)
{
	const IgPendingKey *a = key1;
	const IgPendingKey *b = key2;

	if (a->type != b->type || a->relid != b->relid || a->roleid != b->roleid)
		return 1;
	if (strcmp(a->target, b->target) != 0)
		return 1;
	if ((a->detail == NULL) != (b->detail == NULL))
		return 1;
	if (a->detail && strcmp(a->detail, b->detail) != 0)
		return 1;
	return 0;
}

/* Keys arrive pointing at the caller's strings: keep our own copies. */
static void *
pending_keycopy(void *dest, const void *src, Size keysize)
{
	IgPendingKey *d = dest;
	const IgPendingKey *s = src;

	d->type = s->type;
	d->relid = s->relid;
	d->roleid = s->roleid;
	d->target = MemoryContextStrdup(pending_cxt, s->target);
	d->detail = s->detail ? MemoryContextStrdup(pending_cxt, s->detail) : NULL;
	return dest;
}

static void
pending_discard(void)
{
	pending = NULL;
	last_entry = NULL;
	if (pending_cxt)
		MemoryContextReset(pending_cxt);
}

/*
 * Record 'occurrences' events of one kind.  Per-row cost: one hash probe
 * and a clock read; memory is allocated only for a new key.
 */
void
ig_audit_record(IgEventType type, Relation rel, const char *target,
				const char *detail_json, int64 occurrences)
{
	ig_audit_record_relid(type, RelationGetRelid(rel), target, detail_json,
						  occurrences);
}

/* The same for callers without an open relation (expressions). */
void
ig_audit_record_relid(IgEventType type, Oid relid, const char *target,
					  const char *detail_json, int64 occurrences)
{
	IgPendingKey key;
	IgPending  *entry;
	bool		found;
	TimestampTz now;

	if (occurrences <= 0 || flushing)
		return;

	if (last_entry != NULL &&
		last_entry->key.type == type &&
		last_entry->key.relid == relid &&
		last_entry->key.roleid == GetUserId() &&
		strcmp(last_entry->key.target, target ? target : "") == 0 &&
		(detail_json == NULL ? last_entry->key.detail == NULL :
		 (last_entry->key.detail != NULL &&
		  strcmp(last_entry->key.detail, detail_json) == 0)))
	{
		last_entry->occurrences += occurrences;
		last_entry->last_seen = GetCurrentTimestamp();
		return;
	}

	if (pending == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(IgPendingKey);
		ctl.entrysize = sizeof(IgPending);
		ctl.hash = pending_hash;
		ctl.match = pending_match;
		ctl.keycopy = pending_keycopy;
		ctl.hcxt = pending_cxt;
		pending = hash_create("integrity_guard pending events", 16, &ctl,
							  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
							  HASH_KEYCOPY | HASH_CONTEXT);
		pending_statement = GetCurrentStatementStartTimestamp();
	}

	key.type = type;
	key.relid = relid;
	key.roleid = GetUserId();
	key.target = target ? target : "";
	key.detail = detail_json;

	entry = hash_search(pending, &key, HASH_ENTER, &found);
	now = GetCurrentTimestamp();
	if (!found)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(pending_cxt);

		entry->schema_name = get_namespace_name(get_rel_namespace(relid));
		entry->table_name = get_rel_name(relid);
		MemoryContextSwitchTo(oldcxt);
		entry->occurrences = 0;
		entry->first_seen = now;
	}
	entry->occurrences += occurrences;
	entry->last_seen = now;
	last_entry = entry;
}

/* The extension's owner, or false when it is not installed here. */
bool
ig_extension_owner(Oid *owner)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	bool		found = false;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(IG_EXTENSION_NAME));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		*owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* One audit_log row to write; NULL strings are SQL NULLs. */
typedef struct IgIncident
{
	const char *event_type;
	const char *schema_name;
	const char *table_name;
	Oid			relid;			/* InvalidOid: NULL */
	const char *target;
	int64		occurrences;
	TimestampTz first_seen;
	TimestampTz last_seen;
	Oid			roleid;
	const char *application_name;
	const char *detail;
} IgIncident;

static Datum
ig_text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/*
 * Insert incidents into integrity_guard.audit_log as the extension's owner
 * and return how many rows were written.  Needs a transaction in which the
 * extension exists.
 */
static int64
ig_insert_incidents(Oid owner, IgIncident *rows, int nrows)
{
	Oid			save_userid;
	int			save_sec_context;
	Oid			argtypes[IG_AUDIT_NPARAMS];
	SPIPlanPtr	plan;
	char	   *dbname;
	volatile bool pushed_snapshot = false;
	int			i;
	int			r;

	if (nrows == 0)
		return 0;
	dbname = get_database_name(MyDatabaseId);
	for (i = 0; i < IG_AUDIT_NPARAMS; i++)
		argtypes[i] = TEXTOID;
	argtypes[3] = OIDOID;
	argtypes[5] = INT8OID;
	argtypes[6] = TIMESTAMPTZOID;
	argtypes[7] = TIMESTAMPTZOID;

	flushing = true;
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	PG_TRY();
	{
		/*
		 * A SELECT's ExecutorFinish runs at portal cleanup and PRE_COMMIT
		 * runs after the portals: neither has an active snapshot.
		 */
		if (!ActiveSnapshotSet())
		{
			PushActiveSnapshot(GetTransactionSnapshot());
			pushed_snapshot = true;
		}
		SetUserIdAndSecContext(owner, save_sec_context |
							   SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		/* the library serves every version of the extension's objects */
		plan = SPI_prepare(OidIsValid(get_relname_relid("audit_keys",
														 get_namespace_oid(IG_SCHEMA_NAME, true))) ?
						   ig_audit_insert : ig_audit_insert_1_1,
						   IG_AUDIT_NPARAMS, argtypes);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));

		for (r = 0; r < nrows; r++)
		{
			IgIncident *row = &rows[r];
			Datum		values[IG_AUDIT_NPARAMS];
			bool		isnull[IG_AUDIT_NPARAMS];
			char		nulls[IG_AUDIT_NPARAMS];

			values[0] = ig_text_or_null(row->event_type, &isnull[0]);
			values[1] = ig_text_or_null(row->schema_name, &isnull[1]);
			values[2] = ig_text_or_null(row->table_name, &isnull[2]);
			values[3] = ObjectIdGetDatum(row->relid);
			isnull[3] = !OidIsValid(row->relid);
			values[4] = ig_text_or_null(row->target, &isnull[4]);
			values[5] = Int64GetDatum(row->occurrences);
			isnull[5] = false;
			values[6] = TimestampTzGetDatum(row->first_seen);
			isnull[6] = false;
			values[7] = TimestampTzGetDatum(row->last_seen);
			isnull[7] = false;
			values[8] = ig_text_or_null(GetUserNameFromId(row->roleid, true),
										&isnull[8]);
			values[9] = ig_text_or_null(dbname, &isnull[9]);
			values[10] = ig_text_or_null(row->application_name, &isnull[10]);
			values[11] = ig_text_or_null(row->detail, &isnull[11]);
			for (i = 0; i < IG_AUDIT_NPARAMS; i++)
				nulls[i] = isnull[i] ? 'n' : ' ';

			if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not write to integrity_guard.audit_log");
		}
		SPI_finish();
		if (pushed_snapshot)
			PopActiveSnapshot();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
		flushing = false;
	}
	PG_END_TRY();

	return nrows;
}

static inline bool
ig_queue_mode(void)
{
	return ig_durable_audit && ig_pipeline_available();
}

/* Hand every pending incident to the shared queue. */
static void
ig_audit_push_pending(void)
{
	HASH_SEQ_STATUS status;
	IgPending  *entry;
	IgEventKey	key;
	const char *appname = application_name ? application_name : "";

	if (pending == NULL)
		return;
	hash_seq_init(&status, pending);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		memset(&key, 0, sizeof(key));
		key.dbid = MyDatabaseId;
		key.relid = entry->key.relid;
		key.roleid = entry->key.roleid;
		ig_copy_bounded(key.event_type, IG_TYPE_LEN,
						ig_event_type_name(entry->key.type));
		ig_copy_bounded(key.schema_name, NAMEDATALEN, entry->schema_name);
		ig_copy_bounded(key.table_name, NAMEDATALEN, entry->table_name);
		ig_copy_bounded(key.target, IG_TARGET_LEN, entry->key.target);
		ig_copy_bounded(key.application_name, NAMEDATALEN, appname);
		ig_pipeline_push(&key, entry->key.detail, entry->occurrences,
						 entry->first_seen, entry->last_seen);
	}
	pending_discard();
}

/* Queue this backend's pending incidents now (stats readers). */
void
ig_audit_push_if_durable(void)
{
	if (ig_queue_mode() && !flushing)
		ig_audit_push_pending();
}

/*
 * Write every pending incident: into the shared queue when the durable
 * pipeline runs, else into integrity_guard.audit_log in this transaction.
 * Returns how many rows were written to the table.
 */
static int64
ig_audit_flush(void)
{
	HASH_SEQ_STATUS status;
	IgPending  *entry;
	IgIncident *rows;
	Oid			owner;
	int			n = 0;
	int64		written;

	if (pending == NULL || flushing)
		return 0;
	if (ig_queue_mode())
	{
		ig_audit_push_pending();
		return 0;
	}
	if (!IsTransactionState())
		return 0;
	if (hash_get_num_entries(pending) == 0 || !ig_extension_owner(&owner))
	{
		pending_discard();
		return 0;
	}

	rows = palloc(sizeof(IgIncident) * hash_get_num_entries(pending));
	hash_seq_init(&status, pending);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		IgIncident *row = &rows[n++];

		row->event_type = ig_event_type_name(entry->key.type);
		row->schema_name = entry->schema_name;
		row->table_name = entry->table_name;
		row->relid = entry->key.relid;
		row->target = entry->key.target;
		row->occurrences = entry->occurrences;
		row->first_seen = entry->first_seen;
		row->last_seen = entry->last_seen;
		row->roleid = entry->key.roleid;
		row->application_name = application_name && application_name[0] ?
			application_name : NULL;
		row->detail = entry->key.detail;
	}
	/* on error, the abort discards what is pending */
	written = ig_insert_incidents(owner, rows, n);
	pending_discard();
	pfree(rows);
	return written;
}

static inline const char *
empty_to_null(const char *s)
{
	return s[0] ? s : NULL;
}

/*
 * The table a captured error named, bound when it is written or shown
 * pending (the error hook cannot read the catalogs).  A temporary table is never bound: its
 * schema name may belong to another session by now.
 */
Oid
ig_audit_bind_by_name(const char *schema_name, const char *table_name)
{
	Oid			nsp;

	if (schema_name[0] == '\0' || table_name[0] == '\0' ||
		strncmp(schema_name, "pg_temp_", 8) == 0 ||
		strncmp(schema_name, "pg_toast_temp_", 14) == 0)
		return InvalidOid;
	nsp = get_namespace_oid(schema_name, true);
	return OidIsValid(nsp) ? get_relname_relid(table_name, nsp) : InvalidOid;
}

/* Delete rows older than integrity_guard.retention, as the owner. */
static void
ig_apply_retention(Oid owner)
{
	Oid			save_userid;
	int			save_sec_context;
	Oid			argtypes[1] = {TIMESTAMPTZOID};
	Datum		values[1];

	if (ig_retention <= 0)
		return;
	values[0] = TimestampTzGetDatum(GetCurrentTimestamp() -
									(TimestampTz) ig_retention * USECS_PER_SEC);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("DELETE FROM integrity_guard.audit_log WHERE last_seen < $1",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not apply the retention to integrity_guard.audit_log");
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/* The job's transaction, for the exit callback; invalid once settled. */
static Oid job_dbid = InvalidOid;
static TransactionId job_xid = InvalidTransactionId;

/* A job killed with incidents in hand: unmark them for the next job. */
static void
ig_job_exit(int code, Datum arg)
{
	if (TransactionIdIsValid(job_xid))
		ig_queue_settle(job_dbid, job_xid, false);
	job_xid = InvalidTransactionId;
}

/*
 * The body of a flush job (pipeline.c), connected to database dbid: write
 * the incidents queued for it in one transaction.  A failure leaves them
 * queued, is counted and retried later by the launcher.
 */
void
ig_audit_drain_job(Oid dbid)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	Oid			owner;
	volatile int64 written = 0;
	volatile bool installed = false;

	job_dbid = dbid;
	before_shmem_exit(ig_job_exit, (Datum) 0);
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "writing queued incidents");
		installed = ig_extension_owner(&owner);
		if (installed)
		{
			IgJobIncident *jobs;
			IgIncident *rows;
			int			n;
			int			i;

			/*
			 * Lock the table before taking anything: a job waiting for a
			 * lock must not hold incidents that a full queue could give to
			 * another database (lock_timeout makes this a counted failure).
			 */
			LockRelationOid(get_relname_relid("audit_log",
											  get_namespace_oid(IG_SCHEMA_NAME, false)),
							RowExclusiveLock);
			ig_queue_settle_stale(dbid);
			job_xid = GetTopTransactionId();
			n = ig_queue_take(dbid, job_xid, &jobs);
			rows = palloc(sizeof(IgIncident) * Max(n, 1));
			for (i = 0; i < n; i++)
			{
				IgEventKey *k = &jobs[i].key;

				rows[i].event_type = k->event_type;
				rows[i].schema_name = empty_to_null(k->schema_name);
				rows[i].table_name = empty_to_null(k->table_name);
				rows[i].relid = OidIsValid(k->relid) ? k->relid :
					ig_audit_bind_by_name(k->schema_name, k->table_name);
				/* a guard's target is never NULL; a captured error may have none */
				rows[i].target = k->relid != InvalidOid ? k->target :
					empty_to_null(k->target);
				rows[i].occurrences = jobs[i].occurrences;
				rows[i].first_seen = jobs[i].first_seen;
				rows[i].last_seen = jobs[i].last_seen;
				rows[i].roleid = k->roleid;
				rows[i].application_name = empty_to_null(k->application_name);
				rows[i].detail = jobs[i].detail;
			}
			written = ig_insert_incidents(owner, rows, n);
			ig_apply_retention(owner);
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
		/* written: the marks settle once no snapshot can miss the rows */
		job_xid = InvalidTransactionId;
		if (installed)
		{
			StartTransactionCommand();
			ig_queue_settle_stale(dbid);
			CommitTransactionCommand();
		}
		else
			ig_pipeline_discard(dbid);
		pgstat_report_activity(STATE_IDLE, NULL);
		ig_pipeline_report_flush(dbid, installed, written);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ig_queue_settle(dbid, job_xid, false);
		job_xid = InvalidTransactionId;
		ereport(LOG,
				(errmsg("pg_integrity_guard could not write queued incidents: %s",
						edata->message),
				 errdetail("The incidents stay queued and the job is retried later.")));
		ig_pipeline_report_failure(dbid, edata->message);
	}
	PG_END_TRY();
}

/* Write what earlier top-level statements left pending. */
static inline void
ig_flush_earlier_statements(void)
{
	if (pending != NULL && !flushing &&
		pending_statement != GetCurrentStatementStartTimestamp())
		ig_audit_flush();
}

static void
ig_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (!(eflags & EXEC_FLAG_EXPLAIN_ONLY))
		ig_flush_earlier_statements();
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/* COPY FROM fires row triggers without the executor; so may CALL and DO. */
static void
ig_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc)
{
	/* COMMIT flushes at PRE_COMMIT; ROLLBACK would discard the work. */
	if (!IsA(pstmt->utilityStmt, TransactionStmt))
		ig_flush_earlier_statements();
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

static void
ig_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			ig_audit_flush();
			break;
		case XACT_EVENT_PRE_PREPARE:
			ig_audit_flush();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			flushing = false;
			/* an attempt happened even if its transaction failed */
			if (ig_queue_mode())
				ig_audit_push_pending();
			pending_discard();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			pending_discard();
			flushing = false;
			break;
		default:
			break;
	}
}

void
ig_audit_init(void)
{
	pending_cxt = AllocSetContextCreate(TopMemoryContext,
										"integrity_guard pending events",
										ALLOCSET_DEFAULT_SIZES);

	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = ig_ExecutorStart;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = ig_ProcessUtility;
	RegisterXactCallback(ig_xact_callback, NULL);
}

/*
 * integrity_guard.flush() returns bigint
 *
 * Without the durable pipeline, write this session's pending incidents in
 * its transaction now (else the next statement or the commit does).  With
 * it, queue them and ask the workers to write this database's queue now,
 * waiting for them outside a transaction block; the rows the workers wrote
 * meanwhile.  The readers need neither: they read the queue too.
 */
PG_FUNCTION_INFO_V1(ig_flush);

Datum
ig_flush(PG_FUNCTION_ARGS)
{
	int64		written = ig_audit_flush();

	if (ig_queue_mode())
		written = ig_pipeline_flush_wait();
	PG_RETURN_INT64(written);
}

/*
 * integrity_guard._writing() returns bool: whether this backend's audit
 * writer is inserting, so that the audit_log insert trigger knows that the
 * row's relid is one of this database (else it rebinds it by name).
 */
PG_FUNCTION_INFO_V1(ig_audit_writing);

Datum
ig_audit_writing(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(flushing);
}

/*
 * integrity_guard._audit_follow_rename(): the ddl_command_end event trigger
 * for ALTER TABLE and ALTER SCHEMA.  Only a rename or SET SCHEMA changes the
 * names stored with incidents; every other ALTER returns here, touching no
 * table, so that an ALTER TABLE takes no lock on the audit tables.  Runs as
 * the extension owner (SECURITY DEFINER): the role that renames a table may
 * not write the audit.
 */
PG_FUNCTION_INFO_V1(ig_audit_follow_rename);

Datum
ig_audit_follow_rename(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" was not called by the event trigger manager",
						"integrity_guard._audit_follow_rename")));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (trigdata->parsetree == NULL ||
		!(IsA(trigdata->parsetree, RenameStmt) ||
		  IsA(trigdata->parsetree, AlterObjectSchemaStmt)))
		PG_RETURN_VOID();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT integrity_guard._audit_follow_names()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not keep the audit's names in step with the renamed relation");
	SPI_finish();
	PG_RETURN_VOID();
}
