/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The background workers that write the queue into the audit table.
 *
 * The launcher (a static background worker, started when the library is
 * preloaded) wakes every half flush_interval and starts flush jobs, at most
 * integrity_guard.max_flush_jobs at a time, serving databases round robin.
 * A job connects to one database, marks the queue entries it takes with its
 * transaction id, inserts them (audit_table.c), applies the retention
 * setting and commits.  A job that fails unmarks its entries; failures are
 * counted and retried with a backoff, never discarded, except for a dropped
 * database.  flush() asks the launcher to write now and waits.
 *
 * The shared state (the queue, the per-database slots, the launcher's
 * latch) and its locking rules are in queue.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/wait_event.h"

#include "audit_table.h"
#include "citus_meta.h"
#include "queue.h"
#include "settings.h"
#include "stats.h"
#include "util.h"
#include "worker.h"

static void count_lost_jobs(void);

#define IG_NO_EXTENSION_RECHECK_MS	60000
#define IG_CHECK_DROPPED_AFTER	3	/* failures before asking if it exists */
#define IG_SWEEP_MAX_MS			3600000 /* retention reaches idle databases */

PGDLLEXPORT void ig_launcher_main(Datum arg);
PGDLLEXPORT void ig_job_main(Datum arg);

static void
fill_worker(BackgroundWorker *worker, const char *function, const char *name)
{
	memset(worker, 0, sizeof(BackgroundWorker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "pg_integrity_guard");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", name);
}

/* Whether a database still exists (the launcher reads shared catalogs). */
static bool
database_exists(Oid dbid)
{
	bool		exists;

	StartTransactionCommand();
	exists = SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dbid));
	CommitTransactionCommand();
	return exists;
}

static bool
oid_member(const Oid *oids, int n, Oid oid)
{
	int			i;

	for (i = 0; i < n; i++)
		if (oids[i] == oid)
			return true;
	return false;
}

/*
 * The retention sweep.  A flush job applies the retention in its database,
 * but a database with nothing queued gets no job: every so often (a quarter
 * of the retention, at most an hour) the launcher lists the databases that
 * take connections and starts a job for each in turn; a job in a database
 * without the extension returns at once.  Templates are left alone (a
 * connection would make CREATE DATABASE from them fail).
 */
static Oid *sweep_dbs = NULL;
static int	nsweep = 0;
static TimestampTz next_sweep = 0;

static void
sweep_plan(TimestampTz now)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	int			size = 16;
	int64		every;

	if (ig_retention <= 0 || now < next_sweep)
		return;
	every = Min((int64) ig_retention * 1000 / 4, IG_SWEEP_MAX_MS);
	next_sweep = TimestampTzPlusMilliseconds(now, Max(every, ig_flush_interval));
	if (sweep_dbs != NULL)
		pfree(sweep_dbs);
	sweep_dbs = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * size);
	nsweep = 0;
	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		if (!db->datallowconn || db->datistemplate)
			continue;
#ifdef DATCONNLIMIT_INVALID_DB
		if (db->datconnlimit == DATCONNLIMIT_INVALID_DB)
			continue;
#endif
		if (nsweep == size)
		{
			size *= 2;
			sweep_dbs = repalloc(sweep_dbs, sizeof(Oid) * size);
		}
		sweep_dbs[nsweep++] = db->oid;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
}

/* Start a flush job for a slot's database; false when no worker is free. */
static bool
start_job(BackgroundWorkerHandle **handles, int index, IgDbSlot *slot,
		  TimestampTz now)
{
	BackgroundWorker worker;

	fill_worker(&worker, "ig_job_main", "pg_integrity_guard flush");
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	worker.bgw_main_arg = ObjectIdGetDatum(slot->dbid);
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handles[index]))
	{
		handles[index] = NULL;
		return false;
	}
	slot->job_started = true;
	slot->flush_requested = false;
	slot->last_start = now;
	return true;
}

/* Whether a database was found without the extension a moment ago. */
static bool
no_extension_lately(IgDbSlot *slot, TimestampTz now)
{
	return slot->state == IG_DB_NO_EXTENSION &&
		!TimestampDifferenceExceeds(slot->checked, now,
									IG_NO_EXTENSION_RECHECK_MS);
}

/*
 * Whether this database's last CREATE EXTENSION was prepared and is not
 * yet decided for the job's snapshot (still prepared, or committed after
 * the job looked): a job that finds no extension then cannot tell that the
 * database has none.  Citus creates the extension on its workers so.
 */
static bool
registration_undecided(Oid dbid)
{
	TransactionId xid = InvalidTransactionId;
	IgDbSlot   *slot;

	ig_queue_lock_slots(false);
	slot = ig_queue_slot(dbid, false);
	if (slot)
		xid = slot->prepared_registration;
	ig_queue_unlock_slots();
	return TransactionIdIsValid(xid) &&
		XidInMVCCSnapshot(xid, GetActiveSnapshot());
}

/*
 * One launcher round: reap finished jobs, then start jobs for databases
 * with queued incidents, at most max_flush_jobs running, round robin.
 */
static void
launcher_round(BackgroundWorkerHandle **handles, int *next, uint64 round)
{
	IgQueueDb	dbs[IG_MAX_DATABASES];
	int			ndbs;
	int			running = 0;
	TimestampTz now = GetCurrentTimestamp();
	Oid			discard[IG_MAX_DATABASES];
	Oid			check[IG_MAX_DATABASES];
	Oid			stalled[IG_MAX_DATABASES];
	int			ndiscard = 0;
	int			ncheck = 0;
	int			nstalled = 0;
	int			i;
	int			k;

	ndbs = ig_queue_databases(dbs, IG_MAX_DATABASES);

	/*
	 * A dropped database is noticed here, from the shared catalog, before
	 * any job tries to connect to it: its entries go, and no job starts.
	 */
	for (k = 0; k < ndbs; k++)
		if (!database_exists(dbs[k].dbid))
		{
			check[ncheck++] = dbs[k].dbid;
			dbs[k--] = dbs[--ndbs];
		}

	/* the retention sweep's next databases, if they still exist */
	sweep_plan(now);
	for (i = nsweep - 1; i >= 0 && i >= nsweep - ig_max_flush_jobs; i--)
		if (!database_exists(sweep_dbs[i]))
			sweep_dbs[i] = InvalidOid;

	ig_queue_lock_slots(true);
	/* reap: a job that exited without reporting failed (could not connect) */
	for (i = 0; i < IG_MAX_DATABASES; i++)
	{
		pid_t		pid;
		IgDbSlot   *slot = ig_queue_slot_at(i);

		if (handles[i] == NULL)
			continue;
		if (GetBackgroundWorkerPid(handles[i], &pid) != BGWH_STOPPED)
		{
			running++;
			continue;
		}
		pfree(handles[i]);
		handles[i] = NULL;
		if (slot->job_started)
		{
			ig_queue_slot_failed(slot, "the flush job exited before writing (database dropped or not accepting connections?)", now);
			if (nstalled < IG_MAX_DATABASES)
				stalled[nstalled++] = slot->dbid;
		}
		if (slot->failures >= IG_CHECK_DROPPED_AFTER && ncheck < IG_MAX_DATABASES &&
			!oid_member(check, ncheck, slot->dbid))
			check[ncheck++] = slot->dbid;
	}
	/* a full slot table makes room: idle databases give up their slot */
	for (i = 0; i < IG_MAX_DATABASES; i++)
		if (ig_queue_slot_at(i)->dbid == InvalidOid)
			break;
	if (i == IG_MAX_DATABASES)
		for (i = 0; i < IG_MAX_DATABASES; i++)
		{
			for (k = 0; k < ndbs; k++)
				if (dbs[k].dbid == ig_queue_slot_at(i)->dbid)
					break;
			if (k == ndbs && handles[i] == NULL)
				ig_queue_slot_at(i)->dbid = InvalidOid;
		}
	for (k = 0; k < ndbs; k++)
		if (ig_queue_slot(dbs[k].dbid, true) == NULL)
			discard[ndiscard++] = dbs[k].dbid;

	/* start jobs, round robin over the slots from *next */
	for (k = 0; k < IG_MAX_DATABASES && running < ig_max_flush_jobs; k++)
	{
		int			index = (*next + k) % IG_MAX_DATABASES;
		IgDbSlot   *slot = ig_queue_slot_at(index);
		int			d;

		if (slot->dbid == InvalidOid || handles[index] != NULL)
			continue;
		for (d = 0; d < ndbs; d++)
			if (dbs[d].dbid == slot->dbid)
				break;
		/*
		 * Entries a committed job still holds (a snapshot could miss its
		 * rows) need another job, in the next window, to settle them.
		 */
		if (d == ndbs)
			continue;
		if (no_extension_lately(slot, now))
		{
			if (ndiscard < IG_MAX_DATABASES)
				discard[ndiscard++] = slot->dbid;
			continue;
		}
		if (slot->retry_at > now)
			continue;
		/* one job per flush window: a storm is a few rows per interval */
		if (!slot->flush_requested &&
			!TimestampDifferenceExceeds(slot->last_start, now, ig_flush_interval))
			continue;

		/* no free worker slot: try again next round */
		if (!start_job(handles, index, slot, now))
			break;
		running++;
		*next = (index + 1) % IG_MAX_DATABASES;
	}

	/* the retention sweep takes what job room is left */
	while (nsweep > 0 && running < ig_max_flush_jobs)
	{
		IgDbSlot   *slot;
		int			index;

		if (sweep_dbs[nsweep - 1] == InvalidOid)
		{
			nsweep--;
			continue;
		}
		slot = ig_queue_slot(sweep_dbs[nsweep - 1], true);
		if (slot == NULL)
			break;				/* no free slot: next round */
		nsweep--;
		index = slot - ig_queue_slot_at(0);
		/* a running or failing database's own jobs apply the retention */
		if (handles[index] != NULL || slot->retry_at > now ||
			no_extension_lately(slot, now))
			continue;
		if (!start_job(handles, index, slot, now))
		{
			nsweep++;
			break;
		}
		running++;
	}
	ig_queue_unlock_slots();

	/* now and then: statistics of databases dropped since */
	if (round % 16 == 0)
	{
		Oid			stats_dbs[IG_MAX_DATABASES];
		int			nstats = ig_stats_databases(stats_dbs, IG_MAX_DATABASES);

		for (i = 0; i < nstats; i++)
			if (!database_exists(stats_dbs[i]))
				ig_stats_forget_database(stats_dbs[i]);
	}
	for (i = 0; i < nstalled; i++)
		ig_queue_set_stalled(stalled[i], true);
	for (i = 0; i < ndiscard; i++)
		ig_queue_discard(discard[i]);
	for (i = 0; i < ncheck; i++)
		if (!database_exists(check[i]))
		{
			ig_queue_discard(check[i]);
			ig_stats_forget_database(check[i]);
			ig_queue_lock_slots(true);
			for (k = 0; k < IG_MAX_DATABASES; k++)
				if (ig_queue_slot_at(k)->dbid == check[i] && handles[k] == NULL)
					ig_queue_slot_at(k)->dbid = InvalidOid;
			ig_queue_unlock_slots();
		}
}

void
ig_launcher_main(Datum arg)
{
	BackgroundWorkerHandle *handles[IG_MAX_DATABASES];
	int			next = 0;
	uint64		round = 0;

	memset(handles, 0, sizeof(handles));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	/* no database: shared catalogs only, to see dropped databases */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	ig_queue_set_launcher(MyProcPid, MyLatch);
	count_lost_jobs();

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
		launcher_round(handles, &next, round++);
	}

	ig_queue_set_launcher(0, NULL);
	proc_exit(0);
}

/* The job's transaction, for the exit callback; invalid once settled. */
static Oid job_dbid = InvalidOid;
static TransactionId job_xid = InvalidTransactionId;

/* An incident a job took that the retention had already passed. */
typedef struct IgExpired
{
	Oid			roleid;
	int64		events;
} IgExpired;

/*
 * What a job holds while it writes, in a file of its own (pg_stat/), so
 * that an immediate stop or a crash, which lose the shared queue, cannot
 * lose them without a trace: the launcher, after start-up, counts the
 * events of a job whose transaction did not commit as not written
 * (status(): events_not_written).  A job that ends, well or not, removes
 * it.
 */
#define IG_JOB_FILE_PREFIX	"pg_stat/pg_integrity_guard.job."

typedef struct IgJobFile
{
	uint32		magic;
	Oid			dbid;
	TransactionId xid;
	int64		events;
} IgJobFile;

#define IG_JOB_FILE_MAGIC	0x49474a31	/* "IGJ1" */

static void
job_file_path(char *path, size_t size, Oid dbid)
{
	snprintf(path, size, IG_JOB_FILE_PREFIX "%u", dbid);
}

static void
job_file_write(Oid dbid, TransactionId xid, int64 events)
{
	char		path[MAXPGPATH];
	IgJobFile	f;
	FILE	   *file;

	job_file_path(path, sizeof(path), dbid);
	f.magic = IG_JOB_FILE_MAGIC;
	f.dbid = dbid;
	f.xid = xid;
	f.events = events;
	file = AllocateFile(path, PG_BINARY_W);
	if (file == NULL)
		return;					/* only the trace is missing */
	(void) fwrite(&f, sizeof(f), 1, file);
	FreeFile(file);
}

static void
job_file_remove(Oid dbid)
{
	char		path[MAXPGPATH];

	job_file_path(path, sizeof(path), dbid);
	(void) unlink(path);
}

/* After start-up: count what jobs held when the server stopped at once. */
static void
count_lost_jobs(void)
{
	DIR		   *dir = AllocateDir("pg_stat");
	struct dirent *de;

	if (dir == NULL)
		return;
	while ((de = ReadDir(dir, "pg_stat")) != NULL)
	{
		char		path[MAXPGPATH];
		IgJobFile	f;
		FILE	   *file;
		bool		ok;

		if (strncmp(de->d_name, "pg_integrity_guard.job.",
					strlen("pg_integrity_guard.job.")) != 0)
			continue;
		snprintf(path, sizeof(path), "pg_stat/%s", de->d_name);
		file = AllocateFile(path, PG_BINARY_R);
		if (file == NULL)
			continue;
		ok = fread(&f, sizeof(f), 1, file) == 1 && f.magic == IG_JOB_FILE_MAGIC;
		FreeFile(file);
		if (ok && TransactionIdIsNormal(f.xid) && f.events > 0)
		{
			bool		committed;

			StartTransactionCommand();
			committed = TransactionIdDidCommit(f.xid);
			CommitTransactionCommand();
			if (!committed)
			{
				ig_queue_count_lost(f.dbid, InvalidOid, f.events);
				ereport(LOG,
						(errmsg("pg_integrity_guard: " INT64_FORMAT " incidents a flush job was writing when the server stopped were not written",
								f.events),
						 errdetail("They are counted in integrity_guard.status() as events_not_written.")));
			}
		}
		(void) unlink(path);
	}
	FreeDir(dir);
}

/* 1 ms waits for the readers of what a job wrote, at most */
#define IG_SETTLE_WAITS		50

/* A job killed with incidents in hand: unmark them for the next job. */
static void
job_exit(int code, Datum arg)
{
	if (TransactionIdIsValid(job_xid))
		ig_queue_settle(job_dbid, job_xid, false);
	job_xid = InvalidTransactionId;
	job_file_remove(job_dbid);
}

/*
 * The body of a flush job, connected to database dbid: write
 * the incidents queued for it in one transaction.  A failure leaves them
 * queued, is counted and retried later by the launcher.
 */
static void
drain_job(Oid dbid)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	Oid			owner;
	volatile int64 written = 0;
	volatile bool installed = false;
	volatile bool undecided = false;
	volatile uint32 registrations = 0;
	IgSetAside aside;
	IgExpired  *volatile expired = NULL;
	volatile int nexpired = 0;
	volatile bool backlog = false;
	int			waited;

	memset(&aside, 0, sizeof(aside));
	job_dbid = dbid;
	before_shmem_exit(job_exit, (Datum) 0);
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "writing queued incidents");
		registrations = ig_queue_registrations(dbid);
		installed = ig_audit_owner(&owner);
		undecided = !installed && registration_undecided(dbid);
		if (installed)
		{
			IgJobIncident *jobs;
			IgIncident *rows;
			TimestampTz cutoff;
			int			n;
			int			m;
			int			i;

			/*
			 * Lock the table before taking anything: a job waiting for a
			 * lock must not hold incidents that a full queue could give to
			 * another database (lock_timeout makes this a counted failure).
			 */
			ig_audit_lock();
			ig_queue_settle_stale(dbid);
			job_xid = GetTopTransactionId();
			n = ig_queue_take(dbid, job_xid, &jobs);
			rows = palloc(sizeof(IgIncident) * Max(n, 1));
			{
				int64		events = 0;

				for (i = 0; i < n; i++)
					events = ig_add_sat(events, jobs[i].occurrences);
				if (events > 0)
					job_file_write(dbid, job_xid, events);
			}
			/*
			 * An incident last seen before the retention (its database had
			 * no job that long) would be deleted by this very job: it is
			 * counted as not written instead, never lost unseen.
			 */
			cutoff = ig_retention > 0 ?
				GetCurrentTimestamp() - (TimestampTz) ig_retention * USECS_PER_SEC :
				DT_NOBEGIN;
			expired = MemoryContextAlloc(oldcxt, sizeof(IgExpired) * Max(n, 1));
			m = 0;
			for (i = 0; i < n; i++)
			{
				IgEventKey *k = &jobs[i].key;

				if (jobs[i].last_seen < cutoff)
				{
					expired[nexpired].roleid = k->roleid;
					expired[nexpired++].events = jobs[i].occurrences;
					continue;
				}
				rows[m].event_type = k->event_type;
				rows[m].schema_name = ig_empty_to_null(k->schema_name);
				rows[m].table_name = ig_empty_to_null(k->table_name);
				/* a guard's target is never NULL; a captured error may have none */
				rows[m].target = k->relid != InvalidOid ? k->target :
					ig_empty_to_null(k->target);
				rows[m].relid = OidIsValid(k->relid) ? k->relid :
					ig_citus_bind_captured(k->schema_name, &rows[m].table_name,
										   &rows[m].target, jobs[i].bind_horizon);
				rows[m].occurrences = jobs[i].occurrences;
				rows[m].first_seen = jobs[i].first_seen;
				rows[m].last_seen = jobs[i].last_seen;
				rows[m].roleid = k->roleid;
				rows[m].application_name = ig_empty_to_null(k->application_name);
				rows[m].detail = jobs[i].detail;
				m++;
			}
			written = ig_audit_insert(owner, rows, m, &aside);
			backlog = ig_audit_apply_retention(owner) >= IG_RETENTION_BATCH;
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
		/* written: the marks settle once no snapshot can miss the rows */
		job_xid = InvalidTransactionId;
		job_file_remove(dbid);
		for (nexpired--; nexpired >= 0; nexpired--)
			ig_queue_count_lost(dbid, expired[nexpired].roleid,
								expired[nexpired].events);
		/*
		 * What it wrote leaves the queue once the snapshots taken before
		 * its commit are gone: statements are short, so wait for them a
		 * little (holding nothing) rather than keep the entries a whole
		 * job cycle, counted against their owners.
		 */
		for (waited = 0; installed; waited++)
		{
			int			left;

			StartTransactionCommand();
			left = ig_queue_settle_stale(dbid);
			CommitTransactionCommand();
			if (left == 0 || waited >= IG_SETTLE_WAITS)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		/* a retention backlog: the rest in short transactions of its own */
		while (backlog)
		{
			CHECK_FOR_INTERRUPTS();
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			PushActiveSnapshot(GetTransactionSnapshot());
			pgstat_report_activity(STATE_RUNNING, "applying the retention");
			backlog = false;
			if (ig_audit_owner(&owner))
			{
				ig_audit_lock();
				backlog = ig_audit_apply_retention(owner) >= IG_RETENTION_BATCH;
			}
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		pgstat_report_activity(STATE_IDLE, NULL);
		/* no extension: its incidents go, unless one was created since */
		if (ig_queue_report_flush(dbid, installed, undecided, registrations, written,
								  aside.count, aside.error))
			ig_queue_discard(dbid);
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
		job_file_remove(dbid);
		ereport(LOG,
				(errmsg("pg_integrity_guard could not write queued incidents: %s",
						edata->message),
				 errdetail("The incidents stay queued and the job is retried later.")));
		ig_queue_report_failure(dbid, edata->message);
	}
	PG_END_TRY();
}

/* A job: write one database's incidents, then exit. */
void
ig_job_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);

	/*
	 * The job's own transaction characteristics, whatever the database or
	 * its roles set: a read-only default only protects against clients.
	 */
	SetConfigOption("default_transaction_read_only", "off",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("idle_in_transaction_session_timeout", "0",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("session_replication_role", "origin",
					PGC_SUSET, PGC_S_OVERRIDE);
	/* a locked audit table is a transient failure, not a stuck job slot */
	SetConfigOption("lock_timeout",
					psprintf("%d", Min(Max(ig_flush_interval, 100), 5000)),
					PGC_SUSET, PGC_S_OVERRIDE);
	drain_job(dbid);
	proc_exit(0);
}

/* The launcher, a static background worker (from _PG_init, preloading). */
void
ig_worker_register_launcher(void)
{
	BackgroundWorker worker;

	fill_worker(&worker, "ig_launcher_main", "pg_integrity_guard launcher");
	worker.bgw_restart_time = 10;
	RegisterBackgroundWorker(&worker);
}

/*
 * Ask the launcher to write now and wait (up to 10 s, outside a transaction
 * block only) until this database's incidents queued so far are in the
 * table.  Returns the rows written for this database meanwhile.
 */
int64
ig_worker_flush_wait(void)
{
	TimestampTz deadline;
	int64		before = 0;
	int64		after = 0;
	IgDbSlot   *slot;

	if (!ig_queue_available() || RecoveryInProgress())
		return 0;
	ig_queue_lock_slots(true);
	slot = ig_queue_slot(MyDatabaseId, true);
	if (slot)
	{
		before = slot->written;
		slot->flush_requested = true;
	}
	ig_queue_unlock_slots();
	ig_queue_wake_launcher();
	if (IsTransactionBlock())
		return 0;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10000);
	for (;;)
	{
		int			n;

		PushActiveSnapshot(GetTransactionSnapshot());
		n = ig_queue_pending_count();
		PopActiveSnapshot();
		if (n == 0 || GetCurrentTimestamp() > deadline)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		ig_queue_wake_launcher();
	}
	ig_queue_lock_slots(false);
	slot = ig_queue_slot(MyDatabaseId, false);
	if (slot)
		after = slot->written;
	ig_queue_unlock_slots();
	return after - before;
}

/*
 * CREATE EXTENSION runs its script with client_min_messages at WARNING:
 * the NOTICE about preloading is sent when the creating transaction
 * commits.
 */
static bool notice_not_preloaded = false;
static bool registration_pending = false;

/*
 * CREATE EXTENSION committed: the database's slot starts afresh (no backoff
 * left from jobs that met the dropped extension), and a job that looked for
 * the extension before this commit cannot report it missing afterwards (the
 * registrations count tells it).  Done at commit, not when the script runs:
 * until then a job still finds no extension, and must not be believed.
 */
static void
registration_committed(TransactionId prepared_xid)
{
	IgDbSlot   *slot;

	ig_queue_lock_slots(true);
	slot = ig_queue_slot(MyDatabaseId, false);
	if (slot)
	{
		slot->state = IG_DB_UNKNOWN;
		slot->failures = 0;
		slot->retry_at = 0;
		slot->registrations++;
		slot->prepared_registration = prepared_xid;
	}
	ig_queue_unlock_slots();
}

void
ig_worker_xact_event(XactEvent event)
{
	if (registration_pending &&
		(event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PREPARE))
	{
		/*
		 * A prepared CREATE EXTENSION registers too (Citus creates it on
		 * its workers so); until it is decided, a job that finds no
		 * extension does not believe it (registration_undecided)
		 */
		if (event == XACT_EVENT_COMMIT)
			registration_committed(InvalidTransactionId);
		else if (event == XACT_EVENT_PREPARE)
			registration_committed(GetTopTransactionIdIfAny());
		registration_pending = false;
	}
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
	if (!ig_queue_available())
	{
		notice_not_preloaded = !ig_preloaded;
		PG_RETURN_VOID();
	}
	registration_pending = true;
	PG_RETURN_VOID();
}

