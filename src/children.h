/*-------------------------------------------------------------------------
 *
 * children.h
 *		The children guard, nullify_children() (children.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_CHILDREN_H
#define IG_CHILDREN_H

#include "postgres.h"

#include "nodes/plannodes.h"

#include "registry.h"

extern const IgGuardKind ig_children_kind;

extern PlannedStmt *ig_children_set_constraints(PlannedStmt *pstmt);

#endif							/* IG_CHILDREN_H */
