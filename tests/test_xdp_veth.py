"""xdp_steer on a real interface: a veth pair between two network namespaces this test creates.

The gateway namespace runs `xdpex-xdp attach` (what the dataplane does through libxdpex_xdp) and an
ordinary kernel UDP socket on port 9000; the client namespace sends valid and invalid datagrams
with a plain socket. With no AF_XDP socket in xsks_map the valid ones must reach the kernel socket
(no_sock_cnt) and the invalid ones must not. The pinned maps are read and changed live with the
tool's counters/bind/allow/rate subcommands, as the control plane will. Then: the interface is
refused while held, or when another XDP program is attached (and the error names it); a clean stop
detaches and unpins; a killed run leaves pins and an attachment that the next start clears.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from xdpex_traffic.lab import Netlink
from xdpex_traffic.scapy_layers import XE, XELogin, XENewOrder

TOP = Path(__file__).resolve().parents[1]
TOOL = TOP / "build" / "xdp" / "xdpex-xdp"
OTHER_PROG = TOP / "build" / "xdp" / "xdp_other.bpf.o"
GW_IP, CL_IP = "10.77.0.1", "10.77.0.2"
DROPS = [
    "truncated_cnt", "bad_magic_cnt", "bad_version_cnt", "bad_count_cnt", "bad_length_cnt",
    "bad_session_cnt", "fragment_cnt", "not_allowed_cnt", "spoofed_cnt", "rate_limit_cnt",
    "bad_flags_cnt", "bad_seq_cnt",
]  # fmt: skip

RECEIVER = """
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9000))
print("ready", flush=True)
while True:
    if select.select([s, sys.stdin], [], [])[0] != [s]:
        break
    data, addr = s.recvfrom(4096)
    print(addr[1], data.hex(), flush=True)
"""

SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
for h in sys.argv[3:]:
    s.sendto(bytes.fromhex(h), (sys.argv[2], 9000))
"""


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
    return proc


class Lines:
    """Line reader over a child's stdout that never blocks past a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc, self.fd, self.buf = proc, proc.stdout.fileno(), b""

    def read(self, n: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while self.buf.count(b"\n") < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                break
            chunk = os.read(self.fd, 65536)
            if not chunk:
                break
            self.buf += chunk
        lines = self.buf.split(b"\n")
        got, self.buf = lines[: min(n, len(lines) - 1)], b"\n".join(lines[min(n, len(lines) - 1) :])
        return [x.decode() for x in got]


@dataclass
class Lab:
    sfx: str
    gw: str
    cl: str
    gw_if: str
    pin_dir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    readers: dict[int, Lines] = field(default_factory=dict)  # stdout of each started attach

    def tool(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh(str(TOOL), *args, "--pin-dir", str(self.pin_dir), check=check)

    def counters(self) -> dict[str, int]:
        return dict(json.loads(self.tool("counters").stdout))

    def start(self, *extra: str, pin_dir: Path | None = None) -> subprocess.Popen[bytes]:
        """Start `xdpex-xdp attach` in the gateway namespace; returns once it says attached."""
        cmd = [str(TOOL), "attach", "--netns", self.gw, "--ifname", self.gw_if, "--pin-dir"]
        cmd += [str(pin_dir or self.pin_dir), *extra]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(proc)
        self.readers[proc.pid] = Lines(proc)
        line = self.readers[proc.pid].read(1, 15)
        if not line:
            proc.wait(10)
            assert proc.stderr is not None
            raise AssertionError(f"attach did not come up: {proc.stderr.read().decode()}")
        assert line[0].startswith(f"attached {self.gw_if} "), line
        return proc

    def send(self, sport: int, *payloads: bytes) -> None:
        sh("ip", "netns", "exec", self.cl, sys.executable, "-c", SENDER, str(sport), GW_IP,
           *(p.hex() for p in payloads))  # fmt: skip

    def xdp_prog(self) -> dict[str, Any] | None:
        link = json.loads(sh("ip", "-n", self.gw, "-j", "link", "show", self.gw_if).stdout)[0]
        return link.get("xdp", {}).get("prog")


@pytest.fixture
def lab() -> Iterator[Lab]:
    if not TOOL.is_file() or not OTHER_PROG.is_file():
        pytest.fail(f"{TOOL} or {OTHER_PROG} is missing: run `make build` first")
    if os.geteuid() != 0:
        pytest.fail("the veth test creates network namespaces and attaches XDP: needs root")
    sfx = f"{os.getpid() % 10000:04d}{secrets.token_hex(2)}"
    lab = Lab(sfx, f"xgw{sfx}", f"xcl{sfx}", f"xg{sfx}", Path(f"/sys/fs/bpf/xdpex-test-{sfx}"))
    try:
        for ns in (lab.gw, lab.cl):
            sh("ip", "netns", "add", ns)
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        with Netlink(lab.gw) as nl:
            nl.call("create veth pair", lab.gw_if, "link", "add", ifname=lab.gw_if, kind="veth",
                    peer={"ifname": f"xc{sfx}", "net_ns_fd": lab.cl})  # fmt: skip
        for ns, ifname, ip in ((lab.gw, lab.gw_if, GW_IP), (lab.cl, f"xc{sfx}", CL_IP)):
            with Netlink(ns) as nl:
                idx = nl.index(ifname)
                nl.call("set address", ifname, "addr", "add", index=idx, address=ip, prefixlen=24)
                nl.call("bring up", ifname, "link", "set", index=idx, state="up")
        yield lab
    finally:
        for proc in lab.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        for ns in (lab.gw, lab.cl):
            sh("ip", "netns", "del", ns, check=False)
        for d in (lab.pin_dir, Path(f"{lab.pin_dir}-other")):
            if d.is_dir():
                for pin in d.iterdir():
                    pin.unlink()
                d.rmdir()


@pytest.fixture
def receiver(lab: Lab) -> Iterator[Lines]:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.gw, sys.executable, "-c", RECEIVER],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        lines = Lines(proc)
        assert lines.read(1, 15) == ["ready"]
        yield lines
    finally:
        proc.kill()
        proc.wait(10)


def dgram(session: int, n: int = 1, **kw: Any) -> bytes:
    msgs = [XENewOrder(side=1, ord_type=1, tif=2, symbol_id=1, cl_ord_id=i, price=10, qty=1)
            for i in range(n)]  # fmt: skip
    return bytes(XE(session_id=session, seq=1, messages=msgs, **kw))


def login(session: int) -> bytes:
    return bytes(XE(session_id=session, seq=0, messages=[XELogin(session_id=session, nonce=5)]))


def exchange(
    lab: Lab, rx: Lines, sport: int, payloads: list[bytes], expect: dict[str, int]
) -> list[str]:
    """Send, wait until the counters moved by `expect`, check that no other drop moved, and
    return what the kernel socket received (as "sport hex" lines)."""
    before = lab.counters()
    lab.send(sport, *payloads)
    deadline = time.monotonic() + 10
    while True:
        after = lab.counters()
        delta = {k: after[k] - before[k] for k in after}
        if all(delta[k] >= v for k, v in expect.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for k in DROPS + ["no_sock_cnt", "redirect_cnt"]:
        assert delta[k] == expect.get(k, 0), (k, delta, expect)
    return rx.read(expect.get("no_sock_cnt", 0) + 1, 1.0)  # +1: prove nothing else arrived


def test_veth_verdicts_live_maps_and_ownership(lab: Lab, receiver: Lines) -> None:
    steer = lab.start()
    assert (lab.xdp_prog() or {}).get("name") == "xdp_steer"

    # Default config: the valid datagrams reach the kernel socket, the malformed ones do not.
    valid = [dgram(7), dgram(8, 22), login(9)]
    got = exchange(lab, receiver, 41000, [*valid, dgram(7, magic=0x1111), dgram(7, count=0)],
                   {"no_sock_cnt": 3, "bad_magic_cnt": 1, "bad_count_cnt": 1})  # fmt: skip
    assert got == [f"41000 {p.hex()}" for p in valid]

    # Session binding written live through the pinned session_map.
    lab.tool("bind", "7", f"{CL_IP}:41001")
    assert exchange(lab, receiver, 41000, [dgram(7)], {"spoofed_cnt": 1}) == []
    got = exchange(lab, receiver, 41001, [dgram(7)], {"no_sock_cnt": 1})
    assert got == [f"41001 {dgram(7).hex()}"]
    lab.tool("unbind", "7")
    unbind_again = lab.tool("unbind", "7", check=False)
    assert unbind_again.returncode != 0 and "session 7 is not bound" in unbind_again.stderr

    # Allowlist: a non-empty list that does not cover the client shuts it out.
    lab.tool("allow", "add", "10.99.0.0/16")
    assert exchange(lab, receiver, 41000, [dgram(7)], {"not_allowed_cnt": 1}) == []
    lab.tool("allow", "add", f"{CL_IP}/32")
    assert sorted(lab.tool("allow", "list").stdout.split()) == ["10.77.0.2/32", "10.99.0.0/16"]
    assert len(exchange(lab, receiver, 41000, [dgram(7)], {"no_sock_cnt": 1})) == 1
    lab.tool("allow", "set", "10.99.0.0/16", "10.98.0.0/16")  # replaces the whole list
    assert sorted(lab.tool("allow", "list").stdout.split()) == ["10.98.0.0/16", "10.99.0.0/16"]
    assert exchange(lab, receiver, 41000, [dgram(7)], {"not_allowed_cnt": 1}) == []
    lab.tool("allow", "set", f"{CL_IP}/32", "10.99.0.0/16")
    assert len(exchange(lab, receiver, 41000, [dgram(7)], {"no_sock_cnt": 1})) == 1
    bad_set = lab.tool("allow", "set", "10.99.0.0/16", "10.1.2.3/8", check=False)
    assert bad_set.returncode != 0 and "10.1.2.3/8 has host bits set" in bad_set.stderr
    assert sorted(lab.tool("allow", "list").stdout.split()) == ["10.77.0.2/32", "10.99.0.0/16"]
    lab.tool("allow", "del", "10.99.0.0/16")
    lab.tool("allow", "del", f"{CL_IP}/32")
    del_again = lab.tool("allow", "del", f"{CL_IP}/32", check=False)
    assert del_again.returncode != 0 and "not in the allowlist" in del_again.stderr
    assert lab.tool("allow", "list").stdout == ""

    # Rate: 1/s with a burst of 2 lets 2 of 4 back-to-back datagrams through; 0 lifts it.
    lab.tool("rate", "--pps", "1", "--burst", "2")
    got = exchange(lab, receiver, 41000, [dgram(7)] * 4, {"no_sock_cnt": 2, "rate_limit_cnt": 2})
    assert len(got) == 2
    lab.tool("rate", "--pps", "0")
    assert len(exchange(lab, receiver, 41000, [dgram(7)] * 4, {"no_sock_cnt": 4})) == 4

    # The interface and the pin dir belong to the running instance.
    other_dir = Path(f"{lab.pin_dir}-other")
    second = sh(str(TOOL), "attach", "--netns", lab.gw, "--ifname", lab.gw_if, "--pin-dir",
                str(other_dir), check=False)  # fmt: skip
    assert second.returncode == 1
    assert f"interface {lab.gw_if} is held by a running xdpex (pid {steer.pid})" in second.stderr
    assert not other_dir.exists()
    same_dir = sh(str(TOOL), "attach", "--netns", lab.gw, "--ifname", lab.gw_if, "--pin-dir",
                  str(lab.pin_dir), check=False)  # fmt: skip
    assert same_dir.returncode == 1 and "is in use by a running xdpex" in same_dir.stderr
    assert lab.counters()["rx_cnt"] > 0  # the loser did not disturb the winner's pins

    # A clean stop detaches and unpins.
    steer.send_signal(signal.SIGTERM)
    assert steer.wait(10) == 0
    assert lab.xdp_prog() is None
    assert not lab.pin_dir.exists()


def test_veth_refuses_foreign_program_and_recovers_from_crash(lab: Lab) -> None:
    sh("ip", "-n", lab.gw, "link", "set", "dev", lab.gw_if, "xdpgeneric", "obj", str(OTHER_PROG),
       "sec", "xdp")  # fmt: skip
    other = lab.xdp_prog()
    assert other is not None and other["name"] == "xdp_other"
    refused = sh(str(TOOL), "attach", "--netns", lab.gw, "--ifname", lab.gw_if, "--pin-dir",
                 str(lab.pin_dir), check=False)  # fmt: skip
    assert refused.returncode == 1
    assert (
        f"interface {lab.gw_if} already has XDP program id {other['id']} 'xdp_other' attached "
        "(skb mode)" in refused.stderr
    ), refused.stderr
    assert lab.xdp_prog() == other  # left alone
    assert not lab.pin_dir.exists()
    sh("ip", "-n", lab.gw, "link", "set", "dev", lab.gw_if, "xdpgeneric", "off")

    # A run killed with SIGKILL leaves its pins and its attachment behind ...
    crashed = lab.start("--mode", "skb")
    stale = lab.xdp_prog()
    assert stale is not None and stale["name"] == "xdp_steer"
    crashed.kill()
    crashed.wait(10)
    assert lab.xdp_prog() == stale
    assert sorted(p.name for p in lab.pin_dir.iterdir()) == [
        "allow_map", "cfg_map", "rate_map", "session_map", "stats_map", "xsks_map",
    ]  # fmt: skip

    # ... which the next start clears, saying so.
    again = lab.start()
    prog = lab.xdp_prog()
    assert prog is not None and prog["name"] == "xdp_steer" and prog["id"] != stale["id"]
    again.send_signal(signal.SIGTERM)
    assert again.wait(10) == 0
    assert again.stderr is not None
    log = again.stderr.read().decode()
    assert f"removed 6 stale pins in {lab.pin_dir} left by a previous run" in log
    assert f"detached stale xdp_steer (id {stale['id']}) from {lab.gw_if}" in log
    assert lab.xdp_prog() is None and not lab.pin_dir.exists()


def test_veth_redirects_valid_datagrams_into_af_xdp(lab: Lab, receiver: Lines) -> None:
    # With an AF_XDP socket in xsks_map[0] the valid datagrams go to it (XDP_REDIRECT), not to
    # the kernel socket; the invalid ones are still dropped before anyone sees them.
    steer = lab.start("--xsk-queue", "0")
    frames = lab.readers[steer.pid]
    assert frames.read(1, 15) == ["xsk 0 bound"]
    valid = [dgram(7), dgram(8, 22), login(9)]
    got = exchange(lab, receiver, 41000, [*valid, dgram(7, version=2)],
                   {"redirect_cnt": 3, "bad_version_cnt": 1, "no_sock_cnt": 0})  # fmt: skip
    assert got == []
    lines = frames.read(3, 10)
    assert [line.split()[0] for line in lines] == ["frame"] * 3
    # Ethernet 14 + IPv4 20 + UDP 8 = 42 bytes before the xdpex datagram.
    assert [bytes.fromhex(line.split()[2])[42:] for line in lines] == valid
    steer.send_signal(signal.SIGTERM)
    assert steer.wait(10) == 0


def test_auto_mode_falls_back_to_generic_where_native_is_missing(lab: Lab) -> None:
    # A bridge has no driver XDP: auto mode must say so and attach in generic mode, while an
    # explicit native request must fail with the reason.
    bridge = f"xb{lab.sfx}"
    sh("ip", "-n", lab.gw, "link", "add", bridge, "type", "bridge")
    sh("ip", "-n", lab.gw, "link", "set", bridge, "up")
    native = sh(str(TOOL), "attach", "--netns", lab.gw, "--ifname", bridge, "--mode", "native",
                "--pin-dir", str(lab.pin_dir), check=False)  # fmt: skip
    assert native.returncode == 1
    assert f"cannot attach xdp_steer to {bridge} in native mode" in native.stderr
    cmd = [str(TOOL), "attach", "--netns", lab.gw, "--ifname", bridge]
    cmd += ["--pin-dir", str(lab.pin_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lab.procs.append(proc)
    assert Lines(proc).read(1, 15) == [f"attached {bridge} skb"]
    link = json.loads(sh("ip", "-n", lab.gw, "-j", "link", "show", bridge).stdout)[0]
    assert link["xdp"]["prog"]["name"] == "xdp_steer" and link["xdp"]["mode"] == 2  # generic
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert proc.stderr is not None
    assert f"native XDP on {bridge} failed" in proc.stderr.read().decode()
