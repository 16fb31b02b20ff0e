# xdpex: the make targets are the interface. Every target runs provisioning/setup.sh first when
# the environment is missing or stale, so a fresh clone needs nothing else.
#   make run    set up, build, bring up the lab, run the gateway and drive orders through it
#   make test   set up, build, run every test (C, C++, BPF, Python)
#   make bench  benchmarks (engine, wire); figures go to build/bench and docs/BENCHMARKS.md
#   make soak   reliability scenarios under injected faults; build/soak/summary.json
#   make lint   clang-format check of the C, C++ and BPF, ruff, mypy
#   make build  build every native part under build/
#   make clean  remove build outputs
# Each part adds its rules in <part>/build.mk; V=1 shows the commands.

TOP := $(abspath .)
BUILD := $(TOP)/build
VENV := $(TOP)/.venv
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.xdpex-setup

ifeq ($(V),1)
Q :=
else
Q := @
MAKEFLAGS += --no-print-directory
endif

# Native flags shared by the C parts.
CC := gcc
CLANG := clang
CFLAGS_COMMON := -O2 -g -Wall -Wextra -Werror -I$(TOP)/include -I$(TOP)/engine/include

# Parts append to these.
BUILD_TARGETS :=
NATIVE_TESTS :=
BENCH_TARGETS :=

.PHONY: all setup build test test-native test-python bench lint clean run help
all: build

help:
	@sed -n '1,9p' Makefile

# Setup runs when the venv is missing or pyproject.toml / setup.sh changed since it last ran.
$(SETUP_STAMP): pyproject.toml provisioning/setup.sh
	$(Q)bash provisioning/setup.sh
setup:
	$(Q)bash provisioning/setup.sh

include $(sort $(wildcard */build.mk))

build: $(SETUP_STAMP) $(BUILD_TARGETS)

test: build
	$(Q)$(MAKE) test-native
	$(Q)$(MAKE) test-python

test-native: $(NATIVE_TESTS)

test-python: build
	$(Q)cd $(TOP) && $(VENV)/bin/pytest

bench: build $(BENCH_TARGETS)

# Every C, C++ and BPF source of the project (.clang-format: kernel style, the C++ too).
FORMAT_SRCS = $(shell find $(addprefix $(TOP)/,control/xdpex/ext dataplane engine feed fuzz include \
	tests/c tests/fuzz traffic xdp) \( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' \) \
	-not -path '*/build/*' 2>/dev/null)

lint: $(SETUP_STAMP)
	$(Q)clang-format --dry-run --Werror $(FORMAT_SRCS)
	$(Q)$(VENV)/bin/ruff check control proto traffic services engine/python tests fuzz
	$(Q)$(VENV)/bin/mypy control/xdpex proto/xdpex_proto traffic/xdpex_traffic services/xdpex_services engine/python/xdpex_engine

run: build
	$(Q)$(PY) -m xdpex.cli run

clean:
	rm -rf $(BUILD)
