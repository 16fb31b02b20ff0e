# dataplane/: the xdpexd daemon (kernel-UDP and AF_XDP modes, sessions, journal, recovery, control
# and entry sockets), built into build/dataplane/xdpexd. It links the engine (C++ inside, hence
# -lstdc++) and the XDP loader library. Tests: tests/test_dataplane_*.py (pytest, real processes,
# real packets over loopback and veth pairs in namespaces they create).

DP_OUT := $(BUILD)/dataplane
DP_SRC := $(TOP)/dataplane
DP_SRCS := $(wildcard $(DP_SRC)/*.c)
DP_OBJS := $(patsubst $(DP_SRC)/%.c,$(DP_OUT)/%.o,$(DP_SRCS))
DP_CFLAGS := $(CFLAGS_COMMON) -I$(TOP)/xdp -D_GNU_SOURCE -pthread
DP_LIBS := $(BUILD)/engine/libxdpex_engine.a $(BUILD)/xdp/libxdpex_xdp.a \
	-lxdp -lbpf -lelf -lz -ljansson -lcrypto -lstdc++ -lm -pthread

BUILD_TARGETS += dataplane-build
.PHONY: dataplane-build
dataplane-build: $(DP_OUT)/xdpexd

$(DP_OUT):
	$(Q)mkdir -p $@

$(DP_OUT)/%.o: $(DP_SRC)/%.c $(DP_SRC)/xdpexd.h $(TOP)/include/xdpex/proto.h \
		$(TOP)/include/xdpex/parse.h $(TOP)/engine/include/xdpex/engine.h \
		$(TOP)/xdp/xdpex_xdp.h | $(DP_OUT)
	@echo "  CC      $@"
	$(Q)$(CC) $(DP_CFLAGS) -c $< -o $@

# The engine and the XDP library are built by their own fragments (engine-build, xdp-build).
$(DP_OUT)/xdpexd: $(DP_OBJS) $(wildcard $(BUILD)/engine/libxdpex_engine.a $(BUILD)/xdp/libxdpex_xdp.a) | engine-build xdp-build
	@echo "  LINK    $@"
	$(Q)$(CC) -o $@ $(DP_OBJS) $(DP_LIBS)
