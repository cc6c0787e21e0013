/*-------------------------------------------------------------------------
 *
 * range.c
 *		clamp_range(): keep a time range from being inverted.
 *
 * BEFORE INSERT OR UPDATE, FOR EACH ROW.  Arguments:
 *		'lower_col', 'upper_col'	timestamptz, timestamp or date columns
 *		'range_col'					a tstzrange, tsrange or daterange column
 * then 'on_inverted=clamp_upper' (default: upper := lower), 'clamp_lower'
 * (lower := upper), 'swap', or 'error'.  NULL bounds are open, never
 * inverted.
 *
 * The column-pair form is what rescues Sentry's GroupOpenPeriod: its
 * exclusion constraint evaluates tstzrange(date_started, date_ended, '[]')
 * after BEFORE ROW triggers, so fixing the pair here keeps the range
 * constructor from raising "range lower bound must be less than or equal to
 * range upper bound".  A stored range value can never be inverted (its
 * constructor raises first), so the range-column form has nothing to do per
 * row: it is validated here and acted on by the assignment rewrite.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

#include "incident.h"
#include "range.h"
#include "registry.h"
#include "settings.h"
#include "util.h"

const char *const ig_range_policy_names[] = {
	"clamp_upper", "clamp_lower", "swap", "error", NULL
};

static const char *const range_options[] = {"on_inverted", NULL};

typedef struct RangeConfig
{
	bool		pair;			/* column pair, else one range column */
	AttrNumber	lower_attnum;
	AttrNumber	upper_attnum;
	Oid			typid;			/* bound type (pair) or range type */
	IgRangePolicy policy;
	char	   *lower_name;
	char	   *upper_name;
	char	   *target;			/* audit target and detail, built once */
	char	   *detail;
	int			repl_cols[2];
	Datum		repl_values[2];
	bool		repl_nulls[2];
} RangeConfig;

bool
ig_range_bound_type(Oid typid)
{
	return typid == TIMESTAMPTZOID || typid == TIMESTAMPOID || typid == DATEOID;
}

static void *
range_parse(IgArgs *args)
{
	TupleDesc	tupdesc = RelationGetDescr(args->rel);
	RangeConfig *cfg = palloc0(sizeof(RangeConfig));
	StringInfoData buf;

	ig_reject_unknown_options(args, range_options);
	cfg->policy = (IgRangePolicy) ig_option_choice(args, "on_inverted",
												 "on_inverted policy",
												 ig_range_policy_names);

	if (args->ncolumns == 2)
	{
		Oid			upper_typid;

		cfg->pair = true;
		cfg->lower_name = args->columns[0];
		cfg->upper_name = args->columns[1];
		cfg->lower_attnum = ig_column_attnum(args, cfg->lower_name);
		cfg->upper_attnum = ig_column_attnum(args, cfg->upper_name);
		if (cfg->lower_attnum == cfg->upper_attnum)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("clamp_range() on table \"%s\" needs two different columns",
							RelationGetRelationName(args->rel)),
					 errdetail("Both bounds name column \"%s\".", cfg->lower_name)));
		cfg->typid = TupleDescAttr(tupdesc, cfg->lower_attnum - 1)->atttypid;
		upper_typid = TupleDescAttr(tupdesc, cfg->upper_attnum - 1)->atttypid;
		if (!ig_range_bound_type(cfg->typid) || upper_typid != cfg->typid)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("columns \"%s\" (%s) and \"%s\" (%s) of relation \"%s\" cannot bound a time range",
							cfg->lower_name, format_type_be(cfg->typid),
							cfg->upper_name, format_type_be(upper_typid),
							RelationGetRelationName(args->rel)),
					 errhint("Both columns must be timestamptz, both timestamp, or both date.")));

		cfg->repl_cols[0] = cfg->lower_attnum;
		cfg->repl_cols[1] = cfg->upper_attnum;
		initStringInfo(&buf);
		appendStringInfo(&buf, "%s,%s", cfg->lower_name, cfg->upper_name);
		cfg->target = buf.data;
	}
	else if (args->ncolumns == 1)
	{
		Oid			subtype;

		cfg->pair = false;
		cfg->lower_name = args->columns[0];
		cfg->lower_attnum = ig_column_attnum(args, cfg->lower_name);
		cfg->typid = TupleDescAttr(tupdesc, cfg->lower_attnum - 1)->atttypid;
		subtype = type_is_range(cfg->typid) ?
			get_range_subtype(cfg->typid) : InvalidOid;
		if (!ig_range_bound_type(subtype))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of relation \"%s\" is of type %s, not a time range",
							cfg->lower_name, RelationGetRelationName(args->rel),
							format_type_be(cfg->typid)),
					 errhint("Pass a tstzrange, tsrange or daterange column, or the two columns that bound the range.")));
		cfg->target = cfg->lower_name;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clamp_range() on table \"%s\" takes one range column or two bound columns, not %d",
						RelationGetRelationName(args->rel), args->ncolumns),
				 errhint("Use clamp_range('lower_column', 'upper_column'[, 'on_inverted=...']) or clamp_range('range_column'[, 'on_inverted=...']).")));

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	if (cfg->pair)
	{
		ig_append_json_string(&buf, "lower_column", cfg->lower_name, true);
		ig_append_json_string(&buf, "upper_column", cfg->upper_name, false);
	}
	else
		ig_append_json_string(&buf, "column", cfg->lower_name, true);
	ig_append_json_string(&buf, "policy", ig_range_policy_names[cfg->policy],
						  false);
	appendStringInfoChar(&buf, '}');
	cfg->detail = buf.data;

	return cfg;
}

/* The range column of a range guard, with its policy. */
static List *
range_guarded_columns(void *config)
{
	RangeConfig *cfg = (RangeConfig *) config;
	IgGuardedColumn *gc;

	if (cfg->pair)
		return NIL;				/* the trigger handles a column pair */
	gc = palloc0(sizeof(IgGuardedColumn));
	gc->attnum = cfg->lower_attnum;
	gc->is_range = true;
	gc->policy = ig_range_policy_names[cfg->policy];
	return list_make1(gc);
}

static inline bool
bounds_inverted(Oid typid, Datum lower, Datum upper)
{
	if (typid == DATEOID)
		return DatumGetDateADT(lower) > DatumGetDateADT(upper);
	/* timestamp and timestamptz are both int64 microseconds */
	return DatumGetTimestamp(lower) > DatumGetTimestamp(upper);
}

/*
 * Whether the role may see the bounds in the error: the server's rule for
 * row values in its own messages (ExecBuildSlotValueDescription): no
 * row-level security in force, and SELECT on the table or on both columns.
 */
static bool
may_show_bounds(Relation rel, AttrNumber lower_attnum, AttrNumber upper_attnum)
{
	Oid			relid = RelationGetRelid(rel);
	Oid			userid = GetUserId();

	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		return false;
	if (pg_class_aclcheck(relid, userid, ACL_SELECT) == ACLCHECK_OK)
		return true;
	return pg_attribute_aclcheck(relid, lower_attnum, userid, ACL_SELECT) == ACLCHECK_OK &&
		pg_attribute_aclcheck(relid, upper_attnum, userid, ACL_SELECT) == ACLCHECK_OK;
}

static char *
bound_text(Oid typid, Datum value)
{
	Oid			outfunc;
	bool		isvarlena;

	getTypeOutputInfo(typid, &outfunc, &isvarlena);
	return OidOutputFunctionCall(outfunc, value);
}

/*
 * The documented error of on_inverted=error, for the trigger (a pair of
 * columns) and for the rewrite of a range constructor (one range column:
 * lower_attnum == upper_attnum).  Values only for a role that could read
 * them, as the server's own DETAIL.
 */
void
ig_range_inverted_error(Relation rel, AttrNumber lower_attnum,
						AttrNumber upper_attnum, Oid bound_typid,
						Datum lower, Datum upper)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	const char *lower_name = NameStr(TupleDescAttr(tupdesc, lower_attnum - 1)->attname);
	const char *upper_name = NameStr(TupleDescAttr(tupdesc, upper_attnum - 1)->attname);
	bool		show = may_show_bounds(rel, lower_attnum, upper_attnum);

	if (lower_attnum == upper_attnum)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("range lower bound must be less than or equal to range upper bound"),
				 show ?
				 errdetail("In table \"%s\", column \"%s\" would get lower bound %s after upper bound %s.",
						   RelationGetRelationName(rel), lower_name,
						   bound_text(bound_typid, lower),
						   bound_text(bound_typid, upper)) :
				 errdetail("In table \"%s\", column \"%s\" would get a lower bound after its upper bound.",
						   RelationGetRelationName(rel), lower_name),
				 errhint("Write an upper bound at or after the lower bound, or attach the guard with on_inverted=clamp_upper, clamp_lower or swap."),
				 errtablecol(rel, lower_attnum)));
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("range lower bound must be less than or equal to range upper bound"),
			 show ?
			 errdetail("In table \"%s\", column \"%s\" = %s is after column \"%s\" = %s.",
					   RelationGetRelationName(rel),
					   lower_name, bound_text(bound_typid, lower),
					   upper_name, bound_text(bound_typid, upper)) :
			 errdetail("In table \"%s\", column \"%s\" is after column \"%s\".",
					   RelationGetRelationName(rel), lower_name, upper_name),
			 errhint("Write an upper bound at or after the lower bound, or attach the guard with on_inverted=clamp_upper, clamp_lower or swap."),
			 errtable(rel)));
}

PG_FUNCTION_INFO_V1(clamp_range);

Datum
clamp_range(PG_FUNCTION_ARGS)
{
	TriggerData *td = ig_require_before_row_write(fcinfo, "clamp_range");
	HeapTuple	tuple = ig_new_row(td);
	TupleDesc	tupdesc = RelationGetDescr(td->tg_relation);
	RangeConfig *cfg;
	Datum		lower,
				upper;
	bool		lower_null,
				upper_null;
	int			nrepl = 2;

	if (!ig_enabled)
		return PointerGetDatum(tuple);

	cfg = ig_trigger_config(fcinfo, &ig_range_kind);
	if (!cfg->pair)
		return PointerGetDatum(tuple);

	lower = heap_getattr(tuple, cfg->lower_attnum, tupdesc, &lower_null);
	upper = heap_getattr(tuple, cfg->upper_attnum, tupdesc, &upper_null);
	if (lower_null || upper_null || !bounds_inverted(cfg->typid, lower, upper))
		return PointerGetDatum(tuple);

	switch (cfg->policy)
	{
		case IG_RANGE_CLAMP_UPPER:
			cfg->repl_cols[0] = cfg->upper_attnum;
			cfg->repl_values[0] = lower;
			nrepl = 1;
			break;
		case IG_RANGE_CLAMP_LOWER:
			cfg->repl_cols[0] = cfg->lower_attnum;
			cfg->repl_values[0] = upper;
			nrepl = 1;
			break;
		case IG_RANGE_SWAP:
			cfg->repl_cols[0] = cfg->lower_attnum;
			cfg->repl_values[0] = upper;
			cfg->repl_cols[1] = cfg->upper_attnum;
			cfg->repl_values[1] = lower;
			break;
		case IG_RANGE_ERROR:
			ig_range_inverted_error(td->tg_relation, cfg->lower_attnum,
									cfg->upper_attnum, cfg->typid, lower, upper);
			break;
	}

	ig_incident_record(IG_EVENT_RANGE_CLAMPED, td->tg_relation, cfg->target,
					cfg->detail, 1);

	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, tupdesc, nrepl,
													 cfg->repl_cols,
													 cfg->repl_values,
													 cfg->repl_nulls));
}

/*
 * How a range guard follows a change of one of its columns: a rename is
 * followed; a new type it serves as it served the old keeps it; any other
 * type, or a dropped column, removes the guard (it needs both bounds).
 */
static void
range_follow(IgArgs *args, Trigger *tg, const IgSchemaChange *change,
					IgFollow *out)
{
	int			i;
	int			hit = -1;

	/* this table's own columns only */
	if (change->relid != RelationGetRelid(args->rel) || change->column == NULL)
		return;

	for (i = 0; i < args->ncolumns; i++)
		if (strcmp(args->columns[i], change->column) == 0)
			hit = i;
	if (hit < 0 || args->ncolumns > 2)
		return;

	if (change->kind == IG_COLUMN_RENAMED)
	{
		if (!ig_spec_is_option(change->newname))
		{
			for (i = 0; i < args->ncolumns; i++)
				out->columns = lappend(out->columns,
									   i == hit ? pstrdup(change->newname) : args->columns[i]);
			out->action = IG_FOLLOW_REWRITE;
			out->what = psprintf("follows column \"%s\" to its new name \"%s\"",
								 change->column, change->newname);
			return;
		}
		out->action = IG_FOLLOW_REMOVE;
		out->what = psprintf("was removed: the new name of column \"%s\" reads as an option",
							 change->column);
		return;
	}
	if (change->kind == IG_COLUMN_RETYPED)
	{
		if (args->ncolumns == 2)
		{
			/* the other bound's type after the same ALTER TABLE */
			const char *other_name = args->columns[1 - hit];
			AttrNumber	other_att = get_attnum(RelationGetRelid(args->rel), other_name);
			Oid			other = other_att == InvalidAttrNumber ? InvalidOid :
				TupleDescAttr(RelationGetDescr(args->rel), other_att - 1)->atttypid;
			ListCell   *lc;

			foreach(lc, change->statement)
			{
				const IgSchemaChange *sibling = lfirst(lc);

				if (sibling->kind == IG_COLUMN_RETYPED &&
					strcmp(sibling->column, other_name) == 0)
					other = sibling->newtype;
			}
			if (ig_range_bound_type(change->newtype) && change->newtype == other)
				return;
		}
		else if (type_is_range(change->newtype) &&
				 ig_range_bound_type(get_range_subtype(change->newtype)))
			return;
		out->action = IG_FOLLOW_REMOVE;
		out->what = psprintf("was removed: it serves no range over %s",
							 format_type_be(change->newtype));
		return;
	}
	out->action = IG_FOLLOW_REMOVE;
	out->what = psprintf("was removed: column \"%s\" was one of its bounds",
						 change->column);
}

/*
 * The policy of this name (the rewritten range constructors pass it as
 * text).
 */
IgRangePolicy
ig_range_policy(const char *name)
{
	int			i;

	for (i = 0; ig_range_policy_names[i] != NULL; i++)
		if (strcmp(name, ig_range_policy_names[i]) == 0)
			return (IgRangePolicy) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown on_inverted policy \"%s\"", name),
			 errhint("Valid policies are clamp_upper (the default), clamp_lower, swap and error.")));
	return IG_RANGE_CLAMP_UPPER;	/* keep compiler quiet */
}

const IgGuardKind ig_range_kind = {
	.function = "clamp_range",
	.label = "range",
	.parse = range_parse,
	.guarded_columns = range_guarded_columns,
	.follow = range_follow,
};
