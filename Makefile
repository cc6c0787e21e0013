# pg_integrity_guard — PGXS build
#
#   make && make install      build and install into the pg_config found on PATH
#   make test                 every test suite on throwaway clusters (test/run.sh)
#   make demo                 the guided demonstration (test/demo.sh)
#   make bench                the benchmarks (test/bench/run.sh)

EXTENSION = pg_integrity_guard
MODULE_big = pg_integrity_guard
OBJS = \
	src/util.o \
	src/settings.o \
	src/queue.o \
	src/audit_table.o \
	src/worker.o \
	src/incident.o \
	src/registry.o \
	src/counter.o \
	src/range.o \
	src/children.o \
	src/unique.o \
	src/repair.o \
	src/saturate.o \
	src/rewrite.o \
	src/capture.o \
	src/pg_integrity_guard.o

DATA = sql/pg_integrity_guard--1.0.sql sql/pg_integrity_guard--1.0--1.1.sql \
	sql/pg_integrity_guard--1.1--1.2.sql

# pg_regress suites (sql/NAME.sql, expected/NAME.out), run by test/run.sh
REGRESS = counter range guards audit cache bulk children children_diff children_diff_tx children_fire unique unique_upsert unique_diff rewrite \
	rewrite_paths rewrite_random rewrite_range rewrite_diff repair_orphans repair_merge repair_check \
	privs_internals privs_visibility catalog registry
REGRESS_OPTS = --inputdir=.

# PGXS test conventions, as contrib modules have them: `make installcheck`
# runs REGRESS, then ISOLATION, then the TAP tests, with the installation
# of PG_CONFIG; the first two against the server in PGHOST/PGPORT, the TAP
# tests on clusters of their own (PostgreSQL::Test::Cluster, from that
# installation's pgxs; never as root: initdb refuses it).  Naming pg_regress
# files on the command line (`make installcheck REGRESS="counter range"`)
# runs only the suites named there.  `make check` is not available with
# PGXS (pgxs.mk says so); `make test` is the throwaway-cluster run
# (doc/testing.md).
ifneq ($(origin REGRESS),command line)
# test/isolation/specs/NAME.spec with expected/NAME.out; every spec, as in test/run.sh
ISOLATION := $(sort $(basename $(notdir $(wildcard test/isolation/specs/*.spec))))
TAP_TESTS = 1
endif
ISOLATION_OPTS = --inputdir=test/isolation
PROVE_TESTS = test/tap/*.pl

# Warnings are errors.  -Wextra's unused-parameter is silenced: PostgreSQL's
# own headers (bufpage.h, ilist.h) and the fmgr calling convention trip it.
PG_CFLAGS += -Wall -Wextra -Werror -Wno-unused-parameter

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# rooms, bottom floor first (doc/design.md, "Layers"; test/layers.sh checks)
$(OBJS): $(wildcard src/*.h)

# Condition names for integrity_guard.capture_errors, from the server's own
# list (the one PL/pgSQL's names come from).
ERRCODES_TXT = $(shell $(PG_CONFIG) --sharedir)/errcodes.txt
src/ig_errcodes.h: $(ERRCODES_TXT)
	awk '$$2 == "E" && NF == 4 && $$3 ~ /^ERRCODE_/ { printf "\t{\"%s\", \"%s\"},\n", $$4, $$1 }' $< > $@
src/capture.o: src/ig_errcodes.h
EXTRA_CLEAN = src/ig_errcodes.h

.PHONY: test demo bench
test:
	bash test/run.sh
demo:
	bash test/demo.sh
bench:
	bash test/bench/run.sh
