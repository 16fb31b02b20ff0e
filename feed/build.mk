# feed/: the market-data feed (docs/marketdata.md). libxdpex_feed.a (encoder from engine events,
# MoldUDP64 packing, UDP sender, book builder, journal writer and tailing reader) for xdpexd and the
# tools; xdpex-feedd (rewind + snapshot server over the journal), xdpex-feedsub (reference C
# subscriber), xdpex-feedsim (a test producer: the real engine, a journal, the live feed) and the
# unit test test_feed (the real engine through its C ABI against the book builder).
FEED_OUT := $(BUILD)/feed
FEED_SRC := $(TOP)/feed
FEED_LIB_SRCS := encode.c mold.c tx.c book.c jwrite.c jread.c
FEED_LIB_OBJS := $(patsubst %.c,$(FEED_OUT)/%.o,$(FEED_LIB_SRCS))
FEED_LIB := $(FEED_OUT)/libxdpex_feed.a
FEED_HDRS := $(FEED_SRC)/xdpex_feed.h $(TOP)/include/xdpex/feed.h $(TOP)/include/xdpex/journal.h \
	$(TOP)/engine/include/xdpex/engine.h
FEED_CFLAGS := $(CFLAGS_COMMON) -std=gnu11 -D_GNU_SOURCE -I$(FEED_SRC)
FEED_ENGINE := $(BUILD)/engine/libxdpex_engine.a
FEED_TOOLS := $(FEED_OUT)/xdpex-feedd $(FEED_OUT)/xdpex-feedsub $(FEED_OUT)/xdpex-feedsim \
	$(FEED_OUT)/test_feed $(FEED_OUT)/bench_feed

BUILD_TARGETS += feed-build
NATIVE_TESTS += feed-test
.PHONY: feed-build feed-test
feed-build: $(FEED_LIB) $(FEED_TOOLS)

$(FEED_OUT)/%.o: $(FEED_SRC)/%.c $(FEED_HDRS) $(FEED_SRC)/build.mk
	@mkdir -p $(FEED_OUT)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(FEED_CFLAGS) -c $< -o $@

$(FEED_LIB): $(FEED_LIB_OBJS)
	$(if $(Q),@echo "  AR      $@")
	$(Q)ar rcs $@ $^

# Tools that drive the engine link it (C++ inside, hence -lstdc++); the engine fragment builds it.
$(FEED_OUT)/test_feed $(FEED_OUT)/xdpex-feedsim: $(FEED_OUT)/%: $(FEED_SRC)/tools/%.c \
		$(FEED_SRC)/tools/engine_util.c $(FEED_SRC)/tools/engine_util.h $(FEED_LIB) \
		$(FEED_HDRS) | engine-build
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(FEED_CFLAGS) -o $@ $< $(FEED_SRC)/tools/engine_util.c $(FEED_LIB) \
		$(FEED_ENGINE) -lstdc++ -lm

$(FEED_OUT)/xdpex-feedd $(FEED_OUT)/xdpex-feedsub: $(FEED_OUT)/%: $(FEED_SRC)/tools/%.c \
		$(FEED_LIB) $(FEED_HDRS)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(FEED_CFLAGS) -o $@ $< $(FEED_LIB) -ljansson -lm

# 1 M mixed orders through the real engine, the feed rebuilt and compared order for order.
feed-test: $(FEED_OUT)/test_feed
	$(Q)$(FEED_OUT)/test_feed --orders 1000000

# What producing the feed costs per order on the engine benchmark stream (no network, no journal).
$(FEED_OUT)/bench_feed: $(FEED_SRC)/tools/bench_feed.cpp $(FEED_LIB) $(FEED_HDRS) | engine-build
	$(if $(Q),@echo "  CXX     $@")
	$(Q)g++ -O2 -g -std=c++17 -Wall -Wextra -Werror -I$(TOP)/include -I$(TOP)/engine/include \
		-I$(TOP)/engine/tools -I$(FEED_SRC) -o $@ $< $(BUILD)/engine/libxe_stream.a \
		$(FEED_LIB) $(FEED_ENGINE) -lz

# The feed's figures (build/bench/feed.json, "## Feed" in docs/BENCHMARKS.md): the wire path with
# xdpexd's producer on against off, encoder cost on the engine stream, and the loopback
# feed from xdpex-feedsim at 100 k orders/s, with 1 % loss, and flat out (traffic/xdpex_traffic/
# benchfeed.py says what each figure is).
BENCH_TARGETS += bench-feed
.PHONY: bench-feed
bench-feed: feed-build $(SETUP_STAMP)
	$(Q)cd $(TOP) && $(PY) -m xdpex_traffic.benchfeed --out $(BUILD)/bench/feed.json \
		--doc $(TOP)/docs/BENCHMARKS.md $(if $(ROUNDS),--rounds $(ROUNDS))
