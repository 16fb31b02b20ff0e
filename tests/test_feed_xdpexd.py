"""The market-data feed as xdpexd produces it (docs/marketdata.md), in all three backends over the
veth lab: multicast to 239.77.0.1:9400 from the gateway namespace, the reference C subscriber in
the traffic namespace rebuilding every book (1 % of the live packets dropped on the wire by the
lab's fault injector and recovered through xdpex-feedd's rewind where the gateway's kernel can
reach it: udp and afxdp);
books equal the engine's (the control socket's `book`), every message applied exactly once; a
late joiner from a snapshot; the feed across a kill -9 and restart resumes with no hole and no
repeat, in the journal and on the wire.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from dataplane_support import Client, in_netns, need_root_and_binary, new_order, read_journal
from feed_support import FeedD, Proc, c_sub, need_tools
from xdpex_proto import codec as c
from xdpex_proto import feed as f
from xdpex_traffic.faults import FaultSpec, Injector
from xdpex_traffic.lab import GW_IP, TG_IP
from xdpex_traffic.wire import Gateway, run_loadgen

GROUP = "239.77.0.1:9400"


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_root_and_binary()
    need_tools()


@pytest.fixture
def gw(dp_lab, request) -> Iterator[Gateway]:
    mode = request.param
    g = Gateway(dp_lab, mode, nsessions=5, extra_args=["--feed", GROUP])
    g.start()
    try:
        yield g
    finally:
        g.cleanup()


def feedd(gw: Gateway) -> FeedD:
    return FeedD(gw.workdir / "journal", host=GW_IP, rewind_port=9401, snapshot_port=9402,
                 ns=gw.lab.gw_ns)


def subscriber(gw: Gateway, *extra: str) -> Proc:
    return c_sub("--listen", "0.0.0.0:9400", "--group", GROUP.split(":")[0], "--mcast-if", TG_IP,
                 "--compare-ctl", str(gw.ctl_path), "--symbols", str(len(gw.symbols)),
                 "--until-quiet", "2", "--max-seconds", "180", *extra, ns=gw.lab.tg_ns)


def every_kind_of_event(gw: Gateway) -> None:
    """Rests, crosses, partial fills, a replace that keeps its place and one that does not,
    cancels, a mass cancel, a halt and a resume, through a real session."""
    with in_netns(gw.lab.tg_ns):
        a = Client((GW_IP, 9000), gw.sessions[0].id, gw.sessions[0].secret)
        b = Client((GW_IP, 9000), gw.sessions[1].id, gw.sessions[1].secret)
    try:
        assert isinstance(a.login(), c.LoginAccepted) and isinstance(b.login(), c.LoginAccepted)
        a.send_app([new_order(k, c.Side.BUY, 9950 + k, 10) for k in range(1, 6)])
        a.wait_count(lambda m: isinstance(m, c.Accepted), 5)
        a.send_app([c.Replace(symbol_id=1, orig_cl_ord_id=1, new_cl_ord_id=11, price=9951, qty=4,
                              client_ts=0),  # price change: loses its place
                    c.Replace(symbol_id=1, orig_cl_ord_id=2, new_cl_ord_id=12, price=9952, qty=3,
                              client_ts=0),  # quantity down: keeps it
                    c.Cancel(symbol_id=1, orig_cl_ord_id=3, client_ts=0)])
        a.wait_count(lambda m: isinstance(m, c.Replaced | c.Cancelled), 3)
        b.send_app([new_order(1, c.Side.SELL, 9950, 6, tif=c.Tif.IOC)])
        b.wait_for(lambda m: isinstance(m, c.Fill))
        assert gw.ctl({"cmd": "halt", "symbol": 2})["ok"]
        assert gw.ctl({"cmd": "resume", "symbol": 2})["ok"]
        a.send_app([c.MassCancel(symbol_id=1, side=0, client_ts=0)])
        a.wait_for(lambda m: isinstance(m, c.Cancelled))
    finally:
        a.close()
        b.close()


def finish(sub: Proc) -> dict:
    rc = sub.finish(timeout=240)
    assert rc == 0, f"subscriber exit {rc}: {sub.err[-3000:]} {sub.lines[-3:]}"
    st = sub.last_json()
    assert st["refused"] == 0 and st["malformed"] == 0, st
    return st


@pytest.mark.parametrize(("gw", "orders"), [("udp", 200_000), ("afxdp", 1_000_000),
                                              ("dpdk", 200_000)], indirect=["gw"])
def test_subscriber_rebuilds_the_books_from_xdpexds_feed(gw: Gateway, orders: int) -> None:
    rewind = gw.mode != "dpdk"  # dpdk owns the gateway's wire: no kernel there to serve rewinds
    d = feedd(gw) if rewind else None
    inj = Injector(gw.lab)
    try:
        if rewind:  # 1 % of the feed's datagrams lost on the wire, for rewind to recover
            inj.apply(FaultSpec(feed_port=9400, feed_loss=0.01, seed=7))
        sub = subscriber(gw, *(["--rewind", f"{GW_IP}:9401"] if rewind else []))
        every_kind_of_event(gw)
        r = run_loadgen(gw.lab, gw, gw.sessions[2:4], ["--count", str(orders), "--batch", "16",
                                                      "--duration", "200", "--window", "1024"],
                        timeout=300)
        assert r["answered"] == r["sent"] == orders, {k: r.get(k) for k in ("sent", "lost")}
        st = finish(sub)
        feed = gw.stats()["queues"][0]["feed"]
        assert feed["refused"] == 0 and feed["messages"] > orders
        assert st["next_seq"] == feed["next_seq"]
        assert st["messages"] == feed["messages"], "every message applied exactly once"
        if rewind:
            k = inj.counters()["out"]
            assert k["feed_dropped"] > 0 and st["dropped_packets"] == 0, (k, st)
            assert st["packets"] <= k["feed"] - k["feed_dropped"], (k, st)
            assert st["gaps"] > 0 and st["rewound_messages"] > 0, st
    finally:
        inj.remove()
        if d:
            d.finish(timeout=10, sig=signal.SIGTERM)


@pytest.mark.parametrize("gw", ["udp"], indirect=True)
def test_a_late_joiner_starts_from_a_snapshot(gw: Gateway) -> None:
    d = feedd(gw)
    try:
        every_kind_of_event(gw)
        run_loadgen(gw.lab, gw, gw.sessions[2:4], ["--count", "50000", "--window", "512"])
        # Orders resting away from the generator's prices while the late joiner loads its
        # snapshot (the generator's own are cancelled when its sessions log out).
        with in_netns(gw.lab.tg_ns):
            r = Client((GW_IP, 9000), gw.sessions[4].id, gw.sessions[4].secret)
        assert isinstance(r.login(), c.LoginAccepted)
        r.send_app([new_order(100 + k, c.Side.BUY, 9100 + k, 5) for k in range(10)]
                   + [new_order(200 + k, c.Side.SELL, 10800 + k, 5) for k in range(10)])
        r.wait_count(lambda m: isinstance(m, c.Accepted), 20)
        late = subscriber(gw, "--snapshot", f"{GW_IP}:9402", "--session", "XDPEXQ0",
                          "--rewind", f"{GW_IP}:9401")
        r.close()
        run_loadgen(gw.lab, gw, gw.sessions[2:4], ["--count", "50000", "--window", "512"])
        st = finish(late)
        assert st["snapshot_seq"] > 1 and st["snapshot_orders"] >= 20
        assert st["next_seq"] == gw.stats()["queues"][0]["feed"]["next_seq"]
    finally:
        d.finish(timeout=10, sig=signal.SIGTERM)


def feed_records(journal: Path) -> list[tuple[int, int]]:
    return [(r["msg_seq"], r["count"]) for r in read_journal(journal / "q0")
            if r["type"] == f.REC_FEED]


@pytest.mark.parametrize("gw", ["udp"], indirect=True)
def test_the_feed_resumes_after_kill9_with_no_hole_and_no_repeat(gw: Gateway) -> None:
    d = feedd(gw)
    try:
        sub = subscriber(gw, "--rewind", f"{GW_IP}:9401")
        run_loadgen(gw.lab, gw, gw.sessions[2:4], ["--count", "100000", "--window", "512"])
        before = gw.stats()["queues"][0]["feed"]["next_seq"]
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGKILL)
        gw.proc.wait()
        gw.proc = None
        gw.start()
        assert gw.stats()["queues"][0]["feed"]["next_seq"] == before  # restored from XJ_FEED
        run_loadgen(gw.lab, gw, gw.sessions[2:4], ["--count", "100000", "--window", "512"])
        st = finish(sub)
        after = gw.stats()["queues"][0]["feed"]
        assert st["next_seq"] == after["next_seq"] and st["messages"] == after["next_seq"] - 1
    finally:
        d.finish(timeout=10, sig=signal.SIGTERM)
    recs = feed_records(gw.workdir / "journal")
    expect = 1
    for seq, count in recs:
        assert seq == expect, f"feed record at {seq}, expected {expect}: a hole or a repeat"
        expect = seq + count
