/*-------------------------------------------------------------------------
 *
 * util.c
 *		Small helpers with one home each.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "mb/pg_wchar.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "compat.h"
#include "util.h"

/*
 * Copy a string into a fixed field, cut at a character boundary, and zero
 * the rest of the field: keys are compared over their full length.
 */
void
ig_copy_bounded(char *dst, size_t size, const char *src)
{
	int			len = 0;

	if (src != NULL)
	{
		len = strlen(src);
		if ((size_t) len >= size)
			len = pg_mbcliplen(src, len, size - 1);
		memcpy(dst, src, len);
	}
	memset(dst + len, 0, size - len);
}

/* Append "key": "value" to a JSON object under construction. */
void
ig_append_json_string(StringInfo buf, const char *key, const char *value,
					  bool first)
{
	if (!first)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
	escape_json(buf, value);
}

/*
 * Append "key": "value" (JSON-escaped, at most maxlen bytes of value) to a
 * fixed buffer holding an object opened at buf[0], never past its end and
 * without allocating: the error hook and shared memory use it.  A NULL value
 * adds nothing.
 */
void
ig_json_member(char *buf, size_t size, size_t *pos, const char *key,
			   const char *value, size_t maxlen)
{
	size_t		p = *pos;
	size_t		i;

	if (value == NULL)
		return;
	if (p + strlen(key) + 8 >= size)
		return;
	p += snprintf(buf + p, size - p, "%s\"%s\": \"", p > 1 ? ", " : "", key);
	i = 0;
	while (value[i] != '\0')
	{
		unsigned char c = (unsigned char) value[i];
		int			len = c < 0x80 ? 1 : pg_mblen(value + i);

		/*
		 * Whole characters only (the text becomes jsonb), and room left for
		 * the longest escape and the closing quote and brace.
		 */
		if (i + len > maxlen || p + Max(len, 6) + 3 >= size)
			break;
		if (c == '"' || c == '\\')
		{
			buf[p++] = '\\';
			buf[p++] = c;
		}
		else if (c < 0x20)
			p += snprintf(buf + p, size - p, "\\u%04x", c);
		else
		{
			memcpy(buf + p, value + i, len);
			p += len;
		}
		i += len;
	}
	buf[p++] = '"';
	buf[p] = '\0';
	*pos = p;
}

/* A text Datum, or SQL NULL for a NULL string. */
Datum
ig_text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* The range of an integer type; bigint for anything else. */
void
ig_int_type_bounds(Oid typid, int64 *lo, int64 *hi)
{
	switch (typid)
	{
		case INT2OID:
			*lo = PG_INT16_MIN;
			*hi = PG_INT16_MAX;
			break;
		case INT4OID:
			*lo = PG_INT32_MIN;
			*hi = PG_INT32_MAX;
			break;
		default:
			*lo = PG_INT64_MIN;
			*hi = PG_INT64_MAX;
			break;
	}
}

/* The extension's owner, or false when it is not installed here. */
bool
ig_extension_owner(Oid *owner)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	bool		found = false;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(IG_EXTENSION_NAME));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		*owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* The event trigger data of an event trigger function, or a clear error. */
EventTriggerData *
ig_event_trigger_data(FunctionCallInfo fcinfo, const char *function)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" was not called by the event trigger manager",
						function)));
	return (EventTriggerData *) fcinfo->context;
}

/*
 * Whether a catalog row was committed before the horizon: its xmin precedes
 * the TransactionXmin of the transaction that raised the incident (frozen
 * and bootstrap rows always).  A row rewritten since (a rename, SET SCHEMA,
 * a new table that took the name) is not.
 */
static bool
catalog_row_before(HeapTuple tuple, TransactionId horizon)
{
	TransactionId xmin = HeapTupleHeaderGetXmin(tuple->t_data);

	if (!TransactionIdIsNormal(xmin))
		return true;
	return TransactionIdIsNormal(horizon) && TransactionIdPrecedes(xmin, horizon);
}

/*
 * The table a captured error named, bound when it is written or shown
 * (the error hook cannot read the catalogs).  It binds only to the relation
 * that had the name when the error was raised: both the schema's and the
 * table's catalog rows must predate the incident's horizon.  A table
 * created, renamed or moved into the name later never inherits it; such an
 * incident stays without a table, visible only to those who see all.  A
 * temporary table is never bound: its schema name may belong to another
 * session by now.
 */
Oid
ig_bind_relid(const char *schema_name, const char *table_name,
			  TransactionId horizon)
{
	HeapTuple	tuple;
	Oid			nsp;
	Oid			relid;
	bool		before;

	if (schema_name[0] == '\0' || table_name[0] == '\0' ||
		!TransactionIdIsValid(horizon) ||
		strncmp(schema_name, "pg_temp_", 8) == 0 ||
		strncmp(schema_name, "pg_toast_temp_", 14) == 0)
		return InvalidOid;
	tuple = SearchSysCache1(NAMESPACENAME, CStringGetDatum(schema_name));
	if (!HeapTupleIsValid(tuple))
		return InvalidOid;
	nsp = ((Form_pg_namespace) GETSTRUCT(tuple))->oid;
	before = catalog_row_before(tuple, horizon);
	ReleaseSysCache(tuple);
	if (!before)
		return InvalidOid;
	tuple = SearchSysCache2(RELNAMENSP, CStringGetDatum(table_name),
							ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tuple))
		return InvalidOid;
	relid = ((Form_pg_class) GETSTRUCT(tuple))->oid;
	before = catalog_row_before(tuple, horizon);
	ReleaseSysCache(tuple);
	return before ? relid : InvalidOid;
}

/* A relation's owner; InvalidOid if it is gone. */
Oid
ig_rel_owner(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		return InvalidOid;
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Whether a role may SELECT the table itself (not only some columns).
 * False for a relation that is gone; never raises.
 */
bool
ig_table_selectable_by(Oid relid, Oid roleid)
{
	bool		missing = false;

	return pg_class_aclcheck_ext(relid, roleid, ACL_SELECT, &missing) ==
		ACLCHECK_OK && !missing;
}

/*
 * Whether a role may SELECT the relation or some column of it: what shows
 * an incident to a role outside pg_read_all_stats (the readers' rule).
 * False for a relation that is gone; never raises.
 */
bool
ig_relation_readable_by(Oid relid, Oid roleid)
{
	bool		missing = false;

	return ig_table_selectable_by(relid, roleid) ||
		(ig_attribute_aclcheck_all(relid, roleid, ACL_SELECT, ACLMASK_ANY,
								   &missing) == ACLCHECK_OK && !missing);
}
