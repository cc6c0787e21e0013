/*-------------------------------------------------------------------------
 *
 * settings.h
 *		The values of the integrity_guard.* settings.
 *
 * Every setting is defined, with its limits and help text, in _PG_init
 * (pg_integrity_guard.c); the variables live on the bottom floor so that
 * any room may read them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_SETTINGS_H
#define IG_SETTINGS_H

#include "postgres.h"

extern bool ig_enabled;
extern bool ig_rewrite;
extern bool ig_log_key_values;
extern bool ig_durable_audit;
extern int	ig_flush_interval;
extern int	ig_max_flush_jobs;
extern int	ig_retention;
extern int	ig_queue_size;
extern int	ig_max_stats;
extern char *ig_capture_errors;

/* whether this process got the library from shared_preload_libraries */
extern bool ig_preloaded;

#define IG_CAPTURE_DEFAULT \
	"unique_violation, foreign_key_violation, exclusion_violation, numeric_value_out_of_range, data_exception"

#endif							/* IG_SETTINGS_H */
