/*-------------------------------------------------------------------------
 *
 * pg_integrity_guard.h
 *		Shared declarations of pg_integrity_guard.
 *
 * The guards (counter.c, range.c, ...) are trigger functions.  They share
 * the trigger-argument parser and the per-trigger cache (guard_cache.c) and
 * report what they absorbed through one audit API (audit.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_INTEGRITY_GUARD_H
#define PG_INTEGRITY_GUARD_H

#include "postgres.h"

#include "compat.h"

#include "commands/trigger.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
#include "utils/rel.h"

#define IG_EXTENSION_NAME	"pg_integrity_guard"
#define IG_SCHEMA_NAME		"integrity_guard"

/* GUCs (pg_integrity_guard.c) */
extern bool ig_enabled;
extern bool ig_log_key_values;
extern bool ig_rewrite;
extern bool ig_preloaded;

/*
 * Audit event types.  The text forms are what audit_log.event_type holds;
 * keep ig_event_type_name() in step.
 */
typedef enum IgEventType
{
	IG_EVENT_COUNTER_SATURATED,
	IG_EVENT_RANGE_CLAMPED,
	IG_EVENT_CHILDREN_NULLIFIED,
	IG_EVENT_CHILDREN_DELETED,
	IG_EVENT_DUPLICATE_KEY,
	IG_EVENT_ORPHANS_FIXED,		/* repair.c */
	IG_EVENT_DUPLICATES_MERGED
} IgEventType;

/* audit.c */
extern void ig_audit_init(void);
extern void ig_audit_record(IgEventType type, Relation rel,
							const char *target, const char *detail_json,
							int64 occurrences);
extern void ig_audit_record_relid(IgEventType type, Oid relid,
								  const char *target, const char *detail_json,
								  int64 occurrences);
extern const char *ig_event_type_name(IgEventType type);
extern bool ig_extension_owner(Oid *owner);
extern void ig_audit_push_if_durable(void);
extern Oid	ig_audit_bind_by_name(const char *schema_name, const char *table_name);
extern void ig_audit_drain_job(Oid dbid);

/*
 * guard_unique raises its own 23505 in this function (unique.c): the error
 * hook must not count that attempt again.
 */
#define IG_UNIQUE_RAISE_FUNC "ig_unique_raise"
/* 23505 errors the hook recorded in this backend */
extern uint64 ig_captured_unique_violations;

/*
 * The durable pipeline (pipeline.c), active when the library is preloaded.
 * An event key is fixed-size and zero-padded (every byte written, see
 * ig_copy_bounded) so that it can live in a shared hash table compared
 * with memcmp.  The detail (key values) is not part of the key: incidents
 * of one table, target, kind and role within a flush window aggregate into
 * one queue entry holding a bounded sample of details.  An incident without
 * a table (an error in an expression) keeps its statement apart.
 */
#define IG_TYPE_LEN		64
#define IG_TARGET_LEN	256
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
	uint32		detail_hash;	/* incidents without a table: their detail's */
} IgEventKey;

/* What a shared entry counts; the spinlock protects the rest. */
typedef struct IgCounts
{
	slock_t		mutex;
	int64		occurrences;
	TimestampTz first_seen;
	TimestampTz last_seen;
} IgCounts;

extern int	ig_queue_size;
extern int	ig_flush_interval;
extern int	ig_max_stats;
extern int	ig_max_flush_jobs;
extern int	ig_retention;
extern bool ig_durable_audit;

extern void ig_pipeline_init(void);
extern bool ig_pipeline_available(void);
extern bool ig_pipeline_busy(void);
extern void ig_copy_bounded(char *dst, size_t size, const char *src);
extern void ig_pipeline_push(const IgEventKey *key, const char *detail,
							 int64 occurrences, TimestampTz first_seen,
							 TimestampTz last_seen);

/* A queued incident handed to a flush job (palloc'd copies). */
typedef struct IgJobIncident
{
	IgEventKey	key;
	int64		occurrences;
	TimestampTz first_seen;
	TimestampTz last_seen;
	char	   *detail;			/* JSON text, with the sample; NULL if none */
} IgJobIncident;

extern int	ig_queue_take(Oid dbid, TransactionId xid, IgJobIncident **out);
extern void ig_queue_settle(Oid dbid, TransactionId xid, bool committed);
extern void ig_queue_settle_stale(Oid dbid);
extern void ig_pipeline_discard(Oid dbid);
extern void ig_pipeline_report_flush(Oid dbid, bool has_extension,
									 int64 written);
extern void ig_pipeline_report_failure(Oid dbid, const char *message);
extern int64 ig_pipeline_flush_wait(void);

/* children.c */
extern void ig_children_init(void);

/* capture.c */
extern void ig_capture_init(void);
extern bool ig_capture_covers(int sqlerrcode);

/*
 * Trigger arguments, split once into columns and options.  An argument of
 * the form key=value whose key is a lower-case word is an option; anything
 * else is a column specification for the guard to interpret.
 */
typedef struct IgOption
{
	char	   *key;
	char	   *value;
} IgOption;

typedef struct IgArgs
{
	const char *guard;			/* trigger function name, for messages */
	Relation	rel;
	Trigger    *trigger;		/* the firing trigger; NULL at attach time */
	List	   *depends;		/* other relations whose changes invalidate */
	int			ncolumns;
	char	  **columns;
	int			noptions;
	IgOption   *options;
} IgArgs;

/*
 * A guard's parser turns its arguments into a private configuration,
 * allocated in CurrentMemoryContext.  It must raise the same errors at
 * attach time (integrity_guard._check_args) and at fire time.
 */
typedef void *(*IgParseFunc) (IgArgs *args);

/* guard_cache.c */
extern void ig_cache_init(void);
extern void *ig_trigger_config(FunctionCallInfo fcinfo, const char *guard,
							   IgParseFunc parse);
extern void **ig_statement_state(FunctionCallInfo fcinfo);
extern TriggerData *ig_require_before_row_write(FunctionCallInfo fcinfo,
											   const char *guard);
extern void ig_split_args(IgArgs *args, const char *guard, Relation rel,
						  int nargs, char **argv);
extern void ig_reject_unknown_options(IgArgs *args, const char *const *known);
extern int	ig_option_choice(IgArgs *args, const char *key, const char *what,
							 const char *const *choices);
extern AttrNumber ig_column_attnum(IgArgs *args, const char *column);
extern void ig_append_json_string(StringInfo buf, const char *key,
								  const char *value, bool first);

/* The row a BEFORE INSERT/UPDATE guard examines and may replace. */
static inline HeapTuple
ig_new_row(TriggerData *td)
{
	return TRIGGER_FIRED_BY_UPDATE(td->tg_event) ?
		td->tg_newtuple : td->tg_trigtuple;
}

/* counter.c, range.c, children.c */
extern void *ig_counter_parse(IgArgs *args);
extern void *ig_range_parse(IgArgs *args);
extern void *ig_children_parse(IgArgs *args);
extern bool ig_children_has_immediate(void *config);
extern char *ig_counter_detail(const char *column, const char *bound,
							   int64 limit);

/* A column an assignment rewrite protects (rewrite.c). */
typedef struct IgGuardedColumn
{
	AttrNumber	attnum;
	bool		is_range;		/* else a counter */
	int64		min;			/* counter bounds */
	int64		max;
	const char *policy;			/* range policy */
} IgGuardedColumn;

extern List *ig_counter_guarded_columns(IgArgs *args);

/* A column's new type in ALTER TABLE ... ALTER COLUMN ... TYPE (counter.c). */
typedef struct IgRetype
{
	char	   *column;
	Oid			typid;
} IgRetype;

extern void ig_range_check_retype(Relation rel, Trigger *tg, List *retypes);
extern void *ig_try_parse(IgParseFunc parse, IgArgs *args);
extern List *ig_range_guarded_columns(IgArgs *args);
extern void ig_rewrite_init(void);
extern void *ig_unique_parse(IgArgs *args);
extern void ig_unique_init(void);
extern bool ig_unique_passed(const char *schema_name, const char *table_name);

/* Bumped when a transaction or subtransaction aborts (guard_cache.c). */
extern uint64 ig_abort_generation;

#endif							/* PG_INTEGRITY_GUARD_H */
