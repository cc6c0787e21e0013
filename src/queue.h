/*-------------------------------------------------------------------------
 *
 * queue.h
 *		The shared-memory queue of incidents and the per-database flush
 *		state (queue.c).
 *
 * Above util/settings and stats; used by the audit table's writer, the worker, the
 * incident API and error capture (doc/design.md, "Layers").
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_QUEUE_H
#define IG_QUEUE_H

#include "postgres.h"

#include "fmgr.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "stats.h"

/*
 * An event key is fixed-size and zero-padded (every byte written, see
 * ig_copy_bounded) so that it can live in a shared hash table compared
 * with memcmp.  The detail (key values) is not part of the key: incidents
 * of one table, target, kind and role within a flush window aggregate into
 * one queue entry holding a bounded sample of details.  An incident without
 * a table (an error in an expression) keeps its statement apart.
 */
#define IG_DETAIL_LEN	1024
#define IG_SAMPLES_LEN	1024

typedef struct IgEventKey
{
	Oid			dbid;
	Oid			relid;			/* InvalidOid for captured errors */
	Oid			roleid;
	char		event_type[IG_TYPE_LEN];
	char		schema_name[NAMEDATALEN];
	char		table_name[NAMEDATALEN];
	char		target[IG_TARGET_LEN];
	char		application_name[NAMEDATALEN];
	uint32		detail_hash;	/* set by the caller: one incident per detail */
} IgEventKey;

/* A queued incident handed to a flush job (palloc'd copies). */
typedef struct IgJobIncident
{
	IgEventKey	key;
	int64		occurrences;
	TimestampTz first_seen;
	TimestampTz last_seen;
	TransactionId bind_horizon; /* see IgCounts */
	char	   *detail;			/* JSON text, with the sample; NULL if none */
} IgJobIncident;

/*
 * Per-database flush state, read and written by the launcher (worker.c)
 * under ig_queue_lock_slots().
 */
#define IG_MAX_DATABASES	64
#define IG_ERROR_LEN		200

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
	bool		job_started;	/* launched, not yet reported back */
	bool		flush_requested;	/* by flush(): no need to wait */
	TimestampTz last_start;		/* one job per flush_interval */
	int			failures;		/* consecutive failed jobs */
	int64		failures_total;
	TimestampTz retry_at;		/* backoff after failures */
	TimestampTz checked;		/* when state was last established */
	uint32		registrations;	/* CREATE EXTENSIONs seen (a job's "no
								 * extension" older than one is void) */
	TransactionId prepared_registration;	/* the last one, when prepared */
	TimestampTz last_flush;
	int64		written;		/* incident rows written */
	int64		set_aside;		/* entries no write could take */
	char		set_aside_error[IG_ERROR_LEN];
	char		last_error[IG_ERROR_LEN];
} IgDbSlot;

/* Queued entries of one database, counted by the launcher. */
typedef struct IgQueueDb
{
	Oid			dbid;
	int			unmarked;		/* waiting for a job */
	int			marked;			/* taken by a job, not yet settled */
} IgQueueDb;

/* shared memory, from the postmaster's hooks */
extern void ig_queue_shmem_request(void);
extern void ig_queue_shmem_startup(void);

extern bool ig_queue_available(void);
extern bool ig_queue_busy(void);

/* producers */
extern void ig_queue_push(const IgEventKey *key, const char *detail,
						  int64 occurrences, TimestampTz first_seen,
						  TimestampTz last_seen);

/* flush jobs */
extern int	ig_queue_take(Oid dbid, TransactionId xid, IgJobIncident **out);
extern void ig_queue_settle(Oid dbid, TransactionId xid, bool committed);
extern int	ig_queue_settle_stale(Oid dbid);
extern void ig_queue_count_lost(Oid dbid, Oid roleid, int64 n);
extern void ig_queue_discard(Oid dbid);
extern uint32 ig_queue_registrations(Oid dbid);
extern bool ig_queue_report_flush(Oid dbid, bool has_extension,
								  bool undecided, uint32 registrations_seen,
								  int64 written,
								  int64 set_aside, const char *set_aside_error);
extern void ig_queue_report_failure(Oid dbid, const char *message);
extern void ig_queue_unbind_names(Oid dbid, const char *schema_name,
								  const char *table_name);

/* the launcher */
extern int	ig_queue_databases(IgQueueDb *dbs, int max);
extern void ig_queue_lock_slots(bool exclusive);
extern void ig_queue_unlock_slots(void);
extern IgDbSlot *ig_queue_slot_at(int index);
extern IgDbSlot *ig_queue_slot(Oid dbid, bool create);
extern void ig_queue_slot_failed(IgDbSlot *slot, const char *message,
								 TimestampTz now);
extern void ig_queue_set_stalled(Oid dbid, bool stalled);
extern void ig_queue_set_launcher(pid_t pid, Latch *latch);
extern void ig_queue_wake_launcher(void);
extern int	ig_queue_pending_count(void);

/* readers: the set-returning body of _pending() */
extern void ig_queue_pending_rows(FunctionCallInfo fcinfo);

#endif							/* IG_QUEUE_H */
