/*-------------------------------------------------------------------------
 *
 * incident.c
 *		The one incident API every guard reports through.
 *
 * Guards call ig_incident_record() per absorbed failure.  Events are
 * aggregated in backend memory by (event type, relation, role, target,
 * detail) for one top-level statement, and written as one incident row per
 * key carrying the number of occurrences.  A statement that saturates
 * 200,000 rows therefore writes one row, not 200,000.
 *
 * The top-level statement is identified by its start timestamp, which the
 * statements it runs (functions, triggers, SPI) share.  Pending events are
 * written when a later statement starts (ig_incident_statement_start, from
 * the executor and utility hooks), at PRE_COMMIT, or by
 * integrity_guard.flush().  Unlike counting executor depth, this is right
 * even when the library is loaded by the first guard trigger in the middle
 * of a statement whose start no hook saw.
 *
 * With the library preloaded (and integrity_guard.durable_audit on), the
 * aggregated incidents go to the shared queue (queue.c) instead, also when
 * the transaction aborts: the attempt happened.  Only the flush jobs
 * (worker.c) write them into the table; readers never write, they read the
 * table plus what is still queued (integrity_guard._pending()).
 *
 * Otherwise this is the transactional path: incidents are inserted into
 * integrity_guard.audit_log (audit_table.c) in the current transaction and
 * share its fate.  Events pending when a savepoint rolls back are kept and
 * written with the surrounding transaction; a top-level abort discards
 * them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "audit_table.h"
#include "citus_meta.h"
#include "incident.h"
#include "queue.h"
#include "settings.h"
#include "stats.h"
#include "util.h"
#include "worker.h"

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
	Oid			relid;			/* the table it is shown under */
	bool		counted;		/* false: another copy of the table tells it */
	char	   *schema_name;
	char	   *table_name;
	int64		occurrences;
	TimestampTz first_seen;
	TimestampTz last_seen;
} IgPending;

static MemoryContext pending_cxt = NULL;
static HTAB *pending = NULL;
static TimestampTz pending_statement;	/* statement start of the events */

/*
 * The entry of the previous event: a statement usually records the same
 * incident row after row, and comparing with it is cheaper than hashing.
 */
static IgPending *last_entry = NULL;



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
		case IG_EVENT_CHILDREN_LEFT:
			return "children_left";
		case IG_EVENT_GUARD_CHANGED:
			return "guard_changed";
	}
	return "unknown";
}

/* The type with this text form, for callers that name it in SQL. */
bool
ig_event_type_from_name(const char *name, IgEventType *type)
{
	int			t;

	for (t = IG_EVENT_COUNTER_SATURATED; t <= IG_EVENT_GUARD_CHANGED; t++)
		if (strcmp(name, ig_event_type_name((IgEventType) t)) == 0)
		{
			*type = (IgEventType) t;
			return true;
		}
	return false;
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
ig_incident_record(IgEventType type, Relation rel, const char *target,
				const char *detail_json, int64 occurrences)
{
	ig_incident_record_relid(type, RelationGetRelid(rel), target, detail_json,
						  occurrences);
}

/* The same for callers without an open relation (expressions). */
void
ig_incident_record_relid(IgEventType type, Oid relid, const char *target,
					  const char *detail_json, int64 occurrences)
{
	IgPendingKey key;
	IgPending  *entry;
	bool		found;
	TimestampTz now;

	if (occurrences <= 0 || ig_audit_writing_now())
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
		last_entry->occurrences = ig_add_sat(last_entry->occurrences, occurrences);
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
		IgCitusShard shard;

		/*
		 * A Citus shard's incident is its logical table's.  A reference
		 * table's copies absorb the same rows and one of them tells; the
		 * children of each copy are the node's own shards, so each copy
		 * tells its own.
		 */
		entry->relid = relid;
		entry->counted = true;
		if (ig_citus_shard_of(relid, &shard))
		{
			entry->relid = shard.logical;
			entry->counted = shard.counted ||
				type == IG_EVENT_CHILDREN_NULLIFIED ||
				type == IG_EVENT_CHILDREN_DELETED ||
				type == IG_EVENT_CHILDREN_LEFT;
		}
		entry->schema_name = get_namespace_name(get_rel_namespace(entry->relid));
		entry->table_name = get_rel_name(entry->relid);
		MemoryContextSwitchTo(oldcxt);
		entry->occurrences = 0;
		entry->first_seen = now;
	}
	entry->occurrences = ig_add_sat(entry->occurrences, occurrences);
	entry->last_seen = now;
	last_entry = entry;
}



static inline bool
queue_mode(void)
{
	return ig_durable_audit && ig_queue_available();
}

/* Hand every pending incident to the shared queue. */
static void
push_pending(void)
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
		if (!entry->counted)
			continue;
		memset(&key, 0, sizeof(key));
		key.dbid = MyDatabaseId;
		key.relid = entry->relid;
		key.roleid = entry->key.roleid;
		ig_copy_bounded(key.event_type, IG_TYPE_LEN,
						ig_event_type_name(entry->key.type));
		ig_copy_bounded(key.schema_name, NAMEDATALEN, entry->schema_name);
		ig_copy_bounded(key.table_name, NAMEDATALEN, entry->table_name);
		ig_copy_bounded(key.target, IG_TARGET_LEN, entry->key.target);
		ig_copy_bounded(key.application_name, NAMEDATALEN, appname);
		/*
		 * each repair (its action, its counts) and each schema change a
		 * guard followed is an incident of its own
		 */
		key.detail_hash = 0;
		if ((entry->key.type == IG_EVENT_ORPHANS_FIXED ||
			 entry->key.type == IG_EVENT_DUPLICATES_MERGED ||
			 entry->key.type == IG_EVENT_GUARD_CHANGED) &&
			entry->key.detail != NULL)
			key.detail_hash = hash_bytes((const unsigned char *) entry->key.detail,
										 strlen(entry->key.detail)) | 1;
		ig_queue_push(&key, entry->key.detail, entry->occurrences,
						 entry->first_seen, entry->last_seen);
	}
	pending_discard();
}

/* Queue this backend's pending incidents now (stats readers). */
static void
ig_incident_push_if_durable(void)
{
	if (queue_mode() && !ig_audit_writing_now())
		push_pending();
}

/*
 * Write every pending incident: into the shared queue when the durable
 * pipeline runs, else into integrity_guard.audit_log in this transaction.
 * Returns how many rows were written to the table.
 */
static int64
flush_pending(void)
{
	HASH_SEQ_STATUS status;
	IgPending  *entry;
	IgIncident *rows;
	Oid			owner;
	int			n = 0;
	int64		written;

	if (pending == NULL || ig_audit_writing_now())
		return 0;
	if (queue_mode())
	{
		push_pending();
		return 0;
	}
	if (!IsTransactionState())
		return 0;
	if (hash_get_num_entries(pending) == 0 || !ig_audit_owner(&owner))
	{
		pending_discard();
		return 0;
	}

	rows = palloc(sizeof(IgIncident) * hash_get_num_entries(pending));
	hash_seq_init(&status, pending);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		IgIncident *row;

		if (!entry->counted)
			continue;
		row = &rows[n++];
		row->event_type = ig_event_type_name(entry->key.type);
		row->schema_name = entry->schema_name;
		row->table_name = entry->table_name;
		row->relid = entry->relid;
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
	written = ig_audit_insert(owner, rows, n, NULL);
	pending_discard();
	pfree(rows);
	return written;
}

/*
 * A new top-level statement is starting (ExecutorStart, except EXPLAIN
 * without ANALYZE; ProcessUtility, except transaction control: COMMIT
 * flushes at PRE_COMMIT, and ROLLBACK would discard the work).  COPY FROM
 * fires row triggers without the executor; so may CALL and DO.  Write what
 * earlier top-level statements left pending.
 */
void
ig_incident_statement_start(void)
{
	if (pending != NULL && !ig_audit_writing_now() &&
		pending_statement != GetCurrentStatementStartTimestamp())
		flush_pending();
}

void
ig_incident_xact_event(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			flush_pending();
			break;
		case XACT_EVENT_PRE_PREPARE:
			flush_pending();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* an attempt happened even if its transaction failed */
			if (queue_mode())
				push_pending();
			pending_discard();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			pending_discard();
			break;
		default:
			break;
	}
}

void
ig_incident_init(void)
{
	pending_cxt = AllocSetContextCreate(TopMemoryContext,
										"integrity_guard pending events",
										ALLOCSET_DEFAULT_SIZES);
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
	int64		written = flush_pending();

	if (queue_mode())
		written = ig_worker_flush_wait();
	PG_RETURN_INT64(written);
}

/*
 * integrity_guard._stats() returns setof record: the cumulative counters
 * the caller may see, this session's own incidents included.
 */
PG_FUNCTION_INFO_V1(ig_stats_fn);

Datum
ig_stats_fn(PG_FUNCTION_ARGS)
{
	if (ig_queue_available())
		ig_incident_push_if_durable();
	ig_stats_rows(fcinfo);
	return (Datum) 0;
}

/*
 * integrity_guard._pending() returns setof integrity_guard.audit_log: this
 * database's incidents still in the queue, this session's included.
 */
PG_FUNCTION_INFO_V1(ig_pending_fn);

Datum
ig_pending_fn(PG_FUNCTION_ARGS)
{
	if (ig_queue_available())
		ig_incident_push_if_durable();
	ig_queue_pending_rows(fcinfo);
	return (Datum) 0;
}
