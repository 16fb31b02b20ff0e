"""The lab's fault injector (xdpex_traffic.faults, traffic/faults/tc_faults.bpf.c) on real veth
traffic: numbered xdpex datagrams go from a socket in the traffic namespace to one in the gateway
namespace, which echoes each back, so both directions pass the injector. What arrives is checked
against the injector's counters exactly (every drop, copy and hold accounted for) and the rates
against the asked-for ones within four standard deviations; the same seed gives the same faults.
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dataplane_support import lab_up, need_root_and_built
from xdpex_traffic.faults import FaultSpec, Injector, faults_object
from xdpex_traffic.lab import Lab, socket_in, xdp_pass_object

HDR = struct.Struct("<HBBIQHHI")  # struct xe_hdr
PORT = 9000


def _dgram(seq: int, flags: int = 0) -> bytes:
    return HDR.pack(0x4558, 1, flags, 1, seq, 1, 24 + 64, 0) + bytes(64)


@dataclass
class Seen:
    order: list[int] = field(default_factory=list)

    @property
    def late(self) -> int:
        """Datagrams whose first copy arrived after one sent later than them (extra copies made
        on the receiving side's ingress may come a little later than the original: not counted)."""
        n, high, first = 0, 0, set()
        for s in self.order:
            if s not in first:
                first.add(s)
                n += s < high
            high = max(high, s)
        return n


def echo_run(lab: Lab, n: int, echo: bool = True, timeout: float = 60.0) -> tuple[Seen, Seen]:
    """Sends datagrams 1..n to the gateway side, which answers each it receives (if `echo`) with
    a datagram numbered by arrival (1, 2, ...); returns the numbers the gateway side and the
    traffic side received, in arrival order."""
    gw, tg = socket_in(lab.gw_ns), socket_in(lab.tg_ns)
    try:
        for s in (gw, tg):
            s.setsockopt(1, 8, 1 << 22)  # SO_RCVBUF
            s.setblocking(False)
        gw.bind((lab.gw_ip, PORT))
        tg.bind((lab.tg_ip, 0))
        at_gw, at_tg = Seen(), Seen()
        sent, quiet_since = 0, None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _ in range(32):
                if sent >= n:
                    break
                try:
                    tg.sendto(_dgram(sent + 1), (lab.gw_ip, PORT))
                except BlockingIOError:
                    break
                sent += 1
            r, _, _ = select.select([gw, tg], [], [], 0.05 if sent >= n else 0)
            for s in r:
                while True:
                    try:
                        b, addr = s.recvfrom(2048)
                    except BlockingIOError:
                        break
                    seq = HDR.unpack_from(b)[4]
                    if s is gw:
                        at_gw.order.append(seq)
                        if echo:
                            gw.sendto(_dgram(len(at_gw.order), 4), addr)
                    else:
                        at_tg.order.append(seq)
            if sent >= n and not r:  # quiet: done once nothing held is left either
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.5:
                    return at_gw, at_tg
            else:
                quiet_since = None
        raise AssertionError(f"traffic not finished after {timeout} s (sent {sent} of {n})")
    finally:
        gw.close()
        tg.close()


def within(observed: int, trials: int, rate: float, what: str) -> None:
    sigma = math.sqrt(trials * rate * (1 - rate))
    assert abs(observed - trials * rate) <= 4 * sigma + 1, (
        f"{what}: {observed} of {trials}, expected {trials * rate:.0f} +- {4 * sigma:.0f}"
    )


@pytest.fixture
def lab() -> Iterator[Lab]:
    need_root_and_built(faults_object(), xdp_pass_object())
    with lab_up("tfl") as lab:
        yield lab


def test_rates_and_counters_both_ways(lab: Lab) -> None:
    inj = Injector(lab)
    spec = FaultSpec(loss=0.1, dup=0.05, burst=3, reorder=0.02, depth=4, seed=7)
    inj.apply(spec)
    n = 20_000
    at_gw, at_tg = echo_run(lab, n)
    c = inj.settle()
    for d, got, offered in (("in", at_gw, n), ("out", at_tg, len(at_gw.order))):
        k = c[d]
        # Every datagram of the direction was seen once; what arrived is exactly what was
        # neither dropped nor lost, plus the copies; everything held came back, late.
        assert k["seen"] == offered, (d, k)
        assert k["errors"] == 0 and k["released"] == k["held"], (d, k)
        assert len(got.order) == k["seen"] - k["dropped"] + k["copies"], (d, k)
        assert len(set(got.order)) == k["seen"] - k["dropped"], (d, k)
        assert got.late == k["held"], (d, k, got.late)
        mult = Counter(Counter(got.order).values())
        assert max(mult) <= 1 + spec.burst and mult[1 + spec.burst] > 0, (d, mult)
        assert sum((m - 1) * c_ for m, c_ in mult.items()) == k["copies"], (d, mult, k)
        assert k["copy_msgs"] == k["copies"] and k["session"] == 0, (d, k)  # 1 message each
        # The rates asked for, in the order the program draws them.
        within(k["dropped"], k["seen"], spec.loss, f"{d} loss")
        within(k["held"], k["seen"] - k["dropped"], spec.reorder, f"{d} reorder")
        within(k["dup_events"], k["seen"] - k["dropped"] - k["held"], spec.dup, f"{d} dup")
        assert 1.8 <= k["copies"] / k["dup_events"] <= 2.2, (d, k)  # 1..3 copies, uniform
    assert set(at_tg.order) <= set(range(1, len(at_gw.order) + 1))
    inj.remove()
    assert not inj.pin_dir.exists()


def test_same_seed_same_faults(lab: Lab) -> None:
    inj = Injector(lab)
    runs = []
    for seed in (11, 11, 12):
        inj.apply(FaultSpec(loss=0.2, dirs="in", seed=seed))
        at_gw, at_tg = echo_run(lab, 3000, echo=True)
        runs.append(set(at_gw.order))
        c = inj.counters()
        assert c["out"]["dropped"] == 0 and len(at_tg.order) == len(at_gw.order), c
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    within(3000 - len(runs[2]), 3000, 0.2, "loss, seed 12")


def feed_run(inj: Injector, n: int, port: int = 9400, timeout: float = 60.0) -> list[int]:
    """Sends feed-like datagrams 1..n (an 8-byte number, then MoldUDP64-sized padding) from the
    gateway side to the traffic side's UDP `port`, at most 256 in flight (what has neither
    arrived nor been dropped by the injector); returns the numbers that arrived."""
    lab = inj.lab
    gw, tg = socket_in(lab.gw_ns), socket_in(lab.tg_ns)
    try:
        tg.setsockopt(1, 8, 1 << 22)  # SO_RCVBUF
        tg.setblocking(False)
        tg.bind((lab.tg_ip, port))
        got: list[int] = []
        sent, quiet_since = 0, None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            gone = len(got) + inj.counters()["out"]["feed_dropped"]
            while sent < n and sent - gone < 256:  # a window, so nothing overflows a buffer
                sent += 1
                gw.sendto(struct.pack("<Q", sent) + bytes(92), (lab.tg_ip, port))
            r, _, _ = select.select([tg], [], [], 0.05)
            while r:
                try:
                    got.append(struct.unpack_from("<Q", tg.recv(2048))[0])
                except BlockingIOError:
                    break
            if sent >= n and not r:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.5:
                    return got
            else:
                quiet_since = None
        raise AssertionError(f"feed traffic not finished after {timeout} s ({len(got)} of {n})")
    finally:
        gw.close()
        tg.close()


def test_feed_loss_drops_the_feed_only_and_counts_it(lab: Lab) -> None:
    """--feed-port/--feed-loss: feed datagrams from the gateway are dropped at the rate asked
    for, each drop counted, the same seed dropping the same ones; order datagrams pass
    untouched and the feed's drops are not in their counters."""
    inj = Injector(lab)
    n, runs = 6000, []
    for seed in (5, 5):
        inj.apply(FaultSpec(feed_port=9400, feed_loss=0.05, seed=seed))
        got = feed_run(inj, n)
        k = inj.counters()
        assert k["out"]["feed"] == n and k["in"]["feed"] == 0, k
        assert len(got) == len(set(got)) == n - k["out"]["feed_dropped"], k
        assert got == sorted(got)  # dropped, never reordered
        within(k["out"]["feed_dropped"], n, 0.05, "feed loss")
        runs.append(set(got))
        at_gw, at_tg = echo_run(lab, 500)
        k = inj.counters()
        assert len(at_gw.order) == len(at_tg.order) == 500, k
        assert k["in"]["dropped"] == k["out"]["dropped"] == 0 and k["out"]["feed"] == n, k
    assert runs[0] == runs[1]
    inj.remove()


@pytest.mark.parametrize(
    ("args", "error"),
    [({"feed_loss": 0.01}, "--feed-loss needs --feed-port"),
     ({"feed_port": 9000}, "--feed-port 9000"),
     ({"feed_port": 9400, "feed_loss": 1.5}, "--feed_loss 1.5")],
)
def test_feed_options_are_checked(args: dict, error: str) -> None:
    from xdpex_traffic.faults import FaultError

    with pytest.raises(FaultError, match=re.escape(error)):
        FaultSpec(**args)


def test_counter_layout_is_the_headers() -> None:
    """faults.py decodes struct fault_cnt / fault_cfg of traffic/faults/faults.h."""
    from xdpex_traffic.faults import CFG, CNT, CNT_FIELDS

    text = (Path(__file__).resolve().parents[1] / "traffic/faults/faults.h").read_text()
    cnt = re.search(r"struct fault_cnt \{(.*?)\};", text, re.S)
    cfg = re.search(r"struct fault_cfg \{(.*?)\};", text, re.S)
    assert cnt and cfg
    names = re.findall(r"__u64 (\w+)_cnt;", cnt.group(1))
    assert len(names) == len(CNT_FIELDS) and CNT.size == 8 * len(names), names
    size = 0
    for typ, _name, dim in re.findall(r"__u(\d+) (\w+)(?:\[(\w+)\])?;", cfg.group(1)):
        size += int(typ) // 8 * (2 if dim else 1)
    assert CFG.size == size


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xdpex.cli", "lab", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_on_stats_off_and_bad_input(lab: Lab) -> None:
    p = _cli("faults", "on", "--prefix", lab.prefix, "--loss", "0.5", "--seed", "3")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["faults"]["loss"] == 0.5
    at_gw, _ = echo_run(lab, 1000, echo=False)
    p = _cli("faults", "stats", "--prefix", lab.prefix)
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert st["in"]["seen"] == 1000 and st["in"]["dropped"] == 1000 - len(at_gw.order)
    within(st["in"]["dropped"], 1000, 0.5, "cli loss")
    for bad, msg in (
        (["--loss", "1.5"], "a rate is a fraction"),
        (["--burst", "9"], "--burst 9"),
        (["--loss", "0.6", "--reorder", "0.6"], "exceed 1"),
    ):
        p = _cli("faults", "on", "--prefix", lab.prefix, *bad)
        assert p.returncode == 1 and msg in p.stderr, (bad, p.stderr)
    p = _cli("faults", "off", "--prefix", lab.prefix)
    assert p.returncode == 0, p.stderr
    tc = subprocess.run(
        lab.run_cmd(lab.tg_ns, ["tc", "filter", "show", "dev", lab.tg_if, "egress"]),
        capture_output=True,
        text=True,
    )
    assert "tc_faults" not in tc.stdout
    at_gw, _ = echo_run(lab, 500, echo=False)
    assert len(at_gw.order) == 500  # nothing dropped any more
    p = _cli("faults", "on", "--prefix", f"absent{os.getpid()}", "--loss", "0.1")
    assert p.returncode == 1 and "is not up" in p.stderr, p.stderr
