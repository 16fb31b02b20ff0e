"""xdpex-feedd's two protocols, spoken directly with the Python codec, over a real journal written
by xdpex-feedsim (the real engine; segments rotated every 64 KiB): the journal itself read back by
control/xdpex/journal.py (the XJ_FEED records contiguous, every payload valid feed messages), then
MoldUDP64 re-requests answered message for message from that journal (ranges, the per-request cap,
past the end, unknown sessions and malformed requests dropped) and snapshots equal to the books
the journal's messages build (every symbol, one symbol, and each refusal status)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from feed_support import FeedD, need_tools, sim
from xdpex_proto import feed as f
from xdpex_proto.journal import REC_FEED, JournalReader
from xdpex_traffic.feedbook import Book
from xdpex_traffic.feedsub import Subscriber, fetch_snapshot

S0 = f.session_name(0)
MAX_REWIND = 300


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_tools()
    d = tmp_path_factory.mktemp("feedj")
    s = sim(d / "j", "--orders", "20000", "--seed", "77", "--segment-bytes", "65536", "--dump",
            str(d / "engine.dump"), "--linger-ms", "0")  # fmt: skip
    assert s.finish(timeout=60) == 0, s.err
    return d


@pytest.fixture(scope="module")
def messages(journal: Path) -> list[f.Message]:
    """Every feed message of the journal, index = sequence - 1."""
    r = JournalReader(journal / "j" / "q0")
    out: list[f.Message] = []
    while recs := r.poll():
        for rec in recs:
            assert rec.type == REC_FEED
            assert rec.msg_seq == len(out) + 1, "XJ_FEED records are contiguous"
            out += f.decode_blocks(rec.payload, rec.count)
    assert r.segment > 5, "the journal spans several segments"
    return out


@pytest.fixture()
def server(journal: Path) -> Iterator[FeedD]:
    d = FeedD(journal / "j", extra=["--max-rewind", str(MAX_REWIND)])
    yield d
    if d.p.poll() is None:
        d.finish(timeout=10, sig=15)


def ask(sock: socket.socket, to: tuple[str, int], seq: int, count: int,
        session: bytes = S0) -> None:  # fmt: skip
    sock.sendto(f.RewindRequest(session, seq, count).encode(), to)


def answers(sock: socket.socket, want: int) -> list[f.Packet]:
    """Packets until `want` messages (or one empty packet) arrived."""
    got: list[f.Packet] = []
    n = 0
    while n < want:
        pkt = f.decode_datagram(sock.recv(2048))
        got.append(pkt)
        if not pkt.messages:
            break
        n += len(pkt.messages)
    return got


def test_rewind_answers_from_the_journal(server: FeedD, messages: list[f.Message]) -> None:
    last = len(messages)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        for seq, count, served in [(1, 100, 100), (5000, 40, 40), (1000, 5000, MAX_REWIND),
                                   (last - 9, 100, 10)]:  # fmt: skip
            ask(s, server.rewind, seq, count)
            pkts = answers(s, served)
            got = [m for p in pkts for m in p.messages]
            assert [p.session for p in pkts] == [S0] * len(pkts)
            assert pkts[0].seq == seq and all(
                b.seq == a.seq + len(a.messages) for a, b in zip(pkts, pkts[1:], strict=False))
            assert got == messages[seq - 1 : seq - 1 + served], f"request {seq}+{count}"
            assert all(len(p.messages) for p in pkts)
            # Whole packets, filled across journal records (at most 50 bytes a message).
            assert len(pkts) <= served // ((f.MAX_PAYLOAD - f.MOLD_HDR_SIZE) // 50) + 1
        # Past the end: a heartbeat with the next sequence.
        ask(s, server.rewind, last + 1, 5)
        (hb,) = answers(s, 1)
        assert hb.heartbeat and hb.seq == last + 1
        # Unknown session, malformed requests: dropped; the next good request is the next answer.
        ask(s, server.rewind, 1, 5, session=b"NOSUCH9   ")
        s.sendto(f.RewindRequest(S0, 1, 5).encode()[:19], server.rewind)
        ask(s, server.rewind, 0, 5)
        ask(s, server.rewind, 7, 0)
        ask(s, server.rewind, 42, 1)
        (p,) = answers(s, 1)
        assert p.seq == 42 and p.messages == [messages[41]]
    st = server.stop()
    assert st["unknown_session"] == 1 and st["bad_requests"] == 3 and st["beyond_end"] == 1
    assert st["served_messages"] == 100 + 40 + MAX_REWIND + 10 + 1
    assert st["journal_errors"] == 0


def test_snapshots_equal_the_books_the_journal_builds(
    server: FeedD, messages: list[f.Message], journal: Path
) -> None:
    book = Book()
    for m in messages:
        book.apply(m)
    assert book.dump() == (journal / "engine.dump").read_text()
    sub = Subscriber(S0)
    sub.load_snapshot(fetch_snapshot(server.snapshot, S0))
    assert sub.next_seq == len(messages) + 1
    assert sub.book.dump() == book.dump()
    # One symbol.
    sid = max(book.symbols, key=lambda k: book.symbols[k].orders)
    one = fetch_snapshot(server.snapshot, S0, sid)
    msgs: list[f.Message] = []
    off, types = 0, []
    while off < len(one):
        ln = int.from_bytes(one[off : off + 2], "big")
        m = f.decode_message(one[off + 2 : off + 2 + ln])
        msgs.append(m)
        types.append(m.TYPE)
        off += 2 + ln
    begin = msgs[0]
    assert isinstance(begin, f.SnapshotBegin) and begin.status == f.SnapStatus.OK
    assert begin.symbol_id == sid and begin.symbols == 1
    assert begin.orders == book.symbols[sid].orders == types.count(f.MsgType.ADD_ORDER)
    assert {m.symbol_id for m in msgs[1:-1]} == {sid}  # type: ignore[attr-defined]
    assert isinstance(msgs[-1], f.SnapshotEnd) and msgs[-1].next_seq == begin.next_seq
    # Refusals.
    for session, symbol, version, status in [(b"NOSUCH9   ", 0, 1, f.SnapStatus.UNKNOWN_SESSION),
                                             (S0, 999, 1, f.SnapStatus.UNKNOWN_SYMBOL),
                                             (S0, 0, 7, f.SnapStatus.BAD_REQUEST)]:  # fmt: skip
        with socket.create_connection(server.snapshot, timeout=10) as c:
            c.sendall(f.SnapshotRequest(session, symbol, version).encode())
            data = b""
            while chunk := c.recv(65536):
                data += chunk
        got = f.decode_blocks(data, 2)
        assert isinstance(got[0], f.SnapshotBegin) and got[0].status == status, session
        assert isinstance(got[1], f.SnapshotEnd)
    assert server.stop()["snapshots"] == 5
