# Shop: build, test, run, bench, install.
#
#   make            build bin/shopd, bin/balancer, bin/ratelimitd
#   make test       unit, API, integration and browser tests (SANITIZE=1 for ASan+UBSan), then the
#                   suites that touch the database again on PostgreSQL
#   make test-postgres  only that PostgreSQL pass
#   make run        the whole stack in the foreground, balancer on :8080
#   make bench      wrk scenarios through the balancer and direct
#   make test-tls-scan  testssl.sh against the balancer's HTTPS port (slow: not in make test)
#   make install    PREFIX=/usr/local DESTDIR=...
#   make deps       install missing Debian and npm packages
#   make format     clang-format every C file; make format-check (part of make test) fails on any difference
#   make fresh-check  make run and make test in a fresh Debian 12 root (root, debootstrap)
#
# BUILD and BIN may be pointed elsewhere (make BUILD=/tmp/b BIN=/tmp/b/bin) so
# that several builds of one tree do not step on each other.

VERSION := 0.1.0
BUILD ?= build
BIN ?= bin
PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
V ?= 0
.SECONDEXPANSION:
Q := $(if $(filter 1,$(V)),,@)

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wno-unused-parameter
CFLAGS ?= -O2 -g
ifeq ($(SANITIZE),1)
CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
override BUILD := $(BUILD)-san
override BIN := $(BUILD)/bin
endif
# The libraries' flags come from build/config.mk, which tools/configure.sh writes
# from tools/libraries.list once tools/deps.sh has installed their packages: GNU
# make remakes an included file that is out of date and then reads the makefile
# again, so the flags are computed after the install, never before. Goals that
# build nothing do not need it.
NO_CONFIG_GOALS := clean deps format format-check fuzz fresh-check
ifneq ($(filter-out $(NO_CONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
include $(BUILD)/config.mk
endif
$(BUILD)/config.mk: tools/configure.sh tools/libraries.list $(BUILD)/deps-build.stamp
	$(Q)CONFIGURE_CC="$(CC)" tools/configure.sh --make $@
$(BUILD)/deps-build.stamp: tools/deps.sh tools/libraries.list
	$(Q)tools/deps.sh build
	@mkdir -p $(dir $@) && touch $@

ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -DSHOP_VERSION='"$(VERSION)"' $(WARN) $(CFLAGS) $(PKG_CFLAGS) -I. -MMD -MP

# Each daemon is its folder: main.c holds main(), every other file goes into
# lib<daemon>.a so that unit tests link the modules without main().
DAEMONS := $(patsubst %/main.c,%,$(wildcard shopd/main.c balancer/main.c ratelimitd/main.c))
SHARED_SRC := $(wildcard shared/*.c)
SHARED_OBJ := $(SHARED_SRC:%.c=$(BUILD)/%.o)
daemon_src = $(filter-out $(1)/main.c,$(wildcard $(1)/*.c))
daemon_obj = $(patsubst %.c,$(BUILD)/%.o,$(call daemon_src,$(1)))
DAEMON_LIBS := $(DAEMONS:%=$(BUILD)/lib%.a)
BINARIES := $(DAEMONS:%=$(BIN)/%)

SUPPORT_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/support/*.c))
UNIT_TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
API_TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/api/test_*.c))
INTEGRATION_TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/integration/test_*.c))
TEST_BINS := $(UNIT_TESTS) $(API_TESTS) $(INTEGRATION_TESTS)
# The suites that touch the database run a second time on PostgreSQL: the unit tests
# of the modules on tests/support/test_db, every API suite, and the integration
# suites whose subject is the database (the outbox and the dispatcher, --check and
# the start's refusals, health, copying, two instances on one database) or the
# server of that pass. Process management (shopd_process, worker_memory,
# ratelimit_shopd) does not depend on the engine and runs once, keeping make test
# within its ten minutes.
PG_UNIT_TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(shell grep -l 'support/test_db.h' tests/unit/test_*.c))
PG_INTEGRATION := dispatcher db_health config_cli pg_server copy_database two_shops
PG_TEST_BINS := $(PG_UNIT_TESTS) $(API_TESTS) $(patsubst %,$(BUILD)/tests/integration/test_%,$(PG_INTEGRATION))

# libFuzzer targets: built by clang into their own tree (make fuzz-build), run by
# tools/fuzz.sh: replaying the committed corpus in make test, exploring in make fuzz.
FUZZ_BUILD := build/fuzz
FUZZ_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz-bin/%,$(wildcard tests/fuzz/fuzz_*.c))

.SECONDARY:
.PHONY: format-check fresh-check fuzz-build fuzz-targets all test test-postgres test-unit test-api test-integration test-e2e test-tls-scan test-tools test-fuzz fuzz deps run bench install clean format
all: $(BINARIES)

$(BUILD)/tests/%.o: ALL_CFLAGS += $(TEST_CFLAGS)
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libshared.a: $(SHARED_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/lib%.a: $$(call daemon_obj,$$*)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^ $(if $^,,$(BUILD)/shared/xalloc.o)

$(BIN)/%: $(BUILD)/%/main.o $(BUILD)/lib%.a $(BUILD)/libshared.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/libsupport.a: $(SUPPORT_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

# Tests link every daemon library: archives only pull in the modules a test uses.
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libsupport.a $(DAEMON_LIBS) $(BUILD)/libshared.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libsupport.a $(DAEMON_LIBS) $(BUILD)/libshared.a $(PKG_LIBS) $(TEST_LIBS)

fuzz-build:
	$(Q)$(MAKE) --no-print-directory SANITIZE= CC=clang BUILD=$(FUZZ_BUILD) CFLAGS="$(FUZZ_FLAGS)" fuzz-targets
fuzz-targets: $(FUZZ_BINS)
$(BUILD)/fuzz-bin/%: $(BUILD)/tests/fuzz/%.o $(DAEMON_LIBS) $(BUILD)/libshared.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS)

TEST_ENV = SHOP_ROOT=$(CURDIR) SHOP_BIN=$(abspath $(BIN)) SHOP_TEST_OUTPUT=$(CURDIR)/test-output

# The build before the tests uses every core: on a new clone it is a tenth of make test.
BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

test: deps
	$(Q)$(MAKE) -j$(BUILD_JOBS) --no-print-directory all $(TEST_BINS)
	$(Q)$(MAKE) -j$(BUILD_JOBS) --no-print-directory fuzz-build
	$(Q)rc=0; tools/format-check.sh || rc=1; python3 tools/include-cycles.py || rc=1; \
	$(TEST_ENV) tests/run.sh --fuzz --tools $(TEST_BINS) --postgres $(PG_TEST_BINS) || rc=1; exit $$rc

# The PostgreSQL pass of make test alone.
test-postgres: deps
	$(Q)$(MAKE) -j$(BUILD_JOBS) --no-print-directory all $(PG_TEST_BINS)
	$(Q)$(TEST_ENV) tests/run.sh --postgres $(PG_TEST_BINS)

test-unit: all $(UNIT_TESTS)
	$(Q)$(TEST_ENV) tests/run.sh --no-e2e $(UNIT_TESTS)
test-api: all $(API_TESTS)
	$(Q)$(TEST_ENV) tests/run.sh --no-e2e $(API_TESTS)
test-integration: all $(INTEGRATION_TESTS)
	$(Q)$(TEST_ENV) tests/run.sh --no-e2e $(INTEGRATION_TESTS)
test-e2e: all
	$(Q)$(TEST_ENV) tests/run.sh --only-e2e
test-tools: deps all
	$(Q)$(TEST_ENV) tests/run.sh --no-e2e --tools

test-tls-scan: all
	$(Q)tools/tls-scan.sh

deps:
	$(Q)tools/deps.sh

# exec: make's SIGTERM must reach run-stack.sh itself (make passes SIGTERM to its
# child; a shell in between would die and leave the stack running).
run: deps all
	$(Q)exec tools/run-stack.sh "$(BIN)"

bench: deps all
	$(Q)tools/bench.sh

fuzz: deps
	$(Q)tools/fuzz.sh

# make run and make test in a fresh Debian 12 root (debootstrap): see tools/fresh-check.sh.
fresh-check:
	$(Q)tools/fresh-check.sh

install: all
	$(Q)tools/install.sh "$(DESTDIR)" "$(PREFIX)" "$(BIN)"

format:
	$(Q)clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	$(Q)tools/format-check.sh

clean:
	rm -rf build build-san bin test-output

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
