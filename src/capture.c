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

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "pg_integrity_guard.h"

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

#define IG_CAPTURE_DEFAULT \
	"unique_violation, foreign_key_violation, exclusion_violation, numeric_value_out_of_range, data_exception"

uint64		ig_captured_unique_violations = 0;
static bool capture_hooked = false;

static char *ig_capture_errors = NULL;
static IgCaptureList *capture_list = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

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

static bool
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

static void
ig_capture_assign(const char *newval, void *extra)
{
	capture_list = extra;
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
 * Append "key": "value" (JSON-escaped, at most maxlen bytes of value) to a
 * fixed buffer, never past its end.
 */
static void
json_member(char *buf, size_t size, size_t *pos, const char *key,
			const char *value, size_t maxlen)
{
	size_t		p = *pos;
	size_t		i;

	if (value == NULL)
		return;
	if (p + strlen(key) + 8 >= size)
		return;
	p += snprintf(buf + p, size - p, "%s\"%s\": \"", p > 1 ? ", " : "", key);
	i = 0;
	while (value[i] != '\0')
	{
		unsigned char c = (unsigned char) value[i];
		int			len = c < 0x80 ? 1 : pg_mblen(value + i);

		/*
		 * Whole characters only (the worker casts this to jsonb), and room
		 * left for the longest escape and the closing quote and brace.
		 */
		if (i + len > maxlen || p + Max(len, 6) + 3 >= size)
			break;
		if (c == '"' || c == '\\')
		{
			buf[p++] = '\\';
			buf[p++] = c;
		}
		else if (c < 0x20)
			p += snprintf(buf + p, size - p, "\\u%04x", c);
		else
		{
			memcpy(buf + p, value + i, len);
			p += len;
		}
		i += len;
	}
	buf[p++] = '"';
	buf[p] = '\0';
	*pos = p;
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

static void
ig_capture_user_raised(ErrorData *edata, const IgCaptureItem *item)
{
	IgEventKey	key;
	char		detail[IG_DETAIL_LEN];
	size_t		pos = 0;
	TimestampTz now = GetCurrentTimestamp();

	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.relid = InvalidOid;
	key.roleid = GetUserId();
	ig_copy_bounded(key.event_type, IG_TYPE_LEN, "user_raised");
	ig_copy_bounded(key.target, IG_TARGET_LEN, item->event_type);
	ig_copy_bounded(key.application_name, NAMEDATALEN, application_name);

	memset(detail, 0, sizeof(detail));
	detail[pos++] = '{';
	json_member(detail, IG_DETAIL_LEN, &pos, "sqlstate",
				unpack_sql_state(edata->sqlerrcode), 5);
	json_member(detail, IG_DETAIL_LEN, &pos, "message",
				edata->message, 200);
	json_member(detail, IG_DETAIL_LEN, &pos, "raised_in",
				edata->funcname, 64);
	/* what the raising code claimed, as it claimed it */
	json_member(detail, IG_DETAIL_LEN, &pos, "claimed_schema",
				edata->schema_name, NAMEDATALEN);
	json_member(detail, IG_DETAIL_LEN, &pos, "claimed_table",
				edata->table_name, NAMEDATALEN);
	json_member(detail, IG_DETAIL_LEN, &pos, "claimed_constraint",
				edata->constraint_name, NAMEDATALEN);
	json_member(detail, IG_DETAIL_LEN, &pos, "statement",
				debug_query_string, 256);
	detail[pos++] = '}';
	detail[pos] = '\0';

	ig_pipeline_push(&key, detail, 1, now, now);
}

static void
ig_capture(ErrorData *edata, const IgCaptureItem *item)
{
	IgEventKey	key;
	char		detail[IG_DETAIL_LEN];
	size_t		pos = 0;
	bool		has_table = edata->table_name != NULL;
	TimestampTz now = GetCurrentTimestamp();

	if (raised_by_user(edata))
	{
		ig_capture_user_raised(edata, item);
		return;
	}

	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.relid = InvalidOid;		/* no catalog access here: the writer binds */
	key.roleid = GetUserId();
	ig_copy_bounded(key.event_type, IG_TYPE_LEN, item->event_type);
	if (has_table)
	{
		ig_copy_bounded(key.schema_name, NAMEDATALEN, edata->schema_name);
		ig_copy_bounded(key.table_name, NAMEDATALEN, edata->table_name);
	}
	ig_copy_bounded(key.target, IG_TARGET_LEN,
					edata->constraint_name ? edata->constraint_name :
					edata->column_name);
	ig_copy_bounded(key.application_name, NAMEDATALEN, application_name);

	memset(detail, 0, sizeof(detail));
	detail[pos++] = '{';
	json_member(detail, IG_DETAIL_LEN, &pos, "sqlstate",
				unpack_sql_state(edata->sqlerrcode), 5);
	json_member(detail, IG_DETAIL_LEN, &pos, "message",
				edata->message, 200);
	if (has_table)
	{
		/* the server's DETAIL carries the key values */
		if (ig_log_key_values)
			json_member(detail, IG_DETAIL_LEN, &pos, "detail",
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

			json_member(detail, IG_DETAIL_LEN, &pos, "constraint",
						edata->constraint_name, IG_TARGET_LEN);
			if (ig_unique_passed(edata->schema_name, edata->table_name))
				json_member(detail, IG_DETAIL_LEN, &pos, "mode",
							"raise", 5);
			if (ig_log_key_values &&
				dlen > strlen(prefix) + strlen(suffix) &&
				strncmp(edata->detail, prefix, strlen(prefix)) == 0 &&
				strcmp(edata->detail + dlen - strlen(suffix), suffix) == 0)
				json_member(detail, IG_DETAIL_LEN, &pos, "key",
							edata->detail + strlen(prefix),
							dlen - strlen(prefix) - strlen(suffix));
		}
	}
	else
		json_member(detail, IG_DETAIL_LEN, &pos, "statement",
					debug_query_string, 256);
	detail[pos++] = '}';
	detail[pos] = '\0';

	ig_pipeline_push(&key, detail, 1, now, now);
	if (edata->sqlerrcode == ERRCODE_UNIQUE_VIOLATION)
		ig_captured_unique_violations++;
}

static void
ig_emit_log_hook(ErrorData *edata)
{
	static bool in_hook = false;

	if (!in_hook && edata->elevel == ERROR && edata->output_to_client &&
		MyBackendType == B_BACKEND && capture_list != NULL &&
		capture_list->n > 0 && !ig_pipeline_busy())
	{
		const IgCaptureItem *item = capture_match(edata->sqlerrcode);

		in_hook = true;
		if (item != NULL)
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
				ig_capture(edata, item);
		}
		in_hook = false;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * Will an error with this SQLSTATE, sent to a client of this backend, be
 * recorded by the hook?
 */
bool
ig_capture_covers(int sqlerrcode)
{
	return capture_hooked && MyBackendType == B_BACKEND &&
		capture_match(sqlerrcode) != NULL;
}

void
ig_capture_init(void)
{
	DefineCustomStringVariable("integrity_guard.capture_errors",
							   "Errors sent to clients that become audit incidents.",
							   "Condition names, SQLSTATEs or two-character classes, comma-separated; empty to capture nothing.  Needs shared_preload_libraries.",
							   &ig_capture_errors,
							   IG_CAPTURE_DEFAULT,
							   PGC_SUSET,
							   GUC_LIST_INPUT,
							   ig_capture_check, ig_capture_assign, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = ig_emit_log_hook;
	capture_hooked = true;
}
