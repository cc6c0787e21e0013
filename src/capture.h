/*-------------------------------------------------------------------------
 *
 * capture.h
 *		Server-wide error capture: errors sent to clients become incidents
 *		(capture.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_CAPTURE_H
#define IG_CAPTURE_H

#include "postgres.h"

#include "utils/guc.h"

/* integrity_guard.capture_errors */
extern bool ig_capture_check(char **newval, void **extra, GucSource source);
extern void ig_capture_assign(const char *newval, void *extra);

/* the error hook */
extern void ig_capture_hooked(void);
extern void ig_capture_error(ErrorData *edata);

#endif							/* IG_CAPTURE_H */
