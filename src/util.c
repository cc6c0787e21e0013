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
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/rel.h"

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
