/*-------------------------------------------------------------------------
 *
 * counter.c
 *		saturate_counter(): hold counter columns to their bounds.
 *
 * BEFORE INSERT OR UPDATE, FOR EACH ROW.  Arguments, one per column:
 *		'col'			bounds [-2147483648, 2147483647] narrowed to the type
 *		'col:min:max'	explicit bounds; either may be empty (the default)
 * Column types: smallint, integer, bigint, numeric.  A value past a bound
 * is stored as the bound and a counter_saturated event is recorded.  NULL
 * and numeric NaN are left alone.  A row that needs no change is returned
 * as it came, without a copy.
 *
 * What reaches a trigger is already of the column's type: an integer column
 * overflowing inside int4pl never gets here (see the rewrite).  The trigger
 * serves bigint and numeric columns held to 32-bit or custom bounds, and
 * custom bounds on any column.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <limits.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "parser/parse_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/resowner.h"

#include "counter.h"
#include "incident.h"
#include "registry.h"
#include "settings.h"
#include "util.h"

#define IG_COUNTER_DEFAULT_MIN	((int64) PG_INT32_MIN)
#define IG_COUNTER_DEFAULT_MAX	((int64) PG_INT32_MAX)

/*
 * Default bounds: the column type's own range, the bigint range for
 * numeric.  Before 1.4 they were 32-bit, narrowed to a smallint column; the
 * 1.3--1.4 script writes such bounds out on wider columns, and a library
 * newer than the installed SQL keeps reading them the old way.
 */
static void
counter_default_bounds(Oid typid, int64 *lo, int64 *hi)
{
	ig_int_type_bounds(typid, lo, hi);
	if (!ig_extension_1_4())
	{
		*lo = Max(*lo, IG_COUNTER_DEFAULT_MIN);
		*hi = Min(*hi, IG_COUNTER_DEFAULT_MAX);
	}
}

typedef struct CounterColumn
{
	AttrNumber	attnum;
	Oid			typid;
	int64		min;
	int64		max;
	bool		explicit_min;	/* bound given in the arguments */
	bool		explicit_max;
	Datum		min_numeric;	/* bounds as numeric, for numeric columns */
	Datum		max_numeric;
	char	   *name;
	char	   *detail_min;		/* audit detail JSON, built once */
	char	   *detail_max;
} CounterColumn;

typedef struct CounterConfig
{
	int			ncolumns;
	/* scratch space for heap_modify_tuple_by_cols, sized once */
	int		   *repl_cols;
	Datum	   *repl_values;
	bool	   *repl_nulls;
	CounterColumn columns[FLEXIBLE_ARRAY_MEMBER];
} CounterConfig;

static const char *const counter_options[] = {NULL};

static bool
parse_bound(const char *s, int64 *result)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || errno == ERANGE)
		return false;
	*result = (int64) v;
	return true;
}

/* Audit detail of a saturation; the rewrite builds the same text. */
char *
ig_counter_detail(const char *column, const char *bound, int64 limit)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	ig_append_json_string(&buf, "column", column, true);
	ig_append_json_string(&buf, "bound", bound, false);
	appendStringInfo(&buf, ", \"limit\": " INT64_FORMAT "}", limit);
	return buf.data;
}

/*
 * Split 'col:min:max' at its last two colons; a name without colons is a
 * plain column.  A column whose name contains colons is written 'a:b::'.
 * An empty bound comes back as NULL (the default).  False for a spec with a
 * single colon, which names no bounds; the callers word that error.
 */
static bool
split_column_spec(const char *spec, char **name, char **min_text,
				  char **max_text)
{
	const char *last = strrchr(spec, ':');
	const char *prev = NULL;
	const char *p;

	*min_text = *max_text = NULL;
	if (last == NULL)
	{
		*name = pstrdup(spec);
		return true;
	}
	for (p = spec; p < last; p++)
		if (*p == ':')
			prev = p;
	if (prev == NULL)
		return false;

	*name = pnstrdup(spec, prev - spec);
	if (last - prev > 1)
		*min_text = pnstrdup(prev + 1, last - prev - 1);
	if (last[1] != '\0')
		*max_text = pstrdup(last + 1);
	return true;
}

static void
parse_column_spec(IgArgs *args, const char *spec, CounterColumn *col,
				  bool *has_min, bool *has_max)
{
	char	   *min_text;
	char	   *max_text;

	*has_min = *has_max = false;
	if (!split_column_spec(spec, &col->name, &min_text, &max_text))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid column specification \"%s\" for saturate_counter() on table \"%s\"",
						spec, RelationGetRelationName(args->rel)),
				 errhint("Use 'column' or 'column:min:max'; either bound may be empty, as in 'times_seen::1000000'.")));

	if (min_text != NULL)
	{
		if (!parse_bound(min_text, &col->min))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid lower bound \"%s\" for column \"%s\" in saturate_counter()",
							min_text, col->name),
					 errhint("Bounds are whole numbers within the bigint range, or empty for the default.")));
		*has_min = true;
	}
	if (max_text != NULL)
	{
		if (!parse_bound(max_text, &col->max))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid upper bound \"%s\" for column \"%s\" in saturate_counter()",
							max_text, col->name),
					 errhint("Bounds are whole numbers within the bigint range, or empty for the default.")));
		*has_max = true;
	}
}

/*
 * integrity_guard._counter_spec(spec): one column argument of a counter
 * guard as saturate_counter() reads it, for the SQL that reads guards
 * (check()): the column and its explicit bounds (NULL: the default).  A
 * spec the trigger refuses gives NULLs rather than an error, so that a
 * reader of the catalog never fails on a hand-made trigger (check()
 * reports those in its guards section).
 */
PG_FUNCTION_INFO_V1(ig_counter_spec);

Datum
ig_counter_spec(PG_FUNCTION_ARGS)
{
	char	   *spec = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TupleDesc	tupdesc;
	Datum		values[3] = {0};
	bool		nulls[3] = {true, true, true};
	char	   *name;
	char	   *min_text;
	char	   *max_text;
	int64		min = 0;
	int64		max = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (split_column_spec(spec, &name, &min_text, &max_text) &&
		(min_text == NULL || parse_bound(min_text, &min)) &&
		(max_text == NULL || parse_bound(max_text, &max)))
	{
		values[0] = CStringGetTextDatum(name);
		nulls[0] = false;
		if (min_text != NULL)
		{
			values[1] = Int64GetDatum(min);
			nulls[1] = false;
		}
		if (max_text != NULL)
		{
			values[2] = Int64GetDatum(max);
			nulls[2] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}

static void *
counter_parse(IgArgs *args)
{
	TupleDesc	tupdesc = RelationGetDescr(args->rel);
	CounterConfig *cfg;
	int			i,
				j;

	ig_reject_unknown_options(args, counter_options);
	if (args->ncolumns == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("saturate_counter() on table \"%s\" needs at least one column",
						RelationGetRelationName(args->rel)),
				 errhint("Pass one argument per column: 'column' or 'column:min:max'.")));

	cfg = palloc0(offsetof(CounterConfig, columns) +
				  sizeof(CounterColumn) * args->ncolumns);
	cfg->ncolumns = args->ncolumns;
	cfg->repl_cols = palloc(sizeof(int) * args->ncolumns);
	cfg->repl_values = palloc(sizeof(Datum) * args->ncolumns);
	cfg->repl_nulls = palloc0(sizeof(bool) * args->ncolumns);

	for (i = 0; i < args->ncolumns; i++)
	{
		CounterColumn *col = &cfg->columns[i];
		bool		has_min,
					has_max;
		int64		type_lo,
					type_hi,
					default_min,
					default_max;
		Form_pg_attribute att;

		parse_column_spec(args, args->columns[i], col, &has_min, &has_max);
		col->explicit_min = has_min;
		col->explicit_max = has_max;
		col->attnum = ig_column_attnum(args, col->name);
		for (j = 0; j < i; j++)
			if (cfg->columns[j].attnum == col->attnum)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("column \"%s\" is named more than once in saturate_counter() on table \"%s\"",
								col->name, RelationGetRelationName(args->rel))));

		att = TupleDescAttr(tupdesc, col->attnum - 1);
		col->typid = att->atttypid;
		if (col->typid != INT2OID && col->typid != INT4OID &&
			col->typid != INT8OID && col->typid != NUMERICOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of relation \"%s\" is of type %s",
							col->name, RelationGetRelationName(args->rel),
							format_type_be(col->typid)),
					 errdetail("saturate_counter() guards smallint, integer, bigint and numeric columns (not domains over them)."),
					 errhint("Guard a counter column, or change the column's type.")));

		counter_default_bounds(col->typid, &default_min, &default_max);
		if (!has_min)
			col->min = default_min;
		if (!has_max)
			col->max = default_max;
		ig_int_type_bounds(col->typid, &type_lo, &type_hi);

		if (col->min < type_lo || col->max > type_hi ||
			col->min > type_hi || col->max < type_lo)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bounds [" INT64_FORMAT ", " INT64_FORMAT "] are out of range for column \"%s\" of type %s",
							col->min, col->max, col->name,
							format_type_be(col->typid)),
					 errhint("Bounds of a %s column lie within [" INT64_FORMAT ", " INT64_FORMAT "].",
							 format_type_be(col->typid), type_lo, type_hi)));
		if (col->min > col->max)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("lower bound " INT64_FORMAT " is greater than upper bound " INT64_FORMAT " for column \"%s\"",
							col->min, col->max, col->name),
					 errhint("Give bounds as 'column:min:max' with min <= max.")));

		if (col->typid == NUMERICOID)
		{
			col->min_numeric = NumericGetDatum(int64_to_numeric(col->min));
			col->max_numeric = NumericGetDatum(int64_to_numeric(col->max));
		}
		col->detail_min = ig_counter_detail(col->name, "min", col->min);
		col->detail_max = ig_counter_detail(col->name, "max", col->max);
	}

	return cfg;
}

/* The integer columns of a counter guard, with their bounds. */
static List *
counter_guarded_columns(void *config)
{
	CounterConfig *cfg = (CounterConfig *) config;
	List	   *result = NIL;
	int			i;

	for (i = 0; i < cfg->ncolumns; i++)
	{
		IgGuardedColumn *gc;

		if (cfg->columns[i].typid == NUMERICOID)
			continue;			/* numeric arithmetic never overflows */
		gc = palloc0(sizeof(IgGuardedColumn));
		gc->attnum = cfg->columns[i].attnum;
		gc->min = cfg->columns[i].min;
		gc->max = cfg->columns[i].max;
		result = lappend(result, gc);
	}
	return result;
}

/* -1: below min, 1: above max, 0: within bounds. */
static inline int
counter_position(CounterColumn *col, Datum value)
{
	int64		v;

	switch (col->typid)
	{
		case INT2OID:
			v = DatumGetInt16(value);
			break;
		case INT4OID:
			v = DatumGetInt32(value);
			break;
		case INT8OID:
			v = DatumGetInt64(value);
			break;
		default:
			if (numeric_is_nan(DatumGetNumeric(value)))
				return 0;
			if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, value,
												  col->max_numeric)) > 0)
				return 1;
			if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, value,
												  col->min_numeric)) < 0)
				return -1;
			return 0;
	}
	return v > col->max ? 1 : (v < col->min ? -1 : 0);
}

static Datum
counter_bound_datum(CounterColumn *col, bool upper)
{
	int64		bound = upper ? col->max : col->min;

	switch (col->typid)
	{
		case INT2OID:
			return Int16GetDatum((int16) bound);
		case INT4OID:
			return Int32GetDatum((int32) bound);
		case INT8OID:
			return Int64GetDatum(bound);
		default:
			return upper ? col->max_numeric : col->min_numeric;
	}
}

PG_FUNCTION_INFO_V1(saturate_counter);

Datum
saturate_counter(PG_FUNCTION_ARGS)
{
	TriggerData *td = ig_require_before_row_write(fcinfo, "saturate_counter");
	HeapTuple	tuple = ig_new_row(td);
	TupleDesc	tupdesc = RelationGetDescr(td->tg_relation);
	CounterConfig *cfg;
	int			nchanged = 0;
	int			i;

	if (!ig_enabled)
		return PointerGetDatum(tuple);

	cfg = ig_trigger_config(fcinfo, &ig_counter_kind);

	for (i = 0; i < cfg->ncolumns; i++)
	{
		CounterColumn *col = &cfg->columns[i];
		bool		isnull;
		Datum		value;
		int			pos;

		value = heap_getattr(tuple, col->attnum, tupdesc, &isnull);
		if (isnull)
			continue;
		pos = counter_position(col, value);
		if (pos == 0)
			continue;

		cfg->repl_cols[nchanged] = col->attnum;
		cfg->repl_values[nchanged] = counter_bound_datum(col, pos > 0);
		nchanged++;
		ig_incident_record(IG_EVENT_COUNTER_SATURATED, td->tg_relation,
						col->name, pos > 0 ? col->detail_max : col->detail_min,
						1);
	}

	if (nchanged == 0)
		return PointerGetDatum(tuple);

	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, tupdesc, nchanged,
													 cfg->repl_cols,
													 cfg->repl_values,
													 cfg->repl_nulls));
}

/*
 * How a counter guard follows a change of one of its columns (registry.c,
 * "Guards follow the schema"):
 * - renamed: the argument names the new name, bounds kept;
 * - retyped to another integer type or numeric: default bounds follow the
 *   new type; explicit bounds the new type cannot hold are narrowed to it;
 *   a never-firing marker becomes a row trigger when the new type can hold
 *   values past the bounds;
 * - retyped to anything else, or dropped: the column leaves the guard, and
 *   the guard goes with its last column.
 */

/* 'name', or 'name:min:max' with either bound empty for the default */
static char *
counter_spec(const char *name, bool has_min, int64 min, bool has_max, int64 max)
{
	if (!has_min && !has_max && strchr(name, ':') == NULL)
		return pstrdup(name);
	return psprintf("%s:%s:%s", name,
					has_min ? psprintf(INT64_FORMAT, min) : "",
					has_max ? psprintf(INT64_FORMAT, max) : "");
}

static void
counter_follow(IgArgs *args, Trigger *tg, const IgSchemaChange *change,
					  IgFollow *out)
{
	List	   *specs = NIL;
	const char *what = NULL;
	bool		reattach = false;
	int			i;

	/* this table's own columns only */
	if (change->relid != RelationGetRelid(args->rel) || change->column == NULL)
		return;

	for (i = 0; i < args->ncolumns; i++)
	{
		CounterColumn col;
		bool		has_min,
					has_max;
		int64		lo,
					hi;
		char	   *spec;
		char	   *min_text;
		char	   *max_text;

		memset(&col, 0, sizeof(col));
		if (!split_column_spec(args->columns[i], &col.name, &min_text, &max_text) ||
			strcmp(col.name, change->column) != 0)
		{
			specs = lappend(specs, args->columns[i]);
			continue;
		}
		parse_column_spec(args, args->columns[i], &col, &has_min, &has_max);

		if (change->kind == IG_COLUMN_RENAMED)
		{
			spec = counter_spec(change->newname, has_min, col.min, has_max, col.max);
			if (ig_spec_is_option(spec))
				what = psprintf("no longer guards column \"%s\": its new name reads as an option",
								change->column);
			else
			{
				specs = lappend(specs, spec);
				what = psprintf("follows column \"%s\" to its new name \"%s\"",
								change->column, change->newname);
			}
			continue;
		}
		if (change->kind == IG_COLUMN_DROPPED ||
			(change->newtype != INT2OID && change->newtype != INT4OID &&
			 change->newtype != INT8OID && change->newtype != NUMERICOID))
		{
			what = change->kind == IG_COLUMN_DROPPED ?
				psprintf("no longer guards column \"%s\", which was dropped",
						 change->column) :
				psprintf("no longer guards column \"%s\": it guards smallint, integer, bigint and numeric columns, not %s",
						 change->column, format_type_be(change->newtype));
			continue;
		}

		/* another counter type: explicit bounds it cannot hold narrow */
		ig_int_type_bounds(change->newtype, &lo, &hi);
		if ((has_min && (col.min < lo || col.min > hi)) ||
			(has_max && (col.max > hi || col.max < lo)))
		{
			int64		min = has_min ? Min(Max(col.min, lo), hi) : lo;
			int64		max = has_max ? Max(Min(col.max, hi), lo) : hi;

			what = psprintf("narrows the bounds of column \"%s\" to [" INT64_FORMAT ", " INT64_FORMAT "], what %s holds",
							change->column, min, max, format_type_be(change->newtype));
			col.min = min;
			col.max = max;
			has_min = has_max = true;
			spec = counter_spec(col.name, true, min, true, max);
		}
		else
			spec = args->columns[i];
		specs = lappend(specs, spec);

		/* the marker never fires: values past the bounds need the row trigger */
		if (!TRIGGER_FOR_ROW(tg->tgtype))
		{
			int64		dlo,
						dhi;

			counter_default_bounds(change->newtype, &dlo, &dhi);
			if (change->newtype == NUMERICOID ||
				(has_min ? col.min : dlo) > lo || (has_max ? col.max : dhi) < hi)
			{
				reattach = true;
				if (what == NULL)
					what = psprintf("now fires for each row: column \"%s\" can hold values past its bounds as %s",
									change->column, format_type_be(change->newtype));
			}
		}
	}

	if (what == NULL)
		return;					/* not this guard's column, or nothing to do */
	out->what = what;
	out->columns = specs;
	out->action = specs == NIL ? IG_FOLLOW_REMOVE :
		reattach ? IG_FOLLOW_REATTACH : IG_FOLLOW_REWRITE;
	if (out->action == IG_FOLLOW_REMOVE)
		out->what = psprintf("was removed with its last column, \"%s\"",
							 change->column);
}

const IgGuardKind ig_counter_kind = {
	.function = "saturate_counter",
	.label = "counter",
	.parse = counter_parse,
	.guarded_columns = counter_guarded_columns,
	.follow = counter_follow,
};
