"""N client processes insert random existing keys (1..KEYS) into TABLE for D
seconds and count the duplicate-key errors they receive.

    python3 storm_clients.py CLIENTS SECONDS TABLE KEYS [OPTIONS]

Prints the number of errors received.  OPTIONS is passed as the libpq
options (e.g. "-c integrity_guard.capture_errors=").  Connection from
PGHOST/PGPORT/PGUSER.
"""
import multiprocessing
import random
import sys
import time

import psycopg2
import psycopg2.errors
from psycopg2 import sql


def client(seconds, table, keys, options, results):
    conn = psycopg2.connect(dbname="bench", application_name="storm_clients",
                            options=options)
    conn.autocommit = True
    cur = conn.cursor()
    insert = sql.SQL("INSERT INTO {} (id) VALUES (%s)").format(sql.Identifier(table))
    errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            cur.execute(insert, (random.randint(1, keys),))
        except psycopg2.errors.UniqueViolation:
            errors += 1
    conn.close()
    results.put(errors)


def main():
    clients, seconds, table, keys = (int(sys.argv[1]), float(sys.argv[2]),
                                     sys.argv[3], int(sys.argv[4]))
    options = sys.argv[5] if len(sys.argv) > 5 else ""
    results = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client,
                                     args=(seconds, table, keys, options, results))
             for _ in range(clients)]
    for p in procs:
        p.start()
    total = sum(results.get() for _ in procs)
    for p in procs:
        p.join()
    print(total)


if __name__ == "__main__":
    main()
