"""The reference Python subscriber of the market-data feed (docs/marketdata.md), the twin of
feed/tools/xdpex-feedsub.c with the same options and the same output.

It receives the live feed (`--listen`, joining `--group` when given), rebuilds every book of the
session (xdpex_traffic.feedbook), and recovers every gap through the rewind server (`--rewind`,
MoldUDP64 request packets): a packet past the next expected sequence is kept and the missing range
requested, again after `--retry-ms` without progress; a heartbeat or end-of-session packet that
announces a later sequence is a gap too. With `--snapshot` it joins late: it buffers the live feed
while it loads the session's books from the snapshot server, then goes on from the snapshot's
sequence. At the end of the session (or `--until-seq`) it prints top of book (`--top`), writes the
books (`--dump`) and compares them with the engine's: a dump file of the engine's books
(`--compare-dump`) and/or the levels xdpexd's control socket reports (`--compare-ctl`); the last
line is a JSON object of counters.

    python -m xdpex_traffic.feedsub --listen 0.0.0.0:9400 --group 239.77.0.1 \\
        --rewind 10.77.0.1:9401 --top --compare-ctl /run/xdpex/ctl.sock
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdpex_proto import feed as f

from .feedbook import Book, BookError
from .wire import ctl_request


def _addr(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{s!r} is not A.B.C.D:PORT")
    return host, int(port)


@dataclass
class Counters:
    packets: int = 0
    rewind_packets: int = 0
    messages: int = 0
    live_messages: int = 0
    rewound_messages: int = 0
    dropped_packets: int = 0
    gaps: int = 0
    requests: int = 0
    duplicates: int = 0
    heartbeats: int = 0
    refused: int = 0
    malformed: int = 0
    foreign: int = 0
    snapshot_seq: int = 0
    snapshot_orders: int = 0
    latencies: list[int] = field(default_factory=list)


class Subscriber:
    """The recovery state machine, independent of the sockets (tests drive it directly)."""

    def __init__(self, session: bytes | None = None, drop_pct: float = 0.0, seed: int = 1):
        self.book = Book()
        self.session = session
        self.next_seq = 1
        self.known_end = 0
        self.ended = False
        self.pending: dict[int, tuple[list[f.Message], bool]] = {}  # seq -> (messages, live)
        self._starts: list[int] = []  # sorted keys of pending
        self.req_at = 0.0
        self.req_next = 0
        self.c = Counters()
        self.errors: list[str] = []
        self._drop = drop_pct / 100.0
        self._rng = random.Random(seed)

    @property
    def done(self) -> bool:
        return self.ended and self.next_seq >= self.known_end

    def _apply(self, msgs: list[f.Message], seq: int, live: bool) -> None:
        for i, m in enumerate(msgs[self.next_seq - seq :]):
            try:
                self.book.apply(m)
            except BookError as e:
                self.c.refused += 1
                if len(self.errors) < 10:
                    self.errors.append(f"seq {self.next_seq + i}: {e}")
        n = len(msgs) - (self.next_seq - seq)
        self.c.messages += n
        if live:
            self.c.live_messages += n
        else:
            self.c.rewound_messages += n
        self.next_seq = seq + len(msgs)

    def _drain(self) -> None:
        while self._starts and self._starts[0] <= self.next_seq:
            seq = self._starts.pop(0)
            msgs, live = self.pending.pop(seq)
            if seq + len(msgs) > self.next_seq:
                self._apply(msgs, seq, live)

    def on_datagram(self, data: bytes, live: bool = True) -> None:
        if live and self._drop and self._rng.random() < self._drop:
            self.c.dropped_packets += 1
            return
        try:
            pkt = f.decode_datagram(data)
        except f.FeedError as e:
            self.c.malformed += 1
            if len(self.errors) < 10:
                self.errors.append(f"malformed packet: {e}")
            return
        if self.session is None:
            self.session = pkt.session
        elif pkt.session != self.session:
            self.c.foreign += 1
            return
        if live:
            self.c.packets += 1
        else:
            self.c.rewind_packets += 1
        if pkt.heartbeat or pkt.end:
            self.c.heartbeats += 1
            self.known_end = max(self.known_end, pkt.seq)
            self.ended |= pkt.end
            return
        self.known_end = max(self.known_end, pkt.next_seq)
        if live:
            now = time.time_ns()
            self.c.latencies.extend(now - m.ts for m in pkt.messages)  # type: ignore[attr-defined]
        if pkt.next_seq <= self.next_seq:
            self.c.duplicates += 1
            return
        if pkt.seq <= self.next_seq:
            self._apply(pkt.messages, pkt.seq, live)
            self._drain()
            return
        have = self.pending.get(pkt.seq)
        if have is None or len(have[0]) < len(pkt.messages):
            if have is None:
                bisect.insort(self._starts, pkt.seq)
            self.pending[pkt.seq] = (pkt.messages, live)

    def request(self, retry_s: float) -> f.RewindRequest | None:
        """The rewind request to send now, if a gap is known and none is in flight for it."""
        upto = self._starts[0] if self._starts else self.known_end
        if upto <= self.next_seq or self.session is None:
            return None
        now = time.monotonic()
        if self.req_at and self.req_next == self.next_seq and now - self.req_at < retry_s:
            return None
        if self.req_next != self.next_seq or not self.req_at:
            self.c.gaps += 1
        self.req_at, self.req_next = now, self.next_seq
        self.c.requests += 1
        return f.RewindRequest(self.session, self.next_seq, min(upto - self.next_seq,
                                                                f.MOLD_MAX_COUNT))  # fmt: skip

    def load_snapshot(self, stream: bytes) -> None:
        """Applies a snapshot server's answer; ValueError if it is refused or malformed."""
        off = 0
        while off + f.BLOCK_HDR <= len(stream):
            (ln,) = struct.unpack_from(">H", stream, off)
            m = f.decode_message(stream[off + f.BLOCK_HDR : off + f.BLOCK_HDR + ln])
            off += f.BLOCK_HDR + ln
            if isinstance(m, f.SnapshotBegin):
                if m.status != f.SnapStatus.OK:
                    raise ValueError(f"snapshot refused: {f.SnapStatus(m.status).name}")
                self.c.snapshot_orders = m.orders
            self.book.apply(m)
            if isinstance(m, f.SnapshotEnd):
                self.next_seq = self.c.snapshot_seq = m.next_seq
                return
        raise ValueError("snapshot ended without SNAPSHOT_END")

    def stats(self) -> dict[str, Any]:
        d = {k: v for k, v in vars(self.c).items() if k != "latencies"}
        lat = sorted(self.c.latencies)

        def pct(p: float) -> int:
            return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0

        d["next_seq"] = self.next_seq
        d["latency_ns"] = {"p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999),
                           "count": len(lat)}  # fmt: skip
        return d


def fetch_snapshot(addr: tuple[str, int], session: bytes, symbol_id: int = 0,
                   timeout: float = 10.0) -> bytes:  # fmt: skip
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(f.SnapshotRequest(session, symbol_id).encode())
        chunks = []
        while chunk := s.recv(1 << 20):
            chunks.append(chunk)
    return b"".join(chunks)


def compare_ctl(book: Book, ctl: Path, symbols: list[int], depth: int = 64) -> list[str]:
    """Differences between the book and xdpexd's own (the control socket's `book` command: the
    best `depth` levels of each side and the halt), one line each; [] when they agree."""
    diffs = []
    for sid in symbols:
        ans = ctl_request(ctl, {"cmd": "book", "symbol": sid, "depth": depth})
        if not ans.get("ok"):  # {"ok": false, "error": "symbol N: unknown"}
            if sid in book.symbols and book.symbols[sid].orders:
                diffs.append(f"symbol {sid}: xdpexd does not know it, the feed has orders")
            continue
        mine = book.symbols.get(sid)
        halted = bool(mine and mine.state == f.SymbolStateCode.HALTED)
        if bool(ans.get("halted")) != halted:
            diffs.append(f"symbol {sid}: halted {ans.get('halted')} in xdpexd, {halted} here")
        for side, key in ((f.Side.BUY, "bids"), (f.Side.SELL, "asks")):
            theirs = [tuple(x) for x in ans.get(key, [])]
            ours = book.levels(sid, side, depth)
            if theirs != ours:
                diffs.append(f"symbol {sid} {key}: xdpexd {theirs[:3]}..., feed {ours[:3]}...")
    return diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="xdpex_traffic.feedsub", description=__doc__.split("\n")[0])
    ap.add_argument("--listen", type=_addr, required=True)
    ap.add_argument("--group", help="multicast group to join")
    ap.add_argument("--mcast-if", default="0.0.0.0", help="interface address to join it on")
    ap.add_argument("--rewind", type=_addr)
    ap.add_argument("--snapshot", type=_addr, help="join late from this snapshot server")
    ap.add_argument("--session", help="the MoldUDP64 session (default: the first one seen)")
    ap.add_argument("--drop-pct", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--retry-ms", type=float, default=30.0)
    ap.add_argument("--until-seq", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--dump", type=Path)
    ap.add_argument("--top", action="store_true")
    ap.add_argument("--compare-dump", type=Path, help="the engine's books (xf_book_dump format)")
    ap.add_argument("--compare-ctl", type=Path, help="xdpexd's control socket")
    ap.add_argument("--symbols", type=int, default=16, help="symbol ids 1..N for --compare-ctl")
    a = ap.parse_args(argv)
    if a.snapshot and not a.session:
        ap.error("--snapshot needs --session")
    session = f.pad_session(a.session) if a.session else None
    sub = Subscriber(session, a.drop_pct, a.seed)
    live = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    live.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    live.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    live.bind(a.listen)
    if a.group:
        mreq = socket.inet_aton(a.group) + socket.inet_aton(a.mcast_if)
        live.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    live.setblocking(False)
    rw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rw.setblocking(False)
    print(f"xdpex_traffic.feedsub: listening on {a.listen[0]}:{a.listen[1]}", flush=True)
    rc = 0
    if a.snapshot:
        assert session is not None
        try:
            sub.load_snapshot(fetch_snapshot(a.snapshot, session))
        except (OSError, ValueError, BookError) as e:
            print(f"xdpex_traffic.feedsub: snapshot {a.snapshot[0]}:{a.snapshot[1]}: {e}",
                  file=sys.stderr)  # fmt: skip
            return 1
    deadline = time.monotonic() + a.max_seconds
    while not sub.done and not (a.until_seq and sub.next_seq > a.until_seq):
        if time.monotonic() > deadline:
            print(f"xdpex_traffic.feedsub: gave up after {a.max_seconds:.0f} s at seq "
                  f"{sub.next_seq} (server at {sub.known_end})", file=sys.stderr)  # fmt: skip
            rc = 1
            break
        ready, _, _ = select.select([live, rw], [], [], 0.005)
        for sock in ready:
            for _ in range(512):
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                sub.on_datagram(data, live=sock is live)
        req = sub.request(a.retry_ms / 1000.0)
        if req is not None and a.rewind:
            rw.sendto(req.encode(), a.rewind)
    for err in sub.errors:
        print(f"xdpex_traffic.feedsub: {err}", file=sys.stderr)
    if a.top:
        print("\n".join(sub.book.top()))
    text = sub.book.dump()
    if a.dump:
        a.dump.write_text(text)
    if a.compare_dump:
        want = a.compare_dump.read_text()
        if want != text:
            ours, theirs = text.splitlines(), want.splitlines()
            first = next((i for i, (x, y) in enumerate(zip(ours, theirs, strict=False)) if x != y),
                         min(len(ours), len(theirs)))  # fmt: skip
            print(f"xdpex_traffic.feedsub: books differ from {a.compare_dump} at line {first + 1}",
                  file=sys.stderr)  # fmt: skip
            rc = 1
    if a.compare_ctl:
        for d in compare_ctl(sub.book, a.compare_ctl, list(range(1, a.symbols + 1))):
            print(f"xdpex_traffic.feedsub: {d}", file=sys.stderr)
            rc = 1
    print(json.dumps(sub.stats()))
    return 1 if rc or sub.c.refused else 0


if __name__ == "__main__":
    sys.exit(main())
