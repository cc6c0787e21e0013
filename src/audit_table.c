/*-------------------------------------------------------------------------
 *
 * audit_table.c
 *		Writing incidents into integrity_guard.audit_log (and audit_keys).
 *
 * Rows are written as the extension's owner: the guarded table's writers
 * need no privilege on the audit table, and PUBLIC gets none.  The INSERT
 * is prepared once per backend and kept (SPI_keepplan); the plan cache
 * re-plans it when the audit tables change.  The owner is looked up once
 * per audit table: a new table (the extension re-created) or a new owner of
 * it (REASSIGN OWNED) makes the next write look again.
 *
 * Who calls: the flush jobs (worker.c), and the incident API's
 * transactional path (incident.c) when the library is not preloaded.
 *
 * Readers: the visibility rule's per-relation decisions
 * (_relation_readable, _keys_readable), cached per query.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/uuid.h"

#include "audit_table.h"
#include "compat.h"
#include "queue.h"
#include "settings.h"
#include "util.h"

#define IG_AUDIT_NPARAMS 12

/* Before 1.2: no audit_keys, no key_columns. */
static const char *const ig_audit_insert_1_1 =
"INSERT INTO integrity_guard.audit_log (event_type, schema_name, table_name,"
" relid, target, occurrences, first_seen, last_seen, role_name,"
" database_name, application_name, detail)"
" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::pg_catalog.jsonb)";

/*
 * Key values ("key", and the other keys aggregated in "samples") and the
 * server's DETAIL ("detail", which shows row values) go to audit_keys,
 * readable under the rule of the server's own error DETAIL; "key_columns"
 * becomes audit_log.key_columns.  From 1.6 the key set also carries copies
 * of the audit row's last_seen, relid, rel_incarnation and key_columns,
 * which order it and decide who sees it.
 */
#define IG_AUDIT_INSERT_HEAD \
"WITH d AS (SELECT $12::pg_catalog.jsonb AS j)," \
" ins AS (INSERT INTO integrity_guard.audit_log (event_type, schema_name," \
" table_name, relid, target, occurrences, first_seen, last_seen, role_name," \
" database_name, application_name, detail, key_columns)" \
" SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11," \
" d.j OPERATOR(pg_catalog.-) '{key,detail,samples,key_columns}'::pg_catalog.text[]," \
" CASE WHEN NOT d.j OPERATOR(pg_catalog.?) 'samples' THEN" \
" (SELECT pg_catalog.array_agg(x::pg_catalog.int2)" \
" FROM pg_catalog.jsonb_array_elements_text(d.j OPERATOR(pg_catalog.->) 'key_columns') x) END" \
" FROM d RETURNING id"
#define IG_AUDIT_KEYS_VALUES \
" (SELECT pg_catalog.jsonb_object_agg(e.key, e.value)" \
" FROM pg_catalog.jsonb_each(d.j) e WHERE e.key IN ('key', 'detail', 'samples'))"
#define IG_AUDIT_INSERT_TAIL \
" FROM ins, d WHERE d.j OPERATOR(pg_catalog.?|) '{key,detail,samples}'::pg_catalog.text[]"

/* 1.2 to 1.5: the key set alone */
static const char *const ig_audit_insert_1_2 =
IG_AUDIT_INSERT_HEAD ")"
" INSERT INTO integrity_guard.audit_keys (id, key_values)"
" SELECT ins.id," IG_AUDIT_KEYS_VALUES
IG_AUDIT_INSERT_TAIL;

/*
 * From 1.6: with its copies, given here from the row just inserted rather
 * than left to audit_keys' trigger (which finds them too, for a library
 * older than the catalog).
 */
static const char *const ig_audit_insert_sql =
IG_AUDIT_INSERT_HEAD ", last_seen, relid, rel_incarnation, key_columns)"
" INSERT INTO integrity_guard.audit_keys (id, key_values, last_seen, relid,"
" rel_incarnation, key_columns)"
" SELECT ins.id," IG_AUDIT_KEYS_VALUES ", ins.last_seen, ins.relid,"
" ins.rel_incarnation, ins.key_columns"
IG_AUDIT_INSERT_TAIL;

/* The kept INSERT, and which of the three texts it is. */
static SPIPlanPtr insert_plan = NULL;
static const char *insert_plan_text = NULL;

/* The owner found for the audit table with this OID and owner. */
static Oid	owner_relid = InvalidOid;
static Oid	owner_relowner = InvalidOid;
static Oid	owner_extowner = InvalidOid;

/* True while this backend inserts into the audit table. */
static bool writing = false;

static Oid
audit_relid(const char *name)
{
	Oid			nsp = get_namespace_oid(IG_SCHEMA_NAME, true);

	return OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
}

/*
 * The extension's owner, or false when the extension is not installed in
 * this database.  Syscache probes only, unless the audit table is new.
 */
bool
ig_audit_owner(Oid *owner)
{
	Oid			relid = audit_relid("audit_log");
	HeapTuple	tuple;
	Oid			relowner;

	if (!OidIsValid(relid))
		return false;
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		return false;
	relowner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	if (relid != owner_relid || relowner != owner_relowner)
	{
		if (!ig_extension_owner(&owner_extowner))
			return false;
		owner_relid = relid;
		owner_relowner = relowner;
	}
	*owner = owner_extowner;
	return true;
}

/*
 * Lock what a flush job writes, before it takes incidents (lock_timeout
 * makes a wait a counted failure): the audit tables and the id sequence.
 * The job never waits for one of them while it holds another.  DROP
 * EXTENSION locks them one by one, in its own order; a job that held the
 * table while it waited for the sequence deadlocked with it.  So: wait for
 * one, try the others; on a refusal let go of all and wait for that one.
 */
void
ig_audit_lock(void)
{
	static const char *const names[] = {"audit_log", "audit_log_id_seq",
	"audit_keys", "database_incarnation"};
	Oid			rels[lengthof(names)];
	int			n = 0;
	int			wait_on = 0;
	int			i;

	for (i = 0; i < (int) lengthof(names); i++)
		if (OidIsValid(rels[n] = audit_relid(names[i])))
			n++;
	if (n == 0)
		return;
	for (;;)
	{
		int			refused = -1;

		LockRelationOid(rels[wait_on], RowExclusiveLock);
		for (i = 0; i < n && refused < 0; i++)
			if (i != wait_on && !ConditionalLockRelationOid(rels[i], RowExclusiveLock))
				refused = i;
		if (refused < 0)
			return;
		for (i = 0; i < refused; i++)
			if (i != wait_on)
				UnlockRelationOid(rels[i], RowExclusiveLock);
		UnlockRelationOid(rels[wait_on], RowExclusiveLock);
		wait_on = refused;
		CHECK_FOR_INTERRUPTS();
	}
}

bool
ig_audit_writing_now(void)
{
	return writing;
}

/* The kept INSERT for the installed version of the audit tables. */
static SPIPlanPtr
insert_statement(void)
{
	/* the library serves every version of the extension's objects */
	Oid			keys = audit_relid("audit_keys");
	const char *text;
	Oid			argtypes[IG_AUDIT_NPARAMS];
	SPIPlanPtr	plan;
	int			i;

	if (!OidIsValid(keys))
		text = ig_audit_insert_1_1;
	else if (get_attnum(keys, "last_seen") == InvalidAttrNumber)
		text = ig_audit_insert_1_2;
	else
		text = ig_audit_insert_sql;
	if (insert_plan != NULL && insert_plan_text == text)
		return insert_plan;
	for (i = 0; i < IG_AUDIT_NPARAMS; i++)
		argtypes[i] = TEXTOID;
	argtypes[3] = OIDOID;
	argtypes[5] = INT8OID;
	argtypes[6] = TIMESTAMPTZOID;
	argtypes[7] = TIMESTAMPTZOID;
	plan = SPI_prepare(text, IG_AUDIT_NPARAMS, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	if (insert_plan != NULL)
		SPI_freeplan(insert_plan);
	insert_plan = plan;
	insert_plan_text = text;
	return plan;
}

/* Insert rows[from..to) with the kept plan. */
static void
insert_rows(SPIPlanPtr plan, IgIncident *rows, int from, int to,
			const char *dbname)
{
	int			r;
	int			i;

	for (r = from; r < to; r++)
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
}

/*
 * An error that says nothing about the row itself: a lock or statement
 * timeout, a deadlock or serialization failure, a cancel or shutdown, lack
 * of resources.  The whole job fails and is retried; nothing is set aside.
 */
static bool
transient_error(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_TRANSACTION_ROLLBACK:
		case ERRCODE_INSUFFICIENT_RESOURCES:
		case ERRCODE_OPERATOR_INTERVENTION:
		case ERRCODE_SYSTEM_ERROR:
		case ERRCODE_PROGRAM_LIMIT_EXCEEDED:
		case ERRCODE_INTERNAL_ERROR:
		case ERRCODE_CONNECTION_EXCEPTION:
			return true;
	}
	return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlerrcode == ERRCODE_OBJECT_IN_USE ||
		sqlerrcode == ERRCODE_UNDEFINED_TABLE ||
		sqlerrcode == ERRCODE_UNDEFINED_FUNCTION;
}

/*
 * Insert rows[from..to) in a subtransaction.  False, with the error's
 * message in *message, when a row itself was refused; a transient error is
 * raised again for the whole job.
 */
static bool
try_rows(SPIPlanPtr plan, IgIncident *rows, int from, int to,
		 const char *dbname, char **message)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		insert_rows(plan, rows, from, to, dbname);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (transient_error(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		*message = edata->message;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * Insert incidents into integrity_guard.audit_log as the extension's owner
 * and return how many rows were written.  Needs a transaction in which the
 * extension exists.  With aside (a flush job), a row the table refuses is
 * set aside and counted instead of failing the others: all rows go in one
 * subtransaction, and only if that fails, each in its own.  Without it (the
 * writer's own transaction), any error is raised.
 */
int64
ig_audit_insert(Oid owner, IgIncident *rows, int nrows, IgSetAside *aside)
{
	Oid			save_userid;
	int			save_sec_context;
	SPIPlanPtr	plan;
	char	   *dbname;
	volatile bool pushed_snapshot = false;
	volatile int64 written = 0;

	if (nrows == 0)
		return 0;
	dbname = get_database_name(MyDatabaseId);

	writing = true;
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	PG_TRY();
	{
		char	   *message = NULL;
		int			r;

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
		plan = insert_statement();

		if (aside == NULL)
		{
			insert_rows(plan, rows, 0, nrows, dbname);
			written = nrows;
		}
		else if (try_rows(plan, rows, 0, nrows, dbname, &message))
			written = nrows;
		else
			for (r = 0; r < nrows; r++)
			{
				if (try_rows(plan, rows, r, r + 1, dbname, &message))
					written++;
				else
				{
					aside->count++;
					strlcpy(aside->error, message, IG_ASIDE_ERROR_LEN);
					ereport(LOG,
							(errmsg("pg_integrity_guard set aside an incident the audit table refused: %s",
									message),
							 errdetail("Event \"%s\" on \"%s.%s\", %lld occurrence(s); the database's other incidents were written.",
									   rows[r].event_type,
									   rows[r].schema_name ? rows[r].schema_name : "",
									   rows[r].table_name ? rows[r].table_name : "",
									   (long long) rows[r].occurrences)));
				}
			}
		SPI_finish();
		if (pushed_snapshot)
			PopActiveSnapshot();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
		writing = false;
	}
	PG_END_TRY();

	return written;
}

/*
 * Delete rows older than integrity_guard.retention, as the owner, at most
 * IG_RETENTION_BATCH of them, oldest first: a job that finds a backlog (a
 * retention shortened, a database swept for the first time) deletes it in
 * short transactions of its own (worker.c) instead of one that holds row
 * locks and the job for minutes.  Returns the rows deleted.
 */
int64
ig_audit_apply_retention(Oid owner)
{
	Oid			save_userid;
	int			save_sec_context;
	Oid			argtypes[2] = {TIMESTAMPTZOID, INT4OID};
	Datum		values[2];
	int64		deleted;

	if (ig_retention <= 0)
		return 0;
	values[0] = TimestampTzGetDatum(GetCurrentTimestamp() -
									(TimestampTz) ig_retention * USECS_PER_SEC);
	values[1] = Int32GetDatum(IG_RETENTION_BATCH);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("DELETE FROM integrity_guard.audit_log"
							  " WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
							  "SELECT a.ctid FROM integrity_guard.audit_log a"
							  " WHERE a.last_seen OPERATOR(pg_catalog.<) $1"
							  " ORDER BY a.last_seen LIMIT $2))",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not apply the retention to integrity_guard.audit_log");
	deleted = (int64) SPI_processed;
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return deleted;
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
	PG_RETURN_BOOL(writing);
}

/*
 * integrity_guard._unbind_names(schema_name text, table_name text): the
 * sql_drop event trigger's call for each dropped relation (see
 * ig_queue_unbind_names).  Revoked from PUBLIC.
 */
PG_FUNCTION_INFO_V1(ig_unbind_names);

Datum
ig_unbind_names(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_VOID();
	ig_queue_unbind_names(MyDatabaseId, text_to_cstring(PG_GETARG_TEXT_PP(0)),
						  text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
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
	EventTriggerData *trigdata =
		ig_event_trigger_data(fcinfo, "integrity_guard._audit_follow_rename");

	if (trigdata->parsetree == NULL ||
		!(IsA(trigdata->parsetree, RenameStmt) ||
		  IsA(trigdata->parsetree, AlterObjectSchemaStmt)))
		PG_RETURN_VOID();

	/*
	 * Captured errors still known by the old name bind to nothing now
	 * (ig_queue_unbind_names); the schema a relation left is not known
	 * here when its name was unqualified, so any schema's.
	 */
	if (IsA(trigdata->parsetree, RenameStmt))
	{
		RenameStmt *stmt = (RenameStmt *) trigdata->parsetree;

		if (stmt->renameType == OBJECT_SCHEMA)
			ig_queue_unbind_names(MyDatabaseId, stmt->subname, NULL);
		else if (stmt->relation != NULL && stmt->renameType != OBJECT_COLUMN &&
				 stmt->renameType != OBJECT_TABCONSTRAINT &&
				 stmt->renameType != OBJECT_TRIGGER &&
				 stmt->renameType != OBJECT_POLICY &&
				 stmt->renameType != OBJECT_RULE)
			ig_queue_unbind_names(MyDatabaseId, NULL, stmt->relation->relname);
	}
	else
	{
		AlterObjectSchemaStmt *stmt = (AlterObjectSchemaStmt *) trigdata->parsetree;

		if (stmt->relation != NULL)
			ig_queue_unbind_names(MyDatabaseId, NULL, stmt->relation->relname);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT integrity_guard._audit_follow_names()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not keep the audit's names in step with the renamed relation");
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * The readers' visibility rule (the privileges section of the extension
 * script), decided once per relation, or per relation and key-column set,
 * per query: the audit tables' row-level policies call these for every row
 * a reader scans, so each keeps what it decided in its call site's fn_extra
 * (which lives as long as the query) for the role that asked.  Both take
 * any argument, NULL included, and never raise: a relation or column that
 * is gone is simply not readable.
 */
typedef struct IgReadableKey
{
	Oid			relid;
	int16		ncols;			/* -1: the relation, any column */
	int16		cols[INDEX_MAX_KEYS];
} IgReadableKey;

typedef struct IgReadableEntry
{
	IgReadableKey key;
	bool		readable;
} IgReadableEntry;

typedef struct IgReadableCache
{
	Oid			userid;
	HTAB	   *decided;
	/* _key_row_readable: where audit rows are, and this database's token */
	bool		audit_known;
	Oid			audit_relid;
	Oid			audit_index;	/* InvalidOid: no audit table */
	AttrNumber	att_relid;
	AttrNumber	att_incarnation;
	AttrNumber	att_key_columns;
	bool		token_valid;
	pg_uuid_t	token;
} IgReadableCache;

/* The call site's cache, made (and emptied for a new role) if needed. */
static IgReadableCache *
readable_cache(FunctionCallInfo fcinfo)
{
	IgReadableCache *cache = fcinfo->flinfo->fn_extra;
	Oid			userid = GetUserId();

	if (cache == NULL || cache->userid != userid)
	{
		HASHCTL		ctl;

		if (cache == NULL)
			cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt,
										   sizeof(IgReadableCache));
		else
			hash_destroy(cache->decided);
		ctl.keysize = sizeof(IgReadableKey);
		ctl.entrysize = sizeof(IgReadableEntry);
		ctl.hcxt = fcinfo->flinfo->fn_mcxt;
		cache->decided = hash_create("pg_integrity_guard readable relations",
									 16, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		cache->userid = userid;
		fcinfo->flinfo->fn_extra = cache;
	}
	return cache;
}

static IgReadableEntry *
readable_lookup(FunctionCallInfo fcinfo, IgReadableKey *key, bool *found)
{
	return hash_search(readable_cache(fcinfo)->decided, key, HASH_ENTER, found);
}

/* A column of the audit tables by name, of the expected type, or none. */
static AttrNumber
attnum_of(Relation rel, const char *name, Oid type)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && att->atttypid == type &&
			strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	return InvalidAttrNumber;
}

/*
 * Where _key_row_readable finds audit rows, and this database's incarnation
 * token, once per query (the query holds the audit table's lock).
 */
static void
audit_locate(IgReadableCache *cache)
{
	Oid			token_relid = audit_relid("database_incarnation");
	Relation	rel;

	cache->audit_known = true;
	cache->audit_relid = audit_relid("audit_log");
	cache->audit_index = InvalidOid;
	if (!OidIsValid(cache->audit_relid))
		return;
	rel = table_open(cache->audit_relid, AccessShareLock);
	cache->audit_index = ig_RelationGetPrimaryKeyIndex(rel);
	cache->att_relid = attnum_of(rel, "relid", OIDOID);
	cache->att_incarnation = attnum_of(rel, "rel_incarnation", UUIDOID);
	cache->att_key_columns = attnum_of(rel, "key_columns", INT2ARRAYOID);
	table_close(rel, NoLock);
	if (cache->att_relid == InvalidAttrNumber ||
		cache->att_incarnation == InvalidAttrNumber ||
		cache->att_key_columns == InvalidAttrNumber)
		cache->audit_index = InvalidOid;
	if (OidIsValid(token_relid))
	{
		Relation	trel = table_open(token_relid, AccessShareLock);
		AttrNumber	att = attnum_of(trel, "token", UUIDOID);
		Snapshot	snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() :
			GetTransactionSnapshot();
		TableScanDesc scan = table_beginscan(trel, snapshot, 0, NULL);
		TupleTableSlot *slot = table_slot_create(trel, NULL);

		if (att != InvalidAttrNumber &&
			table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			bool		isnull;
			Datum		d = slot_getattr(slot, att, &isnull);

			if (!isnull)
			{
				memcpy(&cache->token, DatumGetUUIDP(d), sizeof(pg_uuid_t));
				cache->token_valid = true;
			}
		}
		table_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		table_close(trel, NoLock);
	}
}

/*
 * integrity_guard._relation_readable(relid oid) returns boolean: whether the
 * current role may SELECT some column of the relation (false for NULL or a
 * relation that is gone).  What makes an incident visible to a role that is
 * not a member of pg_read_all_stats.
 */
PG_FUNCTION_INFO_V1(ig_relation_readable);

Datum
ig_relation_readable(PG_FUNCTION_ARGS)
{
	IgReadableKey key;
	IgReadableEntry *entry;
	bool		found;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	memset(&key, 0, sizeof(key));
	key.relid = PG_GETARG_OID(0);
	key.ncols = -1;
	entry = readable_lookup(fcinfo, &key, &found);
	if (!found)
		entry->readable = ig_relation_readable_by(key.relid, GetUserId());
	PG_RETURN_BOOL(entry->readable);
}

/*
 * The key-values rule for a relation and its key columns, decided once per
 * query and role (see ig_keys_readable).  'cols' NULL, empty or holding a
 * NULL or non-positive entry takes SELECT on the table.
 */
static bool
keys_decide(FunctionCallInfo fcinfo, Oid relid, ArrayType *cols)
{
	IgReadableKey key;
	IgReadableEntry *entry;
	Datum	   *elems = NULL;
	bool	   *nulls = NULL;
	int			nelems = 0;
	bool		found;
	bool		cols_ok = true;
	int			i;

	memset(&key, 0, sizeof(key));
	key.relid = relid;
	if (cols != NULL && ARR_ELEMTYPE(cols) == INT2OID)
		deconstruct_array(cols, INT2OID, sizeof(int16), true, TYPALIGN_SHORT,
						  &elems, &nulls, &nelems);
	/* a list too long for a key, or with a hole, needs the table */
	if (nelems == 0 || nelems > INDEX_MAX_KEYS)
		cols_ok = false;
	for (i = 0; cols_ok && i < nelems; i++)
	{
		if (nulls[i] || DatumGetInt16(elems[i]) <= 0)
			cols_ok = false;
		else
			key.cols[key.ncols++] = DatumGetInt16(elems[i]);
	}
	if (!cols_ok)
		key.ncols = 0;
	entry = readable_lookup(fcinfo, &key, &found);
	if (!found)
	{
		Oid			userid = GetUserId();
		bool		readable;

		readable = check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED &&
			SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid));
		if (readable && !ig_table_selectable_by(relid, userid))
		{
			readable = key.ncols > 0;
			for (i = 0; readable && i < key.ncols; i++)
			{
				bool		missing = false;

				readable = pg_attribute_aclcheck_ext(relid, key.cols[i],
													 userid, ACL_SELECT,
													 &missing) == ACLCHECK_OK &&
					!missing;
			}
		}
		entry->readable = readable;
	}
	return entry->readable;
}

/*
 * integrity_guard._keys_readable(relid oid, key_columns smallint[]) returns
 * boolean: whether the current role may see the key values of an incident
 * of that relation, by the rule of the server's own error DETAIL
 * (BuildIndexValueDescription): a superuser always; otherwise no row-level
 * security in force on the relation for the role, and SELECT on the table
 * or on every key column.  A NULL, empty or non-positive column list takes
 * SELECT on the table.
 */
PG_FUNCTION_INFO_V1(ig_keys_readable);

Datum
ig_keys_readable(PG_FUNCTION_ARGS)
{
	if (superuser())
		PG_RETURN_BOOL(true);
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(keys_decide(fcinfo, PG_GETARG_OID(0),
							   PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1)));
}

/*
 * integrity_guard._key_row_readable(id bigint) returns boolean: the
 * audit_keys policy.  Whether the current role may see the key values of
 * audit row 'id': the row is looked up by its primary key (as the query's
 * snapshot sees it, whatever the role may read: the answer says no more
 * than the rule), then the rule of _keys_readable applies to its relation,
 * if that is one of this database, and its key columns.  A per-row index
 * probe like the EXISTS it replaces, but the planner costs it as one call,
 * so that reading keys does not make it compile the query (JIT).
 */
PG_FUNCTION_INFO_V1(ig_key_row_readable);

Datum
ig_key_row_readable(PG_FUNCTION_ARGS)
{
	IgReadableCache *cache;
	Relation	rel;
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData skey;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	bool		readable = false;

	if (superuser())
		PG_RETURN_BOOL(true);
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	cache = readable_cache(fcinfo);
	if (!cache->audit_known)
		audit_locate(cache);
	if (!OidIsValid(cache->audit_index))
		PG_RETURN_BOOL(false);

	snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	rel = table_open(cache->audit_relid, AccessShareLock);
	index = index_open(cache->audit_index, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ,
				PG_GETARG_DATUM(0));
	scan = ig_index_beginscan(rel, index, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		relid = slot_getattr(slot, cache->att_relid, &isnull);

		if (!isnull)
		{
			bool		inc_null;
			Datum		inc = slot_getattr(slot, cache->att_incarnation, &inc_null);
			bool		cols_null;
			Datum		cols = slot_getattr(slot, cache->att_key_columns, &cols_null);

			if (inc_null || (cache->token_valid &&
							 memcmp(DatumGetUUIDP(inc), &cache->token,
									sizeof(pg_uuid_t)) == 0))
				readable = keys_decide(fcinfo, DatumGetObjectId(relid),
									   cols_null ? NULL : DatumGetArrayTypeP(cols));
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	PG_RETURN_BOOL(readable);
}
