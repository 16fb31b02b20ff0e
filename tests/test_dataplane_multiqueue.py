"""xdpexd with two queues in AF_XDP mode on a two-queue veth pair in namespaces this test creates:
one socket, UMEM, engine, journal and thread per queue, symbols and sessions partitioned by queue
(docs/dataplane.md "Queues and symbol partitioning"). Whichever queue a client's flow lands on,
the session owned by that queue logs in, the other is refused as bound elsewhere, and each
session trades only its own queue's symbols.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dataplane_support import Client, Daemon, base_config, need_root_and_binary, new_order
from xdpex_proto import codec as c
from xdpex_traffic.lab import xdp_pass_object

GW_IP, CL_IP = "10.78.0.1", "10.78.0.2"


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


@pytest.fixture
def mq_pair() -> Iterator[tuple[str, str]]:
    need_root_and_binary()
    sfx = f"{os.getpid() % 100000}"
    gw, cl = f"tdpmq{sfx}g", f"tdpmq{sfx}c"
    try:
        for ns in (gw, cl):
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", gw, "link", "add", "mq0", "numtxqueues", "2", "numrxqueues", "2", "type",
           "veth", "peer", "name", "mq1", "netns", cl, "numtxqueues", "2", "numrxqueues", "2")
        for ns, ifn, ip, peer, mac, pmac in ((gw, "mq0", GW_IP, CL_IP, "02:00:00:00:0a:01",
                                              "02:00:00:00:0a:02"),
                                             (cl, "mq1", CL_IP, GW_IP, "02:00:00:00:0a:02",
                                              "02:00:00:00:0a:01")):
            sh("ip", "-n", ns, "link", "set", ifn, "address", mac)
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifn)
            sh("ip", "netns", "exec", ns, "ethtool", "-K", ifn, "gro", "on", "tx", "off")
            sh("ip", "-n", ns, "link", "set", ifn, "up")
            sh("ip", "-n", ns, "neigh", "replace", peer, "lladdr", pmac, "dev", ifn, "nud",
               "permanent")
        sh("ip", "-n", cl, "link", "set", "dev", "mq1", "xdpdrv", "obj", str(xdp_pass_object()),
           "sec", "xdp")
        yield gw, cl
    finally:
        for ns in (gw, cl):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_two_queues_partition_symbols_and_sessions(mq_pair: tuple[str, str],
                                                   dp_workdir: Path) -> None:
    gw, cl = mq_pair
    cfg = base_config()
    cfg["symbols"][0]["queue"] = 0  # symbol 1 on queue 0
    cfg["symbols"][1]["queue"] = 1  # symbol 2 on queue 1
    cfg["sessions"] = [{"id": 1, "secret": cfg["sessions"][0]["secret"], "queue": 0},
                       {"id": 2, "secret": cfg["sessions"][0]["secret"], "queue": 1}]
    d = Daemon(dp_workdir, "afxdp", config=cfg, netns=gw, iface="mq0", port=9000,
               pin_dir=f"/sys/fs/bpf/xdpex-{gw}", extra=["--queues", "0,1"])
    clients: list[Client] = []
    try:
        d.start()
        log = d.run_log()
        assert "afxdp: mq0 queue 0:" in log and "afxdp: mq0 queue 1:" in log
        assert "journal " in log and "/q1:" in log
        st = d.stats()
        assert [q["queue"] for q in st["queues"]] == [0, 1]
        h = d.ctl({"cmd": "hash"})
        assert len(h["queues"]) == 2 and h["state_hash"] not in (
            h["queues"][0]["state_hash"], h["queues"][1]["state_hash"])
        assert {s["id"]: s["queue"] for s in d.ctl({"cmd": "sessions"})["sessions"]} == {
            1: 0, 2: 1}
        assert d.ctl({"cmd": "book", "symbol": 2})["ok"]
        # Each flow lands on one queue: the session owned there logs in, the other is refused
        # as bound elsewhere (a session already logged in is not tried again: the XDP program
        # drops its datagrams from any other address).
        logged: dict[int, Client] = {}
        for _ in range(16):
            sock_owner: Client | None = None
            for sid in (1, 2):
                if sid in logged:
                    continue
                p = Client((GW_IP, 9000), sid, netns=cl)
                if sock_owner is None:
                    sock_owner = p
                    clients.append(p)
                else:
                    p.sock.close()
                    p.sock = sock_owner.sock  # the same flow
                a = p.login()
                if isinstance(a, c.LoginRejected):
                    assert a.reason == c.LoginReason.BOUND_ELSEWHERE, a
                else:
                    assert isinstance(a, c.LoginAccepted)
                    logged[sid] = p
            if len(logged) == 2:
                break
        assert logged, "no flow reached a queue that owns a session"
        for sid, p in logged.items():
            own, other = (1, 2) if sid == 1 else (2, 1)
            p.received.clear()
            p.send_app([new_order(1, price=100, qty=10, symbol=own),
                        new_order(2, price=100, qty=10, symbol=other)])
            got = p.wait_count(lambda m: isinstance(m, c.Accepted | c.Rejected), 2)
            assert isinstance(got[0], c.Accepted) and got[0].symbol_id == own
            assert got[1].reason == c.RejectReason.UNKNOWN_SYMBOL
        assert d.stop() == 0
        assert not Path(f"/sys/fs/bpf/xdpex-{gw}").exists()
    finally:
        for p in clients:
            p.close()
        d.stop()


def test_udp_two_queues_reuseport_steers_each_flow_to_one_queue(dp_workdir: Path,
                                                                tmp_path: Path) -> None:
    """Kernel-UDP mode with --queues 0,1: one SO_REUSEPORT socket per queue, the kernel's hash
    of the source picks the queue of a flow. A Login that lands on the queue that does not own
    its session is refused BOUND_ELSEWHERE; a client that takes another source port gets there.
    Both queues carry orders; a flow keeps its queue across a kill -9 and restart; a second
    gateway on the same port is refused as before (the first queue's plain bind probe)."""
    need_root_and_binary()
    cfg = base_config()
    cfg["symbols"][0]["queue"] = 0
    cfg["symbols"][1]["queue"] = 1
    secret = cfg["sessions"][0]["secret"]
    cfg["sessions"] = [{"id": 1, "secret": secret, "queue": 0},
                       {"id": 2, "secret": secret, "queue": 1}]
    d = Daemon(dp_workdir, "udp", config=cfg, extra=["--queues", "0,1"])
    clients: list[Client] = []
    try:
        d.start()
        log = d.run_log()
        assert "queue 0 of 2" in log and "queue 1 of 2" in log
        assert [q["queue"] for q in d.stats()["queues"]] == [0, 1]
        logged: dict[int, Client] = {}
        refused = 0
        for sid in (1, 2):
            for _ in range(64):  # each port lands on the wrong queue with chance 1/2
                p = Client(("127.0.0.1", d.port), sid)
                clients.append(p)
                a = p.login()
                if isinstance(a, c.LoginAccepted):
                    logged[sid] = p
                    break
                assert a.reason == c.LoginReason.BOUND_ELSEWHERE, a
                refused += 1
        assert set(logged) == {1, 2}
        st = d.stats()["queues"]
        assert [q["logins"] for q in st] == [1, 1]
        assert sum(q["login_rejects"] for q in st) == refused
        for sid, p in logged.items():
            p.received.clear()
            p.send_app([new_order(1, price=100, qty=10, symbol=sid)])
            got = p.wait_for(lambda m: isinstance(m, c.Accepted | c.Rejected))
            assert isinstance(got, c.Accepted) and got.symbol_id == sid, got
        assert [q["applied"] for q in d.stats()["queues"]] == [1, 1]
        other = Daemon(tmp_path, "udp", config=cfg, port=d.port, extra=["--queues", "0,1"])
        p2 = subprocess.run(other.argv(), capture_output=True, text=True, timeout=20)
        assert p2.returncode == 1 and "Address already in use" in p2.stderr, p2.stderr
        # kill -9 and restart: each session's flow reaches its queue again (no new login)
        assert d.proc is not None
        d.proc.kill()
        d.proc.wait()
        d.start()
        for sid, p in logged.items():
            p.received.clear()
            p.send_app([new_order(2, price=100, qty=10, symbol=sid)])
            got = p.wait_for(lambda m: isinstance(m, c.Accepted | c.Rejected))
            assert isinstance(got, c.Accepted) and got.symbol_id == sid, got
        assert [q["applied"] for q in d.stats()["queues"]] == [2, 2]  # (replay counts too)
        rc, err = run_failing_argv([*d.argv(), "--queues", "1,0"])
        assert rc != 0 and "udp mode serves queues 0..n-1 in order" in err, err
    finally:
        for p in clients:
            p.close()
        d.stop()


def run_failing_argv(argv: list[str]) -> tuple[int, str]:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    return p.returncode, p.stderr
