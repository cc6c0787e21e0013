# pg_integrity_guard — PGXS build
#
#   make && make install      build and install into the pg_config found on PATH
#   make test                 every test suite on throwaway clusters (test/run.sh)
#   make demo                 the guided demonstration (test/demo.sh)
#   make bench                the benchmarks (test/bench/run.sh)

EXTENSION = pg_integrity_guard
MODULE_big = pg_integrity_guard
OBJS = \
	src/pg_integrity_guard.o \
	src/guard_cache.o \
	src/audit.o \
	src/counter.o \
	src/range.o \
	src/children.o \
	src/unique.o \
	src/saturate.o \
	src/rewrite.o

DATA = sql/pg_integrity_guard--1.0.sql

# pg_regress suites (sql/NAME.sql, expected/NAME.out), run by test/run.sh
REGRESS = counter range guards audit cache bulk children children_diff unique rewrite
REGRESS_OPTS = --inputdir=.

# Warnings are errors.  -Wextra's unused-parameter is silenced: PostgreSQL's
# own headers (bufpage.h, ilist.h) and the fmgr calling convention trip it.
PG_CFLAGS += -Wall -Wextra -Werror -Wno-unused-parameter

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): src/pg_integrity_guard.h

.PHONY: test demo bench
test:
	bash test/run.sh
demo:
	bash test/demo.sh
bench:
	bash test/bench/run.sh
