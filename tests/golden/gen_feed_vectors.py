"""Generates tests/golden/feed_vectors.txt, the golden vectors of the market-data feed v1.

Run once, by hand, when the feed gains something to cover:
    .venv/bin/python tests/golden/gen_feed_vectors.py > tests/golden/feed_vectors.txt
The tests never run this: they compare the C header (tests/c/test_feed_golden.c), the Python codec,
the scapy layers and the Wireshark dissector against the tracked file, so a change in any of them
(or in this script) shows up as a diff to review.

Field values are chosen so that every byte of a field differs (0x0102030405060708 and the like),
which makes a wrong offset, size or byte order visible instead of reading back a lucky zero.
"""

from __future__ import annotations

import struct
import sys

from xdpex_proto import feed as f
from xdpex_proto.feed_golden import Vector, format_vector, message_fields

TS = 0x17_9B_5E_2A_11_22_33_44
S0 = f.session_name(0)
SYM = 0x01020304
OID = 0x1112131415161718
MID = 0x2122232425262728
PX = 0x0102030405060708

HEADER = """\
# xdpex market-data feed v1 golden vectors (include/xdpex/feed.h, docs/marketdata.md).
# GENERATED ONCE by tests/golden/gen_feed_vectors.py (see there); tests compare against this
# tracked file and never regenerate it. Checked byte for byte by tests/c/test_feed_golden.c
# (feed.h structs and xf_parse_datagram), tests/test_feed_codec.py (proto/xdpex_proto/feed.py),
# tests/test_feed_scapy.py (scapy layers) and tests/test_feed_dissector.py (Wireshark Lua).
#
# Format (reader: proto/xdpex_proto/feed_golden.py): entries separated by blank lines.
#   name: unique name     kind: PACKET | REQUEST | SNAP_REQUEST | BLOCKS
#   hex: the bytes        hdr: the MoldUDP64 header (or snapshot request) fields as key=value
#   msg: type=NAME and every non-pad field of the message's feed.h struct, one line a message
#   error: XF_PERR_* and text: the exact error text, for malformed packets
"""


def add(i: int = 0, side: int = f.Side.BUY) -> f.AddOrder:
    return f.AddOrder(side, SYM + i, TS + i, OID + i, PX + i, 0x31323334 + i)


def book_msgs() -> list[f.Message]:
    return [
        add(0),
        f.Executed(f.Side.SELL, SYM, TS, OID, MID, PX, 0x41424344, 0x51525354),
        f.Trade(f.Side.BUY, SYM, TS, MID, PX, 0x41424344),
        f.Reduced(f.Side.BUY, SYM, TS, OID, 0x41424344, 0x51525354),
        f.Replaced(f.Side.SELL, SYM, TS, OID, -PX, 0x61626364),
        f.Deleted(f.Side.SELL, SYM, TS, OID, 0x71727374),
    ]


def packets() -> list[tuple[str, bytes, int, list[f.Message], int | None]]:
    """(name, session, seq, messages, count override) of well-formed downstream packets."""
    fit = (f.MAX_PAYLOAD - f.MOLD_HDR_SIZE) // (f.BLOCK_HDR + f.AddOrder.size())
    return [
        ("start_of_session", S0, 1, [f.SystemEvent(f.SysEvent.START_OF_SESSION, 0, TS)], None),
        ("end_of_session_event", S0, 0x0102030405060708,
         [f.SystemEvent(f.SysEvent.END_OF_SESSION, 0, TS)], None),
        ("symbol_halted", S0, 2, [f.SymbolState(f.SymbolStateCode.HALTED, SYM, TS)], None),
        ("symbol_trading", S0, 3, [f.SymbolState(f.SymbolStateCode.TRADING, SYM, TS)], None),
        ("add_order_buy", S0, 4, [add(0)], None),
        ("add_order_sell_negative_price", S0, 5,
         [f.AddOrder(f.Side.SELL, SYM, TS, OID, -12345, 0xFFFFFFFF)], None),
        ("executed", S0, 6, [book_msgs()[1]], None),
        ("trade", S0, 7, [book_msgs()[2]], None),
        ("reduced", S0, 8, [book_msgs()[3]], None),
        ("replaced_negative_price", S0, 9, [book_msgs()[4]], None),
        ("deleted", S0, 10, [book_msgs()[5]], None),
        ("mixed_batch", f.session_name(7), 0x1112131415161718, book_msgs(), None),
        ("full_packet_of_adds", f.session_name(63), 1000, [add(i, 1 + i % 2) for i in range(fit)],
         None),
        ("ten_character_session", b"XDPEXQ1234", 42, [add(1)], None),
        ("heartbeat", S0, 0x0102030405060708, [], f.MOLD_HEARTBEAT),
        ("end_of_session_packet", S0, 12, [], f.MOLD_END),
    ]  # fmt: skip


def raw(session: bytes, seq: int, count: int, body: bytes = b"") -> bytes:
    return f.MOLD_HDR.pack(session, seq, count) + body


def block(data: bytes, length: int | None = None) -> bytes:
    return struct.pack(">H", len(data) if length is None else length) + data


def malformed() -> list[tuple[str, bytes]]:
    a = add(0).encode()
    good = raw(S0, 1, 2, block(a) + block(a))
    snap = f.SnapshotBegin(0, 0, TS, 5, 1, 2).encode()
    return [
        ("empty", b""),
        ("short_header", good[:19]),
        ("session_nul_byte", b"XDP\x00XQ0   " + good[10:]),
        ("session_high_byte", b"XDPEXQ0  \xc3" + good[10:]),
        ("seq_zero", raw(S0, 0, 1, block(a))),
        ("seq_wraps", raw(S0, (1 << 64) - 1, 2, block(a) + block(a))),
        ("heartbeat_with_payload", raw(S0, 5, f.MOLD_HEARTBEAT, b"\x00")),
        ("end_of_session_with_payload", raw(S0, 5, f.MOLD_END, block(a))),
        ("heartbeat_seq_zero", raw(S0, 0, f.MOLD_HEARTBEAT)),
        ("block_length_cut_off", good[:-len(a) - 1]),
        ("count_above_blocks", raw(S0, 1, 3, block(a) + block(a))),
        ("block_truncated", good[:-10]),
        ("trailing_byte", good + b"\x00"),
        ("unknown_message_type", raw(S0, 1, 2, block(a) + block(b"Q" + a[1:]))),
        ("snapshot_message_in_feed", raw(S0, 1, 1, block(snap))),
        ("length_disagrees_with_type", raw(S0, 1, 2, block(a) + block(a[:36]))),
        ("zero_length_block", raw(S0, 1, 2, block(a) + block(b""))),
    ]  # fmt: skip


def main() -> int:
    out = [HEADER]
    for name, session, seq, msgs, count in packets():
        data = f.encode_datagram(session, seq, msgs) if count is None else raw(session, seq, count)
        pkt = f.decode_datagram(data)  # the generator checks its own output
        assert pkt.messages == msgs and len(data) <= f.MAX_PAYLOAD, name
        hdr = {"session": session.decode().rstrip(), "seq": seq,
               "count": len(msgs) if count is None else count}  # fmt: skip
        out.append(format_vector(Vector(name, "PACKET", data, hdr, [message_fields(m)
                                                                     for m in msgs])))
    for name, data in malformed():
        try:
            f.decode_datagram(data)
        except f.FeedError as e:
            out.append(format_vector(Vector(name, "PACKET", data, error=e.code.c_name,
                                            text=e.text)))
        else:
            raise AssertionError(f"malformed vector {name} decodes")
    req = f.RewindRequest(S0, 0x0102030405060708, 0x1112)
    out.append(format_vector(Vector("rewind_request", "REQUEST", req.encode(), {
        "session": "XDPEXQ0", "seq": req.seq, "count": req.count})))
    sreq = f.SnapshotRequest(f.session_name(3), SYM)
    out.append(format_vector(Vector("snapshot_request", "SNAP_REQUEST", sreq.encode(), {
        "session": "XDPEXQ3", "version": f.VERSION, "symbol_id": SYM})))
    snapshot: list[f.Message] = [
        f.SnapshotBegin(f.SnapStatus.OK, 0, TS, 0x0102030405060708, 1, 2),
        f.SymbolState(f.SymbolStateCode.HALTED, SYM, TS),
        add(0, f.Side.BUY),
        add(1, f.Side.SELL),
        f.SnapshotEnd(0, TS, 0x0102030405060708),
    ]
    out.append(format_vector(Vector("snapshot_stream", "BLOCKS", f.encode_blocks(snapshot),
                                    msgs=[message_fields(m) for m in snapshot])))
    refused: list[f.Message] = [f.SnapshotBegin(f.SnapStatus.UNKNOWN_SESSION, SYM, 0, 0, 0, 0),
                                f.SnapshotEnd(SYM, 0, 0)]
    out.append(format_vector(Vector("snapshot_refused", "BLOCKS", f.encode_blocks(refused),
                                    msgs=[message_fields(m) for m in refused])))
    sys.stdout.write("\n".join(out))
    return 0  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
