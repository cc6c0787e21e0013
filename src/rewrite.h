/*-------------------------------------------------------------------------
 *
 * rewrite.h
 *		The assignment rewrite, run on each query before it is planned
 *		(rewrite.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_REWRITE_H
#define IG_REWRITE_H

#include "postgres.h"

#include "nodes/parsenodes.h"

extern void ig_rewrite_query(Query *parse);
extern void ig_rewrite_functions_changed(void);

#endif							/* IG_REWRITE_H */
