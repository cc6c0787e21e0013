/*-------------------------------------------------------------------------
 *
 * unique.h
 *		The duplicate-key guard, guard_unique() (unique.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_UNIQUE_H
#define IG_UNIQUE_H

#include "postgres.h"

#include "access/xact.h"
#include "executor/execdesc.h"

#include "registry.h"

extern const IgGuardKind ig_unique_kind;

/* the stack of running statements (the executor and utility hooks) */
extern int	ig_unique_enter(QueryDesc *queryDesc);
extern void ig_unique_leave(int depth);
extern void ig_unique_xact_event(XactEvent event);
extern void ig_unique_subxact_event(SubXactEvent event,
									SubTransactionId mySubid);

/*
 * guard_unique raises its own 23505 in this function: the error hook must
 * not count that attempt again.
 */
#define IG_UNIQUE_RAISE_FUNC "ig_unique_raise"

extern bool ig_unique_passed(const char *schema_name, const char *table_name);

/*
 * Error capture (capture.c, above) keeps these up to date: whether it
 * queues the server's 23505, and how many it queued in this backend.
 */
extern bool ig_unique_capture_on;
extern uint64 ig_unique_captured;

#endif							/* IG_UNIQUE_H */
