# integration: PGXS build.  `make test` and `make demo` install what a fresh Debian 12 machine lacks.

EXTENSION  = integration
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = $(EXTENSION)
OBJS       = $(patsubst %.c,%.o,$(wildcard src/*.c))
HEADERS    = $(wildcard src/*.h)

DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA       = $(wildcard sql/$(EXTENSION)--*--*.sql)

PG_CPPFLAGS = -DEXTVERSION=\"$(EXTVERSION)\" -Wall -Wextra -Werror \
              -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers
SHLIB_LINK  = -lcurl -lcrypto

EXTRA_CLEAN = $(DATA_built) test/receiver/receiver bench/curl_ceiling test/regress.key

# Tests on PostgreSQL's own harness, run by `make installcheck` after `make install`:
#   pg_regress            test/sql/*.sql     against expected/*.out
#   pg_isolation_regress  test/specs/*.spec  against expected/*.out
# Both look for a test's expected output under the output directory first (here the
# project, hence top-level expected/), then under --inputdir (test/).  A spec and a SQL
# file must therefore not share a name.  pg_regress looks for the test itself the same
# way, <outputdir>/sql/<name>.sql first: a test named like one of the extension's
# script parts in sql/ would run that part instead, so make installcheck refuses such a
# name (installcheck-names).  The library must be preloaded, which an existing
# server cannot be assumed to do, so each suite starts its own server (--temp-instance)
# with test/regress.conf, as pg_cron does; run it as a user initdb accepts (not root).
# The database is UTF8 with the C locale whatever the caller's environment.
# test/run (`make test`) runs these same lists through this same target.
REGRESS        = $(patsubst test/sql/%.sql,%,$(wildcard test/sql/*.sql))
REGRESS_OPTS   = --inputdir=test --temp-config=test/regress.conf --temp-instance=tmp_check
ISOLATION      = $(patsubst test/specs/%.spec,%,$(wildcard test/specs/*.spec))
ISOLATION_OPTS = --inputdir=test --outputdir=. --temp-config=test/regress.conf \
                 --temp-instance=tmp_check_iso
ENCODING       = UTF8
NO_LOCALE      = 1

# Prefer the PostgreSQL 15 pg_config; PG_CONFIG=... overrides.
PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)
PGXS      := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
all:
	@echo "PostgreSQL server headers (PGXS) not found: run 'make deps' or 'make test'" >&2; exit 1
endif

# PGXS tracks no header dependencies: rebuild every object when a header changes.
$(OBJS): $(HEADERS)

# One script from the schema and its parts, in this order.
EXTENSION_SQL = sql/$(EXTENSION).sql sql/platforms.sql sql/connectors.sql sql/platform_kinds.sql \
                sql/handlers.sql sql/calls.sql sql/sync.sql sql/openapi.sql sql/tenant_isolation.sql \
                sql/dump.sql
$(DATA_built): $(EXTENSION_SQL) $(EXTENSION).control
	cat $(EXTENSION_SQL) > $@

# The test lists, for test/run, which runs `make installcheck` once per suite.
.PHONY: test-lists
test-lists:
	@echo "REGRESS='$(REGRESS)'"
	@echo "ISOLATION='$(ISOLATION)'"

# PostgreSQL refuses to run as root, and so does initdb for --temp-instance.
installcheck: installcheck-not-root installcheck-names test/regress.key

# Tests that pg_regress would take from the extension's sql/ (see above).
REGRESS_SHADOWED = $(filter $(REGRESS),$(patsubst sql/%.sql,%,$(wildcard sql/*.sql)))
.PHONY: installcheck-names
installcheck-names:
	@if [ -n "$(strip $(REGRESS_SHADOWED))" ]; then \
		echo "make installcheck: test/sql/ has tests named like the extension's scripts in sql/" \
			"($(strip $(REGRESS_SHADOWED))), which pg_regress would run instead; rename the tests" >&2; \
		exit 1; \
	fi

# The key the servers of pg_regress and the isolation specs encrypt endpoint secrets
# with (test/regress.conf): made on first use by the user who runs the suites, readable
# by that user alone, as the server demands of integration.encryption_key_file.
test/regress.key:
	@umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >$@
.PHONY: installcheck-not-root
installcheck-not-root:
	@if [ "$$(id -u)" -eq 0 ]; then \
		echo "make installcheck: initdb cannot run as root; run it as an unprivileged user" \
			"in a tree that user can write, e.g. su postgres -c 'make installcheck'" >&2; \
		exit 1; \
	fi

test/receiver/receiver: test/receiver/receiver.c
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

bench/curl_ceiling: bench/curl_ceiling.c
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $< -lcurl

.PHONY: deps demo demo-sync test bench

deps:
	./scripts/install-deps

# The two commands README promises: each installs what is missing, builds and installs first.
demo: deps test/receiver/receiver
	$(MAKE) all
	$(MAKE) install
	./scripts/demo

# A second demo: a Shopify-compatible store (test/platforms) synced into a database.
demo-sync: deps
	$(MAKE) all
	$(MAKE) install
	./scripts/demo-sync

test: deps test/receiver/receiver
	$(MAKE) all
	$(MAKE) install
	./test/run

bench: deps
	$(MAKE) all
	$(MAKE) install
	./bench/run
