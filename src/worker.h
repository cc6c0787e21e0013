/*-------------------------------------------------------------------------
 *
 * worker.h
 *		The launcher and flush jobs (worker.c).
 *
 * Above the queue and the audit table; used by the incident API (flush())
 * and by _PG_init.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_WORKER_H
#define IG_WORKER_H

#include "postgres.h"

#include "access/xact.h"

extern void ig_worker_register_launcher(void);
extern int64 ig_worker_flush_wait(void);
extern void ig_worker_xact_event(XactEvent event);

#endif							/* IG_WORKER_H */
