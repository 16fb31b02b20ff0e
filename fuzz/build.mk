# fuzz/: coverage-guided fuzzing under sanitizers, and the sanitizer build of xdpexd.
#   libFuzzer harnesses (clang -fsanitize=fuzzer,address,undefined), one per input surface:
#     parse    include/xdpex/parse.h, differential against xdp/xdpex_check.h's header check
#     config   dataplane/config.c (whole files and "apply" fragments)
#     ctl      dataplane/ctl.c's command handler over two real shards
#     journal  dataplane/journal.c + recovery.c (segment files -> xj_open -> replay), xj_reader
#     entry    dataplane/entry.c: datagrams over a real unix socket into a real shard
#     repl     dataplane/repl.c's receive path, both ends: a standby fed a primary's stream and a
#              primary fed a standby's hello and acks, over loopback TCP into real shards
#   bpfdiff: random and mutated frames through BPF_PROG_TEST_RUN of the real xdp_steer against
#     the user-space parser (the XDP program must never pass what parse.h refuses at the header)
#   atheris harnesses of the Python codec and journal reader (fuzz/atheris/)
# Seed corpora: fuzz/corpus/<target>/ (fuzz/gen_seeds.py makes them from tests/golden).
#   make fuzz              every target FUZZ_SECONDS (default 120) -> build/fuzz/summary.json
#   make fuzz FUZZ_TARGETS="parse ctl" FUZZ_SECONDS=600
#   make fuzz-smoke        a few seconds of each (part of make test)
#   make asan-build        build/asan/xdpexd (ASan + UBSan); make asan-e2e runs the end-to-end
#                          subset against it (XDPEX_XDPEXD, part of make test)

FZ_OUT := $(BUILD)/fuzz
FZ_SRC := $(TOP)/fuzz
FZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FZ_WARN := -Wall -Wextra -Werror -Wmissing-prototypes
FZ_INC := -I$(TOP)/include -I$(TOP)/engine/include -I$(TOP)/xdp -I$(TOP)/feed -I$(DP_SRC) \
	-D_GNU_SOURCE -pthread
FZ_CFLAGS := -O1 -g $(FZ_SAN) -fsanitize=fuzzer-no-link $(FZ_WARN) $(FZ_INC) '-DXJ_BUF_CAP=(64u << 10)'
# The dataplane without its main() and without DPDK (io_nodpdk.c stands in).
FZ_DP_SRCS := $(filter-out $(DP_SRC)/main.c $(DP_SRC)/io_dpdk.c $(DP_SRC)/io_nodpdk.c,\
	$(wildcard $(DP_SRC)/*.c)) $(DP_SRC)/io_nodpdk.c
FZ_DP_OBJS := $(patsubst $(DP_SRC)/%.c,$(FZ_OUT)/obj/%.o,$(FZ_DP_SRCS))
FZ_LIBS := $(BUILD)/feed/libxdpex_feed.a $(BUILD)/engine/libxdpex_engine.a \
	$(BUILD)/xdp/libxdpex_xdp.a -lxdp -lbpf -lelf -lz -ljansson -lcrypto -lstdc++ -lm -pthread
FZ_HDRS := $(wildcard $(DP_SRC)/*.h) $(wildcard $(TOP)/include/xdpex/*.h) $(FZ_SRC)/fz.h \
	$(TOP)/xdp/xdpex_check.h $(TOP)/xdp/xdpex_maps.h
FUZZ_LIBFUZZER := parse config ctl journal entry frame repl
FUZZ_ALL := $(FUZZ_LIBFUZZER) bpfdiff atheris_codec atheris_journal
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_SECONDS ?= 120
FUZZ_SMOKE_SECONDS ?= 5
FZ_HARNESS_OBJS := $(FZ_OUT)/obj/fz_fz.o $(patsubst %,$(FZ_OUT)/obj/fz_fuzz_%.o,$(FUZZ_LIBFUZZER))
# Objects are kept (not intermediates of the links).
.SECONDARY: $(FZ_DP_OBJS) $(FZ_HARNESS_OBJS)

$(FZ_OUT)/obj $(FZ_OUT)/bin:
	$(Q)mkdir -p $@

$(FZ_OUT)/obj/%.o: $(DP_SRC)/%.c $(FZ_HDRS) | $(FZ_OUT)/obj
	@echo "  CC-FUZZ $@"
	$(Q)$(CLANG) $(FZ_CFLAGS) -c $< -o $@

$(FZ_OUT)/obj/fz_%.o: $(FZ_SRC)/%.c $(FZ_HDRS) | $(FZ_OUT)/obj
	@echo "  CC-FUZZ $@"
	$(Q)$(CLANG) $(FZ_CFLAGS) -c $< -o $@

$(FZ_OUT)/bin/fuzz_parse: $(FZ_OUT)/obj/fz_fuzz_parse.o | $(FZ_OUT)/bin
	@echo "  LINK    $@"
	$(Q)$(CLANG) $(FZ_SAN) -fsanitize=fuzzer -o $@ $^

$(FZ_OUT)/bin/fuzz_%: $(FZ_OUT)/obj/fz_fuzz_%.o $(FZ_OUT)/obj/fz_fz.o $(FZ_DP_OBJS) \
		$(BUILD)/feed/libxdpex_feed.a $(BUILD)/engine/libxdpex_engine.a $(BUILD)/xdp/libxdpex_xdp.a \
		| $(FZ_OUT)/bin
	@echo "  LINK    $@"
	$(Q)$(CLANG) $(FZ_SAN) -fsanitize=fuzzer -o $@ $(FZ_OUT)/obj/fz_fuzz_$*.o $(FZ_OUT)/obj/fz_fz.o \
		$(FZ_DP_OBJS) $(FZ_LIBS)

# The BPF differential: a plain program (libbpf, the real xdp_steer object), user-space parse.h.
$(FZ_OUT)/bin/bpfdiff: $(FZ_SRC)/bpfdiff.c $(BUILD)/xdp/libxdpex_xdp.a $(TOP)/include/xdpex/parse.h \
		$(TOP)/xdp/xdpex_maps.h $(TOP)/xdp/xdpex_xdp.h | $(FZ_OUT)/bin
	@echo "  CC      $@"
	$(Q)$(CLANG) -O1 -g $(FZ_SAN) $(FZ_WARN) $(FZ_INC) -o $@ $< $(BUILD)/xdp/libxdpex_xdp.a \
		-lbpf -lelf -lz

FZ_BINS := $(addprefix $(FZ_OUT)/bin/fuzz_,$(FUZZ_LIBFUZZER)) $(FZ_OUT)/bin/bpfdiff

.PHONY: fuzz-build fuzz fuzz-smoke
fuzz-build: build $(FZ_BINS)

# Each target for FUZZ_SECONDS; build/fuzz/summary.json: target, executions, seconds, coverage,
# crashes (reproducers under build/fuzz/<target>/artifacts). Fails on any crash.
fuzz: fuzz-build
	$(Q)$(PY) $(FZ_SRC)/run.py --seconds $(FUZZ_SECONDS) --out $(FZ_OUT) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	$(Q)$(PY) $(FZ_SRC)/run.py --seconds $(FUZZ_SMOKE_SECONDS) --out $(FZ_OUT)/smoke \
		--regress $(FUZZ_ALL)

NATIVE_TESTS += fuzz-smoke

# ---- xdpexd under ASan + UBSan ----
ASAN_OUT := $(BUILD)/asan
ASAN_CFLAGS := -O1 -g $(FZ_SAN) $(FZ_WARN) $(FZ_INC)
ASAN_DP_SRCS := $(FZ_DP_SRCS) $(DP_SRC)/main.c
ASAN_DP_OBJS := $(patsubst $(DP_SRC)/%.c,$(ASAN_OUT)/obj/%.o,$(ASAN_DP_SRCS))
.SECONDARY: $(ASAN_DP_OBJS)

$(ASAN_OUT)/obj:
	$(Q)mkdir -p $@

$(ASAN_OUT)/obj/%.o: $(DP_SRC)/%.c $(FZ_HDRS) | $(ASAN_OUT)/obj
	@echo "  CC-ASAN $@"
	$(Q)$(CLANG) $(ASAN_CFLAGS) -c $< -o $@

$(ASAN_OUT)/xdpexd: $(ASAN_DP_OBJS) $(BUILD)/feed/libxdpex_feed.a $(BUILD)/engine/libxdpex_engine.a \
		$(BUILD)/xdp/libxdpex_xdp.a
	@echo "  LINK    $@"
	$(Q)$(CLANG) $(FZ_SAN) -o $@ $(ASAN_DP_OBJS) $(FZ_LIBS)

.PHONY: asan-build asan-e2e
asan-build: build $(ASAN_OUT)/xdpexd

# The end-to-end subset (udp and afxdp modes) against the sanitizer build; any ASan/UBSan report
# in a daemon's log fails its test (tests/dataplane_support.py reads XDPEX_XDPEXD).
ASAN_E2E ?= tests/test_dataplane_session.py tests/test_dataplane_recovery.py \
	tests/test_dataplane_control.py tests/test_dataplane_security.py \
	tests/test_dataplane_xdpfilter.py
asan-e2e: asan-build
	$(Q)cd $(TOP) && XDPEX_XDPEXD=$(ASAN_OUT)/xdpexd $(VENV)/bin/pytest -q -x -p no:cacheprovider \
		$(ASAN_E2E) -k "not dpdk"

NATIVE_TESTS += asan-e2e
