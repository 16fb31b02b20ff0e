"""Kernel-UDP mode with the XDP program in front of its socket (xdpexd --mode udp --xdp-filter).

The real xdp_steer in the kernel on the lab's gateway veth, the real udp-mode xdpexd behind it in
the gateway namespace, real datagrams from sockets in the traffic namespace. What the filter
drops (malformed, spoofed, over-rate, disallowed) never reaches the socket: the shard's receive
counter moves by exactly what the program passed (no_sock_cnt: no AF_XDP socket, XDP_PASS), and
the program's counters say why the rest went. Legitimate orders are answered as without it; the
allowlist and rate reach the program live through the control socket; a clean stop detaches it
and removes its pins; the option is refused where it makes no sense.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import xdpex_proto.codec as c
from dataplane_support import XDPEXD, Env, base_config, in_netns, need_root_and_built, new_order
from xdpex_traffic.lab import GW_IF, TG_IF, Lab, xdp_pass_object

OTHER_IP = "10.77.0.9"  # a second source in the traffic namespace (its own rate state)
RATE = {"pps": 200, "burst": 20}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    need_root_and_built(XDPEXD, xdp_pass_object())
    lab = Lab(f"flt{time.time_ns() % 100000}")
    lab.up()
    subprocess.run(lab.netns_cmd(lab.tg_ns, ["ip", "addr", "add", f"{OTHER_IP}/24", "dev",
                                             TG_IF]), check=True)
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture
def env(lab: Lab, tmp_path: Path) -> Iterator[Env]:
    e = Env("udp-xdp", tmp_path, lab, config=base_config(rate=RATE))
    try:
        e.daemon.start()
        yield e
    finally:
        e.close()


def wait_until(what: str, pred: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError(f"{what}: not within {timeout} s")


def snapshot(env: Env) -> tuple[dict[str, int], dict[str, int]]:
    """The program's counters for xdpex datagrams (rx_cnt less what was not ours: ARP and the
    like pass untouched) and queue 0's."""
    st = env.daemon.stats()
    x = dict(st["xdp_counters"])
    x["rx_cnt"] -= x.pop("not_ours_cnt")
    return x, st["queues"][0]


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after if isinstance(after[k], int)
            and after[k] != before.get(k)}


def raw_socket(lab: Lab, addr: str = "0.0.0.0") -> socket.socket:
    with in_netns(lab.tg_ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, 0))
    return s


def dgram(session: int, seq: int, n: int = 1) -> bytes:
    return c.encode_datagram(session, seq, [new_order(seq + i) for i in range(n)])


def test_status_and_legitimate_orders_pass(env: Env) -> None:
    st = env.daemon.stats()
    assert st["mode"] == "udp" and st["xdp_filter"] is True
    assert st["attach_mode"] in ("native", "generic")
    assert "udp: XDP filter on xe-gw0" in env.daemon.run_log()
    x0, q0 = snapshot(env)
    cl = env.client(1)
    assert isinstance(cl.login(), c.LoginAccepted)
    for i in range(10):
        cl.send_app([new_order(100 + i)])
    acc = cl.wait_count(lambda m: isinstance(m, c.Accepted), 10)
    assert len(acc) == 10
    x1, q1 = wait_until("counters", lambda: (s := snapshot(env))[1]["rx_datagrams"]
                        >= q0["rx_datagrams"] + 11 and s)
    dx, dq = delta(x1, x0), delta(q1, q0)
    # every datagram passed the program and reached the socket; nothing dropped
    assert dx == {"rx_cnt": 11, "no_sock_cnt": 11}, dx
    assert dq["rx_datagrams"] == 11 and dq.get("malformed", 0) == 0


def test_malformed_and_spoofed_dropped_before_the_socket(env: Env, lab: Lab) -> None:
    cl = env.client(1)
    assert isinstance(cl.login(), c.LoginAccepted)
    good = dgram(1, 1)
    bad = {
        "bad_magic_cnt": b"\x00\x00" + good[2:],
        "bad_version_cnt": good[:2] + b"\x07" + good[3:],
        "truncated_cnt": good[:20],
        "bad_length_cnt": good[:16] + struct.pack("<H", 1) + struct.pack("<H", 24) + good[20:],
        "bad_count_cnt": good[:16] + struct.pack("<H", 0) + good[18:],
        "bad_session_cnt": dgram(0, 1),
        "bad_flags_cnt": good[:3] + b"\x80" + good[4:],
    }
    other = raw_socket(lab)  # the session's address, another port: spoofed
    x0, q0 = snapshot(env)
    for b in bad.values():
        cl.send_raw(b)
    for i in range(5):
        other.sendto(dgram(1, 1 + i), env.server)
    want = {k: 1 for k in bad} | {"spoofed_cnt": 5}
    x1 = wait_until("drops counted", lambda: (s := snapshot(env)[0])["rx_cnt"]
                    >= x0["rx_cnt"] + len(bad) + 5 and s)
    dx = delta(x1, x0)
    assert dx == want | {"rx_cnt": len(bad) + 5}, dx
    # none of them reached the socket, and the session goes on
    assert snapshot(env)[1]["rx_datagrams"] == q0["rx_datagrams"]
    cl.send_app([new_order(7)])
    cl.wait_for(lambda m: isinstance(m, c.Accepted) and m.cl_ord_id == 7)
    other.close()


def test_per_source_rate_and_live_changes(env: Env, lab: Lab) -> None:
    s = raw_socket(lab, OTHER_IP)  # session 3, never logged in: only the rate applies
    n = 300
    x0, q0 = snapshot(env)
    t0 = time.monotonic()
    for i in range(n):
        s.sendto(dgram(3, 1 + i), env.server)
    span = time.monotonic() - t0
    x1 = wait_until("all seen", lambda: (v := snapshot(env)[0])["rx_cnt"] >= x0["rx_cnt"] + n
                    and v)
    dx = delta(x1, x0)
    passed = dx.get("no_sock_cnt", 0)
    assert passed + dx["rate_limit_cnt"] == n and dx["rx_cnt"] == n, dx
    # GCRA: the burst, plus the rate over the sending time, plus one per CPU racing
    assert RATE["burst"] <= passed <= RATE["burst"] + RATE["pps"] * span + 2, (passed, span)
    q1 = wait_until("shard", lambda: (q := snapshot(env)[1])["rx_datagrams"]
                    >= q0["rx_datagrams"] + passed and q)
    assert q1["rx_datagrams"] - q0["rx_datagrams"] == passed
    # rate 0 (unlimited) through the control socket: everything passes
    r = env.daemon.ctl({"cmd": "apply", "config": {"rate": {"pps": 0, "burst": 1}}})
    assert r["ok"], r
    x0 = snapshot(env)[0]
    for i in range(n):
        s.sendto(dgram(3, 1000 + i), env.server)
    x1 = wait_until("all seen", lambda: (v := snapshot(env)[0])["rx_cnt"] >= x0["rx_cnt"] + n
                    and v)
    assert delta(x1, x0) == {"rx_cnt": n, "no_sock_cnt": n}
    # an allowlist without OTHER_IP: its datagrams stop in the program, the session's go on
    r = env.daemon.ctl({"cmd": "apply", "config": {"allowlist": ["10.77.0.2/32"]}})
    assert r["ok"], r
    cl = env.client(1)
    assert isinstance(cl.login(), c.LoginAccepted)
    x0 = snapshot(env)[0]
    for i in range(10):
        s.sendto(dgram(3, 2000 + i), env.server)
    x1 = wait_until("dropped", lambda: (v := snapshot(env)[0])["rx_cnt"] >= x0["rx_cnt"] + 10
                    and v)
    assert delta(x1, x0) == {"rx_cnt": 10, "not_allowed_cnt": 10}
    cl.send_app([new_order(9)])
    cl.wait_for(lambda m: isinstance(m, c.Accepted) and m.cl_ord_id == 9)
    s.close()


def test_stop_detaches_and_unpins(env: Env, lab: Lab) -> None:
    pins = Path(f"/sys/fs/bpf/xdpex-{lab.prefix}")
    assert (pins / "stats_map").exists()

    def xdp_on_link() -> bool:
        out = subprocess.run(lab.netns_cmd(lab.gw_ns, ["ip", "-d", "link", "show", GW_IF]),
                             capture_output=True, text=True, check=True).stdout
        return "prog/xdp" in out

    assert xdp_on_link()
    assert env.daemon.stop() == 0
    assert not pins.exists()
    assert not xdp_on_link()
    assert "detached XDP from xe-gw0, pins removed" in env.daemon.run_log()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mode", "udp", "--xdp-filter"], "--xdp-filter: needs --iface"),
        (["--mode", "afxdp", "--iface", "lo", "--xdp-filter"],
         "--xdp-filter: --mode afxdp has its filter already"),
    ],
)
def test_refused_where_it_makes_no_sense(tmp_path: Path, args: list[str], message: str) -> None:
    need_root_and_built(XDPEXD)
    cfg = tmp_path / "c.json"
    cfg.write_text("{}")
    p = subprocess.run([str(XDPEXD), *args, "--config", str(cfg), "--journal-dir",
                        str(tmp_path / "j")], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and message in p.stderr, p.stderr
