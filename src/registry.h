/*-------------------------------------------------------------------------
 *
 * registry.h
 *		The guard registry: which trigger functions are guards, their
 *		arguments parsed once per trigger and cached (registry.c).
 *
 * Every guard (counter, range, children, unique) describes itself with an
 * IgGuardKind, registered by _PG_init.  The registry knows no guard by
 * name: it calls the kind's functions.  Fire time (ig_trigger_config),
 * attach time (integrity_guard._check_args), the assignment rewrite
 * (ig_registry_guarded_columns) and ALTER COLUMN TYPE (_guard_retype) all
 * see the same parsed configuration.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_REGISTRY_H
#define IG_REGISTRY_H

#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/rel.h"

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

/* A column an assignment rewrite protects (rewrite.c). */
typedef struct IgGuardedColumn
{
	AttrNumber	attnum;
	bool		is_range;		/* else a counter */
	int64		min;			/* counter bounds */
	int64		max;
	const char *policy;			/* range policy, by name */
} IgGuardedColumn;

/* A column's new type in ALTER TABLE ... ALTER COLUMN ... TYPE. */
typedef struct IgRetype
{
	char	   *column;
	Oid			typid;
} IgRetype;

typedef struct IgGuardKind
{
	const char *function;		/* trigger function in integrity_guard */
	IgParseFunc parse;
	/* IgGuardedColumns the assignment rewrite must protect, or NULL */
	List	   *(*guarded_columns) (void *config);
	/* refuse or follow ALTER COLUMN TYPE of a guarded column, or NULL */
	void		(*check_retype) (Relation rel, Trigger *tg, List *retypes);
} IgGuardKind;

/* module life (pg_integrity_guard.c) */
extern void ig_registry_add_kind(const IgGuardKind *kind);
extern void ig_registry_relation_changed(Oid relid);
extern void ig_registry_functions_changed(void);
extern void ig_registry_abort(void);

/* fire time */
extern void *ig_trigger_config(FunctionCallInfo fcinfo,
							   const IgGuardKind *kind);
extern void **ig_statement_state(FunctionCallInfo fcinfo);
extern TriggerData *ig_require_before_row_write(FunctionCallInfo fcinfo,
											   const char *guard);

/* Bumped when a transaction or subtransaction aborts. */
extern uint64 ig_abort_generation;

/* The row a BEFORE INSERT/UPDATE guard examines and may replace. */
static inline HeapTuple
ig_new_row(TriggerData *td)
{
	return TRIGGER_FIRED_BY_UPDATE(td->tg_event) ?
		td->tg_newtuple : td->tg_trigtuple;
}

/* parsers' helpers */
extern void ig_split_args(IgArgs *args, const char *guard, Relation rel,
						  int nargs, char **argv);
extern void ig_reject_unknown_options(IgArgs *args, const char *const *known);
extern int	ig_option_choice(IgArgs *args, const char *key, const char *what,
							 const char *const *choices);
extern AttrNumber ig_column_attnum(IgArgs *args, const char *column);
extern void *ig_try_parse(IgParseFunc parse, IgArgs *args);
extern void *ig_check_args_config(FunctionCallInfo fcinfo, const char *guard,
								  Oid relid, ArrayType *argarray);

/* the rewrite */
extern const IgGuardKind *ig_guard_kind_of(Oid funcoid);
extern List *ig_registry_guarded_columns(Relation rel);

#endif							/* IG_REGISTRY_H */
