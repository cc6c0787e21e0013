/*-------------------------------------------------------------------------
 *
 * citus.h
 *		What the guards need to know of Citus, when it is installed.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_CITUS_H
#define IG_CITUS_H

#include "executor/execdesc.h"

extern bool ig_citus_table(Oid relid);
extern bool ig_citus_shard(Oid relid);
extern char *ig_citus_shard_suffix(Oid relid);
extern int	ig_citus_allow_guarded(QueryDesc *queryDesc);

#endif							/* IG_CITUS_H */
