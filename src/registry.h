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

/*
 * A change of a table that guards may name (doc/design.md, "Guards follow
 * the schema"): one of its columns, or the table itself.  'column' is the
 * column's name before the command.
 */
typedef enum IgChangeKind
{
	IG_COLUMN_RENAMED,			/* newname */
	IG_COLUMN_RETYPED,			/* newtype */
	IG_COLUMN_DROPPED,
	IG_TABLE_RENAMED,			/* newname */
	IG_TABLE_MOVED,				/* newschema */
	IG_TABLE_DROPPED,			/* relid no longer exists */
	IG_INDEX_RENAMED,			/* index: old name; newname */
	IG_INDEX_DROPPED,			/* index: its name; relid: the index's */
	IG_TABLE_ATTACHED,			/* as a partition of newname */
	IG_TABLE_DETACHED			/* from newname */
} IgChangeKind;

typedef struct IgSchemaChange
{
	IgChangeKind kind;
	Oid			relid;			/* the table changed */
	const char *schema;			/* its schema, for IG_TABLE_DROPPED */
	const char *table;			/* its name before the command */
	const char *column;
	const char *index;
	const char *newname;
	Oid			newtype;
	const char *newschema;
	List	   *statement;		/* every change of the same command */
} IgSchemaChange;

/* What a guard becomes after such a change. */
typedef enum IgFollowAction
{
	IG_FOLLOW_NONE,				/* not concerned, or already right */
	IG_FOLLOW_REWRITE,			/* new column arguments, same trigger */
	IG_FOLLOW_REATTACH,			/* new arguments on a BEFORE ROW trigger */
	IG_FOLLOW_REMOVE			/* the guard no longer applies */
} IgFollowAction;

typedef struct IgFollow
{
	IgFollowAction action;
	List	   *columns;		/* column arguments (char *) after it */
	List	   *options;		/* "key=value" arguments after it, */
	bool		set_options;	/* when given */
	const char *what;			/* what happened to the guard, for people */
} IgFollow;

typedef struct IgGuardKind
{
	const char *function;		/* trigger function in integrity_guard */
	IgParseFunc parse;
	/* IgGuardedColumns the assignment rewrite must protect, or NULL */
	List	   *(*guarded_columns) (void *config);
	const char *label;			/* the guard's name in unguard() and guards */
	/*
	 * How a guard on args->rel follows a change of that table, or of another
	 * table or an index it names; NULL: it names none.
	 */
	void		(*follow) (IgArgs *args, Trigger *tg,
						   const IgSchemaChange *change, IgFollow *out);
	bool		follows_tables; /* names other tables (children) */
	bool		follows_indexes;	/* names indexes (unique) */
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
extern bool ig_spec_is_option(const char *arg);
extern bool ig_extension_1_4(void);

/* the rewrite */
extern const IgGuardKind *ig_guard_kind_of(Oid funcoid);
extern List *ig_registry_guarded_columns(Relation rel);

#endif							/* IG_REGISTRY_H */
