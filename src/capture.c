/*-------------------------------------------------------------------------
 *
 * capture.c
 *		Server-wide error capture: errors sent to clients become incidents.
 *
 * With the library preloaded, an emit_log_hook turns every ERROR whose
 * SQLSTATE is listed in integrity_guard.capture_errors into an incident on
 * the shared queue.  The hook runs inside error reporting: it reads only
 * the ErrorData (schema, table and constraint names are carried there),
 * takes no lock but the pipeline's own short ones, allocates nothing and
 * cannot raise.
 *
 * A list entry is a condition name as PL/pgSQL knows it, a five-character
 * SQLSTATE, or a two-character class.  As in PL/pgSQL's EXCEPTION clauses,
 * a class-level condition (data_exception, 22000) covers its whole class;
 * the most specific entry names the event.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "capture.h"
#include "queue.h"
#include "settings.h"
#include "unique.h"
#include "util.h"

typedef struct IgErrcodeName
{
	const char *name;
	const char *sqlstate;
} IgErrcodeName;

/* generated from the server's errcodes.txt by the Makefile */
static const IgErrcodeName ig_errcode_names[] = {
#include "ig_errcodes.h"
	{NULL, NULL}
};

typedef struct IgCaptureItem
{
	int			sqlerrcode;
	bool		is_class;
	char		event_type[IG_TYPE_LEN];
} IgCaptureItem;

typedef struct IgCaptureList
{
	int			n;
	IgCaptureItem items[FLEXIBLE_ARRAY_MEMBER];
} IgCaptureList;

static bool capture_hooked = false;
static IgCaptureList *capture_list = NULL;

static const IgCaptureItem *capture_match(int code);
static void tell_unique(void);

static int
sqlstate_code(const char *s)
{
	return MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
}

/* The event type of a code: the two names the audit already uses, else the condition's name. */
static void
event_type_for(char *dst, int code, const char *name)
{
	if (code == ERRCODE_UNIQUE_VIOLATION)
		name = "duplicate_key";
	else if (code == ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE)
		name = "numeric_out_of_range";
	ig_copy_bounded(dst, IG_TYPE_LEN, name);
}

/* check_hook of integrity_guard.capture_errors */
bool
ig_capture_check(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *tokens;
	ListCell   *lc;
	IgCaptureList *list;
	int			n = 0;

	if (!SplitIdentifierString(raw, ',', &tokens))
	{
		GUC_check_errdetail("List syntax is invalid.");
		pfree(raw);
		list_free(tokens);
		return false;
	}
	/* GUC extra data: allocated as the running server frees it */
	list = ig_guc_malloc(offsetof(IgCaptureList, items) +
						  sizeof(IgCaptureItem) * Max(list_length(tokens), 1));
	if (list == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errdetail("Out of memory.");
		pfree(raw);
		list_free(tokens);
		return false;
	}
	/* event types are copied into hash keys over their full length */
	memset(list, 0, offsetof(IgCaptureList, items) +
		   sizeof(IgCaptureItem) * Max(list_length(tokens), 1));

	foreach(lc, tokens)
	{
		char	   *tok = lfirst(lc);
		char		code[6];
		char		unnamed[IG_TYPE_LEN];
		const char *name = NULL;
		int			len = strlen(tok);
		int			i;

		for (i = 0; ig_errcode_names[i].name != NULL; i++)
			if (strcmp(ig_errcode_names[i].name, tok) == 0)
			{
				name = ig_errcode_names[i].name;
				strlcpy(code, ig_errcode_names[i].sqlstate, sizeof(code));
				break;
			}
		if (name == NULL && (len == 5 || len == 2))
		{
			bool		ok = true;

			for (i = 0; i < len; i++)
				if (!isalnum((unsigned char) tok[i]))
					ok = false;
			if (ok)
			{
				for (i = 0; i < len; i++)
					code[i] = toupper((unsigned char) tok[i]);
				if (len == 2)
					memcpy(code + 2, "000", 3);
				code[5] = '\0';
				/* name it after its condition when it has one */
				for (i = 0; ig_errcode_names[i].name != NULL; i++)
					if (strcmp(ig_errcode_names[i].sqlstate, code) == 0)
					{
						name = ig_errcode_names[i].name;
						break;
					}
				if (name == NULL)
				{
					snprintf(unnamed, sizeof(unnamed), "sqlstate_%s", code);
					name = unnamed;
				}
			}
		}
		if (name == NULL)
		{
			GUC_check_errdetail("\"%s\" is not an error condition name, a SQLSTATE or a SQLSTATE class.",
								tok);
			GUC_check_errhint("Use names such as unique_violation or data_exception, codes such as 23505, or classes such as 22.");
			ig_guc_free(list);
			pfree(raw);
			list_free(tokens);
			return false;
		}
		list->items[n].sqlerrcode = sqlstate_code(code);
		list->items[n].is_class = strcmp(code + 2, "000") == 0;
		event_type_for(list->items[n].event_type, list->items[n].sqlerrcode,
					   name);
		n++;
	}
	list->n = n;
	*extra = list;
	pfree(raw);
	list_free(tokens);
	return true;
}

/* assign_hook of integrity_guard.capture_errors */
void
ig_capture_assign(const char *newval, void *extra)
{
	capture_list = extra;
	tell_unique();
}

/* The listed entry that covers a code, exact codes before classes. */
static const IgCaptureItem *
capture_match(int code)
{
	const IgCaptureItem *class_match = NULL;
	int			i;

	if (capture_list == NULL)
		return NULL;
	for (i = 0; i < capture_list->n; i++)
	{
		const IgCaptureItem *item = &capture_list->items[i];

		if (item->sqlerrcode == code && !item->is_class)
			return item;
		if (item->sqlerrcode == code ||
			(item->is_class && item->sqlerrcode == ERRCODE_TO_CATEGORY(code)))
			class_match = item;
	}
	return class_match;
}

/*
 * Where the server raises the errors that name a table: unique and
 * exclusion checks, foreign keys, NOT NULL, CHECK, partition and WITH
 * CHECK OPTION constraints (also when ALTER TABLE or COPY runs them), and
 * guard_unique.  errstart() keeps the base name of the source file.
 */
static const char *const server_check_files[] = {
	"nbtinsert.c", "execIndexing.c", "ri_triggers.c", "execMain.c",
	"execPartition.c", "execReplication.c", "nodeModifyTable.c",
	"tablecmds.c", "copyfrom.c", "copyfromparse.c",
	/* this extension's guards, on the row the role writes */
	"unique.c", "range.c", NULL
};

/* The statements by which procedural languages raise what user code asks. */
static const char *const user_raise_files[] = {
	"pl_exec.c", "plpy_elog.c", "plpy_plpymodule.c", "plperl.c", "Util.c",
	"SPI.c", "pltcl.c", NULL
};

static bool
file_in(const char *file, const char *const *list)
{
	int			i;

	if (file == NULL)
		return false;
	for (i = 0; list[i] != NULL; i++)
		if (strcmp(file, list[i]) == 0)
			return true;
	return false;
}

/*
 * An error Citus relays on the coordinator from the node that raised it
 * (its ReportResultError): that node's own hook, or its guard, recorded
 * it, so it is not counted again here.  Known by where it was raised, as
 * above: the relayed message carries nothing else that says so.
 */
static bool
relayed_by_citus(const ErrorData *edata)
{
	static const char *const relay_files[] = {"remote_commands.c", NULL};

	return edata->funcname != NULL &&
		strcmp(edata->funcname, "ReportResultError") == 0 &&
		file_in(edata->filename, relay_files);
}

/*
 * An error the server's checks did not raise: anything from a procedural
 * language's RAISE/elog, and any error naming a table that does not come
 * from the server's own constraint checks.  Such an error may say anything
 * (RAISE ... USING TABLE = 'victim', DETAIL = 'Key (id)=(666) ...'): it is
 * recorded as user_raised, by the raising role, on no table, so that it is
 * never shown to readers of a table as that table's incident.
 */
static bool
raised_by_user(const ErrorData *edata)
{
	if (file_in(edata->filename, user_raise_files))
		return true;
	if (edata->table_name != NULL || edata->schema_name != NULL)
		return !file_in(edata->filename, server_check_files);
	return false;
}

/*
 * Start the incident of an error: the key without a table (relid is bound
 * by name when written: the hook reads no catalog), and a detail opened
 * with the SQLSTATE and the message.
 */
static void
incident_start(IgEventKey *key, char *detail, size_t *pos,
			   const ErrorData *edata, const char *event_type,
			   const char *target)
{
	memset(key, 0, sizeof(IgEventKey));
	key->dbid = MyDatabaseId;
	key->relid = InvalidOid;
	key->roleid = GetUserId();
	ig_copy_bounded(key->event_type, IG_TYPE_LEN, event_type);
	ig_copy_bounded(key->target, IG_TARGET_LEN, target);
	ig_copy_bounded(key->application_name, NAMEDATALEN, application_name);

	memset(detail, 0, IG_DETAIL_LEN);
	*pos = 0;
	detail[(*pos)++] = '{';
	ig_json_member(detail, IG_DETAIL_LEN, pos, "sqlstate",
				   unpack_sql_state(edata->sqlerrcode), 5);
	ig_json_member(detail, IG_DETAIL_LEN, pos, "message",
				   edata->message, 200);
}

static void
capture_user_raised(ErrorData *edata, const IgCaptureItem *item)
{
	IgEventKey	key;
	char		detail[IG_DETAIL_LEN];
	size_t		pos;
	TimestampTz now = GetCurrentTimestamp();

	incident_start(&key, detail, &pos, edata, "user_raised",
				   item->event_type);
	ig_json_member(detail, IG_DETAIL_LEN, &pos, "raised_in",
				   edata->funcname, 64);
	/* what the raising code claimed, as it claimed it */
	ig_json_member(detail, IG_DETAIL_LEN, &pos, "claimed_schema",
				   edata->schema_name, NAMEDATALEN);
	ig_json_member(detail, IG_DETAIL_LEN, &pos, "claimed_table",
				   edata->table_name, NAMEDATALEN);
	ig_json_member(detail, IG_DETAIL_LEN, &pos, "claimed_constraint",
				   edata->constraint_name, NAMEDATALEN);
	ig_json_member(detail, IG_DETAIL_LEN, &pos, "statement",
				   debug_query_string, 256);
	detail[pos++] = '}';
	detail[pos] = '\0';

	ig_queue_push(&key, detail, 1, now, now);
}

/*
 * What tells apart errors that name no table: the error (SQLSTATE and
 * message) and the statement's shape.  The shape is the server's query
 * identifier when it computes one (compute_query_id), else the statement
 * text with its constants masked and its white space folded, so that a
 * flood of statements that differ only in their values is one incident (a
 * few of the texts stay as samples).  Fixed buffers only: this runs inside
 * error reporting.  Never 0 (that asks ig_queue_push to hash the detail).
 */
static uint32
statement_shape(const ErrorData *edata)
{
	char		buf[1024];
	size_t		n = 0;
	const char *p = debug_query_string ? debug_query_string : "";
	uint64		queryid = pgstat_get_my_query_id();
	uint32		h;

	h = hash_bytes_uint32((uint32) edata->sqlerrcode);
	if (edata->message)
		h = hash_combine(h, hash_bytes((const unsigned char *) edata->message,
									   strlen(edata->message)));
	if (queryid != 0)
		return hash_combine(h, hash_bytes_uint32((uint32) (queryid ^ (queryid >> 32)))) | 1;

	while (*p != '\0' && n < sizeof(buf) - 2)
	{
		bool		word = n > 0 && (isalnum((unsigned char) buf[n - 1]) ||
									 buf[n - 1] == '_');

		if (*p == '\'')
		{
			/* a string constant, '' inside it included */
			for (p++; *p != '\0'; p++)
				if (*p == '\'' && *++p != '\'')
					break;
			buf[n++] = '?';
		}
		else if (isdigit((unsigned char) *p) && !word)
		{
			while (isalnum((unsigned char) *p) || *p == '.' || *p == '_')
				p++;
			buf[n++] = '?';
		}
		else if (isspace((unsigned char) *p))
		{
			while (isspace((unsigned char) *p))
				p++;
			buf[n++] = ' ';
		}
		else
			buf[n++] = *p++;
	}
	return hash_combine(h, hash_bytes((const unsigned char *) buf, n)) | 1;
}

static void
capture(ErrorData *edata, const IgCaptureItem *item)
{
	IgEventKey	key;
	char		detail[IG_DETAIL_LEN];
	size_t		pos;
	bool		has_table = edata->table_name != NULL;
	TimestampTz now = GetCurrentTimestamp();

	if (raised_by_user(edata))
	{
		capture_user_raised(edata, item);
		return;
	}

	incident_start(&key, detail, &pos, edata, item->event_type,
				   edata->constraint_name ? edata->constraint_name :
				   edata->column_name);
	if (has_table)
	{
		ig_copy_bounded(key.schema_name, NAMEDATALEN, edata->schema_name);
		ig_copy_bounded(key.table_name, NAMEDATALEN, edata->table_name);
	}
	if (has_table)
	{
		/* the server's DETAIL carries the key values */
		if (ig_log_key_values)
			ig_json_member(detail, IG_DETAIL_LEN, &pos, "detail",
						   edata->detail, 400);

		/*
		 * A duplicate key: the same members as guard_unique records (the
		 * duplicate_keys view reads them), with mode=raise when the guard
		 * let this row through to the server's own check.
		 */
		if (edata->sqlerrcode == ERRCODE_UNIQUE_VIOLATION)
		{
			static const char prefix[] = "Key ";
			static const char suffix[] = " already exists.";
			size_t		dlen = edata->detail ? strlen(edata->detail) : 0;

			ig_json_member(detail, IG_DETAIL_LEN, &pos, "constraint",
						   edata->constraint_name, IG_TARGET_LEN);
			if (ig_unique_passed(edata->schema_name, edata->table_name))
				ig_json_member(detail, IG_DETAIL_LEN, &pos, "mode",
							   "raise", 5);
			if (ig_log_key_values &&
				dlen > strlen(prefix) + strlen(suffix) &&
				strncmp(edata->detail, prefix, strlen(prefix)) == 0 &&
				strcmp(edata->detail + dlen - strlen(suffix), suffix) == 0)
				ig_json_member(detail, IG_DETAIL_LEN, &pos, "key",
							   edata->detail + strlen(prefix),
							   dlen - strlen(prefix) - strlen(suffix));
		}
	}
	else
	{
		ig_json_member(detail, IG_DETAIL_LEN, &pos, "statement",
					   debug_query_string, 256);
		key.detail_hash = statement_shape(edata);
	}
	detail[pos++] = '}';
	detail[pos] = '\0';

	ig_queue_push(&key, detail, 1, now, now);
	if (edata->sqlerrcode == ERRCODE_UNIQUE_VIOLATION)
		ig_unique_captured++;
}

/*
 * The error hook (installed by _PG_init when preloading): every ERROR sent
 * to a client of a backend passes here.
 */
void
ig_capture_error(ErrorData *edata)
{
	static bool in_hook = false;

	if (!in_hook && edata->elevel == ERROR && edata->output_to_client &&
		MyBackendType == B_BACKEND && capture_list != NULL &&
		capture_list->n > 0 && !ig_queue_busy())
	{
		const IgCaptureItem *item = capture_match(edata->sqlerrcode);

		in_hook = true;
		if (item != NULL && !relayed_by_citus(edata))
		{
			/*
			 * guard_unique queued this attempt already.  Known by where it
			 * was raised, not by a flag: an error caught by an EXCEPTION
			 * block never comes here, and must not hide the next one.
			 */
			if (!(edata->sqlerrcode == ERRCODE_UNIQUE_VIOLATION &&
				  edata->funcname != NULL &&
				  strcmp(edata->funcname, IG_UNIQUE_RAISE_FUNC) == 0 &&
				  ig_durable_audit))
				capture(edata, item);
		}
		in_hook = false;
	}
}

/* Tell guard_unique whether the hook queues the server's 23505. */
static void
tell_unique(void)
{
	ig_unique_capture_on = capture_hooked &&
		capture_match(ERRCODE_UNIQUE_VIOLATION) != NULL;
}

/* The hook is installed: errors are captured from now on. */
void
ig_capture_hooked(void)
{
	capture_hooked = true;
	tell_unique();
}
