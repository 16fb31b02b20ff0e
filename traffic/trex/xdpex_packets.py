"""Base packets of the xdpex TRex profiles, built with the project's scapy layers.

TRex's client (lbr-trex-client) puts its own scapy 2.4.3 first on sys.path when `trex` is imported
and drops any scapy already loaded; the project's layers (xdpex_traffic.scapy_layers) need scapy
2.5 or newer. So a profile never builds packets in TRex's process: xdpex_stl.py runs this file as a
child process with the project's interpreter, hands it a JSON spec on stdin and gets back, for each
session, the packet bytes and the byte offsets of every field the TRex field engine rewrites
(hdr.seq, and per message cl_ord_id / orig_cl_ord_id / symbol_id / side). The offsets are computed
from the layers' field lists, not written down a second time.

    echo '{"kind": "orders", "orders": 2, ...}' | .venv/bin/python traffic/trex/xdpex_packets.py
"""

from __future__ import annotations

import json
import sys
from typing import Any

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from xdpex_proto import codec
from xdpex_traffic.scapy_layers import XE, XECancel, XEMessage, XENewOrder

KINDS = ("orders", "order_cancel")
REWRITTEN = ("cl_ord_id", "orig_cl_ord_id", "symbol_id", "side")


def field_offset(pkt: Packet, name: str) -> int:
    """Byte offset of field `name` inside the fixed-size layer `pkt` (its own fields only)."""
    off = 0
    for f in pkt.fields_desc:
        if f.name == name:
            return off
        off += len(f.addfield(pkt, b"", pkt.getfieldval(f.name)))
    raise KeyError(f"{type(pkt).__name__} has no field {name!r}")


def messages(spec: dict[str, Any], seq: int) -> list[XEMessage]:
    """The messages of a session's first datagram; the field engine moves them on from there."""
    n, kind = spec["orders"], spec["kind"]
    common = dict(ord_type=codec.OrdType.LIMIT, tif=spec["tif"], price=spec["price"])
    if kind == "orders":
        # Alternating sides at one price: every second order crosses the one before it.
        return [
            XENewOrder(
                side=codec.Side.BUY if i % 2 == 0 else codec.Side.SELL,
                symbol_id=i % spec["symbols"] + 1,
                cl_ord_id=seq + i,
                qty=spec["qty"],
                **common,
            )
            for i in range(n)
        ]
    # order_cancel: n/2 resting buys, then a Cancel of each; the book ends every datagram empty.
    half = n // 2
    news: list[XEMessage] = [
        XENewOrder(
            side=codec.Side.BUY, symbol_id=i % spec["symbols"] + 1, cl_ord_id=seq + i,
            qty=spec["qty"], **common,
        )
        for i in range(half)
    ]  # fmt: skip
    cancels: list[XEMessage] = [
        XECancel(symbol_id=i % spec["symbols"] + 1, orig_cl_ord_id=seq + i) for i in range(half)
    ]
    return news + cancels


def check(spec: dict[str, Any]) -> None:
    if spec.get("kind") not in KINDS:
        raise ValueError(f"kind: {spec.get('kind')!r}, expected one of {', '.join(KINDS)}")
    n = spec.get("orders")
    if not isinstance(n, int) or not 1 <= n <= codec.MAX_MSGS:
        raise ValueError(f"orders: {n!r}, expected 1..{codec.MAX_MSGS} messages a datagram")
    if spec["kind"] == "order_cancel" and n % 2:
        raise ValueError(f"orders: {n}, order_cancel needs an even count (order + its cancel)")
    if not spec.get("sessions"):
        raise ValueError("sessions: empty, expected at least one session")
    for s in spec["sessions"]:
        if not 1 <= s["session_id"] < 1 << 32:
            raise ValueError(f"session_id: {s['session_id']}, expected 1..2^32-1")
        if not 1 <= s["start_seq"] < 1 << 63:
            raise ValueError(f"start_seq: {s['start_seq']}, expected >= 1 (from LoginAccepted)")


def build(spec: dict[str, Any]) -> dict[str, Any]:
    check(spec)
    base = Ether(src=spec["src_mac"], dst=spec["dst_mac"]) / IP(
        src=spec["src"], dst=spec["dst"], ttl=64
    )
    out = []
    for s in spec["sessions"]:
        msgs = messages(spec, s["start_seq"])
        # UDP checksum 0 ("not computed", valid for IPv4): the field engine rewrites the payload.
        udp = UDP(sport=s["sport"], dport=spec["dport"], chksum=0)
        pkt = base / udp / XE(session_id=s["session_id"], seq=s["start_seq"], messages=msgs)
        raw = bytes(pkt)
        xe_off = len(raw) - len(bytes(pkt[XE]))
        xe = pkt[XE]
        fields: dict[str, Any] = {"seq": xe_off + field_offset(xe, "seq"), "messages": []}
        for i, m in enumerate(msgs):
            m_off = xe_off + codec.HDR_SIZE + i * codec.MSG_SIZE
            entry: dict[str, Any] = {"type": int(m.type), "offset": m_off}
            for name in REWRITTEN:
                if any(f.name == name for f in m.fields_desc):
                    entry[name] = m_off + field_offset(m, name)
            fields["messages"].append(entry)
        out.append({"session_id": s["session_id"], "hex": raw.hex(), "fields": fields})
    return {"xe_offset": xe_off, "packets": out}


def main() -> int:
    try:
        spec = json.load(sys.stdin)
        result = build(spec)
    except (ValueError, KeyError, TypeError) as e:
        print(f"xdpex_packets: error: {e}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
