"""N client processes insert an existing key for D seconds and count the
duplicate-key errors the server sends them, per table.

    python3 dup_clients.py CLIENTS SECONDS TABLE [TABLE ...]

Prints "TABLE ERRORS" per table.  Connection from PGHOST/PGPORT/PGUSER.
"""
import multiprocessing
import sys
import time

import psycopg2
import psycopg2.errors
from psycopg2 import sql


def client(seconds, tables, results):
    conn = psycopg2.connect(dbname="bench", application_name="dup_clients")
    conn.autocommit = True
    cur = conn.cursor()
    counts = dict.fromkeys(tables, 0)
    inserts = {t: sql.SQL("INSERT INTO {} (id) VALUES (1)").format(sql.Identifier(t))
               for t in tables}
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        table = tables[i % len(tables)]
        i += 1
        try:
            cur.execute(inserts[table])
        except psycopg2.errors.UniqueViolation:
            counts[table] += 1
    conn.close()
    results.put(counts)


def main():
    clients, seconds, tables = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    results = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client, args=(seconds, tables, results))
             for _ in range(clients)]
    for p in procs:
        p.start()
    totals = dict.fromkeys(tables, 0)
    for _ in procs:
        for table, n in results.get().items():
            totals[table] += n
    for p in procs:
        p.join()
    for table in tables:
        print(table, totals[table])


if __name__ == "__main__":
    main()
