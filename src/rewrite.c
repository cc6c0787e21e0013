/*-------------------------------------------------------------------------
 *
 * rewrite.c
 *		Rewrite assignments to guarded columns so that they never raise.
 *
 * UPDATE t SET n = n + 1 on an integer column at 2147483647 fails inside
 * int4pl while the target list is evaluated, before any trigger runs
 * (doc/design.md, "Server facts", 1).  So the value assigned to a column of a
 * saturate_counter guard is rebuilt before it is planned.  The rule is one:
 *
 *		the stored value is the exact value of the expression, clamped to
 *		the guard's bounds.
 *
 * "Exact" means that the integer arithmetic on the path of the value (+, -,
 * *, /, %, unary minus, abs, casts between integer types and from numeric
 * and float) is done in int64 that sticks at the int64 limits, so it is
 * exact whenever the intermediate values fit in 64 bits.  The path of the
 * value runs through greatest/least, coalesce, CASE results, scalar and
 * multiple-assignment subselects, and the SELECT (UNION included) or
 * VALUES that feeds an INSERT; these are retyped to bigint on the way.
 * What is not on the path (WHERE, CASE conditions, aggregate arguments,
 * function arguments, RETURNING) keeps the server's arithmetic.
 * _saturate() then hands a value the column's type holds to the row
 * triggers unchanged (the guard's trigger clamps it in its place among
 * them, as it clamps a literal), clamps to the bounds and records only a
 * value the type cannot hold, and the value is cast back to the column
 * type.
 *
 * Range constructors on the path of a value assigned to a range column
 * with a clamp_range guard become _range_guarded() with the guard's policy.
 *
 * The rewrite runs in the planner hook, on the query the rewriter produced:
 * statements through auto-updatable views (on their base table's columns),
 * rule actions, SQL-standard function bodies (BEGIN ATOMIC) and procedures
 * are seen with the table and columns they finally write.  A cached plan is
 * re-planned when a trigger is created or dropped on its table (relcache
 * invalidation) and when integrity_guard.rewrite or .enabled changes
 * (ResetPlanCache), so the rewrite follows the guards.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "parser/parse_func.h"
#include "parser/parse_oper.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "registry.h"
#include "rewrite.h"
#include "settings.h"
#include "citus_meta.h"
#include "util.h"

/*
 * Our SQL-level helpers, looked up once per backend and again after any
 * change to pg_proc (ig_rewrite_functions_changed).
 */
typedef struct RewriteFuncs
{
	Oid			add;
	Oid			sub;
	Oid			mul;
	Oid			neg;
	Oid			div;			/* these four may be missing before 1.2 */
	Oid			abs;
	Oid			float8_int8;
	Oid			range_guarded;
	Oid			numeric_int8;
	Oid			saturate;
} RewriteFuncs;

typedef struct RewriteContext
{
	Query	   *query;			/* the query level being rewritten */
	RewriteFuncs f;
	bool		have_funcs;
} RewriteContext;

static Oid
helper(const char *name, int nargs, Oid t1, Oid t2, Oid t3, Oid t4, Oid t5,
	   Oid t6, Oid t7)
{
	Oid			argtypes[7] = {t1, t2, t3, t4, t5, t6, t7};

	return LookupFuncName(list_make2(makeString(IG_SCHEMA_NAME), makeString(pstrdup(name))),
						  nargs, argtypes, true);
}

static RewriteFuncs funcs;
static bool funcs_known = false;
static bool funcs_complete = false;

void
ig_rewrite_functions_changed(void)
{
	funcs_known = false;
}

static bool
load_funcs(RewriteContext *ctx)
{
	RewriteFuncs *f = &funcs;

	if (!funcs_known)
	{
		f->add = helper("_sat_add", 2, INT8OID, INT8OID, 0, 0, 0, 0, 0);
		f->sub = helper("_sat_sub", 2, INT8OID, INT8OID, 0, 0, 0, 0, 0);
		f->mul = helper("_sat_mul", 2, INT8OID, INT8OID, 0, 0, 0, 0, 0);
		f->neg = helper("_sat_neg", 1, INT8OID, 0, 0, 0, 0, 0, 0);
		f->div = helper("_sat_div", 2, INT8OID, INT8OID, 0, 0, 0, 0, 0);
		f->abs = helper("_sat_abs", 1, INT8OID, 0, 0, 0, 0, 0, 0);
		f->float8_int8 = helper("_float8_int8_sat", 1, FLOAT8OID, 0, 0, 0, 0, 0, 0);
		f->range_guarded = helper("_range_guarded", 7, ANYELEMENTOID, ANYELEMENTOID,
								  TEXTOID, TEXTOID, OIDOID, INT2OID, ANYRANGEOID);
		f->numeric_int8 = helper("_numeric_int8_sat", 1, NUMERICOID, 0, 0, 0, 0, 0, 0);
		f->saturate = helper("_saturate", 5, INT8OID, INT8OID, INT8OID, OIDOID, INT2OID, 0, 0);
		funcs_complete = OidIsValid(f->add) && OidIsValid(f->sub) &&
			OidIsValid(f->mul) && OidIsValid(f->neg) &&
			OidIsValid(f->numeric_int8) && OidIsValid(f->saturate);
		funcs_known = true;
	}
	ctx->f = funcs;
	ctx->have_funcs = funcs_complete;
	return funcs_complete;
}

/* Columns of the table protected by an enabled counter or range guard. */
static List *
guarded_columns(Oid relid)
{
	Relation	rel = relation_open(relid, NoLock);
	List	   *result = ig_registry_guarded_columns(rel);

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
	ARITH_DIV,
	ARITH_MOD,
	ARITH_NEG,
	ARITH_ABS,
	ARITH_INT_CAST,				/* between integer types */
	ARITH_NUMERIC_CAST,			/* numeric to an integer type */
	ARITH_FLOAT_CAST			/* float4/float8 to an integer type */
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
		case F_INT2DIV:
		case F_INT4DIV:
		case F_INT8DIV:
		case F_INT24DIV:
		case F_INT42DIV:
		case F_INT48DIV:
		case F_INT84DIV:
		case F_INT28DIV:
		case F_INT82DIV:
			return ARITH_DIV;
		case F_INT2MOD:
		case F_INT4MOD:
		case F_INT8MOD:
		case F_MOD_INT2_INT2:
		case F_MOD_INT4_INT4:
		case F_MOD_INT8_INT8:
			return ARITH_MOD;
		case F_INT2UM:
		case F_INT4UM:
		case F_INT8UM:
			return ARITH_NEG;
		case F_INT2ABS:
		case F_INT4ABS:
		case F_INT8ABS:
		case F_ABS_INT2:
		case F_ABS_INT4:
		case F_ABS_INT8:
			return ARITH_ABS;
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
		case F_INT2_FLOAT4:
		case F_INT2_FLOAT8:
		case F_INT4_FLOAT4:
		case F_INT4_FLOAT8:
		case F_INT8_FLOAT4:
		case F_INT8_FLOAT8:
			return ARITH_FLOAT_CAST;
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

/* Does the expression (subqueries included) hold arithmetic or a cast that could overflow? */
static bool
has_int_arith(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, has_int_arith, context, 0);
	if ((IsA(node, OpExpr) || IsA(node, FuncExpr)))
	{
		Oid			fn = node_function(node);

		if (arith_kind(fn) != ARITH_NONE &&
			fn != F_INT8_INT4 && fn != F_INT8_INT2 && fn != F_INT4_INT2)
			return true;
	}
	return expression_tree_walker(node, has_int_arith, context);
}

/*
 * Sort and group clauses of a query column whose type became int8.  A column
 * that is grouped, made distinct or used by a window cannot be retyped: the
 * planner matches other expressions against it.  ORDER BY can: its
 * operators are switched to int8's, keeping the direction.
 */
static bool
column_retypable(Query *q, TargetEntry *tle)
{
	ListCell   *lc;

	if (tle->ressortgroupref == 0)
		return true;
	if (get_sortgroupref_clause_noerr(tle->ressortgroupref, q->groupClause) ||
		get_sortgroupref_clause_noerr(tle->ressortgroupref, q->distinctClause))
		return false;
	foreach(lc, q->windowClause)
	{
		WindowClause *wc = (WindowClause *) lfirst(lc);

		if (get_sortgroupref_clause_noerr(tle->ressortgroupref, wc->partitionClause) ||
			get_sortgroupref_clause_noerr(tle->ressortgroupref, wc->orderClause))
			return false;
	}
	return true;
}

static void
retype_sortgroup(SortGroupClause *sgc)
{
	Oid			lt,
				eq,
				gt;
	bool		hashable,
				reverse = false;

	if (OidIsValid(sgc->sortop))
		(void) get_equality_op_for_ordering_op(sgc->sortop, &reverse);
	get_sort_group_operators(INT8OID, true, true, true, &lt, &eq, &gt, &hashable);
	if (OidIsValid(sgc->sortop))
		sgc->sortop = reverse ? gt : lt;
	sgc->eqop = eq;
	sgc->hashable = hashable;
}

static Node *widen(Node *node, RewriteContext *ctx);
static bool query_column_widenable(Query *q, AttrNumber attno);
static void widen_query_column(Query *q, AttrNumber attno, RewriteContext *ctx);
static void retype_var(Var *var);

/*
 * Can column attno of query q become the exact int8 value of its
 * expression?  Set operations: every leaf, and no grouping but UNION's own.
 */
static bool
query_column_widenable(Query *q, AttrNumber attno)
{
	TargetEntry *tle = get_tle_by_resno(q->targetList, attno);

	if (tle == NULL || tle->resjunk || !is_int_type(exprType((Node *) tle->expr)))
		return false;
	if (!column_retypable(q, tle))
		return false;
	if (q->setOperations != NULL)
	{
		ListCell   *lc;

		foreach(lc, q->rtable)
		{
			RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);

			if (rte->rtekind == RTE_SUBQUERY && rte->inFromCl == false &&
				!query_column_widenable(rte->subquery, attno))
				return false;
		}
	}
	return true;
}

static void
widen_setop(Node *node, Query *q, AttrNumber attno, RewriteContext *ctx);

/* Column attno of q becomes the exact int8 value (query_column_widenable). */
static void
widen_query_column(Query *q, AttrNumber attno, RewriteContext *ctx)
{
	TargetEntry *tle = get_tle_by_resno(q->targetList, attno);
	ListCell   *lc;

	if (q->setOperations != NULL)
	{
		widen_setop(q->setOperations, q, attno, ctx);
		/* the set operation's output column is a Var of the leftmost leaf */
		retype_var(castNode(Var, tle->expr));
	}
	else
	{
		Query	   *outer = ctx->query;

		ctx->query = q;
		tle->expr = (Expr *) widen((Node *) tle->expr, ctx);
		ctx->query = outer;
	}
	if (tle->ressortgroupref != 0)
		foreach(lc, q->sortClause)
		{
			SortGroupClause *sgc = (SortGroupClause *) lfirst(lc);

			if (sgc->tleSortGroupRef == tle->ressortgroupref)
				retype_sortgroup(sgc);
		}
}

static void
widen_setop(Node *node, Query *q, AttrNumber attno, RewriteContext *ctx)
{
	SetOperationStmt *op;

	if (IsA(node, RangeTblRef))
	{
		RangeTblEntry *rte = rt_fetch(((RangeTblRef *) node)->rtindex, q->rtable);

		widen_query_column(rte->subquery, attno, ctx);
		return;
	}
	op = castNode(SetOperationStmt, node);
	widen_setop(op->larg, q, attno, ctx);
	widen_setop(op->rarg, q, attno, ctx);
	lfirst_oid(list_nth_cell(op->colTypes, attno - 1)) = INT8OID;
	lfirst_int(list_nth_cell(op->colTypmods, attno - 1)) = -1;
	lfirst_oid(list_nth_cell(op->colCollations, attno - 1)) = InvalidOid;
	if (op->groupClauses != NIL)
		retype_sortgroup(list_nth(op->groupClauses, attno - 1));
}

/*
 * A scalar subselect as its exact int8 value, if its output column can be
 * retyped; exprType() of the SubLink follows its first column.
 */
static Node *
widen_sublink(SubLink *sl, RewriteContext *ctx)
{
	Query	   *sub = castNode(Query, sl->subselect);

	if (sl->subLinkType == EXPR_SUBLINK && query_column_widenable(sub, 1))
		widen_query_column(sub, 1, ctx);
	return as_int8((Node *) sl);
}

/* numeric on the path of the value: its integer inputs computed exactly */
static Node *
exact_numeric(Node *node, RewriteContext *ctx)
{
	if (IsA(node, FuncExpr) && list_length(((FuncExpr *) node)->args) == 1 &&
		(((FuncExpr *) node)->funcid == F_NUMERIC_INT4 ||
		 ((FuncExpr *) node)->funcid == F_NUMERIC_INT2 ||
		 ((FuncExpr *) node)->funcid == F_NUMERIC_INT8))
	{
		FuncExpr   *fe = (FuncExpr *) copyObject(node);

		fe->funcid = F_NUMERIC_INT8;
		fe->args = list_make1(widen(linitial(fe->args), ctx));
		return (Node *) fe;
	}
	if (IsA(node, OpExpr) && ((OpExpr *) node)->opresulttype == NUMERICOID)
	{
		OpExpr	   *op = (OpExpr *) node;
		ListCell   *lc;

		foreach(lc, op->args)
			if (exprType(lfirst(lc)) == NUMERICOID)
				lfirst(lc) = exact_numeric(lfirst(lc), ctx);
	}
	return node;
}

/* How often a query refers to one column of its range table entry. */
typedef struct VarCount
{
	int			varno;
	AttrNumber	attno;
	int			depth;
	int			count;
} VarCount;

static bool
count_var_walker(Node *node, VarCount *c)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *v = (Var *) node;

		if ((int) v->varlevelsup == c->depth && (int) v->varno == c->varno &&
			(v->varattno == c->attno || v->varattno == 0))
			c->count++;
		return false;
	}
	if (IsA(node, Query))
	{
		bool		r;

		c->depth++;
		r = query_tree_walker((Query *) node, count_var_walker, c, 0);
		c->depth--;
		return r;
	}
	return expression_tree_walker(node, count_var_walker, c);
}

static void
retype_var(Var *var)
{
	var->vartype = INT8OID;
	var->vartypmod = -1;
	var->varcollid = InvalidOid;
}

/*
 * A Var that is the only reader of a column of a subquery or VALUES list in
 * FROM: that column becomes the exact int8 value, and the Var follows.
 */
static bool
widen_var_source(Var *var, RewriteContext *ctx)
{
	Query	   *q = ctx->query;
	RangeTblEntry *rte;
	VarCount	c = {0};

	if (q == NULL || var->varlevelsup != 0 || var->varattno <= 0)
		return false;
	rte = rt_fetch(var->varno, q->rtable);
	if (rte->rtekind != RTE_SUBQUERY && rte->rtekind != RTE_VALUES)
		return false;
	c.varno = var->varno;
	c.attno = var->varattno;
	(void) query_tree_walker(q, count_var_walker, &c, 0);
	if (c.count != 1)
		return false;

	if (rte->rtekind == RTE_SUBQUERY)
	{
		if (!has_int_arith((Node *) rte->subquery, NULL) ||
			!query_column_widenable(rte->subquery, var->varattno))
			return false;
		widen_query_column(rte->subquery, var->varattno, ctx);
	}
	else
	{
		ListCell   *lc;
		bool		arith = false;

		foreach(lc, rte->values_lists)
			if (has_int_arith(list_nth((List *) lfirst(lc), var->varattno - 1), NULL))
				arith = true;
		if (!arith)
			return false;
		foreach(lc, rte->values_lists)
		{
			ListCell   *cell = list_nth_cell((List *) lfirst(lc), var->varattno - 1);

			lfirst(cell) = widen(lfirst(cell), ctx);
		}
		lfirst_oid(list_nth_cell(rte->coltypes, var->varattno - 1)) = INT8OID;
		lfirst_int(list_nth_cell(rte->coltypmods, var->varattno - 1)) = -1;
		lfirst_oid(list_nth_cell(rte->colcollations, var->varattno - 1)) = InvalidOid;
	}
	retype_var(var);
	return true;
}

/*
 * An integer-valued expression rebuilt as its exact value in int8 (see the
 * header).  Anything else is a leaf, widened as it is.
 */
static Node *
widen(Node *node, RewriteContext *ctx)
{
	RewriteFuncs *f = &ctx->f;
	ArithKind	kind;
	List	   *args;
	ListCell   *lc;

	if (IsA(node, RelabelType) &&
		is_int_type(exprType((Node *) ((RelabelType *) node)->arg)))
		return widen((Node *) ((RelabelType *) node)->arg, ctx);
	if (IsA(node, MinMaxExpr))
	{
		MinMaxExpr *mm = (MinMaxExpr *) node;

		if (!is_int_type(mm->minmaxtype))
			return as_int8(node);
		mm->minmaxtype = INT8OID;
		foreach(lc, mm->args)
			lfirst(lc) = widen(lfirst(lc), ctx);
		return node;
	}
	if (IsA(node, CoalesceExpr))
	{
		CoalesceExpr *ce = (CoalesceExpr *) node;

		if (!is_int_type(ce->coalescetype))
			return as_int8(node);
		ce->coalescetype = INT8OID;
		foreach(lc, ce->args)
			lfirst(lc) = widen(lfirst(lc), ctx);
		return node;
	}
	if (IsA(node, CaseExpr))
	{
		CaseExpr   *ce = (CaseExpr *) node;

		if (!is_int_type(ce->casetype))
			return as_int8(node);
		ce->casetype = INT8OID;
		foreach(lc, ce->args)
		{
			CaseWhen   *cw = (CaseWhen *) lfirst(lc);

			cw->result = (Expr *) widen((Node *) cw->result, ctx);
		}
		if (ce->defresult)
			ce->defresult = (Expr *) widen((Node *) ce->defresult, ctx);
		else
			ce->defresult = (Expr *) makeNullConst(INT8OID, -1, InvalidOid);
		return node;
	}
	if (IsA(node, SubLink))
		return widen_sublink((SubLink *) node, ctx);
	if (IsA(node, Var) && is_int_type(((Var *) node)->vartype) &&
		widen_var_source((Var *) node, ctx))
		return node;
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
		case ARITH_DIV:
			if (!OidIsValid(f->div))
				break;
			return call(f->div, INT8OID,
						list_make2(widen(linitial(args), ctx),
								   widen(lsecond(args), ctx)));
		case ARITH_MOD:
			/* int8mod never overflows (INT64_MIN % -1 is 0) */
			return call(F_INT8MOD, INT8OID,
						list_make2(widen(linitial(args), ctx),
								   widen(lsecond(args), ctx)));
		case ARITH_NEG:
			return call(f->neg, INT8OID, list_make1(widen(linitial(args), ctx)));
		case ARITH_ABS:
			if (!OidIsValid(f->abs))
				break;
			return call(f->abs, INT8OID, list_make1(widen(linitial(args), ctx)));
		case ARITH_INT_CAST:
			return widen(linitial(args), ctx);
		case ARITH_NUMERIC_CAST:
			return call(f->numeric_int8, INT8OID,
						list_make1(exact_numeric(linitial(args), ctx)));
		case ARITH_FLOAT_CAST:
			{
				Node	   *arg = linitial(args);

				if (!OidIsValid(f->float8_int8))
					break;
				if (exprType(arg) == FLOAT4OID)
					arg = call(F_FLOAT8_FLOAT4, FLOAT8OID, list_make1(arg));
				return call(f->float8_int8, INT8OID, list_make1(arg));
			}
		case ARITH_NONE:
			break;
	}
	return as_int8(node);
}

/* expr, of integer type t, -> exact, clamped, cast back to t */
static Node *
saturate_expr(Node *expr, Oid t, IgGuardedColumn *gc, Oid relid,
			  RewriteContext *ctx)
{
	Node	   *wide;
	Node	   *clamped;
	int64		lo,
				hi;

	ig_int_type_bounds(t, &lo, &hi);
	lo = Max(lo, gc->min);
	hi = Min(hi, gc->max);

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

/* Is funcid the constructor of a range type (range_constructor2/3)? */
static bool
is_range_constructor(Oid funcid)
{
	HeapTuple	tp = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	bool		result = false;

	if (HeapTupleIsValid(tp))
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tp);

		if (proc->prolang == INTERNALlanguageId && type_is_range(proc->prorettype))
		{
			bool		isnull;
			Datum		src = SysCacheGetAttr(PROCOID, tp, Anum_pg_proc_prosrc, &isnull);

			if (!isnull)
			{
				char	   *s = TextDatumGetCString(src);

				result = strcmp(s, "range_constructor2") == 0 ||
					strcmp(s, "range_constructor3") == 0;
			}
		}
		ReleaseSysCache(tp);
	}
	return result;
}

/* rng(a, b[, flags]) -> _range_guarded(a, b, flags, policy, rel, col, NULL::rng) */
static Node *
guard_range_constructor(FuncExpr *fe, IgGuardedColumn *gc, Oid relid,
						RewriteContext *ctx)
{
	Oid			rngtype = fe->funcresulttype;
	Oid			guarded = ctx->f.range_guarded;
	List	   *args;

	if (!is_range_constructor(fe->funcid))
		return (Node *) fe;
	if (!OidIsValid(guarded))
	{
		/* before 1.2: the built-in time ranges only */
		Oid			argtypes[6];

		argtypes[0] = argtypes[1] = exprType(linitial(fe->args));
		argtypes[2] = argtypes[3] = TEXTOID;
		argtypes[4] = OIDOID;
		argtypes[5] = INT2OID;
		guarded = LookupFuncName(list_make2(makeString(IG_SCHEMA_NAME),
											makeString(psprintf("_%s_guarded",
																format_type_be(rngtype)))),
								 6, argtypes, true);
		if (!OidIsValid(guarded))
			return (Node *) fe;
	}

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
	if (guarded == ctx->f.range_guarded)
		args = lappend(args, makeNullConst(rngtype, -1, InvalidOid));
	return (Node *) makeFuncExpr(guarded, rngtype, args, InvalidOid,
								 fe->inputcollid, COERCE_EXPLICIT_CALL);
}

static void range_query_column(Query *q, AttrNumber attno, IgGuardedColumn *gc,
							   Oid relid, RewriteContext *ctx);

/* Range constructors on the path of a value assigned to a range column. */
static Node *
range_value(Node *node, IgGuardedColumn *gc, Oid relid, RewriteContext *ctx)
{
	ListCell   *lc;

	if (node == NULL)
		return NULL;
	if (IsA(node, FuncExpr))
		return guard_range_constructor((FuncExpr *) node, gc, relid, ctx);
	if (IsA(node, RelabelType))
	{
		RelabelType *r = (RelabelType *) node;

		r->arg = (Expr *) range_value((Node *) r->arg, gc, relid, ctx);
	}
	else if (IsA(node, CoalesceExpr))
	{
		foreach(lc, ((CoalesceExpr *) node)->args)
			lfirst(lc) = range_value(lfirst(lc), gc, relid, ctx);
	}
	else if (IsA(node, MinMaxExpr))
	{
		foreach(lc, ((MinMaxExpr *) node)->args)
			lfirst(lc) = range_value(lfirst(lc), gc, relid, ctx);
	}
	else if (IsA(node, CaseExpr))
	{
		CaseExpr   *ce = (CaseExpr *) node;

		foreach(lc, ce->args)
		{
			CaseWhen   *cw = (CaseWhen *) lfirst(lc);

			cw->result = (Expr *) range_value((Node *) cw->result, gc, relid, ctx);
		}
		ce->defresult = (Expr *) range_value((Node *) ce->defresult, gc, relid, ctx);
	}
	else if (IsA(node, SubLink) && ((SubLink *) node)->subLinkType == EXPR_SUBLINK)
		range_query_column(castNode(Query, ((SubLink *) node)->subselect), 1,
						   gc, relid, ctx);
	return node;
}

static void
range_setop(Node *node, Query *q, AttrNumber attno, IgGuardedColumn *gc,
			Oid relid, RewriteContext *ctx)
{
	if (IsA(node, RangeTblRef))
		range_query_column(rt_fetch(((RangeTblRef *) node)->rtindex, q->rtable)->subquery,
						   attno, gc, relid, ctx);
	else
	{
		range_setop(((SetOperationStmt *) node)->larg, q, attno, gc, relid, ctx);
		range_setop(((SetOperationStmt *) node)->rarg, q, attno, gc, relid, ctx);
	}
}

static void
range_query_column(Query *q, AttrNumber attno, IgGuardedColumn *gc, Oid relid,
				   RewriteContext *ctx)
{
	TargetEntry *tle = get_tle_by_resno(q->targetList, attno);

	if (q->setOperations != NULL)
		range_setop(q->setOperations, q, attno, gc, relid, ctx);
	else if (tle != NULL && !tle->resjunk)
	{
		Query	   *outer = ctx->query;

		ctx->query = q;
		tle->expr = (Expr *) range_value((Node *) tle->expr, gc, relid, ctx);
		ctx->query = outer;
	}
}

/* Strip casts between integer types and relabelings. */
static Node *
strip_int_casts(Node *node)
{
	for (;;)
	{
		if (IsA(node, RelabelType))
			node = (Node *) ((RelabelType *) node)->arg;
		else if (IsA(node, FuncExpr) &&
				 arith_kind(((FuncExpr *) node)->funcid) == ARITH_INT_CAST)
			node = linitial(((FuncExpr *) node)->args);
		else
			return node;
	}
}

/* The MULTIEXPR SubLink that a Param of SET (a, b) = (SELECT ...) reads. */
static SubLink *
multiexpr_sublink(List *tlist, Param *p)
{
	ListCell   *lc;

	foreach(lc, tlist)
	{
		TargetEntry *tle = (TargetEntry *) lfirst(lc);
		SubLink    *sl = (SubLink *) tle->expr;

		if (tle->resjunk && IsA(sl, SubLink) &&
			sl->subLinkType == MULTIEXPR_SUBLINK &&
			sl->subLinkId == (p->paramid >> 16))
			return sl;
	}
	return NULL;
}

/*
 * The query column that feeds the assigned value, if the value is one:
 * a column of the SELECT of an INSERT, or of a multiple-assignment
 * subselect.  Sets *retype to the node whose type follows the column.
 */
static Query *
feeding_column(Node *source, List *tlist, RewriteContext *ctx,
			   bool insert_source, AttrNumber *attno, Node **retype)
{
	if (IsA(source, Param) && ((Param *) source)->paramkind == PARAM_MULTIEXPR)
	{
		SubLink    *sl = multiexpr_sublink(tlist, (Param *) source);

		if (sl == NULL)
			return NULL;
		*attno = ((Param *) source)->paramid & 0xFFFF;
		*retype = source;
		return castNode(Query, sl->subselect);
	}
	if (insert_source && IsA(source, Var) && ((Var *) source)->varlevelsup == 0)
	{
		RangeTblEntry *rte = rt_fetch(((Var *) source)->varno, ctx->query->rtable);

		if (rte->rtekind != RTE_SUBQUERY)
			return NULL;
		*attno = ((Var *) source)->varattno;
		*retype = source;
		return rte->subquery;
	}
	return NULL;
}

/*
 * The value assigned to a guarded column.  In an INSERT a Var may stand for
 * a column of the VALUES list or SELECT that feeds it, in an UPDATE a Param
 * for a column of a multiple-assignment subselect: the rewrite follows it.
 */
static Node *
rewrite_assignment(Node *expr, IgGuardedColumn *gc, Oid relid,
				   RewriteContext *ctx, List *tlist, bool insert_source)
{
	Query	   *q = ctx->query;
	Node	   *source;
	Query	   *feeder;
	AttrNumber	attno = 0;
	Node	   *retype = NULL;
	Oid			type;

	/* rebuilt in place below: never share nodes with another tree */
	expr = copyObject(expr);
	source = strip_int_casts(expr);

	/* multi-row VALUES of an INSERT: its cells have the column's type */
	if (insert_source && IsA(source, Var) && ((Var *) source)->varlevelsup == 0 &&
		rt_fetch(((Var *) source)->varno, q->rtable)->rtekind == RTE_VALUES)
	{
		RangeTblEntry *rte = rt_fetch(((Var *) source)->varno, q->rtable);
		ListCell   *lc;

		foreach(lc, rte->values_lists)
		{
			List	   *row = (List *) lfirst(lc);
			ListCell   *cell = list_nth_cell(row, ((Var *) source)->varattno - 1);

			if (gc->is_range)
				lfirst(cell) = range_value(lfirst(cell), gc, relid, ctx);
			else if (is_int_type(exprType(lfirst(cell))) &&
					 has_int_arith(lfirst(cell), NULL))
				lfirst(cell) = saturate_expr(lfirst(cell), exprType(lfirst(cell)),
											 gc, relid, ctx);
		}
		return expr;
	}

	feeder = feeding_column(source, tlist, ctx, insert_source, &attno, &retype);

	if (gc->is_range)
	{
		if (feeder != NULL)
			range_query_column(feeder, attno, gc, relid, ctx);
		return range_value(expr, gc, relid, ctx);
	}

	if (!is_int_type(exprType(expr)))
		return expr;
	type = exprType(expr);
	if (feeder != NULL && is_int_type(exprType(retype)))
	{
		TargetEntry *tle = get_tle_by_resno(feeder->targetList, attno);

		if (tle != NULL && has_int_arith((Node *) feeder, NULL) &&
			query_column_widenable(feeder, attno))
		{
			widen_query_column(feeder, attno, ctx);
			if (IsA(retype, Var))
				retype_var((Var *) retype);
			else
			{
				((Param *) retype)->paramtype = INT8OID;
				((Param *) retype)->paramtypmod = -1;
				((Param *) retype)->paramcollid = InvalidOid;
			}
			return saturate_expr(expr, type, gc, relid, ctx);
		}
	}
	if (!has_int_arith(expr, NULL))
		return expr;
	return saturate_expr(expr, type, gc, relid, ctx);
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
														relid, ctx, tlist,
														insert_source);
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
	/* Citus's logical table: its shards' statements are rewritten */
	if (ig_citus_table(rte->relid))
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

/* Is there a write anywhere in the query (CTEs included)? */
static bool
has_write(Query *q)
{
	ListCell   *lc;

	if (q->commandType != CMD_SELECT)
		return true;
	if (!q->hasModifyingCTE)
		return false;
	foreach(lc, q->cteList)
	{
		CommonTableExpr *cte = (CommonTableExpr *) lfirst(lc);

		if (IsA(cte->ctequery, Query) && has_write((Query *) cte->ctequery))
			return true;
	}
	return false;
}

/*
 * Rewrite the assignments of a query about to be planned (the planner
 * hook, pg_integrity_guard.c).
 */
void
ig_rewrite_query(Query *parse)
{
	if (ig_rewrite && ig_enabled && parse->utilityStmt == NULL &&
		IsTransactionState() && has_write(parse))
		(void) rewrite_walker((Node *) parse, NULL);
}
