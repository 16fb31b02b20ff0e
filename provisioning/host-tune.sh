#!/usr/bin/env bash
# Bare-metal NIC and host tuning for an xdpex gateway: the steps that decide whether the AF_XDP
# fast path gets its queues to itself and polls them without interrupts. For one interface it sets
# the channel count to the number of AF_XDP queues (ethtool -L), spreads RSS over them (ethtool -X),
# steers the order port into them (ethtool -N ntuple), grows the rings to their maximum (ethtool -G),
# turns LRO off (XDP drivers refuse it), pins each queue's IRQ to one of the gateway CPUs
# (/proc/irq/N/smp_affinity_list), enables deferred hard IRQs for busy polling (napi_defer_hard_irqs
# and gro_flush_timeout in /sys/class/net/IFACE/), reserves 2 MiB huge pages for the UMEM, and
# prints (never applies) the CPU-isolation changes that need a reboot.
#
# With --dpdk the NIC is prepared for xdpexd --mode dpdk instead: huge pages reserved and
# hugetlbfs mounted, the vfio-pci module loaded, the IOMMU checked, the interface's PCI function
# taken from its kernel driver and bound to vfio-pci (driver_override), and the EAL arguments and
# CPU isolation to use printed. The kernel-driver steps (channels, RSS, rings, IRQs, busy polling)
# do not apply then: DPDK drives the queues itself.
#
# Each step checks first whether the device supports it; one that does not (a veth has no ntuple
# filters, a virtual device has no IRQs or PCI function) says so and the script goes on. Read-only
# queries (ethtool -l/-g/-n/-k, sysfs) run even with --dry-run, which prints every changing command
# instead of running it. Running it twice changes nothing the second time.
#
# Usage: provisioning/host-tune.sh IFACE [--queues N] [--port PORT] [--cpus LIST] [--hugepages N]
#                                        [--dpdk [--force]] [--dry-run]
set -euo pipefail

prog=host-tune
say() { printf '%s: %s\n' "$prog" "$*"; }
skip() { printf '%s: skip: %s\n' "$prog" "$*"; }
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 2
}
usage() {
	sed -n '22,23p' "$0" | sed 's/^# \{0,1\}//'
	cat <<'EOF'
  IFACE          the gateway's order interface
  --queues N     AF_XDP queues (one xdpexd thread each); default: every CPU in --cpus
  --port PORT    UDP port of the order traffic; default 9000
  --cpus LIST    gateway CPUs, e.g. 2-5 or 2,4,6; default: every online CPU but CPU 0
  --hugepages N  2 MiB huge pages to reserve at least; default 512 (1 GiB), 0 leaves them alone
  --dpdk         prepare the NIC for xdpexd --mode dpdk (vfio-pci, hugetlbfs) instead
  --force        with --dpdk: bind even the interface that carries the default route
  --dry-run      print every changing command instead of running it
EOF
}

iface="" queues="" port=9000 cpus="" hugepages=512 dry=0 dpdk=0 force=0
while [ $# -gt 0 ]; do
	case "$1" in
	--queues) queues=${2:?--queues needs a value}; shift 2 ;;
	--port) port=${2:?--port needs a value}; shift 2 ;;
	--cpus) cpus=${2:?--cpus needs a value}; shift 2 ;;
	--hugepages) hugepages=${2:?--hugepages needs a value}; shift 2 ;;
	--dry-run) dry=1; shift ;;
	--dpdk) dpdk=1; shift ;;
	--force) force=1; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; die "unknown option '$1'" ;;
	*)
		[ -z "$iface" ] || die "more than one interface given ('$iface' and '$1')"
		iface=$1; shift ;;
	esac
done
[ -n "$iface" ] || { usage >&2; die "missing IFACE"; }

# Expand a CPU list ("2-4,7") to one CPU per word; fail on anything else.
expand_cpus() {
	local part out=() a b c
	IFS=, read -ra parts <<<"$1"
	for part in "${parts[@]}"; do
		if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
			a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]}
			[ "$a" -le "$b" ] || return 1
			for ((c = a; c <= b; c++)); do out+=("$c"); done
		elif [[ $part =~ ^[0-9]+$ ]]; then
			out+=("$part")
		else
			return 1
		fi
	done
	[ ${#out[@]} -gt 0 ] || return 1
	echo "${out[@]}"
}

[[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] ||
	die "--port '$port' is not a UDP port (1..65535)"
[[ $hugepages =~ ^[0-9]+$ ]] || die "--hugepages '$hugepages' is not a count"
online=$(cat /sys/devices/system/cpu/online)
[ -n "$cpus" ] || cpus=$( (expand_cpus "$online" | tr ' ' '\n' | grep -vx 0 || echo 0) | paste -sd,)
cpu_list=$(expand_cpus "$cpus") || die "--cpus '$cpus' is not a CPU list like 2-5 or 2,4,6"
read -ra cpu_arr <<<"$cpu_list"
for c in "${cpu_arr[@]}"; do
	[ -d "/sys/devices/system/cpu/cpu$c" ] || die "--cpus: CPU $c does not exist (online: $online)"
done
[ -n "$queues" ] || queues=${#cpu_arr[@]}
[[ $queues =~ ^[0-9]+$ ]] && [ "$queues" -ge 1 ] || die "--queues '$queues' is not a count >= 1"

[ -e "/sys/class/net/$iface" ] || die "interface '$iface' does not exist (see: ip link show)"
[ "$dry" = 1 ] || [ "$(id -u)" = 0 ] || die "run as root to apply, or use --dry-run"
command -v ethtool >/dev/null || die "ethtool is not installed (provisioning/setup.sh installs it)"

# run CMD...: print it; run it unless --dry-run. A failing command is reported and counted (so
# callers compare $failed), the remaining steps still run, and the exit status then is 1.
failed=0
run() {
	local err
	printf '+ %s\n' "$*"
	[ "$dry" = 0 ] || return 0
	if ! err=$("$@" 2>&1); then
		printf '%s: error: `%s` failed: %s\n' "$prog" "$*" "${err:-no message}" >&2
		failed=$((failed + 1))
	fi
}
# put VALUE FILE: the sysfs/procfs write, shown as the shell command it amounts to.
put() {
	local err
	printf '+ echo %s > %s\n' "$1" "$2"
	[ "$dry" = 0 ] || return 0
	if ! err=$( (echo "$1" >"$2") 2>&1); then
		printf '%s: error: writing %s to %s failed: %s\n' "$prog" "$1" "$2" "${err##*error: }" >&2
		failed=$((failed + 1))
	fi
}

mode=$([ "$dry" = 1 ] && echo "dry run, nothing is changed" || echo "applying")
driver=$(basename "$(readlink -f "/sys/class/net/$iface/device/driver" 2>/dev/null)" 2>/dev/null ||
	true)
kind=$([ "$dpdk" = 1 ] && echo DPDK || echo AF_XDP)
say "$iface (driver ${driver:-none, virtual device}): $queues $kind queue(s), UDP port $port," \
	"CPUs ${cpu_arr[*]}; $mode"

# ethtool field from a "Pre-set maximums"/"Current hardware settings" block: section 1 or 2.
eth_field() { # OUTPUT SECTION FIELD
	awk -v sec="$2" -v f="$3:" '/^Pre-set maximums|^Current hardware settings/ {n++}
		n == sec && $1 == f {print $2; exit}' <<<"$1"
}

# 1. Channels: exactly one combined channel per AF_XDP queue -------------------------------------
step_channels() {
	local out max cur
	if ! out=$(ethtool -l "$iface" 2>/dev/null); then
		skip "channels: $iface does not support ethtool -l"
		return
	fi
	max=$(eth_field "$out" 1 Combined) cur=$(eth_field "$out" 2 Combined)
	if ! [[ $max =~ ^[0-9]+$ ]] || [ "$max" = 0 ]; then
		# No combined channels: separate rx/tx queues (veth), or a fixed queue count.
		max=$(eth_field "$out" 1 RX)
		if ! [[ $max =~ ^[0-9]+$ ]] || [ "$max" = 0 ]; then
			skip "channels: $iface has no settable channels; queue count stays as it is"
			return
		fi
		[ "$queues" -le "$max" ] || die "--queues $queues: $iface has at most $max rx channels"
		if [ "$(eth_field "$out" 2 RX)" = "$queues" ] && [ "$(eth_field "$out" 2 TX)" = "$queues" ]
		then
			say "channels: already $queues rx and tx"
		else
			run ethtool -L "$iface" rx "$queues" tx "$queues"
		fi
		return
	fi
	if [ "$queues" -gt "$max" ]; then
		die "--queues $queues: $iface has at most $max combined channels"
	fi
	if [ "$cur" = "$queues" ]; then
		say "channels: already $queues combined"
	else
		run ethtool -L "$iface" combined "$queues"
	fi
}

# 2. RSS over the AF_XDP queues and ntuple steering of the order port ----------------------------
step_steering() {
	local feat ids id
	if ! ethtool -x "$iface" >/dev/null 2>&1; then
		skip "rss: $iface has no RSS indirection table (ethtool -x)"
	else
		run ethtool -X "$iface" equal "$queues"
	fi
	feat=$(ethtool -k "$iface" 2>/dev/null | awk -F': ' '$1 == "ntuple-filters" {print $2}')
	if [ -z "$feat" ] || [[ $feat == *fixed* && $feat != on* ]]; then
		skip "flow steering: $iface has no ntuple filters (ntuple-filters: ${feat:-unknown});" \
			"order traffic reaches the queues through RSS only"
		return
	fi
	local before=$failed
	[[ $feat == on* ]] || run ethtool -K "$iface" ntuple on
	if [ "$failed" != "$before" ]; then
		skip "flow steering: ntuple filters could not be turned on"
		return
	fi
	# Remove our earlier rules for this port so a second run does not stack them.
	ids=$(ethtool -n "$iface" 2>/dev/null | awk -v p="$port" '/^Filter:/ {id=$2}
		/Dst port:/ && $3 == p && id != "" {print id; id=""}')
	for id in $ids; do run ethtool -N "$iface" delete "$id"; done
	if [ "$queues" = 1 ]; then
		run ethtool -N "$iface" flow-type udp4 dst-port "$port" action 0
		return
	fi
	# Several queues: an RSS context over queues 0..N-1 keeps per-flow hashing inside them.
	local ctx
	if [ "$dry" = 1 ]; then
		run ethtool -X "$iface" context new start 0 equal "$queues"
		ctx='<context printed by the command above>'
	elif ! ctx=$(ethtool -X "$iface" context new start 0 equal "$queues" 2>&1 |
		awk '/New RSS context is/ {print $NF}') || [ -z "$ctx" ]; then
		printf '+ ethtool -X %s context new start 0 equal %s\n' "$iface" "$queues"
		skip "flow steering: $iface has no RSS contexts; the default RSS table already spreads" \
			"every flow over the $queues AF_XDP queues"
		return
	else
		printf '+ ethtool -X %s context new start 0 equal %s  # -> context %s\n' \
			"$iface" "$queues" "$ctx"
	fi
	run ethtool -N "$iface" flow-type udp4 dst-port "$port" context "$ctx"
}

# 3. Ring sizes: the maximum, so a burst waits in the ring instead of being dropped --------------
step_rings() {
	local out rx tx
	if ! out=$(ethtool -g "$iface" 2>/dev/null); then
		skip "rings: $iface does not support ethtool -g"
		return
	fi
	rx=$(eth_field "$out" 1 RX) tx=$(eth_field "$out" 1 TX)
	if [ "$(eth_field "$out" 2 RX)" = "$rx" ] && [ "$(eth_field "$out" 2 TX)" = "$tx" ]; then
		say "rings: already at the maximum (rx $rx, tx $tx)"
		return
	fi
	run ethtool -G "$iface" rx "$rx" tx "$tx"
}

# 4. Offloads: LRO merges frames and native XDP refuses to attach while it is on -----------------
step_offloads() {
	local lro
	lro=$(ethtool -k "$iface" 2>/dev/null | awk -F': ' '$1 == "large-receive-offload" {print $2}')
	case "$lro" in
	on*fixed*) skip "offloads: LRO is fixed on for $iface; native XDP may refuse to attach" ;;
	on*) run ethtool -K "$iface" lro off ;;
	"") skip "offloads: $iface reports no LRO setting" ;;
	*) say "offloads: LRO already off" ;;
	esac
}

# 5. IRQ affinity: queue q's interrupts on gateway CPU q (mod the CPU count) --------------------
# Queue vectors are found by name in /proc/interrupts: IFACE-TxRx-3, IFACE-rx-3 (Intel and most
# others) or virtioN-input.3 / virtioN-output.3 (virtio-net); failing that, every MSI vector of the
# PCI function, round robin.
step_irqs() {
	local dev pattern lines=() line irq name q cpu cur n=0 i=0
	dev=$(basename "$(readlink -f "/sys/class/net/$iface/device" 2>/dev/null)" 2>/dev/null || true)
	if [ -z "$dev" ] || [ "$dev" = device ]; then
		skip "irq affinity: $iface has no IRQs of its own (virtual device)"
		return
	fi
	case "$dev" in
	virtio*) pattern="^$dev-(input|output)[.][0-9]+\$" ;;
	*) pattern="^$iface[-@].*[0-9]+\$" ;;
	esac
	mapfile -t lines < <(awk -v p="$pattern" '$NF ~ p {sub(":", "", $1); print $1, $NF}' \
		/proc/interrupts)
	if [ ${#lines[@]} -eq 0 ] && [ -d "/sys/class/net/$iface/device/msi_irqs" ]; then
		mapfile -t lines < <(ls "/sys/class/net/$iface/device/msi_irqs" | sort -n |
			awk '{print $1, "msi-" NR - 1}')
	fi
	if [ ${#lines[@]} -eq 0 ]; then
		skip "irq affinity: no queue IRQs of $iface ($dev) in /proc/interrupts"
		return
	fi
	if systemctl is-active --quiet irqbalance 2>/dev/null; then
		say "irq affinity: irqbalance is running and will undo this; stop it:" \
			"systemctl disable --now irqbalance"
	fi
	for line in "${lines[@]}"; do
		irq=${line%% *} name=${line#* }
		[ -e "/proc/irq/$irq/smp_affinity_list" ] || continue
		# The queue number is the name's last number (msi-N: its position).
		q=$(grep -oE '[0-9]+$' <<<"$name")
		cpu=${cpu_arr[$((q % ${#cpu_arr[@]}))]}
		cur=$(cat "/proc/irq/$irq/smp_affinity_list")
		if [ "$cur" != "$cpu" ]; then
			put "$cpu" "/proc/irq/$irq/smp_affinity_list"
			i=$((i + 1))
		fi
		n=$((n + 1))
	done
	say "irq affinity: $n queue IRQ(s) of $iface on CPUs ${cpu_arr[*]} ($i to change)"
}

# 6. Busy polling: defer hard IRQs while the gateway polls (SO_PREFER_BUSY_POLL) -----------------
# Values from the kernel's napi documentation: 2 deferrals and a 200 us safety timer.
step_busy_poll() {
	local f v
	for f in napi_defer_hard_irqs:2 gro_flush_timeout:200000; do
		v=${f#*:} f=/sys/class/net/$iface/${f%%:*}
		if [ ! -e "$f" ]; then
			skip "busy poll: $f does not exist (kernel older than 5.11?)"
			continue
		fi
		if [ "$(cat "$f")" = "$v" ]; then
			say "busy poll: $(basename "$f") already $v"
		else
			put "$v" "$f"
		fi
	done
}

# 7. Huge pages for the UMEM (only ever raised) --------------------------------------------------
step_hugepages() {
	local f=/proc/sys/vm/nr_hugepages cur
	if [ "$hugepages" = 0 ]; then
		skip "hugepages: --hugepages 0"
		return
	fi
	cur=$(cat $f)
	if [ "$cur" -ge "$hugepages" ]; then
		say "hugepages: $cur reserved (>= $hugepages)"
		return
	fi
	put "$hugepages" $f
	if [ "$dry" = 0 ] && [ "$(cat $f)" -lt "$hugepages" ]; then
		say "hugepages: the kernel reserved only $(cat $f) of $hugepages (fragmented memory);" \
			"reserve them at boot with hugepages=$hugepages on the kernel command line"
	fi
}

# 8. CPU isolation: needs a reboot, so it is advice ----------------------------------------------
step_advice() {
	local others
	others=$( (expand_cpus "$online" | tr ' ' '\n' | grep -vxF -f <(tr ' ' '\n' <<<"${cpu_arr[*]}") ||
		true) | paste -sd,)
	if [ -z "$others" ]; then
		say "advice (not applied): --cpus $cpus takes every CPU; leave at least one (CPU 0) for" \
			"the kernel, interrupts and the control plane, then isolate the rest"
		return
	fi
	cat <<EOF
$prog: advice (not applied): isolate the gateway CPUs from the scheduler, timers and RCU, and keep
$prog: other interrupts off them, by adding to the kernel command line and rebooting:
$prog:     isolcpus=$cpus nohz_full=$cpus rcu_nocbs=$cpus irqaffinity=$others
$prog: then run xdpexd with one queue per CPU (--queues $queues, threads pinned to $cpus), keep the
$prog: CPU frequency governor at performance (cpupower frequency-set -g performance) and
$prog: deep C-states off (intel_idle.max_cstate=1 processor.max_cstate=1) for the lowest latency.
EOF
}

# DPDK 1. vfio-pci and the IOMMU -------------------------------------------------------------
step_vfio() {
	if [ -d /sys/bus/pci/drivers/vfio-pci ]; then
		say "vfio-pci: loaded"
	else
		run modprobe vfio-pci
	fi
	if [ -n "$(ls -A /sys/kernel/iommu_groups 2>/dev/null)" ]; then
		say "iommu: on ($(ls /sys/kernel/iommu_groups | wc -l) groups)"
	else
		say "advice (not applied): no IOMMU groups; add intel_iommu=on iommu=pt (or" \
			"amd_iommu=on) to the kernel command line and reboot, or, on a host without an" \
			"IOMMU only, allow vfio's unsafe no-IOMMU mode:" \
			"echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode"
	fi
}

# DPDK 2. The interface's PCI function from its kernel driver to vfio-pci ----------------------
pci="" pci_re='^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}[.][0-7]$'
step_bind() {
	local dev cur
	dev=$(readlink -f "/sys/class/net/$iface/device" 2>/dev/null || true)
	# virtio-net: the net device hangs off a virtio device, whose parent is the PCI function.
	[[ $(basename "$dev") =~ $pci_re ]] || dev=$(dirname "$dev")
	if [ -z "$dev" ] || [[ $dev != /sys/devices/pci* ]] || ! [[ $(basename "$dev") =~ $pci_re ]]
	then
		skip "vfio-pci binding: $iface is not a PCI device (virtual); give DPDK an af_packet" \
			"port on it instead: --vdev=net_af_packet0,iface=$iface (the lab's way)"
		return
	fi
	pci=$(basename "$dev")
	cur=$(basename "$(readlink -f "$dev/driver")")
	if [ "$cur" = vfio-pci ]; then
		say "vfio-pci binding: $pci already bound"
		return
	fi
	if ip route show default 2>/dev/null | grep -qw "dev $iface"; then
		[ "$force" = 1 ] || [ "$dry" = 1 ] ||
			die "$iface carries the default route: binding it to vfio-pci cuts this host off" \
				"(use another NIC for the orders, or --force)"
		say "vfio-pci binding: $iface carries the default route; a real run refuses without --force"
	fi
	say "vfio-pci binding: $pci ($iface) leaves $cur; the kernel has no $iface until it is" \
		"given back: echo > $dev/driver_override; echo $pci >" \
		"/sys/bus/pci/drivers/vfio-pci/unbind; echo $pci > /sys/bus/pci/drivers_probe"
	run ip link set "$iface" down
	put vfio-pci "$dev/driver_override"
	put "$pci" "$dev/driver/unbind"
	put "$pci" /sys/bus/pci/drivers_probe
}

# DPDK 3. hugetlbfs for EAL's memory ------------------------------------------------------------
step_hugetlbfs() {
	if grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
		say "hugetlbfs: mounted on /dev/hugepages"
	else
		run mkdir -p /dev/hugepages
		run mount -t hugetlbfs nodev /dev/hugepages
	fi
}

# DPDK 4. What to run ------------------------------------------------------------------------------
step_dpdk_advice() {
	local dev_arg
	if [ -n "$pci" ]; then
		dev_arg="-a $pci"
	else
		dev_arg="--vdev=net_af_packet0,iface=$iface"
	fi
	say "run: xdpexd --mode dpdk --addr <gateway IPv4> --queues $(seq -s, 0 $((queues - 1)))" \
		"--cpus $(tr ' ' ',' <<<"${cpu_arr[*]}") --poll spin [...] -- $dev_arg" \
		"-l ${cpu_arr[0]} --file-prefix xdpex"
	say "(queue thread i runs on the i-th CPU of --cpus; isolate those CPUs as below)"
}

if [ "$dpdk" = 1 ]; then
	step_vfio
	step_bind
	step_hugepages
	step_hugetlbfs
	step_dpdk_advice
	step_advice
else
	step_channels
	step_steering
	step_rings
	step_offloads
	step_irqs
	step_busy_poll
	step_hugepages
	step_advice
fi
if [ "$failed" -gt 0 ]; then
	say "done ($mode) with $failed failed step(s), see the errors above"
	exit 1
fi
say "done ($mode)"
