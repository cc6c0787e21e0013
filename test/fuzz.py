#!/usr/bin/python3
"""The catalog-walking fuzzer of pg_integrity_guard, run by test/suites/fuzz.sh.

    /usr/bin/python3 test/fuzz.py CLUSTERDIR

Expects PGHOST/PGPORT of a running cluster with the library preloaded (the
suite's "# conf:" lines) and CLUSTERDIR/server.log, the server's log
(test/lib.sh: pg_ctl -l).  Prints one "ok - ..." / "not ok - ..." line per
property and, under a failing one, up to MAX_SHOWN "#   " lines naming the
offending calls (signature, arguments, outcome).

What it does:

- Setup: roles alice (owns tables in public: a guarded int counter table, a
  guarded parent with declared and undeclared children and a duplicates
  guard, a duplicates guard in raise mode, a range-guarded table with
  tstzrange columns, rows with duplicate keys, a partitioned guarded table, a
  view, a sequence, and one table mallory may SELECT but not write) and
  mallory (no privilege on alice's objects; a schema of its own with a
  counter/children/range-ish table m_items, its parent m_parents, and
  m_injected, a canary that only SQL injection through an argument could
  fill).
- The walk: every function and procedure that is a member of the extension
  (pg_depend deptype 'e') and that mallory may EXECUTE
  (has_function_privilege).  Nothing is listed by name, so a new function is
  covered without editing this file.  Skipped: functions returning trigger or
  event_trigger, which cannot be called from SQL as such.  They are called
  directly once each (the call must fail cleanly), and the trigger functions
  are also attached by mallory to its own table with fuzzed trigger
  arguments and fired by INSERT/UPDATE/DELETE.  Event trigger functions
  cannot be attached by mallory (CREATE EVENT TRIGGER needs a superuser).
- Arguments, per type (typ_values below): NULL, boundary numbers, NaN and
  infinities, empty/huge/multibyte/injection text, scalar/array/nested/huge
  jsonb, arrays with NULL elements, empty and 2-D arrays, OIDs and regclass
  of catalogs, of the extension's tables, of alice's and mallory's tables,
  and of nothing (0, 4294967295); polymorphic arguments with several
  concrete types.  Each argument varies alone from a plausible baseline (a
  hint by argument name naming mallory's own objects, else the argument's
  default, else the type's plausible value; the default is also one of the
  variations), plus the baseline and an all-NULL call.
- Passes: "rollback" (each call in its own transaction, rolled back),
  "commit" (the same calls of volatile functions and procedures, committed;
  procedures and argument-less functions are called outside a transaction
  block, as clients call them, so that procedures may COMMIT between
  batches and flush() waits), and
  "sql_ascii": the text-like arguments with invalid UTF-8 in a SQL_ASCII
  database, rolled back.  Invalid UTF-8 cannot be a text value in a UTF8
  database: the server rejects such a client string (SQLSTATE 22021) before
  any function runs, so a UTF8 pass would test the server only; a SQL_ASCII
  database stores any byte, which is where such bytes reach the extension
  (its names, its audit rows, and the shared stats other databases read).
- Every call has a statement_timeout; a watchdog cancels, then terminates, a
  call that does not return.

Properties (each one ok/not ok line, aggregated over all calls):
  (a) no crash: the postmaster keeps its start time, no backend is lost, the
      log has no crash lines;
  (b) no call ends with SQLSTATE class XX (internal_error, data_corrupted,
      index_corrupted) or 58 (system errors: 58P01/58P02/...), nor an
      assertion failure of the extension's PL/pgSQL (P0004); no call hangs;
  (c) nothing mallory could not change by hand changed: per call, the
      backend's tuple counters (pg_stat_get_xact_tuples_*, before and after
      the call in its transaction) of every table mallory cannot write and
      of the catalogs (then a snapshot of the catalog rows of objects
      mallory does not own); per pass, every row of every such table and
      sequence, and the stats reset time; the audit rows added (written or
      still queued) are mallory's, about tables mallory can write or on no
      table, and the rows that were there stay unchanged; no argument is
      run as SQL (mallory.injected(), called by the injection payloads,
      counts in a sequence that no rollback undoes);
  (d) the readers work afterwards for postgres and for mallory;
  (e) results match the documented contracts (saturating arithmetic, range
      constructors, min_value > max_value refused);
  (f) the audit keeps flushing: a canary incident reaches audit_log, no
      flush job failed.
"""
import decimal
import os
import re
import sys
import threading
import time

import psycopg2
import psycopg2.extensions

DIR = sys.argv[1]
SERVER_LOG = os.path.join(DIR, "server.log")
HOST = os.environ.get("PGHOST", "/tmp")
PORT = os.environ.get("PGPORT", "5432")
DB = "ig_fuzz"
ADB = "ig_fuzz_ascii"
STATEMENT_TIMEOUT_MS = 5000
HARD_TIMEOUT = 12          # seconds: the watchdog cancels, then terminates the backend
MAX_SHOWN = 30
BAD_SQLSTATE = re.compile(r"^(XX...|58...|P0004)$")
CRASH_LINE = re.compile(r"terminated by signal|was terminated by exception|"
                        r"terminating any other active server processes|"
                        r"all server processes terminated; reinitializing|PANIC:|TRAP:|stuck spinlock")
T0 = time.time()

psycopg2.extensions.register_type(psycopg2.extensions.UNICODE)


def sql_lit(s):
    return "'" + s.replace("'", "''") + "'"


def short(s, n=160):
    s = s.replace("\n", " ")
    return s if len(s) <= n else s[:n] + "..."


# --------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------
class Outcome:
    __slots__ = ("status", "sqlstate", "message", "rows")

    def __init__(self, status, sqlstate=None, message=None, rows=None):
        self.status = status        # ok, error, lost, undecodable
        self.sqlstate = sqlstate
        self.message = message
        self.rows = rows

    def describe(self):
        if self.status == "ok":
            if self.rows and len(self.rows[0]) == 2:
                return "returned %s row(s): %s" % (self.rows[0][0], short(str(self.rows[0][1]), 200))
            return "succeeded"
        if self.status == "error":
            return "ERROR %s: %s" % (self.sqlstate, short(self.message or "", 200))
        return "%s: %s" % (self.status, short(self.message or "", 200))


class Session:
    def __init__(self, user, db, encoding=None, appname="fuzz-setup"):
        self.user, self.db, self.encoding, self.appname = user, db, encoding, appname
        self.conn = None
        self.pid = None
        self.connect()

    def connect(self, wait=90):
        deadline = time.time() + wait
        while True:
            try:
                c = psycopg2.connect(host=HOST, port=PORT, user=self.user, dbname=self.db,
                                     application_name=self.appname,
                                     options="-c statement_timeout=%d -c lock_timeout=3000 "
                                             "-c client_min_messages=warning" % STATEMENT_TIMEOUT_MS)
                c.autocommit = True
                if self.encoding:
                    c.set_client_encoding(self.encoding)
                self.conn = c
                self.pid = c.get_backend_pid()
                return
            except psycopg2.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def alive(self):
        return self.conn is not None and self.conn.closed == 0

    def ensure(self):
        if not self.alive():
            self.connect()

    def q(self, sql, args=None, retry=True):
        """An administrative statement: raises on error, reconnects once if the server restarted."""
        try:
            self.ensure()
            with self.conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            if retry and not self.alive():
                self.connect()
                return self.q(sql, args, retry=False)
            raise

    def run(self, sql):
        """One fuzz statement: never raises."""
        WATCHDOG.arm(self)
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql)
                rows = cur.fetchall() if cur.description else []
            return Outcome("ok", rows=rows)
        except psycopg2.Error as e:
            if self.conn.closed or e.pgcode is None:
                return Outcome("lost", message=str(e).strip())
            msg = (e.pgerror or str(e)).strip()
            msg = re.sub(r"^ERROR:\s+", "", msg.splitlines()[0]) if msg else ""
            return Outcome("error", e.pgcode, msg)
        except UnicodeDecodeError as e:
            return Outcome("undecodable", message="the server sent text that is not valid %s: %s"
                           % (self.conn.encoding, e))
        finally:
            WATCHDOG.disarm()


class Watchdog(threading.Thread):
    """Cancels a fuzz statement that outlives HARD_TIMEOUT, then terminates its backend."""

    def __init__(self):
        super().__init__(daemon=True)
        self.lock = threading.Lock()
        self.session = None
        self.deadline = 0
        self.stage = 0
        self.fired = []

    def arm(self, session):
        with self.lock:
            self.session, self.deadline, self.stage = session, time.time() + HARD_TIMEOUT, 0

    def disarm(self):
        with self.lock:
            self.session = None

    def run(self):
        while True:
            time.sleep(0.25)
            with self.lock:
                s = self.session
                if s is None or time.time() < self.deadline:
                    continue
                if self.stage == 0:
                    self.stage, self.deadline = 1, time.time() + 5
                    self.fired.append((s.pid, "cancelled"))
                    try:
                        s.conn.cancel()
                    except Exception:
                        pass
                elif self.stage == 1:
                    self.stage, self.deadline = 2, time.time() + 3600
                    self.fired.append((s.pid, "terminated"))
                    try:
                        c = psycopg2.connect(host=HOST, port=PORT, user="postgres", dbname="postgres")
                        c.autocommit = True
                        c.cursor().execute("SELECT pg_terminate_backend(%s)", (s.pid,))
                        c.close()
                    except Exception:
                        pass


WATCHDOG = Watchdog()
WATCHDOG.start()


# --------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------
SETUP = r"""
CREATE EXTENSION pg_integrity_guard;
GRANT CREATE ON SCHEMA public TO alice;
SET ROLE alice;
CREATE TABLE public.alice_counters (id int PRIMARY KEY, n int NOT NULL DEFAULT 0,
    big bigint NOT NULL DEFAULT 0, small smallint NOT NULL DEFAULT 0);
INSERT INTO public.alice_counters
    SELECT g, 2147483600 + g, 9223372036854775000 + g, 32700 + g FROM generate_series(1, 5) g;
SELECT integrity_guard.guard_counter('public.alice_counters', ARRAY['n']);
UPDATE public.alice_counters SET n = n + 100;
CREATE TABLE public.alice_parent (id int PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE public.alice_child (id int PRIMARY KEY, parent_id int REFERENCES public.alice_parent, note text);
CREATE TABLE public.alice_note (id int PRIMARY KEY, parent_ref int);
INSERT INTO public.alice_parent SELECT g, 'p' || g FROM generate_series(1, 20) g;
INSERT INTO public.alice_child SELECT g, g, 'c' || g FROM generate_series(1, 10) g;
INSERT INTO public.alice_note SELECT g, g + 12 FROM generate_series(1, 12) g;
SELECT integrity_guard.guard_children('public.alice_parent',
    ARRAY['alice_child(parent_id)', 'alice_note(parent_ref)']);
SELECT integrity_guard.guard_duplicates('public.alice_parent', 'skip');
DELETE FROM public.alice_parent WHERE id = 20;
INSERT INTO public.alice_parent VALUES (1, 'p1');
CREATE TABLE public.alice_messages (message_id text PRIMARY KEY, body text);
SELECT integrity_guard.guard_duplicates('public.alice_messages');
INSERT INTO public.alice_messages VALUES ('m1', repeat('b', 5000)), ('m2', 'x');
CREATE TABLE public.alice_periods (id int PRIMARY KEY, started timestamptz NOT NULL, ended timestamptz,
    period tstzrange);
SELECT integrity_guard.guard_range('public.alice_periods', 'started', 'ended');
SELECT integrity_guard.guard_range('public.alice_periods', 'period'::name);
INSERT INTO public.alice_periods VALUES (1, '2024-01-02', '2024-01-01', '[2024-01-01,2024-01-02)'),
    (2, '2024-01-01', NULL, NULL);
CREATE TABLE public.alice_dups (id int PRIMARY KEY, k int, created timestamptz NOT NULL);
INSERT INTO public.alice_dups SELECT g, g % 3, '2024-01-01'::timestamptz + g * interval '1 h'
    FROM generate_series(1, 12) g;
CREATE TABLE public.alice_readable (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO public.alice_readable SELECT g, g FROM generate_series(1, 5) g;
GRANT SELECT ON public.alice_readable TO mallory;
CREATE TABLE public.alice_part (id int NOT NULL, n int NOT NULL DEFAULT 0) PARTITION BY RANGE (id);
CREATE TABLE public.alice_part_1 PARTITION OF public.alice_part FOR VALUES FROM (0) TO (100);
INSERT INTO public.alice_part SELECT g, 2147483647 - g FROM generate_series(1, 5) g;
SELECT integrity_guard.guard_counter('public.alice_part', ARRAY['n']);
CREATE SEQUENCE public.alice_seq;
SELECT setval('public.alice_seq', 9223372036854775000);
CREATE VIEW public.alice_view AS SELECT id, n FROM public.alice_counters;
RESET ROLE;
CREATE SCHEMA mallory AUTHORIZATION mallory;
SET ROLE mallory;
CREATE TABLE mallory.m_parents (id int PRIMARY KEY);
CREATE TABLE mallory.m_items (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, parent_id int, k int,
    started timestamptz, ended timestamptz, period tstzrange, big bigint NOT NULL DEFAULT 0);
INSERT INTO mallory.m_parents SELECT generate_series(1, 10);
INSERT INTO mallory.m_items
    SELECT g, 2147483600 + g, g, g % 4, '2024-01-01'::timestamptz + g * interval '1 d',
           '2024-01-02'::timestamptz + g * interval '1 d', NULL, g
    FROM generate_series(1, 14) g;
CREATE TABLE mallory.m_injected (note text);
CREATE SEQUENCE mallory.m_injected_seq;
-- Called only by an argument run as SQL: counts (non-transactionally, and
-- allowed in read-only code) and notes as whom it ran where it may write.
CREATE FUNCTION mallory.injected(tag text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM nextval('mallory.m_injected_seq');
    BEGIN
        INSERT INTO mallory.m_injected VALUES (tag || ' as ' || current_user);
    EXCEPTION WHEN others THEN NULL;
    END;
    RETURN 'n';
END $f$;
GRANT USAGE ON SCHEMA mallory TO PUBLIC;
GRANT INSERT ON mallory.m_injected TO PUBLIC;
GRANT USAGE ON SEQUENCE mallory.m_injected_seq TO PUBLIC;
RESET ROLE;
"""

# The SQL_ASCII database also gets a table of mallory whose name is not
# UTF-8, with an incident: its name reaches the audit and the shared stats.
SETUP_ASCII = r"""
SET ROLE mallory;
DO $$ BEGIN
  EXECUTE format('CREATE TABLE mallory.%I (id int PRIMARY KEY, n int NOT NULL)', E'm_\xff\xfe');
  EXECUTE format('INSERT INTO mallory.%I VALUES (1, 2147483600)', E'm_\xff\xfe');
  PERFORM integrity_guard.guard_counter(format('mallory.%I', E'm_\xff\xfe')::regclass, ARRAY['n']);
  EXECUTE format('UPDATE mallory.%I SET n = n + 100', E'm_\xff\xfe');
END $$;
RESET ROLE;
"""


def setup_databases():
    root = Session("postgres", "postgres")
    for db in (DB, ADB):
        root.q("DROP DATABASE IF EXISTS %s" % db)
    for r in ("mallory", "alice"):
        root.q("DROP ROLE IF EXISTS %s" % r)
    root.q("CREATE ROLE alice LOGIN")
    root.q("CREATE ROLE mallory LOGIN")
    root.q("CREATE DATABASE %s" % DB)
    root.q("CREATE DATABASE %s TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'" % ADB)
    root.conn.close()
    s = Session("postgres", DB)
    s.q(SETUP)
    s.conn.close()
    s = Session("postgres", ADB, encoding="LATIN1")
    s.q(SETUP)
    s.q(SETUP_ASCII)
    s.conn.close()


# --------------------------------------------------------------------------
# The catalog: functions, types, interesting objects
# --------------------------------------------------------------------------
FUNCS_SQL = r"""
SELECT p.oid, p.oid::regprocedure::text, format('%I.%I', n.nspname, p.proname), p.proname, p.prokind,
       p.prorettype, p.proretset, coalesce(p.proallargtypes, p.proargtypes::oid[]),
       p.proargmodes::text[], p.proargnames,
       ARRAY(SELECT pg_get_function_arg_default(p.oid, i)
             FROM generate_series(1, coalesce(cardinality(p.proallargtypes), p.pronargs)) i),
       has_function_privilege('mallory', p.oid, 'EXECUTE'), p.provolatile, p.proisstrict
FROM pg_depend d
JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_integrity_guard')
ORDER BY 2
"""


class Func:
    def __init__(self, row, types):
        (self.oid, self.signature, self.qualname, self.proname, self.prokind, self.rettype,
         self.retset, alltypes, modes, names, defaults, self.executable, self.volatility, self.strict) = row
        modes = modes or ["i"] * len(alltypes)
        names = names or [""] * len(alltypes)
        self.args = []      # (name, type oid, mode, default sql or None) of what a call passes
        for i, t in enumerate(alltypes):
            m = modes[i]
            if m == "t" or (m == "o" and self.prokind != "p"):
                continue
            self.args.append((names[i] if i < len(names) else "", t, m, defaults[i] if defaults else None))
        self.has_out = any(m in ("o", "b", "t") for m in modes)
        rt = types.get(self.rettype)
        self.rettypname = rt["typname"] if rt else "?"


class Catalog:
    def __init__(self, admin):
        self.admin = admin
        self.version = int(admin.q("SHOW server_version_num")[0][0])
        self.types = {}
        self.by_name = {}       # built-in types by name
        for oid, typname, typtype, typcat, typelem, typbase, typrelid, fmt, builtin in admin.q(
                "SELECT oid, typname, typtype, typcategory, typelem, typbasetype, typrelid, "
                "format_type(oid, NULL), typnamespace = 'pg_catalog'::regnamespace FROM pg_type"):
            self.types[oid] = dict(typname=typname, typtype=typtype, typcat=typcat, typelem=typelem,
                                   typbase=typbase, typrelid=typrelid, fmt=fmt)
            if builtin:
                self.by_name[typname] = oid
        self.range_of = {}      # subtype oid -> range type oid
        self.multirange_of = {}
        rows = admin.q("SELECT rngtypid, rngsubtype, %s FROM pg_range ORDER BY rngtypid"
                       % ("rngmultitypid" if self.version >= 140000 else "0"))
        for rng, sub, multi in rows:
            self.range_of.setdefault(sub, rng)
            self.multirange_of.setdefault(sub, multi)
        self.rng_subtype = {rng: sub for rng, sub, _ in rows}
        self.enum_labels = {}
        for t, label in admin.q("SELECT enumtypid, enumlabel FROM pg_enum ORDER BY enumsortorder"):
            self.enum_labels.setdefault(t, []).append(label)
        self.funcs = [Func(r, self.types) for r in admin.q(FUNCS_SQL)]
        # objects whose OIDs the generators use
        self.rel = dict(admin.q(r"""
            SELECT c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname IN ('public', 'mallory', 'integrity_guard')
               OR (n.nspname = 'pg_catalog' AND c.relname IN ('pg_class', 'pg_authid'))"""))
        toast = admin.q("SELECT reltoastrelid FROM pg_class WHERE oid = 'public.alice_messages'::regclass")
        self.rel["toast of alice_messages"] = toast[0][0]
        self.attnum = dict(((r, a), n) for r, a, n in admin.q(
            "SELECT attrelid::regclass::text, attname, attnum FROM pg_attribute "
            "WHERE attrelid IN ('mallory.m_items'::regclass, 'public.alice_counters'::regclass) AND attnum > 0"))
        self.some_func_oid = admin.q("SELECT 'integrity_guard.flush()'::regprocedure::oid")[0][0]
        self.mallory_weird = [o for (o,) in admin.q(
            "SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'mallory'::regnamespace "
            "AND c.relkind = 'r' AND c.relname !~ '^[a-z_]+$'")]

    def typ(self, oid):
        return self.types[oid]

    def fmt(self, oid):
        return self.types[oid]["fmt"]


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------
class Val:
    __slots__ = ("label", "sql", "py")

    def __init__(self, label, sql, py=Ellipsis):
        self.label, self.sql, self.py = label, sql, py     # py: Ellipsis when not known to Python
        if py is Ellipsis:
            m = re.match(r"^'?(-?\d+)'?(::(integer|bigint|smallint|int[248]))?$", sql.strip())
            if m:
                self.py = int(m.group(1))
            elif re.match(r"^NULL(::[a-z ]+)?$", sql.strip()):
                self.py = None


NULLV = Val("NULL", "NULL", None)
INT_BOUNDS = {"int2": (-2 ** 15, 2 ** 15 - 1), "int4": (-2 ** 31, 2 ** 31 - 1), "int8": (-2 ** 63, 2 ** 63 - 1)}
# SQL injection payloads for the quoting contexts an argument may land in:
# each calls mallory.injected() if it is ever run as SQL (property c).
INJECT = ["x' || mallory.injected('literal') || '",
          'n" || mallory.injected(\'identifier\') || "n',
          "mallory.injected('bare')",
          "(SELECT mallory.injected('subselect'))",
          "1) OR mallory.injected('paren') IS NOT NULL OR (1",
          "x'); SELECT mallory.injected('stacked'); --",
          "x$$ || mallory.injected('dollar') || $$"]


def v_text_list():
    vals = [NULLV, Val("''", "''", ""), Val("'x'", "'x'", "x"),
            Val("repeat('x', 100000)", "repeat('x', 100000)", "x" * 100000),
            Val("63 x 'a'", sql_lit("a" * 63), "a" * 63), Val("64 x 'a'", sql_lit("a" * 64), "a" * 64),
            Val("200 x 'é' (400 bytes)", "repeat('é', 200)", "é" * 200),
            Val("' '", "' '", " "), Val("'NULL'", "'NULL'", "NULL"), Val("'\"N\"'", "'\"N\"'", '"N"'),
            Val("'public.alice_counters'", "'public.alice_counters'"),
            Val("'integrity_guard.audit_log'", "'integrity_guard.audit_log'"),
            Val("'\\'", "'\\'", "\\"), Val("'%s%n'", "'%s%n'", "%s%n")]
    # the trigger argument language, naming alice's objects
    vals += [Val(sql_lit(x), sql_lit(x), x) for x in (
        "public.alice_child(parent_id)", "alice_note(parent_ref) = (id)", "public.alice_counters(n)",
        "n:0:10", "n:10:0", "action=delete", "on_inverted=error")]
    vals += [Val("injection %s" % sql_lit(s), sql_lit(s), s) for s in INJECT]
    return vals


class Gen:
    """Value generators by type, in the context of one database's objects."""

    def __init__(self, cat, incarnation_sql="(SELECT token FROM integrity_guard.database_incarnation)"):
        self.cat = cat
        self.inc = incarnation_sql
        self.composite_cache = {}
        r = cat.rel
        self.rel_values = [(name, r[name]) for name in (
            "m_items", "m_parents", "alice_counters", "alice_parent", "alice_child", "alice_note",
            "alice_messages", "alice_periods", "alice_dups", "alice_readable", "alice_part", "alice_part_1",
            "alice_view", "alice_seq", "alice_counters_pkey", "toast of alice_messages",
            "pg_class", "pg_authid", "audit_log", "audit_keys", "database_incarnation") if name in r]
        self.rel_values += [("mallory's table with a non-UTF-8 name", o) for o in cat.mallory_weird]
        self.rel_values += [("nonexistent 0", 0), ("nonexistent 4294967295", 4294967295),
                            ("function oid %d" % cat.some_func_oid, cat.some_func_oid)]

    # plausible values ---------------------------------------------------
    def plausible(self, t):
        ti = self.cat.typ(t)
        n = ti["typname"]
        if n in INT_BOUNDS or n in ("numeric", "float4", "float8"):
            return Val("1", "1", 1 if n in INT_BOUNDS else (decimal.Decimal(1) if n == "numeric" else 1.0))
        if n == "bool":
            return Val("false", "false", False)
        if n in ("text", "varchar", "bpchar", "name"):
            return Val("'n'", "'n'", "n")
        if n == "bytea":
            return Val("'\\x6e00' (n NUL)", "'\\x6e00'")
        if n in ("jsonb", "json"):
            return Val("'{}'", "'{}'")
        if n in ("timestamptz", "timestamp", "date"):
            return Val("'2024-01-01'", "'2024-01-01'")
        if n == "interval":
            return Val("'1 day'", "'1 day'")
        if n == "uuid":
            return Val("the database incarnation", self.inc)
        if n in ("oid", "regclass"):
            return Val("m_items (oid %d)" % self.cat.rel["m_items"], "'%d'::oid" % self.cat.rel["m_items"],
                       self.cat.rel["m_items"])
        if n == "regtype":
            return Val("int4", "'int4'::regtype")
        if n == "regrole":
            return Val("mallory", "'mallory'::regrole")
        if n == "regnamespace":
            return Val("mallory", "'mallory'::regnamespace")
        if ti["typtype"] == "r":
            return self.range_values(t)[3]
        if ti["typcat"] == "A" and ti["typelem"]:
            e = self.plausible(ti["typelem"])
            return Val("ARRAY[%s]" % e.label, "ARRAY[CAST(%s AS %s)]" % (e.sql, self.cat.fmt(ti["typelem"])),
                       [e.py] if e.py is not Ellipsis else Ellipsis)
        if ti["typtype"] == "c":
            return self.composite_values(t)[2]
        if ti["typtype"] == "d":
            return self.plausible(ti["typbase"])
        if ti["typtype"] == "e" and self.cat.enum_labels.get(t):
            lab = self.cat.enum_labels[t][0]
            return Val(sql_lit(lab), sql_lit(lab))
        return NULLV

    # all values ---------------------------------------------------------
    def values(self, t):
        ti = self.cat.typ(t)
        n = ti["typname"]
        if n in INT_BOUNDS:
            lo, hi = INT_BOUNDS[n]
            nums = [0, -1, 1, lo, hi]
            for l2, h2 in INT_BOUNDS.values():
                for x in (l2, h2):
                    if lo <= x <= hi and x not in nums:
                        nums.append(x)
            return [NULLV] + [Val(str(x), "'%d'" % x, x) for x in nums]
        if n == "numeric":
            nums = ["0", "-1", "1", "0.5", "-2.5", "9223372036854775807", "9223372036854775807.5",
                    "9223372036854775808", "-9223372036854775809", "NaN", "Infinity", "-Infinity",
                    "1e1000", "1e-1000"]
            return [NULLV] + [Val(x, "'%s'" % x, decimal.Decimal(x)) for x in nums]
        if n in ("float4", "float8"):
            nums = ["0", "-0", "-1", "1", "0.5", "2.5", "-2.5", "NaN", "Infinity", "-Infinity",
                    "9.2233720368547758e18", "-9.2233720368547758e18", "1e308", "4.9e-324", "1e19"]
            if n == "float4":
                nums = ["0", "-0", "-1", "1", "2.5", "NaN", "Infinity", "-Infinity", "3.4e38", "1e19"]
            return [NULLV] + [Val(x, "'%s'" % x, float(x)) for x in nums]
        if n == "bool":
            return [NULLV, Val("true", "true", True), Val("false", "false", False)]
        if n in ("text", "varchar", "bpchar"):
            return v_text_list()
        if n == "name":
            return [NULLV, Val("''", "''", ""), Val("'n'", "'n'", "n"), Val("'id'", "'id'", "id"),
                    Val("'period'", "'period'"), Val("'N'", "'N'"), Val("63 x 'a'", sql_lit("a" * 63)),
                    Val("repeat('x', 100000) (truncated to 63)", "repeat('x', 100000)"),
                    Val("40 x 'é' (truncated)", "repeat('é', 40)"),
                    Val("injection %s" % sql_lit(INJECT[1]), sql_lit(INJECT[1]))]
        if n == "bytea":
            return [NULLV, Val("'\\x' (empty)", "'\\x'"), Val("'\\x00'", "'\\x00'"),
                    Val("'\\x41' (no NUL terminator)", "'\\x41'"), Val("'\\x4100'", "'\\x4100'"),
                    Val("'\\x6e006e00'", "'\\x6e006e00'"), Val("'\\xff'", "'\\xff'"),
                    Val("100000 bytes 0x41, no NUL", "decode(repeat('41', 100000), 'hex')"),
                    Val("'\\x0000'", "'\\x0000'"),
                    Val("tgargs of alice_parent's guard",
                        "(SELECT tgargs FROM pg_trigger WHERE tgrelid = %d AND tgnargs > 0 LIMIT 1)"
                        % self.cat.rel["alice_parent"])]
        if n in ("jsonb", "json"):
            return [NULLV] + [Val(lab, sql) for lab, sql in (
                ("'null'", "'null'"), ("'0'", "'0'"), ("'1'", "'1'"), ("'-1'", "'-1'"), ("'1e400'", "'1e400'"),
                ("'\"s\"'", "'\"s\"'"), ("'\"\"'", "'\"\"'"), ("'true'", "'true'"), ("'[]'", "'[]'"),
                ("'{}'", "'{}'"), ("'[null]'", "'[null]'"), ("'{\"a\":null}'", "'{\"a\": null}'"),
                ("'{\"column\":\"n\"}'", "'{\"column\": \"n\"}'"),
                ("'{\"key\":..., \"samples\":...}'", "'{\"key\": {\"id\": 1}, \"samples\": [1], \"detail\": \"d\"}'"),
                ("array nested 2000 deep", "repeat('[', 2000) || repeat(']', 2000)"),
                ("object of 10000 keys",
                 "(SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 10000) g)::text"),
                ("string of 100000 chars", "to_jsonb(repeat('x', 100000))::text"),
                ("array of 100000 numbers", "(SELECT jsonb_agg(g) FROM generate_series(1, 100000) g)::text"))]
        if n in ("timestamptz", "timestamp"):
            return [NULLV] + [Val(x, sql_lit(x)) for x in (
                "2024-01-01", "2024-01-02", "infinity", "-infinity", "epoch",
                "4714-11-24 00:00:00+00 BC" if n == "timestamptz" else "4714-11-24 00:00:00 BC",
                "294276-12-31 23:59:59+00" if n == "timestamptz" else "294276-12-31 23:59:59")]
        if n == "date":
            return [NULLV] + [Val(x, sql_lit(x)) for x in (
                "2024-01-01", "2024-01-02", "infinity", "-infinity", "4714-11-24 BC", "5874897-12-31")]
        if n == "interval":
            iv = ["0", "1 day", "-1 day", "1 microsecond", "178000000 years", "-178000000 years"]
            if self.cat.version >= 170000:
                iv += ["infinity", "-infinity"]
            return [NULLV] + [Val(sql_lit(x), sql_lit(x)) for x in iv]
        if n == "uuid":
            return [NULLV, Val("nil uuid", "'00000000-0000-0000-0000-000000000000'"),
                    Val("the database incarnation", self.inc),
                    Val("ffffffff-... uuid", "'ffffffff-ffff-ffff-ffff-ffffffffffff'")]
        if n in ("oid", "regclass"):
            vals = [NULLV] + [Val("%s (oid %d)" % (name, o), "'%d'::oid" % o, o) for name, o in self.rel_values]
            if n == "oid":
                vals.append(Val("1", "'1'::oid", 1))
            return vals
        if n in ("regproc", "regprocedure"):
            return [NULLV, Val("0", "'0'::oid"), Val("4294967295", "'4294967295'::oid"),
                    Val("integrity_guard.flush()", "'%d'::oid" % self.cat.some_func_oid)]
        if n == "regtype":
            return [NULLV, Val("0", "'0'::oid")] + [Val(x, "'%s'::regtype" % x) for x in
                                                    ("int2", "int4", "int8", "numeric", "int4range",
                                                     "tstzrange", "text", "integrity_guard.audit_log")]
        if n == "regrole":
            return [NULLV, Val("0", "'0'::oid")] + [Val(x, "'%s'::regrole" % x) for x in ("alice", "mallory", "postgres")]
        if n == "regnamespace":
            return [NULLV, Val("0", "'0'::oid")] + [Val(x, "'%s'::regnamespace" % x) for x in
                                                    ("public", "pg_catalog", "integrity_guard", "mallory")]
        if ti["typtype"] == "r":
            return self.range_values(t)
        if ti["typtype"] == "m":
            return [NULLV, Val("'{}'", "'{}'")]
        if ti["typcat"] == "A" and ti["typelem"]:
            return self.array_values(t, self.plausible(ti["typelem"]))
        if ti["typtype"] == "c":
            return self.composite_values(t)
        if ti["typtype"] == "d":
            return self.values(ti["typbase"])
        if ti["typtype"] == "e":
            return [NULLV] + [Val(sql_lit(x), sql_lit(x)) for x in self.cat.enum_labels.get(t, [])]
        return [NULLV]

    def array_values(self, t, e):
        ti = self.cat.typ(t)
        et = ti["typelem"]
        ef = self.cat.fmt(et)
        es = "CAST(%s AS %s)" % (e.sql, ef)
        vals = [NULLV, Val("'{}' (empty)", "'{}'", []), Val("ARRAY[NULL]", "ARRAY[NULL::%s]" % ef, [None]),
                Val("ARRAY[%s]" % e.label, "ARRAY[%s]" % es), Val("ARRAY[%s, NULL]" % e.label, "ARRAY[%s, NULL]" % es),
                Val("ARRAY[%s, %s]" % (e.label, e.label), "ARRAY[%s, %s]" % (es, es)),
                Val("2-D ARRAY[[%s, %s], [%s, %s]]" % ((e.label,) * 4), "ARRAY[[%s, %s], [%s, %s]]" % ((es,) * 4)),
                Val("10000 x %s" % e.label, "array_fill(%s, ARRAY[10000])" % es)]
        if self.cat.typ(et)["typname"] in ("text", "name", "varchar"):
            vals.append(Val("'[5:5]={n}' (lower bound 5)", "'[5:5]={n}'"))
        for x in self.values(et)[1:9]:
            vals.append(Val("ARRAY[%s]" % x.label, "ARRAY[CAST(%s AS %s)]" % (x.sql, ef)))
        return vals

    def range_values(self, t):
        sub = self.cat.rng_subtype.get(t)
        sn = self.cat.typ(sub)["typname"] if sub else ""
        if sn in ("int4", "int8"):
            p = ["[1,10)", "[-2147483648,2147483647)", "[5,5]"]
        elif sn == "numeric":
            p = ["[1,10)", "[-Infinity,Infinity]", "[5,5]"]
        elif sn in ("timestamptz", "timestamp"):
            p = ["[2024-01-01,2024-01-02)", "[-infinity,infinity]", "[2024-01-01,2024-01-01]"]
        elif sn == "date":
            p = ["[2024-01-01,2024-01-02)", "[-infinity,infinity]", "[2024-01-01,2024-01-01]"]
        else:
            p = []
        vals = [NULLV, Val("'empty'", "'empty'"), Val("'(,)'", "'(,)'")]
        return vals + [Val(sql_lit(x), sql_lit(x)) for x in p] if p else vals + [Val("'(,)'", "'(,)'")]

    def composite_values(self, t):
        if t not in self.composite_cache:
            self.composite_cache[t] = self.make_composite_values(t)
        return self.composite_cache[t]

    def make_composite_values(self, t):
        ti = self.cat.typ(t)
        fields = self.cat.admin.q("SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s "
                                  "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (ti["typrelid"],))
        fmt = self.cat.fmt(t)
        hints = {"relid": "'%d'::oid" % self.cat.rel["m_items"], "schema_name": "'mallory'",
                 "table_name": "'m_items'", "event_type": "'counter_saturated'", "target": "'n'",
                 "occurrences": "1", "first_seen": "now()", "last_seen": "now()", "role_name": "'mallory'",
                 "database_name": "current_database()", "detail": "'{\"column\": \"n\"}'",
                 "rel_incarnation": self.inc, "key_columns": "'{2}'", "id": "1"}

        def row(over):
            parts = []
            for name, ft in fields:
                s = over.get(name, hints.get(name, self.plausible(ft).sql))
                parts.append("CAST(%s AS %s)" % (s, self.cat.fmt(ft)))
            return "CAST(ROW(%s) AS %s)" % (", ".join(parts), fmt)

        vals = [NULLV, Val("ROW(all NULL)", "CAST(ROW(%s) AS %s)" % (", ".join(
                    "NULL::%s" % self.cat.fmt(ft) for _, ft in fields), fmt)),
                Val("a row about m_items", row({}))]
        names = [f for f, _ in fields]
        for f, ft in fields:
            fn = self.cat.typ(ft)["typname"]
            if fn in ("oid", "regclass"):
                for name, o in self.rel_values:
                    if name in ("alice_counters", "alice_readable", "audit_log", "nonexistent 0",
                                "nonexistent 4294967295"):
                        vals.append(Val("row with %s = %s" % (f, name), row({f: "'%d'::oid" % o})))
            elif fn == "uuid":
                vals.append(Val("row with %s = nil uuid" % f, row({f: "'00000000-0000-0000-0000-000000000000'"})))
                vals.append(Val("row with %s = NULL" % f, row({f: "NULL"})))
            elif fn == "jsonb":
                vals.append(Val("row with %s = scalar" % f, row({f: "'1'"})))
                vals.append(Val("row with %s = key values" % f, row({f: "'{\"key\": {\"id\": 1}, \"samples\": [1]}'"})))
            elif fn == "_int2":
                vals.append(Val("row with %s = '{0,-1,32767}'" % f, row({f: "'{0,-1,32767}'"})))
        if "relid" in names and "schema_name" in names:
            vals.append(Val("row naming public.alice_counters with relid of m_items",
                            row({"schema_name": "'public'", "table_name": "'alice_counters'"})))
        return vals

    # ascii pass: invalid UTF-8 for text-like types ----------------------
    def ascii_values(self, t):
        ti = self.cat.typ(t)
        n = ti["typname"]
        raw = [("0xff", r"E'\xff'"), ("'a' 0x80 'b'", r"E'a\x80b'"), ("truncated 2-byte 0xc3", r"E'\xc3'"),
               ("truncated 3-byte 0xe2 0x82", r"E'\xe2\x82'"), ("surrogate 0xed 0xa0 0x80", r"E'\xed\xa0\x80'"),
               ("beyond U+10FFFF 0xf4 0x90 0x80 0x80", r"E'\xf4\x90\x80\x80'"), ("overlong 0xc0 0xaf", r"E'\xc0\xaf'"),
               ("100000 x 0xff", r"repeat(E'\xff', 100000)"), ("'n' 0xff", r"E'n\xff'")]
        if n in ("text", "varchar", "bpchar", "name"):
            return [Val("invalid UTF-8 " + lab, sql) for lab, sql in raw]
        if ti["typcat"] == "A" and self.cat.typ(ti["typelem"])["typname"] in ("text", "name", "varchar"):
            return [Val("ARRAY[invalid UTF-8 %s]" % lab, "ARRAY[%s]" % sql) for lab, sql in raw[:4]] + \
                   [Val("ARRAY['n', 0xc3]", r"ARRAY['n', E'\xc3']")]
        if n in ("jsonb", "json"):
            return [Val("json string 0xff", r"E'\"\xff\"'"), Val("json object {\"k\": 0xff}", r"E'{\"k\": \"\xff\"}'"),
                    Val("json key 0xff", r"E'{\"\xff\": 1}'"), Val("json '\\u00e9'", "'\"\\u00e9\"'"),
                    Val("json '\\ud800'", "'\"\\ud800\"'"), Val("json detail with 0xc3", r"E'{\"column\": \"\xc3\"}'")]
        if n == "bytea":
            return [Val("'\\xff00'", "'\\xff00'"), Val("'\\xc300'", "'\\xc300'")]
        return []


# --------------------------------------------------------------------------
# Argument hints: plausible values for mallory's own objects, by argument
# name (and type), used when the argument has no default.  Only for
# plausibility: an argument without a hint gets its type's plausible value.
# --------------------------------------------------------------------------
def hint(cat, proname, argname, typname, pos):
    r = cat.rel
    mi, mp = r["m_items"], r["m_parents"]
    attn = cat.attnum.get(("mallory.m_items", "n"), 2)
    attp = cat.attnum.get(("mallory.m_items", "period"), 7)
    if re.match(r"^_(ts|tstz|date)?range_guarded$", proname) and not argname:
        lower = {"date": "'2024-01-02'", "timestamp": "'2024-01-02'", "timestamptz": "'2024-01-02'"}
        seq = [None, None, "'[)'", "'clamp_upper'", "'%d'::oid" % mi, str(attp)]
        if pos < 2 and typname in lower:
            return "'2024-01-0%d'" % (2 - pos)
        if 2 <= pos < len(seq):
            return seq[pos]
        return None
    if proname.startswith(("duplicates", "merge_duplicates", "_merge_")) and argname == "columns":
        return "ARRAY['k']"
    if proname == "_attach":
        h = {"kind": "'counter'", "trigger_name": "'integrity_guard_counter'", "func": "'saturate_counter'",
             "args": "ARRAY['n']"}
        if argname in h:
            return h[argname]
    if proname == "_saturate":
        h = {"value": "5", "min_value": "0", "max_value": "10", "rel": "'%d'::oid" % mi, "col": str(attn)}
        if argname in h:
            return h[argname]
    regclass = {"rel": mi, "child": mi, "parent": mp}
    if argname in regclass and typname in ("regclass", "oid"):
        return "'%d'::oid" % regclass[argname]
    h = {"columns": "ARRAY['n']", "cols": "ARRAY['n']", "child_columns": "ARRAY['parent_id']",
         "parent_columns": "ARRAY['id']", "refs": "ARRAY['m_items(parent_id)']", "args": "ARRAY['n']",
         "parts": "ARRAY['n']", "range_column": "'period'", "lower_column": "'started'",
         "upper_column": "'ended'", "event": "'orphans_fixed'", "target": "'n'",
         "detail": "'{\"batches\": 1}'", "occurrences": "1", "kind": "'counter'",
         "guard": "'saturate_counter'", "trigger_name": "'integrity_guard_counter'",
         "func": "'saturate_counter'", "mode": "'skip'", "action": "'set_null'", "keep_order": "'id'",
         "on_child_conflict": "'delete'", "on_inverted": "'clamp_upper'", "bounds": "'[)'",
         "what": "'table'", "alias": "'x'", "prefix": "'integrity_guard_counter'",
         "statement": "'UPDATE mallory.m_items SET n = n + 1'", "table_name": "'m_items'",
         "spec": "'n:0:100'", "tgargs": "'\\x6e00'", "older_than": "'1 day'", "ratio": "0.5",
         "total": "10", "batch": "5", "batch_rows": "5", "batch_groups": "5", "can_commit": "false",
         "min_value": "0", "max_value": "10", "lower": "'2024-01-02'", "upper": "'2024-01-01'",
         "exact": "false", "a": "1", "b": "2", "value": "5"}
    if argname == "col":
        return "'n'" if typname in ("name", "text") else str(attn)
    return h.get(argname)


# --------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------
POLY_ELEMENT = ["int2", "int4", "int8", "numeric", "int4range", "tstzrange", "text", "timestamptz", "date"]
POLY = {"anyelement", "anynonarray", "anycompatible", "anycompatiblenonarray", "any", "anyarray",
        "anycompatiblearray", "anyrange", "anycompatiblerange", "anymultirange", "anycompatiblemultirange"}


class Call:
    __slots__ = ("id", "func", "vals", "types", "sql", "where", "poly")

    def describe(self):
        names = [a[0] or "$%d" % (i + 1) for i, a in enumerate(self.func.args)]
        args = ", ".join("%s => %s" % (n, v.label) for n, v in zip(names, self.vals))
        if not names:
            return self.func.signature
        return "%s(%s)%s" % (self.func.signature, args, " [%s]" % self.poly if self.poly else "")


def concrete_types(cat, func, elem):
    """Declared argument types with the polymorphic ones bound to element type elem."""
    out = []
    for _, t, _, _ in func.args:
        n = cat.typ(t)["typname"]
        if n not in POLY:
            out.append(t)
        elif n in ("anyarray", "anycompatiblearray"):
            out.append(cat.by_name.get("_" + cat.typ(elem)["typname"], elem))
        elif n in ("anyrange", "anycompatiblerange"):
            out.append(cat.range_of.get(elem, cat.by_name["int4range"]))
        elif n in ("anymultirange", "anycompatiblemultirange"):
            out.append(cat.multirange_of.get(elem) or cat.by_name.get("int4multirange", elem))
        else:
            out.append(elem)
    return out


def render(cat, func, vals, types):
    parts = []
    for (name, _, mode, _), v, t in zip(func.args, vals, types):
        parts.append("CAST(%s AS %s)" % (v.sql, cat.fmt(t)))
    args = ", ".join(parts)
    if func.prokind == "p":
        return "CALL %s(%s)" % (func.qualname, args)
    agg = "count(*), left(string_agg(coalesce(r::text, '<NULL>'), ' | '), 300)"
    if func.rettypname == "record" and not func.has_out:
        return "SELECT %s FROM (SELECT %s(%s)::text AS r) s" % (agg, func.qualname, args)
    return "SELECT %s FROM %s(%s) AS r" % (agg, func.qualname, args)


def build_calls(cat, gen, func, ascii_pass=False):
    """The calls for one function: baseline, one argument varied at a time, all-NULL."""
    calls = []
    seen = set()
    has_poly = any(cat.typ(t)["typname"] in POLY for _, t, _, _ in func.args)
    elems = [cat.by_name[e] for e in POLY_ELEMENT] if has_poly else [None]
    for elem in elems:
        types = concrete_types(cat, func, elem) if elem else [t for _, t, _, _ in func.args]
        poly = "polymorphic arguments as %s" % cat.typ(elem)["typname"] if elem else ""
        base = []
        for i, ((name, t, mode, default), ct) in enumerate(zip(func.args, types)):
            tn = cat.typ(ct)["typname"]
            if mode == "o":
                base.append(NULLV)
                continue
            h = hint(cat, func.proname, name, tn, i)
            if h is None and default is not None:
                base.append(Val("DEFAULT (%s)" % short(default, 40), default))
            elif h is not None:
                m = re.match(r"^'(\d+)'::oid$", h)
                names = {o: n for n, o in cat.rel.items()}
                label = "%s (oid %s)" % (names.get(int(m.group(1)), "?"), m.group(1)) if m else short(h, 60)
                base.append(Val(label, h))
            else:
                base.append(gen.plausible(ct))

        def add(vals, label=None):
            c = Call()
            c.func, c.vals, c.types, c.poly = func, list(vals), types, poly
            c.sql = render(cat, func, c.vals, types)
            if c.sql not in seen:
                seen.add(c.sql)
                calls.append(c)

        if not ascii_pass:
            add(base)
            add([NULLV] * len(base))
        for i, ((name, t, mode, _), ct) in enumerate(zip(func.args, types)):
            if mode == "o":
                continue
            vs = gen.ascii_values(ct) if ascii_pass else gen.values(ct)
            if not ascii_pass and func.args[i][3] is not None:
                vs = vs + [Val("DEFAULT (%s)" % short(func.args[i][3], 40), func.args[i][3])]
            if not ascii_pass and cat.typ(ct)["typcat"] == "A" and cat.typ(ct)["typelem"]:
                # arrays vary around the element the baseline holds
                b = base[i]
                m = re.match(r"^ARRAY\[(.*)\]$", b.sql)
                if m and "," not in m.group(1):
                    vs = gen.array_values(ct, Val(b.label[6:-1] if b.label.startswith("ARRAY[") else b.label,
                                                  m.group(1)))
            for v in vs:
                vals = list(base)
                vals[i] = v
                add(vals)
    return calls


# --------------------------------------------------------------------------
# Oracles: documented contracts (property e)
# --------------------------------------------------------------------------
def clamp(x, lo, hi):
    return lo if x < lo else hi if x > hi else x


def int_oracle(cat, call, out):
    """saturating_*, _sat_*, _numeric_int8_sat, _float8_int8_sat, _saturate: returns
    (expectation, problem) or None when no oracle applies."""
    f = call.func
    pn = f.proname
    py = [v.py for v in call.vals]
    if any(p is Ellipsis for p in py):
        return None
    ok = out.status == "ok"
    res = out.rows[0][1] if ok and out.rows and len(out.rows[0]) > 1 else None

    def expect_value(x):
        want = "<NULL>" if x is None else str(x)
        if not ok:
            return "%s (got an error)" % want if out.status == "error" else None
        return None if res == want else want

    def expect_error(code, why):
        if ok:
            return "an error %s (%s)" % (code, why)
        if out.status == "error" and code and out.sqlstate != code:
            return "SQLSTATE %s (%s), got %s" % (code, why, out.sqlstate)
        return None

    if f.strict and any(p is None for p in py):
        return None         # STRICT: the server returns NULL without calling it
    m = re.match(r"^saturating_(add|sub|mul)$", pn)
    if m and len(py) in (2, 4):
        op = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}[m.group(1)]
        rt = f.rettypname
        if rt not in INT_BOUNDS:
            return None
        lo, hi = INT_BOUNDS[rt]
        a, b = py[0], py[1]
        if len(py) == 4:
            mn, mx = py[2], py[3]
            if a is None or b is None:
                # NULL in, NULL out, as the server's operators
                if ok:
                    return expect_value(None)
                return None
            if mn is not None and mx is not None and mn > mx:
                return expect_error("22023", "min_value > max_value")
            elo, ehi = max(lo, mn if mn is not None else lo), min(hi, mx if mx is not None else hi)
            # a bound the result type cannot hold is refused (README, saturating_add)
            if (mn is not None and mn < lo) or (mx is not None and mx > hi):
                return expect_error("22003", "bounds outside the range of type %s" % rt)
            return expect_value(clamp(op(a, b), elo, ehi))
        if a is None or b is None:
            return expect_value(None)
        return expect_value(clamp(op(a, b), lo, hi))
    lo8, hi8 = INT_BOUNDS["int8"]
    m = re.match(r"^_sat_(add|sub|mul|div|neg|abs)$", pn)
    if m:
        if any(p is None for p in py):
            return expect_value(None)
        o = m.group(1)
        if o == "div":
            a, b = py
            if b == 0:
                return expect_error("22012", "division by zero")
            q = abs(a) // abs(b)
            x = q if (a < 0) == (b < 0) else -q
        else:
            x = {"add": lambda: py[0] + py[1], "sub": lambda: py[0] - py[1], "mul": lambda: py[0] * py[1],
                 "neg": lambda: -py[0], "abs": lambda: abs(py[0])}[o]()
        return expect_value(clamp(x, lo8, hi8))
    if pn == "_numeric_int8_sat" and len(py) == 1:
        x = py[0]
        if x is None:
            return expect_value(None)
        if x.is_nan():
            return expect_error(None, "NaN has no bigint value")
        if x.is_infinite():
            return expect_value(hi8 if x > 0 else lo8)
        r = int(x.quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP)) if abs(x) < 10 ** 30 else \
            (hi8 if x > 0 else lo8)
        return expect_value(clamp(r, lo8, hi8))
    if pn == "_float8_int8_sat" and len(py) == 1:
        x = py[0]
        if x is None:
            return expect_value(None)
        if x != x:
            return expect_error(None, "NaN has no bigint value")
        if x in (float("inf"), float("-inf")):
            return expect_value(hi8 if x > 0 else lo8)
        return expect_value(clamp(int(round(x)), lo8, hi8))
    if pn == "_saturate" and len(py) == 5:
        v, mn, mx = py[0], py[1], py[2]
        if v is None or mn is None or mx is None:
            return expect_value(None)
        if mn > mx:
            return expect_error("22023", "min_value > max_value")
        if ok:
            return expect_value(clamp(v, mn, mx))
        return None
    return None


def bounds_oracle(call, out):
    """Any function with arguments min_value and max_value: min_value > max_value is refused."""
    names = [a[0] for a in call.func.args]
    if "min_value" not in names or "max_value" not in names:
        return None
    mn = call.vals[names.index("min_value")].py
    mx = call.vals[names.index("max_value")].py
    if isinstance(mn, int) and isinstance(mx, int) and not isinstance(mn, bool) and mn > mx:
        other = [v for i, v in enumerate(call.vals) if names[i] not in ("min_value", "max_value")]
        if out.status == "ok" and not (call.func.proname.startswith("saturating_") and
                                       any(v.py is None for v in other[:2])):
            return "an error (min_value %d > max_value %d)" % (mn, mx)
    return None


RANGE_ORACLE = r"""
SELECT CASE WHEN b IS NULL OR b NOT IN ('[]', '[)', '(]', '()') THEN 'ERROR'
            WHEN l IS NULL OR u IS NULL OR l <= u THEN {rng}(l, u, b)::text
            WHEN p IS NULL OR p = 'clamp_upper' THEN {rng}(l, l, '[]')::text
            WHEN p = 'clamp_lower' THEN {rng}(u, u, '[]')::text
            WHEN p = 'swap' THEN (CASE WHEN isempty({rng}(u, l, b)) THEN {rng}(u, u, '[]')
                                       ELSE {rng}(u, l, b) END)::text
            ELSE 'ERROR' END
FROM (SELECT {l} AS l, {u} AS u, {b} AS b, {p} AS p OFFSET 0) s
"""


def range_oracle(cat, session, call, out):
    """*range_clamped(lower, upper, bounds, on_inverted): valid input gives the server's own range,
    an inverted pair the documented repair, 'error' (or an unknown policy) an error."""
    m = re.match(r"^(tstz|ts|date)range_clamped$", call.func.proname)
    if not m or len(call.vals) != 4 or out.status not in ("ok", "error"):
        return None
    sub = {"tstz": "timestamptz", "ts": "timestamp", "date": "date"}[m.group(1)]
    sql = RANGE_ORACLE.format(rng=m.group(1) + "range",
                              l="CAST(%s AS %s)" % (call.vals[0].sql, sub),
                              u="CAST(%s AS %s)" % (call.vals[1].sql, sub),
                              b="CAST(%s AS text)" % call.vals[2].sql, p="CAST(%s AS text)" % call.vals[3].sql)
    e = session.run(sql)
    if e.status != "ok":
        return None         # the oracle itself cannot say (e.g. invalid flags): no expectation
    want = e.rows[0][0]
    if want == "ERROR":
        return "an error" if out.status == "ok" else None
    if out.status == "error":
        return "%s (got an error)" % want
    got = out.rows[0][1] if out.rows and len(out.rows[0]) > 1 else None
    return None if got == want else want


# --------------------------------------------------------------------------
# Protected state (property c)
# --------------------------------------------------------------------------
# nextval() calls of the injection canary's sequence so far (is_called: the first one)
SEQ_COUNT = "last_value + is_called::int"
WATCHED_CATALOGS = ["pg_class", "pg_attribute", "pg_attrdef", "pg_trigger", "pg_constraint", "pg_proc",
                    "pg_event_trigger", "pg_policy", "pg_rewrite", "pg_index", "pg_namespace", "pg_authid",
                    "pg_auth_members", "pg_extension", "pg_database", "pg_db_role_setting",
                    "pg_default_acl", "pg_depend"]

# Catalog rows of objects mallory does not own, readable by mallory.
CATALOG_SNAPSHOT = r"""
WITH me AS (SELECT oid FROM pg_roles WHERE rolname = 'mallory'),
theirs AS (SELECT c.oid FROM pg_class c WHERE c.relowner <> (SELECT oid FROM me)),
user_theirs AS (SELECT c.oid FROM pg_class c
                WHERE c.relowner <> (SELECT oid FROM me)
                  AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace,
                                             'pg_toast'::regnamespace))
SELECT 'pg_class', c.oid::text, concat_ws('|', c.relname, c.relnamespace, c.relowner, c.relkind, c.relacl,
       c.relrowsecurity, c.relforcerowsecurity, c.relpersistence, c.reloptions, c.relfilenode, c.relhasrules,
       c.relispartition, c.relreplident, c.reltoastrelid, c.relhastriggers)
  FROM pg_class c WHERE c.oid IN (SELECT oid FROM theirs)
UNION ALL
SELECT 'pg_attribute', a.attrelid || '.' || a.attnum, concat_ws('|', a.attname, a.atttypid, a.atttypmod,
       a.attnotnull, a.atthasdef, a.attisdropped, a.attidentity, a.attgenerated, a.attacl, a.attstattarget,
       a.attoptions)
  FROM pg_attribute a WHERE a.attrelid IN (SELECT oid FROM user_theirs)
UNION ALL
SELECT 'pg_attrdef', d.adrelid || '.' || d.adnum, pg_get_expr(d.adbin, d.adrelid)
  FROM pg_attrdef d WHERE d.adrelid IN (SELECT oid FROM user_theirs)
UNION ALL
SELECT 'pg_trigger', t.tgrelid || '.' || t.tgname, concat_ws('|', t.tgfoid, t.tgtype, t.tgenabled,
       t.tgisinternal, t.tgargs, t.tgattr, t.tgdeferrable, t.tginitdeferred, t.tgoldtable, t.tgnewtable,
       md5(coalesce(t.tgqual::text, '')))
  FROM pg_trigger t WHERE t.tgrelid IN (SELECT oid FROM theirs)
UNION ALL
SELECT 'pg_constraint', co.conrelid || '.' || co.conname || '.' || co.contypid,
       concat_ws('|', co.contype, co.confrelid, co.condeferrable, co.condeferred, co.convalidated,
                 pg_get_constraintdef(co.oid))
  FROM pg_constraint co WHERE co.conrelid IN (SELECT oid FROM theirs) OR co.confrelid IN (SELECT oid FROM theirs)
UNION ALL
SELECT 'pg_proc', p.oid::text, concat_ws('|', p.proname, p.pronamespace, p.proowner, p.proacl, p.proconfig,
       p.prosecdef, p.provolatile, p.proisstrict, p.probin, md5(p.prosrc), p.proargtypes)
  FROM pg_proc p WHERE p.proowner <> (SELECT oid FROM me)
   AND p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
UNION ALL
SELECT 'pg_event_trigger', e.evtname, concat_ws('|', e.evtevent, e.evtowner, e.evtfoid, e.evtenabled, e.evttags)
  FROM pg_event_trigger e
UNION ALL
SELECT 'pg_policy', po.polrelid || '.' || po.polname, concat_ws('|', po.polcmd, po.polpermissive, po.polroles,
       md5(coalesce(po.polqual::text, '') || coalesce(po.polwithcheck::text, '')))
  FROM pg_policy po WHERE po.polrelid IN (SELECT oid FROM theirs)
UNION ALL
SELECT 'pg_rewrite', r.ev_class || '.' || r.rulename, concat_ws('|', r.ev_type, r.ev_enabled, r.is_instead,
       md5(r.ev_action::text))
  FROM pg_rewrite r WHERE r.ev_class IN (SELECT oid FROM user_theirs)
UNION ALL
SELECT 'pg_index', i.indexrelid::text, concat_ws('|', i.indrelid, i.indisunique, i.indisprimary,
       i.indisvalid, i.indisready, i.indislive, i.indkey)
  FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM user_theirs)
UNION ALL
SELECT 'pg_namespace', ns.oid::text, concat_ws('|', ns.nspname, ns.nspowner, ns.nspacl) FROM pg_namespace ns
 WHERE ns.nspname !~ '^pg_(toast_)?temp_'
UNION ALL
SELECT 'pg_roles', ro.oid::text, concat_ws('|', ro.rolname, ro.rolsuper, ro.rolinherit, ro.rolcreaterole,
       ro.rolcreatedb, ro.rolcanlogin, ro.rolreplication, ro.rolbypassrls, ro.rolconnlimit, ro.rolvaliduntil,
       ro.rolconfig)
  FROM pg_roles ro
UNION ALL
SELECT 'pg_auth_members', am.roleid || '.' || am.member, am.admin_option::text FROM pg_auth_members am
UNION ALL
SELECT 'pg_extension', x.extname, concat_ws('|', x.extowner, x.extnamespace, x.extversion, x.extconfig,
       x.extcondition, x.extrelocatable)
  FROM pg_extension x
UNION ALL
SELECT 'pg_database', db.datname, concat_ws('|', db.datacl, db.datallowconn, db.datconnlimit, db.datdba)
  FROM pg_database db
UNION ALL
SELECT 'pg_db_role_setting', s.setdatabase || '.' || s.setrole, s.setconfig::text FROM pg_db_role_setting s
UNION ALL
SELECT 'pg_default_acl', da.oid::text, concat_ws('|', da.defaclrole, da.defaclnamespace, da.defaclobjtype,
       da.defaclacl)
  FROM pg_default_acl da
"""
CATALOG_DIGEST = ("SELECT cat, md5(string_agg(k || '=' || coalesce(v, ''), E'\\n' ORDER BY k, v)) "
                  "FROM (%s) s(cat, k, v) GROUP BY cat" % CATALOG_SNAPSHOT)


class Guard:
    """What mallory must not be able to change, in one database."""

    def __init__(self, admin, mallory):
        self.admin = admin
        self.crashed = False
        self.protected = admin.q(r"""
            SELECT c.oid, format('%I.%I', n.nspname, c.relname), c.relkind
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'S')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
              AND NOT has_table_privilege('mallory', c.oid, 'INSERT,UPDATE,DELETE')
              AND NOT has_any_column_privilege('mallory', c.oid, 'INSERT,UPDATE')
              AND c.oid NOT IN ('integrity_guard.audit_log'::regclass, 'integrity_guard.audit_keys'::regclass,
                                'integrity_guard.audit_log_id_seq'::regclass)
              -- consent_children() writes mallory's own consents: checked with the audit
              AND c.oid IS DISTINCT FROM to_regclass('integrity_guard.children_consent')
            ORDER BY 2""")
        self.names = {o: n for o, n, _ in self.protected}
        cats = admin.q("SELECT oid, relname FROM pg_class WHERE relname = ANY(%s) "
                       "AND relnamespace = 'pg_catalog'::regnamespace", (WATCHED_CATALOGS,))
        self.catalogs = {o: n for o, n in cats}
        self.names.update(self.catalogs)
        self.canary = admin.q("SELECT 'mallory.m_injected'::regclass::oid")[0][0]
        self.names[self.canary] = "mallory.m_injected"
        watch = sorted(set(self.names))
        # The backend's tuple counters of the watched relations (pending ones of earlier transactions
        # included: a call's writes are the difference across it, within its transaction), and the
        # injection canary's sequence, as relid 0.
        self.xact_sql = ("SELECT r, pg_stat_get_xact_tuples_inserted(r) + pg_stat_get_xact_tuples_updated(r) "
                         "+ pg_stat_get_xact_tuples_deleted(r) FROM unnest('{%s}'::oid[]) r "
                         "WHERE pg_stat_get_xact_tuples_inserted(r) + pg_stat_get_xact_tuples_updated(r) "
                         "+ pg_stat_get_xact_tuples_deleted(r) > 0 "
                         "UNION ALL SELECT 0, %s FROM mallory.m_injected_seq" % (",".join(map(str, watch)), SEQ_COUNT))
        self.inject_seq = None
        self.catalog_base = self.catalog_digest(mallory)
        self.tables_base = self.table_state()

    def catalog_digest(self, session):
        o = session.run(CATALOG_DIGEST)
        return dict(o.rows) if o.status == "ok" else None

    def catalog_rows(self, session, cats):
        o = session.run("SELECT cat, k, v FROM (%s) s(cat, k, v) WHERE cat = ANY(ARRAY[%s])"
                        % (CATALOG_SNAPSHOT, ",".join(sql_lit(c) for c in cats)))
        return set(o.rows) if o.status == "ok" else set()

    def table_state(self):
        """Every row of every protected table and sequence, and the stats reset time: one query."""
        parts = []
        for oid, name, kind in self.protected:
            expr = "last_value::text || '/' || is_called::text" if kind == "S" else "t::text"
            parts.append("SELECT %s, %s FROM %s t" % (sql_lit(name), expr, name))
        parts.append("SELECT '(stats_reset time in integrity_guard.status())', coalesce(value, '') "
                     "FROM integrity_guard.status() WHERE name = 'stats_reset'")
        st = {name: [] for _, name, _ in self.protected}
        for name, row in self.admin.q(" UNION ALL ".join(parts)):
            st.setdefault(name, []).append(row)
        return {k: sorted(v) for k, v in st.items()}

    def table_diff(self):
        now = self.table_state()
        diffs = []
        for name, rows in self.tables_base.items():
            if name.startswith("(stats_reset") and self.crashed:
                continue    # the server crashed since: that resets the shared stats (documented)
            new = now.get(name, [])
            if new != rows:
                gone = sorted(set(rows) - set(new))[:3]
                added = sorted(set(new) - set(rows))[:3]
                diffs.append("%s changed: %d rows before, %d after; removed %s; added %s"
                             % (name, len(rows), len(new), [short(x, 80) for x in gone],
                                [short(x, 80) for x in added]))
        self.tables_base = now
        self.crashed = False
        return diffs


# --------------------------------------------------------------------------
# The fuzzer
# --------------------------------------------------------------------------
class Fuzzer:
    def __init__(self):
        self.calls = {}             # id -> (pass, description)
        self.next_id = 1
        self.n_calls = {}           # pass -> count
        self.crashes = []           # (pass, description, detail)
        self.bad = []               # (b)
        self.hangs = []
        self.undecodable = []
        self.writes = []            # (c) per call
        self.injections = []
        self.contracts = []         # (e)
        self.crashed_sql = set()
        self.called = {}            # signature -> number of calls
        self.trigger_direct = []    # (signature, outcome)
        self.log_offset = os.path.getsize(SERVER_LOG)
        self.timing = {}
        self.guards = []
        self.histogram = {}
        self.prev_desc = None
        self.audit_seen = set()

    def new_id(self, pass_name, desc):
        i = self.next_id
        self.next_id += 1
        self.calls[i] = (pass_name, desc)
        self.n_calls[pass_name] = self.n_calls.get(pass_name, 0) + 1
        return i

    def log_since(self):
        with open(SERVER_LOG, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode("utf-8", "replace")

    def classify(self, pass_name, desc, out, session, sql):
        k = (pass_name, desc.split("(")[0] if not desc.startswith("CREATE TRIGGER") else
             "trigger " + desc.split(" EXECUTE FUNCTION ")[1].split("(")[0])
        h = self.histogram.setdefault(k, {})
        o = out.sqlstate if out.status == "error" else out.status
        h[o] = h.get(o, 0) + 1
        if out.status == "lost":
            killed = [f for f in WATCHDOG.fired if f[0] == session.pid]
            time.sleep(0.3)
            session.connect()
            if killed:
                self.hangs.append((pass_name, desc, "did not return within %ds; the watchdog %s its backend"
                                   % (HARD_TIMEOUT, " and ".join(k[1] for k in killed))))
            else:
                # the server says which process died and what it ran
                detail = "connection lost (%s)" % short(out.message, 80)
                log = self.log_since()
                m = None
                for m in re.finditer(r"server process \(PID \d+\) (was terminated by signal \d+[^\n]*|"
                                     r"exited with exit code \d+)", log):
                    pass
                if m:
                    detail = "the server process %s" % m.group(1)
                self.crashes.append((pass_name, desc, detail))
                self.crashed_sql.add(sql)
                for g in self.guards:
                    g.crashed = True    # a crash resets the shared stats (documented)
            return
        if out.status == "error":
            if out.sqlstate and BAD_SQLSTATE.match(out.sqlstate):
                self.bad.append((pass_name, desc, out.describe()))
            elif out.sqlstate == "57014":
                self.hangs.append((pass_name, desc, "cancelled by statement_timeout (%d ms)" % STATEMENT_TIMEOUT_MS))
        elif out.status == "undecodable":
            self.undecodable.append((pass_name, desc, out.message))

    def begin(self, session, guard, cid, pass_name):
        """BEGIN the call's transaction; returns the counters before the call.  The canary sequence
        read here tells whether the previous call ran an argument as SQL (it counts even when that
        call failed or was rolled back)."""
        sql = "BEGIN; SET LOCAL application_name = 'fuzz:%d'; %s" % (cid, guard.xact_sql)
        b = session.run(sql)
        if b.status != "ok":
            session.ensure()
            session.run("ROLLBACK")
            b = session.run(sql)
        before = dict(b.rows) if b.status == "ok" else {}
        self.poll_injection(guard, before.get(0), pass_name)
        return before

    def poll_injection(self, guard, seq, pass_name):
        if seq is None:
            return
        if guard.inject_seq is not None and seq > guard.inject_seq and self.prev_desc and \
                not any(i[1] == self.prev_desc[1] for i in self.injections[-3:]):
            self.injections.append((self.prev_desc[0], self.prev_desc[1],
                                    "an argument was run as SQL: mallory.injected() was called %d time(s)"
                                    % (seq - guard.inject_seq)))
        guard.inject_seq = seq

    def check_writes(self, pass_name, desc, session, guard, before):
        """Property c, per call, inside the call's transaction: counters after minus before."""
        w = session.run(guard.xact_sql)
        if w.status != "ok":
            return None
        cats = []
        for relid, n in w.rows:
            if relid == 0:
                continue
            n -= before.get(relid, 0)
            if n <= 0:
                continue
            name = guard.names.get(relid, str(relid))
            if relid == guard.canary:
                self.injections.append((pass_name, desc, "%d row(s) inserted into mallory.m_injected" % n))
            elif relid in guard.catalogs:
                cats.append(name)
            else:
                self.writes.append((pass_name, desc, "changed %d row(s) of %s" % (n, name)))
        if cats:
            now = guard.catalog_digest(session)
            if now is not None and now != guard.catalog_base:
                changed = sorted(c for c in set(now) | set(guard.catalog_base)
                                 if now.get(c) != guard.catalog_base.get(c))
                self.writes.append((pass_name, desc, "changed catalog rows of objects mallory does not own in %s"
                                    % ", ".join(changed)))
                return changed
        return None

    # one call --------------------------------------------------------------
    def run_call(self, pass_name, call, session, guard, autocommit, commit, oracles):
        desc = call.describe()
        cid = self.new_id(pass_name, desc)
        self.called[call.func.signature] = self.called.get(call.func.signature, 0) + 1
        session.ensure()
        if autocommit:
            session.run("SET application_name = 'fuzz:%d'" % cid)
            out = session.run(call.sql)
            self.classify(pass_name, desc, out, session, call.sql)
            session.ensure()
            session.run("RESET application_name")
            for d in guard.table_diff():
                self.writes.append((pass_name, desc, d))
            now = guard.catalog_digest(session)
            if now is not None and now != guard.catalog_base:
                changed = sorted(c for c in set(now) | set(guard.catalog_base)
                                 if now.get(c) != guard.catalog_base.get(c))
                self.writes.append((pass_name, desc, "changed catalog rows of objects mallory does not own in %s"
                                    % ", ".join(changed)))
                guard.catalog_base = now
            self.prev_desc = (pass_name, desc)
            seq = session.run("SELECT %s FROM mallory.m_injected_seq" % SEQ_COUNT)
            if seq.status == "ok":
                self.poll_injection(guard, seq.rows[0][0], pass_name)
            canary = session.run("SELECT count(*) FROM mallory.m_injected")
            if canary.status == "ok" and canary.rows[0][0]:
                self.injections.append((pass_name, desc, "mallory.m_injected has %d row(s)" % canary.rows[0][0]))
                session.run("DELETE FROM mallory.m_injected")
            return out
        before = self.begin(session, guard, cid, pass_name)
        self.prev_desc = (pass_name, desc)
        out = session.run(call.sql)
        self.classify(pass_name, desc, out, session, call.sql)
        if out.status == "ok":
            changed = self.check_writes(pass_name, desc, session, guard, before)
            if oracles:
                problem = bounds_oracle(call, out) or int_oracle(guard.cat, call, out) or \
                    range_oracle(guard.cat, session, call, out)
                if problem:
                    self.contracts.append((pass_name, desc, "%s, expected %s" % (out.describe(), problem)))
            if commit:
                c = session.run("COMMIT")
                if c.status != "ok":
                    self.classify(pass_name, desc + " (at COMMIT)", c, session, call.sql)
                elif changed:
                    guard.catalog_base = guard.catalog_digest(session)
            else:
                session.run("ROLLBACK")
        else:
            if out.status == "error" and oracles:
                problem = int_oracle(guard.cat, call, out) or range_oracle_after_error(guard.cat, session, call, out)
                if problem:
                    self.contracts.append((pass_name, desc, "%s, expected %s" % (out.describe(), problem)))
            session.ensure()
            session.run("ROLLBACK")
        return out

    # trigger functions ---------------------------------------------------
    def trigger_pass(self, cat, session, guard):
        trig = [f for f in cat.funcs if f.executable and f.rettypname in ("trigger", "event_trigger")]
        for f in trig:
            desc = "%s called directly" % f.signature
            cid = self.new_id("rollback", desc)
            out = session.run("SELECT %s()" % f.qualname)
            self.classify("rollback", desc, out, session, "")
            session.ensure()
            self.trigger_direct.append((f.signature, out))
            self.called[f.signature] = self.called.get(f.signature, 0) + 1
        big = "x" * 100000
        arglists = [[], [""], ["n"], ["n:0:10"], ["n:10:0"], ["n:abc:"], [":::"], ["nonexistent"], ["n", "n"],
                    ["N"], ["started", "ended"], ["started", "ended", "on_inverted=bogus"], ["period"],
                    ["started", "ended", "on_inverted=error"], ["parent_id"], ["m_items(parent_id)"],
                    ["public.alice_child(parent_id)"], ["public.alice_child(parent_id) = (id)"],
                    ["public.alice_note(parent_ref)", "action=delete"], ["action=delete"],
                    ["pg_catalog.pg_class(relnamespace)"], ["integrity_guard.audit_log(relid)", "action=delete"],
                    [big]] + [[x] for x in INJECT] + [["n", INJECT[0]], [INJECT[1], "action=delete"]]
        timings = ["BEFORE INSERT OR UPDATE OR DELETE ON mallory.m_items FOR EACH ROW",
                   "AFTER INSERT OR UPDATE OR DELETE ON mallory.m_items FOR EACH ROW",
                   "AFTER INSERT OR UPDATE OR DELETE ON mallory.m_items FOR EACH STATEMENT",
                   "AFTER DELETE ON mallory.m_items REFERENCING OLD TABLE AS o FOR EACH ROW"]
        fire = ["INSERT INTO mallory.m_items (id, n, parent_id, k, started, ended, period, big) VALUES "
                "(1000, 2147483647, 1, 1, '2024-01-02', '2024-01-01', '[2024-01-01,2024-01-02)', "
                "9223372036854775807)",
                "UPDATE mallory.m_items SET n = n, started = ended + interval '1 day' WHERE id <= 3",
                "DELETE FROM mallory.m_items WHERE id <= 3"]
        for f in trig:
            if f.rettypname != "trigger":
                continue    # event triggers: only a superuser may create them
            for timing in timings:
                for args in arglists:
                    label = "(%s)" % ", ".join(short(sql_lit(a), 40) if len(a) < 1000 else "repeat('x', %d)" % len(a)
                                               for a in args)
                    desc = "CREATE TRIGGER fz %s EXECUTE FUNCTION %s%s, then INSERT/UPDATE/DELETE" % (
                        timing, f.qualname, label)
                    cid = self.new_id("rollback", desc)
                    self.called[f.signature] = self.called.get(f.signature, 0) + 1
                    session.ensure()
                    before = self.begin(session, guard, cid, "rollback")
                    self.prev_desc = ("rollback", desc)
                    stmts = ["CREATE TRIGGER fz %s EXECUTE FUNCTION %s(%s)"
                             % (timing, f.qualname, ", ".join(sql_lit(a) for a in args))] + fire
                    for s in stmts:
                        out = session.run(s)
                        self.classify("rollback", desc, out, session, s)
                        if out.status != "ok":
                            break
                    if session.alive():
                        if out.status == "ok":
                            self.check_writes("rollback", desc, session, guard, before)
                        session.run("ROLLBACK")
        self.final_poll(session, guard, "rollback")

    def pass_calls(self, pass_name, cat, calls, session, guard, commit, oracles=False):
        for call in calls:
            if commit and call.sql in self.crashed_sql:
                continue        # crashed in the rollback pass already: reported there
            if commit and call.func.prokind != "p" and call.func.volatility != "v":
                # IMMUTABLE and STABLE functions: the server runs SQL and PL/pgSQL ones read-only and
                # C ones promise not to write, so committing adds nothing the rollback pass (whose
                # per-call checks see any write, and whose incidents survive the rollback) did not
                # observe.  The commit pass is for what volatile functions and procedures leave.
                continue
            no_args = all(a[2] == "o" for a in call.func.args)
            auto = commit and (call.func.prokind == "p" or no_args)
            t = time.time()
            self.run_call(pass_name, call, session, guard, auto, commit, oracles)
            k = (pass_name, call.func.signature)
            self.timing[k] = self.timing.get(k, 0) + time.time() - t
        self.final_poll(session, guard, pass_name)

    def final_poll(self, session, guard, pass_name):
        """The canary after the last call of a pass."""
        session.ensure()
        seq = session.run("SELECT %s FROM mallory.m_injected_seq" % SEQ_COUNT)
        if seq.status == "ok":
            self.poll_injection(guard, seq.rows[0][0], pass_name)


def range_oracle_after_error(cat, session, call, out):
    """After a failed *range_clamped call: the transaction is aborted, the oracle runs in a new one."""
    if not re.match(r"^(tstz|ts|date)range_clamped$", call.func.proname):
        return None
    session.ensure()
    session.run("ROLLBACK")
    return range_oracle(cat, session, call, out)


# --------------------------------------------------------------------------
# Audit (property c for audit_log, property f)
# --------------------------------------------------------------------------
def request_flush(admin):
    """flush() inside a transaction block asks for a flush job without waiting for it (a flush job that
    fails would keep a waiting flush() until statement_timeout: property b reports that)."""
    admin.q("BEGIN; SELECT integrity_guard.flush(); COMMIT")


def wait_queue_empty(admin, timeout=10):
    """Until this database's queued incidents are written; gives up when the queue stops shrinking."""
    deadline = time.time() + timeout
    best, since = None, time.time()
    while time.time() < deadline:
        try:
            request_flush(admin)
            n = admin.q("SELECT count(*) FROM integrity_guard._pending()")[0][0]
            if n == 0:
                return True
            if best is None or n < best:
                best, since = n, time.time()
            elif time.time() - since > 1.5:
                return False
        except psycopg2.Error:
            pass
        time.sleep(0.1)
    return False


AUDIT_ROWS = r"""
SELECT a.id, a.event_type, a.schema_name, a.table_name, a.relid, a.role_name, a.application_name, a.target,
       left(a.detail::text, 120),
       a.relid IS NOT NULL AND coalesce(has_table_privilege('mallory', a.relid, 'INSERT,UPDATE,DELETE')
                                        OR has_any_column_privilege('mallory', a.relid, 'INSERT,UPDATE'), false),
       CASE WHEN a.table_name IS NULL THEN NULL
            ELSE (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = a.schema_name AND c.relname = a.table_name) END,
       a.first_seen
FROM {source} a {where}
"""


CONSENT_OTHERS = r"""
SELECT coalesce(md5(string_agg(format('%s %s %s', c.parent::oid, c.child::oid, c.owner::oid), E'\n'
                               ORDER BY 1)), '')
FROM integrity_guard.children_consent c WHERE c.owner::text <> 'mallory'
"""
CONSENT_FOREIGN = r"""
SELECT format('%s -> %s', c.child, c.parent) FROM integrity_guard.children_consent c
WHERE c.owner::text = 'mallory'
  AND (SELECT r.relowner::regrole::text FROM pg_class r WHERE r.oid = c.child) IS DISTINCT FROM 'mallory'
"""


def consent_state(admin):
    """children_consent (1.3): the digest of other roles' consents, which mallory must never change."""
    if admin.q("SELECT to_regclass('integrity_guard.children_consent') IS NULL")[0][0]:
        return ""
    return admin.q(CONSENT_OTHERS)[0][0]


def audit_check(fz, admin, db, base_max, base_digest, pass_label):
    """Rows added since base_max (written, and still queued) must be mallory's about what mallory can write;
    consents: mallory's only for tables mallory owns, and nobody else's changed."""
    problems = []
    if consent_state(admin) != "":
        for (what,) in admin.q(CONSENT_FOREIGN):
            problems.append((pass_label, "%s children_consent: a consent in mallory's name for %s, "
                             "a table mallory does not own" % (db, what), ""))
    written = admin.q(AUDIT_ROWS.format(source="integrity_guard.audit_log", where="WHERE a.id > %d" % base_max))
    pending = admin.q(AUDIT_ROWS.format(source="integrity_guard._pending()", where=""))
    for rows, where in ((written, "audit_log"), (pending, "queued")):
        for (aid, ev, sch, tab, relid, role, app, target, detail, writable, named, first) in rows:
            key = (db, aid if aid is not None else (ev, relid, app, target, str(first)))
            if key in fz.audit_seen:
                continue        # reported after an earlier pass
            fz.audit_seen.add(key)
            why = None
            if role != "mallory":
                why = "recorded for role %s, not mallory (relid %s, %s.%s)" % (role, relid, sch, tab)
            elif relid is not None and not writable:
                why = "about relid %s (%s.%s), which mallory cannot write" % (relid, sch, tab)
            elif relid is None and named is not None:
                w = admin.q("SELECT has_table_privilege('mallory', %s, 'INSERT,UPDATE,DELETE') "
                            "OR has_any_column_privilege('mallory', %s, 'INSERT,UPDATE')", (named, named))
                if not w[0][0]:
                    why = "names %s.%s, which mallory cannot write (no relid)" % (sch, tab)
            if why:
                m = re.match(r"^fuzz:(\d+)$", app or "")
                origin = fz.calls.get(int(m.group(1)), ("?", "call %s" % app))[1] if m else \
                    "no fuzz call (application_name %s)" % app
                problems.append((pass_label, "%s row %s: %s %s, target=%s detail=%s"
                                 % (db + " " + where, aid if aid is not None else "-", ev, why,
                                    short(target or "", 40), detail), "from " + origin))
    digest = admin.q("SELECT md5(coalesce(string_agg(a::text || coalesce(k.key_values::text, ''), E'\\n' "
                     "ORDER BY a.id), '')) FROM integrity_guard.audit_log a "
                     "LEFT JOIN integrity_guard.audit_keys k ON k.id = a.id WHERE a.id <= %s", (base_max,))[0][0]
    digest += consent_state(admin)
    if digest != base_digest:
        problems.append((pass_label, "%s: audit rows recorded before the fuzz pass (id <= %d), or other "
                         "roles' consents, changed or were deleted" % (db, base_max), ""))
    return problems


def audit_base(admin):
    mx = admin.q("SELECT coalesce(max(id), 0) FROM integrity_guard.audit_log")[0][0]
    dg = admin.q("SELECT md5(coalesce(string_agg(a::text || coalesce(k.key_values::text, ''), E'\\n' "
                 "ORDER BY a.id), '')) FROM integrity_guard.audit_log a "
                 "LEFT JOIN integrity_guard.audit_keys k ON k.id = a.id WHERE a.id <= %s", (mx,))[0][0]
    return mx, dg + consent_state(admin)


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------
def report(name, items, fmt=None):
    """One line for a property; under a failure, the findings grouped by function and kind of outcome
    (first example in full, then how many more), at most MAX_SHOWN lines."""
    if fmt is None:
        fmt = lambda i: "%s: %s -> %s" % i
    if os.environ.get("IG_FUZZ_ALL"):
        with open(os.environ["IG_FUZZ_ALL"], "a") as f:
            f.write("== %s\n" % name)
            for i in items:
                f.write(fmt(i) + "\n")
    if not items:
        print("ok - %s" % name)
        return
    print("not ok - %s (%d finding%s)" % (name, len(items), "" if len(items) == 1 else "s"))
    groups = {}
    for i in items:
        head = i[1].split("(")[0] if len(i) > 1 else ""
        kind = re.sub(r"\d+|'[^']*'|\"[^\"]*\"", "#", str(i[-1]))[:60]
        groups.setdefault((head, kind), []).append(i)
    # one example per group first, then more examples of each in turn
    order, depth = [], 0
    while len(order) < min(MAX_SHOWN, len(items)):
        for g in groups.values():
            if depth < len(g) and len(order) < MAX_SHOWN:
                order.append(g[depth])
        depth += 1
    key = {id(i): n for n, i in enumerate(items)}
    for i in sorted(order, key=lambda i: key[id(i)]):
        print("#   " + fmt(i))
    if len(items) > len(order):
        print("#   ... and %d more (IG_FUZZ_ALL=FILE writes them all)" % (len(items) - len(order)))


def stage(what):
    """Progress lines, with IG_FUZZ_ALL only."""
    if os.environ.get("IG_FUZZ_ALL"):
        print("# %6.1fs %s" % (time.time() - T0, what))


def main():
    setup_databases()
    fz = Fuzzer()
    admin = Session("postgres", DB, appname="fuzz-admin")
    start_time = admin.q("SELECT pg_postmaster_start_time()")[0][0]
    mallory = Session("mallory", DB, appname="fuzz")
    cat = Catalog(admin)
    gen = Gen(cat)
    guard = Guard(admin, mallory)
    guard.cat = cat
    fz.guards.append(guard)
    print("# setup: %.1fs" % (time.time() - T0))
    wait_queue_empty(admin)
    base_max, base_digest = audit_base(admin)
    stage("setup done, audit queue empty")

    members = cat.funcs
    runnable = [f for f in members if f.executable and f.rettypname not in ("trigger", "event_trigger")]
    trig = [f for f in members if f.executable and f.rettypname in ("trigger", "event_trigger")]
    revoked = [f for f in members if not f.executable]
    calls = []
    for f in runnable:
        calls += build_calls(cat, gen, f)
    print("# %d members of the extension: %d functions/procedures mallory may execute, %d trigger/event "
          "trigger functions, %d revoked from mallory; %d calls per pass"
          % (len(members), len(runnable), len(trig), len(revoked), len(calls)))

    # pass 1: each call in its own transaction, rolled back
    t = time.time()
    fz.pass_calls("rollback", cat, calls, mallory, guard, commit=False, oracles=True)
    fz.trigger_pass(cat, mallory, guard)
    print("# rollback pass: %d calls in %.1fs" % (fz.n_calls.get("rollback", 0), time.time() - t))
    audit_problems = []
    tables = []
    wait_queue_empty(admin)
    audit_problems += audit_check(fz, admin, DB, base_max, base_digest, "rollback")
    stage("audit check")
    tables += [("rollback", "after the pass", d) for d in guard.table_diff()]

    # pass 2: the same calls, committed
    t = time.time()
    fz.pass_calls("commit", cat, calls, mallory, guard, commit=True)
    print("# commit pass: %d calls in %.1fs" % (fz.n_calls.get("commit", 0), time.time() - t))
    wait_queue_empty(admin)
    audit_problems += audit_check(fz, admin, DB, base_max, base_digest, "commit")
    stage("audit check")
    tables += [("commit", "after the pass", d) for d in guard.table_diff()]
    final_cat = guard.catalog_digest(mallory)
    stage("catalog snapshot")

    # pass 3: invalid UTF-8 in the text-like arguments, in a SQL_ASCII database
    t = time.time()
    aadmin = Session("postgres", ADB, encoding="LATIN1", appname="fuzz-admin")
    amallory = Session("mallory", ADB, encoding="LATIN1", appname="fuzz")
    acat = Catalog(aadmin)
    agen = Gen(acat)
    aguard = Guard(aadmin, amallory)
    aguard.cat = acat
    fz.guards.append(aguard)
    wait_queue_empty(aadmin)
    abase_max, abase_digest = audit_base(aadmin)
    stage("sql_ascii setup")
    acalls = []
    for f in acat.funcs:
        if f.executable and f.rettypname not in ("trigger", "event_trigger"):
            acalls += build_calls(acat, agen, f, ascii_pass=True)
    fz.pass_calls("sql_ascii", acat, acalls, amallory, aguard, commit=False)
    print("# sql_ascii pass: %d calls in %.1fs" % (fz.n_calls.get("sql_ascii", 0), time.time() - t))
    wait_queue_empty(aadmin)
    audit_problems += audit_check(fz, aadmin, ADB, abase_max, abase_digest, "sql_ascii")
    stage("audit check, sql_ascii")
    tables += [("sql_ascii", "after the pass", d) for d in aguard.table_diff()]

    # (f) the audit keeps flushing: a canary incident of mallory reaches audit_log in each database
    flush = []
    for adm, db, enc in ((admin, DB, None), (aadmin, ADB, "LATIN1")):
        m = Session("mallory", db, encoding=enc, appname="fuzz-canary")
        m.run("SELECT 2147483647 + 1")       # numeric_value_out_of_range: captured by default
        m.conn.close()
        got = False
        deadline = time.time() + 10
        while time.time() < deadline and not got:
            try:
                request_flush(adm)
                got = adm.q("SELECT count(*) FROM integrity_guard.audit_log "
                            "WHERE application_name = 'fuzz-canary'")[0][0] > 0
                if not got and not wait_queue_empty(adm, timeout=deadline - time.time()):
                    break       # the queue does not drain
            except psycopg2.Error:
                pass
        failures = adm.q("SELECT value, detail FROM integrity_guard.status() WHERE name = 'flush_failures'")
        if not got:
            nq = adm.q("SELECT count(*) FROM integrity_guard._pending()")[0][0]
            flush.append((db, "a canary incident of mallory (captured 22003) did not reach audit_log; "
                          "%d incidents still queued" % nq,
                          "status(): flush_failures = %s" % (" / ".join(map(str, failures[0])) if failures else "?")))
            for (_, ev, sch, tab, _, _, app, target, detail, _, _, _) in adm.q(
                    AUDIT_ROWS.format(source="integrity_guard._pending()",
                                      where="ORDER BY jsonb_typeof(a.detail) = 'object', a.first_seen LIMIT 5")):
                mm = re.match(r"^fuzz:(\d+)$", app or "")
                origin = fz.calls.get(int(mm.group(1)), ("?", app))[1] if mm else app
                flush.append((db, "still queued: %s on %s target=%s detail=%s"
                              % (ev, "%s.%s" % (sch, tab) if tab else "no table", short(target or "", 40), detail),
                              "from " + origin))
        elif failures and failures[0][0] not in ("0", None, ""):
            flush.append((db, "flush jobs failed: flush_failures = %s" % failures[0][0], failures[0][1]))
    logtext = fz.log_since()
    for line in sorted(set(re.findall(r"could not write queued incidents: [^\n]*", logtext)))[:5]:
        flush.append(("server log", line, ""))

    stage("canary done")
    # (d) readers, for postgres and mallory, in both databases
    readers = ["integrity_guard.events()", "integrity_guard.summary()", "integrity_guard.stats",
               "integrity_guard.status()", 'integrity_guard."check"()', "integrity_guard.recent_events",
               "integrity_guard.duplicate_keys", "integrity_guard.guards", "integrity_guard.queue_usage"]
    reader_problems = []
    for db, enc in ((DB, None), (ADB, "LATIN1")):
        for role in ("postgres", "mallory"):
            s = Session(role, db, encoding=enc, appname="fuzz-reader")
            for r in readers:
                stage("reader %s %s %s" % (db, role, r))
                o = s.run("SELECT x::text FROM %s x" % r)
                if o.status != "ok":
                    reader_problems.append((db, "SELECT * FROM %s as %s" % (r, role), o.describe()))
                s.ensure()
            s.conn.close()

    # (a) crash: the postmaster, the log
    stage("readers done")
    end_time = admin.q("SELECT pg_postmaster_start_time()")[0][0]
    crash_items = [(p, d, x) for p, d, x in fz.crashes]
    logtext = fz.log_since()
    crash_lines = [l for l in logtext.splitlines() if CRASH_LINE.search(l)]
    if end_time != start_time:
        crash_items.append(("-", "pg_postmaster_start_time changed", "%s -> %s" % (start_time, end_time)))
    for l in crash_lines:
        if "terminated by signal" in l or "PANIC" in l or "TRAP" in l:
            failed = re.search(re.escape(l) + r"\n[^\n]*DETAIL:\s+Failed process was running: ([^\n]*)", logtext)
            running = failed.group(1) if failed else ""
            if running and any(x.startswith(running[:900]) for x in fz.crashed_sql):
                continue    # the crash of a call reported above
            crash_items.append(("server log", short(l.split("] ", 1)[-1], 120),
                                "running: " + short(running, 200) if running else ""))
    final_cat_problems = []
    if final_cat is not None and final_cat != guard.catalog_base:
        final_cat_problems.append(("commit", "at the end", "catalog rows of objects mallory does not own changed"))

    # ----------------------------------------------------------------------
    not_called = [f.signature for f in runnable + trig if not fz.called.get(f.signature)]
    print("%s - walk: each of the %d functions and procedures of the extension that mallory may execute was "
          "called (%d calls: %s), and the %d trigger/event trigger functions directly and as mallory's triggers"
          "%s" % ("ok" if runnable and not not_called else "not ok", len(runnable), sum(fz.n_calls.values()),
                  ", ".join("%s %d" % kv for kv in sorted(fz.n_calls.items())), len(trig),
                  "" if not not_called else "; never called: " + ", ".join(not_called)))
    report("(a) no call crashed the server (postmaster start time unchanged, no crash in the log)",
           crash_items)
    direct_ok = [(sig, o.describe()) for sig, o in fz.trigger_direct
                 if o.status != "error" or BAD_SQLSTATE.match(o.sqlstate or "")]
    report("(a) trigger and event trigger functions called directly fail cleanly (%d functions)"
           % len(fz.trigger_direct), direct_ok, fmt=lambda i: "%s: %s" % i)
    report("(b) no call ended with an internal error (SQLSTATE XX000/XX001/XX002, 58xxx, P0004)", fz.bad)
    report("(b) no call ran past statement_timeout (%d ms) or hung" % STATEMENT_TIMEOUT_MS, fz.hangs)
    report("(b) every result reached the client as valid text in the database's encoding", fz.undecodable)
    report("(c) no call changed a row of a table mallory cannot write, or the catalog rows of objects mallory "
           "does not own (per call: the transaction's tuple counters, then the catalog rows)",
           fz.writes + tables + final_cat_problems)
    report("(c) audit rows added during the fuzz are mallory's own, about tables mallory can write or on no "
           "table, and earlier rows are unchanged", audit_problems)
    report("(c) no argument was run as SQL (the canary table mallory.m_injected stays empty)", fz.injections)
    report("(d) the readers work afterwards for postgres and mallory (events, summary, stats, status, check, "
           "views)", reader_problems)
    report("(e) results match the documented contracts (saturating arithmetic, NULL in NULL out, "
           "min_value > max_value refused, range constructors)", fz.contracts)
    report("(f) the audit keeps flushing: mallory's canary incident reaches audit_log, no flush job failed",
           flush)
    if os.environ.get("IG_FUZZ_ALL"):
        with open(os.environ["IG_FUZZ_ALL"], "a") as f:
            for (p, sig), t in sorted(fz.timing.items(), key=lambda kv: -kv[1]):
                f.write("time %s %s %.2fs\n" % (p, sig, t))
            for (p, fn), h in sorted(fz.histogram.items()):
                f.write("outcomes %s %s %s\n" % (p, fn, " ".join("%s:%d" % kv for kv in sorted(h.items()))))
    slow = sorted(fz.timing.items(), key=lambda kv: -kv[1])[:6]
    print("# slowest: " + "; ".join("%s %s %.1fs" % (p, sig, t) for (p, sig), t in slow))
    print("# fuzz.py took %.1fs" % (time.time() - T0))
    for s in (admin, mallory, aadmin, amallory):
        try:
            s.conn.close()
        except Exception:
            pass


if __name__ == "__main__":
    try:
        main()
    except Exception as e:      # a broken fuzzer is a failure, not silence
        import traceback
        traceback.print_exc(file=sys.stdout)
        print("not ok - the fuzzer ran to the end (%s: %s)" % (type(e).__name__, short(str(e), 200)))
