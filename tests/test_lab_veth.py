"""The veth lab (`xdpex lab`, xdpex_traffic.lab.Lab): two namespaces joined by a veth pair.

Real namespaces, a real veth pair, the real XDP_PASS program in the kernel and real packets; each
test uses its own prefix and removes what it created.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from dataplane_support import need_root_and_built
from xdpex_traffic.lab import GW_IP, TG_IP, Lab, LabError, xdp_pass_object


def _need_root() -> None:
    need_root_and_built(xdp_pass_object())


@pytest.fixture
def lab() -> Iterator[Lab]:
    _need_root()
    lab = Lab(f"tl{os.getpid()}")
    try:
        yield lab
    finally:
        lab.down()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xdpex.cli", "lab", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_up_configures_both_ends(lab: Lab) -> None:
    lab.up()
    st = lab.status()
    assert st["ready"]
    gw, tg = st["gateway"], st["traffic"]
    assert gw["namespace"] == f"{lab.prefix}-gw" and tg["namespace"] == f"{lab.prefix}-tg"
    assert gw["addresses"] == [f"{GW_IP}/24"] and tg["addresses"] == [f"{TG_IP}/24"]
    assert gw["mtu"] == tg["mtu"] == 1500
    assert gw["mac"] == lab.gw_mac and tg["mac"] == lab.tg_mac
    # The traffic end runs XDP_PASS natively so the gateway can redirect / XDP_TX into it; the
    # gateway end is left free for xdpexd's program.
    assert tg["xdp"] is not None and tg["xdp"]["name"] == "xdp_pass"
    assert tg["xdp"]["mode"] == "native"
    assert gw["xdp"] is None
    # Permanent neighbour entries: no ARP on the fast path.
    neigh = subprocess.run(
        ["ip", "-n", lab.tg_ns, "neigh", "show", GW_IP], capture_output=True, text=True
    ).stdout
    assert lab.gw_mac in neigh and "PERMANENT" in neigh
    # One queue per end, so every frame lands on the queue the gateway's socket serves.
    rx = subprocess.run(
        lab.netns_cmd(lab.gw_ns, ["ls", f"/sys/class/net/{lab.gw_if}/queues"]),
        capture_output=True,
        text=True,
    ).stdout.split()
    assert sorted(rx) == ["rx-0", "tx-0"]
    # Each side's receive processing runs on its own core.
    if (os.cpu_count() or 1) >= 2:
        assert gw["rps_cpus"] == "1" and tg["rps_cpus"] == "2"


def test_up_twice_and_down_twice(lab: Lab) -> None:
    lab.up()
    first = lab.status()
    lab.up()
    second = lab.status()
    assert second["ready"]
    assert second["traffic"]["xdp"]["id"] == first["traffic"]["xdp"]["id"]
    lab.down()
    st = lab.status()
    assert not st["ready"] and not st["gateway"]["exists"] and not st["traffic"]["exists"]
    lab.down()


def test_two_queues_and_back(lab: Lab) -> None:
    """Lab(queues=2): both ends get two rx and two tx queues, each rx queue steered to its
    side's core; an up() with another count rebuilds the pair."""
    two = Lab(lab.prefix, queues=2)
    two.up()
    st = two.status()
    assert st["ready"] and st["gateway"]["queues"] == st["traffic"]["queues"] == 2
    assert st["traffic"]["xdp"] is not None and st["traffic"]["xdp"]["name"] == "xdp_pass"
    for ns, ifn, cpu in ((lab.gw_ns, lab.gw_if, "1"), (lab.tg_ns, lab.tg_if, "2")):
        qs = subprocess.run(lab.netns_cmd(ns, ["ls", f"/sys/class/net/{ifn}/queues"]),
                            capture_output=True, text=True).stdout.split()  # fmt: skip
        assert sorted(qs) == ["rx-0", "rx-1", "tx-0", "tx-1"]
        if (os.cpu_count() or 1) >= 2:
            rps = subprocess.run(
                lab.netns_cmd(ns, ["cat", f"/sys/class/net/{ifn}/queues/rx-1/rps_cpus"]),
                capture_output=True, text=True).stdout.strip()  # fmt: skip
            assert rps == cpu
    lab.up()
    assert lab.status()["gateway"]["queues"] == 1
    with pytest.raises(LabError, match="--queues 0: must be 1..16"):
        Lab(lab.prefix, queues=0)


def test_up_repairs_half_a_lab(lab: Lab) -> None:
    lab.up()
    subprocess.run(["ip", "netns", "del", lab.tg_ns], check=True)
    assert not lab.status()["ready"]
    lab.up()
    assert lab.status()["ready"]


def test_udp_crosses_both_ways(lab: Lab) -> None:
    """A datagram from the traffic side reaches a socket in the gateway namespace and back."""
    lab.up()
    server = subprocess.Popen(
        lab.netns_cmd(
            lab.gw_ns,
            [
                sys.executable,
                "-c",
                (
                    "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
                    f"s.bind(('{GW_IP}', 9000)); s.settimeout(10); print('ready', flush=True);"
                    "d,a=s.recvfrom(2048); s.sendto(d[::-1], a)"
                ),
            ],
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        out = subprocess.run(
            lab.netns_cmd(
                lab.tg_ns,
                [
                    sys.executable,
                    "-c",
                    (
                        "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
                        f"s.settimeout(5); s.sendto(b'xdpex-lab', ('{GW_IP}', 9000));"
                        "d,a=s.recvfrom(2048); print(d.decode(), a[0])"
                    ),
                ],
            ),
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["bal-xepdx", GW_IP]
    finally:
        server.kill()
        server.wait()
    # The addresses exist only inside the lab namespaces.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(OSError):
            s.bind((GW_IP, 0))


def test_cli_up_status_down(lab: Lab) -> None:
    r = _cli("up", "--prefix", lab.prefix)
    assert r.returncode == 0, r.stderr
    assert f"lab {lab.prefix}: up" in r.stdout
    r = _cli("status", "--prefix", lab.prefix, "--json")
    assert r.returncode == 0
    st = json.loads(r.stdout)
    assert st["ready"] and st["traffic"]["xdp"]["name"] == "xdp_pass"
    r = _cli("down", "--prefix", lab.prefix)
    assert r.returncode == 0
    r = _cli("status", "--prefix", lab.prefix)
    assert r.returncode == 0 and "absent" in r.stdout


def test_bad_prefix_is_refused() -> None:
    with pytest.raises(LabError, match="--prefix"):
        Lab("bad/name")
    r = _cli("status", "--prefix", "bad name")
    assert r.returncode == 1 and "--prefix" in r.stderr


def test_lab_errors_name_the_step_the_interface_and_the_namespace(lab):
    """Netlink failures (pyroute2) come back as LabError saying which step, on which interface
    in which namespace, failed and why."""
    from pathlib import Path

    from xdpex_traffic.lab import GW_IF, Netlink

    lab.up()
    with Netlink(lab.gw_ns) as nl:
        idx = nl.index(GW_IF)
        with pytest.raises(LabError, match=rf"set MTU: {GW_IF} in namespace {lab.gw_ns}: "):
            nl.call("set MTU", GW_IF, "link", "set", index=idx, mtu=1 << 20)
    lab.down()
    bogus = Path("/run/netns") / lab.tg_ns  # a plain file where the namespace should be
    bogus.write_text("")
    try:
        with pytest.raises(LabError, match=rf"open netlink: namespace {lab.tg_ns}: Invalid"):
            lab.up()
    finally:
        lab.down()
        bogus.unlink(missing_ok=True)
