/*-------------------------------------------------------------------------
 *
 * pg_integrity_guard.c
 *		Module entry point: GUCs, caches and hooks.
 *
 * The library is loaded by the first guard trigger that fires in a backend,
 * or earlier through shared_preload_libraries / session_preload_libraries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/plancache.h"

#include "pg_integrity_guard.h"

PG_MODULE_MAGIC;

bool		ig_enabled = true;
bool		ig_log_key_values = true;
bool		ig_rewrite = true;
bool		ig_preloaded = false;

void		_PG_init(void);

/*
 * Statements prepared under one setting hold rewritten (or plain) plans:
 * a change drops every cached plan, so the next execution re-analyzes.
 */
static void
ig_reset_plans(bool newval, void *extra)
{
	if (IsUnderPostmaster)
		ResetPlanCache();
}

void
_PG_init(void)
{
	ig_preloaded = process_shared_preload_libraries_in_progress;

	DefineCustomBoolVariable("integrity_guard.enabled",
							 "Lets the integrity guards act.",
							 "When off, every guard trigger passes rows through unchanged and the server's own errors are raised again.",
							 &ig_enabled,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, ig_reset_plans, NULL);

	DefineCustomBoolVariable("integrity_guard.rewrite",
							 "Rewrites arithmetic assigned to guarded columns so that it saturates.",
							 "Needs the library loaded before statements are parsed (shared_preload_libraries or session_preload_libraries).",
							 &ig_rewrite,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, ig_reset_plans, NULL);

	DefineCustomBoolVariable("integrity_guard.log_key_values",
							 "Records key values in the detail of audit incidents.",
							 "Audit rows are visible only to roles that can read the audited table.",
							 &ig_log_key_values,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	ig_pipeline_init();
	ig_capture_init();

	MarkGUCPrefixReserved("integrity_guard");

	ig_cache_init();
	ig_audit_init();
	ig_rewrite_init();
	ig_unique_init();
	ig_children_init();
}

/*
 * integrity_guard._preloaded() returns bool: whether this backend got the
 * library from shared_preload_libraries.
 */
PG_FUNCTION_INFO_V1(ig_preloaded_fn);

Datum
ig_preloaded_fn(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ig_preloaded);
}
