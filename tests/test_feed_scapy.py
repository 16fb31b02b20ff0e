"""scapy layers of the feed (xdpex_traffic.scapy_feed) against the feed's golden vectors: build
each packet, request and snapshot stream from its meaning and compare bytes, dissect the bytes and
compare every field, and dissect a pcap written with wrpcap (feed, rewind requests, answers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import rdpcap, wrpcap
from xdpex_proto.feed_golden import Fields, Vector, load_vectors
from xdpex_traffic import scapy_feed as xs

VECTORS = load_vectors()
PACKETS = [v for v in VECTORS if v.kind == "PACKET" and not v.malformed]
CLASS_BY_NAME = {xs.MSG_TYPES[t]: c for t, c in xs.MESSAGE_CLASSES.items()}


def build_msg(fields: Fields) -> Packet:
    f = dict(fields)
    return CLASS_BY_NAME[str(f.pop("type"))](**f)


def fields_of(m: Packet) -> Fields:
    out: Fields = {"type": xs.MSG_TYPES[int(m.type)]}
    for fd in m.fields_desc[1:]:
        if not fd.name.startswith("pad"):
            out[fd.name] = int(m.getfieldval(fd.name))
    return out


def session(v: Vector) -> bytes:
    assert v.hdr is not None
    return str(v.hdr["session"]).encode().ljust(10)


@pytest.mark.parametrize("v", PACKETS, ids=lambda v: v.name)
def test_packets_build_and_dissect(v: Vector) -> None:
    assert v.hdr is not None
    count = int(v.hdr["count"])
    pkt = xs.XFMold(session=session(v), seq=int(v.hdr["seq"]),
                    count=count if count in (xs.MOLD_HEARTBEAT, xs.MOLD_END) else None,
                    blocks=[xs.XFBlock(msg=build_msg(m)) for m in v.msgs])  # fmt: skip
    assert bytes(pkt).hex() == v.data.hex()
    back = xs.XFMold(v.data)
    assert back.session == session(v) and back.seq == v.hdr["seq"] and back.count == count
    assert [fields_of(m) for m in back.messages] == v.msgs
    assert not back.payload and bytes(back) == v.data


def test_requests_and_snapshot_streams() -> None:
    by = {v.name: v for v in VECTORS}
    req = by["rewind_request"]
    assert req.hdr is not None
    r = xs.XFRewindRequest(session=session(req), seq=req.hdr["seq"], count=req.hdr["count"])
    assert bytes(r) == req.data
    assert xs.XFRewindRequest(req.data).seq == req.hdr["seq"]
    sreq = by["snapshot_request"]
    assert sreq.hdr is not None
    s = xs.XFSnapRequest(session=session(sreq), version=sreq.hdr["version"],
                         symbol_id=sreq.hdr["symbol_id"])  # fmt: skip
    assert bytes(s) == sreq.data
    for name in ("snapshot_stream", "snapshot_refused"):
        v = by[name]
        blocks = xs.blocks_of(v.data)
        assert [fields_of(b.msg) for b in blocks] == v.msgs
        assert b"".join(bytes(xs.XFBlock(msg=build_msg(m))) for m in v.msgs) == v.data


def test_pcap_round_trip_on_the_feed_and_rewind_ports(tmp_path: Path) -> None:
    feed = [v for v in PACKETS if v.msgs]
    frames = [Ether() / IP(src="10.77.0.1", dst="239.77.0.1") / UDP(sport=40001, dport=9400)
              / xs.XFMold(v.data) for v in feed]  # fmt: skip
    frames.append(Ether() / IP() / UDP(sport=40002, dport=9401) / xs.XFRewindRequest(seq=5,
                                                                                    count=3))
    frames.append(Ether() / IP() / UDP(sport=9401, dport=40002) / xs.XFMold(feed[0].data))
    path = tmp_path / "feed.pcap"
    wrpcap(str(path), frames)
    back = rdpcap(str(path))
    for v, p in zip(feed, back, strict=False):
        assert p.haslayer(xs.XFMold) and bytes(p[xs.XFMold]) == v.data
        assert [fields_of(m) for m in p[xs.XFMold].messages] == v.msgs
    assert back[-2].haslayer(xs.XFRewindRequest) and back[-2][xs.XFRewindRequest].count == 3
    assert back[-1].haslayer(xs.XFMold) and back[-1][xs.XFMold].summary()
