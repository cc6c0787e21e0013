/*-------------------------------------------------------------------------
 *
 * counter.h
 *		The counter guard, saturate_counter() (counter.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_COUNTER_H
#define IG_COUNTER_H

#include "postgres.h"

#include "registry.h"

extern const IgGuardKind ig_counter_kind;

/* The detail of a saturation, as the trigger and the rewrite record it. */
extern char *ig_counter_detail(const char *column, const char *bound,
							   int64 limit);

#endif							/* IG_COUNTER_H */
