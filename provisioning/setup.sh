#!/usr/bin/env bash
# Idempotent setup of a fresh Debian 12 host (developer machine, CI, Vagrant VM or bare-metal
# gateway): the Debian packages every part builds with, bpffs, a Python virtual environment at
# .venv with the project installed editable, and a check of the kernel features the fast path
# needs. A second run only verifies and takes seconds. Usage: provisioning/setup.sh [--no-kernel-check]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (packages, bpffs and network namespaces need it)"

# 1. Debian packages -----------------------------------------------------------------------------
pkgs=(
	build-essential pkg-config cmake ninja-build git
	clang llvm lld libbpf-dev libxdp-dev xdp-tools bpftool libelf-dev zlib1g-dev libpcap-dev
	linux-libc-dev libssl-dev libjansson-dev libgtest-dev libgmock-dev
	iproute2 ethtool iputils-ping tcpdump tshark kmod procps
	python3 python3-venv python3-dev clang-format
	vagrant vagrant-libvirt ruby
	# the services the tests start privately on free ports (never the system instances):
	postgresql redis-server etcd-server etcd-client
	# DPDK (xdpexd --mode dpdk), HTTP load (make control-bench), promtool (alert rules)
	dpdk-dev libdpdk-dev wrk prometheus
	# clang's sanitizer and libFuzzer runtimes (make fuzz, the ASan+UBSan xdpexd)
	libclang-rt-dev
	# certificates the TLS tests make for themselves (tests/test_control_security.py)
	openssl
)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
	apt-get update -qq
	# Server packages must not start (or enable) their system services: the tests and `xdpex
	# up` start private instances, and a gateway host keeps its own databases closed.
	# policy-rc.d answering 101 tells invoke-rc.d "not allowed" for the length of the install.
	rcd=/usr/sbin/policy-rc.d
	had_rcd=0
	[ -e "$rcd" ] && had_rcd=1
	[ $had_rcd = 1 ] || { printf '#!/bin/sh\nexit 101\n' >"$rcd" && chmod 755 "$rcd"; }
	rc=0
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
	[ $had_rcd = 1 ] || rm -f "$rcd"
	[ $rc = 0 ] || die "apt-get install failed (exit $rc): ${missing[*]}"
	# ...and a package installed here is not enabled for the next boot either.
	declare -A unit_of=([postgresql]=postgresql [redis-server]=redis-server [etcd-server]=etcd
		[prometheus]=prometheus)
	if command -v systemctl >/dev/null; then
		for p in "${missing[@]}"; do
			[ -n "${unit_of[$p]:-}" ] && systemctl disable --quiet "${unit_of[$p]}" 2>/dev/null || true
		done
	fi
fi

# systemd-analyze checks the units under deploy/systemd (it works without systemd running): a
# container image without systemd gets Debian's package for the tool only.
if ! command -v systemd-analyze >/dev/null; then
	say "installing systemd (for systemd-analyze)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null \
		|| die "apt-get install systemd failed"
fi

# 2. bpffs ---------------------------------------------------------------------------------------
if ! mountpoint -q /sys/fs/bpf; then
	say "mounting bpffs on /sys/fs/bpf"
	mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs on /sys/fs/bpf"
fi

# The local order-entry socket (unix datagrams between the control plane and xdpexd) needs more
# than the kernel default of 10 queued datagrams per socket, or answers are dropped and resent.
if [ "$(sysctl -n net.unix.max_dgram_qlen 2>/dev/null || echo 0)" -lt 512 ]; then
	sysctl -qw net.unix.max_dgram_qlen=512 || say "warning: cannot raise net.unix.max_dgram_qlen"
fi

# 3. Python virtual environment ------------------------------------------------------------------
py=${PYTHON:-python3}
stamp=.venv/.xdpex-setup
want=$(cat pyproject.toml provisioning/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
	say "creating .venv with $($py --version)"
	$py -m venv .venv || die "python3 -m venv failed"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
	say "installing the project and its dev tools into .venv"
	# pip is chatty (warnings about a host's pip config, setuptools notices): its output is kept
	# in .venv/pip.log and shown only when it fails.
	quiet() { "$@" >>.venv/pip.log 2>&1 || { cat .venv/pip.log >&2; die "pip failed: $*"; }; }
	: >.venv/pip.log
	quiet .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
	quiet .venv/bin/python -m pip install -q -e '.[dev]'
	echo "$want" >"$stamp"
fi

# 4. Kernel features -----------------------------------------------------------------------------
if [ "${1:-}" != "--no-kernel-check" ]; then
	need() { "$@" >/dev/null 2>&1; }
	need bpftool prog show || die "kernel feature missing: the bpf() syscall (bpftool prog show failed)"
	features=$(bpftool feature probe kernel 2>/dev/null || true)
	grep -q "eBPF program_type xdp is available" <<<"$features" ||
		die "kernel feature missing: XDP programs"
	grep -q "eBPF map_type xskmap is available" <<<"$features" ||
		die "kernel feature missing: XSKMAP (AF_XDP)"
	.venv/bin/python -c 'import socket; socket.socket(44, socket.SOCK_RAW).close()' 2>/dev/null ||
		die "kernel feature missing: AF_XDP sockets (socket(AF_XDP) failed)"
	[ -r /sys/kernel/btf/vmlinux ] || die "kernel feature missing: BTF (/sys/kernel/btf/vmlinux)"
	ns=xdpex-setup-$$
	ip netns add "$ns" 2>/dev/null || die "kernel feature missing: network namespaces (ip netns add)"
	if ! ip -n "$ns" link add xs0 type veth peer name xs1 2>/dev/null; then
		ip netns del "$ns"
		die "kernel feature missing: veth (ip link add type veth)"
	fi
	ip netns del "$ns"
fi
say "ready ($(uname -r), $(.venv/bin/python --version))"
