"""xdpex wire protocol v1 codec: dataclasses for the header and the 16 messages, and encode/decode
of messages and whole datagrams.

The layout mirrors include/xdpex/proto.h byte for byte (little-endian, 24-byte header, 64-byte
messages); names are proto.h's less the XE_ prefix (XE_REJ_OFF_TICK is RejectReason.OFF_TICK),
field names are its struct fields. tests/test_proto_contract.py compares every constant, enum
value and field offset, size and signedness here with what gcc makes of proto.h and parse.h.
decode_datagram() applies the checks of include/xdpex/parse.h in the same order and raises
ProtocolError with the same code and text, so a malformed datagram is described identically by
the C and Python sides (tests/golden/vectors.txt checks both).

    dg = Datagram(session_id=7, seq=1, messages=[NewOrder(side=BUY, ord_type=ORD_LIMIT,
                  tif=TIF_GTC, symbol_id=1, cl_ord_id=42, price=10_000, qty=5)])
    wire = dg.encode()
    back = decode_datagram(wire, Direction.TO_GW)

login_proof() computes the Login HMAC.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

MAGIC = 0x4558
VERSION = 1
DEFAULT_PORT = 9000
MAX_PAYLOAD = 1472
HDR_SIZE = 24
MSG_SIZE = 64
MAX_MSGS = (MAX_PAYLOAD - HDR_SIZE) // MSG_SIZE  # 22
HMAC_SIZE = 32

# Header flags (enum xe_flags).
F_RETRANSMIT = 0x01
F_HEARTBEAT = 0x02
F_FROM_GW = 0x04
F_KNOWN = F_RETRANSMIT | F_HEARTBEAT | F_FROM_GW


class MsgType(IntEnum):
    LOGIN = 0x01
    NEW_ORDER = 0x02
    CANCEL = 0x03
    REPLACE = 0x04
    MASS_CANCEL = 0x05
    HEARTBEAT = 0x06
    RETRANSMIT_REQ = 0x07
    LOGOUT = 0x08
    LOGIN_ACCEPTED = 0x81
    LOGIN_REJECTED = 0x82
    ACCEPTED = 0x83
    REJECTED = 0x84
    FILL = 0x85
    CANCELLED = 0x86
    REPLACED = 0x87
    SEQUENCE_GAP = 0x88


class Side(IntEnum):
    BUY = 1
    SELL = 2


class OrdType(IntEnum):
    LIMIT = 1
    MARKET = 2
    POST_ONLY = 3


class Tif(IntEnum):
    DAY = 1
    GTC = 2
    IOC = 3
    FOK = 4


class Liquidity(IntEnum):
    ADDED = 1
    REMOVED = 2


class RejectReason(IntEnum):
    NONE = 0
    UNKNOWN_SYMBOL = 1
    OFF_TICK = 2
    OFF_LOT = 3
    OUTSIDE_BAND = 4
    BAD_QUANTITY = 5
    BAD_PRICE = 6
    UNKNOWN_ORDER = 7
    DUPLICATE_ID = 8
    POST_ONLY_CROSS = 9
    FOK_UNFILLABLE = 10
    CAPACITY = 11
    HALTED = 12
    BAD_SIDE = 13
    BAD_ORDER_TYPE = 14
    BAD_TIF = 15
    NOT_LOGGED_IN = 16
    UNKNOWN_MESSAGE = 17
    RATE_LIMITED = 18
    NO_CHANGE = 19
    REPLACE_QTY = 20


class LoginReason(IntEnum):
    UNKNOWN_SESSION = 1
    BAD_PROOF = 2
    STALE = 3
    REPLAYED = 4
    BOUND_ELSEWHERE = 5
    DISABLED = 6
    BAD_SEQUENCE = 7


class CancelReason(IntEnum):
    USER = 1
    IOC = 2
    MASS = 3
    SELF_TRADE = 4
    DISCONNECT = 5
    NO_LIQUIDITY = 6
    EXPIRED = 7
    HALT = 8


class LogoutReason(IntEnum):
    USER = 1
    TIMEOUT = 2
    ADMIN = 3
    SWITCHOVER = 4


class ParseError(IntEnum):
    """enum xe_parse_error of parse.h; values are the C return codes."""

    SHORT = -1
    MAGIC = -2
    VERSION = -3
    FLAGS = -4
    COUNT = -5
    LENGTH = -6
    TRUNCATED = -7
    TRAILING = -8
    SESSION = -9
    DIRECTION = -10
    MSG_TYPE = -11
    MSG_DIRECTION = -12
    MSG_KIND = -13
    FLAG_KIND = -14
    SEQ_WRAP = -15

    @property
    def c_name(self) -> str:
        return "XE_PERR_" + self.name


class Direction(IntEnum):
    TO_GW = 0
    FROM_GW = 1
    AUTO = 2


class ProtocolError(ValueError):
    """A malformed datagram or message. `code` is the ParseError, `index` the message index (-1 for
    the header), the text names the field and the offending value (the same text as parse.h)."""

    def __init__(self, code: ParseError, text: str, index: int = -1):
        super().__init__(text)
        self.code = code
        self.text = text
        self.index = index


def _u(bits: int) -> tuple[int, int]:
    return 0, (1 << bits) - 1


# struct format char -> (min, max) for range checks on encode.
_RANGES = {"B": _u(8), "H": _u(16), "I": _u(32), "Q": _u(64), "q": (-(1 << 63), (1 << 63) - 1)}


@dataclass(slots=True)
class Message:
    """Base of the 16 message dataclasses. TYPE is the wire type, LAYOUT the struct format after
    the type byte (pad bytes as 'x'), FIELDS the field names in wire order."""

    TYPE: ClassVar[MsgType]
    LAYOUT: ClassVar[str]
    FIELDS: ClassVar[tuple[str, ...]]
    STRUCT: ClassVar[struct.Struct]
    FORMATS: ClassVar[tuple[str, ...]]

    def encode(self) -> bytes:
        vals = [getattr(self, f) for f in self.FIELDS]
        try:
            return self.STRUCT.pack(int(self.TYPE), *vals)
        except struct.error:
            raise ValueError(self._bad_field()) from None

    def _bad_field(self) -> str:
        """Names the first field that does not fit its wire type (for encode errors)."""
        for name, fmt in zip(self.FIELDS, self.FORMATS, strict=True):
            v = getattr(self, name)
            where = f"{type(self).__name__}.{name}"
            if fmt.endswith("s"):
                size = int(fmt[:-1])
                if not isinstance(v, bytes | bytearray) or len(v) != size:
                    return f"{where}: {v!r}, expected {size} bytes"
                continue
            lo, hi = _RANGES[fmt]
            if not isinstance(v, int) or not lo <= v <= hi:
                return f"{where}: {v!r}, expected an integer in {lo}..{hi}"
        return f"{type(self).__name__}: cannot encode"

    @classmethod
    def decode(cls, buf: bytes | memoryview, offset: int = 0) -> Message:
        vals = cls.STRUCT.unpack_from(buf, offset)
        return cls(*vals[1:])

    def to_dict(self) -> dict[str, int | bytes]:
        return {f: getattr(self, f) for f in self.FIELDS}


MESSAGE_TYPES: dict[int, type[Message]] = {}
SESSION_TYPES = frozenset(
    {
        MsgType.LOGIN,
        MsgType.HEARTBEAT,
        MsgType.RETRANSMIT_REQ,
        MsgType.LOGOUT,
        MsgType.LOGIN_ACCEPTED,
        MsgType.LOGIN_REJECTED,
        MsgType.SEQUENCE_GAP,
    }
)
BOTH_WAYS = frozenset({MsgType.HEARTBEAT, MsgType.LOGOUT})


def _message(type_: MsgType, layout: str):
    """Class decorator: binds a dataclass to its wire type and layout and checks it is 64 bytes."""

    def wrap(cls):
        fields = tuple(f.name for f in dataclasses.fields(cls))
        st = struct.Struct("<B" + layout)
        if st.size != MSG_SIZE:
            raise AssertionError(f"{cls.__name__} layout is {st.size} bytes, not {MSG_SIZE}")
        fmts = tuple(t for t in _split_layout(layout) if not t.endswith("x"))
        if len(fmts) != len(fields):
            raise AssertionError(f"{cls.__name__}: {len(fmts)} formats for {len(fields)} fields")
        cls.TYPE, cls.LAYOUT, cls.FIELDS, cls.STRUCT, cls.FORMATS = type_, layout, fields, st, fmts
        MESSAGE_TYPES[int(type_)] = cls
        return cls

    return wrap


def _split_layout(layout: str) -> list[str]:
    out, num = [], ""
    for ch in layout:
        if ch.isdigit():
            num += ch
        else:
            out.append(num + ch)
            num = ""
    return out


# Client -> gateway ------------------------------------------------------------------------------


@_message(MsgType.LOGIN, "3xIQQ32sQ")
@dataclass(slots=True)
class Login(Message):
    session_id: int = 0
    next_seq: int = 0
    nonce: int = 0
    hmac: bytes = bytes(HMAC_SIZE)
    client_ts: int = 0

    def encode(self) -> bytes:
        # struct's "32s" would pad or cut a wrong-sized proof silently.
        if not isinstance(self.hmac, bytes | bytearray) or len(self.hmac) != HMAC_SIZE:
            raise ValueError(self._bad_field())
        return Message.encode(self)


@_message(MsgType.NEW_ORDER, "BBBIQqI28xQ")
@dataclass(slots=True)
class NewOrder(Message):
    side: int = Side.BUY
    ord_type: int = OrdType.LIMIT
    tif: int = Tif.GTC
    symbol_id: int = 0
    cl_ord_id: int = 0
    price: int = 0
    qty: int = 0
    client_ts: int = 0


@_message(MsgType.CANCEL, "3xIQ40xQ")
@dataclass(slots=True)
class Cancel(Message):
    symbol_id: int = 0
    orig_cl_ord_id: int = 0
    client_ts: int = 0


@_message(MsgType.REPLACE, "3xIQQqI20xQ")
@dataclass(slots=True)
class Replace(Message):
    symbol_id: int = 0
    orig_cl_ord_id: int = 0
    new_cl_ord_id: int = 0
    price: int = 0
    qty: int = 0
    client_ts: int = 0


@_message(MsgType.MASS_CANCEL, "B2xI48xQ")
@dataclass(slots=True)
class MassCancel(Message):
    side: int = 0
    symbol_id: int = 0
    client_ts: int = 0


@_message(MsgType.HEARTBEAT, "7xQ32xQQ")
@dataclass(slots=True)
class Heartbeat(Message):
    next_seq: int = 0
    echo_ts: int = 0
    client_ts: int = 0


@_message(MsgType.RETRANSMIT_REQ, "7xQI36xQ")
@dataclass(slots=True)
class RetransmitReq(Message):
    from_seq: int = 0
    count: int = 0
    client_ts: int = 0


@_message(MsgType.LOGOUT, "B46xQQ")
@dataclass(slots=True)
class Logout(Message):
    reason: int = LogoutReason.USER
    echo_ts: int = 0
    client_ts: int = 0


# Gateway -> client ------------------------------------------------------------------------------


@_message(MsgType.LOGIN_ACCEPTED, "3xIQQI4xQ8xQQ")
@dataclass(slots=True)
class LoginAccepted(Message):
    session_id: int = 0
    next_in_seq: int = 0
    next_out_seq: int = 0
    heartbeat_ms: int = 0
    epoch: int = 0  # the gateway's leadership epoch (docs/ha.md); 0 without high availability
    echo_ts: int = 0
    recv_ts: int = 0


@_message(MsgType.LOGIN_REJECTED, "B2xI40xQQ")
@dataclass(slots=True)
class LoginRejected(Message):
    reason: int = 0
    session_id: int = 0
    echo_ts: int = 0
    recv_ts: int = 0


@_message(MsgType.ACCEPTED, "BBBIQQqI12xQQ")
@dataclass(slots=True)
class Accepted(Message):
    side: int = 0
    ord_type: int = 0
    tif: int = 0
    symbol_id: int = 0
    cl_ord_id: int = 0
    order_id: int = 0
    price: int = 0
    qty: int = 0
    echo_ts: int = 0
    recv_ts: int = 0


@_message(MsgType.REJECTED, "BHIQQ24xQQ")
@dataclass(slots=True)
class Rejected(Message):
    ref_type: int = 0
    reason: int = 0
    symbol_id: int = 0
    cl_ord_id: int = 0
    ref_seq: int = 0
    echo_ts: int = 0
    recv_ts: int = 0


@_message(MsgType.FILL, "BBxIQQqIIQQQ")
@dataclass(slots=True)
class Fill(Message):
    side: int = 0
    liquidity: int = 0
    symbol_id: int = 0
    cl_ord_id: int = 0
    exec_id: int = 0
    price: int = 0
    qty: int = 0
    leaves: int = 0
    order_id: int = 0
    echo_ts: int = 0
    recv_ts: int = 0


@_message(MsgType.CANCELLED, "BBxIQQqI12xQQ")
@dataclass(slots=True)
class Cancelled(Message):
    side: int = 0
    reason: int = 0
    symbol_id: int = 0
    cl_ord_id: int = 0
    order_id: int = 0
    price: int = 0
    qty: int = 0
    echo_ts: int = 0
    recv_ts: int = 0


@_message(MsgType.REPLACED, "B2xIQQqIIQQQ")
@dataclass(slots=True)
class Replaced(Message):
    side: int = 0
    symbol_id: int = 0
    cl_ord_id: int = 0
    order_id: int = 0
    price: int = 0
    qty: int = 0
    leaves: int = 0
    orig_cl_ord_id: int = 0
    echo_ts: int = 0
    recv_ts: int = 0


@_message(MsgType.SEQUENCE_GAP, "7xQQ24xQQ")
@dataclass(slots=True)
class SequenceGap(Message):
    expected: int = 0
    received: int = 0
    echo_ts: int = 0
    recv_ts: int = 0


# Header and datagrams ---------------------------------------------------------------------------

_HDR = struct.Struct("<HBBIQHHI")  # struct xe_hdr, fields in wire order:
HDR_FIELDS = ("magic", "version", "flags", "session_id", "seq", "count", "length", "reserved")


@dataclass(slots=True)
class Header:
    session_id: int
    seq: int = 0
    count: int = 0
    length: int = 0
    flags: int = 0
    magic: int = MAGIC
    version: int = VERSION
    reserved: int = 0

    def encode(self) -> bytes:
        return _HDR.pack(
            self.magic,
            self.version,
            self.flags,
            self.session_id,
            self.seq,
            self.count,
            self.length,
            self.reserved,
        )

    @classmethod
    def decode(cls, buf: bytes | memoryview) -> Header:
        if len(buf) < HDR_SIZE:
            raise _err(ParseError.SHORT, len(buf))
        m, v, fl, sid, seq, cnt, ln, rsv = _HDR.unpack_from(buf, 0)
        return cls(sid, seq, cnt, ln, fl, m, v, rsv)


@dataclass(slots=True)
class Datagram:
    session_id: int
    seq: int = 0
    messages: list[Message] = field(default_factory=list)
    flags: int = 0
    header: Header | None = None  # set by decode_datagram()

    def encode(self) -> bytes:
        return encode_datagram(self.session_id, self.seq, self.messages, self.flags)

    @property
    def from_gw(self) -> bool:
        return bool(self.flags & F_FROM_GW)


def encode_datagram(
    session_id: int, seq: int, messages: Sequence[Message], flags: int = 0
) -> bytes:
    """Header + messages. Refuses what no peer would accept: 0 or more than MAX_MSGS messages."""
    n = len(messages)
    if not 1 <= n <= MAX_MSGS:
        raise _err(ParseError.COUNT, n)
    head = _HDR.pack(MAGIC, VERSION, flags, session_id, seq, n, HDR_SIZE + n * MSG_SIZE, 0)
    return head + b"".join(m.encode() for m in messages)


def decode_message(buf: bytes | memoryview, offset: int = 0) -> Message:
    """One 64-byte message; raises ProtocolError for an unknown type or short buffer."""
    if len(buf) - offset < MSG_SIZE:
        raise _err(ParseError.TRUNCATED, len(buf) - offset, MSG_SIZE, index=0)
    t = buf[offset]
    cls = MESSAGE_TYPES.get(t)
    if cls is None:
        raise _err(ParseError.MSG_TYPE, t, index=0)
    return cls.decode(buf, offset)


def msg_type_name(t: int) -> str:
    try:
        return MsgType(t).name
    except ValueError:
        return f"0x{t:02x}"


def _dirs(d: Direction) -> str:
    return "client -> gateway" if d == Direction.TO_GW else "gateway -> client"


def _err(
    code: ParseError, *a: int, index: int = -1, d: Direction = Direction.TO_GW, detail: str = ""
) -> ProtocolError:
    """The text of parse.h's xe_parse_errstr() for the same values."""
    C = ParseError
    if code == C.SHORT:
        t = f"datagram: {a[0]} bytes, shorter than the {HDR_SIZE}-byte header"
    elif code == C.MAGIC:
        t = f"hdr.magic: 0x{a[0]:04x}, expected 0x{MAGIC:04x}"
    elif code == C.VERSION:
        t = f"hdr.version: {a[0]}, expected {VERSION}"
    elif code == C.FLAGS:
        t = f"hdr.flags: 0x{a[0]:02x} has unknown bits 0x{a[1]:02x}"
    elif code == C.COUNT:
        t = f"hdr.count: {a[0]}, expected 1..{MAX_MSGS}"
    elif code == C.LENGTH:
        t = f"hdr.length: {a[0]}, expected {HDR_SIZE + a[1] * MSG_SIZE} for count {a[1]}"
    elif code == C.TRUNCATED:
        t = f"msg[{index}]: truncated, datagram has {a[0]} of {a[1]} bytes"
    elif code == C.TRAILING:
        t = f"datagram: {a[0]} bytes, hdr.length says {a[1]}"
    elif code == C.SESSION:
        t = "hdr.session_id: 0, expected nonzero"
    elif code == C.DIRECTION:
        what = {"set": "FROM_GW set", "missing": "FROM_GW missing"}.get(detail, "RETRANSMIT set")
        t = f"hdr.flags: 0x{a[0]:02x}, {what} on a {_dirs(d)} datagram"
    elif code == C.MSG_TYPE:
        t = f"msg[{index}].type: 0x{a[0]:02x}, unknown message type"
    elif code == C.MSG_DIRECTION:
        t = f"msg[{index}].type: 0x{a[0]:02x} ({msg_type_name(a[0])}), not sent {_dirs(d)}"
    elif code == C.MSG_KIND and detail == "app":
        t = (
            f"msg[{index}].type: 0x{a[0]:02x} ({msg_type_name(a[0])}), application message in "
            "a session datagram (seq 0)"
        )
    elif code == C.MSG_KIND:
        t = (
            f"msg[{index}].type: 0x{a[0]:02x} ({msg_type_name(a[0])}), session message in an "
            f"application datagram (seq {a[1]})"
        )
    elif code == C.FLAG_KIND and detail == "heartbeat":
        t = f"hdr.flags: 0x{a[1]:02x}, HEARTBEAT set but msg[{index}] is {msg_type_name(a[0])}"
    elif code == C.FLAG_KIND:
        t = f"hdr.flags: 0x{a[0]:02x}, RETRANSMIT set on a session datagram (seq 0)"
    else:
        t = f"hdr.seq: {a[0]}, seq + count - 1 overflows with count {a[1]}"
    return ProtocolError(code, t, index)


def decode_datagram(buf: bytes | memoryview, direction: Direction = Direction.AUTO) -> Datagram:
    """Validates like parse.h's xe_parse_datagram() and decodes header and messages."""
    C = ParseError
    n = len(buf)
    h = Header.decode(buf)
    if h.magic != MAGIC:
        raise _err(C.MAGIC, h.magic)
    if h.version != VERSION:
        raise _err(C.VERSION, h.version)
    if h.flags & ~F_KNOWN:
        raise _err(C.FLAGS, h.flags, h.flags & ~F_KNOWN)
    if not 1 <= h.count <= MAX_MSGS:
        raise _err(C.COUNT, h.count)
    if h.length != HDR_SIZE + h.count * MSG_SIZE:
        raise _err(C.LENGTH, h.length, h.count)
    if n < h.length:
        raise _err(C.TRUNCATED, n, h.length, index=(n - HDR_SIZE) // MSG_SIZE)
    if n > h.length:
        raise _err(C.TRAILING, n, h.length)
    if h.session_id == 0:
        raise _err(C.SESSION)
    d = direction
    if d == Direction.AUTO:
        d = Direction.FROM_GW if h.flags & F_FROM_GW else Direction.TO_GW
    to_gw = d == Direction.TO_GW
    if to_gw and h.flags & F_FROM_GW:
        raise _err(C.DIRECTION, h.flags, d=d, detail="set")
    if not to_gw and not h.flags & F_FROM_GW:
        raise _err(C.DIRECTION, h.flags, d=d, detail="missing")
    if to_gw and h.flags & F_RETRANSMIT:
        raise _err(C.DIRECTION, h.flags, d=d, detail="retransmit")
    if h.seq == 0 and h.flags & F_RETRANSMIT:
        raise _err(C.FLAG_KIND, h.flags)
    if h.seq != 0 and h.seq + h.count - 1 >= 1 << 64:
        raise _err(C.SEQ_WRAP, h.seq, h.count)
    msgs: list[Message] = []
    for i in range(h.count):
        off = HDR_SIZE + i * MSG_SIZE
        t = buf[off]
        cls = MESSAGE_TYPES.get(t)
        if cls is None:
            raise _err(C.MSG_TYPE, t, index=i)
        mt = cls.TYPE
        if mt not in BOTH_WAYS and (mt < 0x80) != to_gw:
            raise _err(C.MSG_DIRECTION, t, index=i, d=d)
        session = mt in SESSION_TYPES
        if h.seq == 0 and not session:
            raise _err(C.MSG_KIND, t, 0, index=i, detail="app")
        if h.seq != 0 and session:
            raise _err(C.MSG_KIND, t, h.seq, index=i, detail="session")
        if h.flags & F_HEARTBEAT and mt != MsgType.HEARTBEAT:
            raise _err(C.FLAG_KIND, t, h.flags, index=i, detail="heartbeat")
        msgs.append(cls.decode(buf, off))
    return Datagram(h.session_id, h.seq, msgs, h.flags, h)


def login_proof(secret: bytes, session_id: int, client_ts: int, nonce: int) -> bytes:
    """HMAC-SHA256(secret, session_id:u32le || client_ts:u64le || nonce:u64le)."""
    return hmac.new(
        secret, struct.pack("<IQQ", session_id, client_ts, nonce), hashlib.sha256
    ).digest()


def verify_login(secret: bytes, login: Login) -> bool:
    """Constant-time check of a Login's proof (what the gateway does)."""
    want = login_proof(secret, login.session_id, login.client_ts, login.nonce)
    return hmac.compare_digest(want, login.hmac)
