"""xdpex market-data feed v1 codec: the feed messages, MoldUDP64 packets, rewind requests and
snapshot requests of include/xdpex/feed.h, encoded and decoded byte for byte.

Messages are little-endian with one fixed size per type; the MoldUDP64 framing around them (the
20-byte packet header, the 2-byte length of each message block, the request packet) is big-endian
as the MoldUDP64 specification has it. decode_datagram() applies feed.h's xf_parse_datagram()
checks in the same order and raises FeedError with the same code name and text, so a malformed
datagram reads the same from C and Python (tests/golden/feed_vectors.txt holds both to it).

    wire = encode_datagram(session_name(0), 1, [AddOrder(symbol_id=1, side=Side.BUY,
                           order_id=7, price=100, qty=5, ts=now)])
    pkt = decode_datagram(wire)          # pkt.seq == 1, pkt.messages[0].order_id == 7

Journal records of type XJ_FEED hold the same message blocks (decode_blocks()).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

VERSION = 1
DEFAULT_PORT = 9400
REWIND_PORT = 9401
SNAPSHOT_PORT = 9402
DEFAULT_GROUP = "239.77.0.1"
MAX_PAYLOAD = 1472
SESSION_LEN = 10
SESSION_PREFIX = "XDPEXQ"
MOLD_HDR_SIZE = 20
MOLD_REQ_SIZE = 20
BLOCK_HDR = 2
MSG_HDR_SIZE = 16
MAX_MSG_SIZE = 48
MOLD_HEARTBEAT = 0x0000
MOLD_END = 0xFFFF
MOLD_MAX_COUNT = 0xFFFE
SNAP_REQ_SIZE = 16
REC_FEED = 5  # journal record type XJ_FEED (include/xdpex/journal.h)

MOLD_HDR = struct.Struct(">10sQH")
SNAP_REQ = struct.Struct("<10sHI")
_BLOCK = struct.Struct(">H")


class MsgType(IntEnum):
    SYSTEM_EVENT = ord("S")
    SYMBOL_STATE = ord("H")
    ADD_ORDER = ord("A")
    EXECUTED = ord("E")
    REDUCED = ord("X")
    DELETED = ord("D")
    REPLACED = ord("U")
    TRADE = ord("P")
    SNAPSHOT_BEGIN = ord("G")
    SNAPSHOT_END = ord("Z")


class Side(IntEnum):
    BUY = 1
    SELL = 2


class SysEvent(IntEnum):
    START_OF_SESSION = ord("O")
    END_OF_SESSION = ord("C")


class SymbolStateCode(IntEnum):
    TRADING = ord("T")
    HALTED = ord("H")


class SnapStatus(IntEnum):
    OK = 0
    UNKNOWN_SESSION = 1
    UNKNOWN_SYMBOL = 2
    BAD_REQUEST = 3


class ParseError(IntEnum):
    """enum xf_parse_error; the C names are XF_PERR_<name>."""

    OK = 0
    SHORT = -1
    SESSION = -2
    SEQ = -3
    EMPTY_TRAILING = -4
    BLOCK_SHORT = -5
    BLOCK_TRUNCATED = -6
    TRAILING = -7
    MSG_TYPE = -8
    MSG_LENGTH = -9

    @property
    def c_name(self) -> str:
        return f"XF_PERR_{self.name}"


class FeedError(ValueError):
    """A malformed feed datagram: `code` (ParseError) and feed.h's text."""

    def __init__(self, code: ParseError, text: str):
        super().__init__(f"{code.c_name}: {text}")
        self.code = code
        self.text = text


# ---- messages ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Message:
    """Base of the feed messages; `FIELDS` lists (name, struct code) of feed.h's non-pad fields
    after `type`, in struct order, `LAYOUT` the struct format of the whole message."""

    TYPE: ClassVar[MsgType]
    LAYOUT: ClassVar[struct.Struct]
    FIELDS: ClassVar[tuple[str, ...]]

    def encode(self) -> bytes:
        return self.LAYOUT.pack(self.TYPE, *self._values())

    def _values(self) -> tuple[int, ...]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def size(cls) -> int:
        return cls.LAYOUT.size


@dataclass(slots=True)
class SystemEvent(Message):
    event: int = SysEvent.START_OF_SESSION
    symbol_id: int = 0
    ts: int = 0
    TYPE: ClassVar[MsgType] = MsgType.SYSTEM_EVENT
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BB2xIQ")

    def _values(self) -> tuple[int, ...]:
        return (self.event, self.symbol_id, self.ts)


@dataclass(slots=True)
class SymbolState(Message):
    state: int = SymbolStateCode.TRADING
    symbol_id: int = 0
    ts: int = 0
    TYPE: ClassVar[MsgType] = MsgType.SYMBOL_STATE
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BB2xIQ")

    def _values(self) -> tuple[int, ...]:
        return (self.state, self.symbol_id, self.ts)


@dataclass(slots=True)
class AddOrder(Message):
    side: int = Side.BUY
    symbol_id: int = 0
    ts: int = 0
    order_id: int = 0
    price: int = 0
    qty: int = 0
    TYPE: ClassVar[MsgType] = MsgType.ADD_ORDER
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BB2xIQQqI4x")

    def _values(self) -> tuple[int, ...]:
        return (self.side, self.symbol_id, self.ts, self.order_id, self.price, self.qty)


@dataclass(slots=True)
class Executed(Message):
    side: int = Side.BUY
    symbol_id: int = 0
    ts: int = 0
    order_id: int = 0
    match_id: int = 0
    price: int = 0
    qty: int = 0
    leaves: int = 0
    TYPE: ClassVar[MsgType] = MsgType.EXECUTED
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BB2xIQQQqII")

    def _values(self) -> tuple[int, ...]:
        return (self.side, self.symbol_id, self.ts, self.order_id, self.match_id, self.price,
                self.qty, self.leaves)  # fmt: skip


@dataclass(slots=True)
class Reduced(Message):
    side: int = Side.BUY
    symbol_id: int = 0
    ts: int = 0
    order_id: int = 0
    qty: int = 0
    leaves: int = 0
    TYPE: ClassVar[MsgType] = MsgType.REDUCED
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BB2xIQQII")

    def _values(self) -> tuple[int, ...]:
        return (self.side, self.symbol_id, self.ts, self.order_id, self.qty, self.leaves)


@dataclass(slots=True)
class Deleted(Message):
    side: int = Side.BUY
    symbol_id: int = 0
    ts: int = 0
    order_id: int = 0
    qty: int = 0
    TYPE: ClassVar[MsgType] = MsgType.DELETED
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BB2xIQQI4x")

    def _values(self) -> tuple[int, ...]:
        return (self.side, self.symbol_id, self.ts, self.order_id, self.qty)


@dataclass(slots=True)
class Replaced(Message):
    side: int = Side.BUY
    symbol_id: int = 0
    ts: int = 0
    order_id: int = 0
    price: int = 0
    qty: int = 0
    TYPE: ClassVar[MsgType] = MsgType.REPLACED
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BB2xIQQqI4x")

    def _values(self) -> tuple[int, ...]:
        return (self.side, self.symbol_id, self.ts, self.order_id, self.price, self.qty)


@dataclass(slots=True)
class Trade(Message):
    side: int = Side.BUY
    symbol_id: int = 0
    ts: int = 0
    match_id: int = 0
    price: int = 0
    qty: int = 0
    TYPE: ClassVar[MsgType] = MsgType.TRADE
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BB2xIQQqI4x")

    def _values(self) -> tuple[int, ...]:
        return (self.side, self.symbol_id, self.ts, self.match_id, self.price, self.qty)


@dataclass(slots=True)
class SnapshotBegin(Message):
    status: int = SnapStatus.OK
    symbol_id: int = 0
    ts: int = 0
    next_seq: int = 0
    symbols: int = 0
    orders: int = 0
    TYPE: ClassVar[MsgType] = MsgType.SNAPSHOT_BEGIN
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BB2xIQQII")

    def _values(self) -> tuple[int, ...]:
        return (self.status, self.symbol_id, self.ts, self.next_seq, self.symbols, self.orders)


@dataclass(slots=True)
class SnapshotEnd(Message):
    symbol_id: int = 0
    ts: int = 0
    next_seq: int = 0
    TYPE: ClassVar[MsgType] = MsgType.SNAPSHOT_END
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<B3xIQQ")

    def _values(self) -> tuple[int, ...]:
        return (self.symbol_id, self.ts, self.next_seq)


MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (SystemEvent, SymbolState, AddOrder, Executed, Reduced, Deleted, Replaced, Trade,
                SnapshotBegin, SnapshotEnd)
}  # fmt: skip
SNAPSHOT_ONLY = frozenset({MsgType.SNAPSHOT_BEGIN, MsgType.SNAPSHOT_END})
SIZES: dict[int, int] = {t: cls.LAYOUT.size for t, cls in MESSAGE_TYPES.items()}


def msg_type_name(t: int) -> str | None:
    try:
        return MsgType(t).name
    except ValueError:
        return None


def decode_message(data: bytes | memoryview) -> Message:
    """One message (exactly its type's size); ValueError for an unknown type or a bad size."""
    if not data:
        raise ValueError("empty message")
    cls = MESSAGE_TYPES.get(data[0])
    if cls is None:
        raise ValueError(f"unknown feed message type 0x{data[0]:02x}")
    if len(data) != cls.LAYOUT.size:
        raise ValueError(f"{cls.TYPE.name}: {len(data)} bytes, expected {cls.LAYOUT.size}")
    return cls(*cls.LAYOUT.unpack(data)[1:])


# ---- MoldUDP64 --------------------------------------------------------------------------------


def session_name(queue: int, prefix: str = SESSION_PREFIX) -> bytes:
    """The 10-byte MoldUDP64 session of `queue` (feed.h xf_session_name)."""
    name = f"{prefix}{queue}".encode("ascii")
    if len(name) > SESSION_LEN:
        raise ValueError(f"session name {name!r} is longer than {SESSION_LEN} characters")
    return name.ljust(SESSION_LEN, b" ")


def pad_session(s: bytes | str) -> bytes:
    """A session name as its 10 MoldUDP64 bytes (ASCII, space-padded)."""
    b = s.encode("ascii") if isinstance(s, str) else bytes(s)
    if len(b) > SESSION_LEN:
        raise ValueError(f"session {b!r} is longer than {SESSION_LEN} bytes")
    return b.ljust(SESSION_LEN, b" ")


def encode_blocks(msgs: Iterable[Message | bytes]) -> bytes:
    """Message blocks: each message behind its 2-byte big-endian length."""
    out = bytearray()
    for m in msgs:
        raw = m if isinstance(m, bytes | bytearray) else m.encode()
        out += _BLOCK.pack(len(raw)) + raw
    return bytes(out)


def encode_datagram(session: bytes | str, seq: int, msgs: Sequence[Message | bytes]) -> bytes:
    """A downstream packet of `msgs` numbered from `seq`."""
    if not 1 <= len(msgs) <= MOLD_MAX_COUNT:
        raise ValueError(f"{len(msgs)} messages, a packet carries 1..{MOLD_MAX_COUNT}")
    return MOLD_HDR.pack(pad_session(session), seq, len(msgs)) + encode_blocks(msgs)


def heartbeat(session: bytes | str, next_seq: int) -> bytes:
    return MOLD_HDR.pack(pad_session(session), next_seq, MOLD_HEARTBEAT)


def end_of_session(session: bytes | str, next_seq: int) -> bytes:
    return MOLD_HDR.pack(pad_session(session), next_seq, MOLD_END)


@dataclass(slots=True)
class Packet:
    """A MoldUDP64 downstream packet decode_datagram() accepted."""

    session: bytes
    seq: int
    count: int  # the header's count field (MOLD_HEARTBEAT / MOLD_END for the empty kinds)
    messages: list[Message] = field(default_factory=list)

    @property
    def heartbeat(self) -> bool:
        return self.count == MOLD_HEARTBEAT

    @property
    def end(self) -> bool:
        return self.count == MOLD_END

    @property
    def next_seq(self) -> int:
        """The sequence after this packet."""
        return self.seq + len(self.messages)


def _fail(code: ParseError, text: str) -> FeedError:
    return FeedError(code, text)


def decode_datagram(data: bytes | memoryview) -> Packet:
    """Validates and decodes a downstream packet (feed.h xf_parse_datagram: same checks, same
    order, same texts)."""
    b = bytes(data)
    n = len(b)
    if n < MOLD_HDR_SIZE:
        raise _fail(ParseError.SHORT,
                    f"datagram: {n} bytes, shorter than the {MOLD_HDR_SIZE}-byte MoldUDP64 header")
    for i, c in enumerate(b[:SESSION_LEN]):
        if not 0x20 <= c <= 0x7E:
            raise _fail(ParseError.SESSION,
                        f"mold.session[{i}]: byte 0x{c:02x} is not printable ASCII")
    session, seq, count = MOLD_HDR.unpack_from(b)
    if seq == 0:
        raise _fail(ParseError.SEQ, "mold.seq: 0, sequence numbers start at 1")
    pkt = Packet(session, seq, count)
    if count in (MOLD_HEARTBEAT, MOLD_END):
        if n != MOLD_HDR_SIZE:
            kind = "end-of-session" if count == MOLD_END else "heartbeat"
            raise _fail(ParseError.EMPTY_TRAILING,
                        f"datagram: {n} bytes, {kind} packets are the 20-byte header alone")
        return pkt
    if seq + count - 1 > 0xFFFFFFFFFFFFFFFF:
        raise _fail(ParseError.SEQ,
                    f"mold.seq: {seq}, seq + count - 1 overflows with count {count}")
    off = MOLD_HDR_SIZE
    for i in range(count):
        if n - off < BLOCK_HDR:
            left = n - off
            raise _fail(ParseError.BLOCK_SHORT,
                        f"block[{i}]: length field cut off, {left} byte{'' if left == 1 else 's'} "
                        "left")
        mlen = _BLOCK.unpack_from(b, off)[0]
        if n - off - BLOCK_HDR < mlen:
            raise _fail(ParseError.BLOCK_TRUNCATED,
                        f"block[{i}].length: {mlen}, only {n - off - BLOCK_HDR} bytes left")
        if mlen == 0:
            raise _fail(ParseError.MSG_LENGTH,
                        f"block[{i}].length: 0, a message has at least a type")
        t = b[off + BLOCK_HDR]
        cls = MESSAGE_TYPES.get(t)
        if cls is None or t in SNAPSHOT_ONLY:
            if cls is None:
                raise _fail(ParseError.MSG_TYPE, f"msg[{i}].type: 0x{t:02x}, unknown message type")
            raise _fail(ParseError.MSG_TYPE,
                        f"msg[{i}].type: 0x{t:02x} ({cls.TYPE.name}), only sent in snapshots")
        if mlen != cls.LAYOUT.size:
            raise _fail(ParseError.MSG_LENGTH,
                        f"block[{i}].length: {mlen}, {cls.TYPE.name} is {cls.LAYOUT.size} bytes")
        start = off + BLOCK_HDR
        pkt.messages.append(cls(*cls.LAYOUT.unpack_from(b, start)[1:]))
        off = start + mlen
    if off != n:
        raise _fail(ParseError.TRAILING, f"datagram: {n} bytes, the blocks end at {off}")
    return pkt  # fmt: skip


def decode_blocks(payload: bytes | memoryview, count: int) -> list[Message]:
    """The first `count` message blocks of `payload` (an XJ_FEED journal record's payload, which
    is zero-padded after them, or a snapshot stream); ValueError on a block that does not parse."""
    return list(iter_blocks(payload, count))


def iter_blocks(payload: bytes | memoryview, count: int) -> Iterator[Message]:
    mv = memoryview(payload)
    off = 0
    for i in range(count):
        if len(mv) - off < BLOCK_HDR:
            raise ValueError(f"block[{i}]: length field cut off at offset {off}")
        mlen = _BLOCK.unpack_from(mv, off)[0]
        start = off + BLOCK_HDR
        if len(mv) - start < mlen:
            raise ValueError(f"block[{i}].length: {mlen}, only {len(mv) - start} bytes left")
        try:
            msg = decode_message(mv[start : start + mlen])
        except ValueError as e:
            raise ValueError(f"block[{i}]: {e}") from None
        yield msg
        off = start + mlen


# ---- rewind and snapshot requests --------------------------------------------------------------


@dataclass(slots=True)
class RewindRequest:
    """A MoldUDP64 request packet: messages seq .. seq + count - 1 of `session`."""

    session: bytes
    seq: int
    count: int

    def encode(self) -> bytes:
        return MOLD_HDR.pack(pad_session(self.session), self.seq, self.count)

    @classmethod
    def decode(cls, data: bytes) -> RewindRequest:
        if len(data) != MOLD_REQ_SIZE:
            raise ValueError(f"request: {len(data)} bytes, expected {MOLD_REQ_SIZE}")
        return cls(*MOLD_HDR.unpack(data))


@dataclass(slots=True)
class SnapshotRequest:
    session: bytes
    symbol_id: int = 0
    version: int = VERSION

    def encode(self) -> bytes:
        return SNAP_REQ.pack(pad_session(self.session), self.version, self.symbol_id)

    @classmethod
    def decode(cls, data: bytes) -> SnapshotRequest:
        if len(data) != SNAP_REQ_SIZE:
            raise ValueError(f"snapshot request: {len(data)} bytes, expected {SNAP_REQ_SIZE}")
        session, version, symbol = SNAP_REQ.unpack(data)
        return cls(session, symbol, version)
