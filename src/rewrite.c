/*-------------------------------------------------------------------------
 *
 * rewrite.c
 *		Rewrite assignments to guarded columns so that they never raise.
 *
 * UPDATE t SET n = n + 1 on an integer column at 2147483647 fails inside
 * int4pl while the target list is evaluated, before any trigger runs
 * (DESIGN.md fact 1).  After parse analysis, every expression assigned to a
 * column of a saturate_counter guard is rebuilt: its integer arithmetic
 * (+, -, *, unary minus over int2/int4/int8, and the narrowing casts down
 * to the column type, numeric ones included) is computed in int64 with
 * saturation, then _saturate() clamps the exact result to the guard's
 * bounds, recording the event, and the value is cast back.  Range
 * constructors assigned to a range column with a clamp_range guard become
 * _range_guarded() with the guard's policy.
 *
 * Covered: UPDATE SET, INSERT VALUES (single and multi-row), INSERT ...
 * SELECT, ON CONFLICT DO UPDATE SET, MERGE, data-modifying CTEs, and every
 * statement that goes through parse analysis while the library is loaded
 * (PL/pgSQL and SQL functions included).  Nothing else is touched: WHERE,
 * RETURNING, other columns and other tables keep their arithmetic.
 *
 * A cached plan is re-analyzed when a trigger is created or dropped on its
 * table (relcache invalidation) and when integrity_guard.rewrite or
 * .enabled changes (ResetPlanCache), so the rewrite follows the guards.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "parser/parse_func.h"
#include "parser/parsetree.h"
#include "catalog/pg_collation.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "pg_integrity_guard.h"

static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;

/* Our SQL-level helpers, looked up per rewritten statement. */
typedef struct RewriteFuncs
{
	Oid			add;
	Oid			sub;
	Oid			mul;
	Oid			neg;
	Oid			numeric_int8;
	Oid			saturate;
} RewriteFuncs;

typedef struct RewriteContext
{
	Query	   *query;
	RewriteFuncs f;
	bool		have_funcs;
} RewriteContext;

static Oid
helper(const char *name, int nargs, Oid t1, Oid t2, Oid t3, Oid t4, Oid t5, Oid t6)
{
	Oid			argtypes[6] = {t1, t2, t3, t4, t5, t6};

	return LookupFuncName(list_make2(makeString(IG_SCHEMA_NAME), makeString(pstrdup(name))),
						  nargs, argtypes, true);
}

static bool
load_funcs(RewriteContext *ctx)
{
	RewriteFuncs *f = &ctx->f;

	if (ctx->have_funcs)
		return true;
	f->add = helper("_sat_add", 2, INT8OID, INT8OID, 0, 0, 0, 0);
	f->sub = helper("_sat_sub", 2, INT8OID, INT8OID, 0, 0, 0, 0);
	f->mul = helper("_sat_mul", 2, INT8OID, INT8OID, 0, 0, 0, 0);
	f->neg = helper("_sat_neg", 1, INT8OID, 0, 0, 0, 0, 0);
	f->numeric_int8 = helper("_numeric_int8_sat", 1, NUMERICOID, 0, 0, 0, 0, 0);
	f->saturate = helper("_saturate", 5, INT8OID, INT8OID, INT8OID, OIDOID, INT2OID, 0);
	ctx->have_funcs = OidIsValid(f->add) && OidIsValid(f->sub) &&
		OidIsValid(f->mul) && OidIsValid(f->neg) &&
		OidIsValid(f->numeric_int8) && OidIsValid(f->saturate);
	return ctx->have_funcs;
}

static bool
is_guard_function(Oid funcoid, const char *name)
{
	char	   *fname = get_func_name(funcoid);
	char	   *nspname;

	if (fname == NULL || strcmp(fname, name) != 0)
		return false;
	nspname = get_namespace_name(get_func_namespace(funcoid));
	return nspname != NULL && strcmp(nspname, IG_SCHEMA_NAME) == 0;
}

/* Columns of the table protected by an enabled counter or range guard. */
static List *
guarded_columns(Oid relid)
{
	Relation	rel = relation_open(relid, NoLock);
	List	   *result = NIL;
	int			i;

	if (rel->trigdesc != NULL)
	{
		for (i = 0; i < rel->trigdesc->numtriggers; i++)
		{
			Trigger    *tg = &rel->trigdesc->triggers[i];
			IgArgs		args;

			if (tg->tgenabled == TRIGGER_DISABLED)
				continue;
			if (is_guard_function(tg->tgfoid, "saturate_counter"))
			{
				ig_split_args(&args, "saturate_counter", rel, tg->tgnargs, tg->tgargs);
				result = list_concat(result, ig_counter_guarded_columns(&args));
			}
			else if (is_guard_function(tg->tgfoid, "clamp_range"))
			{
				ig_split_args(&args, "clamp_range", rel, tg->tgnargs, tg->tgargs);
				result = list_concat(result, ig_range_guarded_columns(&args));
			}
		}
	}
	relation_close(rel, NoLock);
	return result;
}

static Node *
call(Oid funcid, Oid rettype, List *args)
{
	return (Node *) makeFuncExpr(funcid, rettype, args, InvalidOid, InvalidOid,
								 COERCE_EXPLICIT_CALL);
}

/* An int2/int4/int8 expression as int8. */
static Node *
as_int8(Node *node)
{
	Oid			t = exprType(node);

	if (t == INT4OID)
		return call(F_INT8_INT4, INT8OID, list_make1(node));
	if (t == INT2OID)
		return call(F_INT8_INT2, INT8OID, list_make1(node));
	return node;
}

static bool
is_int_type(Oid t)
{
	return t == INT2OID || t == INT4OID || t == INT8OID;
}

typedef enum ArithKind
{
	ARITH_NONE,
	ARITH_ADD,
	ARITH_SUB,
	ARITH_MUL,
	ARITH_NEG,
	ARITH_INT_CAST,				/* between integer types */
	ARITH_NUMERIC_CAST			/* numeric to an integer type */
} ArithKind;

static ArithKind
arith_kind(Oid fn)
{
	switch (fn)
	{
		case F_INT2PL:
		case F_INT4PL:
		case F_INT8PL:
		case F_INT24PL:
		case F_INT42PL:
		case F_INT48PL:
		case F_INT84PL:
		case F_INT28PL:
		case F_INT82PL:
			return ARITH_ADD;
		case F_INT2MI:
		case F_INT4MI:
		case F_INT8MI:
		case F_INT24MI:
		case F_INT42MI:
		case F_INT48MI:
		case F_INT84MI:
		case F_INT28MI:
		case F_INT82MI:
			return ARITH_SUB;
		case F_INT2MUL:
		case F_INT4MUL:
		case F_INT8MUL:
		case F_INT24MUL:
		case F_INT42MUL:
		case F_INT48MUL:
		case F_INT84MUL:
		case F_INT28MUL:
		case F_INT82MUL:
			return ARITH_MUL;
		case F_INT2UM:
		case F_INT4UM:
		case F_INT8UM:
			return ARITH_NEG;
		case F_INT4_INT8:
		case F_INT2_INT8:
		case F_INT2_INT4:
		case F_INT8_INT4:
		case F_INT8_INT2:
		case F_INT4_INT2:
			return ARITH_INT_CAST;
		case F_INT4_NUMERIC:
		case F_INT2_NUMERIC:
		case F_INT8_NUMERIC:
			return ARITH_NUMERIC_CAST;
		default:
			return ARITH_NONE;
	}
}

static Oid
node_function(Node *node)
{
	if (IsA(node, OpExpr))
	{
		OpExpr	   *op = (OpExpr *) node;

		return OidIsValid(op->opfuncid) ? op->opfuncid : get_opcode(op->opno);
	}
	if (IsA(node, FuncExpr))
		return ((FuncExpr *) node)->funcid;
	return InvalidOid;
}

static List *
node_args(Node *node)
{
	return IsA(node, OpExpr) ? ((OpExpr *) node)->args : ((FuncExpr *) node)->args;
}

/*
 * Rebuild an integer expression as saturating int8 arithmetic.  Anything
 * that is not integer arithmetic or a cast to an integer type is a leaf,
 * widened as it is.
 */
static Node *
widen(Node *node, RewriteContext *ctx)
{
	RewriteFuncs *f = &ctx->f;
	ArithKind	kind;
	List	   *args;

	if (IsA(node, RelabelType) &&
		is_int_type(exprType((Node *) ((RelabelType *) node)->arg)))
		return widen((Node *) ((RelabelType *) node)->arg, ctx);
	if (!IsA(node, OpExpr) && !IsA(node, FuncExpr))
		return as_int8(node);

	kind = arith_kind(node_function(node));
	args = node_args(node);
	switch (kind)
	{
		case ARITH_ADD:
		case ARITH_SUB:
		case ARITH_MUL:
			return call(kind == ARITH_ADD ? f->add : kind == ARITH_SUB ? f->sub : f->mul,
						INT8OID,
						list_make2(widen(linitial(args), ctx),
								   widen(lsecond(args), ctx)));
		case ARITH_NEG:
			return call(f->neg, INT8OID, list_make1(widen(linitial(args), ctx)));
		case ARITH_INT_CAST:
			return widen(linitial(args), ctx);
		case ARITH_NUMERIC_CAST:
			return call(f->numeric_int8, INT8OID, list_make1(linitial(args)));
		case ARITH_NONE:
			break;
	}
	return as_int8(node);
}

/* Does the expression hold arithmetic or a cast that could overflow? */
static bool
has_int_arith(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if ((IsA(node, OpExpr) || IsA(node, FuncExpr)) &&
		arith_kind(node_function(node)) != ARITH_NONE &&
		!(IsA(node, FuncExpr) &&
		  (((FuncExpr *) node)->funcid == F_INT8_INT4 ||
		   ((FuncExpr *) node)->funcid == F_INT8_INT2 ||
		   ((FuncExpr *) node)->funcid == F_INT4_INT2)))
		return true;
	return expression_tree_walker(node, has_int_arith, context);
}

/*
 * expr (of an integer type) -> saturated and cast back.  The clamp is the
 * guard's bounds within the expression's own type, which for the source of
 * an INSERT ... SELECT may be narrower than the column's.
 */
static Node *
saturate_expr(Node *expr, IgGuardedColumn *gc, Oid relid, RewriteContext *ctx)
{
	Oid			t = exprType(expr);
	Node	   *wide;
	Node	   *clamped;
	int64		lo = gc->min,
				hi = gc->max;

	if (!is_int_type(t) || !has_int_arith(expr, ctx))
		return expr;
	if (t == INT2OID)
	{
		lo = Max(lo, PG_INT16_MIN);
		hi = Min(hi, PG_INT16_MAX);
	}
	else if (t == INT4OID)
	{
		lo = Max(lo, PG_INT32_MIN);
		hi = Min(hi, PG_INT32_MAX);
	}

	wide = widen(expr, ctx);
	clamped = call(ctx->f.saturate, INT8OID,
				   list_make5(wide,
							  makeConst(INT8OID, -1, InvalidOid, 8,
										Int64GetDatum(lo), false, FLOAT8PASSBYVAL),
							  makeConst(INT8OID, -1, InvalidOid, 8,
										Int64GetDatum(hi), false, FLOAT8PASSBYVAL),
							  makeConst(OIDOID, -1, InvalidOid, 4,
										ObjectIdGetDatum(relid), false, true),
							  makeConst(INT2OID, -1, InvalidOid, 2,
										Int16GetDatum(gc->attnum), false, true)));
	if (t == INT4OID)
		return call(F_INT4_INT8, INT4OID, list_make1(clamped));
	if (t == INT2OID)
		return call(F_INT2_INT8, INT2OID, list_make1(clamped));
	return clamped;
}

/* tstzrange(a, b[, flags]) -> _range_guarded(a, b, flags, policy, rel, col) */
static Node *
guard_range_expr(Node *expr, IgGuardedColumn *gc, Oid relid)
{
	FuncExpr   *fe;
	Oid			rngtype;
	Oid			argtypes[6];
	Oid			guarded;
	List	   *args;

	if (!IsA(expr, FuncExpr))
		return expr;
	fe = (FuncExpr *) expr;
	switch (fe->funcid)
	{
		case F_TSTZRANGE_TIMESTAMPTZ_TIMESTAMPTZ:
		case F_TSTZRANGE_TIMESTAMPTZ_TIMESTAMPTZ_TEXT:
		case F_TSRANGE_TIMESTAMP_TIMESTAMP:
		case F_TSRANGE_TIMESTAMP_TIMESTAMP_TEXT:
		case F_DATERANGE_DATE_DATE:
		case F_DATERANGE_DATE_DATE_TEXT:
			break;
		default:
			return expr;
	}
	rngtype = fe->funcresulttype;
	argtypes[0] = argtypes[1] = exprType(linitial(fe->args));
	argtypes[2] = TEXTOID;
	argtypes[3] = TEXTOID;
	argtypes[4] = OIDOID;
	argtypes[5] = INT2OID;
	guarded = LookupFuncName(list_make2(makeString(IG_SCHEMA_NAME),
										makeString(psprintf("_%s_guarded",
															format_type_be(rngtype)))),
							 6, argtypes, true);
	if (!OidIsValid(guarded))
		return expr;

	args = list_make2(linitial(fe->args), lsecond(fe->args));
	args = lappend(args, list_length(fe->args) == 3 ? lthird(fe->args) :
				   (Node *) makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1,
									  CStringGetTextDatum("[)"), false, false));
	args = lappend(args, makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1,
								   CStringGetTextDatum(gc->policy), false, false));
	args = lappend(args, makeConst(OIDOID, -1, InvalidOid, 4,
								   ObjectIdGetDatum(relid), false, true));
	args = lappend(args, makeConst(INT2OID, -1, InvalidOid, 2,
								   Int16GetDatum(gc->attnum), false, true));
	return (Node *) makeFuncExpr(guarded, rngtype, args, InvalidOid,
								 fe->inputcollid, COERCE_EXPLICIT_CALL);
}

static Node *
rewrite_value(Node *expr, IgGuardedColumn *gc, Oid relid, RewriteContext *ctx)
{
	if (gc->is_range)
		return guard_range_expr(expr, gc, relid);
	return saturate_expr(expr, gc, relid, ctx);
}

/*
 * The expression assigned to a column.  In an INSERT, a Var (possibly under
 * casts between integer types) may stand for a column of the VALUES list or
 * SELECT that feeds it: rewrite there too, keeping the source column's type.
 */
static Node *
rewrite_assignment(Node *expr, IgGuardedColumn *gc, Oid relid,
				   RewriteContext *ctx, bool insert_source)
{
	Query	   *q = ctx->query;
	Node	   *source = expr;

	while (source != NULL)
	{
		if (IsA(source, RelabelType))
			source = (Node *) ((RelabelType *) source)->arg;
		else if (IsA(source, FuncExpr) &&
				 arith_kind(((FuncExpr *) source)->funcid) == ARITH_INT_CAST)
			source = linitial(((FuncExpr *) source)->args);
		else
			break;
	}

	if (insert_source && IsA(source, Var) && ((Var *) source)->varlevelsup == 0)
	{
		Var		   *var = (Var *) source;
		RangeTblEntry *rte = rt_fetch(var->varno, q->rtable);

		if (rte->rtekind == RTE_VALUES)
		{
			ListCell   *lc;

			foreach(lc, rte->values_lists)
			{
				List	   *row = (List *) lfirst(lc);
				ListCell   *cell = list_nth_cell(row, var->varattno - 1);

				lfirst(cell) = rewrite_value(lfirst(cell), gc, relid, ctx);
			}
			return rewrite_value(expr, gc, relid, ctx);
		}
		if (rte->rtekind == RTE_SUBQUERY && rte->subquery->setOperations == NULL)
		{
			TargetEntry *tle = list_nth(rte->subquery->targetList, var->varattno - 1);
			Query	   *outer = ctx->query;

			ctx->query = rte->subquery;
			tle->expr = (Expr *) rewrite_value((Node *) tle->expr, gc, relid, ctx);
			ctx->query = outer;
			return rewrite_value(expr, gc, relid, ctx);
		}
	}
	return rewrite_value(expr, gc, relid, ctx);
}

static void
rewrite_target_list(List *tlist, List *columns, Oid relid,
					RewriteContext *ctx, bool insert_source)
{
	ListCell   *lc;

	foreach(lc, tlist)
	{
		TargetEntry *tle = (TargetEntry *) lfirst(lc);
		ListCell   *cc;

		if (tle->resjunk)
			continue;
		foreach(cc, columns)
		{
			IgGuardedColumn *gc = (IgGuardedColumn *) lfirst(cc);

			if (gc->attnum == tle->resno)
				tle->expr = (Expr *) rewrite_assignment((Node *) tle->expr, gc,
														relid, ctx, insert_source);
		}
	}
}

static void
rewrite_modify(Query *q)
{
	RangeTblEntry *rte;
	List	   *columns;
	RewriteContext ctx = {0};
	ListCell   *lc;

	if (q->resultRelation <= 0)
		return;
	rte = rt_fetch(q->resultRelation, q->rtable);
	if (rte->rtekind != RTE_RELATION)
		return;
	columns = guarded_columns(rte->relid);
	if (columns == NIL)
		return;
	ctx.query = q;
	if (!load_funcs(&ctx))
		return;

	rewrite_target_list(q->targetList, columns, rte->relid, &ctx,
						q->commandType == CMD_INSERT);
	if (q->onConflict && q->onConflict->action == ONCONFLICT_UPDATE)
		rewrite_target_list(q->onConflict->onConflictSet, columns, rte->relid,
							&ctx, false);
	foreach(lc, q->mergeActionList)
	{
		MergeAction *action = (MergeAction *) lfirst(lc);

		if (action->commandType == CMD_INSERT || action->commandType == CMD_UPDATE)
			rewrite_target_list(action->targetList, columns, rte->relid, &ctx,
								false);
	}
}

static bool
rewrite_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *q = (Query *) node;

		if (q->commandType == CMD_INSERT || q->commandType == CMD_UPDATE ||
			q->commandType == CMD_MERGE)
			rewrite_modify(q);
		return query_tree_walker(q, rewrite_walker, context, 0);
	}
	return expression_tree_walker(node, rewrite_walker, context);
}

static void
ig_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze)
		prev_post_parse_analyze(pstate, query, jstate);
	if (!ig_rewrite || !ig_enabled || query->utilityStmt != NULL ||
		!IsTransactionState())
		return;
	(void) rewrite_walker((Node *) query, NULL);
}

void
ig_rewrite_init(void)
{
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = ig_post_parse_analyze;
}
