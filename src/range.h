/*-------------------------------------------------------------------------
 *
 * range.h
 *		The range guard, clamp_range() (range.c), and its policies.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_RANGE_H
#define IG_RANGE_H

#include "postgres.h"

#include "registry.h"

/* What to do with inverted bounds; names as in on_inverted=... */
typedef enum IgRangePolicy
{
	IG_RANGE_CLAMP_UPPER,		/* the default */
	IG_RANGE_CLAMP_LOWER,
	IG_RANGE_SWAP,
	IG_RANGE_ERROR
} IgRangePolicy;

extern const char *const ig_range_policy_names[];

extern const IgGuardKind ig_range_kind;

extern IgRangePolicy ig_range_policy(const char *name);

/* The bound types a range guard serves: timestamptz, timestamp, date. */
extern bool ig_range_bound_type(Oid typid);

/* on_inverted=error's message; lower_attnum == upper_attnum: a range column */
extern void ig_range_inverted_error(Relation rel, AttrNumber lower_attnum,
									AttrNumber upper_attnum, Oid bound_typid,
									Datum lower, Datum upper);

#endif							/* IG_RANGE_H */
