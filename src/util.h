/*-------------------------------------------------------------------------
 *
 * util.h
 *		Small helpers every room may use: names, bounded copies, JSON text,
 *		integer bounds, the extension's owner.
 *
 * The bottom floor with settings.h (doc/design.md, "Layers"): it uses only
 * the server and compat.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_UTIL_H
#define IG_UTIL_H

#include "postgres.h"

#include "commands/event_trigger.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "fmgr.h"
#include "lib/stringinfo.h"

#include "compat.h"

#define IG_EXTENSION_NAME	"pg_integrity_guard"
#define IG_SCHEMA_NAME		"integrity_guard"

/* a + b for event counts, stuck at the int64 limits instead of wrapping */
static inline int64
ig_add_sat(int64 a, int64 b)
{
	int64		r;

	if (!pg_add_s64_overflow(a, b, &r))
		return r;
	return b > 0 ? PG_INT64_MAX : PG_INT64_MIN;
}

/* Hash a zero-padded string field up to its terminator only. */
static inline uint32
ig_hash_field(uint32 h, const char *s)
{
	return hash_combine(h, hash_bytes((const unsigned char *) s, strlen(s)));
}

extern void ig_copy_bounded(char *dst, size_t size, const char *src);

/* JSON: into a StringInfo, or into a fixed buffer without allocating */
extern void ig_append_json_string(StringInfo buf, const char *key,
								  const char *value, bool first);
extern void ig_json_member(char *buf, size_t size, size_t *pos,
						   const char *key, const char *value, size_t maxlen);

extern Datum ig_text_or_null(const char *s, bool *isnull);

static inline const char *
ig_empty_to_null(const char *s)
{
	return s[0] ? s : NULL;
}

extern void ig_int_type_bounds(Oid typid, int64 *lo, int64 *hi);
extern bool ig_extension_owner(Oid *owner);
extern Oid	ig_rel_owner(Oid relid);
extern bool ig_table_selectable_by(Oid relid, Oid roleid);
extern bool ig_relation_readable_by(Oid relid, Oid roleid);
extern Oid	ig_bind_relid(const char *schema_name, const char *table_name,
						  TransactionId horizon);
extern EventTriggerData *ig_event_trigger_data(FunctionCallInfo fcinfo,
											   const char *function);

#endif							/* IG_UTIL_H */
