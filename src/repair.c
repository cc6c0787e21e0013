/*-------------------------------------------------------------------------
 *
 * repair.c
 *		The C parts of the repair kit (orphans, duplicates, check): the SQL
 *		side is in the 1.1--1.2 script.
 *
 *	_repair_can_commit		a procedure that tells its caller whether
 *							transaction control is allowed where it was
 *							CALLed: the repair procedures commit between
 *							batches only then.
 *	_repair_record			the repair procedures' incidents (orphans_fixed,
 *							duplicates_merged), through the one audit API so
 *							that they take the same pipeline and are visible
 *							to the same roles as the guards' incidents.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "incident.h"
#include "util.h"

PG_FUNCTION_INFO_V1(ig_repair_can_commit);
PG_FUNCTION_INFO_V1(ig_repair_record);

/* what the audit keeps of a repair incident (queue.h's limits) */
#define IG_REPAIR_TARGET_MAX	255
#define IG_REPAIR_DETAIL_MAX	1000

/*
 * CALL integrity_guard._repair_can_commit(NULL): allowed is true when the
 * CALL runs in a non-atomic context.  A PL/pgSQL procedure passes its own
 * atomicity down to the procedures it CALLs, so the answer is the caller's:
 * false inside a transaction block, under a SELECT or DO in a transaction,
 * or in a procedure with SET options or SECURITY DEFINER.
 */
Datum
ig_repair_can_commit(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		value;
	bool		isnull = false;
	bool		allowed;

	allowed = fcinfo->context != NULL && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "_repair_can_commit must be a procedure with one OUT parameter");
	tupdesc = BlessTupleDesc(tupdesc);
	value = BoolGetDatum(allowed);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, &value, &isnull)));
}

/*
 * _repair_record(event, rel, target, detail, occurrences): record a repair
 * incident for rel.  Only the repair events, and only for a role that can
 * write the table (the repairs it reports need that), so that the function
 * cannot be used to fill the audit with incidents about other tables.
 * PUBLIC may call it: every argument is checked as a hostile caller's, and
 * the detail must be a JSON object of bounded size, as the audit stores it.
 */
Datum
ig_repair_record(PG_FUNCTION_ARGS)
{
	char	   *event;
	Oid			relid;
	char	   *target;
	char	   *detail = NULL;
	int64		occurrences;
	IgEventType type;
	char		relkind;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event, rel, target and occurrences of _repair_record() must not be null")));
	event = text_to_cstring(PG_GETARG_TEXT_PP(0));
	relid = PG_GETARG_OID(1);
	target = text_to_cstring(PG_GETARG_TEXT_PP(2));
	occurrences = PG_GETARG_INT64(4);

	if (!ig_event_type_from_name(event, &type) ||
		(type != IG_EVENT_ORPHANS_FIXED && type != IG_EVENT_DUPLICATES_MERGED))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a repair event", event),
				 errhint("Use \"orphans_fixed\" or \"duplicates_merged\".")));
	if (occurrences < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("occurrences must not be negative")));
	if (strlen(target) == 0 || strlen(target) > IG_REPAIR_TARGET_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target of a repair incident must have 1 to %d bytes",
						IG_REPAIR_TARGET_MAX)));

	relkind = get_rel_relkind(relid);
	if (relkind == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", get_rel_name(relid))));
	if (pg_attribute_aclcheck_all(relid, GetUserId(), ACL_UPDATE,
								  ACLMASK_ANY) != ACLCHECK_OK &&
		pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE | ACL_DELETE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to record a repair of table \"%s\"",
						get_rel_name(relid))));

	if (!PG_ARGISNULL(3))
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(3);

		if (JB_ROOT_IS_SCALAR(jb) || !JB_ROOT_IS_OBJECT(jb))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("detail of a repair incident must be a JSON object")));
		detail = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
		if (strlen(detail) > IG_REPAIR_DETAIL_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("detail of a repair incident must have at most %d bytes",
							IG_REPAIR_DETAIL_MAX)));
	}
	ig_incident_record_relid(type, relid, target, detail, occurrences);
	PG_RETURN_VOID();
}
