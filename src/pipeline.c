/*-------------------------------------------------------------------------
 *
 * pipeline.c
 *		The durable audit pipeline: a shared-memory queue of incidents, the
 *		background workers that drain it, and cumulative statistics.
 *
 * Active only when the library is in shared_preload_libraries.  Backends
 * push the incidents their statements aggregated (audit.c) and the errors
 * they sent to clients (capture.c) into a shared hash table keyed by the
 * whole incident: a hot counter saturated by thousands of statements per
 * second adds to one entry instead of filling a queue, and writers of an
 * existing entry share the lock and take only the entry's spinlock.  The
 * table's size is integrity_guard.queue_size; a push into a full table is
 * counted as dropped and never waits or fails.
 *
 * A launcher (static background worker, no database) wakes every half
 * flush_interval and starts a short-lived job per database with pending
 * incidents.  The job connects, writes that database's incidents into
 * integrity_guard.audit_log in one transaction and exits, so it never
 * holds a connection that would block DROP DATABASE for long.  A database
 * without the extension only counts in the statistics.  Readers drain their
 * own database first (audit.c), so they always see every recorded event.
 *
 * Statistics are a second shared table, cumulative per (database, table,
 * event type, target).  Both tables are written to pg_stat/ at a clean
 * shutdown and read back at start-up, like pg_stat_statements; a crash
 * loses them, as it loses any shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "pg_integrity_guard.h"

#define IG_MAX_DATABASES	64
#define IG_FILE				PGSTAT_STAT_PERMANENT_DIRECTORY "/pg_integrity_guard.stat"
#define IG_FILE_MAGIC		0x49474131	/* "IGA1" */
#define IG_JOB_FAILURES		3	/* failed jobs before a database's events go */
#define IG_NO_EXTENSION_RECHECK_MS	60000

typedef struct IgStatsKey
{
	Oid			dbid;
	char		event_type[IG_TYPE_LEN];
	char		schema_name[NAMEDATALEN];
	char		table_name[NAMEDATALEN];
	char		target[IG_TARGET_LEN];
} IgStatsKey;

typedef struct IgStatsEntry
{
	IgStatsKey	key;
	IgCounts	counts;
} IgStatsEntry;

typedef enum IgDbState
{
	IG_DB_UNKNOWN = 0,
	IG_DB_INSTALLED,
	IG_DB_NO_EXTENSION
} IgDbState;

typedef struct IgDbSlot
{
	Oid			dbid;
	IgDbState	state;
	int			failures;		/* jobs that stopped without finishing */
	TimestampTz checked;		/* when state was last established */
	TimestampTz last_flush;
	int64		written;		/* incident rows written */
	TransactionId job_xid;		/* the job that may hold taken incidents */
} IgDbSlot;

typedef struct IgShared
{
	LWLock	   *queue_lock;
	LWLock	   *stats_lock;
	slock_t		mutex;			/* the fields below */
	TimestampTz stats_reset;
	TimestampTz last_flush;
	pid_t		launcher_pid;
	int64		discarded;		/* events of databases without the extension */
	IgDbSlot	dbs[IG_MAX_DATABASES];
	pg_atomic_uint64 dropped;	/* events a full queue refused */
	pg_atomic_uint64 stats_dropped;
} IgShared;

int			ig_queue_size = 1024;
int			ig_flush_interval = 1000;
int			ig_max_stats = 1000;
bool		ig_durable_audit = true;

static IgShared *ig_shared = NULL;
static HTAB *ig_queue = NULL;
static HTAB *ig_stats = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void ig_pipeline_xact_callback(XactEvent event, void *arg);
PGDLLEXPORT void ig_launcher_main(Datum arg);
PGDLLEXPORT void ig_job_main(Datum arg);

/* Hash a zero-padded string field up to its terminator only. */
static inline uint32
hash_field(uint32 h, const char *s)
{
	return hash_combine(h, hash_bytes((const unsigned char *) s, strlen(s)));
}

static uint32
ig_event_hash(const void *key, Size keysize)
{
	const IgEventKey *k = key;
	uint32		h;

	h = hash_bytes_uint32(k->dbid);
	h = hash_combine(h, hash_bytes_uint32(k->relid));
	h = hash_combine(h, hash_bytes_uint32(k->roleid));
	h = hash_field(h, k->event_type);
	h = hash_field(h, k->schema_name);
	h = hash_field(h, k->table_name);
	h = hash_field(h, k->target);
	h = hash_field(h, k->application_name);
	return hash_field(h, k->detail);
}

static uint32
ig_stats_hash(const void *key, Size keysize)
{
	const IgStatsKey *k = key;
	uint32		h;

	h = hash_bytes_uint32(k->dbid);
	h = hash_field(h, k->event_type);
	h = hash_field(h, k->schema_name);
	h = hash_field(h, k->table_name);
	return hash_field(h, k->target);
}

/* Copy a string into a fixed field, cut at a character boundary. */
void
ig_copy_bounded(char *dst, size_t size, const char *src)
{
	int			len;

	if (src == NULL)
	{
		dst[0] = '\0';
		return;
	}
	len = strlen(src);
	if ((size_t) len >= size)
		len = pg_mbcliplen(src, len, size - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/*
 * Store a JSON detail.  One too long for the field becomes a valid JSON
 * object holding the start of the original text.
 */
void
ig_set_detail(IgEventKey *key, const char *json)
{
	size_t		len = json ? strlen(json) : 0;
	char	   *out;
	int			keep;
	int			i;

	if (len < IG_DETAIL_LEN)
	{
		ig_copy_bounded(key->detail, IG_DETAIL_LEN, json);
		return;
	}
	/* every kept byte escapes to at most 6 */
	keep = pg_mbcliplen(json, len, (IG_DETAIL_LEN - 32) / 6);
	out = key->detail;
	out += sprintf(out, "{\"truncated\": \"");
	for (i = 0; i < keep; i++)
	{
		unsigned char c = (unsigned char) json[i];

		if (c == '"' || c == '\\')
		{
			*out++ = '\\';
			*out++ = c;
		}
		else if (c < 0x20)
			out += sprintf(out, "\\u%04x", c);
		else
			*out++ = c;
	}
	strcpy(out, "\"}");
}

bool
ig_pipeline_available(void)
{
	return ig_shared != NULL;
}

/*
 * True while this backend holds one of the pipeline's locks: an error
 * raised there must not be captured, or the hook would wait on itself.
 */
bool
ig_pipeline_busy(void)
{
	return ig_shared != NULL &&
		(LWLockHeldByMe(ig_shared->queue_lock) ||
		 LWLockHeldByMe(ig_shared->stats_lock));
}

/*
 * Add events to the entry of a key in a shared table, making the entry if
 * there is room; false when there is none.  Both kinds of entry are a key
 * followed by IgCounts at counts_offset.
 */
static bool
shared_add(HTAB *table, LWLock *lock, int max, const void *key,
		   Size counts_offset, int64 n, TimestampTz first_seen,
		   TimestampTz last_seen)
{
	char	   *entry;
	IgCounts   *counts;
	uint32		hash = get_hash_value(table, key);
	bool		found;

	/* the common case: the entry exists, shared lock and its spinlock */
	LWLockAcquire(lock, LW_SHARED);
	entry = hash_search_with_hash_value(table, key, hash, HASH_FIND, NULL);
	if (entry == NULL)
	{
		LWLockRelease(lock);
		LWLockAcquire(lock, LW_EXCLUSIVE);
		entry = hash_search_with_hash_value(table, key, hash,
											hash_get_num_entries(table) < max ?
											HASH_ENTER_NULL : HASH_FIND,
											&found);
		if (entry != NULL && !found)
		{
			counts = (IgCounts *) (entry + counts_offset);
			SpinLockInit(&counts->mutex);
			counts->occurrences = 0;
			counts->first_seen = first_seen;
			counts->last_seen = last_seen;
		}
	}
	if (entry != NULL)
	{
		counts = (IgCounts *) (entry + counts_offset);
		SpinLockAcquire(&counts->mutex);
		counts->occurrences += n;
		if (first_seen < counts->first_seen)
			counts->first_seen = first_seen;
		if (last_seen > counts->last_seen)
			counts->last_seen = last_seen;
		SpinLockRelease(&counts->mutex);
	}
	LWLockRelease(lock);
	return entry != NULL;
}

static void
stats_add(const IgEventKey *ev, int64 n, TimestampTz first_seen,
		  TimestampTz last_seen)
{
	IgStatsKey	key;

	memset(&key, 0, sizeof(key));
	key.dbid = ev->dbid;
	memcpy(key.event_type, ev->event_type, IG_TYPE_LEN);
	memcpy(key.schema_name, ev->schema_name, NAMEDATALEN);
	memcpy(key.table_name, ev->table_name, NAMEDATALEN);
	memcpy(key.target, ev->target, IG_TARGET_LEN);
	if (!shared_add(ig_stats, ig_shared->stats_lock, ig_max_stats, &key,
					offsetof(IgStatsEntry, counts), n, first_seen, last_seen))
		pg_atomic_fetch_add_u64(&ig_shared->stats_dropped, n);
}

/* Add to the queue; false when it is full. */
static inline bool
queue_add(const IgEventKey *key, int64 n, TimestampTz first_seen,
		  TimestampTz last_seen)
{
	return shared_add(ig_queue, ig_shared->queue_lock, ig_queue_size, key,
					  offsetof(IgQueueEntry, counts), n, first_seen, last_seen);
}

/*
 * Record 'n' events of one incident.  Never waits on anything but the
 * pipeline's own short locks, never raises: safe from the error hook.
 */
void
ig_pipeline_push(const IgEventKey *key, int64 n, TimestampTz first_seen,
				 TimestampTz last_seen)
{
	if (ig_shared == NULL || n <= 0)
		return;
	stats_add(key, n, first_seen, last_seen);
	if (!queue_add(key, n, first_seen, last_seen))
		pg_atomic_fetch_add_u64(&ig_shared->dropped, n);
}

/*
 * Remove and return (palloc'd) every queued incident of a database.  The
 * caller writes them or gives them back with ig_queue_restore().
 */
int
ig_queue_take(Oid dbid, IgQueueEntry **entries)
{
	HASH_SEQ_STATUS status;
	IgQueueEntry *entry;
	IgQueueEntry *out;
	int			count = 0;
	int			n = 0;

	*entries = NULL;
	if (ig_shared == NULL)
		return 0;

	/* count first: no allocation while holding the lock */
	LWLockAcquire(ig_shared->queue_lock, LW_SHARED);
	hash_seq_init(&status, ig_queue);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (entry->key.dbid == dbid)
			count++;
	LWLockRelease(ig_shared->queue_lock);
	if (count == 0)
		return 0;

	out = palloc(sizeof(IgQueueEntry) * count);
	LWLockAcquire(ig_shared->queue_lock, LW_EXCLUSIVE);
	hash_seq_init(&status, ig_queue);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (entry->key.dbid != dbid || n >= count)
			continue;
		memcpy(&out[n++], entry, sizeof(IgQueueEntry));
		hash_search(ig_queue, &entry->key, HASH_REMOVE, NULL);
	}
	LWLockRelease(ig_shared->queue_lock);
	*entries = out;
	return n;
}

/* Give back incidents whose writing failed; already counted in stats. */
void
ig_queue_restore(IgQueueEntry *entries, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (!queue_add(&entries[i].key, entries[i].counts.occurrences,
					   entries[i].counts.first_seen, entries[i].counts.last_seen))
			pg_atomic_fetch_add_u64(&ig_shared->dropped,
									entries[i].counts.occurrences);
}

/* The slot of a database, made on first use; NULL when the table is full. */
static IgDbSlot *
db_slot(Oid dbid)
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
	if (free_slot != NULL)
	{
		memset(free_slot, 0, sizeof(IgDbSlot));
		free_slot->dbid = dbid;
	}
	return free_slot;
}

/* A job or a reader wrote a database's incidents (or found no extension). */
void
ig_pipeline_report_flush(Oid dbid, bool has_extension, int64 written)
{
	IgDbSlot   *slot;
	TimestampTz now = GetCurrentTimestamp();

	if (ig_shared == NULL)
		return;
	SpinLockAcquire(&ig_shared->mutex);
	slot = db_slot(dbid);
	if (slot != NULL)
	{
		slot->state = has_extension ? IG_DB_INSTALLED : IG_DB_NO_EXTENSION;
		slot->checked = now;
		slot->failures = 0;
		if (has_extension)
		{
			slot->last_flush = now;
			slot->written += written;
		}
	}
	if (has_extension)
		ig_shared->last_flush = now;
	SpinLockRelease(&ig_shared->mutex);
}

/*
 * Record the transaction in which a job is about to take a database's
 * incidents, or InvalidTransactionId once it has ended.  Set before the
 * take, so that a reader finding the queue emptied by the job also finds
 * the transaction to wait for.
 */
void
ig_pipeline_set_job(Oid dbid, TransactionId xid)
{
	IgDbSlot   *slot;

	if (ig_shared == NULL)
		return;
	SpinLockAcquire(&ig_shared->mutex);
	slot = db_slot(dbid);
	if (slot != NULL)
		slot->job_xid = xid;
	SpinLockRelease(&ig_shared->mutex);
}

/*
 * The transaction of the job that may still hold a database's incidents,
 * or InvalidTransactionId.  A finished one may be returned; waiting for it
 * costs nothing.
 */
TransactionId
ig_pipeline_job_xid(Oid dbid)
{
	TransactionId xid = InvalidTransactionId;
	int			i;

	if (ig_shared == NULL)
		return xid;
	SpinLockAcquire(&ig_shared->mutex);
	for (i = 0; i < IG_MAX_DATABASES; i++)
		if (ig_shared->dbs[i].dbid == dbid)
		{
			xid = ig_shared->dbs[i].job_xid;
			break;
		}
	SpinLockRelease(&ig_shared->mutex);
	return xid;
}

/* Drop a database's queued incidents (they stay in the statistics). */
void
ig_pipeline_discard(Oid dbid)
{
	IgQueueEntry *entries;
	int64		events = 0;
	int			n;
	int			i;

	n = ig_queue_take(dbid, &entries);
	for (i = 0; i < n; i++)
		events += entries[i].counts.occurrences;
	if (entries)
		pfree(entries);
	SpinLockAcquire(&ig_shared->mutex);
	ig_shared->discarded += events;
	SpinLockRelease(&ig_shared->mutex);
}

/*
 * Shared memory
 */
static Size
ig_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(IgShared));

	size = add_size(size, hash_estimate_size(ig_queue_size,
											 sizeof(IgQueueEntry)));
	size = add_size(size, hash_estimate_size(ig_max_stats,
											 sizeof(IgStatsEntry)));
	return size;
}

static void
ig_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(ig_shmem_size());
	RequestNamedLWLockTranche("pg_integrity_guard", 2);
}

static void ig_shmem_shutdown(int code, Datum arg);
static void ig_load_file(void);

static void
ig_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ig_shared = ShmemInitStruct("pg_integrity_guard", sizeof(IgShared), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("pg_integrity_guard");

		memset(ig_shared, 0, sizeof(IgShared));
		ig_shared->queue_lock = &locks[0].lock;
		ig_shared->stats_lock = &locks[1].lock;
		SpinLockInit(&ig_shared->mutex);
		pg_atomic_init_u64(&ig_shared->dropped, 0);
		pg_atomic_init_u64(&ig_shared->stats_dropped, 0);
		ig_shared->stats_reset = GetCurrentTimestamp();
	}

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(IgEventKey);
	info.entrysize = sizeof(IgQueueEntry);
	info.hash = ig_event_hash;
	ig_queue = ShmemInitHash("pg_integrity_guard queue",
							 ig_queue_size, ig_queue_size, &info,
							 HASH_ELEM | HASH_FUNCTION | HASH_FIXED_SIZE);
	info.keysize = sizeof(IgStatsKey);
	info.entrysize = sizeof(IgStatsEntry);
	info.hash = ig_stats_hash;
	ig_stats = ShmemInitHash("pg_integrity_guard stats",
							 ig_max_stats, ig_max_stats, &info,
							 HASH_ELEM | HASH_FUNCTION | HASH_FIXED_SIZE);
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
 * Read n saved entries into a table (both kinds start with their key);
 * false on a short file.
 */
static bool
load_entries(FILE *file, HTAB *table, int max, Size entrysize,
			 Size mutex_offset, int n)
{
	char	   *saved = palloc(entrysize);
	bool		ok = true;
	int			i;

	for (i = 0; i < n; i++)
	{
		char	   *entry;
		bool		found;

		if (fread(saved, entrysize, 1, file) != 1)
		{
			ok = false;
			break;
		}
		if (hash_get_num_entries(table) >= max)
			continue;
		entry = hash_search(table, saved, HASH_ENTER_NULL, &found);
		if (entry == NULL)
			continue;
		memcpy(entry, saved, entrysize);
		SpinLockInit((slock_t *) (entry + mutex_offset));
	}
	pfree(saved);
	return ok;
}

/* Write every entry of a table; false on a write error. */
static bool
save_entries(FILE *file, HTAB *table, Size entrysize)
{
	HASH_SEQ_STATUS status;
	void	   *entry;

	hash_seq_init(&status, table);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (fwrite(entry, entrysize, 1, file) != 1)
		{
			hash_seq_term(&status);
			return false;
		}
	return true;
}

/* Read what the last clean shutdown saved, then remove the file. */
static void
ig_load_file(void)
{
	FILE	   *file;
	IgFileHeader header;

	file = AllocateFile(IG_FILE, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", IG_FILE)));
		return;
	}
	if (fread(&header, sizeof(header), 1, file) != 1 ||
		header.magic != IG_FILE_MAGIC ||
		header.queue_entry_size != sizeof(IgQueueEntry) ||
		header.stats_entry_size != sizeof(IgStatsEntry))
	{
		ereport(LOG,
				(errmsg("ignoring pg_integrity_guard statistics file \"%s\": written by another version",
						IG_FILE)));
		goto done;
	}
	ig_shared->stats_reset = header.stats_reset;
	if (load_entries(file, ig_stats, ig_max_stats, sizeof(IgStatsEntry),
					 offsetof(IgStatsEntry, counts.mutex), header.nstats))
		(void) load_entries(file, ig_queue, ig_queue_size, sizeof(IgQueueEntry),
							offsetof(IgQueueEntry, counts.mutex), header.nqueue);
done:
	FreeFile(file);
	/* a crash must not bring these back a second time */
	unlink(IG_FILE);
}

/* At a clean shutdown: statistics and undrained incidents to disk. */
static void
ig_shmem_shutdown(int code, Datum arg)
{
	FILE	   *file;
	IgFileHeader header;

	if (code != 0 || ig_shared == NULL)
		return;

	file = AllocateFile(IG_FILE ".tmp", PG_BINARY_W);
	if (file == NULL)
		goto error;
	header.magic = IG_FILE_MAGIC;
	header.queue_entry_size = sizeof(IgQueueEntry);
	header.stats_entry_size = sizeof(IgStatsEntry);
	header.nstats = hash_get_num_entries(ig_stats);
	header.nqueue = hash_get_num_entries(ig_queue);
	header.stats_reset = ig_shared->stats_reset;
	if (fwrite(&header, sizeof(header), 1, file) != 1)
		goto error;
	if (!save_entries(file, ig_stats, sizeof(IgStatsEntry)) ||
		!save_entries(file, ig_queue, sizeof(IgQueueEntry)))
		goto error;
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
 * Background workers
 */
static void
fill_worker(BackgroundWorker *worker, const char *function, const char *name)
{
	memset(worker, 0, sizeof(BackgroundWorker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "pg_integrity_guard");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", name);
}

/* One launcher round: a job for every database with pending incidents. */
static void
launcher_round(BackgroundWorkerHandle **handles)
{
	Oid			dbids[IG_MAX_DATABASES];
	int			ndbs = 0;
	HASH_SEQ_STATUS status;
	IgQueueEntry *entry;
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	LWLockAcquire(ig_shared->queue_lock, LW_SHARED);
	hash_seq_init(&status, ig_queue);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		for (i = 0; i < ndbs; i++)
			if (dbids[i] == entry->key.dbid)
				break;
		if (i == ndbs && ndbs < IG_MAX_DATABASES)
			dbids[ndbs++] = entry->key.dbid;
	}
	LWLockRelease(ig_shared->queue_lock);

	/*
	 * A full slot table makes room: databases with nothing queued and no job
	 * running give up their slot.
	 */
	SpinLockAcquire(&ig_shared->mutex);
	for (i = 0; i < IG_MAX_DATABASES; i++)
		if (ig_shared->dbs[i].dbid == InvalidOid)
			break;
	if (i == IG_MAX_DATABASES)
	{
		for (i = 0; i < IG_MAX_DATABASES; i++)
		{
			int			j;

			for (j = 0; j < ndbs; j++)
				if (dbids[j] == ig_shared->dbs[i].dbid)
					break;
			if (j == ndbs && handles[i] == NULL)
				ig_shared->dbs[i].dbid = InvalidOid;
		}
	}
	SpinLockRelease(&ig_shared->mutex);

	for (i = 0; i < ndbs; i++)
	{
		IgDbSlot   *slot;
		int			index;
		bool		discard = false;
		pid_t		pid;
		BackgroundWorker worker;

		SpinLockAcquire(&ig_shared->mutex);
		slot = db_slot(dbids[i]);
		index = slot ? slot - ig_shared->dbs : -1;
		SpinLockRelease(&ig_shared->mutex);
		if (slot == NULL)
		{
			ig_pipeline_discard(dbids[i]);
			continue;
		}

		if (handles[index] != NULL)
		{
			BgwHandleStatus st = GetBackgroundWorkerPid(handles[index], &pid);

			if (st == BGWH_STARTED || st == BGWH_NOT_YET_STARTED)
				continue;		/* still draining */
			pfree(handles[index]);
			handles[index] = NULL;
		}

		SpinLockAcquire(&ig_shared->mutex);
		if (slot->state == IG_DB_NO_EXTENSION &&
			!TimestampDifferenceExceeds(slot->checked, now,
										IG_NO_EXTENSION_RECHECK_MS))
			discard = true;
		else if (slot->failures >= IG_JOB_FAILURES)
		{
			/* a dropped database, or one refusing connections */
			discard = true;
			slot->failures = 0;
		}
		/* counted as failed until the job says it finished */
		if (!discard)
			slot->failures++;
		SpinLockRelease(&ig_shared->mutex);

		if (discard)
		{
			ig_pipeline_discard(dbids[i]);
			continue;
		}

		fill_worker(&worker, "ig_job_main", "pg_integrity_guard flush");
		worker.bgw_flags |= BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		worker.bgw_main_arg = ObjectIdGetDatum(dbids[i]);
		worker.bgw_notify_pid = MyProcPid;
		if (!RegisterDynamicBackgroundWorker(&worker, &handles[index]))
		{
			/* no free worker slot: try again next round, readers drain */
			handles[index] = NULL;
			SpinLockAcquire(&ig_shared->mutex);
			slot->failures--;
			SpinLockRelease(&ig_shared->mutex);
		}
	}
}

void
ig_launcher_main(Datum arg)
{
	BackgroundWorkerHandle *handles[IG_MAX_DATABASES];

	memset(handles, 0, sizeof(handles));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&ig_shared->mutex);
	ig_shared->launcher_pid = MyProcPid;
	SpinLockRelease(&ig_shared->mutex);

	while (!ShutdownRequestPending)
	{
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(ig_flush_interval / 2, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (ShutdownRequestPending)
			break;
		launcher_round(handles);
	}

	SpinLockAcquire(&ig_shared->mutex);
	ig_shared->launcher_pid = 0;
	SpinLockRelease(&ig_shared->mutex);
	proc_exit(0);
}

/* A job: write one database's incidents, then exit. */
void
ig_job_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	ig_audit_drain_job(dbid);
	proc_exit(0);
}

/*
 * Module set-up, from _PG_init.  Shared memory and the launcher only when
 * preloading.
 */
void
ig_pipeline_init(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("integrity_guard.flush_interval",
							"Time within which queued incidents reach the audit table.",
							NULL,
							&ig_flush_interval,
							1000, 10, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("integrity_guard.durable_audit",
							 "Sends incidents through the shared queue, so they survive the rollback of their transaction.",
							 "Needs shared_preload_libraries.  When off, incidents are written in the transaction that produced them.",
							 &ig_durable_audit,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	RegisterXactCallback(ig_pipeline_xact_callback, NULL);

	/* sizes of shared memory exist only where it is made */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("integrity_guard.queue_size",
							"Distinct pending incidents the shared audit queue holds.",
							"Events of an incident already queued add to it; a new incident finding the queue full is counted as dropped.",
							&ig_queue_size,
							1024, 16, 1000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("integrity_guard.max_stats",
							"Distinct (database, table, event type, target) counters kept in shared memory.",
							NULL,
							&ig_max_stats,
							1000, 100, 1000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ig_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ig_shmem_startup;

	fill_worker(&worker, "ig_launcher_main", "pg_integrity_guard launcher");
	worker.bgw_restart_time = 10;
	RegisterBackgroundWorker(&worker);
}

/*
 * SQL functions
 */

/* Superuser, or a member of the extension's owner. */
static void
require_owner(const char *action)
{
	Oid			owner;

	if (superuser())
		return;
	if (ig_extension_owner(&owner) && has_privs_of_role(GetUserId(), owner))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s", action),
			 errhint("Only the extension owner or a superuser can do this.")));
}

/*
 * Whether the caller may see an incident of a table known by name: members
 * of pg_read_all_stats see all, others only tables of this database they
 * can SELECT.
 */
static bool
stats_visible(bool all, Oid dbid, const char *schema_name,
			  const char *table_name)
{
	Oid			nspid;
	Oid			relid;

	if (all)
		return true;
	if (dbid != MyDatabaseId || schema_name[0] == '\0' || table_name[0] == '\0')
		return false;
	nspid = get_namespace_oid(schema_name, true);
	if (!OidIsValid(nspid))
		return false;
	relid = get_relname_relid(table_name, nspid);
	return OidIsValid(relid) &&
		pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
}

static Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = (s[0] == '\0');
	return *isnull ? (Datum) 0 : CStringGetTextDatum(s);
}

/*
 * integrity_guard._stats() returns setof record: the cumulative counters
 * the caller may see.
 */
PG_FUNCTION_INFO_V1(ig_stats_fn);

Datum
ig_stats_fn(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS status;
	IgStatsEntry *entry;
	IgStatsEntry *copies;
	TimestampTz reset;
	bool		all;
	int			n = 0;
	int			count;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (ig_shared == NULL)
		return (Datum) 0;
	ig_audit_push_if_durable();

	all = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	/* copy under the lock, check visibility (catalog access) after it */
	count = ig_max_stats;
	copies = palloc(sizeof(IgStatsEntry) * count);
	LWLockAcquire(ig_shared->stats_lock, LW_SHARED);
	hash_seq_init(&status, ig_stats);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (n >= count)
		{
			hash_seq_term(&status);
			break;
		}
		memcpy(&copies[n].key, &entry->key, sizeof(IgStatsKey));
		SpinLockAcquire(&entry->counts.mutex);
		copies[n].counts = entry->counts;
		SpinLockRelease(&entry->counts.mutex);
		n++;
	}
	LWLockRelease(ig_shared->stats_lock);
	SpinLockAcquire(&ig_shared->mutex);
	reset = ig_shared->stats_reset;
	SpinLockRelease(&ig_shared->mutex);

	for (i = 0; i < n; i++)
	{
		IgStatsKey *k = &copies[i].key;
		Datum		values[9];
		bool		nulls[9];

		if (!stats_visible(all, k->dbid, k->schema_name, k->table_name))
			continue;
		memset(nulls, 0, sizeof(nulls));
		values[0] = ObjectIdGetDatum(k->dbid);
		values[1] = text_or_null(k->schema_name, &nulls[1]);
		values[2] = text_or_null(k->table_name, &nulls[2]);
		values[3] = text_or_null(k->event_type, &nulls[3]);
		values[4] = text_or_null(k->target, &nulls[4]);
		values[5] = Int64GetDatum(copies[i].counts.occurrences);
		values[6] = TimestampTzGetDatum(copies[i].counts.first_seen);
		values[7] = TimestampTzGetDatum(copies[i].counts.last_seen);
		values[8] = TimestampTzGetDatum(reset);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * integrity_guard.stats_reset() returns timestamptz: forget every counter
 * (extension owner or superuser).
 */
PG_FUNCTION_INFO_V1(ig_stats_reset);

Datum
ig_stats_reset(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS status;
	IgStatsEntry *entry;
	TimestampTz now = GetCurrentTimestamp();

	require_owner("reset the integrity_guard statistics");
	if (ig_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("integrity_guard statistics are not available"),
				 errdetail("The statistics live in shared memory, which needs the library preloaded."),
				 errhint("Add pg_integrity_guard to shared_preload_libraries and restart the server.")));

	LWLockAcquire(ig_shared->stats_lock, LW_EXCLUSIVE);
	hash_seq_init(&status, ig_stats);
	while ((entry = hash_seq_search(&status)) != NULL)
		hash_search(ig_stats, &entry->key, HASH_REMOVE, NULL);
	LWLockRelease(ig_shared->stats_lock);
	pg_atomic_write_u64(&ig_shared->stats_dropped, 0);
	SpinLockAcquire(&ig_shared->mutex);
	ig_shared->stats_reset = now;
	SpinLockRelease(&ig_shared->mutex);
	PG_RETURN_TIMESTAMPTZ(now);
}

/*
 * integrity_guard._pipeline_status() returns record: the queue, the
 * workers and the statistics, for status().
 */
PG_FUNCTION_INFO_V1(ig_pipeline_status);

Datum
ig_pipeline_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[13];
	bool		nulls[13];
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	for (i = 0; i < 13; i++)
		nulls[i] = true;
	values[0] = BoolGetDatum(ig_shared != NULL);
	nulls[0] = false;
	if (ig_shared != NULL)
	{
		IgDbSlot	slot;
		bool		have_slot = false;
		int			used;
		int			nstats;
		pid_t		launcher;
		TimestampTz last_flush;
		int64		discarded;
		TimestampTz reset;

		LWLockAcquire(ig_shared->queue_lock, LW_SHARED);
		used = hash_get_num_entries(ig_queue);
		LWLockRelease(ig_shared->queue_lock);
		LWLockAcquire(ig_shared->stats_lock, LW_SHARED);
		nstats = hash_get_num_entries(ig_stats);
		LWLockRelease(ig_shared->stats_lock);

		SpinLockAcquire(&ig_shared->mutex);
		launcher = ig_shared->launcher_pid;
		last_flush = ig_shared->last_flush;
		discarded = ig_shared->discarded;
		reset = ig_shared->stats_reset;
		for (i = 0; i < IG_MAX_DATABASES; i++)
			if (ig_shared->dbs[i].dbid == MyDatabaseId)
			{
				slot = ig_shared->dbs[i];
				have_slot = true;
			}
		SpinLockRelease(&ig_shared->mutex);

		values[1] = Int32GetDatum(ig_queue_size);
		values[2] = Int32GetDatum(used);
		values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&ig_shared->dropped));
		values[4] = Int64GetDatum(discarded);
		values[5] = Int32GetDatum((int32) launcher);
		values[6] = TimestampTzGetDatum(last_flush);
		values[9] = Int32GetDatum(nstats);
		values[10] = Int32GetDatum(ig_max_stats);
		values[11] = Int64GetDatum((int64) pg_atomic_read_u64(&ig_shared->stats_dropped));
		values[12] = TimestampTzGetDatum(reset);
		for (i = 1; i <= 12; i++)
			nulls[i] = false;
		nulls[5] = (launcher == 0);
		nulls[6] = (last_flush == 0);
		nulls[7] = nulls[8] = true;
		if (have_slot && slot.last_flush != 0)
		{
			values[7] = TimestampTzGetDatum(slot.last_flush);
			nulls[7] = false;
		}
		if (have_slot)
		{
			values[8] = Int64GetDatum(slot.written);
			nulls[8] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * CREATE EXTENSION runs its script with client_min_messages at WARNING:
 * the NOTICE about preloading is sent when the creating transaction
 * commits.
 */
static bool notice_not_preloaded = false;

static void
ig_pipeline_xact_callback(XactEvent event, void *arg)
{
	if (!notice_not_preloaded)
		return;
	if (event == XACT_EVENT_PRE_COMMIT)
		ereport(NOTICE,
				(errmsg("pg_integrity_guard is not in shared_preload_libraries: audit incidents are written in the transaction that produced them"),
				 errdetail("Preloading adds the durable audit queue (incidents survive rollback), the background writer, server-wide error capture (integrity_guard.capture_errors), the stats view, and the assignment rewrite in every session."),
				 errhint("Add pg_integrity_guard to shared_preload_libraries and restart the server.")));
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_ABORT)
		notice_not_preloaded = false;
}

/*
 * integrity_guard._pipeline_register(), run by CREATE EXTENSION: tells the
 * launcher that this database now has the extension, so its events are no
 * longer only counted; without preload, says what preloading adds.
 */
PG_FUNCTION_INFO_V1(ig_pipeline_register);

Datum
ig_pipeline_register(PG_FUNCTION_ARGS)
{
	int			i;

	if (ig_shared == NULL)
	{
		notice_not_preloaded = !ig_preloaded;
		PG_RETURN_VOID();
	}
	SpinLockAcquire(&ig_shared->mutex);
	for (i = 0; i < IG_MAX_DATABASES; i++)
		if (ig_shared->dbs[i].dbid == MyDatabaseId)
			ig_shared->dbs[i].state = IG_DB_UNKNOWN;
	SpinLockRelease(&ig_shared->mutex);
	PG_RETURN_VOID();
}
