# xdp/: the XDP program xdp_steer (xdpex.bpf.c -> xdpex.bpf.o -> xdpex.skel.h), the loader
# library build/xdp/libxdpex_xdp.a (link with -lbpf -lelf -lz), the tool build/xdp/xdpex-xdp and
# the library's API checks build/xdp/xdpex_xdp_test.
# build/xdp/xdp_other.bpf.o is a trivial foreign XDP program the tests attach to prove that
# xdp_steer refuses an interface somebody else holds. Tests: tests/test_xdp_*.py (pytest).

XDP_OUT := $(BUILD)/xdp
XDP_SRC := $(TOP)/xdp
XDP_BPF_CFLAGS := -O2 -g -target bpf -Wall -Werror -I$(TOP)/include \
	-I/usr/include/$(shell uname -m)-linux-gnu
XDP_CFLAGS := $(CFLAGS_COMMON) -I$(XDP_SRC) -I$(XDP_OUT)
XDP_LIBS := -lbpf -lelf -lz
XDP_HDRS := $(XDP_SRC)/xdpex_maps.h $(XDP_SRC)/xdpex_check.h $(TOP)/include/xdpex/proto.h

BUILD_TARGETS += xdp-build
.PHONY: xdp-build
xdp-build: $(XDP_OUT)/libxdpex_xdp.a $(XDP_OUT)/xdpex-xdp $(XDP_OUT)/xdp_other.bpf.o \
	$(XDP_OUT)/xdpex_xdp_test

$(XDP_OUT):
	$(Q)mkdir -p $@

# Keep the object and the skeleton (bpftool prog load, llvm-objdump, reading the skeleton).
.SECONDARY: $(XDP_OUT)/xdpex.bpf.o $(XDP_OUT)/xdpex.skel.h

$(XDP_OUT)/%.bpf.o: $(XDP_SRC)/%.bpf.c $(XDP_HDRS) | $(XDP_OUT)
	@echo "  BPF     $@"
	$(Q)$(CLANG) $(XDP_BPF_CFLAGS) -c $< -o $@

$(XDP_OUT)/%.skel.h: $(XDP_OUT)/%.bpf.o
	@echo "  SKEL    $@"
	$(Q)bpftool gen skeleton $< name $* > $@.tmp && mv $@.tmp $@

$(XDP_OUT)/xdpex_%.o: $(XDP_SRC)/xdpex_%.c $(XDP_SRC)/xdpex_xdp.h $(XDP_SRC)/xdpex_xdp_internal.h $(XDP_SRC)/xdpex_filter.h \
		$(XDP_HDRS) $(XDP_OUT)/xdpex.skel.h
	@echo "  CC      $@"
	$(Q)$(CC) $(XDP_CFLAGS) -c $< -o $@

$(XDP_OUT)/libxdpex_xdp.a: $(XDP_OUT)/xdpex_xdp.o $(XDP_OUT)/xdpex_cfg.o $(XDP_OUT)/xdpex_filter.o
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

# The tool also carries test_xsk, a minimal AF_XDP receiver (libxdp's xsk API), for the tests.
$(XDP_OUT)/xdpex-xdp: $(XDP_SRC)/xdpex_xdp_tool.c $(XDP_SRC)/test_xsk.c $(XDP_SRC)/test_xsk.h \
		$(XDP_SRC)/xdpex_xdp.h $(XDP_HDRS) $(XDP_OUT)/libxdpex_xdp.a
	@echo "  CC      $@"
	$(Q)$(CC) $(XDP_CFLAGS) $(XDP_SRC)/xdpex_xdp_tool.c $(XDP_SRC)/test_xsk.c -o $@ \
		$(XDP_OUT)/libxdpex_xdp.a -lxdp $(XDP_LIBS)

# API checks of the library (run by tests/test_xdp_lib.py).
$(XDP_OUT)/xdpex_xdp_test: $(XDP_SRC)/xdpex_xdp_test.c $(XDP_SRC)/xdpex_xdp.h $(XDP_HDRS) \
		$(XDP_OUT)/libxdpex_xdp.a
	@echo "  CC      $@"
	$(Q)$(CC) $(XDP_CFLAGS) $< -o $@ $(XDP_OUT)/libxdpex_xdp.a $(XDP_LIBS)

# Benchmark: ns per xdp_steer run under BPF_PROG_TEST_RUN, per packet kind (build/bench/xdp.json).
BENCH_TARGETS += xdp-bench
.PHONY: xdp-bench
xdp-bench: xdp-build
	$(Q)$(PY) $(XDP_SRC)/bench_testrun.py
