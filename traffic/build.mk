# traffic/: the native load generator (xdpex-loadgen, with its AF_XDP steering program
# xdp_lg), the XDP_PASS program the veth lab attaches on the traffic side and xdp_lossy, the loss
# injector of the recovery tests, and tc_faults, the seeded loss/duplication/reordering injector
# (traffic/faults/, xdpex_traffic.faults). Outputs under $(BUILD)/traffic/. `make bench-wire` measures the
# wire path (AF_XDP against kernel UDP) with the generator; see docs/BENCHMARKS.md "## Wire".

TRAFFIC_OUT := $(BUILD)/traffic
LOADGEN_SRCS := $(filter-out %.bpf.c,$(wildcard $(TOP)/traffic/loadgen/*.c))
LOADGEN_HDRS := $(wildcard $(TOP)/traffic/loadgen/*.h) $(TOP)/include/xdpex/proto.h
LOADGEN_BIN := $(TRAFFIC_OUT)/xdpex-loadgen
XDP_PASS_OBJ := $(TRAFFIC_OUT)/xdp_pass.bpf.o
XDP_LOSSY_OBJ := $(TRAFFIC_OUT)/xdp_lossy.bpf.o
XDP_LG_SKEL := $(TRAFFIC_OUT)/xdp_lg.skel.h
TC_FAULTS_OBJ := $(TRAFFIC_OUT)/tc_faults.bpf.o
TRAFFIC_BPF_CFLAGS := -O2 -g -target bpf -Wall -Werror -I$(TOP)/include \
	-I/usr/include/$(shell uname -m)-linux-gnu

BUILD_TARGETS += $(LOADGEN_BIN) $(XDP_PASS_OBJ) $(XDP_LOSSY_OBJ) $(TC_FAULTS_OBJ)
BENCH_TARGETS += bench-wire

.PHONY: traffic-build bench-wire
traffic-build: $(LOADGEN_BIN) $(XDP_PASS_OBJ) $(XDP_LOSSY_OBJ) $(TC_FAULTS_OBJ)

$(LOADGEN_BIN): $(LOADGEN_SRCS) $(LOADGEN_HDRS) $(XDP_LG_SKEL) $(TOP)/traffic/build.mk
	$(Q)mkdir -p $(TRAFFIC_OUT)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS_COMMON) -D_GNU_SOURCE -I$(TRAFFIC_OUT) -o $@ $(LOADGEN_SRCS) \
		-lcrypto -lxdp -lbpf -lelf -lz -lm

$(TRAFFIC_OUT)/%.bpf.o: $(TOP)/traffic/loadgen/%.bpf.c $(TOP)/include/xdpex/proto.h
	$(Q)mkdir -p $(TRAFFIC_OUT)
	$(if $(Q),@echo "  BPF     $@")
	$(Q)$(CLANG) $(TRAFFIC_BPF_CFLAGS) -c $< -o $@

# The lab's fault injector (traffic/faults/, loaded by xdpex_traffic.faults).
$(TC_FAULTS_OBJ): $(TOP)/traffic/faults/tc_faults.bpf.c $(TOP)/traffic/faults/faults.h \
		$(TOP)/include/xdpex/proto.h
	$(Q)mkdir -p $(TRAFFIC_OUT)
	$(if $(Q),@echo "  BPF     $@")
	$(Q)$(CLANG) $(TRAFFIC_BPF_CFLAGS) -c $< -o $@

$(XDP_LG_SKEL): $(TRAFFIC_OUT)/xdp_lg.bpf.o
	$(if $(Q),@echo "  SKEL    $@")
	$(Q)bpftool gen skeleton $< name xdp_lg > $@.tmp && mv $@.tmp $@

# Wire benchmark: AF_XDP and DPDK against kernel-UDP mode of the same daemon, batched and
# single-order. BASE=<git ref> also builds xdpexd as of that commit (into build/base/<ref>, from
# `git archive`, the dataplane and what it links only) and measures its afxdp and udp modes in
# the same run, each right before the current build's: the A/B of a change.
BASE ?=
BASE_XDPEXD := $(BUILD)/base/$(BASE)/build/dataplane/xdpexd
bench-wire: build $(if $(BASE),$(BASE_XDPEXD))
	$(Q)cd $(TOP) && $(PY) -m xdpex_traffic.benchwire --out $(BUILD)/bench/wire.json \
		--doc $(TOP)/docs/BENCHMARKS.md $(if $(BASE),--baseline-xdpexd $(BASE_XDPEXD)) \
		$(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(PATHS),--paths $(PATHS)) $(if $(BATCHES),--batches $(BATCHES))

$(BUILD)/base/%/build/dataplane/xdpexd:
	$(Q)rm -rf $(BUILD)/base/$* && mkdir -p $(BUILD)/base/$*
	$(Q)git -C $(TOP) archive $* | tar -x -C $(BUILD)/base/$*
	@echo "  BASE    xdpexd as of $* in $(BUILD)/base/$*"
	$(Q)$(MAKE) -C $(BUILD)/base/$* dataplane-build

# High availability (docs/ha.md). `make soak-ha`: 20 kills -9 of the primary under client load,
# alternating between the two hosts, in kernel-UDP and AF_XDP mode (the short series of 3 is in
# `make test`). `make bench-failover`: replicated against none (ping-pong RTT, batched rate) and
# a kill series' takeover times, into build/bench/failover.json and docs/BENCHMARKS.md.
HA_KILLS ?= 20
BENCH_TARGETS += bench-failover
.PHONY: soak-ha bench-failover
soak-ha: build
	$(Q)cd $(TOP) && XDPEX_HA_KILLS=$(HA_KILLS) $(VENV)/bin/pytest -x -q -s \
		tests/test_ha_failover.py -k kill9

bench-failover: build
	$(Q)cd $(TOP) && XDPEX_HA_KILLS=$(HA_KILLS) $(PY) -m xdpex_traffic.benchfailover \
		--out $(BUILD)/bench/failover.json --doc $(TOP)/docs/BENCHMARKS.md

# Reliability soak (docs/RELIABILITY.md): every scenario of xdpex.soak at full scale in
# AF_XDP and kernel-UDP mode, bounded under 30 minutes; one row per scenario and mode in
# build/soak/summary.json (checks in summary-detail.json). The short scale runs in `make test`
# (tests/test_soak_short.py). The figures go to docs/RELIABILITY.md "Latest figures".
# SOAK_ARGS="--only loss --modes udp" narrows it; with --merge the other rows are kept.
.PHONY: soak
soak: build
	$(Q)cd $(TOP) && $(PY) -m xdpex.soak --scale full --out $(BUILD)/soak/summary.json \
		--doc $(TOP)/docs/RELIABILITY.md \
		$(SOAK_ARGS)
