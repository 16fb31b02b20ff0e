"""The feed end to end with real processes: xdpex-feedsim (the real engine, a real journal of
XJ_FEED records, MoldUDP64 over real UDP), xdpex-feedd (rewind and snapshot from that journal)
and the C and Python subscribers, which must rebuild books equal to the engine's, order for order,
while dropping 1 % of the live packets themselves (every gap filled by rewind), when joining in the
middle from a snapshot, when the rewind server is killed with SIGKILL and restarted, and over
multicast across the veth lab."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from dataplane_support import lab_up
from feed_support import FeedD, Proc, addr, c_sub, free_port, need_tools, py_sub, sim
from xdpex_traffic.lab import GW_IP, TG_IP

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tools()


@contextlib.contextmanager
def feedd(journal: Path, **kw: object) -> Iterator[FeedD]:
    d = FeedD(journal, **kw)  # type: ignore[arg-type]
    try:
        yield d
    finally:
        if d.p.poll() is None:
            d.finish(timeout=10, sig=15)


def check_sub(p: Proc, dump: Path, engine_dump: Path, timeout: float = 120) -> dict[str, object]:
    rc = p.finish(timeout=timeout)
    assert rc == 0, f"{p.name} exit {rc}: {p.err[-3000:]} {p.lines[-3:]}"
    st = p.last_json()
    assert st["refused"] == 0 and st["malformed"] == 0, st
    want = engine_dump.read_text()
    assert want.count("\n") > 50, "the engine's books are nearly empty: the run proves little"
    assert dump.read_text() == want, f"{p.name}: rebuilt books differ from the engine's"
    return st


def test_c_subscriber_fills_every_gap_of_1pct_loss_through_rewind(tmp_path: Path) -> None:
    port = free_port()
    with feedd(tmp_path / "j") as d:
        sub = c_sub("--listen", f"127.0.0.1:{port}", "--rewind", addr(d.rewind), "--drop-pct",
                    "1", "--seed", "11", "--dump", str(tmp_path / "sub.dump"), "--top",
                    "--compare-dump", str(tmp_path / "engine.dump"),
                    "--max-seconds", "120")  # fmt: skip
        s = sim(tmp_path / "j", "--dst", f"127.0.0.1:{port}", "--orders", "200000", "--rate",
                "100000", "--seed", "5", "--dump", str(tmp_path / "engine.dump"))  # fmt: skip
        assert s.finish(timeout=120) == 0, s.err
        produced = s.last_json()
        st = check_sub(sub, tmp_path / "sub.dump", tmp_path / "engine.dump")
        served = d.stop()
    assert st["next_seq"] == produced["next_seq"]
    assert st["messages"] == produced["messages"], "every message applied exactly once"
    assert int(st["dropped_packets"]) > 20 and int(st["gaps"]) > 0  # type: ignore[call-overload]
    # Every rewound message was served; a request retried under load is served twice.
    assert 0 < int(st["rewound_messages"]) <= int(served["served_messages"])  # type: ignore[call-overload]
    assert served["journal_errors"] == 0
    assert any(ln.startswith("top ") for ln in sub.lines)


def test_python_and_c_subscribers_side_by_side(tmp_path: Path) -> None:
    pc, pp = free_port(), free_port()
    with feedd(tmp_path / "j") as d:
        csub = c_sub("--listen", f"127.0.0.1:{pc}", "--rewind", addr(d.rewind), "--drop-pct",
                     "1", "--seed", "3", "--dump", str(tmp_path / "c.dump"), "--top")  # fmt: skip
        psub = py_sub("--listen", f"127.0.0.1:{pp}", "--rewind", addr(d.rewind), "--drop-pct",
                      "1", "--seed", "4", "--dump", str(tmp_path / "py.dump"), "--top",
                      "--compare-dump", str(tmp_path / "engine.dump"),
                      "--max-seconds", "200")  # fmt: skip
        s = sim(tmp_path / "j", "--dst", f"127.0.0.1:{pc}", "--dst", f"127.0.0.1:{pp}",
                "--orders", "40000", "--rate", "20000", "--seed", "8", "--dump",
                str(tmp_path / "engine.dump"), "--linger-ms", "2000")  # fmt: skip
        assert s.finish(timeout=120) == 0, s.err
        cst = check_sub(csub, tmp_path / "c.dump", tmp_path / "engine.dump")
        pst = check_sub(psub, tmp_path / "py.dump", tmp_path / "engine.dump", timeout=240)
        d.stop()
    assert cst["next_seq"] == pst["next_seq"] == s.last_json()["next_seq"]
    assert int(pst["dropped_packets"]) > 0 and int(pst["rewound_messages"]) > 0  # type: ignore[call-overload]
    # The same top of book from both.
    ctop = [ln for ln in csub.lines if ln.startswith("top ")]
    ptop = [ln for ln in psub.lines if ln.startswith("top ")]
    assert ctop and ctop == ptop


@pytest.mark.parametrize("kind", ["c", "python"])
def test_late_joiner_starts_from_a_snapshot(tmp_path: Path, kind: str) -> None:
    port = free_port()
    orders = 300000 if kind == "c" else 60000
    with feedd(tmp_path / "j") as d:
        s = sim(tmp_path / "j", "--dst", f"127.0.0.1:{port}", "--orders", str(orders), "--rate",
                str(orders // 3), "--seed", "21", "--progress", str(orders // 3), "--dump",
                str(tmp_path / "engine.dump"), "--linger-ms", "1000")  # fmt: skip
        s.wait_line(f"progress {orders // 3} ")
        args = ("--listen", f"127.0.0.1:{port}", "--rewind", addr(d.rewind), "--snapshot",
                addr(d.snapshot), "--session", "XDPEXQ0", "--drop-pct", "1",
                "--dump", str(tmp_path / "sub.dump"))  # fmt: skip
        sub = c_sub(*args) if kind == "c" else py_sub(*args, "--max-seconds", "200")
        assert s.finish(timeout=120) == 0, s.err
        st = check_sub(sub, tmp_path / "sub.dump", tmp_path / "engine.dump", timeout=240)
        served = d.stop()
    assert int(st["snapshot_seq"]) > 1000, "joined in the middle"  # type: ignore[call-overload]
    assert int(st["snapshot_orders"]) > 0  # type: ignore[call-overload]
    assert served["snapshots"] == 1 and served["snapshot_orders"] == st["snapshot_orders"]
    # It never saw (or asked for) what the snapshot covered.
    assert int(st["messages"]) < int(s.last_json()["messages"])  # type: ignore[call-overload]


def test_rewind_server_killed_and_restarted_mid_session(tmp_path: Path) -> None:
    port, rport, sport = free_port(), free_port(), free_port()
    d = FeedD(tmp_path / "j", rewind_port=rport, snapshot_port=sport)
    sub = c_sub("--listen", f"127.0.0.1:{port}", "--rewind", f"127.0.0.1:{rport}",
                "--drop-pct", "2", "--seed", "9", "--dump", str(tmp_path / "sub.dump"),
                "--retry-ms", "20", "--max-seconds", "120")  # fmt: skip
    s = sim(tmp_path / "j", "--dst", f"127.0.0.1:{port}", "--orders", "150000", "--rate",
            "50000", "--seed", "2", "--progress", "50000", "--dump",
            str(tmp_path / "engine.dump"), "--linger-ms", "1500")  # fmt: skip
    try:
        s.wait_line("progress 50000 ")
        d.kill9()  # gaps from here on go unanswered until it is back
        s.wait_line("progress 100000 ")
        d = FeedD(tmp_path / "j", rewind_port=rport, snapshot_port=sport)
        assert s.finish(timeout=120) == 0, s.err
        st = check_sub(sub, tmp_path / "sub.dump", tmp_path / "engine.dump")
        served = d.stop()
    finally:
        for p in (s, sub, d):
            if p.p.poll() is None:
                p.finish(timeout=5, sig=9)
    assert st["messages"] == s.last_json()["messages"]
    # The restarted server read the whole journal back and answered what was missed meanwhile.
    assert served["served_messages"] > 0 and served["journal_errors"] == 0
    assert int(st["requests"]) > int(st["gaps"])  # type: ignore[call-overload]


def test_multicast_over_the_veth_lab(tmp_path: Path) -> None:
    port = free_port()
    group = "239.77.0.1"
    with lab_up("fm") as lab:
        with feedd(tmp_path / "j", host=GW_IP, ns=lab.gw_ns) as d:
            subs = [
                c_sub("--listen", f"0.0.0.0:{port}", "--group", group, "--mcast-if", TG_IP,
                      "--rewind", addr(d.rewind), "--drop-pct", "1", "--dump",
                      str(tmp_path / "c.dump"), ns=lab.tg_ns),
                py_sub("--listen", f"0.0.0.0:{port}", "--group", group, "--mcast-if", TG_IP,
                       "--rewind", addr(d.rewind), "--drop-pct", "1", "--dump",
                       str(tmp_path / "py.dump"), "--max-seconds", "200", ns=lab.tg_ns),
            ]  # fmt: skip
            s = sim(tmp_path / "j", "--dst", f"{group}:{port}", "--mcast-if", GW_IP, "--orders",
                    "30000", "--rate", "15000", "--dump", str(tmp_path / "engine.dump"),
                    "--linger-ms", "2000", ns=lab.gw_ns)  # fmt: skip
            assert s.finish(timeout=120) == 0, s.err
            for p, dump in zip(subs, ("c.dump", "py.dump"), strict=True):
                st = check_sub(p, tmp_path / dump, tmp_path / "engine.dump", timeout=240)
                assert st["messages"] == s.last_json()["messages"]
            assert d.stop()["served_messages"] > 0
