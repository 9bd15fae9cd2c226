# ctxvault - durable, private storage of user context.
#
#   make            build the programs (bin/) and the library
#   make deps       install missing Debian packages (apt-get; sudo if not root)
#   make check      every test, plain and under ASan+UBSan (installs nothing)
#   make run        build, run the pipeline under supervisord (instance in ./var),
#                   send the sample events, show them (KEEP=1 leaves it running)
#   make bench      the throughput and latency figures
#   make fuzz       every parser under libFuzzer (FUZZ_SECONDS each)
#   make memcheck   valgrind over the unit tests and a pipeline run
#   make coverage   line and branch coverage of lib/ and bin/ by the tests, per
#                   folder (gcovr, tools/coverage.py)
#   make powercut   the power-cut cases with many more cuts and states
#                   (POWERCUT_SEED, POWERCUT_POINTS, POWERCUT_STATES)
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build/plain
BINDIR  ?= bin
SAN     ?=

PKGS    = libczmq libzmq jansson libsodium sqlite3 libzstd libmicrohttpd
CC      ?= cc
WARN    = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 \
          -Wno-format-nonliteral
CFLAGS  ?= -O2 -g
# the session extension (the replay journal) is in Debian's libsqlite3;
# its declarations need these
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Ilib -Iinclude -I$(BUILD)/gen \
          -fno-omit-frame-pointer -DSQLITE_ENABLE_SESSION \
          -DSQLITE_ENABLE_PREUPDATE_HOOK
LDLIBS  = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lczmq -lzmq -ljansson -lsodium -lsqlite3 -lzstd -lmicrohttpd) -lpthread -lm
# quiet build lines unless V=1
ifeq ($(V),1)
Q =
say = @true
else
Q = @
say = @echo
endif

# The release build is hardened: fortified libc calls, stack canaries, a
# position-independent executable with full RELRO. The sanitizer builds
# leave it out (ASan replaces the same checks, and warns with FORTIFY).
HARDEN_CFLAGS  = -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fPIE
HARDEN_LDFLAGS = -pie -Wl,-z,relro,-z,now
ifeq ($(SAN),)
ALL_CFLAGS += $(HARDEN_CFLAGS)
LDFLAGS += $(HARDEN_LDFLAGS)
endif

ifeq ($(SAN),fuzz)
ALL_CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else ifneq ($(SAN),)
ALL_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

DEBS    = build-essential pkg-config libzmq3-dev libczmq-dev libjansson-dev \
          libsodium-dev libsqlite3-dev libzstd-dev libmicrohttpd-dev sqlite3 \
          shunit2 supervisor time jq curl python3
# Only `make bench` needs the peer. Kept apart because syslog-ng-core
# replaces the system's log daemon (rsyslog) on an ordinary host.
# Only `make fuzz` needs clang (libFuzzer comes with its compiler-rt).
FUZZ_DEBS = clang
BENCH_DEBS = syslog-ng-core syslog-ng-mod-sql libdbd-sqlite3 zstd
# Only `make coverage` needs gcovr (the summary of gcc's gcov data).
COV_DEBS = gcovr

PROGRAMS = ctxvault ctxvault-ingest ctxvault-encrypt ctxvault-store ctxvault-ttl-sweep \
           ctxvault-scrub ctxvault-backup ctxvault-metrics ctxvault-sync
BINS     = $(addprefix $(BINDIR)/,$(PROGRAMS))
LIB_SRCS = $(wildcard lib/*/*.c)
GEN_SRCS = $(BUILD)/gen/defaults.c
LIB_OBJS = $(patsubst lib/%.c,$(BUILD)/lib/%.o,$(LIB_SRCS)) $(BUILD)/gen/defaults.o
LIBA     = $(BUILD)/libctxvault.a
# ctxvault itself: a main with the command table, a file per area
CLI_SRCS = $(wildcard bin/ctxvault_cmd/*.c)
CLI_OBJS = $(patsubst bin/%.c,$(BUILD)/bin/%.o,$(CLI_SRCS))
UNIT_SRCS = $(wildcard tests/unit/*.c)
UNIT_OBJS = $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%.o,$(UNIT_SRCS))
UNIT_BIN = $(BUILD)/unit-tests
# fuzz targets (fuzz/): each also linked with fuzz/replay.c, a program
# that runs its corpus once, so make check keeps every crash found fixed
FUZZ_TARGETS = event policy envelope config request spool journal backup
FUZZ_REPLAY = $(addprefix $(BUILD)/fuzz-replay-,$(FUZZ_TARGETS))
TOOLS    = $(BUILD)/genevents $(BUILD)/cvsend $(BUILD)/cvproduce $(BUILD)/cvlatency $(BUILD)/cvflood \
           $(BUILD)/cvclient-example $(BUILD)/cvctxload $(BUILD)/cvclientcall $(BUILD)/cvsynctool

# the power-cut simulator (tests/powercut/README.md): the recording shim,
# loaded into programs with LD_PRELOAD, and the programs it is tried on.
# Never instrumented (SAN, --coverage, hardening): an ASan shim cannot be
# preloaded into other programs, and it must change nothing they do.
POWERCUT = $(BUILD)/powercut/shim.so $(BUILD)/powercut/pcut-selftest
PCUT_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -O2 -g

.PHONY: all deps bench-deps fuzz-deps memcheck check run bench install clean programs fuzz fuzzers coverage powercut
all: $(BINS) $(TOOLS)

programs: $(BINS) $(UNIT_BIN) $(TOOLS) $(FUZZ_REPLAY) $(POWERCUT)

$(BUILD)/gen/defaults.c: etc/ctxvault.conf etc/policy.conf tools/embed.sh
	@mkdir -p $(@D)
	{ sh tools/embed.sh etc/ctxvault.conf cv_default_config_text; \
	  sh tools/embed.sh etc/policy.conf cv_default_policy_text; } > $@.tmp && mv $@.tmp $@

# Each object depends on the headers it includes, as the compiler lists
# them (-MMD, into a .d file beside the object, or under $(BUILD)/dep for
# a program compiled and linked in one step); -MP keeps a removed header
# from breaking the build. Touching a header rebuilds only its includers.
DEPFLAGS = -MMD -MP
# (dep/ctxvault.d is left from when ctxvault was one source, bin/ctxvault.c:
# ignored, or a tree built before would look for that file)
DEPFILES = $(filter-out $(BUILD)/dep/ctxvault.d, \
           $(wildcard $(BUILD)/lib/*/*.d $(BUILD)/gen/*.d $(BUILD)/tests/unit/*.d \
           $(BUILD)/fuzz/*.d $(BUILD)/dep/*.d $(BUILD)/bin/*/*.d))
-include $(DEPFILES)
# for a program made from one source: its dependency file, named for it
depof = $(DEPFLAGS) -MF $(BUILD)/dep/$(notdir $@).d -MT $@

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(say) "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(BUILD)/lib/%.o: lib/%.c Makefile
	@mkdir -p $(@D)
	$(say) "  CC      $<$(if $(SAN), (asan))"
	$(Q)$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(LIBA): $(LIB_OBJS)
	$(say) "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BINDIR)/%: bin/%.c $(LIBA) Makefile
	@mkdir -p $(@D) $(BUILD)/dep
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(depof) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

$(BUILD)/bin/ctxvault_cmd/%.o: bin/ctxvault_cmd/%.c Makefile
	@mkdir -p $(@D)
	$(say) "  CC      $<$(if $(SAN), (asan))"
	$(Q)$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(BINDIR)/ctxvault: $(CLI_OBJS) $(LIBA)
	@mkdir -p $(@D)
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJS) $(LIBA) $(LDLIBS)

$(BUILD)/tests/unit/%.o: tests/unit/%.c Makefile
	@mkdir -p $(@D)
	$(say) "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/unit $(DEPFLAGS) -c -o $@ $<

$(UNIT_BIN): $(UNIT_OBJS) $(LIBA)
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(UNIT_OBJS) $(LIBA) $(LDLIBS)

$(BUILD)/genevents: tests/tools/genevents.c
	@mkdir -p $(@D) $(BUILD)/dep
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(depof) $(LDFLAGS) -o $@ $<

# test and bench tools that speak the wire protocol
$(BUILD)/cvsend $(BUILD)/cvproduce $(BUILD)/cvlatency $(BUILD)/cvflood: $(BUILD)/%: tests/tools/%.c $(LIBA)
	@mkdir -p $(@D) $(BUILD)/dep
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(depof) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

# the client library's example: only include/ctxvault/cvclient.h, linked as an
# application links it
$(BUILD)/cvclient-example: examples/cvclient-example.c $(LIBA)
	@mkdir -p $(@D) $(BUILD)/dep
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(depof) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

# the context API's load probe (make bench): like the example, only
# include/ctxvault/cvclient.h
$(BUILD)/cvctxload: tests/tools/cvctxload.c $(LIBA)
	@mkdir -p $(@D) $(BUILD)/dep
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(depof) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

# the test driver for the client calls no other program makes: like the
# example, only include/ctxvault/cvclient.h
$(BUILD)/cvclientcall: tests/tools/cvclientcall.c $(LIBA)
	@mkdir -p $(@D) $(BUILD)/dep
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(depof) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

# ctxvault-sync's seed and latency probe (tests and make bench)
$(BUILD)/cvsynctool: tests/tools/cvsynctool.c $(LIBA)
	@mkdir -p $(@D) $(BUILD)/dep
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(depof) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

$(BUILD)/powercut/shim.so: tests/powercut/shim.c Makefile
	@mkdir -p $(@D)
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(PCUT_CFLAGS) -fPIC -shared -o $@ $< -ldl -lpthread

$(BUILD)/powercut/pcut-selftest: tests/powercut/selftest.c Makefile
	@mkdir -p $(@D)
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(PCUT_CFLAGS) -o $@ $< -lpthread

# kept: the replay programs of make check and the fuzzers share them
.PRECIOUS: $(BUILD)/fuzz/%.o
$(BUILD)/fuzz/%.o: fuzz/%.c Makefile
	@mkdir -p $(@D)
	$(say) "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -Ifuzz $(DEPFLAGS) -c -o $@ $<

$(BUILD)/fuzz-replay-%: $(BUILD)/fuzz/fuzz_%.o $(BUILD)/fuzz/fuzzutil.o $(BUILD)/fuzz/replay.o $(LIBA)
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBA) $(LDLIBS)

# libFuzzer builds: clang, the library instrumented for coverage
$(BUILD)/fuzz-%: $(BUILD)/fuzz/fuzz_%.o $(BUILD)/fuzz/fuzzutil.o $(LIBA)
	$(say) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -fsanitize=fuzzer -o $@ $(filter %.o,$^) $(LIBA) $(LDLIBS)

fuzzers: $(addprefix $(BUILD)/fuzz-,$(FUZZ_TARGETS))

deps:
	@$(MAKE) --no-print-directory install-debs PKGLIST="$(DEBS)"

bench-deps: deps
	@$(MAKE) --no-print-directory install-debs PKGLIST="$(BENCH_DEBS)"

install-debs:
	@missing=""; for p in $(PKGLIST); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Every test, twice: a -Werror build, then an ASan+UBSan build. One summary.
# It installs nothing: `make deps` does (.ci/run and `make run` call it).
check:
	$(MAKE) -j2 programs
	$(MAKE) -j2 programs BUILD=build/asan BINDIR=build/asan/bin SAN=1
	@sh tests/run.sh --label plain bin $(BUILD)/unit-tests $(BUILD) > build/check-plain.log 2>&1; \
	  tail -n 1 build/check-plain.log | sed 's/^/plain: /'; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  sh tests/run.sh --label asan build/asan/bin build/asan/unit-tests build/asan > build/check-asan.log 2>&1; \
	  tail -n 1 build/check-asan.log | sed 's/^/asan: /'; \
	sh tests/summarise.sh build/check-plain.log build/check-asan.log

run: deps all
	sh tools/run-demo.sh

bench: bench-deps all
	sh tools/bench.sh

# make fuzz [FUZZ_SECONDS=75] [FUZZ_ONLY="event spool"]: each target for
# FUZZ_SECONDS; a crash is kept in build/fuzz/crashes (see fuzz/README.md)
fuzz: fuzz-deps
	$(MAKE) fuzzers BUILD=build/fuzz BINDIR=build/fuzz/bin SAN=fuzz CC=clang
	sh tools/fuzz.sh build/fuzz $(or $(FUZZ_ONLY),$(FUZZ_TARGETS))

# make memcheck: valgrind over the unit tests and one pipeline run
memcheck: deps all $(UNIT_BIN)
	@$(MAKE) --no-print-directory install-debs PKGLIST=valgrind
	sh tools/memcheck.sh $(BUILD) $(BINDIR)

# make powercut: tests/shell/test_powercut_cases.sh with POWERCUT_POINTS
# (default 40) random cuts per case besides every sync point, each in
# POWERCUT_STATES (4) random states besides "all dropped" and "all kept";
# POWERCUT_SEED (default: a new one, printed) draws them. The suite's
# output is in build/powercut.log; the last line sums every case but the
# one meant to fail (synchronous = normal)
powercut:
	$(MAKE) -j2 programs
	@seed=$${POWERCUT_SEED:-$$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}; \
	  echo "POWERCUT_SEED=$$seed (build/powercut.log)"; \
	  : > build/powercut.tally; : > build/powercut.results; \
	  POWERCUT_SEED=$$seed POWERCUT_POINTS=$${POWERCUT_POINTS:-40} \
	  POWERCUT_STATES=$${POWERCUT_STATES:-4} POWERCUT_TALLY=$(CURDIR)/build/powercut.tally \
	  CV_BIN=$(abspath $(BINDIR)) CV_BUILD=$(abspath $(BUILD)) CV_TOP=$(CURDIR) SHUNIT_COLOR=none \
	  CV_RESULTS=$(CURDIR)/build/powercut.results \
	  sh tests/shell/test_powercut_cases.sh > build/powercut.log 2>&1; rc=$$?; \
	  sed -n 's/^FAIL /failed: /p' build/powercut.results; \
	  [ -s build/powercut.results ] || { echo "the suite ran no case"; rc=1; }; \
	  awk '{ c += $$1; s += $$2; l += $$3 } \
	    END { printf "%d cut points, %d disk states, %d acknowledged events lost\n", c, s, l }' \
	    build/powercut.tally; \
	  exit $$rc

# make coverage: the unit and shell tests on a gcov build (build/cov), then
# line and branch coverage of lib/ and bin/: per file in build/coverage.txt,
# per folder of lib/, for bin/ and in all printed (tools/coverage.py)
coverage: deps
	@$(MAKE) --no-print-directory install-debs PKGLIST="$(COV_DEBS)"
	@find build/cov -name '*.gcda' -delete 2> /dev/null || true
	$(MAKE) -j2 programs BUILD=build/cov BINDIR=build/cov/bin CFLAGS="-O0 -g --coverage -fprofile-update=atomic" LDFLAGS=--coverage
	@CV_STOP_GRACE=2 sh tests/run.sh --label coverage build/cov/bin build/cov/unit-tests build/cov > build/check-cov.log 2>&1; \
	  tail -n 1 build/check-cov.log | sed 's/^/coverage run: /'
	gcovr -r . build/cov --filter 'lib/' --filter 'bin/' --txt build/coverage.txt \
	  --sort-percentage --json-summary build/coverage.json
	@python3 tools/coverage.py build/coverage.json > build/coverage-summary.txt && cat build/coverage-summary.txt

fuzz-deps: deps
	@$(MAKE) --no-print-directory install-debs PKGLIST="$(FUZZ_DEBS)"

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/ctxvault
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -d $(DESTDIR)$(PREFIX)/include/ctxvault
	install -m 0644 include/ctxvault/cvclient.h $(DESTDIR)$(PREFIX)/include/ctxvault/
	install -m 0644 etc/ctxvault.conf etc/policy.conf $(DESTDIR)$(PREFIX)/share/ctxvault/
	install -d $(DESTDIR)$(PREFIX)/share/ctxvault/etc $(DESTDIR)$(PREFIX)/share/ctxvault/pipelines
	install -m 0644 etc/supervisord.conf $(DESTDIR)$(PREFIX)/share/ctxvault/etc/
	install -m 0644 pipelines/README.md $(DESTDIR)$(PREFIX)/share/ctxvault/pipelines/
	# the programs are in PREFIX/bin, not beside the configuration
	for f in storage.conf storage-tcp.conf; do \
	  sed 's|%(here)s/../bin|$(PREFIX)/bin|' pipelines/$$f > $(DESTDIR)$(PREFIX)/share/ctxvault/pipelines/$$f && \
	  chmod 0644 $(DESTDIR)$(PREFIX)/share/ctxvault/pipelines/$$f || exit 1; \
	done

clean:
	rm -rf build $(BINS)
