/*-------------------------------------------------------------------------
 *
 * citus.h
 *		Distributing a guarded table on Citus (citus.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_CITUS_H
#define IG_CITUS_H

#include "executor/execdesc.h"

extern int	ig_citus_allow_guarded(QueryDesc *queryDesc);

#endif							/* IG_CITUS_H */
