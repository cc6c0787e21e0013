/*-------------------------------------------------------------------------
 *
 * saturate.c
 *		Saturating integer arithmetic and clamping range constructors.
 *
 * Two audiences:
 *	- SQL callers: saturating_add/sub/mul over int2/int4/int8 (the result
 *	  has the type of the wider operand and is clamped to it, or to explicit
 *	  bounds), and tstzrange_clamped/tsrange_clamped/daterange_clamped.
 *	- The assignment rewrite (rewrite.c): integer arithmetic assigned to a
 *	  guarded column becomes _sat_add/_sat_sub/_sat_mul/_sat_neg over int8,
 *	  then _saturate() clamps the result to the guard's bounds and records
 *	  the event; range constructors become _range_guarded().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rangetypes.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "counter.h"
#include "incident.h"
#include "range.h"
#include "registry.h"
#include "settings.h"
#include "util.h"

/* int64 arithmetic that sticks at the int64 limits instead of failing. */
#define sat_add ig_add_sat

static inline int64
sat_sub(int64 a, int64 b)
{
	int64		r;

	if (!pg_sub_s64_overflow(a, b, &r))
		return r;
	return b < 0 ? PG_INT64_MAX : PG_INT64_MIN;
}

static inline int64
sat_mul(int64 a, int64 b)
{
	int64		r;

	if (!pg_mul_s64_overflow(a, b, &r))
		return r;
	return ((a < 0) != (b < 0)) ? PG_INT64_MIN : PG_INT64_MAX;
}

static inline int64
clamp64(int64 v, int64 lo, int64 hi)
{
	return v < lo ? lo : (v > hi ? hi : v);
}

PG_FUNCTION_INFO_V1(ig_sat_add);
PG_FUNCTION_INFO_V1(ig_sat_sub);
PG_FUNCTION_INFO_V1(ig_sat_mul);
PG_FUNCTION_INFO_V1(ig_sat_neg);
PG_FUNCTION_INFO_V1(ig_numeric_int8_sat);
PG_FUNCTION_INFO_V1(ig_sat_div);
PG_FUNCTION_INFO_V1(ig_sat_abs);
PG_FUNCTION_INFO_V1(ig_float8_int8_sat);

Datum
ig_sat_add(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(sat_add(PG_GETARG_INT64(0), PG_GETARG_INT64(1)));
}

Datum
ig_sat_sub(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(sat_sub(PG_GETARG_INT64(0), PG_GETARG_INT64(1)));
}

Datum
ig_sat_mul(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(sat_mul(PG_GETARG_INT64(0), PG_GETARG_INT64(1)));
}

Datum
ig_sat_neg(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(sat_sub(0, PG_GETARG_INT64(0)));
}

/* Division by zero raises as the server's does; only the quotient saturates. */
Datum
ig_sat_div(PG_FUNCTION_ARGS)
{
	int64		a = PG_GETARG_INT64(0);
	int64		b = PG_GETARG_INT64(1);

	if (b == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DIVISION_BY_ZERO),
				 errmsg("division by zero")));
	if (b == -1)
		PG_RETURN_INT64(sat_sub(0, a));
	PG_RETURN_INT64(a / b);
}

Datum
ig_sat_abs(PG_FUNCTION_ARGS)
{
	int64		a = PG_GETARG_INT64(0);

	PG_RETURN_INT64(a < 0 ? sat_sub(0, a) : a);
}

/* float8 -> int8, rounded as the server's cast rounds, stuck at the limits */
Datum
ig_float8_int8_sat(PG_FUNCTION_ARGS)
{
	float8		num = rint(PG_GETARG_FLOAT8(0));

	if (isnan(num))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	if (num >= -((float8) PG_INT64_MIN))
		PG_RETURN_INT64(PG_INT64_MAX);
	if (num < (float8) PG_INT64_MIN)
		PG_RETURN_INT64(PG_INT64_MIN);
	PG_RETURN_INT64((int64) num);
}

/* numeric -> int8, rounded as the server's cast rounds, stuck at the limits */
Datum
ig_numeric_int8_sat(PG_FUNCTION_ARGS)
{
	Numeric		num = PG_GETARG_NUMERIC(0);
	Datum		lo = NumericGetDatum(int64_to_numeric(PG_INT64_MIN));
	Datum		hi = NumericGetDatum(int64_to_numeric(PG_INT64_MAX));

	if (numeric_is_nan(num))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot convert NaN to bigint")));
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(num), hi)) > 0)
		PG_RETURN_INT64(PG_INT64_MAX);
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(num), lo)) < 0)
		PG_RETURN_INT64(PG_INT64_MIN);
	return DirectFunctionCall1(numeric_int8, NumericGetDatum(num));
}

/*
 * integrity_guard._saturate(v int8, lo int8, hi int8, rel oid, col int2)
 *
 * The last step of a rewritten assignment.  A value the column's type can
 * hold passes unchanged: the guard's row trigger clamps it to the bounds
 * where it sits among the table's triggers, exactly as it clamps a literal,
 * so a user trigger that runs before the guard sees the same value whatever
 * the statement's shape.  Only a value the type cannot hold (no statement
 * could write it as a literal: the error the rewrite exists to prevent) is
 * clamped here, to the guard's bounds, and recorded like the trigger's
 * event.  With the guards turned off the value passes unchanged, so the
 * cast back to the column's type fails as the statement would have without
 * the extension.
 */
typedef struct SaturateCache
{
	Oid			relid;
	AttrNumber	attnum;
	int64		lo;
	int64		hi;
	int64		type_lo;		/* the column type's range */
	int64		type_hi;
	bool		may_record;		/* see may_record_for() */
	char	   *column;
	char	   *detail_min;
	char	   *detail_max;
} SaturateCache;

/*
 * These functions are callable by anyone, but their events are meant to
 * come from rewritten INSERTs and UPDATEs, whose permission checks passed
 * before any expression ran.  An event is recorded only when it is one the
 * rewrite of a guard attached to that column could have recorded: the role
 * may insert into or update the table, an enabled guard protects the
 * column, with these bounds (a counter) or this policy and range type (a
 * range).  Anything else computes its value and records nothing, so that
 * nobody forges or inflates incidents.
 */
static bool
may_record_for(Oid relid, AttrNumber attnum, bool is_range, int64 lo,
			   int64 hi, const char *policy, Oid rngtypid)
{
	Relation	rel;
	List	   *cols;
	ListCell   *lc;
	bool		ok = false;

	if (attnum <= 0 ||
		!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)) ||
		pg_class_aclcheck(relid, GetUserId(), ACL_INSERT | ACL_UPDATE) != ACLCHECK_OK)
		return false;
	rel = try_relation_open(relid, AccessShareLock);
	if (rel == NULL)
		return false;
	if ((rel->rd_rel->relkind == RELKIND_RELATION ||
		 rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE) &&
		attnum <= RelationGetNumberOfAttributes(rel) &&
		!TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attisdropped &&
		(!is_range ||
		 getBaseType(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid) == rngtypid))
	{
		cols = ig_registry_guarded_columns(rel);
		foreach(lc, cols)
		{
			IgGuardedColumn *gc = (IgGuardedColumn *) lfirst(lc);

			if (gc->attnum != attnum || gc->is_range != is_range)
				continue;
			if (is_range ? (policy != NULL && gc->policy != NULL &&
							strcmp(policy, gc->policy) == 0) :
				(gc->min == lo && gc->max == hi))
				ok = true;
		}
	}
	relation_close(rel, AccessShareLock);
	return ok;
}

PG_FUNCTION_INFO_V1(ig_saturate);

Datum
ig_saturate(PG_FUNCTION_ARGS)
{
	int64		v = PG_GETARG_INT64(0);
	int64		lo = PG_GETARG_INT64(1);
	int64		hi = PG_GETARG_INT64(2);
	Oid			relid = PG_GETARG_OID(3);
	AttrNumber	attnum = PG_GETARG_INT16(4);
	SaturateCache *cache = (SaturateCache *) fcinfo->flinfo->fn_extra;
	bool		upper;

	if (lo > hi)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lower bound " INT64_FORMAT " is greater than upper bound " INT64_FORMAT,
						lo, hi),
				 errhint("_saturate() takes the bounds of a counter guard: min_value <= max_value.")));
	if (!ig_enabled || !ig_rewrite || (v >= lo && v <= hi))
		PG_RETURN_INT64(v);

	if (cache == NULL || cache->relid != relid || cache->attnum != attnum ||
		cache->lo != lo || cache->hi != hi)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		char	   *name = get_attname(relid, attnum, true);
		Oid			coltype;

		cache = palloc0(sizeof(SaturateCache));
		cache->relid = relid;
		cache->attnum = attnum;
		cache->lo = lo;
		cache->hi = hi;
		coltype = get_atttype(relid, attnum);
		ig_int_type_bounds(OidIsValid(coltype) ? getBaseType(coltype) : InvalidOid,
						   &cache->type_lo, &cache->type_hi);
		cache->may_record = may_record_for(relid, attnum, false, lo, hi,
										   NULL, InvalidOid);
		cache->column = name ? name : psprintf("%d", attnum);
		cache->detail_min = ig_counter_detail(cache->column, "min", lo);
		cache->detail_max = ig_counter_detail(cache->column, "max", hi);
		fcinfo->flinfo->fn_extra = cache;
		MemoryContextSwitchTo(oldcxt);
	}
	if (v >= cache->type_lo && v <= cache->type_hi)
		PG_RETURN_INT64(v);
	upper = v > hi;
	if (cache->may_record)
		ig_incident_record_relid(IG_EVENT_COUNTER_SATURATED, relid, cache->column,
							  upper ? cache->detail_max : cache->detail_min, 1);
	PG_RETURN_INT64(upper ? hi : lo);
}

/*
 * Public saturating arithmetic.  saturating_op(a, b[, min, max]): exact
 * result clamped to the result type and, if given, to [min, max].
 */
static Datum
saturating_result(FunctionCallInfo fcinfo, int64 exact)
{
	Oid			rettype = get_fn_expr_rettype(fcinfo->flinfo);
	int64		lo,
				hi;

	ig_int_type_bounds(rettype, &lo, &hi);
	if (PG_NARGS() == 4)
	{
		int64		min = PG_ARGISNULL(2) ? lo : PG_GETARG_INT64(2);
		int64		max = PG_ARGISNULL(3) ? hi : PG_GETARG_INT64(3);

		if (min > max)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("lower bound " INT64_FORMAT " is greater than upper bound " INT64_FORMAT,
							min, max)));
		/* a bound the result type cannot hold is refused, not clamped */
		if (min < lo || max > hi)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("bounds [" INT64_FORMAT ", " INT64_FORMAT "] are outside the range of type %s",
							min, max, format_type_be(rettype)),
					 errhint("Give bounds within [" INT64_FORMAT ", " INT64_FORMAT "], or NULL for the type's own.",
							 lo, hi)));
		lo = min;
		hi = max;
	}
	exact = clamp64(exact, lo, hi);
	if (rettype == INT2OID)
		return Int16GetDatum((int16) exact);
	if (rettype == INT4OID)
		return Int32GetDatum((int32) exact);
	return Int64GetDatum(exact);
}

/* Operands arrive as int2, int4 or int8; read them as int64. */
static int64
int_arg(FunctionCallInfo fcinfo, int n)
{
	Oid			t = get_fn_expr_argtype(fcinfo->flinfo, n);

	if (t == INT2OID)
		return PG_GETARG_INT16(n);
	if (t == INT4OID)
		return PG_GETARG_INT32(n);
	return PG_GETARG_INT64(n);
}

PG_FUNCTION_INFO_V1(saturating_add);
PG_FUNCTION_INFO_V1(saturating_sub);
PG_FUNCTION_INFO_V1(saturating_mul);

Datum
saturating_add(PG_FUNCTION_ARGS)
{
	/* NULL in, NULL out, as the server's operators (NULL bounds are the type's) */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	return saturating_result(fcinfo, sat_add(int_arg(fcinfo, 0), int_arg(fcinfo, 1)));
}

Datum
saturating_sub(PG_FUNCTION_ARGS)
{
	/* NULL in, NULL out, as the server's operators (NULL bounds are the type's) */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	return saturating_result(fcinfo, sat_sub(int_arg(fcinfo, 0), int_arg(fcinfo, 1)));
}

Datum
saturating_mul(PG_FUNCTION_ARGS)
{
	/* NULL in, NULL out, as the server's operators (NULL bounds are the type's) */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	return saturating_result(fcinfo, sat_mul(int_arg(fcinfo, 0), int_arg(fcinfo, 1)));
}

/*
 * Range constructors that never raise for inverted bounds:
 *	*range_clamped(lower, upper[, bounds text[, policy text]])
 *	_range_guarded(lower, upper, bounds, policy, rel oid, col int2[, NULL::rng])
 * The range type is the function's result type (any range type, through
 * the type cache).  A NULL bound is infinite, as with the server's
 * constructors.
 *
 * A repaired range is never empty: inverted bounds clamped together give
 * the point range '[x,x]' whatever the flags were ('[x,x)' would be empty
 * and lose x), and a swapped pair that the flags or the type's
 * canonicalization would make empty becomes the point range of its lower
 * bound.  Valid input keeps the server's result, empty included.
 */
static void
parse_bounds_flags(const char *s, bool *lower_inc, bool *upper_inc)
{
	if (strlen(s) != 2 || (s[0] != '[' && s[0] != '(') ||
		(s[1] != ']' && s[1] != ')'))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("invalid range bound flags"),
				 errhint("Valid values are \"[]\", \"[)\", \"(]\", and \"()\".")));
	*lower_inc = s[0] == '[';
	*upper_inc = s[1] == ']';
}

/* may_record_for() of a range column, once per call site and column */
typedef struct RangeRecordCache
{
	Oid			relid;
	AttrNumber	attnum;
	IgRangePolicy policy;
	Oid			rngtypid;
	bool		may_record;
} RangeRecordCache;

static bool
range_may_record(FunctionCallInfo fcinfo, Oid relid, AttrNumber attnum,
				 IgRangePolicy policy, Oid rngtypid)
{
	RangeRecordCache *cache = (RangeRecordCache *) fcinfo->flinfo->fn_extra;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt,
									   sizeof(RangeRecordCache));
		cache->relid = InvalidOid;
		fcinfo->flinfo->fn_extra = cache;
	}
	if (cache->relid != relid || cache->attnum != attnum ||
		cache->policy != policy || cache->rngtypid != rngtypid)
	{
		cache->may_record = may_record_for(relid, attnum, true, 0, 0,
										   ig_range_policy_names[policy],
										   rngtypid);
		cache->relid = relid;
		cache->attnum = attnum;
		cache->policy = policy;
		cache->rngtypid = rngtypid;
	}
	return cache->may_record;
}

/* The guard's error for its column, if relid and attnum name one. */
static void
range_guard_error(Oid relid, AttrNumber attnum, Oid bound_typid,
				  Datum lower, Datum upper)
{
	Relation	rel;

	/* a table the role writes, as the rewrite's statements do */
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)) ||
		pg_class_aclcheck(relid, GetUserId(), ACL_INSERT | ACL_UPDATE) != ACLCHECK_OK)
		return;
	rel = try_relation_open(relid, AccessShareLock);
	if (rel == NULL)
		return;
	if (attnum > 0 && attnum <= RelationGetNumberOfAttributes(rel) &&
		!TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attisdropped)
		ig_range_inverted_error(rel, attnum, attnum, bound_typid, lower, upper);
	relation_close(rel, AccessShareLock);
}

PG_FUNCTION_INFO_V1(ig_range_clamped);

Datum
ig_range_clamped(PG_FUNCTION_ARGS)
{
	Oid			rngtypid = get_fn_expr_rettype(fcinfo->flinfo);
	TypeCacheEntry *typcache;
	RangeBound	lower,
				upper;
	RangeType  *result;
	IgRangePolicy policy = IG_RANGE_CLAMP_UPPER;
	char	   *policy_name = NULL;
	bool		lower_inc = true,
				upper_inc = false;
	bool		repaired = false;
	int			nargs = PG_NARGS();
	bool		guarded = nargs >= 6;

	if (!OidIsValid(rngtypid) || !type_is_range(rngtypid))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("could not determine the range type to construct")));
	typcache = lookup_type_cache(rngtypid, TYPECACHE_RANGE_INFO);

	/* the rewrite builds the guarded form only for what a range guard serves */
	if (guarded && !ig_range_bound_type(typcache->rngelemtype->type_id))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s is not a range a range guard serves", format_type_be(rngtypid)),
				 errhint("Range guards serve ranges over timestamptz, timestamp or date.")));

	if (nargs >= 3 && !PG_ARGISNULL(2))
		parse_bounds_flags(text_to_cstring(PG_GETARG_TEXT_PP(2)),
						   &lower_inc, &upper_inc);
	else if (nargs >= 3)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("range constructor flags argument must not be null")));
	if (nargs >= 4 && !PG_ARGISNULL(3))
		policy_name = text_to_cstring(PG_GETARG_TEXT_PP(3));

	lower.val = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	lower.infinite = PG_ARGISNULL(0);
	lower.inclusive = lower_inc;
	lower.lower = true;
	upper.val = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	upper.infinite = PG_ARGISNULL(1);
	upper.inclusive = upper_inc;
	upper.lower = false;

	if (!lower.infinite && !upper.infinite &&
		DatumGetInt32(FunctionCall2Coll(&typcache->rng_cmp_proc_finfo,
										typcache->rng_collation,
										lower.val, upper.val)) > 0)
	{
		Datum		l = lower.val;

		/* guards off: the rewritten constructor fails as the original would */
		if (guarded && (!ig_enabled || !ig_rewrite))
			policy = IG_RANGE_ERROR;
		else if (policy_name != NULL)
			policy = ig_range_policy(policy_name);
		switch (policy)
		{
			case IG_RANGE_CLAMP_UPPER:
				upper.val = l;
				break;
			case IG_RANGE_CLAMP_LOWER:
				lower.val = upper.val;
				break;
			case IG_RANGE_SWAP:
				lower.val = upper.val;
				upper.val = l;
				break;
			case IG_RANGE_ERROR:
				/* the guard's own on_inverted=error, naming table and column */
				if (guarded && ig_enabled && ig_rewrite &&
					!PG_ARGISNULL(4) && !PG_ARGISNULL(5))
					range_guard_error(PG_GETARG_OID(4), PG_GETARG_INT16(5),
									  typcache->rngelemtype->type_id,
									  lower.val, upper.val);
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("range lower bound must be less than or equal to range upper bound")));
				break;
		}
		repaired = true;
		if (policy != IG_RANGE_SWAP)
			lower.inclusive = upper.inclusive = true;

		/* the rewritten form of a guarded column records the event */
		if (guarded && ig_enabled && ig_rewrite &&
			!PG_ARGISNULL(4) && !PG_ARGISNULL(5) &&
			range_may_record(fcinfo, PG_GETARG_OID(4), PG_GETARG_INT16(5),
							 policy, rngtypid))
		{
			Oid			relid = PG_GETARG_OID(4);
			AttrNumber	attnum = PG_GETARG_INT16(5);
			char	   *column = get_attname(relid, attnum, true);
			StringInfoData detail;

			if (column == NULL)
				column = psprintf("%d", attnum);
			initStringInfo(&detail);
			appendStringInfoChar(&detail, '{');
			ig_append_json_string(&detail, "column", column, true);
			ig_append_json_string(&detail, "policy", ig_range_policy_names[policy], false);
			appendStringInfoChar(&detail, '}');
			ig_incident_record_relid(IG_EVENT_RANGE_CLAMPED, relid, column,
								  detail.data, 1);
		}
	}

	result = ig_make_range(typcache, &lower, &upper, false);
	if (repaired && RangeIsEmpty(result))
	{
		/* a swapped pair the flags or canonicalization emptied */
		upper.val = lower.val;
		lower.inclusive = upper.inclusive = true;
		result = ig_make_range(typcache, &lower, &upper, false);
	}
	PG_RETURN_RANGE_P(result);
}
