# tests/build.mk: native tests of the wire protocol. test_golden parses every golden vector
# (tests/golden/vectors.txt) with include/xdpex/parse.h and checks each field at proto.h's
# offsets; parse_cxx compiles parse.h and proto.h as C++ to keep them usable from the engine side.
PROTO_TEST_OUT := $(BUILD)/tests
PROTO_HDRS := $(TOP)/include/xdpex/proto.h $(TOP)/include/xdpex/parse.h

$(PROTO_TEST_OUT)/test_golden: $(TOP)/tests/c/test_golden.c $(PROTO_HDRS) $(TOP)/tests/build.mk
	$(Q)mkdir -p $(PROTO_TEST_OUT)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS_COMMON) -std=gnu11 -o $@ $<

$(PROTO_TEST_OUT)/parse_cxx.o: $(TOP)/tests/c/parse_cxx.cpp $(PROTO_HDRS) $(TOP)/tests/build.mk
	$(Q)mkdir -p $(PROTO_TEST_OUT)
	$(if $(Q),@echo "  CXX     $@")
	$(Q)g++ $(CFLAGS_COMMON) -std=c++17 -c -o $@ $<

.PHONY: proto-build proto-test
proto-build: $(PROTO_TEST_OUT)/test_golden $(PROTO_TEST_OUT)/parse_cxx.o

proto-test: proto-build
	$(Q)$(PROTO_TEST_OUT)/test_golden $(TOP)/tests/golden/vectors.txt

BUILD_TARGETS += proto-build
NATIVE_TESTS += proto-test

# The market-data feed's golden vectors (tests/golden/feed_vectors.txt) against
# include/xdpex/feed.h: every field at feed.h's offsets, xf_parse_datagram's errors and texts.
$(PROTO_TEST_OUT)/test_feed_golden: $(TOP)/tests/c/test_feed_golden.c $(TOP)/include/xdpex/feed.h $(TOP)/tests/build.mk
	$(Q)mkdir -p $(PROTO_TEST_OUT)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS_COMMON) -std=gnu11 -o $@ $<

.PHONY: feed-golden-test
feed-golden-test: $(PROTO_TEST_OUT)/test_feed_golden
	$(Q)$(PROTO_TEST_OUT)/test_feed_golden $(TOP)/tests/golden/feed_vectors.txt

BUILD_TARGETS += $(PROTO_TEST_OUT)/test_feed_golden
NATIVE_TESTS += feed-golden-test
