/*-------------------------------------------------------------------------
 *
 * settings.c
 *		Storage and defaults of the integrity_guard.* settings.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "settings.h"

bool		ig_enabled = true;
bool		ig_rewrite = true;
bool		ig_log_key_values = true;
bool		ig_durable_audit = true;
int			ig_flush_interval = 1000;
int			ig_max_flush_jobs = 1;
int			ig_retention = 30 * 24 * 3600;
int			ig_queue_size = 1024;
int			ig_max_stats = 1000;
char	   *ig_capture_errors = NULL;
bool		ig_preloaded = false;
