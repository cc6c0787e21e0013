/*-------------------------------------------------------------------------
 *
 * stats.h
 *		Cumulative statistics of the durable audit (stats.c).
 *
 * Above util/settings; used by the queue, the worker, the incident API and
 * the error hook (doc/design.md, "Layers").
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_STATS_H
#define IG_STATS_H

#include "postgres.h"

#include <stdio.h>

#include "access/transam.h"
#include "fmgr.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

/* fixed sizes of the names an event carries (zero-padded, see queue.h) */
#define IG_TYPE_LEN		64
#define IG_TARGET_LEN	256

/* What a shared entry counts; the spinlock protects the rest. */
typedef struct IgCounts
{
	slock_t		mutex;
	int64		occurrences;
	TimestampTz first_seen;
	TimestampTz last_seen;
	/* the oldest event's TransactionXmin: names bind only to older rows */
	TransactionId bind_horizon;
} IgCounts;

/* The counts of the 1.2 library's file (its queue entries have them too). */
typedef struct IgCountsV2
{
	slock_t		mutex;
	int64		occurrences;
	TimestampTz first_seen;
	TimestampTz last_seen;
} IgCountsV2;

typedef struct IgStatsKey
{
	Oid			dbid;
	char		event_type[IG_TYPE_LEN];
	char		schema_name[NAMEDATALEN];
	char		table_name[NAMEDATALEN];
	char		target[IG_TARGET_LEN];
	Oid			relid;			/* a guard's table; InvalidOid if by name */
} IgStatsKey;

/* The older of two binding horizons; invalid (no binding) wins. */
static inline TransactionId
ig_horizon_min(TransactionId a, TransactionId b)
{
	if (!TransactionIdIsValid(a) || !TransactionIdIsValid(b))
		return InvalidTransactionId;
	return TransactionIdPrecedes(a, b) ? a : b;
}

/* shared memory, through queue.c's hooks */
extern Size ig_stats_shmem_size(void);
extern void ig_stats_shmem_request(void);
extern void ig_stats_shmem_startup(void);
extern bool ig_stats_busy(void);

/* counting (the queue, for every event it is given) */
extern void ig_stats_add(const IgStatsKey *key, int64 n,
						 TimestampTz first_seen, TimestampTz last_seen,
						 TransactionId horizon);

/* forgetting: dropped databases (launcher), dropped or renamed names */
extern int	ig_stats_databases(Oid *dbids, int max);
extern void ig_stats_forget_database(Oid dbid);
extern void ig_stats_forget_names(Oid dbid, const char *schema_name,
								  const char *table_name);

/* readers */
extern void ig_stats_rows(FunctionCallInfo fcinfo);
extern void ig_stats_state(int *nstats, int64 *evicted, TimestampTz *reset);

/* the statistics file, written and read by queue.c */
extern void ig_counts_from_v2(IgCounts *dst, const IgCountsV2 *src);
extern Size ig_stats_entry_size(bool v2);
extern int	ig_stats_count(void);
extern TimestampTz ig_stats_reset_time(void);
extern bool ig_stats_save(FILE *file);
extern bool ig_stats_restore(FILE *file, int n, bool v2, TimestampTz reset);

#endif							/* IG_STATS_H */
