"""scapy layers for the xdpex wire protocol v1 (include/xdpex/proto.h, docs/protocol.md).

XE is the 24-byte datagram header; its `messages` field is a list of `count` 64-byte messages, each
dissected as the class of its type byte (XELogin, XENewOrder, ... XESequenceGap; XEUnknown for a
type proto.h does not define). Field names are proto.h's. `count` and `length` are filled in on
build when left unset. The layer is bound to UDP port 9000 (XE_DEFAULT_PORT) as source and as
destination, so captures of either direction dissect; bind_port() adds another port.

    pkt = IP(dst="10.0.0.1") / UDP(sport=40000, dport=9000) / XE(session_id=7, seq=1, messages=[
        XENewOrder(side=1, ord_type=1, tif=2, symbol_id=3, cl_ord_id=42, price=100, qty=5)])
    XE(bytes(pkt[XE])).messages[0].cl_ord_id == 42

The layers are independent of codec.py on purpose: both are checked against the same golden vectors.
"""

from __future__ import annotations

from typing import Any

from scapy.fields import (
    ByteEnumField,
    ByteField,
    FlagsField,
    LEIntField,
    LELongField,
    LEShortEnumField,
    LEShortField,
    LESignedLongField,
    PacketListField,
    StrFixedLenField,
    XByteEnumField,
    XLEShortField,
    XStrFixedLenField,
)
from scapy.layers.inet import UDP
from scapy.packet import Packet, bind_bottom_up, bind_layers

XE_DEFAULT_PORT = 9000
XE_HDR_SIZE = 24
XE_MSG_SIZE = 64

MSG_TYPES = {
    0x01: "LOGIN",
    0x02: "NEW_ORDER",
    0x03: "CANCEL",
    0x04: "REPLACE",
    0x05: "MASS_CANCEL",
    0x06: "HEARTBEAT",
    0x07: "RETRANSMIT_REQ",
    0x08: "LOGOUT",
    0x81: "LOGIN_ACCEPTED",
    0x82: "LOGIN_REJECTED",
    0x83: "ACCEPTED",
    0x84: "REJECTED",
    0x85: "FILL",
    0x86: "CANCELLED",
    0x87: "REPLACED",
    0x88: "SEQUENCE_GAP",
}
SIDES = {0: "BOTH", 1: "BUY", 2: "SELL"}
ORD_TYPES = {1: "LIMIT", 2: "MARKET", 3: "POST_ONLY"}
TIFS = {1: "DAY", 2: "GTC", 3: "IOC", 4: "FOK"}
LIQUIDITY = {1: "ADDED", 2: "REMOVED"}
REJECT_REASONS = {
    0: "NONE", 1: "UNKNOWN_SYMBOL", 2: "OFF_TICK", 3: "OFF_LOT", 4: "OUTSIDE_BAND",
    5: "BAD_QUANTITY", 6: "BAD_PRICE", 7: "UNKNOWN_ORDER", 8: "DUPLICATE_ID",
    9: "POST_ONLY_CROSS", 10: "FOK_UNFILLABLE", 11: "CAPACITY", 12: "HALTED", 13: "BAD_SIDE",
    14: "BAD_ORDER_TYPE", 15: "BAD_TIF", 16: "NOT_LOGGED_IN", 17: "UNKNOWN_MESSAGE",
    18: "RATE_LIMITED", 19: "NO_CHANGE", 20: "REPLACE_QTY",
}  # fmt: skip
LOGIN_REASONS = {
    1: "UNKNOWN_SESSION", 2: "BAD_PROOF", 3: "STALE", 4: "REPLAYED", 5: "BOUND_ELSEWHERE",
    6: "DISABLED", 7: "BAD_SEQUENCE",
}  # fmt: skip
CANCEL_REASONS = {
    1: "USER", 2: "IOC", 3: "MASS", 4: "SELF_TRADE", 5: "DISCONNECT", 6: "NO_LIQUIDITY",
    7: "EXPIRED", 8: "HALT",
}  # fmt: skip
LOGOUT_REASONS = {1: "USER", 2: "TIMEOUT", 3: "ADMIN"}


def _pad(name: str, size: int) -> StrFixedLenField:
    return StrFixedLenField(name, b"\x00" * size, size)


def _type(value: int) -> XByteEnumField:
    return XByteEnumField("type", value, MSG_TYPES)


class XEMessage(Packet):
    """Base of the message layers: picks the class from the type byte, and stops each message at
    64 bytes so the list in XE continues with the next one."""

    name = "XE message"
    fields_desc = [_type(0), _pad("body", XE_MSG_SIZE - 1)]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt:
            return MESSAGE_CLASSES.get(_pkt[0], XEUnknown)
        return cls

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class XEUnknown(XEMessage):
    name = "XE unknown message"
    fields_desc = [_type(0), StrFixedLenField("body", b"\x00" * 63, 63)]


class XELogin(XEMessage):
    name = "XE Login"
    fields_desc = [
        _type(0x01), _pad("pad", 3), LEIntField("session_id", 0), LELongField("next_seq", 0),
        LELongField("nonce", 0), XStrFixedLenField("hmac", b"\x00" * 32, 32),
        LELongField("client_ts", 0),
    ]  # fmt: skip


class XENewOrder(XEMessage):
    name = "XE NewOrder"
    fields_desc = [
        _type(0x02), ByteEnumField("side", 1, SIDES), ByteEnumField("ord_type", 1, ORD_TYPES),
        ByteEnumField("tif", 2, TIFS), LEIntField("symbol_id", 0), LELongField("cl_ord_id", 0),
        LESignedLongField("price", 0), LEIntField("qty", 0), _pad("pad", 28),
        LELongField("client_ts", 0),
    ]  # fmt: skip


class XECancel(XEMessage):
    name = "XE Cancel"
    fields_desc = [
        _type(0x03), _pad("pad", 3), LEIntField("symbol_id", 0), LELongField("orig_cl_ord_id", 0),
        _pad("pad2", 40), LELongField("client_ts", 0),
    ]  # fmt: skip


class XEReplace(XEMessage):
    name = "XE Replace"
    fields_desc = [
        _type(0x04), _pad("pad", 3), LEIntField("symbol_id", 0), LELongField("orig_cl_ord_id", 0),
        LELongField("new_cl_ord_id", 0), LESignedLongField("price", 0), LEIntField("qty", 0),
        _pad("pad2", 20), LELongField("client_ts", 0),
    ]  # fmt: skip


class XEMassCancel(XEMessage):
    name = "XE MassCancel"
    fields_desc = [
        _type(0x05), ByteEnumField("side", 0, SIDES), _pad("pad", 2), LEIntField("symbol_id", 0),
        _pad("pad2", 48), LELongField("client_ts", 0),
    ]  # fmt: skip


class XEHeartbeat(XEMessage):
    name = "XE Heartbeat"
    fields_desc = [
        _type(0x06), _pad("pad", 7), LELongField("next_seq", 0), _pad("pad2", 32),
        LELongField("echo_ts", 0), LELongField("client_ts", 0),
    ]  # fmt: skip


class XERetransmitReq(XEMessage):
    name = "XE RetransmitRequest"
    fields_desc = [
        _type(0x07), _pad("pad", 7), LELongField("from_seq", 0), LEIntField("count", 0),
        _pad("pad2", 36), LELongField("client_ts", 0),
    ]  # fmt: skip


class XELogout(XEMessage):
    name = "XE Logout"
    fields_desc = [
        _type(0x08), ByteEnumField("reason", 1, LOGOUT_REASONS), _pad("pad", 46),
        LELongField("echo_ts", 0), LELongField("client_ts", 0),
    ]  # fmt: skip


class XELoginAccepted(XEMessage):
    name = "XE LoginAccepted"
    fields_desc = [
        _type(0x81), _pad("pad", 3), LEIntField("session_id", 0), LELongField("next_in_seq", 0),
        LELongField("next_out_seq", 0), LEIntField("heartbeat_ms", 0), _pad("pad2", 4),
        LELongField("epoch", 0), _pad("pad3", 8), LELongField("echo_ts", 0),
        LELongField("recv_ts", 0),
    ]  # fmt: skip


class XELoginRejected(XEMessage):
    name = "XE LoginRejected"
    fields_desc = [
        _type(0x82), ByteEnumField("reason", 0, LOGIN_REASONS), _pad("pad", 2),
        LEIntField("session_id", 0), _pad("pad2", 40), LELongField("echo_ts", 0),
        LELongField("recv_ts", 0),
    ]  # fmt: skip


class XEAccepted(XEMessage):
    name = "XE Accepted"
    fields_desc = [
        _type(0x83), ByteEnumField("side", 0, SIDES), ByteEnumField("ord_type", 0, ORD_TYPES),
        ByteEnumField("tif", 0, TIFS), LEIntField("symbol_id", 0), LELongField("cl_ord_id", 0),
        LELongField("order_id", 0), LESignedLongField("price", 0), LEIntField("qty", 0),
        _pad("pad", 12), LELongField("echo_ts", 0), LELongField("recv_ts", 0),
    ]  # fmt: skip


class XERejected(XEMessage):
    name = "XE Rejected"
    fields_desc = [
        _type(0x84), XByteEnumField("ref_type", 0, MSG_TYPES),
        LEShortEnumField("reason", 0, REJECT_REASONS), LEIntField("symbol_id", 0),
        LELongField("cl_ord_id", 0), LELongField("ref_seq", 0), _pad("pad", 24),
        LELongField("echo_ts", 0), LELongField("recv_ts", 0),
    ]  # fmt: skip


class XEFill(XEMessage):
    name = "XE Fill"
    fields_desc = [
        _type(0x85), ByteEnumField("side", 0, SIDES), ByteEnumField("liquidity", 0, LIQUIDITY),
        _pad("pad", 1), LEIntField("symbol_id", 0), LELongField("cl_ord_id", 0),
        LELongField("exec_id", 0), LESignedLongField("price", 0), LEIntField("qty", 0),
        LEIntField("leaves", 0), LELongField("order_id", 0), LELongField("echo_ts", 0),
        LELongField("recv_ts", 0),
    ]  # fmt: skip


class XECancelled(XEMessage):
    name = "XE Cancelled"
    fields_desc = [
        _type(0x86), ByteEnumField("side", 0, SIDES), ByteEnumField("reason", 0, CANCEL_REASONS),
        _pad("pad", 1), LEIntField("symbol_id", 0), LELongField("cl_ord_id", 0),
        LELongField("order_id", 0), LESignedLongField("price", 0), LEIntField("qty", 0),
        _pad("pad2", 12), LELongField("echo_ts", 0), LELongField("recv_ts", 0),
    ]  # fmt: skip


class XEReplaced(XEMessage):
    name = "XE Replaced"
    fields_desc = [
        _type(0x87), ByteEnumField("side", 0, SIDES), _pad("pad", 2), LEIntField("symbol_id", 0),
        LELongField("cl_ord_id", 0), LELongField("order_id", 0), LESignedLongField("price", 0),
        LEIntField("qty", 0), LEIntField("leaves", 0), LELongField("orig_cl_ord_id", 0),
        LELongField("echo_ts", 0), LELongField("recv_ts", 0),
    ]  # fmt: skip


class XESequenceGap(XEMessage):
    name = "XE SequenceGap"
    fields_desc = [
        _type(0x88), _pad("pad", 7), LELongField("expected", 0), LELongField("received", 0),
        _pad("pad2", 24), LELongField("echo_ts", 0), LELongField("recv_ts", 0),
    ]  # fmt: skip


MESSAGE_CLASSES: dict[int, type[XEMessage]] = {
    0x01: XELogin, 0x02: XENewOrder, 0x03: XECancel, 0x04: XEReplace, 0x05: XEMassCancel,
    0x06: XEHeartbeat, 0x07: XERetransmitReq, 0x08: XELogout, 0x81: XELoginAccepted,
    0x82: XELoginRejected, 0x83: XEAccepted, 0x84: XERejected, 0x85: XEFill, 0x86: XECancelled,
    0x87: XEReplaced, 0x88: XESequenceGap,
}  # fmt: skip


def _count_from(pkt: Packet) -> int:
    return int(pkt.count or 0)


class XE(Packet):
    """The datagram header; `messages` holds `count` XEMessage layers."""

    name = "XE"
    fields_desc = [
        XLEShortField("magic", 0x4558),
        ByteField("version", 1),
        FlagsField("flags", 0, 8, ["RETRANSMIT", "HEARTBEAT", "FROM_GW"]),
        LEIntField("session_id", 0),
        LELongField("seq", 0),
        LEShortField("count", None),
        LEShortField("length", None),
        LEIntField("reserved", 0),
        PacketListField("messages", [], XEMessage, count_from=_count_from),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.count is None:
            n = len(self.messages)
            pkt = pkt[:16] + n.to_bytes(2, "little") + pkt[18:]
        if self.length is None:
            pkt = pkt[:18] + len(pkt).to_bytes(2, "little") + pkt[20:]
        return pkt + pay

    def mysummary(self) -> str:
        kinds = ",".join(MSG_TYPES.get(int(m.type), hex(int(m.type))) for m in self.messages)
        return self.sprintf("XE session=%XE.session_id% seq=%XE.seq% flags=%XE.flags% ") + kinds


def bind_port(port: int) -> None:
    """Dissect UDP datagrams to or from `port` as XE (the gateway's port when not 9000)."""
    bind_bottom_up(UDP, XE, sport=port)
    bind_bottom_up(UDP, XE, dport=port)


bind_port(XE_DEFAULT_PORT)
# Building UDP()/XE() without ports addresses the gateway's default port.
bind_layers(UDP, XE, dport=XE_DEFAULT_PORT)
