/*-------------------------------------------------------------------------
 *
 * audit_table.h
 *		Writing incidents into integrity_guard.audit_log (audit_table.c).
 *
 * Above the queue; used by the flush jobs (worker.c) and by the incident
 * API's transactional path (incident.c).  Readers are SQL (the views and
 * events()/summary() in the extension script) plus _pending().
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_AUDIT_TABLE_H
#define IG_AUDIT_TABLE_H

#include "postgres.h"

#include "utils/timestamp.h"

/* One audit_log row to write; NULL strings are SQL NULLs. */
typedef struct IgIncident
{
	const char *event_type;
	const char *schema_name;
	const char *table_name;
	Oid			relid;			/* InvalidOid: NULL */
	const char *target;
	int64		occurrences;
	TimestampTz first_seen;
	TimestampTz last_seen;
	Oid			roleid;
	const char *application_name;
	const char *detail;
} IgIncident;

extern bool ig_audit_owner(Oid *owner);
/* Rows no write could take, for a flush job that must not stop at one. */
#define IG_ASIDE_ERROR_LEN 200
typedef struct IgSetAside
{
	int64		count;
	char		error[IG_ASIDE_ERROR_LEN];	/* the last one's message */
} IgSetAside;

extern int64 ig_audit_insert(Oid owner, IgIncident *rows, int nrows,
							 IgSetAside *aside);
/* rows the retention deletes per transaction */
#define IG_RETENTION_BATCH 10000
extern int64 ig_audit_apply_retention(Oid owner);
extern void ig_audit_lock(void);
extern bool ig_audit_writing_now(void);

#endif							/* IG_AUDIT_TABLE_H */
