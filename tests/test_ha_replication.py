"""Journal replication between two real xdpexd processes (docs/ha.md), kernel-UDP mode on
loopback: a standby's journal, books, sessions and sequences equal the primary's; one that starts
late catches up across segment rotations; --durability replicated holds answers until a standby
has their batch; promotion keeps every acknowledged order and sequence; an old primary with a
tail nobody acknowledged cuts it and rejoins; a standby whose state differs says so; with --ha a
primary answers only while its lease runs. (Failover driven by etcd: tests/test_ha_failover.py.)
"""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import crc32c
import pytest
from dataplane_support import (
    XDPEXD,
    Client,
    Daemon,
    base_config,
    free_udp_port,
    need_root_and_binary,
    new_order,
    read_journal,
)
from xdpex_proto import codec as c


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """One xdpexd of a pair, in kernel-UDP mode on 127.0.0.1."""

    def __init__(self, workdir: Path, name: str, *extra: str) -> None:
        (workdir / name).mkdir(exist_ok=True)
        self.name = name
        self.repl = f"127.0.0.1:{free_tcp_port()}"
        self.d = Daemon(workdir / name, "udp", config=base_config(), addr="127.0.0.1",
                        port=free_udp_port(), poll="sleep",
                        extra=["--repl-listen", self.repl, "--name", name, *extra])
        self.server = ("127.0.0.1", self.d.port)

    def ctl(self, req: dict) -> dict:
        return self.d.ctl(req)

    def ha(self) -> dict:
        r = self.ctl({"cmd": "ha"})
        assert r["ok"], r
        return r

    def hash(self) -> tuple[str, int]:
        r = self.ctl({"cmd": "hash"})
        return r["state_hash"], r["queues"][0]["journal_seq"]

    def records(self) -> list[tuple]:
        return [(r["seq"], r["type"], r["flags"], r["session"], r["msg_seq"], r["payload"])
                for r in read_journal(self.d.journal / "q0")]


def wait_until(pred, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def all_threads_stopped(pid: int) -> bool:
    """Every thread of `pid` in state T (stopped by a signal), from /proc."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        with contextlib.suppress(FileNotFoundError):  # (a thread that just exited)
            states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
    return bool(states) and all(s == "T" for s in states)


def caught_up(primary: Node, standby: Node) -> None:
    wait_until(lambda: standby.hash() == primary.hash(),
               f"{standby.name} has {standby.hash()}, {primary.name} {primary.hash()}")


@pytest.fixture
def pair(dp_workdir: Path) -> Iterator[tuple[Node, Node]]:
    need_root_and_binary()
    a = Node(dp_workdir, "a", "--durability", "replicated", "--segment-mb", "1")
    b = Node(dp_workdir, "b", "--role", "standby", "--repl-from", a.repl, "--segment-mb", "1")
    try:
        a.d.start()
        b.d.start()
        yield a, b
    finally:
        for n in (b, a):
            n.d.stop(signal.SIGKILL)


def trade(cl: Client, first: int, n: int) -> None:
    """n orders, half of them crossing the other half; waits for every answer."""
    for k in range(first, first + n):
        cl.send_app([new_order(k, c.Side.BUY if k % 2 else c.Side.SELL, price=100, qty=5)])
    cl.wait_count(lambda m: isinstance(m, c.Accepted) and first <= m.cl_ord_id < first + n, n,
                  timeout=20)


def test_standby_equals_the_primary_record_for_record(pair: tuple[Node, Node]) -> None:
    a, b = pair
    cl = Client(a.server, 1)
    assert isinstance(cl.login(), c.LoginAccepted)
    trade(cl, 1, 300)
    caught_up(a, b)
    assert a.records() == b.records()
    assert a.ctl({"cmd": "sessions"})["sessions"] == b.ctl({"cmd": "sessions"})["sessions"]
    st = a.ha()["queues"][0]["standbys"]
    assert len(st) == 1 and st[0]["name"] == "b" and st[0]["acked_seq"] == a.hash()[1]
    fol = b.ha()["queues"][0]["following"]
    assert fol["state"] == "streaming" and fol["lag_records"] == 0
    # The primary sent its state hash at a batch boundary now and then; the standby's matched.
    trade(cl, 1000, 20)
    wait_until(lambda: b.ha()["queues"][0]["following"]["hashes_matched"] >= 1, "a hash check")
    # Caught up, the standby is served by the queue thread itself (--durability replicated),
    # and where the replication time went is counted stage by stage.
    q = a.ha()["queues"][0]
    assert q["standbys"][0]["served_by"] == "queue thread"
    for stage in ("commit_to_sent", "sent_to_ack", "ack_to_release"):
        assert q["stages_us"][stage]["count"] >= 1, (stage, q["stages_us"])
    assert b.ha()["queues"][0]["stages_us"]["recv_to_ack"]["count"] >= 1


def test_a_late_standby_catches_up_across_rotated_segments(dp_workdir: Path) -> None:
    need_root_and_binary()
    a = Node(dp_workdir, "a", "--segment-mb", "1")
    b = Node(dp_workdir, "b", "--role", "standby", "--repl-from", a.repl)
    try:
        a.d.start()
        cl = Client(a.server, 1)
        assert isinstance(cl.login(), c.LoginAccepted)
        for k in range(0, 12000, 20):  # about 1.6 MiB of journal: two segments at least
            cl.send_app([new_order(k + i + 1, price=100 + i, qty=1) for i in range(20)])
        cl.wait_count(lambda m: isinstance(m, c.Accepted), 12000, timeout=30)
        assert len(list((a.d.journal / "q0").glob("*.xjl"))) >= 2
        b.d.start()
        caught_up(a, b)
        trade(cl, 10_000, 50)  # and then it follows live
        caught_up(a, b)
        assert a.records() == b.records()
    finally:
        for n in (b, a):
            n.d.stop(signal.SIGKILL)


def test_a_replicated_standby_follows_live_across_rotated_segments(
        pair: tuple[Node, Node]) -> None:
    """The queue thread sends each batch from the current segment; a new segment goes back to
    the sender thread, whose reader moves on through the files, and then to the queue thread."""
    a, b = pair
    cl = Client(a.server, 1)
    assert isinstance(cl.login(), c.LoginAccepted)
    for k in range(0, 12000, 20):  # about 1.6 MiB of journal with 1 MiB segments
        cl.send_app([new_order(k + i + 1, price=100 + i, qty=1) for i in range(20)])
    cl.wait_count(lambda m: isinstance(m, c.Accepted), 12000, timeout=30)
    assert len(list((a.d.journal / "q0").glob("*.xjl"))) >= 2
    caught_up(a, b)
    trade(cl, 20_000, 20)
    caught_up(a, b)
    assert a.records() == b.records()
    wait_until(lambda: a.ha()["queues"][0]["standbys"][0]["served_by"] == "queue thread",
               "the queue thread serves the standby again")
    assert a.ha()["queues"][0]["standbys"][0]["handbacks"] >= 1  # the segment change at least


def test_replicated_answers_wait_for_the_standby(pair: tuple[Node, Node]) -> None:
    a, b = pair
    cl = Client(a.server, 1)
    assert isinstance(cl.login(), c.LoginAccepted)
    trade(cl, 1, 10)
    b.d.proc.send_signal(signal.SIGSTOP)  # the standby stops acknowledging
    try:
        # kill() returns before the signal has stopped every thread: until it has, the standby
        # may still acknowledge what comes next.
        wait_until(lambda: all_threads_stopped(b.d.proc.pid), "the standby stopped")
        cl.send_app([new_order(50)])
        assert not [m for d in cl.recv(0.5) for m in d.messages if isinstance(m, c.Accepted)]
        held = a.ha()["queues"][0]
        assert held["held_datagrams"] >= 1 and held["standbys"][0]["lag_records"] >= 1
    finally:
        b.d.proc.send_signal(signal.SIGCONT)
    acc = cl.wait_for(lambda m: isinstance(m, c.Accepted) and m.cl_ord_id == 50)
    assert acc.cl_ord_id == 50
    lat = a.d.stats()["queues"][0]["latency"]
    # Counted are the batches that waited for an ack: the one held while the standby was
    # stopped at least (the others may have been acknowledged before they could wait, or read
    # together into one batch on a loaded machine).
    assert lat["replication"]["count"] >= 1 and lat["replication"]["sum_ns"] > 400_000_000


def test_with_repl_missing_local_answers_go_on_without_a_standby(dp_workdir: Path) -> None:
    need_root_and_binary()
    a = Node(dp_workdir, "a", "--durability", "replicated", "--repl-missing", "local")
    try:
        a.d.start()
        assert "with no standby answers leave on the local journal" in a.d.run_log()
        cl = Client(a.server, 1)
        assert isinstance(cl.login(), c.LoginAccepted)
        trade(cl, 1, 5)
        assert a.ha()["repl_missing"] == "local" and a.ha()["queues"][0]["standbys"] == []
    finally:
        a.d.stop(signal.SIGKILL)


def test_promotion_keeps_every_order_and_sequence(pair: tuple[Node, Node]) -> None:
    a, b = pair
    cl = Client(a.server, 1)
    assert isinstance(cl.login(), c.LoginAccepted)
    trade(cl, 1, 100)
    answered = dict(cl.app_messages())
    caught_up(a, b)
    a.d.kill9()
    r = b.ctl({"cmd": "promote", "epoch": 7})
    assert r == {"ok": True, "epoch": 7, "sessions_logged_out": 1}
    ha = b.ha()
    assert (ha["role"], ha["epoch"]) == ("primary", 7)
    assert ha["queues"][0]["epochs"][-1]["epoch"] == 7
    # The client moves to the new primary, asks for everything from outbound seq 1 again.
    cl2 = Client(b.server, 1)
    cl2.next_seq = cl.next_seq
    la = cl2.login(next_seq=1)
    assert isinstance(la, c.LoginAccepted) and la.epoch == 7 and la.next_in_seq == 101
    cl2.wait_count(lambda m: isinstance(m, c.Accepted), 100)
    replayed = dict(cl2.app_messages())
    assert {s: replayed[s] for s in answered} == answered  # the same answers, seq for seq
    trade(cl2, 200, 5)
    assert b.ctl({"cmd": "promote", "epoch": 8})["error"].startswith("promote: already")


def test_an_old_primary_cuts_its_unacknowledged_tail_and_rejoins(pair: tuple[Node, Node],
                                                                   dp_workdir: Path) -> None:
    a, b = pair
    cl = Client(a.server, 1)
    assert isinstance(cl.login(), c.LoginAccepted)
    trade(cl, 1, 20)
    caught_up(a, b)
    # The standby goes away; the primary writes on (held answers, never acknowledged).
    b.d.stop(signal.SIGKILL)
    cl.send_app([new_order(500), new_order(501)])
    assert not [m for d in cl.recv(0.4) for m in d.messages if isinstance(m, c.Accepted)]
    a_seq = a.hash()[1]
    a.d.stop(signal.SIGKILL)
    # b, still a standby (its primary gone), takes over from what it had.
    b.d.start()
    b_had = b.hash()[1]
    assert b_had < a_seq
    assert b.ctl({"cmd": "promote", "epoch": 3})["ok"]
    # a returns as b's standby: its records after b's takeover point go, it exits 75 ...
    a.d.extra = ["--repl-listen", a.repl, "--name", "a", "--role", "standby", "--repl-from",
                 b.repl]
    proc = subprocess.run(a.d.argv(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 75, proc.stderr
    assert f"holds records {b_had + 1}..{a_seq} of epoch 0 that the primary (epoch 3) does " \
        "not: never replicated" in proc.stderr
    # ... and, started again, follows b to the same state.
    a.d.start()
    caught_up(b, a)
    cl2 = Client(b.server, 1)
    cl2.next_seq = 21  # 500 and 501 were never acknowledged: sent again under new ids
    assert isinstance(cl2.login(), c.LoginAccepted)
    trade(cl2, 600, 4)
    caught_up(b, a)
    assert a.records() == b.records()


def test_a_standby_whose_state_differs_stops_and_says_so(pair: tuple[Node, Node]) -> None:
    a, b = pair
    cl = Client(a.server, 1)
    assert isinstance(cl.login(), c.LoginAccepted)
    trade(cl, 1, 10)
    caught_up(a, b)
    b.d.stop()
    # Change one resting order's price in the standby's journal, CRC made good again: only
    # the state hash can tell.
    seg = sorted((b.d.journal / "q0").glob("*.xjl"))[0]
    data = bytearray(seg.read_bytes())
    off = 32
    while True:
        ln, _, seq, typ, _, count = struct.unpack_from("<IIQBBH", data, off)
        if typ == 1 and data[off + 40] == c.MsgType.NEW_ORDER:
            struct.pack_into("<q", data, off + 40 + 16, 90)  # xe_new_order.price
            struct.pack_into("<I", data, off + 4, crc32c.crc32c(bytes(data[off + 8:off + ln])))
            break
        off += ln
    seg.write_bytes(bytes(data))
    b.d.start()
    trade(cl, 100, 5)  # new batches: the primary publishes its hash again
    wait_until(lambda: b.ha()["queues"][0]["following"]["state"] == "diverged", "divergence")
    why = b.ha()["queues"][0]["following"]["why"]
    assert why.startswith("diverged: state hash") and "replication stopped" in why
    assert "error: repl q0: diverged" in b.d.run_log()


def test_with_ha_a_primary_answers_only_while_its_lease_runs(dp_workdir: Path) -> None:
    need_root_and_binary()
    a = Node(dp_workdir, "a", "--ha")
    try:
        a.d.start()
        assert a.ha()["role"] == "standby" and a.ha()["fenced"] is True
        assert a.ctl({"cmd": "promote", "epoch": 1})["ok"]
        cl = Client(a.server, 1)
        cl.send_session([cl.login_msg()])
        assert cl.recv(0.4) == []  # primary, but no lease yet: not even read
        assert a.ctl({"cmd": "lease", "ttl_ms": 800}) == {"ok": True, "fenced": False}
        la = cl.wait_for(lambda m: isinstance(m, c.LoginAccepted | c.LoginRejected))
        assert isinstance(la, c.LoginAccepted)  # the kernel kept the datagram meanwhile
        trade(cl, 1, 5)
        wait_until(lambda: a.ha()["fenced"], "the lease to run out", timeout=5)
        cl.send_app([new_order(99)])
        assert cl.recv(0.5) == []  # fenced: nothing leaves, nothing is taken in
        assert a.ctl({"cmd": "lease", "ttl_ms": 2000})["ok"]
        cl.wait_for(lambda m: isinstance(m, c.Accepted) and m.cl_ord_id == 99)
        assert a.ctl({"cmd": "lease", "ttl_ms": 0}) == {"ok": True, "fenced": True}
        assert a.ha()["fenced"] is True
    finally:
        a.d.stop(signal.SIGKILL)


def test_bad_requests_are_refused_with_reasons(pair: tuple[Node, Node]) -> None:
    a, b = pair
    assert b.ctl({"cmd": "apply", "config": {"rate": {"pps": 5, "burst": 5}}})["error"] == \
        "apply: this xdpexd is a standby; send it to the primary"
    assert b.ctl({"cmd": "promote"})["error"].startswith("epoch: required")
    assert a.ctl({"cmd": "lease", "ttl_ms": 5})["error"] == \
        "lease: this xdpexd runs without --ha"
    assert a.ctl({"cmd": "follow"})["error"].startswith("from: required")
    assert a.ctl({"cmd": "follow", "from": "127.0.0.1:1"})["error"] == \
        "follow: this xdpexd is not a standby"
    cfg = a.d.workdir / "config.json"
    bad = subprocess.run([str(XDPEXD), "--mode", "udp", "--addr", "127.0.0.1", "--port",
                          str(free_udp_port()), "--config", str(cfg), "--journal-dir",
                          str(a.d.workdir / "j2"), "--ctl-socket", str(a.d.workdir / "c2"),
                          "--entry-socket", str(a.d.workdir / "e2"), "--durability",
                          "replicated"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2
    assert "--durability replicated: needs --repl-listen" in bad.stderr
    for opt, val, why in (("--role", "leader", "--role leader: expected one of primary standby"),
                          ("--repl-missing", "drop", "--repl-missing drop: expected one of"),
                          ("--durability", "paxos", "--durability paxos: expected one of")):
        r = subprocess.run([str(XDPEXD), "--mode", "udp", opt, val], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 2 and why in r.stderr, r.stderr
