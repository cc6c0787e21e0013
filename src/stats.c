/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Cumulative statistics of the durable audit: events per database,
 *		table, event type and target, whatever became of them (written,
 *		dropped by a full queue, not written).
 *
 * A shared hash table of integrity_guard.max_stats counters.  Every event
 * the queue is given (queue.c) is counted here first, so a scrape of the
 * stats view sees what the queue had to drop.  When the table is full, the
 * least-used 5% are evicted, usage decaying as in pg_stat_statements; a new
 * counter starts at the median usage so that it is not the next victim.  A
 * guard's counter is keyed by its relation; a captured error's by the names
 * it carried, bound to a relation when read (ig_bind_relid).  The counters
 * go to pg_stat/ with the queue at a clean shutdown (queue.c writes one
 * file; ig_stats_save and ig_stats_restore are its stats part) and a crash
 * loses them.
 *
 * Locking rules:
 *	lock (LWLock, a tranche of its own) protects the hash and the eviction
 *		scratch array.  Counting into an existing entry needs it shared plus
 *		the entry's spinlock (counts.mutex, which also guards usage);
 *		adding, evicting, forgetting and resetting need it exclusive.
 *	mutex (spinlock) protects reset only, never held over a call.
 *	evicted is atomic.
 *	No other lock of the extension is taken while holding lock, and queue.c
 *	takes it with none of its own held: the two never nest.  Nothing here
 *	raises, allocates or waits while holding it, except readers, which
 *	allocate before locking and check visibility (catalog access) after.
 *	The error hook counts from inside error reporting: ig_stats_busy()
 *	tells it when this backend holds the lock already.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "catalog/pg_authid.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/syscache.h"

#include "settings.h"
#include "stats.h"
#include "util.h"

#define IG_STATS_DEALLOC_PCT	5
#define IG_USAGE_DECAY		0.99

typedef struct IgStatsEntry
{
	IgStatsKey	key;
	IgCounts	counts;
	double		usage;			/* under counts.mutex */
} IgStatsEntry;

typedef struct IgStatsShared
{
	LWLock	   *lock;
	double		median_usage;	/* lock: usage of a new entry */
	slock_t		mutex;			/* reset */
	TimestampTz reset;
	pg_atomic_uint64 evicted;	/* entries evicted since the last reset */
} IgStatsShared;

static IgStatsShared *ig_stats_shared = NULL;
static HTAB *ig_stats = NULL;
static IgStatsEntry **ig_stats_scratch = NULL;

static uint32
ig_stats_hash(const void *key, Size keysize)
{
	const IgStatsKey *k = key;
	uint32		h;

	h = hash_bytes_uint32(k->dbid);
	h = hash_combine(h, hash_bytes_uint32(k->relid));
	h = ig_hash_field(h, k->event_type);
	h = ig_hash_field(h, k->schema_name);
	h = ig_hash_field(h, k->table_name);
	return ig_hash_field(h, k->target);
}


/*
 * Shared memory
 */
Size
ig_stats_shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(IgStatsShared));

	size = add_size(size, hash_estimate_size(ig_max_stats,
											 sizeof(IgStatsEntry)));
	return add_size(size, mul_size(ig_max_stats, sizeof(IgStatsEntry *)));
}

void
ig_stats_shmem_request(void)
{
	RequestAddinShmemSpace(ig_stats_shmem_size());
	RequestNamedLWLockTranche("pg_integrity_guard stats", 1);
}

/* With AddinShmemInitLock held (queue.c's start-up). */
void
ig_stats_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	ig_stats_shared = ShmemInitStruct("pg_integrity_guard stats state",
									  sizeof(IgStatsShared), &found);
	if (!found)
	{
		memset(ig_stats_shared, 0, sizeof(IgStatsShared));
		ig_stats_shared->lock =
			&(GetNamedLWLockTranche("pg_integrity_guard stats"))->lock;
		SpinLockInit(&ig_stats_shared->mutex);
		pg_atomic_init_u64(&ig_stats_shared->evicted, 0);
		ig_stats_shared->reset = GetCurrentTimestamp();
		ig_stats_shared->median_usage = 1.0;
	}
	ig_stats_scratch = ShmemInitStruct("pg_integrity_guard stats scratch",
									   mul_size(ig_max_stats, sizeof(IgStatsEntry *)),
									   &found);
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(IgStatsKey);
	info.entrysize = sizeof(IgStatsEntry);
	info.hash = ig_stats_hash;
	ig_stats = ShmemInitHash("pg_integrity_guard stats",
							 ig_max_stats, ig_max_stats, &info,
							 HASH_ELEM | HASH_FUNCTION | HASH_FIXED_SIZE);
}

/* True while this backend holds the lock (see the error hook). */
bool
ig_stats_busy(void)
{
	return ig_stats_shared != NULL && LWLockHeldByMe(ig_stats_shared->lock);
}

/* For status(): counters in use, evicted since the last reset, reset. */
void
ig_stats_state(int *nstats, int64 *evicted, TimestampTz *reset)
{
	LWLockAcquire(ig_stats_shared->lock, LW_SHARED);
	*nstats = hash_get_num_entries(ig_stats);
	LWLockRelease(ig_stats_shared->lock);
	*evicted = (int64) pg_atomic_read_u64(&ig_stats_shared->evicted);
	SpinLockAcquire(&ig_stats_shared->mutex);
	*reset = ig_stats_shared->reset;
	SpinLockRelease(&ig_stats_shared->mutex);
}

/*
 * Evict the least-used stats entries (stats_lock exclusive), decaying
 * every entry's usage, as pg_stat_statements does.
 */
static int
stats_cmp_usage(const void *a, const void *b)
{
	double		ua = (*(IgStatsEntry *const *) a)->usage;
	double		ub = (*(IgStatsEntry *const *) b)->usage;

	return ua < ub ? -1 : ua > ub ? 1 : 0;
}

static void
stats_evict(void)
{
	HASH_SEQ_STATUS status;
	IgStatsEntry *entry;
	int			n = 0;
	int			nvictims;
	int			i;

	hash_seq_init(&status, ig_stats);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (n >= ig_max_stats)
		{
			hash_seq_term(&status);
			break;
		}
		ig_stats_scratch[n++] = entry;
		entry->usage *= IG_USAGE_DECAY;
	}
	if (n == 0)
		return;
	qsort(ig_stats_scratch, n, sizeof(IgStatsEntry *), stats_cmp_usage);
	ig_stats_shared->median_usage = ig_stats_scratch[n / 2]->usage;
	nvictims = Max(1, n * IG_STATS_DEALLOC_PCT / 100);
	for (i = 0; i < nvictims; i++)
		hash_search(ig_stats, &ig_stats_scratch[i]->key, HASH_REMOVE, NULL);
	pg_atomic_fetch_add_u64(&ig_stats_shared->evicted, nvictims);
}

void
ig_stats_add(const IgStatsKey *key, int64 n, TimestampTz first_seen,
			 TimestampTz last_seen, TransactionId horizon)
{
	IgStatsEntry *entry;
	uint32		hash;
	bool		found;

	hash = get_hash_value(ig_stats, key);

	LWLockAcquire(ig_stats_shared->lock, LW_SHARED);
	entry = hash_search_with_hash_value(ig_stats, key, hash, HASH_FIND, NULL);
	if (entry == NULL)
	{
		LWLockRelease(ig_stats_shared->lock);
		LWLockAcquire(ig_stats_shared->lock, LW_EXCLUSIVE);
		if (hash_get_num_entries(ig_stats) >= ig_max_stats &&
			hash_search_with_hash_value(ig_stats, key, hash, HASH_FIND,
										NULL) == NULL)
			stats_evict();
		entry = hash_search_with_hash_value(ig_stats, key, hash,
											HASH_ENTER_NULL, &found);
		if (entry != NULL && !found)
		{
			memset(&entry->counts, 0,
				   sizeof(IgStatsEntry) - offsetof(IgStatsEntry, counts));
			SpinLockInit(&entry->counts.mutex);
			entry->counts.first_seen = first_seen;
			entry->counts.last_seen = last_seen;
			entry->counts.bind_horizon = horizon;
			entry->usage = ig_stats_shared->median_usage;
		}
	}
	if (entry != NULL)
	{
		SpinLockAcquire(&entry->counts.mutex);
		entry->counts.occurrences = ig_add_sat(entry->counts.occurrences, n);
		entry->usage += n;
		if (first_seen < entry->counts.first_seen)
			entry->counts.first_seen = first_seen;
		if (last_seen > entry->counts.last_seen)
			entry->counts.last_seen = last_seen;
		entry->counts.bind_horizon = ig_horizon_min(entry->counts.bind_horizon,
												 horizon);
		SpinLockRelease(&entry->counts.mutex);
	}
	LWLockRelease(ig_stats_shared->lock);
}

/*
 * The databases that have statistics (at most 'max'), for the launcher to
 * find dropped ones.
 */
int
ig_stats_databases(Oid *dbids, int max)
{
	HASH_SEQ_STATUS status;
	IgStatsEntry *entry;
	int			n = 0;
	int			i;

	LWLockAcquire(ig_stats_shared->lock, LW_SHARED);
	hash_seq_init(&status, ig_stats);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		for (i = 0; i < n; i++)
			if (dbids[i] == entry->key.dbid)
				break;
		if (i == n && n < max)
			dbids[n++] = entry->key.dbid;
	}
	LWLockRelease(ig_stats_shared->lock);
	return n;
}

/* A dropped database's statistics go: no scrape shows them again. */
void
ig_stats_forget_database(Oid dbid)
{
	HASH_SEQ_STATUS status;
	IgStatsEntry *entry;

	LWLockAcquire(ig_stats_shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&status, ig_stats);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (entry->key.dbid == dbid)
			hash_search(ig_stats, &entry->key, HASH_REMOVE, NULL);
	LWLockRelease(ig_stats_shared->lock);
}

/*
 * Counters known by a name only (captured errors) go when the relation of
 * that name is dropped or renamed, so that a table that takes the name
 * starts afresh.  NULL matches any schema or table name.
 */
void
ig_stats_forget_names(Oid dbid, const char *schema_name, const char *table_name)
{
	HASH_SEQ_STATUS status;
	IgStatsEntry *st;

	LWLockAcquire(ig_stats_shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&status, ig_stats);
	while ((st = hash_seq_search(&status)) != NULL)
		if (st->key.dbid == dbid && !OidIsValid(st->key.relid) &&
			st->key.table_name[0] != '\0' &&
			(schema_name == NULL || strcmp(st->key.schema_name, schema_name) == 0) &&
			(table_name == NULL || strcmp(st->key.table_name, table_name) == 0))
			hash_search(ig_stats, &st->key, HASH_REMOVE, NULL);
	LWLockRelease(ig_stats_shared->lock);
}

/* The counters of an "IGA2" file (1.2): no relid, no binding horizon. */
typedef struct IgStatsEntryV2
{
	struct
	{
		Oid			dbid;
		char		event_type[IG_TYPE_LEN];
		char		schema_name[NAMEDATALEN];
		char		table_name[NAMEDATALEN];
		char		target[IG_TARGET_LEN];
	}			key;
	IgCountsV2	counts;
	double		usage;
} IgStatsEntryV2;

void
ig_counts_from_v2(IgCounts *dst, const IgCountsV2 *src)
{
	dst->occurrences = src->occurrences;
	dst->first_seen = src->first_seen;
	dst->last_seen = src->last_seen;
	dst->bind_horizon = InvalidTransactionId;
}

/* Read one stats entry, of either layout, into s; false at the end. */
static bool
read_stats_entry(FILE *file, bool v2, IgStatsEntry *s)
{
	IgStatsEntryV2 old;

	if (!v2)
		return fread(s, sizeof(*s), 1, file) == 1;
	if (fread(&old, sizeof(old), 1, file) != 1)
		return false;
	memset(s, 0, sizeof(*s));
	s->key.dbid = old.key.dbid;
	memcpy(s->key.event_type, old.key.event_type, IG_TYPE_LEN);
	memcpy(s->key.schema_name, old.key.schema_name, NAMEDATALEN);
	memcpy(s->key.table_name, old.key.table_name, NAMEDATALEN);
	memcpy(s->key.target, old.key.target, IG_TARGET_LEN);
	ig_counts_from_v2(&s->counts, &old.counts);
	s->usage = old.usage;
	return true;
}

/*
 * The statistics file (queue.c writes the queue and the counters into one,
 * at a clean shutdown by the postmaster, and reads it back at start-up, when
 * nothing else runs: no lock is needed).
 */
Size
ig_stats_entry_size(bool v2)
{
	return v2 ? sizeof(IgStatsEntryV2) : sizeof(IgStatsEntry);
}

int
ig_stats_count(void)
{
	return hash_get_num_entries(ig_stats);
}

TimestampTz
ig_stats_reset_time(void)
{
	return ig_stats_shared->reset;
}

/* Write every counter; false on a write error (errno set). */
bool
ig_stats_save(FILE *file)
{
	HASH_SEQ_STATUS status;
	IgStatsEntry *s;

	hash_seq_init(&status, ig_stats);
	while ((s = hash_seq_search(&status)) != NULL)
		if (fwrite(s, sizeof(IgStatsEntry), 1, file) != 1)
		{
			hash_seq_term(&status);
			return false;
		}
	return true;
}

/* Read n counters of either layout; false if the file ends early. */
bool
ig_stats_restore(FILE *file, int n, bool v2, TimestampTz reset)
{
	IgStatsEntry s;
	int			i;

	ig_stats_shared->reset = reset;
	for (i = 0; i < n; i++)
	{
		IgStatsEntry *entry;
		bool		found;

		if (!read_stats_entry(file, v2, &s))
			return false;
		if (hash_get_num_entries(ig_stats) >= ig_max_stats)
			continue;
		entry = hash_search(ig_stats, &s.key, HASH_ENTER_NULL, &found);
		if (entry == NULL)
			continue;
		memcpy(entry, &s, sizeof(s));
		SpinLockInit(&entry->counts.mutex);
	}
	return true;
}

/*
 * SQL functions
 */

/*
 * Whether the caller may see a counter: members of pg_read_all_stats see
 * all, others only those of a relation of this database they can SELECT:
 * a guard's by its relid, a captured error's bound by name as the writer
 * binds it (ig_queue_bind_relid).
 */
static bool
stats_visible(bool all, const IgStatsKey *k, TransactionId horizon)
{
	Oid			relid;

	if (all)
		/* a dropped database's counters wait for the launcher to forget them */
		return k->dbid == MyDatabaseId ||
			SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(k->dbid));
	if (k->dbid != MyDatabaseId)
		return false;
	relid = OidIsValid(k->relid) ? k->relid :
		ig_bind_relid(k->schema_name, k->table_name, horizon);
	return OidIsValid(relid) &&
		SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)) &&
		pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
}

/*
 * A name of a counter as text.  Another database's names are in that
 * database's encoding: a byte sequence invalid in this one would break the
 * reader's client, so such a name shows its non-ASCII bytes as '?'.
 */
static Datum
stats_text(const char *s, Oid dbid, bool *isnull)
{
	char	   *copy;
	char	   *p;

	*isnull = (s[0] == '\0');
	if (*isnull)
		return (Datum) 0;
	if (dbid == MyDatabaseId || pg_verifymbstr(s, strlen(s), true))
		return CStringGetTextDatum(s);
	copy = pstrdup(s);
	for (p = copy; *p; p++)
		if (IS_HIGHBIT_SET(*p))
			*p = '?';
	return CStringGetTextDatum(copy);
}

/* Order of counters by their labels (not their relid). */
static int
stats_label_cmp(const void *a, const void *b)
{
	const IgStatsKey *x = &((const IgStatsEntry *) a)->key;
	const IgStatsKey *y = &((const IgStatsEntry *) b)->key;
	int			r;

	if (x->dbid != y->dbid)
		return x->dbid < y->dbid ? -1 : 1;
	if ((r = strcmp(x->schema_name, y->schema_name)) != 0 ||
		(r = strcmp(x->table_name, y->table_name)) != 0 ||
		(r = strcmp(x->event_type, y->event_type)) != 0)
		return r;
	return strcmp(x->target, y->target);
}

/*
 * integrity_guard._stats() (incident.c): the cumulative counters the caller
 * may see, into the caller's materialized result.
 */
void
ig_stats_rows(FunctionCallInfo fcinfo)
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
	if (ig_stats_shared == NULL)
		return;

	all = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	/* copy under the lock, check visibility (catalog access) after it */
	count = ig_max_stats;
	copies = palloc(sizeof(IgStatsEntry) * count);
	LWLockAcquire(ig_stats_shared->lock, LW_SHARED);
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
	LWLockRelease(ig_stats_shared->lock);
	SpinLockAcquire(&ig_stats_shared->mutex);
	reset = ig_stats_shared->reset;
	SpinLockRelease(&ig_stats_shared->mutex);

	/*
	 * One row per label set (database, schema, table, event, target): the
	 * counters of a guard's relation and of an error known by name, or of
	 * a table dropped and created again, add up where the reader may see
	 * both, so that a monitoring scrape never gets two series alike.
	 */
	{
		int			m = 0;

		for (i = 0; i < n; i++)
			if (stats_visible(all, &copies[i].key, copies[i].counts.bind_horizon))
				copies[m++] = copies[i];
		n = m;
	}
	if (n > 1)
		qsort(copies, n, sizeof(IgStatsEntry), stats_label_cmp);
	for (i = 0; i < n; i++)
	{
		IgStatsKey *k = &copies[i].key;
		Datum		values[9];
		bool		nulls[9];

		while (i + 1 < n && stats_label_cmp(&copies[i], &copies[i + 1]) == 0)
		{
			IgCounts   *next = &copies[i + 1].counts;

			next->occurrences = ig_add_sat(next->occurrences,
										   copies[i].counts.occurrences);
			next->first_seen = Min(next->first_seen, copies[i].counts.first_seen);
			next->last_seen = Max(next->last_seen, copies[i].counts.last_seen);
			k = &copies[++i].key;
		}
		memset(nulls, 0, sizeof(nulls));
		values[0] = ObjectIdGetDatum(k->dbid);
		values[1] = stats_text(k->schema_name, k->dbid, &nulls[1]);
		values[2] = stats_text(k->table_name, k->dbid, &nulls[2]);
		values[3] = stats_text(k->event_type, k->dbid, &nulls[3]);
		values[4] = stats_text(k->target, k->dbid, &nulls[4]);
		values[5] = Int64GetDatum(copies[i].counts.occurrences);
		values[6] = TimestampTzGetDatum(copies[i].counts.first_seen);
		values[7] = TimestampTzGetDatum(copies[i].counts.last_seen);
		values[8] = TimestampTzGetDatum(reset);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * integrity_guard.stats_reset() returns timestamptz: a superuser forgets
 * every counter, the extension's owner those of this database.
 */
PG_FUNCTION_INFO_V1(ig_stats_reset);

Datum
ig_stats_reset(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS status;
	IgStatsEntry *entry;
	TimestampTz now = GetCurrentTimestamp();
	bool		everything = superuser();
	Oid			owner;

	if (!everything &&
		!(ig_extension_owner(&owner) && has_privs_of_role(GetUserId(), owner)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to reset the integrity_guard statistics"),
				 errhint("Only the extension owner (this database's counters) or a superuser (every database's) can do this.")));
	if (ig_stats_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("integrity_guard statistics are not available"),
				 errdetail("The statistics live in shared memory, which needs the library preloaded."),
				 errhint("Add pg_integrity_guard to shared_preload_libraries and restart the server.")));

	LWLockAcquire(ig_stats_shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&status, ig_stats);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (everything || entry->key.dbid == MyDatabaseId)
			hash_search(ig_stats, &entry->key, HASH_REMOVE, NULL);
	LWLockRelease(ig_stats_shared->lock);
	if (everything)
	{
		pg_atomic_write_u64(&ig_stats_shared->evicted, 0);
		SpinLockAcquire(&ig_stats_shared->mutex);
		ig_stats_shared->reset = now;
		SpinLockRelease(&ig_stats_shared->mutex);
	}
	PG_RETURN_TIMESTAMPTZ(now);
}
