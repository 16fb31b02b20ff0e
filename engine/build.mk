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

# Both streams (normal and deep queues), JSON to build/bench/engine.json, the Engine section of
# docs/BENCHMARKS.md rewritten with the figures and the ratio to the previous ones.
engine-bench: engine-build $(SETUP_STAMP)
	$(Q)mkdir -p $(BUILD)/bench
	$(Q)$(PY) -m xdpex.cli engine bench --stream $(ENGINE_STREAM) --report $(BUILD)/bench/engine.json --update-doc $(TOP)/docs/BENCHMARKS.md

BUILD_TARGETS += engine-build
NATIVE_TESTS += engine-test
BENCH_TARGETS += engine-bench
