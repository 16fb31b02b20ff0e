#!/usr/bin/env bash
# Installs the TRex traffic generator on the Vagrant lab's "trafgen" VM (or a bare-metal traffic
# host) from its release tarball, and writes /etc/trex_cfg.yaml for one lab port. It runs only as a
# VM provisioning step (Vagrantfile) or by hand on a generator host: never on a developer machine
# or in CI, which have no network to fetch it from and no NIC to give it.
#
# TRex takes the lab NIC away from the kernel through DPDK (vfio-pci) while it runs; a VM has no
# IOMMU, so vfio runs in no-IOMMU mode. The second TRex port is a "dummy": the gateway answers on
# the same link. Idempotent: a second run only checks.
#
# Environment: TREX_VERSION (v3.06), TREX_IP (the generator's lab address; its interface becomes
# TRex port 0), TREX_GATEWAY (the gateway's lab address, resolved by TRex with ARP), TREX_IFACE
# (optional, instead of finding the interface by TREX_IP), TREX_URL (optional mirror of the
# release directory), TREX_SHA256 (optional checksum of the tarball, checked when given).
set -euo pipefail

say() { printf 'install-trex: %s\n' "$*"; }
die() {
	printf 'install-trex: error: %s\n' "$*" >&2
	exit 1
}

version=${TREX_VERSION:-v3.06}
ip=${TREX_IP:?TREX_IP: the lab address of this host is required}
gw=${TREX_GATEWAY:?TREX_GATEWAY: the lab address of the gateway is required}
url=${TREX_URL:-https://trex-tgn.cisco.com/trex/release}/$version.tar.gz
dest=/opt/trex/$version
[ "$(id -u)" = 0 ] || die "run as root"

# 1. Packages TRex's own scripts use (dpdk_setup_ports.py needs lspci and python3) ---------------
pkgs=(curl ca-certificates pciutils kmod python3 python3-distutils)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. The release tarball ---------------------------------------------------------------------------
if [ -x "$dest/t-rex-64" ]; then
	say "TRex $version already in $dest"
else
	mkdir -p /opt/trex
	tmp=$(mktemp /opt/trex/.download.XXXXXX)
	trap 'rm -f "$tmp"' EXIT
	say "downloading $url"
	curl -fsSL --retry 3 -o "$tmp" "$url" || die "cannot download $url (set TREX_URL to a mirror)"
	if [ -n "${TREX_SHA256:-}" ]; then
		echo "$TREX_SHA256  $tmp" | sha256sum -c --quiet - || die "checksum of $url does not match"
	fi
	tar -xzf "$tmp" -C /opt/trex || die "cannot unpack $url"
	[ -x "$dest/t-rex-64" ] || die "$url did not contain $version/t-rex-64"
fi
ln -sfn "$dest" /opt/trex/current

# 3. The lab port ----------------------------------------------------------------------------------
iface=${TREX_IFACE:-$(ip -o -4 addr show | awk -v a="$ip" '{split($4, p, "/")} p[1] == a {print $2}')}
[ -n "$iface" ] || die "no interface holds $ip; set TREX_IFACE"
if [ -e "/sys/class/net/$iface/device" ]; then
	dev=$(readlink -f "/sys/class/net/$iface/device")
	# virtio-net: the netdev hangs off virtioN, whose parent is the PCI function.
	case "$(basename "$dev")" in virtio*) dev=$(dirname "$dev") ;; esac
	pci=$(basename "$dev")
	mac=$(cat "/sys/class/net/$iface/address")
elif [ -f /etc/trex_cfg.yaml ]; then
	say "$iface is already bound to DPDK; keeping /etc/trex_cfg.yaml"
	pci=""
else
	die "$iface has no PCI device (already bound to DPDK?); set TREX_IFACE to a kernel interface"
fi

# 4. vfio-pci without an IOMMU (a VM has none), now and after a reboot -----------------------------
echo "options vfio enable_unsafe_noiommu_mode=1" >/etc/modprobe.d/xdpex-trex.conf
echo vfio-pci >/etc/modules-load.d/xdpex-trex.conf
modprobe vfio enable_unsafe_noiommu_mode=1 || die "cannot load vfio"
modprobe vfio-pci || die "cannot load vfio-pci"
echo 1 >/sys/module/vfio/parameters/enable_unsafe_noiommu_mode

# 5. /etc/trex_cfg.yaml: port 0 = the lab NIC, port 1 = dummy; L3 mode (TRex ARPs the gateway) ----
if [ -n "$pci" ]; then
	ncpu=$(nproc)
	[ "$ncpu" -ge 3 ] || die "TRex needs at least 3 CPUs (control, latency, one tx/rx); have $ncpu"
	threads=$(seq -s, 2 $((ncpu - 1)))
	cat >/etc/trex_cfg.yaml <<YAML
# Written by provisioning/lab/install-trex.sh: TRex port 0 is $iface ($pci, $mac, $ip),
# which DPDK takes from the kernel while TRex runs; port 1 is a dummy.
- version: 2
  interfaces: ["${pci#0000:}", "dummy"]
  port_info:
    - ip: $ip
      default_gw: $gw
    - ip: 198.18.0.1
      default_gw: 198.18.0.2
  platform:
    master_thread_id: 0
    latency_thread_id: 1
    dual_if:
      - socket: 0
        threads: [$threads]
YAML
	say "wrote /etc/trex_cfg.yaml: port 0 = $iface ($pci), gateway $gw"
fi
say "ready: start the server with  cd /opt/trex/current && sudo ./t-rex-64 -i"
say "then from /xdpex:  .venv/bin/python traffic/trex/run.py --help"
