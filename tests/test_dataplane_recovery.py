"""xdpexd journal and recovery with real processes: kill -9 after and during a bounded load, restart
from the journal to the same state hash, sessions resuming at the right sequences, no acknowledged
order lost or applied twice (checked against the journal and against every answer the clients
saw), a torn journal tail cut and logged, an unreadable journal refused, and a clean SIGTERM stop
that removes the XDP attachment and pins.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from dataplane_support import (
    IN,
    OUT,
    Client,
    Env,
    base_config,
    journal_messages,
    need_root_and_binary,
    new_order,
    read_journal,
    unavailable,
)
from xdpex_proto import codec as c


def env_for(mode: str, workdir: Path, request: pytest.FixtureRequest, **kw) -> Env:
    need_root_and_binary()
    lab = request.getfixturevalue("dp_lab") if mode != "udp" else None
    return Env(mode, workdir, lab, **kw)


def answers(cl: Client) -> dict[int, c.Message]:
    """Outbound seq -> message over everything received; a seq seen twice must be identical."""
    out: dict[int, c.Message] = {}
    for s, m in cl.app_messages():
        assert out.setdefault(s, m) == m, f"session {cl.session_id} seq {s} changed: {m}"
    return out


def contiguous_through(seqs: dict[int, c.Message]) -> int:
    n = 0
    while n + 1 in seqs:
        n += 1
    return n


def test_restart_same_hash_and_sequences(dp_mode: str, dp_workdir: Path, request) -> None:
    env = env_for(dp_mode, dp_workdir, request)
    d = env.daemon
    try:
        d.start()
        a, b = env.client(1), env.client(2)
        assert isinstance(a.login(), c.LoginAccepted) and isinstance(b.login(), c.LoginAccepted)
        for k in range(10):
            a.send_app([new_order(100 + 5 * k + i, c.Side.BUY, 95 + i, 10) for i in range(5)])
            b.send_app([new_order(200 + 5 * k + i, c.Side.SELL, 97 + i, 7) for i in range(5)])
        a.wait_count(lambda m: isinstance(m, c.Accepted), 50)
        b.wait_count(lambda m: isinstance(m, c.Accepted), 50)
        before = d.state_hash()
        sessions = d.ctl({"cmd": "sessions"})["sessions"]
        d.kill9()
        d.start()
        assert d.state_hash() == before
        assert f"state_hash={before}" in d.run_log()
        assert d.ctl({"cmd": "sessions"})["sessions"] == sessions
        # The sessions are still logged in and bound: the client just carries on.
        next_out = contiguous_through(answers(a)) + 1
        a.send_app([new_order(999, c.Side.BUY, 96, 1)])
        acc = a.wait_for(lambda m: isinstance(m, c.Accepted) and m.cl_ord_id == 999)
        assert [s for s, m in a.app_messages() if m is acc] == [next_out]
    finally:
        env.close()


@pytest.mark.parametrize("durability", ["none", "fsync"])
def test_kill9_during_load_loses_and_doubles_nothing(dp_mode: str, dp_workdir: Path, request,
                                                     durability: str) -> None:
    env = env_for(dp_mode, dp_workdir, request, durability=durability)
    d = env.daemon
    per_dgram, ndgrams = 5, 120  # 600 orders per session, bounded
    try:
        d.start()
        a, b = env.client(1), env.client(2)
        assert isinstance(a.login(), c.LoginAccepted) and isinstance(b.login(), c.LoginAccepted)
        sent: dict[int, dict[int, c.Message]] = {1: {}, 2: {}}  # session -> seq -> message
        for k in range(ndgrams):
            for cl, side, base in ((a, c.Side.BUY, 10_000), (b, c.Side.SELL, 20_000)):
                msgs = [new_order(base + k * per_dgram + i, side, 100, 10)
                        for i in range(per_dgram)]
                seq = cl.send_app(msgs)
                for i, m in enumerate(msgs):
                    sent[cl.session_id][seq + i] = m
            if k == ndgrams // 2:
                d.kill9()  # in the middle of the load; later datagrams go nowhere
            time.sleep(0.001)  # paced, so the kill lands while orders are being answered
        for cl in (a, b):
            cl.recv(0.3)
        seen_before = {cl.session_id: answers(cl) for cl in (a, b)}
        d.start()
        recovered = d.state_hash()
        # Each client logs in again from its bound address, asks for what it missed and resends
        # what the gateway has not applied.
        for cl in (a, b):
            expect = contiguous_through(answers(cl)) + 1
            acc = cl.login(next_seq=expect)
            assert isinstance(acc, c.LoginAccepted), acc
            msgs = sent[cl.session_id]
            for s in range(acc.next_in_seq, max(msgs) + 1, per_dgram):
                cl.send_app([msgs[x] for x in range(s, min(s + per_dgram, max(msgs) + 1))], seq=s)
        for cl in (a, b):
            want = {m.cl_ord_id for m in sent[cl.session_id].values()}
            got: set[int] = set()
            for _ in range(100):
                got = {m.cl_ord_id for m in answers(cl).values()
                       if isinstance(m, c.Accepted | c.Rejected)}
                if got >= want:
                    break
                cl.recv(0.1)
            assert got >= want, f"session {cl.session_id}: {len(want - got)} orders unanswered"
            seqs = answers(cl)
            assert sorted(seqs) == list(range(1, len(seqs) + 1)), "outbound sequence has holes"
            acks = [m.cl_ord_id for m in seqs.values() if isinstance(m, c.Accepted)]
            assert len(acks) == len(set(acks)) == len(want), "an order acknowledged twice"
        # The journal: every order applied exactly once, every answer any client saw is there.
        recs = read_journal(d.journal / "q0")
        inbound = journal_messages(recs, IN)
        for sid in (1, 2):
            mine = [(s, m) for sess, s, m in inbound if sess == sid]
            assert [s for s, _ in mine] == list(range(1, len(mine) + 1))
            assert sorted(m.cl_ord_id for _, m in mine) == sorted(
                m.cl_ord_id for m in sent[sid].values())
        outbound = {(sid, s): m for sid, s, m in journal_messages(recs, OUT)}
        for sid, seen in seen_before.items():
            for s, m in seen.items():
                assert outbound[(sid, s)] == m, f"acknowledged answer {sid}/{s} not journaled"
        # Replaying the same journal again gives the same state.
        assert d.stop() == 0
        d.start()
        final = d.state_hash()
        assert d.stop() == 0
        d.start()
        assert d.state_hash() == final
        assert recovered  # logged and served before the resend
    finally:
        env.close()


def written_end(seg: Path) -> int:
    """Offset just past the last record of a segment (where a preallocated one's zeros start)."""
    data = seg.read_bytes()
    off = 32
    while off + 4 <= len(data) and (ln := int.from_bytes(data[off : off + 4], "little")):
        off += ln
    return off


@pytest.mark.parametrize("how", ["kill9", "stopped"])
def test_torn_tail_cut_and_logged(dp_workdir: Path, request, how: str) -> None:
    """kill9: the segment is still preallocated (zeros after the written data), the torn record is
    written where the data ends. stopped: a clean stop cut the segment to its written length, the
    torn record is appended to the file. Either way it is cut and logged, nothing else changes."""
    env = env_for("udp", dp_workdir, request)
    d = env.daemon
    try:
        d.start()
        a = env.client(1)
        assert isinstance(a.login(), c.LoginAccepted)
        a.send_app([new_order(1), new_order(2, price=101)])
        a.wait_count(lambda m: isinstance(m, c.Accepted), 2)
        before = d.state_hash()
        if how == "kill9":
            d.kill9()
        else:
            assert d.stop() == 0
        seg = sorted((d.journal / "q0").glob("*.xjl"))[-1]
        size = seg.stat().st_size
        end = written_end(seg)
        assert (end < size) if how == "kill9" else (end == size)
        with open(seg, "r+b") as f:  # half a record: a batch torn by a crash
            f.seek(end)
            f.write(bytes([88, 0, 0, 0]) + os.urandom(25) + b"\x01")
        d.start()
        assert d.state_hash() == before
        assert f"torn tail cut: 30 bytes at offset {end}" in d.run_log()
        assert written_end(seg) == end
        assert not any(seg.read_bytes()[end : end + 30])  # the torn bytes are gone
        assert d.stop() == 0
        assert seg.stat().st_size == end  # a clean stop leaves exactly the written data
    finally:
        env.close()


def test_damage_before_valid_records_refused(dp_workdir: Path, request) -> None:
    """A bad record in the last segment with a valid one behind it is corruption, not a torn
    tail: the start is refused, naming the file and offset, and nothing is cut."""
    env = env_for("udp", dp_workdir, request)
    d = env.daemon
    try:
        d.start()
        a = env.client(1)
        assert isinstance(a.login(), c.LoginAccepted)
        a.send_app([new_order(1), new_order(2, price=101)])
        a.wait_count(lambda m: isinstance(m, c.Accepted), 2)
        d.kill9()
        seg = sorted((d.journal / "q0").glob("*.xjl"))[-1]
        size = seg.stat().st_size
        with open(seg, "r+b") as f:  # a flipped byte in the first record's payload
            f.seek(32 + 40 + 3)
            b = f.read(1)
            f.seek(32 + 40 + 3)
            f.write(bytes([b[0] ^ 0xFF]))
        with pytest.raises(AssertionError, match="refusing to start"):
            d.start()
        assert f"{seg.name}: record at offset 32: CRC mismatch (not at the tail)" in d.run_log()
        assert seg.stat().st_size == size  # nothing cut
    finally:
        env.close()


def test_unreadable_journal_refused(dp_workdir: Path, request) -> None:
    env = env_for("udp", dp_workdir, request)
    d = env.daemon
    try:
        d.start()
        assert d.stop(signal.SIGINT) == 0
        assert "stopping (SIGINT)" in d.run_log() and d.run_log().rstrip().endswith("stopped")
        seg = sorted((d.journal / "q0").glob("*.xjl"))[0]
        data = bytearray(seg.read_bytes())
        data[0:8] = b"NOTAJRNL"
        seg.write_bytes(bytes(data))
        with pytest.raises(AssertionError, match="bad segment header"):
            d.start()
        assert d.proc is not None and d.proc.returncode == 1
    finally:
        env.close()


def run_failing(argv: list[str]) -> tuple[int, str]:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    return p.returncode, p.stderr


def test_startup_errors_name_the_problem(dp_workdir: Path) -> None:
    need_root_and_binary()
    env = Env("udp", dp_workdir, None)
    d = env.daemon
    cfg = base_config()
    cfg["symbols"][1]["tick"] = -5
    d.config = cfg
    rc, err = run_failing(d.argv())
    assert rc == 2 and "symbols[1].tick: must be an integer" in err
    cfg = base_config()
    cfg["sessions"][0]["secert"] = "00"
    d.config = cfg
    rc, err = run_failing(d.argv())
    assert rc == 2 and "sessions[0].secert: unknown field" in err
    d.config = base_config()
    rc, err = run_failing([*d.argv(), "--iface", "nosuchif0"])
    assert rc == 2 and "--iface nosuchif0: no such interface" in err
    rc, err = run_failing([*d.argv(), "--durability", "maybe"])
    assert rc == 2 and "--durability maybe" in err
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", d.port))
        rc, err = run_failing(d.argv())
    assert rc == 1 and f"udp port {d.port} on 127.0.0.1: Address already in use" in err


def test_afxdp_queue_out_of_range_and_clean_stop(dp_workdir: Path, request) -> None:
    env = env_for("afxdp", dp_workdir, request)
    d = env.daemon
    lab = env.lab
    try:
        rc, err = run_failing([*d.argv(), "--queues", "0,3"])
        assert rc == 1 and "--queues 3: xe-gw0 has 1 rx queue (0..0)" in err
        d.start()
        pins = Path(d.pin_dir)
        assert pins.is_dir() and (pins / "xsks_map").exists()
        link = json.loads(subprocess.run(["ip", "-n", lab.gw_ns, "-j", "-d", "link", "show",
                                          "xe-gw0"], capture_output=True, text=True).stdout)
        assert "xdp" in link[0]
        assert d.stop(signal.SIGTERM) == 0
        log = d.run_log()
        assert "detached XDP from xe-gw0, pins removed" in log and log.rstrip().endswith("stopped")
        assert not pins.exists()
        link = json.loads(subprocess.run(["ip", "-n", lab.gw_ns, "-j", "-d", "link", "show",
                                          "xe-gw0"], capture_output=True, text=True).stdout)
        assert "xdp" not in link[0]
        assert not d.ctl_path.exists() and not d.entry_path.exists()
    finally:
        env.close()


# The journal preparer runs only beside pinned queue threads (--cpus) and off their cpu; with an
# ahead window as large as the segment it races every rotation.
PREPARER = ["--cpus", "0", "--journal-ahead-mb", "1"]


@pytest.mark.parametrize("preparer", [False, True], ids=["writer-reserves", "preparer"])
def test_segments_rotate_and_replay_across_them(dp_workdir: Path, request, preparer: bool) -> None:
    if preparer and (os.cpu_count() or 1) < 2:
        unavailable("the journal preparer needs a cpu besides the queue thread's")
    env = env_for("udp", dp_workdir, request,
                  extra=["--segment-mb", "1"] + (PREPARER if preparer else []))
    d = env.daemon
    try:
        d.start()
        assert ("kept ready ahead of each queue's tail by a preparer thread" in d.run_log()) \
            == preparer
        a = env.client(2)
        assert isinstance(a.login(), c.LoginAccepted)
        n = 0
        for k in range(400):  # 8,000 orders, about 1.6 MB of journal
            a.send_app([new_order(1 + 20 * k + i, c.Side.BUY, 1 + (20 * k + i) % 900, 1)
                        for i in range(20)])
            n += 20
            if k % 50 == 49:
                a.wait_count(lambda m: isinstance(m, c.Accepted), n, timeout=10)
        a.wait_count(lambda m: isinstance(m, c.Accepted), n, timeout=10)
        segs = d.ctl({"cmd": "journal"})["queues"][0]["segments"]
        assert segs[:2] == ["00000001.xjl", "00000002.xjl"]
        before = d.state_hash()
        d.kill9()
        d.start()
        assert d.state_hash() == before
        assert f"{len(segs)} segments" in d.run_log()
        recs = read_journal(d.journal / "q0")
        assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
        # The first answers live in the first segment: still served.
        a.received.clear()
        a.send_session([c.RetransmitReq(from_seq=1, count=3, client_ts=1)])
        a.recv(0.5)
        assert [s for s, _ in a.app_messages()] == [1, 2, 3]
    finally:
        env.close()


def test_afxdp_refuses_an_interface_held_by_another_program(dp_workdir: Path, request) -> None:
    env = env_for("afxdp", dp_workdir, request)
    d, lab = env.daemon, env.lab
    other = Path(__file__).resolve().parents[1] / "build" / "xdp" / "xdp_other.bpf.o"
    assert other.exists(), f"{other} is not built (run `make build`)"
    subprocess.run(["ip", "-n", lab.gw_ns, "link", "set", "dev", "xe-gw0", "xdpgeneric", "obj",
                    str(other), "sec", "xdp"], check=True)
    try:
        rc, err = run_failing(d.argv())
        assert rc == 1 and "XDP program: cannot attach to xe-gw0" in err, err
        assert "xdp_other" in err  # names the program that holds it
        assert not Path(d.pin_dir).exists()
    finally:
        subprocess.run(["ip", "-n", lab.gw_ns, "link", "set", "dev", "xe-gw0", "xdpgeneric",
                        "off"], check=True)
        env.close()


def test_journal_reserve_at_start(dp_workdir: Path, request) -> None:
    """--journal-reserve-mb reserves the space (blocks and page cache) before the first order and
    says so; the zeros past the tail are no records: a kill -9 and a restart give the same state,
    and the records continue where they stopped."""
    env = env_for("udp", dp_workdir, request, extra=["--journal-reserve-mb", "8"])
    d = env.daemon
    try:
        d.start()
        assert "8 MiB reserved ahead of the tail" in d.run_log()
        q = d.ctl({"cmd": "stats"})["queues"][0]
        assert q["journal_reserved_ahead"] >= (8 << 20) - 4096, q
        seg = d.journal / "q0" / "00000001.xjl"
        assert seg.stat().st_blocks * 512 >= 8 << 20, "the reserved space has no blocks"
        a = env.client(2)
        assert isinstance(a.login(), c.LoginAccepted)
        a.send_app([new_order(1 + i, c.Side.BUY, 90 + i, 1) for i in range(20)])
        a.wait_count(lambda m: isinstance(m, c.Accepted), 20)
        before = d.state_hash()
        d.kill9()
        d.start()
        assert d.state_hash() == before
        a.send_app([new_order(100, c.Side.BUY, 91, 1)])
        a.wait_for(lambda m: isinstance(m, c.Accepted) and m.cl_ord_id == 100)
        recs = read_journal(d.journal / "q0")
        assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
        assert len(journal_messages(recs, IN)) == 21
    finally:
        env.close()


def test_journal_preparer_keeps_the_window_ahead(dp_workdir: Path, request) -> None:
    """The preparer reserves --journal-ahead-mb past the tail and maps the next 4 MiB writable,
    and keeps doing so as records arrive; without it the queue thread has 256 KiB at a time."""
    if (os.cpu_count() or 1) < 2:
        unavailable("the journal preparer needs a cpu besides the queue thread's")
    env = env_for("udp", dp_workdir, request, extra=["--cpus", "0", "--journal-ahead-mb", "16"])
    d = env.daemon
    try:
        d.start()
        a = env.client(2)
        assert isinstance(a.login(), c.LoginAccepted)

        def ahead() -> dict[str, int]:
            q = d.ctl({"cmd": "stats"})["queues"][0]
            return {k: q[f"journal_{k}_ahead"] for k in ("reserved", "mapped")}

        for n in range(3):
            a.send_app([new_order(1 + 20 * n + i, c.Side.BUY, 90 + i, 1) for i in range(20)])
            a.wait_count(lambda m: isinstance(m, c.Accepted), 20 * (n + 1))
            got: dict[str, int] = {}
            for _ in range(100):
                got = ahead()
                if got["reserved"] >= (16 << 20) - 4096 and got["mapped"] >= (4 << 20) - 4096:
                    break
                time.sleep(0.02)
            assert got["reserved"] >= (16 << 20) - 4096, got
            assert (4 << 20) - 4096 <= got["mapped"] <= got["reserved"], got
    finally:
        env.close()


def test_journal_reserve_without_room_refused(dp_workdir: Path) -> None:
    need_root_and_binary()
    small = dp_workdir / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        env = Env("udp", dp_workdir, None, extra=["--journal-reserve-mb", "1"])
        env.daemon.journal = small / "journal"
        rc, err = run_failing(env.daemon.argv())
        assert rc == 1, err
        assert "cannot reserve 1 MiB: No space left on device" in err, err
        assert "error: --journal-reserve-mb 1: journal" in err, err
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


@pytest.mark.parametrize("preparer", [False, True], ids=["writer-reserves", "preparer"])
def test_journal_disk_full_stops_cleanly_and_recovers(dp_workdir: Path, request,
                                                      preparer: bool) -> None:
    """A journal that cannot be written stops the daemon with a message naming the file, nothing
    of the failed batch is acknowledged, and a restart (with room again) cuts the torn batch and
    keeps everything that was acknowledged. With the preparer, it meets the full disk first; the
    queue thread still stops on its own write, with the same message."""
    need_root_and_binary()
    if preparer and (os.cpu_count() or 1) < 2:
        unavailable("the journal preparer needs a cpu besides the queue thread's")
    small = dp_workdir / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        env = Env("udp", dp_workdir, None, extra=PREPARER if preparer else [])
        d = env.daemon
        d.journal = small / "journal"
        try:
            d.start()
            a = env.client(2)
            assert isinstance(a.login(), c.LoginAccepted)
            acked: set[int] = set()
            for k in range(400):  # far more than 256 KiB of journal
                a.send_app([new_order(1 + 20 * k + i, c.Side.BUY, 1 + i, 1) for i in range(20)])
                a.recv(0.02)
                if d.proc.poll() is not None:
                    break
            a.recv(0.3)
            acked = {m.cl_ord_id for m in a.messages() if isinstance(m, c.Accepted)}
            assert d.proc.wait(10) == 1
            assert "write failed: No space left on device" in d.run_log()
            assert acked, "nothing was acknowledged before the disk filled"
            # Room again: move the journal to a normal directory and restart.
            big = dp_workdir / "journal2"
            subprocess.run(["cp", "-a", str(d.journal), str(big)], check=True)
            d.journal = big
            d.start()
            inbound = {m.cl_ord_id for _, _, m in journal_messages(read_journal(big / "q0"), IN)}
            assert acked <= inbound  # every acknowledged order survived
            book = d.ctl({"cmd": "book", "symbol": 1, "depth": 64})["bids"]
            assert sum(level[2] for level in book) == len(inbound)
        finally:
            env.close()
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
