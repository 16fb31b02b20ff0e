# control/: gRPC code generation for the control plane (Python). The generated modules go to
# $(BUILD)/control/pb; xdpex.pb imports them from there (and regenerates them itself when they
# are missing or older than the .proto, so a bare checkout still works).
CONTROL_PB := $(BUILD)/control/pb
CONTROL_PROTOS := $(wildcard $(TOP)/control/xdpex/proto/*.proto)
CONTROL_PB_OUT := $(patsubst $(TOP)/control/xdpex/proto/%.proto,$(CONTROL_PB)/%_pb2_grpc.py,$(CONTROL_PROTOS))

.PHONY: control-build control-bench
BUILD_TARGETS += control-build
BENCH_TARGETS += control-bench

# xdpex._fastwire (control/xdpex/ext): the per-order work of order entry in C, its message
# layout checked against include/xdpex/proto.h (xdpex.fastwire loads it from here)
# (the extension's name and Python's headers are asked of the venv's Python when the rule
# runs: the venv may not exist yet when make reads this file)
FASTWIRE_SO := $(BUILD)/control/ext/.fastwire.stamp
FASTWIRE_SRC := $(wildcard $(TOP)/control/xdpex/ext/*.c $(TOP)/control/xdpex/ext/*.h)

# its decoders under libFuzzer, ASan and UBSan (tests/fuzz/fastwire_fuzz.c)
FASTWIRE_FUZZ := $(BUILD)/control/fastwire_fuzz

control-build: $(CONTROL_PB_OUT) $(FASTWIRE_SO) $(FASTWIRE_FUZZ)

$(FASTWIRE_FUZZ): $(TOP)/tests/fuzz/fastwire_fuzz.c $(FASTWIRE_SRC)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)$(CLANG) -O1 -g -Wall -Wextra -Werror -Wmissing-prototypes \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-I$(TOP)/control/xdpex/ext $< -o $@

# a longer fuzzing run than the test's (FUZZ_SECONDS, default 300)
.PHONY: control-fuzz
control-fuzz: $(FASTWIRE_FUZZ)
	$(Q)mkdir -p $(BUILD)/control/fuzz-corpus
	$(Q)$(FASTWIRE_FUZZ) -max_total_time=$(or $(FUZZ_SECONDS),300) -max_len=4096 \
		$(BUILD)/control/fuzz-corpus

$(FASTWIRE_SO): $(FASTWIRE_SRC) $(TOP)/include/xdpex/proto.h $(SETUP_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $(BUILD)/control/ext/_fastwire"
	$(Q)suffix=$$($(PY) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))') && \
	inc=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])') && \
	$(CC) $(CFLAGS_COMMON) -Wmissing-prototypes -fPIC -shared -DXF_CHECK_LAYOUT -I$$inc \
		$(TOP)/control/xdpex/ext/fastwire.c -o $(dir $@)_fastwire.tmp && \
	mv $(dir $@)_fastwire.tmp $(dir $@)_fastwire$$suffix && touch $@

$(CONTROL_PB)/%_pb2_grpc.py: $(TOP)/control/xdpex/proto/%.proto $(SETUP_STAMP)
	@mkdir -p $(CONTROL_PB)
	$(Q)$(PY) -m grpc_tools.protoc -I$(TOP)/control/xdpex/proto --python_out=$(CONTROL_PB) \
		--grpc_python_out=$(CONTROL_PB) $<

# REST (wrk), gRPC batch and stream, the kernel-UDP wire reference, persister drain rates; the
# control-plane rows again with the Python paths (with and without the order-entry audit)
# -> build/bench/control.json and the "Control plane" section of docs/BENCHMARKS.md
control-bench: control-build
	$(Q)$(PY) -m xdpex.bench --repeat 3 --variants c,python,python+audit \
		--out $(BUILD)/bench/control.json --doc $(TOP)/docs/BENCHMARKS.md
