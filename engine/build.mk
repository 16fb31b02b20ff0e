# engine/build.mk: the C++ matching engine, built by CMake into build/engine. Configure runs once
# (when build/engine has no CMakeCache.txt); afterwards `cmake --build` regenerates on its own
# when a CMakeLists.txt changes, so a plain `make` never reconfigures needlessly.
ENGINE_SRC := $(TOP)/engine
ENGINE_BUILD := $(BUILD)/engine
ENGINE_STREAM := $(TOP)/data/orders-s42-1m.csv.gz

$(ENGINE_BUILD)/CMakeCache.txt:
	$(Q)cmake -S $(ENGINE_SRC) -B $(ENGINE_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

.PHONY: engine-build engine-test engine-bench
engine-build: $(ENGINE_BUILD)/CMakeCache.txt
	$(Q)cmake --build $(ENGINE_BUILD) -j2 $(if $(Q),,-- VERBOSE=1)
	$(Q)test -f $(ENGINE_BUILD)/libxdpex_engine.a -a -f $(ENGINE_BUILD)/libxdpex_engine.so -a -x $(ENGINE_BUILD)/xe_bench

engine-test: engine-build
	$(Q)ctest --test-dir $(ENGINE_BUILD) --output-on-failure -j2

# The baseline engine-bench compares with, in the same run: the engine sources (src/ and its C
# header) of commit ENGINE_BASE, taken from git, built with this checkout's benchmark tool and the
# same flags as CMake's Release build. The default is the last commit with the flat price ladder.
ENGINE_BASE ?= 211d86df87dd262bf3918f7b5405172005b37152
ENGINE_BASE_DIR := $(BUILD)/engine-base
ENGINE_CXX := g++ -std=c++17 -O3 -g -DNDEBUG -Wall -Wextra -Werror

.PHONY: engine-base
engine-base: $(ENGINE_BASE_DIR)/xe_bench
$(ENGINE_BASE_DIR)/xe_bench: $(ENGINE_SRC)/tools/xe_bench.cpp $(ENGINE_SRC)/tools/stream.cpp $(ENGINE_SRC)/tools/stream.hpp $(ENGINE_SRC)/tools/xe_memory.cpp $(ENGINE_SRC)/build.mk
	$(Q)rm -rf $(ENGINE_BASE_DIR) && mkdir -p $(ENGINE_BASE_DIR)/src $(ENGINE_BASE_DIR)/include/xdpex
	$(Q)for f in $$(git -C $(TOP) ls-tree --name-only $(ENGINE_BASE) engine/src/); do \
		git -C $(TOP) show $(ENGINE_BASE):$$f > $(ENGINE_BASE_DIR)/src/$$(basename $$f) || exit 1; done
	$(Q)git -C $(TOP) show $(ENGINE_BASE):engine/include/xdpex/engine.h > $(ENGINE_BASE_DIR)/include/xdpex/engine.h
	$(Q)git -C $(TOP) rev-parse $(ENGINE_BASE) > $(ENGINE_BASE_DIR)/COMMIT
	$(Q)$(ENGINE_CXX) -fno-exceptions -fno-rtti -I$(ENGINE_BASE_DIR)/include -I$(TOP)/include \
		-I$(ENGINE_BASE_DIR)/src -c $(ENGINE_BASE_DIR)/src/engine.cpp -o $(ENGINE_BASE_DIR)/engine.o
	$(Q)$(ENGINE_CXX) -fno-exceptions -fno-rtti -I$(ENGINE_BASE_DIR)/include -I$(TOP)/include \
		-I$(ENGINE_BASE_DIR)/src -c $(ENGINE_BASE_DIR)/src/config.cpp -o $(ENGINE_BASE_DIR)/config.o
	$(Q)$(ENGINE_CXX) -I$(ENGINE_BASE_DIR)/include -I$(TOP)/include -I$(ENGINE_SRC)/tools \
		$(ENGINE_SRC)/tools/xe_bench.cpp $(ENGINE_SRC)/tools/stream.cpp \
		$(ENGINE_BASE_DIR)/engine.o $(ENGINE_BASE_DIR)/config.o -lz -o $@
	$(Q)$(ENGINE_CXX) -I$(ENGINE_BASE_DIR)/include -I$(TOP)/include $(ENGINE_SRC)/tools/xe_memory.cpp \
		$(ENGINE_BASE_DIR)/engine.o $(ENGINE_BASE_DIR)/config.o -o $(ENGINE_BASE_DIR)/xe_memory

# Every stream (plain, deep queues, deep book, wide sweep) on this engine and on the baseline,
# alternating in one run; JSON to build/bench/engine.json, the Engine section of
# docs/BENCHMARKS.md rewritten with the figures and the ratios.
engine-bench: engine-build engine-base $(SETUP_STAMP)
	$(Q)mkdir -p $(BUILD)/bench
	$(Q)$(PY) -m xdpex.cli engine bench --stream $(ENGINE_STREAM) --baseline $(ENGINE_BASE_DIR)/xe_bench --report $(BUILD)/bench/engine.json --update-doc $(TOP)/docs/BENCHMARKS.md

BUILD_TARGETS += engine-build
NATIVE_TESTS += engine-test
BENCH_TARGETS += engine-bench
