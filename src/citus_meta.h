/*-------------------------------------------------------------------------
 *
 * citus_meta.h
 *		What the guards read of Citus's catalog, when it is installed
 *		(citus_meta.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef IG_CITUS_META_H
#define IG_CITUS_META_H

#include "postgres.h"

/* A shard of a Citus table, as this node holds it. */
typedef struct IgCitusShard
{
	Oid			logical;		/* its logical (distributed or reference) table */
	int64		shardid;
	const char *suffix;			/* "_102008": ends the names of its objects */
	bool		counted;		/* this node's copy is the one the audit counts */
} IgCitusShard;

/* A Citus table's distribution (pg_dist_partition). */
typedef struct IgCitusTable
{
	char		method;			/* 'h' hash, 'n' none (reference, local), ... */
	int32		colocation;		/* its co-location group */
	AttrNumber	distcol;		/* its distribution column, or 0 */
} IgCitusTable;

extern bool ig_citus_table(Oid relid);
extern bool ig_citus_table_of(Oid relid, IgCitusTable *table);
extern Oid	ig_citus_colocated_shard(int64 shardid, Oid logical);
extern bool ig_citus_shard_of(Oid relid, IgCitusShard *shard);
extern void ig_citus_meta_forget(void);
extern char *ig_citus_shard_suffix(Oid relid);
extern bool ig_citus_shard(Oid relid);
extern const char *ig_citus_unsuffixed(const char *name, const char *suffix);
extern Oid	ig_citus_bind_captured(const char *schema_name,
								   const char **table_name,
								   const char **target,
								   TransactionId horizon);

#endif							/* IG_CITUS_META_H */
