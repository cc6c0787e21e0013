/*-------------------------------------------------------------------------
 *
 * incident.h
 *		The incident API every guard reports through (incident.c).
 *
 * Guards, repairs and the rewrite's functions record what they absorbed
 * here; the incident goes to the shared queue (preloaded) or into the
 * audit table with the transaction (doc/design.md, "Data flow").
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_INCIDENT_H
#define IG_INCIDENT_H

#include "postgres.h"

#include "access/xact.h"
#include "utils/rel.h"

/*
 * Incident types.  The text forms are what audit_log.event_type holds;
 * keep ig_event_type_name() in step.
 */
typedef enum IgEventType
{
	IG_EVENT_COUNTER_SATURATED,
	IG_EVENT_RANGE_CLAMPED,
	IG_EVENT_CHILDREN_NULLIFIED,
	IG_EVENT_CHILDREN_DELETED,
	IG_EVENT_DUPLICATE_KEY,
	IG_EVENT_ORPHANS_FIXED,
	IG_EVENT_DUPLICATES_MERGED,
	IG_EVENT_CHILDREN_LEFT,		/* no consent: left to the server */
	IG_EVENT_GUARD_CHANGED		/* a guard followed a change of its table */
} IgEventType;

extern const char *ig_event_type_name(IgEventType type);
extern bool ig_event_type_from_name(const char *name, IgEventType *type);

extern void ig_incident_record(IgEventType type, Relation rel,
							   const char *target, const char *detail_json,
							   int64 occurrences);
extern void ig_incident_record_relid(IgEventType type, Oid relid,
									 const char *target,
									 const char *detail_json,
									 int64 occurrences);

/* module life (pg_integrity_guard.c) */
extern void ig_incident_init(void);
extern void ig_incident_statement_start(void);
extern void ig_incident_xact_event(XactEvent event);

#endif							/* IG_INCIDENT_H */
