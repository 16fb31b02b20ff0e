"""xdpex-loadgen against the real gateway: xdpexd in the veth lab, kernel-UDP and AF_XDP modes.

Every order must be answered and matched to its cl_ord_id, fills must occur (crossing IOC orders
from two sessions), rejects must be counted under the gateway's reason, and a wrong secret must be
refused at login. Small bounded runs: correctness here, speed in `make bench-wire`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from dataplane_support import need_root_and_built
from xdpex_traffic.lab import Lab, xdp_pass_object
from xdpex_traffic.wire import Gateway, Session, WireError, loadgen_path, run_loadgen, xdpexd_path


def _need() -> None:
    need_root_and_built(xdpexd_path(), loadgen_path(), xdp_pass_object())


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    _need()
    lab = Lab(f"tlg{os.getpid()}")
    lab.up()
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(params=["udp", "afxdp"])
def gw(request: pytest.FixtureRequest, lab: Lab) -> Iterator[Gateway]:
    g = Gateway(lab, request.param, nsessions=8)
    try:
        g.start()
        yield g
    finally:
        g.cleanup()


def _check_consistent(r: dict) -> None:
    assert r["lost"] == r["sent"] - r["answered"]
    assert r["unmatched"] == 0 and r["bad_datagrams"] == 0
    assert r["rtt_us"]["samples"] == r["answered"]
    assert 0 < r["rtt_us"]["p50"] <= r["rtt_us"]["p99"] <= r["rtt_us"]["p999"] <= r["rtt_us"]["max"]


def test_every_order_answered_and_matched(lab: Lab, gw: Gateway) -> None:
    r = run_loadgen(
        lab,
        gw,
        gw.sessions[0:2],
        ["--count", "20000", "--batch", "16", "--window", "512", "--duration", "20"],
        timeout=60,
    )
    assert r["sent"] == r["answered"] == 20000 and r["lost"] == 0
    assert r["datagrams"] == 20000 // 16
    _check_consistent(r)
    assert r["mix"]["new"] + r["mix"]["cancel"] + r["mix"]["cross"] == 20000
    assert r["mix"]["cancel"] > 1000 and r["mix"]["cross"] > 500
    assert r["accepted"] > 10000
    assert r["fills"] > 0 and r["filled_qty"] >= r["fills"]
    assert r["cancels"].get("USER", 0) > 1000
    # In-band, on-tick orders: the only refusals possible are cancels racing a fill.
    assert set(r["rejects"]) <= {"UNKNOWN_ORDER"}
    assert r["logged_out_by_gateway"] == 0
    assert 0 < r["generator_busy_pct"] <= 100
    st = gw.stats()
    assert st["ok"] and st["mode"] == gw.mode
    q0 = st["queues"][0]
    assert q0["applied"] >= 20000 and q0["gaps"] == 0


def test_generator_afxdp_mode(lab: Lab, gw: Gateway) -> None:
    """--xdp: orders leave as raw frames and answers arrive through the generator's own AF_XDP
    socket; the lab's XDP program is put back afterwards."""
    before = lab.status()["traffic"]["xdp"]
    r = run_loadgen(
        lab,
        gw,
        gw.sessions[5:7],
        ["--count", "10000", "--batch", "16", "--window", "512", "--xdp", lab.tg_if],
        timeout=60,
    )
    assert r["io"] == "afxdp"
    assert r["sent"] == r["answered"] == 10000 and r["lost"] == 0
    _check_consistent(r)
    assert r["rx_datagrams"]["xsk"] > 0 and r["fills"] > 0
    assert set(r["xsk_drops"]) == {"rx_dropped", "rx_ring_full", "fill_ring_empty"}
    assert lab.status()["traffic"]["xdp"] == before


def test_single_order_open_loop(lab: Lab, gw: Gateway) -> None:
    r = run_loadgen(
        lab,
        gw,
        gw.sessions[2:3],
        ["--count", "5000", "--batch", "1", "--rate", "20000", "--duration", "20"],
        timeout=60,
    )
    assert r["sent"] == r["answered"] == 5000 and r["datagrams"] == 5000
    assert r["loop"] == "open" and r["offered"] == 20000
    _check_consistent(r)
    assert r["send_duration_s"] > 0.2  # paced: 5000 orders at 20k/s take about 0.25 s


def test_rejects_are_counted_by_reason(lab: Lab, gw: Gateway) -> None:
    # Prices far outside the configured band (9000..11000): every order is refused.
    r = run_loadgen(
        lab,
        gw,
        gw.sessions[3:4],
        ["--count", "2000", "--batch", "8", "--window", "256", "--price", "50000:50200"],
        timeout=60,
    )
    assert r["answered"] == 2000 and r["lost"] == 0
    assert r["accepted"] == 0 and r["rejects"] == {"OUTSIDE_BAND": 2000}
    _check_consistent(r)


def test_wrong_secret_is_refused(lab: Lab, gw: Gateway) -> None:
    bad = Session(gw.sessions[4].id, b"\x01" * 32)
    with pytest.raises(WireError, match="login rejected: BAD_PROOF"):
        run_loadgen(lab, gw, [bad], ["--count", "10"], timeout=30)


def test_runs_in_the_traffic_namespace_only(lab: Lab) -> None:
    # The lab's gateway address is not reachable from the host namespace.
    r = subprocess.run(
        [str(loadgen_path()), "--server", f"{lab.gw_ip}:9000", "--session", "1:00"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 3


@pytest.mark.parametrize("inside", [True, False], ids=["logins-in-run", "logins-first"])
@pytest.mark.parametrize("mode", ["udp", "afxdp"])
def test_sessions_spread_over_two_queues(mode: str, inside: bool) -> None:
    """A two-queue lab and xdpexd serving both queues (afxdp: a socket per rx queue; udp: a
    SO_REUSEPORT socket per queue): eight sessions, four a queue, each trading its queue's
    symbols, logging in staggered inside the run and again every 200 ms. A Login that lands on
    the queue not owning its session is refused BOUND_ELSEWHERE and the generator moves the
    session to a new source port: exactly as many moves as the gateway's refusals. Both queues
    carry orders, every order is answered, none for another queue's symbol. (logins-first: the
    same with the generator's logins before the run, one after another.)"""
    _need()
    lab = Lab(f"tlq{os.getpid()}", queues=2)
    lab.up()
    g = Gateway(lab, mode, nsessions=8, queues=2)
    try:
        g.start()
        r = run_loadgen(
            lab, g, g.sessions,
            ["--count", "8000", "--batch", "4", "--rate", "4000", "--duration", "20"]
            + (["--login-stagger", "20", "--relogin-ms", "200"] if inside else []),
            timeout=60, own_symbols=True,
        )  # fmt: skip
        assert r["sent"] == r["answered"] == 8000
        _check_consistent(r)
        assert "UNKNOWN_SYMBOL" not in r["rejects"]
        st = g.stats()["queues"]
        assert [q["queue"] for q in st] == [0, 1]
        assert all(q["applied"] > 1000 for q in st), [q["applied"] for q in st]
        lg = r["logins"]
        assert lg["rebinds"] == r["login_rebinds"] == sum(q["login_rejects"] for q in st)
        if not inside:
            assert sum(q["logins"] for q in st) == 8 and lg["sent"] == 0
            return
        assert lg["accepted"] == sum(q["logins"] for q in st) > 8  # the first ones and again
        assert lg["sent"] == lg["accepted"] + lg["rejected"] + lg["retries"]
        assert len(lg["attempts"]) == lg["sent"]
        # [session, started, sent, answered, result]: result 0 accepted, -1 none (retried)
        assert {a[0] for a in lg["attempts"] if a[4] == 0} == {s.id for s in g.sessions}
        assert all(a[1] <= a[2] <= a[3] for a in lg["attempts"] if a[4] >= 0)
        by_queue = {q: [x["id"] for x in g.ctl({"cmd": "sessions"})["sessions"]
                        if x["queue"] == q] for q in (0, 1)}  # fmt: skip
        assert by_queue == {0: [1, 3, 5, 7], 1: [2, 4, 6, 8]}
    finally:
        g.cleanup()
        lab.down()
