"""Generates tests/golden/vectors.txt, the golden vectors of the xdpex wire protocol v1.

Run once, by hand, when the protocol gains something to cover:
    .venv/bin/python tests/golden/gen_vectors.py > tests/golden/vectors.txt
The tests never run this: they compare the C parser, the codec and the scapy layers against the
tracked file, so a change in any of them (or in this script) shows up as a diff to review.

Field values are chosen so that every byte of a field differs (0x0102030405060708 and the like),
which makes a wrong offset, size or byte order visible instead of reading back a lucky zero.
"""

from __future__ import annotations

import sys

from xdpex_proto import codec as c
from xdpex_proto.golden import Vector, format_vector, header_fields, message_fields

SID = 0x0A0B0C0D
SECRET = bytes(range(0x20, 0x40))
TS = 0x17_9B_5E_2A_11_22_33_44  # a 2024-ish timestamp with distinct bytes
GTS = TS + 0x0102  # gateway clock a little later

HEADER = """\
# xdpex wire protocol v1 golden vectors.
# GENERATED ONCE by tests/golden/gen_vectors.py (see there); tests compare against this tracked
# file and never regenerate it. Checked byte for byte by tests/c/test_golden.c (parse.h + proto.h
# structs), tests/test_proto_codec.py (codec.py) and tests/test_proto_scapy.py (scapy_layers.py).
#
# Format (reader: proto/xdpex_proto/golden.py): entries separated by blank lines, '#' comments.
#   name: unique name            dir: TO_GW | FROM_GW | AUTO (parse direction, enum xe_dir)
#   hex: the datagram            secret: (Login only) the HMAC key the proof was made with
#   hdr: every header field as key=value
#   msg: type=NAME and every non-pad field of the message's proto.h struct, one line a message
#   error: XE_PERR_* and text: the exact error text, for malformed datagrams
# Values: decimal or 0x-hex integers, message type names for type/ref_type, hex for hmac.
"""


def new_order(i: int = 0) -> c.NewOrder:
    return c.NewOrder(
        side=c.Side.BUY if i % 2 == 0 else c.Side.SELL,
        ord_type=c.OrdType.LIMIT,
        tif=c.Tif.GTC if i % 3 else c.Tif.DAY,
        symbol_id=0x01020304 + i,
        cl_ord_id=0x1112131415161718 + i,
        price=-12345 if i == 1 else 0x2122232425262728 + i,
        qty=0x31323334 + i,
        client_ts=TS + i,
    )


def valid() -> list[tuple[str, str, int, int, list[c.Message], int]]:
    """(name, dir, seq, session, messages, flags) of well-formed datagrams."""
    nonce = 0x4142434445464748
    login = c.Login(SID, 0x0102030405060708, nonce, c.login_proof(SECRET, SID, TS, nonce), TS)
    fg = c.F_FROM_GW
    return [
        ("login", "TO_GW", 0, SID, [login], 0),
        ("new_order_limit_buy", "TO_GW", 1, SID, [new_order(0)], 0),
        ("new_order_negative_price_sell", "TO_GW", 2, SID, [new_order(1)], 0),
        ("new_order_market_ioc", "TO_GW", 3, SID, [c.NewOrder(
            c.Side.SELL, c.OrdType.MARKET, c.Tif.IOC, 7, 0xFFFFFFFFFFFFFFFF, 0, 0xFFFFFFFF, TS
        )], 0),
        ("cancel", "TO_GW", 0x0102030405060708, SID, [c.Cancel(0x01020304, 0x1112131415161718,
                                                                TS)], 0),
        ("replace", "TO_GW", 9, SID, [c.Replace(0x01020304, 0x1112131415161718,
                                                0x5152535455565758, -0x0102030405060708,
                                                0x61626364, TS)], 0),
        ("mass_cancel_all", "TO_GW", 10, SID, [c.MassCancel(0, 0, TS)], 0),
        ("mass_cancel_sell_symbol", "TO_GW", 11, SID, [c.MassCancel(c.Side.SELL, 0x01020304,
                                                                    TS)], 0),
        ("heartbeat_to_gw", "TO_GW", 0, SID, [c.Heartbeat(0x0102030405060708, 0, TS)],
         c.F_HEARTBEAT),
        ("retransmit_req", "TO_GW", 0, SID, [c.RetransmitReq(0x0102030405060708, 0x11121314,
                                                             TS)], 0),
        ("logout_to_gw", "TO_GW", 0, SID, [c.Logout(c.LogoutReason.USER, 0, TS)], 0),
        ("login_and_retransmit_req", "TO_GW", 0, SID, [login, c.RetransmitReq(5, 100, TS)], 0),
        ("three_orders", "TO_GW", 100, SID, [new_order(i) for i in range(3)], 0),
        ("mixed_orders", "TO_GW", 200, SID, [new_order(0), c.Cancel(3, 4, TS), c.Replace(
            3, 5, 6, 700, 800, TS), c.MassCancel(c.Side.BUY, 3, TS)], 0),
        ("max_count_orders", "TO_GW", 1000, SID, [new_order(i) for i in range(c.MAX_MSGS)], 0),
        ("login_accepted", "FROM_GW", 0, SID, [c.LoginAccepted(
            SID, 0x0102030405060708, 0x1112131415161718, 0x21222324, 0x3132333435363738, TS,
            GTS)], fg),
        ("login_rejected", "FROM_GW", 0, SID, [c.LoginRejected(c.LoginReason.STALE, SID, TS,
                                                               GTS)], fg),
        ("accepted", "FROM_GW", 1, SID, [c.Accepted(
            c.Side.SELL, c.OrdType.POST_ONLY, c.Tif.DAY, 0x01020304, 0x1112131415161718,
            0x2122232425262728, -0x3132333435363738, 0x41424344, TS, GTS)], fg),
        ("rejected", "FROM_GW", 2, SID, [c.Rejected(
            c.MsgType.REPLACE, c.RejectReason.REPLACE_QTY, 0x01020304, 0x1112131415161718,
            0x2122232425262728, TS, GTS)], fg),
        ("fill", "FROM_GW", 3, SID, [c.Fill(
            c.Side.BUY, c.Liquidity.REMOVED, 0x01020304, 0x1112131415161718, 0x2122232425262728,
            0x3132333435363738, 0x41424344, 0x51525354, 0x6162636465666768, TS, GTS)], fg),
        ("cancelled", "FROM_GW", 4, SID, [c.Cancelled(
            c.Side.SELL, c.CancelReason.NO_LIQUIDITY, 0x01020304, 0x1112131415161718,
            0x2122232425262728, 0x3132333435363738, 0x41424344, TS, GTS)], fg),
        ("replaced", "FROM_GW", 5, SID, [c.Replaced(
            c.Side.BUY, 0x01020304, 0x1112131415161718, 0x2122232425262728, 0x3132333435363738,
            0x41424344, 0x51525354, 0x6162636465666768, TS, GTS)], fg),
        ("sequence_gap", "FROM_GW", 0, SID, [c.SequenceGap(0x0102030405060708,
                                                           0x1112131415161718, TS, GTS)], fg),
        ("heartbeat_from_gw", "FROM_GW", 0, SID, [c.Heartbeat(0x0102030405060708, 0, GTS)],
         fg | c.F_HEARTBEAT),
        ("logout_from_gw_timeout", "FROM_GW", 0, SID, [c.Logout(c.LogoutReason.TIMEOUT, 0, GTS)],
         fg),
        ("order_outcome_batch", "AUTO", 6, SID, [
            c.Accepted(1, 1, 2, 3, 10, 1000, 500, 20, TS, GTS),
            c.Fill(1, 2, 3, 10, 77, 499, 5, 15, 1000, TS, GTS),
            c.Fill(1, 2, 3, 10, 78, 500, 15, 0, 1000, TS, GTS),
            c.Cancelled(2, c.CancelReason.USER, 3, 11, 1001, 510, 9, TS + 1, GTS + 1),
        ], fg),
        ("retransmitted_fills", "FROM_GW", 42, SID, [
            c.Fill(2, 1, 3, 12, 79, 505, 1, 2, 1002, 0, GTS)
            for _ in range(2)
        ], fg | c.F_RETRANSMIT),
        ("heartbeat_auto_direction", "AUTO", 0, 1, [c.Heartbeat(1, 0, 1)], c.F_HEARTBEAT),
    ]  # fmt: skip


def raw(
    session: int,
    seq: int,
    msgs: list[bytes],
    flags: int = 0,
    count: int | None = None,
    length: int | None = None,
    magic: int = c.MAGIC,
    version: int = c.VERSION,
) -> bytes:
    n = len(msgs) if count is None else count
    ln = c.HDR_SIZE + n * c.MSG_SIZE if length is None else length
    hdr = c.Header(session, seq, n, ln, flags, magic, version).encode()
    return hdr + b"".join(msgs)


def malformed() -> list[tuple[str, str, bytes]]:
    o = new_order(0).encode()
    hb = c.Heartbeat(1, 0, TS).encode()
    acc = c.Accepted(1, 1, 2, 3, 10, 1000, 500, 20, TS, GTS).encode()
    unknown = bytes([0x99]) + bytes(63)
    fg = c.F_FROM_GW
    good = raw(SID, 1, [o, o])
    return [
        ("empty", "TO_GW", b""),
        ("short_header", "TO_GW", good[:23]),
        ("wrong_magic", "TO_GW", raw(SID, 1, [o], magic=0x5845)),
        ("wrong_version", "TO_GW", raw(SID, 1, [o], version=2)),
        ("unknown_flags", "TO_GW", raw(SID, 1, [o], flags=0x09)),
        ("zero_count", "TO_GW", raw(SID, 1, [])),
        ("count_above_max", "TO_GW", raw(SID, 1, [o] * 23)),
        ("count_disagrees_with_length", "TO_GW", raw(SID, 1, [o, o], count=1, length=152)),
        ("length_disagrees_with_count", "TO_GW", raw(SID, 1, [o, o], length=88)),
        ("truncated_message", "TO_GW", good[:24 + 64 + 40]),
        ("header_only_count_one", "TO_GW", good[:24][:16] + b"\x01\x00\x58\x00" + good[20:24]),
        ("trailing_bytes", "TO_GW", good + b"\x00\x00\x00\x00"),
        ("zero_session", "TO_GW", raw(0, 1, [o])),
        ("from_gw_flag_to_gateway", "TO_GW", raw(SID, 1, [o], flags=fg)),
        ("from_gw_flag_missing", "FROM_GW", raw(SID, 1, [acc])),
        ("retransmit_flag_from_client", "TO_GW", raw(SID, 1, [o], flags=c.F_RETRANSMIT)),
        ("unknown_message_type", "TO_GW", raw(SID, 1, [o, unknown])),
        ("message_type_zero", "AUTO", raw(SID, 0, [bytes(64)])),
        ("gateway_message_to_gateway", "TO_GW", raw(SID, 1, [o, acc])),
        ("client_message_from_gateway", "AUTO", raw(SID, 1, [acc, o], flags=fg)),
        ("application_message_seq_zero", "TO_GW", raw(SID, 0, [hb, o])),
        ("session_message_seq_nonzero", "TO_GW", raw(SID, 5, [o, hb])),
        ("heartbeat_flag_with_logout", "TO_GW", raw(SID, 0, [hb, c.Logout(1, 0, TS).encode()],
                                                    flags=c.F_HEARTBEAT)),
        ("retransmit_flag_seq_zero", "FROM_GW", raw(SID, 0, [hb], flags=fg | c.F_RETRANSMIT)),
        ("seq_wraps", "TO_GW", raw(SID, (1 << 64) - 1, [o, o])),
    ]  # fmt: skip


def main() -> int:
    out = [HEADER]
    for name, d, seq, sid, msgs, flags in valid():
        data = c.encode_datagram(sid, seq, msgs, flags)
        dg = c.decode_datagram(data, c.Direction[d])  # the generator checks its own output
        assert dg.header is not None
        v = Vector(name, d, data, header_fields(dg.header), [message_fields(m) for m in msgs])
        if name == "login":
            v.secret = SECRET
        out.append(format_vector(v))
    for name, d, data in malformed():
        try:
            c.decode_datagram(data, c.Direction[d])
        except c.ProtocolError as e:
            out.append(format_vector(Vector(name, d, data, error=e.code.c_name, text=e.text)))
        else:
            raise AssertionError(f"malformed vector {name} decodes")
    sys.stdout.write("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
