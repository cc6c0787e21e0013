/*-------------------------------------------------------------------------
 *
 * queue.c
 *		The shared-memory side of the durable audit: the queue of incidents
 *		and the per-database state the flush jobs report into.
 *
 * Active only when the library is in shared_preload_libraries.  Backends
 * push the incidents their statements aggregated (incident.c) and the
 * errors they sent to clients (capture.c) into a shared hash table keyed by
 * the incident without its key values: events of one table, target, kind,
 * role and application within a flush window add to one entry, which keeps
 * the first detail and a bounded sample of others.  A storm of distinct
 * keys is one entry, and one audit row per flush.  Every event is counted
 * in the statistics (stats.c) before the queue decides anything.
 *
 * The queue (integrity_guard.queue_size entries) is shared fairly: when it
 * is full, a database below its share (queue_size / databases queueing)
 * takes the place of an entry of the database furthest above it, and inside
 * a database a role below its share likewise; an owner at or above its share
 * loses its own new incident.  A role's entries that a job took count
 * only against twice its share (they are on their way out): a quiet role
 * beside a flooder keeps entering while its database's jobs fall behind,
 * and never gives up an entry to a newcomer (only a role at its share
 * does).
 * When every entry it could displace is being written, an owner below its
 * share takes a place in a reserve of another 2 * queue_size entries.
 * Drops are counted per database and role.
 *
 * Nobody but a flush job (worker.c) writes the audit table.  A job marks
 * the entries it takes with its transaction id.  Marked entries stay in the
 * queue until no snapshot of their database can miss the rows: readers
 * (integrity_guard._pending()) show an entry unless the job that took it
 * committed visibly to their snapshot, so a reader sees every incident
 * exactly once and never writes or waits.  A job that fails unmarks its
 * entries: nothing is discarded, except for a dropped database or one
 * without the extension, and that is counted.
 *
 * The queue and the counters are written to pg_stat/ at a clean shutdown
 * and read back at start-up (one file; stats.c reads and writes its part);
 * a crash loses them, as it loses any shared memory.  On a standby nothing
 * is written: readers show the queue; it is written after promotion, or
 * saved by a clean restart.
 *
 * Locking rules:
 *	queue_lock (LWLock) protects the queue hash, the owner hash (queued and
 *		dropped per database and role) and ndbs_active.  Adding to an
 *		existing entry's counts needs it shared plus the entry's spinlock;
 *		everything else (new entries, samples, marks, eviction) exclusive.
 *	db_lock (LWLock) protects the per-database slots (IgDbSlot).
 *	mutex (spinlock) protects only the few scalar fields marked below; it is
 *		never held over a loop, a call or an allocation.
 *	No two of these LWLocks are held at once, and neither is held while
 *	stats.c takes its own.  Nothing here raises or allocates while holding
 *	them, except the launcher's and readers' copies, which count first and
 *	allocate before locking.
 *	Sleeping: nobody waits (latch, heavyweight lock, I/O, another process)
 *	while holding any of them.  The error hook takes queue_lock and the
 *	statistics' lock from inside error reporting, so it must find them free:
 *	ig_queue_busy() tells it when this backend already holds one.  A flush
 *	job may wait for RowExclusiveLock on audit_log (worker.c), but only
 *	before it takes entries, so a waiting job holds no incidents; flush()
 *	waits on its latch holding nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/htup_details.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/wait_event.h"

#include "citus_meta.h"
#include "queue.h"
#include "settings.h"
#include "stats.h"
#include "util.h"

#define IG_FILE				PGSTAT_STAT_PERMANENT_DIRECTORY "/pg_integrity_guard.stat"
#define IG_FILE_MAGIC		0x49474134	/* "IGA4" */
#define IG_FILE_MAGIC_V3	0x49474133	/* "IGA3", 1.3: read and converted */
#define IG_FILE_MAGIC_V2	0x49474132	/* "IGA2", 1.2: read and converted */
#define IG_MAX_BACKOFF_MS	60000
#define IG_MAX_SAMPLES		3	/* details kept beside the first */

typedef struct IgQueueEntry
{
	IgEventKey	key;
	IgCounts	counts;
	TransactionId job_xid;		/* the job that took it, or invalid */
	int64		taken;			/* occurrences that job took */
	int			nsamples;		/* details in samples */
	char		detail[IG_DETAIL_LEN];	/* the first JSON detail, or "" */
	char		samples[IG_SAMPLES_LEN];	/* further ones, comma-separated */
	TimestampTz next_first_seen;	/* the first event after the job took
									 * it: the next window's first_seen
									 * (0: none yet) */
} IgQueueEntry;

/* Queue use per database (roleid InvalidOid) and per role in it. */
typedef struct IgOwnerKey
{
	Oid			dbid;
	Oid			roleid;
} IgOwnerKey;

typedef struct IgOwner
{
	IgOwnerKey	key;
	int32		queued;			/* queue entries */
	int32		marked;			/* of those, taken by a flush job */
	int32		nroles;			/* database rows: roles with queued > 0 */
	int64		dropped;		/* events lost to a full queue */
	int64		discarded;		/* events not written: no extension, dropped */
	bool		stalled;		/* database rows: its last flush job failed */
} IgOwner;

typedef struct IgShared
{
	LWLock	   *queue_lock;
	LWLock	   *db_lock;
	int			ndbs_active;	/* queue_lock: databases with queued > 0 */
	slock_t		mutex;			/* the next three */
	TimestampTz last_flush;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	IgDbSlot	dbs[IG_MAX_DATABASES];	/* db_lock */
	pg_atomic_uint64 dropped;	/* events a full queue refused */
	pg_atomic_uint64 discarded; /* events of databases without extension */
} IgShared;

static IgShared *ig_shared = NULL;
static HTAB *ig_queue = NULL;
static HTAB *ig_owners = NULL;


static uint32
ig_event_hash(const void *key, Size keysize)
{
	const IgEventKey *k = key;
	uint32		h;

	h = hash_bytes_uint32(k->dbid);
	h = hash_combine(h, hash_bytes_uint32(k->relid));
	h = hash_combine(h, hash_bytes_uint32(k->roleid));
	h = ig_hash_field(h, k->event_type);
	h = ig_hash_field(h, k->schema_name);
	h = ig_hash_field(h, k->table_name);
	h = ig_hash_field(h, k->target);
	h = hash_combine(h, k->detail_hash);
	return ig_hash_field(h, k->application_name);
}

/*
 * Store a JSON detail.  One too long for the field becomes a valid JSON
 * object holding the start of the original text.
 */
static void
set_detail(char *dst, const char *json)
{
	size_t		len = json ? strlen(json) : 0;
	size_t		pos = 0;

	if (len < IG_DETAIL_LEN)
	{
		ig_copy_bounded(dst, IG_DETAIL_LEN, json);
		return;
	}
	memset(dst, 0, IG_DETAIL_LEN);
	dst[pos++] = '{';
	/* every kept byte escapes to at most 6 */
	ig_json_member(dst, IG_DETAIL_LEN, &pos, "truncated", json,
				   (IG_DETAIL_LEN - 32) / 6);
	dst[pos++] = '}';
	dst[pos] = '\0';
}

bool
ig_queue_available(void)
{
	return ig_shared != NULL;
}

/*
 * True while this backend holds one of the pipeline's locks: an error
 * raised there must not be captured, or the hook would wait on itself.
 */
bool
ig_queue_busy(void)
{
	return ig_shared != NULL &&
		(LWLockHeldByMe(ig_shared->queue_lock) ||
		 LWLockHeldByMe(ig_shared->db_lock) || ig_stats_busy());
}

/*
 * Owners: queue use per database and role (queue_lock exclusive)
 */

/* The owner row of (dbid, roleid), made if needed; NULL when full. */
static IgOwner *
owner_get(Oid dbid, Oid roleid, bool create)
{
	IgOwnerKey	key;
	IgOwner    *owner;
	bool		found;

	memset(&key, 0, sizeof(key));
	key.dbid = dbid;
	key.roleid = roleid;
	owner = hash_search(ig_owners, &key, create ? HASH_ENTER_NULL : HASH_FIND,
						&found);
	if (owner == NULL && create)
	{
		HASH_SEQ_STATUS status;
		IgOwner    *o;

		/* make room: forget an idle role's drop count */
		hash_seq_init(&status, ig_owners);
		while ((o = hash_seq_search(&status)) != NULL)
			if (o->queued == 0 && o->key.roleid != InvalidOid)
			{
				hash_seq_term(&status);
				hash_search(ig_owners, &o->key, HASH_REMOVE, NULL);
				break;
			}
		owner = hash_search(ig_owners, &key, HASH_ENTER_NULL, &found);
	}
	if (owner != NULL && !found)
	{
		owner->queued = 0;
		owner->marked = 0;
		owner->nroles = 0;
		owner->dropped = 0;
		owner->discarded = 0;
		owner->stalled = false;
	}
	return owner;
}

/* A database's jobs fail (or work again): its entries give way first. */
void
ig_queue_set_stalled(Oid dbid, bool stalled)
{
	IgOwner    *db;

	LWLockAcquire(ig_shared->queue_lock, LW_EXCLUSIVE);
	db = owner_get(dbid, InvalidOid, stalled);
	if (db != NULL)
		db->stalled = stalled;
	LWLockRelease(ig_shared->queue_lock);
}

static void
owner_add(Oid dbid, Oid roleid, int delta)
{
	IgOwner    *db = owner_get(dbid, InvalidOid, true);
	IgOwner    *role = owner_get(dbid, roleid, true);

	if (db == NULL || role == NULL)
		return;
	if (delta > 0 && role->queued == 0)
		db->nroles++;
	if (delta > 0 && db->queued == 0)
		ig_shared->ndbs_active++;
	role->queued += delta;
	db->queued += delta;
	if (delta < 0 && role->queued == 0)
		db->nroles--;
	if (delta < 0 && db->queued == 0)
		ig_shared->ndbs_active--;
}

/*
 * Set or clear an entry's mark, keeping its owners' counts of marked
 * entries: those are being written (or are written and wait for readers)
 * and count against no share.
 */
static void
entry_mark(IgQueueEntry *entry, TransactionId xid)
{
	IgOwner    *db;
	IgOwner    *role;
	int			delta;

	delta = (int) TransactionIdIsValid(xid) -
		(int) TransactionIdIsValid(entry->job_xid);
	entry->job_xid = xid;
	if (!TransactionIdIsValid(xid))
		entry->taken = 0;
	if (delta == 0)
		return;
	db = owner_get(entry->key.dbid, InvalidOid, false);
	role = owner_get(entry->key.dbid, entry->key.roleid, false);
	if (db != NULL)
		db->marked += delta;
	if (role != NULL)
		role->marked += delta;
}

/* Entries an owner has waiting for a job. */
static inline int
owner_waiting(const IgOwner *o)
{
	return o->queued - o->marked;
}

/*
 * A role below its share inside a database at its own: fewer entries
 * waiting for a job than the share, and fewer than twice the share in all.
 * Entries a job took are on their way out, so they count only against the
 * second bound: a quiet role whose database's jobs fall behind (slowed by a
 * flooder beside it) keeps entering, while a flooder whose entries are all
 * being written does not.  A database counts all its entries against its
 * share: the slack is only ever a role's, inside its database's share.
 */
static inline bool
below_share(const IgOwner *o, int share)
{
	return owner_waiting(o) < share && o->queued < 2 * share;
}

static void
owner_count_drop(Oid dbid, Oid roleid, int64 n, bool discarded)
{
	IgOwner    *db = owner_get(dbid, InvalidOid, true);
	IgOwner    *role = OidIsValid(roleid) ? owner_get(dbid, roleid, true) : NULL;

	if (discarded)
	{
		pg_atomic_fetch_add_u64(&ig_shared->discarded, n);
		if (db)
			db->discarded += n;
		if (role)
			role->discarded += n;
		return;
	}
	pg_atomic_fetch_add_u64(&ig_shared->dropped, n);
	if (db)
		db->dropped += n;
	if (role)
		role->dropped += n;
}

static void
queue_remove(IgQueueEntry *entry)
{
	IgEventKey	key = entry->key;

	entry_mark(entry, InvalidTransactionId);
	owner_add(key.dbid, key.roleid, -1);
	hash_search(ig_queue, &key, HASH_REMOVE, NULL);
}

/* Remove one unmarked entry of an owner, counted as its drop. */
static bool
evict_one(Oid dbid, Oid roleid)
{
	HASH_SEQ_STATUS status;
	IgQueueEntry *entry;

	hash_seq_init(&status, ig_queue);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (entry->key.dbid != dbid || entry->key.roleid != roleid ||
			TransactionIdIsValid(entry->job_xid))
			continue;
		hash_seq_term(&status);
		owner_count_drop(dbid, roleid, entry->counts.occurrences, false);
		queue_remove(entry);
		return true;
	}
	return false;
}

/*
 * Room beyond queue_size for owners below their share, used only when every
 * entry they could displace is taken by a flush job (a taken entry cannot
 * go).  A database enters it only while it holds fewer entries than its
 * share, a role of a database at its share only while it holds fewer than
 * twice the role's share (below_share); the shares add up to queue_size,
 * so a reserve of twice queue_size holds what owners below their share
 * bring: they never lose an incident to a flood.
 */
#define IG_QUEUE_RESERVE	(2 * ig_queue_size)

/* owner rows: one per role with an entry (reserve included), plus databases */
#define IG_MAX_OWNERS		(ig_queue_size + IG_QUEUE_RESERVE + 2 * IG_MAX_DATABASES)

static inline bool
in_reserve(void)
{
	return hash_get_num_entries(ig_queue) < ig_queue_size + IG_QUEUE_RESERVE;
}

/*
 * The role of database 'db' to give up an entry for a newcomer: of the
 * roles not below their share, the one with the most entries waiting (only
 * those can go); NULL when there is none.  A quiet role beside a flooder is
 * never chosen, whatever the flooder has in the hands of a job.
 */
static IgOwner *
victim_role(const IgOwner *db, Oid except)
{
	HASH_SEQ_STATUS status;
	IgOwner    *o;
	IgOwner    *victim = NULL;
	int			share;

	share = ig_queue_size / Max(ig_shared->ndbs_active, 1) /
		Max(db->nroles, 1);
	hash_seq_init(&status, ig_owners);
	while ((o = hash_seq_search(&status)) != NULL)
		if (o->key.dbid == db->key.dbid && o->key.roleid != InvalidOid &&
			o->key.roleid != except && owner_waiting(o) > 0 &&
			!below_share(o, share) &&
			(victim == NULL || owner_waiting(o) > owner_waiting(victim)))
			victim = o;
	return victim;
}

/*
 * Whether a new entry of key's owner may enter the queue, making room at
 * the expense of an owner above its share when the queue is full.
 */
static bool
queue_admit(const IgEventKey *key)
{
	HASH_SEQ_STATUS status;
	IgOwner    *db;
	IgOwner    *role;
	IgOwner    *o;
	IgOwner    *victim = NULL;
	int			share;

	db = owner_get(key->dbid, InvalidOid, true);
	role = owner_get(key->dbid, key->roleid, true);
	if (db == NULL || role == NULL)
		return false;
	if (hash_get_num_entries(ig_queue) < ig_queue_size)
		return true;

	/*
	 * A database whose flush jobs fail cannot empty its part of the queue:
	 * a working database takes the place of its entries before any share is
	 * counted, so a stalled database loses only its own incidents.
	 */
	if (!db->stalled)
	{
		hash_seq_init(&status, ig_owners);
		while ((o = hash_seq_search(&status)) != NULL)
			if (o->key.roleid == InvalidOid && o->stalled &&
				owner_waiting(o) > 0 &&
				(victim == NULL || owner_waiting(o) > owner_waiting(victim)))
				victim = o;
		if (victim != NULL)
		{
			Oid			vdb = victim->key.dbid;

			victim = NULL;
			hash_seq_init(&status, ig_owners);
			while ((o = hash_seq_search(&status)) != NULL)
				if (o->key.dbid == vdb && o->key.roleid != InvalidOid &&
					owner_waiting(o) > 0 &&
					(victim == NULL ||
					 owner_waiting(o) > owner_waiting(victim)))
					victim = o;
			if (victim != NULL &&
				evict_one(victim->key.dbid, victim->key.roleid))
				return true;
			victim = NULL;
		}
	}

	share = ig_queue_size / Max(ig_shared->ndbs_active + (db->queued == 0), 1);
	if (db->queued < share)
	{
		/* the database queueing the most gives up an entry */
		hash_seq_init(&status, ig_owners);
		while ((o = hash_seq_search(&status)) != NULL)
			if (o->key.roleid == InvalidOid && o->key.dbid != key->dbid &&
				(victim == NULL || o->queued > victim->queued))
				victim = o;
		if (victim != NULL && victim->queued > db->queued + 1)
		{
			victim = victim_role(victim, InvalidOid);
			if (victim != NULL && evict_one(victim->key.dbid, victim->key.roleid))
				return true;
		}
		return in_reserve();
	}

	/* at its share: only a role below its share inside it may displace */
	share = share / Max(db->nroles + (role->queued == 0), 1);
	if (!below_share(role, share))
		return false;
	victim = victim_role(db, key->roleid);
	if (victim != NULL && evict_one(victim->key.dbid, victim->key.roleid))
		return true;
	return in_reserve();
}

/* Whether a detail is already the entry's first one or in its sample. */
static bool
detail_known(IgQueueEntry *entry, const char *detail)
{
	return strcmp(entry->detail, detail) == 0 ||
		(entry->nsamples > 0 && strstr(entry->samples, detail) != NULL);
}

static void
sample_add(IgQueueEntry *entry, const char *detail)
{
	size_t		used = strlen(entry->samples);
	size_t		len = strlen(detail);

	if (entry->nsamples >= IG_MAX_SAMPLES || detail[0] != '{' ||
		used + len + 3 >= IG_SAMPLES_LEN || detail_known(entry, detail))
		return;
	if (used > 0)
	{
		memcpy(entry->samples + used, ", ", 2);
		used += 2;
	}
	memcpy(entry->samples + used, detail, len + 1);
	entry->nsamples++;
}

static inline void
counts_add(IgCounts *counts, int64 n, TimestampTz first_seen,
		   TimestampTz last_seen, TransactionId horizon)
{
	SpinLockAcquire(&counts->mutex);
	counts->occurrences = ig_add_sat(counts->occurrences, n);
	counts->bind_horizon = ig_horizon_min(counts->bind_horizon, horizon);
	if (first_seen < counts->first_seen)
		counts->first_seen = first_seen;
	if (last_seen > counts->last_seen)
		counts->last_seen = last_seen;
	SpinLockRelease(&counts->mutex);
}

/*
 * An event added to an entry a job has taken starts the next window: its
 * time is that window's first_seen (queue_lock held, shared at least; the
 * mark only changes under it held exclusively).
 */
static inline void
note_after_take(IgQueueEntry *entry, TimestampTz first_seen)
{
	if (!TransactionIdIsValid(entry->job_xid))
		return;
	SpinLockAcquire(&entry->counts.mutex);
	if (entry->next_first_seen == 0 || first_seen < entry->next_first_seen)
		entry->next_first_seen = first_seen;
	SpinLockRelease(&entry->counts.mutex);
}

/* Add to the queue; false when the queue refused it. */
static bool
queue_add(const IgEventKey *key, const char *detail, int64 n,
		  TimestampTz first_seen, TimestampTz last_seen,
		  TransactionId horizon)
{
	IgQueueEntry *entry;
	uint32		hash = get_hash_value(ig_queue, key);
	bool		found;

	/* the common case: the entry exists, shared lock and its spinlock */
	LWLockAcquire(ig_shared->queue_lock, LW_SHARED);
	entry = hash_search_with_hash_value(ig_queue, key, hash, HASH_FIND, NULL);
	if (entry != NULL &&
		(detail[0] == '\0' || entry->nsamples >= IG_MAX_SAMPLES ||
		 detail_known(entry, detail)))
	{
		counts_add(&entry->counts, n, first_seen, last_seen, horizon);
		note_after_take(entry, first_seen);
		LWLockRelease(ig_shared->queue_lock);
		return true;
	}
	LWLockRelease(ig_shared->queue_lock);

	LWLockAcquire(ig_shared->queue_lock, LW_EXCLUSIVE);
	entry = hash_search_with_hash_value(ig_queue, key, hash, HASH_FIND, NULL);
	if (entry == NULL)
	{
		if (!queue_admit(key))
		{
			owner_count_drop(key->dbid, key->roleid, n, false);
			LWLockRelease(ig_shared->queue_lock);
			return false;
		}
		entry = hash_search_with_hash_value(ig_queue, key, hash,
											HASH_ENTER_NULL, &found);
		if (entry == NULL)
		{
			owner_count_drop(key->dbid, key->roleid, n, false);
			LWLockRelease(ig_shared->queue_lock);
			return false;
		}
		/* every byte after the key: the entry is saved to a file */
		memset((char *) entry + sizeof(IgEventKey), 0,
			   sizeof(IgQueueEntry) - sizeof(IgEventKey));
		SpinLockInit(&entry->counts.mutex);
		entry->counts.first_seen = first_seen;
		entry->counts.last_seen = last_seen;
		entry->counts.bind_horizon = horizon;
		entry->job_xid = InvalidTransactionId;
		memcpy(entry->detail, detail, IG_DETAIL_LEN);
		owner_add(key->dbid, key->roleid, 1);
	}
	else if (detail[0] != '\0')
		sample_add(entry, detail);
	counts_add(&entry->counts, n, first_seen, last_seen, horizon);
	note_after_take(entry, first_seen);
	LWLockRelease(ig_shared->queue_lock);
	return true;
}

/*
 * Record 'n' events of one incident.  Never waits on anything but the
 * pipeline's own short locks, never raises: safe from the error hook.
 */
void
ig_queue_push(const IgEventKey *key, const char *detail, int64 n,
				 TimestampTz first_seen, TimestampTz last_seen)
{
	char		d[IG_DETAIL_LEN];
	IgEventKey	k;
	IgStatsKey	sk;
	TransactionId horizon;

	if (ig_shared == NULL || n <= 0)
		return;
	set_detail(d, detail);

	/*
	 * An incident known by name only binds later to a relation whose
	 * catalog rows this transaction's first snapshot already saw
	 * (ig_queue_bind_relid): TransactionXmin, backend-local, no lock.
	 */
	horizon = OidIsValid(key->relid) ? FrozenTransactionId : TransactionXmin;
	memset(&sk, 0, sizeof(sk));
	sk.dbid = key->dbid;
	memcpy(sk.event_type, key->event_type, IG_TYPE_LEN);
	memcpy(sk.schema_name, key->schema_name, NAMEDATALEN);
	memcpy(sk.table_name, key->table_name, NAMEDATALEN);
	memcpy(sk.target, key->target, IG_TARGET_LEN);
	sk.relid = key->relid;
	ig_stats_add(&sk, n, first_seen, last_seen, horizon);
	/*
	 * A caller sets detail_hash to what tells its incidents apart (each
	 * repair, a statement's shape); without it, an incident that names no
	 * table is told apart by its whole detail.
	 */
	k = *key;
	if (k.detail_hash == 0 && k.table_name[0] == '\0')
		k.detail_hash = hash_bytes((const unsigned char *) d, strlen(d));
	(void) queue_add(&k, d, n, first_seen, last_seen, horizon);
}

/* The JSON detail of an entry with its sample, palloc'd; NULL if none. */
static char *
entry_detail(const IgQueueEntry *entry)
{
	size_t		len = strlen(entry->detail);

	if (len == 0)
		return NULL;
	if (entry->nsamples == 0 || entry->detail[len - 1] != '}')
		return pstrdup(entry->detail);
	/* {"a": 1} with samples -> {"a": 1, "samples": [...]} */
	return psprintf("%.*s%s\"samples\": [%s]}", (int) len - 1, entry->detail,
					len > 2 ? ", " : "", entry->samples);
}

/* Copies of a database's entries, taken under the shared lock. */
static int
queue_copy(Oid dbid, IgQueueEntry **out)
{
	HASH_SEQ_STATUS status;
	IgQueueEntry *entry;
	int			count = 0;
	int			n = 0;

	/* count first: no allocation while holding the lock */
	LWLockAcquire(ig_shared->queue_lock, LW_SHARED);
	hash_seq_init(&status, ig_queue);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (entry->key.dbid == dbid)
			count++;
	LWLockRelease(ig_shared->queue_lock);
	*out = NULL;
	if (count == 0)
		return 0;
	*out = palloc(sizeof(IgQueueEntry) * count);
	LWLockAcquire(ig_shared->queue_lock, LW_SHARED);
	hash_seq_init(&status, ig_queue);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (entry->key.dbid != dbid)
			continue;
		if (n >= count)
		{
			hash_seq_term(&status);
			break;
		}
		memcpy(&(*out)[n], entry, sizeof(IgQueueEntry));
		SpinLockAcquire(&entry->counts.mutex);
		(*out)[n].counts = entry->counts;
		SpinLockRelease(&entry->counts.mutex);
		n++;
	}
	LWLockRelease(ig_shared->queue_lock);
	return n;
}

/*
 * Mark and return (palloc'd copies) the unmarked incidents of a database
 * for the job whose transaction is xid.
 */
int
ig_queue_take(Oid dbid, TransactionId xid, IgJobIncident **out)
{
	IgQueueEntry *copies;
	IgJobIncident *rows;
	int			count;
	int			n = 0;
	int			i;

	*out = NULL;
	if (ig_shared == NULL)
		return 0;
	count = queue_copy(dbid, &copies);
	if (count == 0)
		return 0;
	rows = palloc(sizeof(IgJobIncident) * count);

	LWLockAcquire(ig_shared->queue_lock, LW_EXCLUSIVE);
	for (i = 0; i < count; i++)
	{
		IgQueueEntry *entry;

		entry = hash_search(ig_queue, &copies[i].key, HASH_FIND, NULL);
		if (entry == NULL || TransactionIdIsValid(entry->job_xid))
			continue;
		entry_mark(entry, xid);
		SpinLockAcquire(&entry->counts.mutex);
		entry->taken = entry->counts.occurrences;
		entry->next_first_seen = 0;
		rows[n].first_seen = entry->counts.first_seen;
		rows[n].last_seen = entry->counts.last_seen;
		rows[n].bind_horizon = entry->counts.bind_horizon;
		SpinLockRelease(&entry->counts.mutex);
		rows[n].key = entry->key;
		rows[n].occurrences = entry->taken;
		/* the sample as it is now; the copy is ours */
		copies[i].nsamples = entry->nsamples;
		memcpy(copies[i].samples, entry->samples, IG_SAMPLES_LEN);
		rows[n].detail = (char *) &copies[i];	/* rendered below */
		n++;
	}
	LWLockRelease(ig_shared->queue_lock);
	for (i = 0; i < n; i++)
		rows[i].detail = entry_detail((IgQueueEntry *) rows[i].detail);
	*out = rows;
	return n;
}

/*
 * After the job of xid ended: if it committed, what it took is written
 * (entries it emptied go once no snapshot can miss the rows, see
 * ig_queue_settle_stale); if not, its entries are unmarked for the next.
 */
void
ig_queue_settle(Oid dbid, TransactionId xid, bool committed)
{
	HASH_SEQ_STATUS status;
	IgQueueEntry *entry;

	if (ig_shared == NULL || !TransactionIdIsValid(xid) || committed)
		return;
	LWLockAcquire(ig_shared->queue_lock, LW_EXCLUSIVE);
	hash_seq_init(&status, ig_queue);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (entry->key.dbid == dbid && entry->job_xid == xid)
		{
			entry_mark(entry, InvalidTransactionId);
		}
	LWLockRelease(ig_shared->queue_lock);
}

/*
 * The oldest snapshot of another backend connected to this database, as
 * its xmin; InvalidTransactionId when there is none.  Only such a snapshot
 * can read this database's audit and still miss rows a committed job wrote
 * (it saw the job in progress, so its xmin does not follow the job's xid).
 * Other databases, transactions that hold an xid but no snapshot (idle in
 * transaction at READ COMMITTED, a prepared transaction) and this backend
 * do not count: none of them can read the pending copy.
 */
static TransactionId
readers_horizon(void)
{
	TransactionId result = InvalidTransactionId;
	uint32		i;

	LWLockAcquire(ProcArrayLock, LW_SHARED);
	for (i = 0; i < ProcGlobal->allProcCount; i++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[i];
		TransactionId xmin = proc->xmin;

		if (proc == MyProc || proc->databaseId != MyDatabaseId ||
			!TransactionIdIsNormal(xmin))
			continue;
		if (!TransactionIdIsValid(result) || TransactionIdPrecedes(xmin, result))
			result = xmin;
	}
	LWLockRelease(ProcArrayLock);
	return result;
}

/*
 * Resolve the marks of a database's entries, from a job connected to it: a
 * committed job's entries lose what it wrote once no reader's snapshot can
 * miss the rows (readers_horizon), an aborted one's are unmarked.  Needs a
 * transaction.  Returns how many entries still wait for readers.
 */
int
ig_queue_settle_stale(Oid dbid)
{
	HASH_SEQ_STATUS status;
	IgQueueEntry *entry;
	TransactionId horizon = readers_horizon();
	int			waiting = 0;

	LWLockAcquire(ig_shared->queue_lock, LW_EXCLUSIVE);
	hash_seq_init(&status, ig_queue);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		TransactionId xid = entry->job_xid;

		if (entry->key.dbid != dbid || !TransactionIdIsValid(xid) ||
			TransactionIdIsCurrentTransactionId(xid) ||
			TransactionIdIsInProgress(xid))
			continue;
		if (!TransactionIdDidCommit(xid))
		{
			entry_mark(entry, InvalidTransactionId);
		}
		else if (!TransactionIdIsValid(horizon) ||
				 TransactionIdPrecedes(xid, horizon))
		{
			int64		left;

			SpinLockAcquire(&entry->counts.mutex);
			entry->counts.occurrences -= entry->taken;
			left = entry->counts.occurrences;
			if (entry->next_first_seen != 0)
				entry->counts.first_seen = entry->next_first_seen;
			entry->next_first_seen = 0;
			SpinLockRelease(&entry->counts.mutex);
			entry_mark(entry, InvalidTransactionId);
			if (left <= 0)
				queue_remove(entry);
		}
		else
			waiting++;
	}
	LWLockRelease(ig_shared->queue_lock);
	return waiting;
}

/*
 * Incidents of this database not yet in the table as the current snapshot
 * sees it, and how many of them are held by a running job.
 */
static int
queue_pending(IgQueueEntry **out, int *inflight)
{
	IgQueueEntry *copies;
	Snapshot	snap = GetActiveSnapshot() ? GetActiveSnapshot() :
		GetTransactionSnapshot();
	int			count;
	int			n = 0;
	int			i;

	*inflight = 0;
	count = queue_copy(MyDatabaseId, &copies);
	for (i = 0; i < count; i++)
	{
		TransactionId xid = copies[i].job_xid;

		if (TransactionIdIsValid(xid))
		{
			if (TransactionIdIsInProgress(xid))
				(*inflight)++;
			else if (!XidInMVCCSnapshot(xid, snap) &&
					 TransactionIdDidCommit(xid))
			{
				copies[i].counts.occurrences -= copies[i].taken;
				if (copies[i].next_first_seen != 0)
					copies[i].counts.first_seen = copies[i].next_first_seen;
			}
		}
		if (copies[i].counts.occurrences > 0)
			copies[n++] = copies[i];
	}
	*out = copies;
	return n;
}

/* The slot of a database (db_lock exclusive), made on first use. */
IgDbSlot *
ig_queue_slot(Oid dbid, bool create)
{
	IgDbSlot   *free_slot = NULL;
	int			i;

	for (i = 0; i < IG_MAX_DATABASES; i++)
	{
		if (ig_shared->dbs[i].dbid == dbid)
			return &ig_shared->dbs[i];
		if (ig_shared->dbs[i].dbid == InvalidOid && free_slot == NULL)
			free_slot = &ig_shared->dbs[i];
	}
	if (free_slot != NULL && create)
	{
		memset(free_slot, 0, sizeof(IgDbSlot));
		free_slot->dbid = dbid;
		return free_slot;
	}
	return NULL;
}

/* CREATE EXTENSIONs the database's slot has seen, before a job looks. */
uint32
ig_queue_registrations(Oid dbid)
{
	IgDbSlot   *slot;
	uint32		n = 0;

	if (ig_shared == NULL)
		return 0;
	LWLockAcquire(ig_shared->db_lock, LW_SHARED);
	slot = ig_queue_slot(dbid, false);
	if (slot != NULL)
		n = slot->registrations;
	LWLockRelease(ig_shared->db_lock);
	return n;
}

/*
 * A job ended: it wrote (or found no extension), or it failed.  A job that
 * found no extension while CREATE EXTENSION ran after it looked, or while
 * a prepared CREATE EXTENSION was undecided for it, says nothing about the
 * database: the state stays unknown, and the return value
 * (whether the database is known to have no extension, so its queued
 * incidents go) is false.
 */
bool
ig_queue_report_flush(Oid dbid, bool has_extension, bool undecided,
					  uint32 registrations_seen,
					  int64 written, int64 set_aside, const char *set_aside_error)
{
	IgDbSlot   *slot;
	TimestampTz now = GetCurrentTimestamp();
	bool		no_extension = !has_extension;

	if (ig_shared == NULL)
		return false;
	LWLockAcquire(ig_shared->db_lock, LW_EXCLUSIVE);
	slot = ig_queue_slot(dbid, true);
	if (slot != NULL)
	{
		if (no_extension &&
			(undecided || slot->registrations != registrations_seen))
			no_extension = false;
		slot->job_started = false;
		slot->state = has_extension ? IG_DB_INSTALLED :
			no_extension ? IG_DB_NO_EXTENSION : IG_DB_UNKNOWN;
		slot->checked = now;
		slot->failures = 0;
		slot->retry_at = 0;
		if (has_extension)
		{
			slot->last_flush = now;
			slot->written += written;
			slot->set_aside += set_aside;
			if (set_aside > 0 && set_aside_error != NULL)
				ig_copy_bounded(slot->set_aside_error, IG_ERROR_LEN,
								set_aside_error);
		}
	}
	LWLockRelease(ig_shared->db_lock);
	if (has_extension)
	{
		SpinLockAcquire(&ig_shared->mutex);
		ig_shared->last_flush = now;
		SpinLockRelease(&ig_shared->mutex);
	}
	ig_queue_set_stalled(dbid, false);
	return no_extension;
}

/* Count a failed job and schedule the next try later and later. */
void
ig_queue_slot_failed(IgDbSlot *slot, const char *message, TimestampTz now)
{
	int			shift = Min(slot->failures, 10);
	int64		delay = Min((int64) ig_flush_interval << shift, IG_MAX_BACKOFF_MS);

	slot->job_started = false;
	slot->failures++;
	slot->failures_total++;
	slot->retry_at = TimestampTzPlusMilliseconds(now, delay);
	ig_copy_bounded(slot->last_error, IG_ERROR_LEN, message);
}

void
ig_queue_report_failure(Oid dbid, const char *message)
{
	IgDbSlot   *slot;

	if (ig_shared == NULL)
		return;
	LWLockAcquire(ig_shared->db_lock, LW_EXCLUSIVE);
	slot = ig_queue_slot(dbid, true);
	if (slot != NULL)
		ig_queue_slot_failed(slot, message, GetCurrentTimestamp());
	LWLockRelease(ig_shared->db_lock);
	ig_queue_set_stalled(dbid, true);
}

/* Drop a database's queued incidents (they stay in the statistics). */
void
ig_queue_discard(Oid dbid)
{
	HASH_SEQ_STATUS status;
	IgQueueEntry *entry;

	LWLockAcquire(ig_shared->queue_lock, LW_EXCLUSIVE);
	hash_seq_init(&status, ig_queue);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (entry->key.dbid == dbid)
		{
			owner_count_drop(dbid, entry->key.roleid,
							 entry->counts.occurrences - entry->taken, true);
			queue_remove(entry);
		}
	LWLockRelease(ig_shared->queue_lock);
}

/*
 * Events never written, counted as such: a job's at an immediate stop, and
 * incidents last seen before the retention when a job took them.
 */
void
ig_queue_count_lost(Oid dbid, Oid roleid, int64 n)
{
	LWLockAcquire(ig_shared->queue_lock, LW_EXCLUSIVE);
	owner_count_drop(dbid, roleid, n, true);
	LWLockRelease(ig_shared->queue_lock);
}

/*
 * A relation of this database was dropped or renamed, or a schema renamed:
 * queued incidents still known by that name (captured errors not yet bound
 * to a relid) bind to nothing from now on, whatever later takes the name,
 * even if its catalog rows get frozen (those who see all still see them),
 * and the counters kept under that name go.  NULL matches any schema or
 * table name.
 */
void
ig_queue_unbind_names(Oid dbid, const char *schema_name, const char *table_name)
{
	HASH_SEQ_STATUS status;
	IgQueueEntry *q;

	if (ig_shared == NULL)
		return;
#define IG_NAMES_MATCH(k) \
	((k).dbid == dbid && !OidIsValid((k).relid) && (k).table_name[0] != '\0' && \
	 (schema_name == NULL || strcmp((k).schema_name, schema_name) == 0) && \
	 (table_name == NULL || strcmp((k).table_name, table_name) == 0))

	LWLockAcquire(ig_shared->queue_lock, LW_EXCLUSIVE);
	hash_seq_init(&status, ig_queue);
	while ((q = hash_seq_search(&status)) != NULL)
		if (IG_NAMES_MATCH(q->key))
		{
			SpinLockAcquire(&q->counts.mutex);
			q->counts.bind_horizon = InvalidTransactionId;
			SpinLockRelease(&q->counts.mutex);
		}
	LWLockRelease(ig_shared->queue_lock);

#undef IG_NAMES_MATCH
	ig_stats_forget_names(dbid, schema_name, table_name);
}

/*
 * The launcher's view (worker.c)
 */

/* Queued entries per database: how many wait, how many a job holds. */
int
ig_queue_databases(IgQueueDb *dbs, int max)
{
	HASH_SEQ_STATUS status;
	IgQueueEntry *entry;
	int			ndbs = 0;
	int			i;

	LWLockAcquire(ig_shared->queue_lock, LW_SHARED);
	hash_seq_init(&status, ig_queue);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		for (i = 0; i < ndbs; i++)
			if (dbs[i].dbid == entry->key.dbid)
				break;
		if (i == ndbs)
		{
			if (ndbs == max)
				continue;
			dbs[ndbs].dbid = entry->key.dbid;
			dbs[ndbs].unmarked = dbs[ndbs].marked = 0;
			ndbs++;
		}
		if (TransactionIdIsValid(entry->job_xid))
			dbs[i].marked++;
		else
			dbs[i].unmarked++;
	}
	LWLockRelease(ig_shared->queue_lock);
	return ndbs;
}

/* db_lock, around ig_queue_slot_at() and ig_queue_slot() */
void
ig_queue_lock_slots(bool exclusive)
{
	LWLockAcquire(ig_shared->db_lock, exclusive ? LW_EXCLUSIVE : LW_SHARED);
}

void
ig_queue_unlock_slots(void)
{
	LWLockRelease(ig_shared->db_lock);
}

IgDbSlot *
ig_queue_slot_at(int index)
{
	Assert(index >= 0 && index < IG_MAX_DATABASES);
	return &ig_shared->dbs[index];
}

/* The running launcher (pid 0 and NULL when it exits). */
void
ig_queue_set_launcher(pid_t pid, Latch *latch)
{
	SpinLockAcquire(&ig_shared->mutex);
	ig_shared->launcher_pid = pid;
	ig_shared->launcher_latch = latch;
	SpinLockRelease(&ig_shared->mutex);
}

void
ig_queue_wake_launcher(void)
{
	Latch	   *latch;

	SpinLockAcquire(&ig_shared->mutex);
	latch = ig_shared->launcher_latch;
	SpinLockRelease(&ig_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/* This database's incidents a reader would still see as pending. */
int
ig_queue_pending_count(void)
{
	IgQueueEntry *entries;
	int			inflight;
	int			n;

	n = queue_pending(&entries, &inflight);
	if (entries)
		pfree(entries);
	return n;
}

/*
 * Shared memory
 */
static Size
ig_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(IgShared));

	size = add_size(size, hash_estimate_size(ig_queue_size + IG_QUEUE_RESERVE,
											 sizeof(IgQueueEntry)));
	size = add_size(size, hash_estimate_size(IG_MAX_OWNERS,
											 sizeof(IgOwner)));
	return size;
}

void
ig_queue_shmem_request(void)
{
	RequestAddinShmemSpace(ig_shmem_size());
	RequestNamedLWLockTranche("pg_integrity_guard", 2);
	ig_stats_shmem_request();
}

static void ig_shmem_shutdown(int code, Datum arg);
static void ig_load_file(void);

void
ig_queue_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ig_shared = ShmemInitStruct("pg_integrity_guard", sizeof(IgShared), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("pg_integrity_guard");

		memset(ig_shared, 0, sizeof(IgShared));
		ig_shared->queue_lock = &locks[0].lock;
		ig_shared->db_lock = &locks[1].lock;
		SpinLockInit(&ig_shared->mutex);
		pg_atomic_init_u64(&ig_shared->dropped, 0);
		pg_atomic_init_u64(&ig_shared->discarded, 0);
	}
	ig_stats_shmem_startup();

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(IgEventKey);
	info.entrysize = sizeof(IgQueueEntry);
	info.hash = ig_event_hash;
	ig_queue = ShmemInitHash("pg_integrity_guard queue",
							 ig_queue_size + IG_QUEUE_RESERVE,
							 ig_queue_size + IG_QUEUE_RESERVE, &info,
							 HASH_ELEM | HASH_FUNCTION | HASH_FIXED_SIZE);
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(IgOwnerKey);
	info.entrysize = sizeof(IgOwner);
	ig_owners = ShmemInitHash("pg_integrity_guard queue owners",
							  IG_MAX_OWNERS,
							  IG_MAX_OWNERS, &info,
							  HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);

	/* the postmaster saves at shutdown what it loads now */
	if (!IsUnderPostmaster)
	{
		on_shmem_exit(ig_shmem_shutdown, (Datum) 0);
		if (!found)
			ig_load_file();
	}
}

typedef struct IgFileHeader
{
	uint32		magic;
	uint32		queue_entry_size;
	uint32		stats_entry_size;
	int32		nstats;
	int32		nqueue;
	TimestampTz stats_reset;
} IgFileHeader;

/*
 * The queue entries of an "IGA2" file, written by the 1.2 library: read
 * once after an upgrade, so that the incidents a clean shutdown saved are
 * kept.  They carry no binding horizon (nothing binds them by name).
 */
typedef struct IgQueueEntryV2
{
	IgEventKey	key;
	IgCountsV2	counts;
	TransactionId job_xid;
	int64		taken;
	int			nsamples;
	char		detail[IG_DETAIL_LEN];
	char		samples[IG_SAMPLES_LEN];
} IgQueueEntryV2;

/* The queue entries of an "IGA3" file (1.3): without next_first_seen. */
typedef struct IgQueueEntryV3
{
	IgEventKey	key;
	IgCounts	counts;
	TransactionId job_xid;
	int64		taken;
	int			nsamples;
	char		detail[IG_DETAIL_LEN];
	char		samples[IG_SAMPLES_LEN];
} IgQueueEntryV3;

static bool
read_queue_entry(FILE *file, uint32 magic, IgQueueEntry *q)
{
	IgQueueEntryV2 old;

	if (magic == IG_FILE_MAGIC)
		return fread(q, sizeof(*q), 1, file) == 1;
	if (magic == IG_FILE_MAGIC_V3)
	{
		IgQueueEntryV3 v3;

		if (fread(&v3, sizeof(v3), 1, file) != 1)
			return false;
		memset(q, 0, sizeof(*q));
		memcpy(q, &v3, sizeof(v3));
		q->next_first_seen = 0;
		return true;
	}
	Assert(magic == IG_FILE_MAGIC_V2);
	if (fread(&old, sizeof(old), 1, file) != 1)
		return false;
	memset(q, 0, sizeof(*q));
	q->key = old.key;
	ig_counts_from_v2(&q->counts, &old.counts);
	q->job_xid = old.job_xid;
	q->taken = old.taken;
	q->nsamples = old.nsamples;
	memcpy(q->detail, old.detail, IG_DETAIL_LEN);
	memcpy(q->samples, old.samples, IG_SAMPLES_LEN);
	return true;
}

/* Read what the last clean shutdown saved, then remove the file. */
static void
ig_load_file(void)
{
	FILE	   *file;
	IgFileHeader header;
	IgQueueEntry *q = palloc(sizeof(IgQueueEntry));
	bool		v2;
	int			i;

	file = AllocateFile(IG_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", IG_FILE)));
		pfree(q);
		return;
	}
	if (fread(&header, sizeof(header), 1, file) != 1)
		header.magic = 0;
	v2 = header.magic == IG_FILE_MAGIC_V2;
	if (!(header.magic == IG_FILE_MAGIC &&
		  header.queue_entry_size == sizeof(IgQueueEntry) &&
		  header.stats_entry_size == ig_stats_entry_size(false)) &&
		!(header.magic == IG_FILE_MAGIC_V3 &&
		  header.queue_entry_size == sizeof(IgQueueEntryV3) &&
		  header.stats_entry_size == ig_stats_entry_size(false)) &&
		!(v2 &&
		  header.queue_entry_size == sizeof(IgQueueEntryV2) &&
		  header.stats_entry_size == ig_stats_entry_size(true)))
	{
		ereport(LOG,
				(errmsg("ignoring pg_integrity_guard statistics file \"%s\": written by another version",
						IG_FILE)));
		goto done;
	}
	if (!ig_stats_restore(file, header.nstats, v2, header.stats_reset))
		goto done;
	for (i = 0; i < header.nqueue; i++)
	{
		IgQueueEntry *entry;
		bool		found;

		if (!read_queue_entry(file, header.magic, q))
			goto done;
		if (hash_get_num_entries(ig_queue) >= ig_queue_size)
		{
			owner_count_drop(q->key.dbid, q->key.roleid,
							 q->counts.occurrences, false);
			continue;
		}
		entry = hash_search(ig_queue, &q->key, HASH_ENTER_NULL, &found);
		if (entry == NULL)
			continue;
		memcpy(entry, q, sizeof(IgQueueEntry));
		SpinLockInit(&entry->counts.mutex);
		owner_add(q->key.dbid, q->key.roleid, 1);
	}
done:
	FreeFile(file);
	pfree(q);
	/* a crash must not bring these back a second time */
	unlink(IG_FILE);
}

/* At a clean shutdown: statistics and unwritten incidents to disk. */
static void
ig_shmem_shutdown(int code, Datum arg)
{
	FILE	   *file;
	IgFileHeader header;
	HASH_SEQ_STATUS status;
	IgQueueEntry *q;
	IgQueueEntry *copy;
	int			nqueue = 0;

	if (code != 0 || ig_shared == NULL)
		return;

	/*
	 * Every job has ended.  A marked entry's job committed (a failed one
	 * unmarks before it exits): only the rest is unwritten.
	 */
	hash_seq_init(&status, ig_queue);
	while ((q = hash_seq_search(&status)) != NULL)
		if (q->counts.occurrences - q->taken > 0)
			nqueue++;

	file = AllocateFile(IG_FILE ".tmp", PG_BINARY_W);
	if (file == NULL)
		goto error;
	memset(&header, 0, sizeof(header));
	header.magic = IG_FILE_MAGIC;
	header.queue_entry_size = sizeof(IgQueueEntry);
	header.stats_entry_size = ig_stats_entry_size(false);
	header.nstats = ig_stats_count();
	header.nqueue = nqueue;
	header.stats_reset = ig_stats_reset_time();
	if (fwrite(&header, sizeof(header), 1, file) != 1 || !ig_stats_save(file))
		goto error;
	copy = palloc(sizeof(IgQueueEntry));
	hash_seq_init(&status, ig_queue);
	while ((q = hash_seq_search(&status)) != NULL)
	{
		if (q->counts.occurrences - q->taken <= 0)
			continue;
		memcpy(copy, q, sizeof(IgQueueEntry));
		copy->counts.occurrences -= copy->taken;
		copy->taken = 0;
		copy->job_xid = InvalidTransactionId;
		if (fwrite(copy, sizeof(IgQueueEntry), 1, file) != 1)
		{
			hash_seq_term(&status);
			goto error;
		}
	}
	if (FreeFile(file))
	{
		file = NULL;
		goto error;
	}
	(void) durable_rename(IG_FILE ".tmp", IG_FILE, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", IG_FILE ".tmp")));
	if (file)
		FreeFile(file);
	unlink(IG_FILE ".tmp");
}

/*
 * SQL functions
 */

/* Superusers and members of pg_read_all_stats see every database and role. */
static bool
sees_all(void)
{
	return superuser() ||
		has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
}

/*
 * A copy of the owner rows (per database and role), taken under the queue
 * lock in shared mode so that readers never hold it while they compute.
 */
static IgOwner *
copy_owners(int *n)
{
	HASH_SEQ_STATUS status;
	IgOwner    *o;
	int			count = IG_MAX_OWNERS;
	IgOwner    *rows = palloc(sizeof(IgOwner) * count);

	*n = 0;
	LWLockAcquire(ig_shared->queue_lock, LW_SHARED);
	hash_seq_init(&status, ig_owners);
	while ((o = hash_seq_search(&status)) != NULL)
	{
		if (*n >= count)
		{
			hash_seq_term(&status);
			break;
		}
		rows[(*n)++] = *o;
	}
	LWLockRelease(ig_shared->queue_lock);
	return rows;
}

/* Sums of the owner rows the caller may see: (queued, dropped, discarded). */
static void
owner_sums(bool all, int64 *queued, int64 *dropped, int64 *discarded)
{
	IgOwner    *rows;
	int			n = 0;
	int			i;

	*queued = *dropped = *discarded = 0;
	rows = copy_owners(&n);
	for (i = 0; i < n; i++)
	{
		/* database rows when everything is visible, else own roles here */
		if (all ? rows[i].key.roleid != InvalidOid :
			(rows[i].key.dbid != MyDatabaseId ||
			 rows[i].key.roleid == InvalidOid ||
			 !has_privs_of_role(GetUserId(), rows[i].key.roleid)))
			continue;
		*queued += rows[i].queued;
		*dropped += rows[i].dropped;
		*discarded += rows[i].discarded;
	}
	pfree(rows);
}

/*
 * integrity_guard._queue_usage() returns setof record: queue entries and
 * lost events per database and role, those the caller may see (its own
 * roles in this database; everything for pg_read_all_stats).
 */
PG_FUNCTION_INFO_V1(ig_queue_usage);

Datum
ig_queue_usage(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IgOwner    *rows;
	bool		all;
	int			n = 0;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (ig_shared == NULL)
		return (Datum) 0;
	all = sees_all();
	rows = copy_owners(&n);
	for (i = 0; i < n; i++)
	{
		Datum		values[5];
		bool		nulls[5];

		if (rows[i].key.roleid == InvalidOid)
			continue;
		if (!all && (rows[i].key.dbid != MyDatabaseId ||
					 !has_privs_of_role(GetUserId(), rows[i].key.roleid)))
			continue;
		memset(nulls, 0, sizeof(nulls));
		values[0] = ObjectIdGetDatum(rows[i].key.dbid);
		values[1] = ObjectIdGetDatum(rows[i].key.roleid);
		values[2] = Int32GetDatum(rows[i].queued);
		values[3] = Int64GetDatum(rows[i].dropped);
		values[4] = Int64GetDatum(rows[i].discarded);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * A queued detail as jsonb.  The pipeline writes only JSON objects, but a
 * reader must never fail because of an entry: anything else is shown as a
 * string under "invalid_detail".  jsonb_in takes no lock and touches no
 * shared state, so its error can be caught without a subtransaction.
 */
static Datum
detail_jsonb(const char *json)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile Datum result = (Datum) 0;

	if (json[0] == '{')
	{
		PG_TRY();
		{
			result = DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			FlushErrorState();
			result = (Datum) 0;
		}
		PG_END_TRY();
	}
	if (result == (Datum) 0)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfoChar(&buf, '{');
		ig_append_json_string(&buf, "invalid_detail", json, true);
		appendStringInfoChar(&buf, '}');
		result = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	}
	return result;
}

/* Whether the caller may read relid, decided once per relation per call. */
typedef struct IgPendingReadable
{
	Oid			relid;
	bool		readable;
} IgPendingReadable;

static bool
pending_readable(HTAB **decided, Oid relid)
{
	IgPendingReadable *entry;
	bool		found;

	if (!OidIsValid(relid))
		return false;
	if (*decided == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(IgPendingReadable);
		ctl.hcxt = CurrentMemoryContext;
		*decided = hash_create("pg_integrity_guard pending readers", 16, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(*decided, &relid, HASH_ENTER, &found);
	if (!found)
		entry->readable = ig_relation_readable_by(relid, GetUserId());
	return entry->readable;
}

/*
 * integrity_guard._pending() (incident.c): this database's incidents still
 * in the queue, as rows of the audit table (id NULL), for the readers.
 * Writes nothing, waits for nothing.  Columns are filled by name, so that
 * columns added to the table come out NULL.
 */
void
ig_queue_pending_rows(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	desc;
	IgQueueEntry *entries;
	Datum	   *values;
	bool	   *nulls;
	char	   *dbname;
	Oid			audit_relid;
	bool		filter;
	HTAB	   *readable = NULL;
	Oid			relid;
	int			inflight;
	int			n;
	int			i;
	int			a;

	InitMaterializedSRF(fcinfo, 0);
	/* the queue holds other sessions' incidents even if this one's are not */
	if (ig_shared == NULL)
		return;
	desc = rsinfo->setDesc;

	/*
	 * Exactly what a reader of the table would see: nothing without SELECT
	 * on it, else the rows its row-level policy lets through
	 * (integrity_guard._incident_visible), unless the caller bypasses it.
	 */
	audit_relid = get_relname_relid("audit_log",
									get_namespace_oid(IG_SCHEMA_NAME, false));
	if (!OidIsValid(audit_relid) ||
		pg_class_aclcheck(audit_relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return;
	/*
	 * The table's rule (_incident_visible) for a role under its policy:
	 * pg_read_all_stats sees all, any other role the incidents of
	 * relations it may read (a queued incident is of this database).
	 * Decided here once per relation, not by a SQL call per entry.
	 */
	filter = check_enable_rls(audit_relid, InvalidOid, true) == RLS_ENABLED &&
		!has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);
	dbname = get_database_name(MyDatabaseId);
	n = queue_pending(&entries, &inflight);
	for (i = 0; i < n; i++)
	{
		IgEventKey *k = &entries[i].key;
		const char *table_name = k->table_name;
		const char *target = k->target;

		/* a captured error's table: bound as the writer will bind it */
		relid = OidIsValid(k->relid) ? k->relid :
			ig_citus_bind_captured(k->schema_name, &table_name, &target,
								   entries[i].counts.bind_horizon);
		for (a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);
			const char *name = NameStr(att->attname);
			char	   *s = NULL;
			bool		isnull = false;
			Datum		v = (Datum) 0;

			if (att->attisdropped)
				isnull = true;
			else if (strcmp(name, "event_type") == 0)
				s = k->event_type;
			else if (strcmp(name, "schema_name") == 0)
				s = k->schema_name;
			else if (strcmp(name, "table_name") == 0)
				s = (char *) table_name;
			else if (strcmp(name, "relid") == 0)
			{
				if (OidIsValid(relid))
					v = ObjectIdGetDatum(relid);
				else
					isnull = true;
			}
			else if (strcmp(name, "target") == 0)
				s = (char *) target;
			else if (strcmp(name, "occurrences") == 0)
				v = Int64GetDatum(entries[i].counts.occurrences);
			else if (strcmp(name, "first_seen") == 0)
				v = TimestampTzGetDatum(entries[i].counts.first_seen);
			else if (strcmp(name, "last_seen") == 0)
				v = TimestampTzGetDatum(entries[i].counts.last_seen);
			else if (strcmp(name, "role_name") == 0)
				s = GetUserNameFromId(k->roleid, true);
			else if (strcmp(name, "database_name") == 0)
				s = dbname;
			else if (strcmp(name, "application_name") == 0)
				s = k->application_name;
			else if (strcmp(name, "detail") == 0)
			{
				char	   *json = entry_detail(&entries[i]);

				if (json)
					v = detail_jsonb(json);
				else
					isnull = true;
			}
			else
				isnull = true;

			if (!isnull && v == (Datum) 0)
			{
				if (s == NULL || s[0] == '\0')
					isnull = true;
				else if (att->atttypid == NAMEOID)
					v = DirectFunctionCall1(namein, CStringGetDatum(s));
				else
					v = CStringGetTextDatum(s);
			}
			values[a] = isnull ? (Datum) 0 : v;
			nulls[a] = isnull;
		}
		if (filter && !pending_readable(&readable, relid))
			continue;
		tuplestore_putvalues(rsinfo->setResult, desc, values, nulls);
	}
}

/*
 * integrity_guard._pipeline_status() returns record: the queue, the
 * workers and the statistics, for status().  The counts cover the whole
 * server for superusers and pg_read_all_stats, else the caller's own roles
 * in this database.
 */
PG_FUNCTION_INFO_V1(ig_pipeline_status);

/* 1.2 declares the first 17 columns, 1.3 all */
#define IG_STATUS_COLS 19

Datum
ig_pipeline_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[IG_STATUS_COLS];
	bool		nulls[IG_STATUS_COLS];
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	for (i = 0; i < IG_STATUS_COLS; i++)
		nulls[i] = true;
	values[0] = BoolGetDatum(ig_shared != NULL);
	nulls[0] = false;
	if (ig_shared != NULL)
	{
		IgDbSlot	slot;
		IgDbSlot   *s;
		bool		have_slot = false;
		bool		all = sees_all();
		int64		queued;
		int64		dropped;
		int64		discarded;
		int			nstats;
		int64		evicted;
		pid_t		launcher;
		TimestampTz reset;

		owner_sums(all, &queued, &dropped, &discarded);
		if (all)
		{
			dropped = pg_atomic_read_u64(&ig_shared->dropped);
			discarded = pg_atomic_read_u64(&ig_shared->discarded);
		}
		ig_stats_state(&nstats, &evicted, &reset);
		LWLockAcquire(ig_shared->db_lock, LW_SHARED);
		s = ig_queue_slot(MyDatabaseId, false);
		if (s)
		{
			slot = *s;
			have_slot = true;
		}
		LWLockRelease(ig_shared->db_lock);
		SpinLockAcquire(&ig_shared->mutex);
		launcher = ig_shared->launcher_pid;
		SpinLockRelease(&ig_shared->mutex);

		values[1] = CStringGetTextDatum(all ? "server" : "own roles in this database");
		values[2] = Int32GetDatum(ig_queue_size);
		values[3] = Int64GetDatum(queued);
		values[4] = Int64GetDatum(dropped);
		values[5] = Int64GetDatum(discarded);
		values[6] = Int32GetDatum((int32) launcher);
		values[11] = Int32GetDatum(nstats);
		values[12] = Int32GetDatum(ig_max_stats);
		values[13] = Int64GetDatum(evicted);
		values[14] = TimestampTzGetDatum(reset);
		values[15] = Int32GetDatum(ig_max_flush_jobs);
		for (i = 1; i < IG_STATUS_COLS; i++)
			nulls[i] = false;
		nulls[6] = (launcher == 0);
		nulls[7] = nulls[8] = nulls[9] = nulls[10] = nulls[16] = true;
		nulls[17] = nulls[18] = true;
		if (have_slot)
		{
			if (slot.last_flush != 0)
			{
				values[7] = TimestampTzGetDatum(slot.last_flush);
				nulls[7] = false;
			}
			values[8] = Int64GetDatum(slot.written);
			values[9] = Int64GetDatum(slot.failures_total);
			values[10] = Int32GetDatum(slot.failures);
			nulls[8] = nulls[9] = nulls[10] = false;
			values[17] = Int64GetDatum(slot.set_aside);
			nulls[17] = false;
			if (slot.set_aside > 0 && slot.set_aside_error[0] != '\0')
			{
				values[18] = CStringGetTextDatum(slot.set_aside_error);
				nulls[18] = false;
			}
			if (slot.failures > 0 && slot.last_error[0] != '\0')
			{
				values[16] = CStringGetTextDatum(slot.last_error);
				nulls[16] = false;
			}
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

