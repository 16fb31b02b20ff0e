# dataplane/: the xdpexd daemon (one shard loop over the udp, afxdp and dpdk backends, sessions,
# journal, recovery, control and entry sockets), built into build/dataplane/xdpexd. It links the
# engine (C++ inside, hence -lstdc++) and the XDP loader library, and DPDK when `pkg-config
# libdpdk` succeeds (else io_nodpdk.c stands in for io_dpdk.c and --mode dpdk says why).
# Tests: tests/test_dataplane_*.py (pytest, real processes, real packets over loopback and veth
# pairs in namespaces they create).

DP_OUT := $(BUILD)/dataplane
DP_SRC := $(TOP)/dataplane
DPDK_FOUND := $(shell pkg-config --exists libdpdk 2>/dev/null && echo 1)
DPDK_CFLAGS := $(if $(DPDK_FOUND),$(shell pkg-config --cflags libdpdk))
DPDK_LIBS := $(if $(DPDK_FOUND),$(shell pkg-config --libs libdpdk))
DP_SRCS := $(filter-out $(DP_SRC)/io_dpdk.c $(DP_SRC)/io_nodpdk.c,$(wildcard $(DP_SRC)/*.c)) \
	$(if $(DPDK_FOUND),$(DP_SRC)/io_dpdk.c,$(DP_SRC)/io_nodpdk.c)
DP_OBJS := $(patsubst $(DP_SRC)/%.c,$(DP_OUT)/%.o,$(DP_SRCS))
DP_LIB_OBJS := $(filter-out $(DP_OUT)/main.o,$(DP_OBJS))
DP_CFLAGS := $(CFLAGS_COMMON) -Wmissing-prototypes -I$(TOP)/xdp -I$(TOP)/feed -D_GNU_SOURCE -pthread
DP_FEED_LIB := $(BUILD)/feed/libxdpex_feed.a
DP_LIBS := $(DP_FEED_LIB) $(BUILD)/engine/libxdpex_engine.a $(BUILD)/xdp/libxdpex_xdp.a \
	-lxdp -lbpf -lelf -lz -ljansson -lcrypto -lstdc++ -lm -pthread $(DPDK_LIBS)

BUILD_TARGETS += dataplane-build
BENCH_TARGETS += dataplane-bench
.PHONY: dataplane-build dataplane-bench
dataplane-build: $(DP_OUT)/xdpexd $(DP_OUT)/xdpexd-bench $(if $(DPDK_FOUND),$(DP_OUT)/xdpexd-nodpdk)

$(DP_OUT):
	$(Q)mkdir -p $@

# DPDK's headers are for its backend only; its -march=corei7 and includes stay there.
$(DP_OUT)/io_dpdk.o: DP_CFLAGS += $(DPDK_CFLAGS)

$(DP_OUT)/%.o: $(DP_SRC)/%.c $(wildcard $(DP_SRC)/*.h) $(TOP)/include/xdpex/proto.h \
		$(TOP)/include/xdpex/parse.h $(TOP)/include/xdpex/journal.h $(TOP)/engine/include/xdpex/engine.h \
		$(TOP)/xdp/xdpex_xdp.h $(TOP)/feed/xdpex_feed.h $(TOP)/include/xdpex/feed.h | $(DP_OUT)
	@echo "  CC      $@"
	$(Q)$(CC) $(DP_CFLAGS) -c $< -o $@

# The engine and the XDP library are built by their own fragments (engine-build, xdp-build).
$(DP_OUT)/xdpexd: $(DP_OBJS) $(DP_FEED_LIB) $(wildcard $(BUILD)/engine/libxdpex_engine.a $(BUILD)/xdp/libxdpex_xdp.a) | engine-build xdp-build
	@echo "  LINK    $@"
	$(Q)$(CC) -o $@ $(DP_OBJS) $(DP_LIBS)

# What a host without DPDK builds (tests/test_dataplane_dpdk.py checks what --mode dpdk says).
DP_NODPDK_OBJS := $(filter-out $(DP_OUT)/io_dpdk.o,$(DP_OBJS)) $(DP_OUT)/io_nodpdk.o
$(DP_OUT)/xdpexd-nodpdk: $(DP_NODPDK_OBJS) $(DP_FEED_LIB) $(wildcard $(BUILD)/engine/libxdpex_engine.a $(BUILD)/xdp/libxdpex_xdp.a) | engine-build xdp-build
	@echo "  LINK    $@"
	$(Q)$(CC) -o $@ $(DP_NODPDK_OBJS) $(filter-out $(DPDK_LIBS),$(DP_LIBS))

$(DP_OUT)/bench.o: $(DP_SRC)/bench/xdpexd_bench.c $(DP_SRC)/xdpexd.h | $(DP_OUT)
	@echo "  CC      $@"
	$(Q)$(CC) $(DP_CFLAGS) -I$(DP_SRC) -c $< -o $@

$(DP_OUT)/xdpexd-bench: $(DP_OUT)/bench.o $(DP_LIB_OBJS) $(DP_FEED_LIB) $(wildcard $(BUILD)/engine/libxdpex_engine.a $(BUILD)/xdp/libxdpex_xdp.a) | engine-build xdp-build
	@echo "  LINK    $@"
	$(Q)$(CC) -o $@ $(DP_OUT)/bench.o $(DP_LIB_OBJS) $(DP_LIBS)

# The pipeline alone (no network): 16 orders a datagram with page-cache and fsync durability,
# 1 order a datagram; JSON lines in build/bench/dataplane-*.json.
dataplane-bench: $(DP_OUT)/xdpexd-bench
	$(Q)mkdir -p $(BUILD)/bench
	$(Q)$(DP_OUT)/xdpexd-bench --orders 3000000 --per-dgram 16 --out $(BUILD)/bench/dataplane-x16.json
	$(Q)$(DP_OUT)/xdpexd-bench --orders 1000000 --per-dgram 1 --out $(BUILD)/bench/dataplane-x1.json
	$(Q)$(DP_OUT)/xdpexd-bench --orders 500000 --per-dgram 16 --durability fsync --out $(BUILD)/bench/dataplane-x16-fsync.json

# 10,000 symbols (bands of 1..100,000 ticks) and 4,096 sessions configured from the file, one
# control-socket bulk request and the REST bulk endpoints: time and xdpexd's resident memory
# before any order -> build/bench/config.json and the Configuration section of docs/BENCHMARKS.md.
.PHONY: config-bench
BENCH_TARGETS += config-bench
config-bench: build
	$(Q)mkdir -p $(BUILD)/bench
	$(Q)$(PY) -m xdpex.configbench --out $(BUILD)/bench/config.json --doc $(TOP)/docs/BENCHMARKS.md
