/*-------------------------------------------------------------------------
 *
 * citus_meta.c
 *		What the guards read of Citus's catalog, when it is installed.
 *
 * Nothing here links to Citus: its catalog is found by name, and where it
 * is absent every answer is "not Citus".  Citus copies a distributed or
 * reference table's triggers to its shards, where the row-local guards act
 * on the shards' rows; the logical table's own statements are Citus's to
 * plan (ig_citus_table).  An incident on a shard is the logical table's,
 * under its names (ig_citus_shard_of), and a reference table's copies,
 * which all see the same rows, count it once: on the copy in the lowest
 * group.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "fmgr.h"
#include "nodes/primnodes.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "citus_meta.h"
#include "util.h"

/*
 * A scan of Citus's catalog 'catalog' for rows whose 'column' equals
 * 'value' (by 'eq'), through 'index' when there is one; NULL where Citus
 * is not installed.  The caller ends the scan and closes *rel.
 */
static SysScanDesc
citus_scan(const char *catalog, const char *index, const char *column,
		   RegProcedure eq, Datum value, Relation *rel)
{
	Oid			relid = get_relname_relid(catalog, PG_CATALOG_NAMESPACE);
	Oid			indexid;
	AttrNumber	attnum;
	ScanKeyData key;

	if (!OidIsValid(relid) ||
		(attnum = get_attnum(relid, column)) == InvalidAttrNumber)
		return NULL;
	indexid = get_relname_relid(index, PG_CATALOG_NAMESPACE);
	*rel = table_open(relid, AccessShareLock);
	ScanKeyInit(&key, attnum, BTEqualStrategyNumber, eq, value);
	return systable_beginscan(*rel, indexid, OidIsValid(indexid), NULL, 1, &key);
}

/*
 * The column 'name' of a row of Citus's catalog rel (found by name: the
 * catalog is Citus's, not ours); *isnull when it is null or absent.
 */
static Datum
column(Relation rel, HeapTuple tuple, const char *name, bool *isnull)
{
	AttrNumber	att = get_attnum(RelationGetRelid(rel), name);

	*isnull = true;
	return att == InvalidAttrNumber ? (Datum) 0 :
		heap_getattr(tuple, att, RelationGetDescr(rel), isnull);
}

/* The int4 column 'name' of a row of rel; 'missing' when it is absent. */
static int32
int4_column(Relation rel, HeapTuple tuple, const char *name, int32 missing)
{
	bool		isnull;
	Datum		value = column(rel, tuple, name, &isnull);

	return isnull ? missing : DatumGetInt32(value);
}

/*
 * Whether relid is a table Citus plans itself (distributed, reference, or
 * local in its metadata): a row of pg_catalog.pg_dist_partition.
 */
bool
ig_citus_table(Oid relid)
{
	Relation	rel;
	SysScanDesc scan;
	bool		found;

	scan = citus_scan("pg_dist_partition", "pg_dist_partition_logical_relid_index",
					  "logicalrelid", F_OIDEQ, ObjectIdGetDatum(relid), &rel);
	if (scan == NULL)
		return false;
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* The text column 'name' of a row of rel, or NULL. */
static char *
text_column(Relation rel, HeapTuple tuple, const char *name)
{
	bool		isnull;
	Datum		value = column(rel, tuple, name, &isnull);

	return isnull ? NULL : TextDatumGetCString(value);
}

/*
 * How Citus distributes relid (its row of pg_dist_partition): false when
 * it is not a Citus table.
 */
bool
ig_citus_table_of(Oid relid, IgCitusTable *table)
{
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;
	bool		found = false;

	scan = citus_scan("pg_dist_partition", "pg_dist_partition_logical_relid_index",
					  "logicalrelid", F_OIDEQ, ObjectIdGetDatum(relid), &rel);
	if (scan == NULL)
		return false;
	if (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		method = column(rel, tuple, "partmethod", &isnull);
		char	   *partkey = text_column(rel, tuple, "partkey");
		Node	   *key = partkey != NULL && partkey[0] == '{' ? stringToNode(partkey) : NULL;

		found = true;
		table->method = isnull ? '\0' : DatumGetChar(method);
		table->colocation = int4_column(rel, tuple, "colocationid", -1);
		table->distcol = key != NULL && IsA(key, Var) ? ((Var *) key)->varattno : 0;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The shard of the logical table 'logical' co-located with shard
 * 'shardid' (the one that holds the same hash range, so on the same node),
 * or InvalidOid when this node has none.
 */
Oid
ig_citus_colocated_shard(int64 shardid, Oid logical)
{
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *min = NULL;
	int64		found = 0;
	char	   *name;
	Oid			shard;

	scan = citus_scan("pg_dist_shard", "pg_dist_shard_shardid_index", "shardid",
					  F_INT8EQ, Int64GetDatum(shardid), &rel);
	if (scan == NULL)
		return InvalidOid;
	if (HeapTupleIsValid(tuple = systable_getnext(scan)))
		min = text_column(rel, tuple, "shardminvalue");
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (min == NULL)
		return InvalidOid;

	scan = citus_scan("pg_dist_shard", "pg_dist_shard_logical_relid_index",
					  "logicalrelid", F_OIDEQ, ObjectIdGetDatum(logical), &rel);
	if (scan == NULL)
		return InvalidOid;
	while (found == 0 && HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		char	   *other = text_column(rel, tuple, "shardminvalue");
		bool		isnull;
		Datum		id = column(rel, tuple, "shardid", &isnull);

		if (!isnull && other != NULL && strcmp(other, min) == 0)
			found = DatumGetInt64(id);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (found == 0 || (name = get_rel_name(logical)) == NULL)
		return InvalidOid;
	/* Citus names a shard after its table and its id, and gives it its owner */
	shard = get_relname_relid(psprintf("%s_" INT64_FORMAT, name, found),
							  get_rel_namespace(logical));
	return OidIsValid(shard) && ig_rel_owner(shard) == ig_rel_owner(logical) ?
		shard : InvalidOid;
}

/*
 * Whether this node's copy of the shard is the one whose incidents count:
 * the copy in the lowest group (pg_dist_placement), which for a shard of a
 * distributed table is its only copy.  Every copy of a reference table
 * absorbs the same rows; one of them tells.
 */
static bool
counted_here(int64 shardid)
{
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;
	int32		lowest = PG_INT32_MAX;
	int32		local = -1;

	scan = citus_scan("pg_dist_placement", "pg_dist_placement_shardid_index",
					  "shardid", F_INT8EQ, Int64GetDatum(shardid), &rel);
	if (scan == NULL)
		return true;
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
		lowest = Min(lowest, int4_column(rel, tuple, "groupid", PG_INT32_MAX));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (lowest == PG_INT32_MAX)
		return true;

	/* pg_dist_local_group: one row, this node's group */
	scan = citus_scan("pg_dist_local_group", "", "groupid", F_INT4GE,
					  Int32GetDatum(PG_INT32_MIN), &rel);
	if (scan == NULL)
		return true;
	if (HeapTupleIsValid(tuple = systable_getnext(scan)))
		local = int4_column(rel, tuple, "groupid", -1);
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return local == -1 || local == lowest;
}

/*
 * Whether relid is one of Citus's shards: a table named after its logical
 * table and its shard id, which pg_catalog.pg_dist_shard holds.  If so,
 * *shard says which table, the suffix Citus gives the names of the shard's
 * objects, and whether this copy counts.
 */
static bool
shard_lookup(Oid relid, IgCitusShard *shard)
{
	char	   *name = get_rel_name(relid);
	char	   *suffix;
	char	   *end;
	int64		shardid;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			logical = InvalidOid;

	if (name == NULL || (suffix = strrchr(name, '_')) == NULL ||
		suffix == name || !isdigit((unsigned char) suffix[1]))
		return false;
	errno = 0;
	shardid = strtoi64(suffix + 1, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	scan = citus_scan("pg_dist_shard", "pg_dist_shard_shardid_index", "shardid",
					  F_INT8EQ, Int64GetDatum(shardid), &rel);
	if (scan == NULL)
		return false;
	if (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		value = column(rel, tuple, "logicalrelid", &isnull);
		char	   *logical_name = isnull ? NULL :
			get_rel_name(DatumGetObjectId(value));

		/*
		 * the shard of that logical table: its name, schema and owner (a
		 * table another role made under a shard's name, on a node without
		 * that shard, is not one: its incidents are not the table's)
		 */
		if (logical_name != NULL &&
			strlen(logical_name) == (size_t) (suffix - name) &&
			strncmp(logical_name, name, suffix - name) == 0 &&
			get_rel_namespace(DatumGetObjectId(value)) == get_rel_namespace(relid) &&
			ig_rel_owner(DatumGetObjectId(value)) == ig_rel_owner(relid))
			logical = DatumGetObjectId(value);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(logical))
		return false;
	shard->logical = logical;
	shard->shardid = shardid;
	shard->suffix = suffix;
	shard->counted = counted_here(shardid);
	return true;
}

/*
 * What shard_lookup found for each relation, kept until the next relcache
 * invalidation (ig_citus_meta_forget): an incident on a shard asks once
 * per statement, a duplicate storm once per row statement.  Citus
 * invalidates relcache entries whenever its metadata changes.
 */
typedef struct ShardEntry
{
	Oid			relid;			/* hash key */
	bool		shard;
	IgCitusShard info;
} ShardEntry;

static MemoryContext shard_cxt = NULL;
static HTAB *shard_cache = NULL;

bool
ig_citus_shard_of(Oid relid, IgCitusShard *shard)
{
	ShardEntry *entry;
	bool		found;

	if (shard_cache == NULL)
	{
		HASHCTL		ctl;

		if (shard_cxt == NULL)
			shard_cxt = AllocSetContextCreate(CacheMemoryContext,
											  "integrity_guard Citus shards",
											  ALLOCSET_SMALL_SIZES);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(ShardEntry);
		ctl.hcxt = shard_cxt;
		shard_cache = hash_create("integrity_guard Citus shards", 64, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(shard_cache, &relid, HASH_FIND, NULL);
	if (entry == NULL)
	{
		IgCitusShard info;
		bool		is_shard = shard_lookup(relid, &info);

		/* a lookup that read the catalogs may have seen an invalidation */
		if (shard_cache == NULL)
		{
			if (is_shard)
				*shard = info;
			return is_shard;
		}
		entry = hash_search(shard_cache, &relid, HASH_ENTER, &found);
		entry->shard = is_shard;
		if (is_shard)
		{
			entry->info = info;
			entry->info.suffix = MemoryContextStrdup(shard_cxt, info.suffix);
		}
	}
	if (entry->shard)
		*shard = entry->info;
	return entry->shard;
}

/* A relation changed (relcache invalidation): forget what was found. */
void
ig_citus_meta_forget(void)
{
	shard_cache = NULL;
	if (shard_cxt != NULL)
		MemoryContextReset(shard_cxt);
}

/* The suffix of a shard's object names ("_102008"), or NULL. */
char *
ig_citus_shard_suffix(Oid relid)
{
	IgCitusShard shard;

	return ig_citus_shard_of(relid, &shard) ? (char *) shard.suffix : NULL;
}

/*
 * Whether relid is one of Citus's shards: what lists guards shows the
 * logical tables, not the copies of their triggers on each shard.
 */
bool
ig_citus_shard(Oid relid)
{
	IgCitusShard shard;

	return ig_citus_shard_of(relid, &shard);
}

/*
 * A shard object's name as its logical object's ("conference_key_102029"
 * is "conference_key"): the name without the shard's suffix, when it ends
 * with it.
 */
const char *
ig_citus_unsuffixed(const char *name, const char *suffix)
{
	size_t		len = name ? strlen(name) : 0;
	size_t		slen = suffix ? strlen(suffix) : 0;

	if (slen == 0 || len <= slen || strcmp(name + len - slen, suffix) != 0)
		return name;
	return pnstrdup(name, len - slen);
}

/*
 * The relation a captured error is shown under, bound by name when it is
 * written or read (ig_bind_relid; the error hook reads no catalog), with
 * its names (*table_name NULL or empty: no table).  On a Citus shard, the logical table, and *table_name and
 * *target (a constraint of the shard) as the logical ones.  One that
 * cannot bind stays unbound (InvalidOid: shown only to those who see
 * all), but is labelled so when its name is a shard's now: a label, not a
 * binding.
 */
Oid
ig_citus_bind_captured(const char *schema_name, const char **table_name,
					   const char **target, TransactionId horizon)
{
	const char *name = *table_name ? *table_name : "";
	Oid			relid = ig_bind_relid(schema_name, name, horizon);
	Oid			named = relid;
	IgCitusShard shard;

	if (!OidIsValid(named) && schema_name[0] != '\0' && name[0] != '\0')
	{
		Oid			nsp = get_namespace_oid(schema_name, true);

		named = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
	}
	if (!OidIsValid(named) || !ig_citus_shard_of(named, &shard))
		return relid;
	*table_name = get_rel_name(shard.logical);
	*target = ig_citus_unsuffixed(*target, shard.suffix);
	return OidIsValid(relid) ? shard.logical : InvalidOid;
}

/*
 * integrity_guard._citus_shard(rel oid) returns boolean: ig_citus_shard for
 * the guards view.  False for NULL, a relation that is gone, or a server
 * without Citus; it never raises.
 */
PG_FUNCTION_INFO_V1(ig_citus_shard_sql);

Datum
ig_citus_shard_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(ig_citus_shard(PG_GETARG_OID(0)));
}
