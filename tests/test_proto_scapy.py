"""scapy layers (xdpex_traffic.scapy_layers) against the golden vectors: build each datagram from
its meaning and compare bytes, dissect the bytes and compare every field, and dissect a pcap file
written with wrpcap in both directions on the default and on another bound port."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap, wrpcap
from xdpex_proto.golden import Fields, Vector, load_vectors
from xdpex_traffic import scapy_layers as xs

VALID = [v for v in load_vectors() if not v.malformed]
MALFORMED = [v for v in load_vectors() if v.malformed]
CLASS_BY_NAME = {xs.MSG_TYPES[t]: cls for t, cls in xs.MESSAGE_CLASSES.items()}
NAME_BY_TYPE = xs.MSG_TYPES


def build(v: Vector) -> xs.XE:
    assert v.hdr is not None
    msgs = []
    for m in v.msgs:
        f = dict(m)
        cls = CLASS_BY_NAME[str(f.pop("type"))]
        if "ref_type" in f:
            f["ref_type"] = {n: t for t, n in NAME_BY_TYPE.items()}[str(f["ref_type"])]
        msgs.append(cls(**f))
    hdr = {k: x for k, x in v.hdr.items() if k not in ("count", "length")}
    return xs.XE(messages=msgs, **hdr)


def fields_of(pkt: xs.XE) -> tuple[Fields, list[Fields]]:
    hdr = {
        k: int(pkt.getfieldval(k))
        for k in ("magic", "version", "flags", "session_id", "seq", "count", "length", "reserved")
    }
    msgs = []
    for m in pkt.messages:
        d: Fields = {}
        for fd in m.fields_desc:
            if fd.name.startswith("pad"):
                continue
            val = m.getfieldval(fd.name)
            if fd.name in ("type", "ref_type"):
                d[fd.name] = NAME_BY_TYPE.get(int(val), f"0x{int(val):02x}")
            elif isinstance(val, bytes):
                d[fd.name] = val
            else:
                d[fd.name] = int(val)
        msgs.append(d)
    return hdr, msgs


@pytest.mark.parametrize("v", VALID, ids=lambda v: v.name)
def test_build_from_meaning_gives_golden_bytes(v: Vector) -> None:
    assert bytes(build(v)).hex() == v.data.hex()


@pytest.mark.parametrize("v", VALID, ids=lambda v: v.name)
def test_dissect_golden_bytes_gives_meaning(v: Vector) -> None:
    pkt = xs.XE(v.data)
    hdr, msgs = fields_of(pkt)
    assert hdr == v.hdr
    assert msgs == v.msgs
    assert not pkt.payload, "nothing left over after count messages"
    assert bytes(pkt) == v.data


def test_pcap_round_trip_both_directions(tmp_path: Path) -> None:
    to_gw = [v for v in VALID if v.dir == "TO_GW"]
    from_gw = [v for v in VALID if v.dir == "FROM_GW"]
    frames = []
    for v in to_gw:
        frames.append(
            Ether()
            / IP(src="10.9.0.2", dst="10.9.0.1")
            / UDP(sport=40001, dport=9000)
            / xs.XE(v.data)
        )
    for v in from_gw:
        frames.append(
            Ether()
            / IP(src="10.9.0.1", dst="10.9.0.2")
            / UDP(sport=9000, dport=40001)
            / xs.XE(v.data)
        )
    path = tmp_path / "xdpex.pcap"
    wrpcap(str(path), frames)
    back = rdpcap(str(path))
    assert len(back) == len(to_gw) + len(from_gw)
    for pkt, v in zip(back, to_gw + from_gw, strict=True):
        assert xs.XE in pkt, f"{v.name} did not dissect as XE"
        assert fields_of(pkt[xs.XE]) == (v.hdr, v.msgs)
        assert bytes(pkt[xs.XE]) == v.data


def test_bind_port_dissects_another_port(tmp_path: Path) -> None:
    (v,) = [v for v in VALID if v.name == "three_orders"]
    frame = Ether() / IP() / UDP(sport=40002, dport=9123) / v.data
    path = tmp_path / "other.pcap"
    wrpcap(str(path), [frame])
    assert xs.XE not in rdpcap(str(path))[0]
    xs.bind_port(9123)
    pkt = rdpcap(str(path))[0]
    assert xs.XE in pkt
    assert pkt[xs.XE].messages[2].cl_ord_id == 0x1112131415161718 + 2


def test_build_defaults_address_gateway_port_and_fill_count_length() -> None:
    pkt = (
        IP(dst="127.0.0.1")
        / UDP(sport=40000)
        / xs.XE(
            session_id=3,
            seq=7,
            messages=[xs.XENewOrder(cl_ord_id=1, qty=5), xs.XECancel(orig_cl_ord_id=1)],
        )
    )
    raw = bytes(pkt)
    again = IP(raw)
    assert again[UDP].dport == xs.XE_DEFAULT_PORT
    assert again[xs.XE].count == 2 and again[xs.XE].length == 24 + 2 * 64
    assert [m.__class__ for m in again[xs.XE].messages] == [xs.XENewOrder, xs.XECancel]
    assert "NEW_ORDER,CANCEL" in again.summary()


def test_unknown_type_dissects_as_unknown() -> None:
    data = bytes(xs.XE(session_id=1, seq=1, messages=[xs.XENewOrder()]))
    data = data[:24] + b"\x99" + data[25:]
    pkt = xs.XE(data)
    assert isinstance(pkt.messages[0], xs.XEUnknown)
    assert bytes(pkt) == data


@pytest.mark.parametrize("v", MALFORMED, ids=lambda v: v.name)
def test_malformed_datagrams_dissect_without_exception(v: Vector) -> None:
    """A capture full of garbage must still open: scapy keeps what it cannot parse as raw."""
    pkt = IP(bytes(IP(dst="127.0.0.1") / UDP(sport=40000, dport=9000) / v.data))
    assert pkt[UDP].dport == 9000
    if len(v.data) >= 24:
        assert xs.XE in pkt
        rebuilt = bytes(pkt[UDP].payload)
        assert rebuilt[:24] == v.data[:24]
