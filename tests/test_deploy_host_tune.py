"""provisioning/host-tune.sh on real virtual devices in a network namespace this test creates.

A veth has busy-poll settings and rx/tx channels but no ntuple filters, rings or IRQs; an ifb has
no ethtool channel support at all (this kernel has no `dummy` driver, so ifb stands in for a
device without queues). The script must print every changing command under --dry-run and change
nothing, apply what the device supports for real, skip the rest with a reason, and refuse a
missing interface or bad option with a clear error.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent
SCRIPT = TOP / "provisioning" / "host-tune.sh"


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60)


class Netns:
    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.name = f"xdpex-ht-{tag}"
        self.veth = f"htv{tag}"[:15]
        self.peer = f"htp{tag}"[:15]
        self.ifb = f"hti{tag}"[:15]

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.name, *cmd, check=check)

    def tune(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("bash", str(SCRIPT), *args, check=False)

    def sysfs(self, dev: str, attr: str) -> str:
        return self.run("cat", f"/sys/class/net/{dev}/{attr}").stdout.strip()


@pytest.fixture
def ns() -> Iterator[Netns]:
    if os.geteuid() != 0:
        pytest.fail("host-tune tests need root (network namespaces, sysfs writes)")
    n = Netns()
    sh("ip", "netns", "add", n.name)
    try:
        sh("ip", "-n", n.name, "link", "add", n.veth, "type", "veth", "peer", "name", n.peer)
        made = sh("ip", "-n", n.name, "link", "add", n.ifb, "type", "ifb", check=False)
        if made.returncode != 0:
            pytest.fail(f"kernel feature missing: ifb devices ({made.stderr.strip()})")
        yield n
    finally:
        sh("ip", "netns", "del", n.name, check=False)


def test_dry_run_on_veth_prints_commands_and_changes_nothing(ns: Netns) -> None:
    before = (ns.sysfs(ns.veth, "napi_defer_hard_irqs"), ns.sysfs(ns.veth, "gro_flush_timeout"))
    hp_before = Path("/proc/sys/vm/nr_hugepages").read_text()
    r = ns.tune(ns.veth, "--dry-run", "--cpus", "0", "--hugepages", "999999")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "dry run, nothing is changed" in out
    assert f"+ echo 2 > /sys/class/net/{ns.veth}/napi_defer_hard_irqs" in out
    assert f"+ echo 200000 > /sys/class/net/{ns.veth}/gro_flush_timeout" in out
    assert "+ echo 999999 > /proc/sys/vm/nr_hugepages" in out
    assert f"skip: flow steering: {ns.veth} has no ntuple filters" in out
    assert f"skip: rings: {ns.veth} does not support ethtool -g" in out
    assert f"skip: irq affinity: {ns.veth} has no IRQs of its own" in out
    assert "isolcpus=0 nohz_full=0 rcu_nocbs=0" in out
    assert "+ ethtool -N" not in out
    # Nothing was applied.
    after = (ns.sysfs(ns.veth, "napi_defer_hard_irqs"), ns.sysfs(ns.veth, "gro_flush_timeout"))
    assert after == before
    assert Path("/proc/sys/vm/nr_hugepages").read_text() == hp_before


def test_dry_run_on_veth_sets_rx_tx_channels(ns: Netns) -> None:
    max_rx = int(
        next(
            line.split()[1]
            for line in ns.run("ethtool", "-l", ns.veth).stdout.splitlines()
            if line.startswith("RX:")
        )
    )
    if max_rx < 2:
        pytest.fail(f"veth offers {max_rx} rx channel(s); the test needs a machine with 2+ CPUs")
    r = ns.tune(ns.veth, "--dry-run", "--queues", "2", "--cpus", "0,1", "--hugepages", "0")
    assert r.returncode == 0, r.stderr
    assert f"+ ethtool -L {ns.veth} rx 2 tx 2" in r.stdout
    too_many = ns.tune(ns.veth, "--dry-run", "--queues", str(max_rx + 1), "--cpus", "0")
    assert too_many.returncode == 2
    assert f"has at most {max_rx} rx channels" in too_many.stderr


def test_dry_run_on_device_without_queues_skips_and_goes_on(ns: Netns) -> None:
    r = ns.tune(ns.ifb, "--dry-run", "--cpus", "0", "--hugepages", "0")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"skip: channels: {ns.ifb} does not support ethtool -l" in out
    assert f"skip: rss: {ns.ifb} has no RSS indirection table" in out
    assert f"skip: flow steering: {ns.ifb} has no ntuple filters" in out
    assert f"skip: irq affinity: {ns.ifb} has no IRQs of its own" in out
    # The later steps still ran after the skips.
    assert f"+ echo 2 > /sys/class/net/{ns.ifb}/napi_defer_hard_irqs" in out
    assert "skip: hugepages: --hugepages 0" in out
    assert out.rstrip().endswith("done (dry run, nothing is changed)")


def test_apply_on_veth_sets_busy_poll_and_is_idempotent(ns: Netns) -> None:
    ns.run("sh", "-c", f"echo 0 > /sys/class/net/{ns.veth}/napi_defer_hard_irqs")
    ns.run("sh", "-c", f"echo 0 > /sys/class/net/{ns.veth}/gro_flush_timeout")
    r = ns.tune(ns.veth, "--cpus", "0", "--hugepages", "0")
    assert r.returncode == 0, r.stderr
    assert "applying" in r.stdout
    assert ns.sysfs(ns.veth, "napi_defer_hard_irqs") == "2"
    assert ns.sysfs(ns.veth, "gro_flush_timeout") == "200000"
    again = ns.tune(ns.veth, "--cpus", "0", "--hugepages", "0")
    assert again.returncode == 0, again.stderr
    assert "busy poll: napi_defer_hard_irqs already 2" in again.stdout
    assert "busy poll: gro_flush_timeout already 200000" in again.stdout
    assert "+ " not in again.stdout  # a second run changes nothing


def test_missing_interface_fails_clearly(ns: Netns) -> None:
    r = ns.tune("nosuchif0", "--dry-run")
    assert r.returncode == 2
    assert "host-tune: error: interface 'nosuchif0' does not exist" in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port '70000' is not a UDP port"),
        (["--cpus", "a-b"], "--cpus 'a-b' is not a CPU list"),
        (["--cpus", "4096"], "--cpus: CPU 4096 does not exist"),
        (["--queues", "0"], "--queues '0' is not a count >= 1"),
        (["--bogus"], "unknown option '--bogus'"),
    ],
)
def test_bad_options_fail_clearly(ns: Netns, args: list[str], message: str) -> None:
    r = ns.tune(ns.veth, "--dry-run", *args)
    assert r.returncode == 2
    assert message in r.stderr


def test_failing_steps_are_reported_and_the_rest_still_run(ns: Netns) -> None:
    # Root without capabilities (setpriv drops them all): every change is refused by the kernel.
    r = ns.run(
        "setpriv", "--inh-caps=-all", "--bounding-set=-all", "bash", str(SCRIPT), ns.veth,
        "--queues", "2", "--cpus", "0,1", "--hugepages", "0", check=False,
    )  # fmt: skip
    assert r.returncode == 1
    err = r.stderr.splitlines()
    assert f"host-tune: error: `ethtool -L {ns.veth} rx 2 tx 2` failed: " in err[0]
    assert err[1] == (
        f"host-tune: error: writing 2 to /sys/class/net/{ns.veth}/napi_defer_hard_irqs failed: "
        "Operation not permitted"
    )
    assert "gro_flush_timeout failed: Operation not permitted" in err[2]
    assert "done (applying) with 3 failed step(s)" in r.stdout
    # All CPUs requested: no isolation advice that would leave the system none.
    assert "takes every CPU; leave at least one (CPU 0)" in r.stdout
    assert "isolcpus" not in r.stdout
    assert ns.sysfs(ns.veth, "napi_defer_hard_irqs") == "0"


def test_dpdk_dry_run_on_veth_prints_the_af_packet_way(ns: Netns) -> None:
    r = ns.tune(ns.veth, "--dpdk", "--dry-run", "--cpus", "0", "--hugepages", "999999")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "1 DPDK queue(s)" in out and "dry run, nothing is changed" in out
    assert f"skip: vfio-pci binding: {ns.veth} is not a PCI device" in out
    assert f"--vdev=net_af_packet0,iface={ns.veth}" in out
    assert "+ echo 999999 > /proc/sys/vm/nr_hugepages" in out
    assert "+ ethtool" not in out  # no kernel-driver steps: DPDK drives the queues
    assert "isolcpus=0" in out


def pci_netdev() -> tuple[str, str]:
    """The host's first network interface backed by a PCI function, and that function."""
    for dev in sorted(Path("/sys/class/net").iterdir()):
        real = (dev / "device").resolve()
        for cand in (real, real.parent):
            if cand.name.count(":") == 2 and str(cand).startswith("/sys/devices/pci"):
                return dev.name, cand.name
    pytest.fail("this host has no PCI network interface to dry-run the vfio-pci binding on")


def test_dpdk_dry_run_on_a_pci_nic_binds_vfio_and_changes_nothing() -> None:
    if os.geteuid() != 0:
        pytest.fail("host-tune tests need root")
    iface, pci = pci_netdev()
    driver_before = (Path("/sys/bus/pci/devices") / pci / "driver").resolve()
    r = subprocess.run(["bash", str(SCRIPT), iface, "--dpdk", "--dry-run", "--cpus", "1",
                        "--hugepages", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "+ echo vfio-pci > /sys/devices/" in r.stdout and f"{pci}/driver_override" in r.stdout
    assert f"+ echo {pci} > /sys/bus/pci/drivers_probe" in r.stdout
    assert f"-- -a {pci} -l 1" in r.stdout
    assert (Path("/sys/bus/pci/devices") / pci / "driver").resolve() == driver_before
