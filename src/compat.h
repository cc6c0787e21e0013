/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Every difference between the PostgreSQL majors this extension builds
 *		against (15 to 18), in one place.
 *
 * Code elsewhere calls the ig_ names below and never tests PG_VERSION_NUM
 * itself.  Each shim keeps the PostgreSQL 15 meaning: where a newer server
 * added a parameter, the shim passes the value that behaves as 15 did.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_COMPAT_H
#define IG_COMPAT_H

#include "postgres.h"

#include "access/genam.h"
#include "utils/guc.h"
#include "utils/rangetypes.h"
#include "utils/regproc.h"
#include "utils/relcache.h"

#if PG_VERSION_NUM < 150000
#error "pg_integrity_guard needs PostgreSQL 15 or later"
#endif

/*
 * 16 added soft-error contexts (escontext) to input and constructor
 * functions; NULL keeps raising errors as 15 did.
 */
#if PG_VERSION_NUM >= 160000
#define ig_stringToQualifiedNameList(s) \
	stringToQualifiedNameList((s), NULL)
#define ig_make_range(typcache, lower, upper, empty) \
	make_range((typcache), (lower), (upper), (empty), NULL)
#else
#define ig_stringToQualifiedNameList(s) \
	stringToQualifiedNameList(s)
#define ig_make_range(typcache, lower, upper, empty) \
	make_range((typcache), (lower), (upper), (empty))
#endif

/*
 * GUC "extra" data: 15 frees it with free(), 16 and later with guc_free(),
 * which expects guc_malloc()'s allocation.  NULL on out-of-memory in both.
 */
#if PG_VERSION_NUM >= 160000
#define ig_guc_malloc(size)		guc_malloc(LOG, (size))
#define ig_guc_free(ptr)		guc_free(ptr)
#else
#define ig_guc_malloc(size)		malloc(size)
#define ig_guc_free(ptr)		free(ptr)
#endif

/*
 * 17 (since 16) raises in pg_attribute_aclcheck_all() for a relation that
 * is gone, and its _ext form says so instead; 15 answers "no privilege"
 * and has no _ext form.  Before 17 the caller checks that the relation
 * exists first (what 16 does is not built here).
 */
#if PG_VERSION_NUM >= 170000
#define ig_attribute_aclcheck_all(relid, role, mode, how, missing) \
	pg_attribute_aclcheck_all_ext((relid), (role), (mode), (how), (missing))
#else
#define ig_attribute_aclcheck_all(relid, role, mode, how, missing) \
	(*(missing) = !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)), \
	 *(missing) ? ACLCHECK_NO_PRIV : \
	 pg_attribute_aclcheck_all((relid), (role), (mode), (how)))
#endif

/*
 * 16 renamed the bitmap of every indexed column (INDEX_ATTR_BITMAP_ALL) to
 * HOT_BLOCKING, leaving out summarizing indexes (never unique).
 */
#if PG_VERSION_NUM >= 160000
#define IG_INDEX_ATTR_BITMAP_ALL	INDEX_ATTR_BITMAP_HOT_BLOCKING
#else
#define IG_INDEX_ATTR_BITMAP_ALL	INDEX_ATTR_BITMAP_ALL
#endif

/*
 * 16 replaced the per-catalog ACL checks (pg_namespace_aclcheck) with
 * object_aclcheck().
 */
#if PG_VERSION_NUM >= 160000
#define ig_namespace_aclcheck(nsp, role, mode) \
	object_aclcheck(NamespaceRelationId, (nsp), (role), (mode))
#define ig_class_ownercheck(relid, role) \
	object_ownercheck(RelationRelationId, (relid), (role))
#else
#define ig_namespace_aclcheck(nsp, role, mode) \
	pg_namespace_aclcheck((nsp), (role), (mode))
#define ig_class_ownercheck(relid, role) \
	pg_class_ownercheck((relid), (role))
#endif

/*
 * 18: RelationGetPrimaryKeyIndex() can return a deferrable primary key when
 * asked to (15 to 17 never do), and index_beginscan() takes an
 * instrumentation struct (none here).
 */
#if PG_VERSION_NUM >= 180000
#define ig_RelationGetPrimaryKeyIndex(rel) \
	RelationGetPrimaryKeyIndex((rel), false)
#define ig_index_beginscan(heap, index, snapshot, nkeys, norderbys) \
	index_beginscan((heap), (index), (snapshot), NULL, (nkeys), (norderbys))
#else
#define ig_RelationGetPrimaryKeyIndex(rel) \
	RelationGetPrimaryKeyIndex(rel)
#define ig_index_beginscan(heap, index, snapshot, nkeys, norderbys) \
	index_beginscan((heap), (index), (snapshot), (nkeys), (norderbys))
#endif

/*
 * 18 dropped ExecutorRun()'s execute_once argument: a hook declares its
 * parameters and passes them on through these.
 */
#if PG_VERSION_NUM >= 180000
#define IG_EXECUTOR_RUN_PARAMS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count
#define IG_EXECUTOR_RUN_ARGS	queryDesc, direction, count
#else
#define IG_EXECUTOR_RUN_PARAMS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count, \
	bool execute_once
#define IG_EXECUTOR_RUN_ARGS	queryDesc, direction, count, execute_once
#endif

#endif							/* IG_COMPAT_H */
