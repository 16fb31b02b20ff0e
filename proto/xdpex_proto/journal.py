"""Reader of xdpexd's journal (include/xdpex/journal.h, docs/dataplane.md "Journal"), for the
persister, the publisher and the gRPC execution stream.

A queue's journal is a directory of segment files `00000001.xjl`, ... each opening with a 32-byte
header ("XDPEXJL1", version, queue, segment, first_seq) and holding records of a 40-byte header
(len, CRC32C of bytes 8..len, seq, type, flags, count, session_id, msg_seq, ts) and a payload.
The constants, enums and layouts below are journal.h's, under the same names less the XJ_
prefix; tests/test_journal_contract.py compares them with what gcc makes of the header and reads
a segment that C code wrote through its structs. `decode_session_event` reads the payload of an
XJ_SESSION record (struct xj_sess_ev).

`JournalReader.poll()` tails the directory from a position (segment, offset, last seq) and returns
complete records only, and only up to the end of the last complete batch (flag 0x01), so a
consumer that commits after each poll always stands on a batch boundary. The segment being written
is sized ahead of its data (zeros after it): a zero length word is the end of its data so far ("no
more data yet"), or, once the next segment exists, the end of the segment. A record at the tail
that is still being written (short, or CRC not matching yet with nothing valid behind it) is
re-read on the next poll; the same damage before the tail, a bad segment header or a gap in `seq`
raise `JournalError` naming the file and offset. A batch whose closing record does not arrive
within `stall_s` is handed out anyway (with a warning), so a writer that forgot the flag cannot
stall the consumer forever.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO

from crc32c import crc32c

log = logging.getLogger("xdpex_proto.journal")

SEG_MAGIC = b"XDPEXJL1"  # XJ_MAGIC
VERSION = 1  # XJ_VERSION
SEG_HDR_SIZE = 32  # XJ_SEG_HDR
REC_HDR_SIZE = 40  # XJ_REC_HDR
ALIGN = 8  # XJ_ALIGN: record lengths are multiples of it
SEG_HDR = struct.Struct("<8sIIQQ")  # struct xj_seg_hdr
SEG_HDR_FIELDS = ("magic", "version", "queue", "segment", "first_seq")
REC_HDR = struct.Struct("<IIQBBHIQQ")  # struct xj_rec
REC_HDR_FIELDS = ("len", "crc", "seq", "type", "flags", "count", "session_id", "msg_seq", "ts")


class RecType(IntEnum):
    """enum xj_type (struct xj_rec.type)."""

    IN = 1  # count x 64-byte client messages as received
    OUT = 2  # count x 64-byte gateway messages as sent
    SESSION = 3  # struct xj_sess_ev (+ a NUL-terminated unix path for entry logins)
    ADMIN = 4  # one control request line of JSON, NUL-padded
    FEED = 5  # count market-data feed messages of one batch (MoldUDP64 message blocks)


REC_INBOUND, REC_OUTBOUND = RecType.IN, RecType.OUT
REC_SESSION, REC_ADMIN, REC_FEED = RecType.SESSION, RecType.ADMIN, RecType.FEED
FLAG_BATCH_END = 0x01  # XJ_F_BATCH_END: last record of its batch


class SessKind(IntEnum):
    """enum xj_sess_kind (struct xj_sess_ev.kind)."""

    LOGIN = 1
    LOGOUT = 2  # by the client
    TIMEOUT = 3  # heartbeat timeout
    ADMIN_LOGOUT = 4  # by the operator
    FAILOVER = 5  # a new primary took over: log in again there (no cancel on disconnect)


class AddrKind(IntEnum):
    """enum xj_addr_kind (struct xj_sess_ev.addr_kind)."""

    NONE = 0
    UDP = 1
    UNIX = 2


SESS_EV = struct.Struct("<BBBBHHIIQQ6s6s20x")  # struct xj_sess_ev
SESS_EV_FIELDS = (
    "kind", "addr_kind", "cod", "has_l2", "port", "lport", "addr", "laddr", "nonce", "login_ts",
    "mac", "lmac",
)  # fmt: skip
NET_ORDER = frozenset({"port", "lport", "addr", "laddr"})  # stored in network byte order
READ_CHUNK = 4 << 20
TAIL_CHUNK = 64 << 10


class JournalError(Exception):
    """The journal is damaged somewhere other than its growing tail."""


@dataclass(slots=True)
class Record:
    seq: int
    type: int
    flags: int
    count: int
    session_id: int
    msg_seq: int
    ts: int
    payload: bytes
    segment: int
    end: int  # offset in `segment` just past this record


@dataclass(slots=True)
class SessionEvent:
    """An XJ_SESSION record's payload, addresses in host order."""

    kind: int
    addr_kind: int
    cod: int
    has_l2: int
    port: int
    lport: int
    addr: int
    laddr: int
    nonce: int
    login_ts: int
    mac: bytes
    lmac: bytes
    path: str = ""  # the entry socket's path (addr_kind UNIX)

    @property
    def peer(self) -> str:
        """Where the session is bound: "a.b.c.d:port", "unix:<path>" or ""."""
        if self.addr_kind == AddrKind.UDP:
            a = self.addr.to_bytes(4, "big")
            return f"{a[0]}.{a[1]}.{a[2]}.{a[3]}:{self.port}"
        if self.addr_kind == AddrKind.UNIX:
            return "unix:" + self.path
        return ""


def decode_session_event(payload: bytes) -> SessionEvent | None:
    """struct xj_sess_ev (and the unix path after it); None when the payload is too short."""
    if len(payload) < SESS_EV.size:
        return None
    v = dict(zip(SESS_EV_FIELDS, SESS_EV.unpack_from(payload), strict=True))
    for k in NET_ORDER:
        n = 2 if k.endswith("port") else 4
        v[k] = int.from_bytes(v[k].to_bytes(n, "little"), "big")
    path = payload[SESS_EV.size :].split(b"\0", 1)[0].decode(errors="replace")
    return SessionEvent(**v, path=path)


def segment_name(n: int) -> str:
    return f"{n:08d}.xjl"


def list_segments(qdir: Path) -> list[int]:
    try:
        names = os.listdir(qdir)
    except FileNotFoundError:
        return []
    return sorted(int(n[:8]) for n in names if n.endswith(".xjl") and n[:8].isdigit())


def queue_dirs(journal_dir: Path) -> dict[int, Path]:
    """{queue: DIR/q<queue>} for every queue directory present."""
    out: dict[int, Path] = {}
    try:
        for n in os.listdir(journal_dir):
            if n.startswith("q") and n[1:].isdigit():
                out[int(n[1:])] = journal_dir / n
    except FileNotFoundError:
        pass
    return dict(sorted(out.items()))


def read_segment_header(path: Path) -> tuple[int, int, int]:
    """(queue, segment, first_seq) of a segment file; JournalError if it is not one."""
    with open(path, "rb") as f:
        raw = f.read(SEG_HDR_SIZE)
    if len(raw) < SEG_HDR_SIZE:
        raise JournalError(f"journal {path}: segment header truncated ({len(raw)} bytes)")
    magic, version, queue, seg, first = SEG_HDR.unpack(raw)
    if magic != SEG_MAGIC or version != VERSION:
        raise JournalError(f"journal {path}: not an xdpex v1 segment (magic {magic!r})")
    return queue, seg, first


def _valid_record_at(buf: bytes, pos: int) -> bool | None:
    """Whether a complete record with a good CRC starts at `pos`; None if that cannot be told
    from `buf` yet (a non-zero length word whose record is not all in `buf`)."""
    if len(buf) - pos < 4:
        return None
    ln = struct.unpack_from("<I", buf, pos)[0]
    if ln == 0 or ln < REC_HDR_SIZE or ln % ALIGN:
        return False
    if len(buf) - pos < ln:
        return None
    return crc32c(memoryview(buf)[pos + 8 : pos + ln]) == struct.unpack_from("<I", buf, pos + 4)[0]


class JournalReader:
    """Tails one queue directory; position = (segment, offset, last seq) after the last record."""

    def __init__(
        self,
        qdir: Path,
        segment: int = 0,
        offset: int = 0,
        last_seq: int = 0,
        stall_s: float = 2.0,
    ):
        self.qdir = Path(qdir)
        self.segment = segment
        self.offset = offset
        self.last_seq = last_seq
        self.stall_s = stall_s
        self._f: BinaryIO | None = None
        self._buf = b""  # bytes read past self.offset, not yet consumed
        self._stalled_since: float | None = None
        self._at_end = False  # _parse stopped at a zero length word or a record still being written

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        self._buf = b""

    def _path(self, seg: int) -> Path:
        return self.qdir / segment_name(seg)

    def _open(self) -> bool:
        segs = list_segments(self.qdir)
        if not segs:
            return False
        if self.segment == 0:
            self.segment, self.offset = segs[0], 0
        if self.segment not in segs:
            raise JournalError(f"journal {self.qdir}: segment {segment_name(self.segment)} is gone")
        path = self._path(self.segment)
        if self.offset == 0:
            _, seg, first = read_segment_header(path)
            if seg != self.segment:
                raise JournalError(f"journal {path}: header names segment {seg}")
            if self.last_seq and first != self.last_seq + 1:
                raise JournalError(
                    f"journal {path}: first_seq {first}, expected {self.last_seq + 1} (gap)"
                )
            self.offset = SEG_HDR_SIZE
        self._f = open(path, "rb")  # noqa: SIM115 - kept open while tailing
        self._f.seek(self.offset)
        self._buf = b""
        return True

    def _next_segment_exists(self) -> bool:
        return any(s > self.segment for s in list_segments(self.qdir))

    def _reread_tail(self) -> None:
        """Forget what was read past the position: bytes at the live tail may still change."""
        self._buf = b""
        if self._f is not None:
            self._f.seek(self.offset)

    def _segment_done(self) -> bool:
        """At the end of the data read so far: is the segment finished (the next one exists and,
        read again now, nothing more follows the position)?"""
        if not self._next_segment_exists():
            return False
        assert self._f is not None
        self._f.seek(self.offset)
        word = self._f.read(4)
        self._f.seek(self.offset)
        return len(word) < 4 or word == b"\0\0\0\0"

    def poll(self, max_records: int = 10000) -> list[Record]:
        """Complete records after the position, ending on a batch boundary; [] if none yet."""
        out: list[Record] = []
        while len(out) < max_records:
            if self._f is None and not self._open():
                break
            got = self._parse(out, max_records)
            if got:
                continue
            # nothing parsable: the end of the data (zero length word or the file's end), a
            # record still being written, or a finished file
            more = b""
            if not self._at_end and self._f is not None:
                # small reads at the tail, where the rest is mostly zeros
                more = self._f.read(READ_CHUNK if self._buf else TAIL_CHUNK)
            if more:
                self._buf += more
                continue
            if self._buf and not self._at_end and self._next_segment_exists():
                raise JournalError(
                    f"journal {self._path(self.segment)}: {len(self._buf)} unreadable bytes "
                    f"at offset {self.offset} before the next segment"
                )
            self._reread_tail()
            if self._segment_done():
                self.close()
                self.segment, self.offset = self.segment + 1, 0
                continue
            break
        return self._cut_to_batch(out)

    def _parse(self, out: list[Record], max_records: int) -> int:
        buf, pos, n = self._buf, 0, 0
        path = None
        self._at_end = False
        while len(out) < max_records and len(buf) - pos >= 4:
            if buf[pos : pos + 4] == b"\0\0\0\0":
                self._at_end = True  # zero length word: no more data yet (or segment finished)
                break
            if len(buf) - pos < REC_HDR_SIZE:
                break
            ln, crc, seq, typ, flags, count, sid, mseq, ts = REC_HDR.unpack_from(buf, pos)
            if ln < REC_HDR_SIZE or ln % ALIGN:
                if self._next_segment_exists():
                    path = self._path(self.segment)
                    raise JournalError(
                        f"journal {path}: bad record length {ln} at offset {self.offset + pos}"
                    )
                self._at_end = True
                break  # torn tail being (re)written: wait
            if len(buf) - pos < ln:
                break
            if crc32c(memoryview(buf)[pos + 8 : pos + ln]) != crc:
                behind = _valid_record_at(buf, pos + ln)
                if behind is None:
                    break  # what follows is not read yet: read more, then decide
                if self._next_segment_exists() or behind:
                    path = self._path(self.segment)
                    raise JournalError(
                        f"journal {path}: record seq {seq} at offset {self.offset + pos}: "
                        "CRC mismatch (not at the tail)"
                    )
                self._at_end = True  # still being written (zeros or the file's end behind it)
                break
            if seq != self.last_seq + 1 and self.last_seq:
                raise JournalError(
                    f"journal {self._path(self.segment)}: record at offset {self.offset + pos} "
                    f"has seq {seq}, expected {self.last_seq + 1}"
                )
            pos += ln
            self.last_seq = seq
            out.append(
                Record(
                    seq,
                    typ,
                    flags,
                    count,
                    sid,
                    mseq,
                    ts,
                    bytes(buf[pos - ln + REC_HDR_SIZE : pos]),
                    self.segment,
                    self.offset + pos,
                )
            )
            n += 1
        self._buf = buf[pos:]
        self.offset += pos
        return n

    def _cut_to_batch(self, out: list[Record]) -> list[Record]:
        """Keep records up to the last batch end; the rest is re-read next time."""
        if not out or out[-1].flags & FLAG_BATCH_END:
            self._stalled_since = None
            return out
        last = max((i for i, r in enumerate(out) if r.flags & FLAG_BATCH_END), default=-1)
        if last < 0:
            now = time.monotonic()
            if self._stalled_since is None:
                self._stalled_since = now
            if now - self._stalled_since >= self.stall_s:
                log.warning(
                    "journal %s: batch without its closing record after %.1f s at "
                    "seq %d; handing it out",
                    self.qdir,
                    self.stall_s,
                    out[-1].seq,
                )
                self._stalled_since = None
                return out
        else:
            self._stalled_since = None
        keep = out[: last + 1]
        self.rewind_to(keep[-1] if keep else None, out[0])
        return keep

    def rewind_to(self, last: Record | None, first_dropped: Record) -> None:
        """Position just after `last` (or just before `first_dropped`)."""
        self.close()
        if last is not None:
            self.segment, self.offset, self.last_seq = last.segment, last.end, last.seq
        else:
            self.segment = first_dropped.segment
            self.offset = first_dropped.end - (len(first_dropped.payload) + REC_HDR_SIZE)
            self.last_seq = first_dropped.seq - 1

    @property
    def position(self) -> tuple[int, int, int]:
        return self.segment, self.offset, self.last_seq
