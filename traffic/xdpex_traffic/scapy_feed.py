"""scapy layers for the market-data feed v1 (include/xdpex/feed.h, docs/marketdata.md).

XFMold is the MoldUDP64 downstream packet header (session, seq, count: big-endian, as the MoldUDP64
specification has it); its `blocks` field is the list of `count` XFBlock layers (a 2-byte
big-endian length and one message), each message dissected as the class of its type byte
(XFAddOrder, XFExecuted, ...; XFUnknown for a type feed.h does not define). Message fields are
feed.h's names, little-endian. XFRewindRequest is the MoldUDP64 request packet, XFSnapRequest the
snapshot request (TCP). `count` and `length` are filled in on build when left unset. The layers
are bound to the feed's UDP port 9400 both ways and to the rewind port 9401 (requests to it,
answers from it); bind_ports() adds others.

    pkt = IP(dst="239.77.0.1") / UDP(sport=40000, dport=9400) / XFMold(seq=1, blocks=[
        XFBlock(msg=XFAddOrder(side=1, symbol_id=3, order_id=42, price=100, qty=5))])
    XFMold(bytes(pkt[XFMold])).blocks[0].msg.order_id == 42

The layers are independent of the codec (xdpex_proto.feed) on purpose: both are checked against
the same golden vectors.
"""

from __future__ import annotations

from typing import Any

from scapy.fields import (
    ByteEnumField,
    LEIntField,
    LELongField,
    LEShortField,
    LESignedLongField,
    LongField,
    PacketLenField,
    PacketListField,
    ShortField,
    StrField,
    StrFixedLenField,
    XByteEnumField,
)
from scapy.layers.inet import UDP
from scapy.packet import Packet, bind_bottom_up, bind_layers

XF_DEFAULT_PORT = 9400
XF_REWIND_PORT = 9401
MOLD_HEARTBEAT = 0x0000
MOLD_END = 0xFFFF

MSG_TYPES = {
    ord("S"): "SYSTEM_EVENT", ord("H"): "SYMBOL_STATE", ord("A"): "ADD_ORDER",
    ord("E"): "EXECUTED", ord("X"): "REDUCED", ord("D"): "DELETED", ord("U"): "REPLACED",
    ord("P"): "TRADE", ord("G"): "SNAPSHOT_BEGIN", ord("Z"): "SNAPSHOT_END",
}  # fmt: skip
SIDES = {1: "BUY", 2: "SELL"}
SYS_EVENTS = {ord("O"): "START_OF_SESSION", ord("C"): "END_OF_SESSION"}
STATES = {ord("T"): "TRADING", ord("H"): "HALTED"}
SNAP_STATUS = {0: "OK", 1: "UNKNOWN_SESSION", 2: "UNKNOWN_SYMBOL", 3: "BAD_REQUEST"}


def _pad(name: str, size: int) -> StrFixedLenField:
    return StrFixedLenField(name, b"\x00" * size, size)


def _type(value: str) -> XByteEnumField:
    return XByteEnumField("type", ord(value), MSG_TYPES)


def _prefix(t: str, aux: ByteEnumField) -> list[Any]:
    """The 16 bytes every message starts with."""
    return [_type(t), aux, _pad("pad", 2), LEIntField("symbol_id", 0), LELongField("ts", 0)]


class XFMessage(Packet):
    """Base of the message layers: picks the class from the type byte."""

    name = "XF message"
    fields_desc = [_type("?")]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt:
            return MESSAGE_CLASSES.get(_pkt[0], XFUnknown)
        return cls

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class XFUnknown(XFMessage):
    name = "XF unknown message"
    fields_desc = [XByteEnumField("type", 0, MSG_TYPES), StrField("body", b"")]


class XFSystemEvent(XFMessage):
    name = "XF SystemEvent"
    fields_desc = _prefix("S", ByteEnumField("event", ord("O"), SYS_EVENTS))


class XFSymbolState(XFMessage):
    name = "XF SymbolState"
    fields_desc = _prefix("H", ByteEnumField("state", ord("T"), STATES))


class XFAddOrder(XFMessage):
    name = "XF AddOrder"
    fields_desc = _prefix("A", ByteEnumField("side", 1, SIDES)) + [
        LELongField("order_id", 0), LESignedLongField("price", 0), LEIntField("qty", 0),
        _pad("pad2", 4),
    ]  # fmt: skip


class XFExecuted(XFMessage):
    name = "XF Executed"
    fields_desc = _prefix("E", ByteEnumField("side", 1, SIDES)) + [
        LELongField("order_id", 0), LELongField("match_id", 0), LESignedLongField("price", 0),
        LEIntField("qty", 0), LEIntField("leaves", 0),
    ]  # fmt: skip


class XFReduced(XFMessage):
    name = "XF Reduced"
    fields_desc = _prefix("X", ByteEnumField("side", 1, SIDES)) + [
        LELongField("order_id", 0), LEIntField("qty", 0), LEIntField("leaves", 0),
    ]  # fmt: skip


class XFDeleted(XFMessage):
    name = "XF Deleted"
    fields_desc = _prefix("D", ByteEnumField("side", 1, SIDES)) + [
        LELongField("order_id", 0), LEIntField("qty", 0), _pad("pad2", 4),
    ]  # fmt: skip


class XFReplaced(XFMessage):
    name = "XF Replaced"
    fields_desc = _prefix("U", ByteEnumField("side", 1, SIDES)) + [
        LELongField("order_id", 0), LESignedLongField("price", 0), LEIntField("qty", 0),
        _pad("pad2", 4),
    ]  # fmt: skip


class XFTrade(XFMessage):
    name = "XF Trade"
    fields_desc = _prefix("P", ByteEnumField("side", 1, SIDES)) + [
        LELongField("match_id", 0), LESignedLongField("price", 0), LEIntField("qty", 0),
        _pad("pad2", 4),
    ]  # fmt: skip


class XFSnapshotBegin(XFMessage):
    name = "XF SnapshotBegin"
    fields_desc = _prefix("G", ByteEnumField("status", 0, SNAP_STATUS)) + [
        LELongField("next_seq", 0), LEIntField("symbols", 0), LEIntField("orders", 0),
    ]  # fmt: skip


class XFSnapshotEnd(XFMessage):
    name = "XF SnapshotEnd"
    fields_desc = [_type("Z"), _pad("pad", 3), LEIntField("symbol_id", 0), LELongField("ts", 0),
                   LELongField("next_seq", 0)]  # fmt: skip


MESSAGE_CLASSES: dict[int, type[XFMessage]] = {
    int(c.fields_desc[0].default): c  # type: ignore[misc, arg-type]
    for c in (XFSystemEvent, XFSymbolState, XFAddOrder, XFExecuted, XFReduced, XFDeleted,
              XFReplaced, XFTrade, XFSnapshotBegin, XFSnapshotEnd)
}  # fmt: skip


class XFBlock(Packet):
    """A MoldUDP64 message block: big-endian length, then one message."""

    name = "XF block"
    fields_desc = [
        ShortField("length", None),
        PacketLenField("msg", None, XFMessage,  # type: ignore[arg-type]
                       length_from=lambda p: int(p.length or 0)),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.length is None:
            pkt = (len(pkt) - 2).to_bytes(2, "big") + pkt[2:]
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def _count_from(pkt: Packet) -> int:
    n = int(pkt.count or 0)
    return 0 if n in (MOLD_HEARTBEAT, MOLD_END) else n


class XFMold(Packet):
    """The MoldUDP64 downstream packet; `blocks` holds `count` XFBlock layers."""

    name = "MoldUDP64 (xdpex feed)"
    fields_desc = [
        StrFixedLenField("session", b"XDPEXQ0   ", 10),
        LongField("seq", 1),
        ShortField("count", None),
        PacketListField("blocks", [], XFBlock, count_from=_count_from),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.count is None:
            pkt = pkt[:18] + len(self.blocks).to_bytes(2, "big") + pkt[20:]
        return pkt + pay

    @property
    def messages(self) -> list[Packet]:
        return [b.msg for b in self.blocks]

    def mysummary(self) -> str:
        kinds = ",".join(MSG_TYPES.get(int(b.msg.type), hex(int(b.msg.type))) for b in self.blocks)
        return self.sprintf("MoldUDP64 %XFMold.session% seq=%XFMold.seq% ") + kinds


class XFRewindRequest(Packet):
    """A MoldUDP64 request packet: messages seq .. seq + count - 1 of the session."""

    name = "MoldUDP64 request (xdpex feed)"
    fields_desc = [
        StrFixedLenField("session", b"XDPEXQ0   ", 10),
        LongField("seq", 1),
        ShortField("count", 1),
    ]


class XFSnapRequest(Packet):
    """The snapshot request (over TCP; little-endian)."""

    name = "xdpex feed snapshot request"
    fields_desc = [
        StrFixedLenField("session", b"XDPEXQ0   ", 10),
        LEShortField("version", 1),
        LEIntField("symbol_id", 0),
    ]


def blocks_of(data: bytes) -> list[XFBlock]:
    """Message blocks with no header before them (a snapshot stream, a journal payload)."""
    out = []
    while len(data) >= 2:
        b = XFBlock(data)
        out.append(b)
        data = data[2 + int(b.length) :]
    return out


def bind_ports(feed: int = XF_DEFAULT_PORT, rewind: int = XF_REWIND_PORT) -> None:
    """Dissect UDP to or from `feed` as XFMold; to `rewind` as requests, from it as answers."""
    bind_bottom_up(UDP, XFRewindRequest, dport=rewind)
    bind_bottom_up(UDP, XFMold, sport=rewind)
    bind_bottom_up(UDP, XFMold, sport=feed)
    bind_bottom_up(UDP, XFMold, dport=feed)


bind_ports()
bind_layers(UDP, XFMold, dport=XF_DEFAULT_PORT)
