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
					type_hi;
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

		/* Default bounds are 32-bit, narrowed to the column's type. */
		ig_int_type_bounds(col->typid, &type_lo, &type_hi);
		if (!has_min)
			col->min = Max(IG_COUNTER_DEFAULT_MIN, type_lo);
		if (!has_max)
			col->max = Min(IG_COUNTER_DEFAULT_MAX, type_hi);

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
 * ALTER TABLE ... ALTER COLUMN ... TYPE on a guarded column (an event
 * trigger on ddl_command_start, before the table changes).  A counter guard
 * keeps the bounds it has now: when the new type would resolve them
 * differently (default bounds of a smallint column are 16-bit, of the
 * others 32-bit), or when the trigger is the never-firing marker and the
 * new type can hold values past the bounds, the guard is attached again
 * with the bounds written out, as a row trigger.  A new type that cannot
 * hold the bounds, or that the guard does not serve, refuses the ALTER.
 */

static Oid
retype_of(List *retypes, const char *column)
{
	ListCell   *lc;

	foreach(lc, retypes)
	{
		IgRetype   *r = (IgRetype *) lfirst(lc);

		if (strcmp(r->column, column) == 0)
			return r->typid;
	}
	return InvalidOid;
}

static void
counter_reattach(Relation rel, Trigger *tg, List *specs)
{
	Datum	   *elems = palloc(sizeof(Datum) * list_length(specs));
	Datum		values[3];
	Oid			types[3] = {REGCLASSOID, NAMEOID, TEXTARRAYOID};
	ListCell   *lc;
	int			n = 0;
	char	   *relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
													 RelationGetRelationName(rel));

	foreach(lc, specs)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	values[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(tg->tgname));
	values[2] = PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));

	SPI_connect();
	if (SPI_execute(psprintf("DROP TRIGGER %s ON %s", quote_identifier(tg->tgname), relname),
					false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not drop trigger \"%s\"", tg->tgname);
	if (SPI_execute_with_args("SELECT " IG_SCHEMA_NAME "._attach($1, 'counter', $2, 'saturate_counter', $3)",
							  3, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not attach the counter guard again");
	if (tg->tgenabled != TRIGGER_FIRES_ON_ORIGIN)
		SPI_execute(psprintf("ALTER TABLE %s %s TRIGGER %s", relname,
							 tg->tgenabled == TRIGGER_DISABLED ? "DISABLE" :
							 tg->tgenabled == TRIGGER_FIRES_ALWAYS ? "ENABLE ALWAYS" :
							 "ENABLE REPLICA",
							 quote_identifier(tg->tgname)), false, 0);
	SPI_finish();
}

static void
counter_check_retype(Relation rel, Trigger *tg, List *retypes)
{
	IgArgs		args;
	CounterConfig *cfg;
	List	   *specs = NIL;
	bool		reattach = false;
	int			i;

	ig_split_args(&args, "saturate_counter", rel, tg->tgnargs, tg->tgargs);
	cfg = ig_try_parse(counter_parse, &args);
	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->ncolumns; i++)
	{
		CounterColumn *col = &cfg->columns[i];
		Oid			newtype = retype_of(retypes, col->name);
		int64		lo,
					hi,
					new_min,
					new_max;

		if (!OidIsValid(newtype) || newtype == col->typid)
		{
			specs = lappend(specs, args.columns[i]);
			continue;
		}
		if (newtype != INT2OID && newtype != INT4OID &&
			newtype != INT8OID && newtype != NUMERICOID)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot change the type of column \"%s\" of table \"%s\" to %s: it has a counter guard",
							col->name, RelationGetRelationName(rel), format_type_be(newtype)),
					 errdetail("saturate_counter() guards smallint, integer, bigint and numeric columns."),
					 errhint("Remove the guard with integrity_guard.unguard('%s', 'counter') first.",
							 RelationGetRelationName(rel))));
		ig_int_type_bounds(newtype, &lo, &hi);
		if (col->min < lo || col->max > hi)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cannot change the type of column \"%s\" of table \"%s\" to %s: its counter guard's bounds [" INT64_FORMAT ", " INT64_FORMAT "] do not fit the new type",
							col->name, RelationGetRelationName(rel), format_type_be(newtype),
							col->min, col->max),
					 errhint("Remove the guard with integrity_guard.unguard('%s', 'counter'), change the type, and attach it again with bounds within [" INT64_FORMAT ", " INT64_FORMAT "].",
							 RelationGetRelationName(rel), lo, hi)));
		new_min = col->explicit_min ? col->min : Max(IG_COUNTER_DEFAULT_MIN, lo);
		new_max = col->explicit_max ? col->max : Min(IG_COUNTER_DEFAULT_MAX, hi);
		if (new_min != col->min || new_max != col->max)
		{
			specs = lappend(specs, psprintf("%s:" INT64_FORMAT ":" INT64_FORMAT,
											col->name, col->min, col->max));
			reattach = true;
		}
		else
			specs = lappend(specs, args.columns[i]);
		/* the marker never fires: a type wider than the bounds needs the row trigger */
		if (!TRIGGER_FOR_ROW(tg->tgtype) &&
			(newtype == INT8OID || newtype == NUMERICOID || lo < col->min || hi > col->max))
			reattach = true;
	}
	if (reattach)
		counter_reattach(rel, tg, specs);
}

const IgGuardKind ig_counter_kind = {
	.function = "saturate_counter",
	.parse = counter_parse,
	.guarded_columns = counter_guarded_columns,
	.check_retype = counter_check_retype,
};
