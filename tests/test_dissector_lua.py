"""traffic/wireshark/xdpex.lua under the real tshark, against the protocol's golden vectors.

Every golden datagram is written to a pcap with scapy (UDP to port 9000 for client -> gateway
vectors, from 9000 for gateway -> client ones, 9000 both ways for direction AUTO), tshark decodes it
with the Lua dissector to PDML, and each header and message field must equal the vector's value;
enum fields must show proto.h's names (from the codec's enums). Malformed vectors must carry the
parse.h error as expert info with parse.h's exact text. tshark runs as root here: Debian's init.lua
sets run_user_scripts_when_superuser = true, so `-X lua_script:` needs no extra option.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap
from xdpex_proto import codec
from xdpex_proto.golden import Vector, load_vectors
from xdpex_traffic.scapy_layers import XE, XEFill, XENewOrder

TOP = Path(__file__).resolve().parent.parent
LUA = TOP / "traffic" / "wireshark" / "xdpex.lua"
PORTS = {"TO_GW": (40000, 9000), "FROM_GW": (9000, 40000), "AUTO": (9000, 9000)}

# Golden field name -> dissector field, where proto.h reuses a name for different things.
REASON_FIELD = {
    "LOGIN_REJECTED": "login_reason",
    "CANCELLED": "cancel_reason",
    "LOGOUT": "logout_reason",
    "REJECTED": "reject_reason",
}
ENUMS: dict[str, dict[int, str]] = {
    "type": {m.value: m.name for m in codec.MsgType},
    "ref_type": {m.value: m.name for m in codec.MsgType},
    "side": {0: "BOTH"} | {m.value: m.name for m in codec.Side},
    "ord_type": {m.value: m.name for m in codec.OrdType},
    "tif": {m.value: m.name for m in codec.Tif},
    "liquidity": {m.value: m.name for m in codec.Liquidity},
    "reject_reason": {m.value: m.name for m in codec.RejectReason},
    "login_reason": {m.value: m.name for m in codec.LoginReason},
    "cancel_reason": {m.value: m.name for m in codec.CancelReason},
    "logout_reason": {m.value: m.name for m in codec.LogoutReason},
}


def tshark_pdml(pcap: Path, *extra: str) -> list[ET.Element]:
    if shutil.which("tshark") is None:
        pytest.fail("tshark is missing: provisioning/setup.sh installs it")
    r = subprocess.run(
        ["tshark", "-X", f"lua_script:{LUA}", "-r", str(pcap), "-T", "pdml", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, LC_ALL="C"),
    )
    assert r.returncode == 0, r.stderr
    assert "Lua: Error" not in r.stderr, r.stderr
    return ET.fromstring(r.stdout).findall("packet")


def write_vectors(path: Path, vectors: list[Vector]) -> None:
    pkts = []
    for v in vectors:
        sport, dport = PORTS[v.dir]
        ip = IP(src="10.77.0.2", dst="10.77.0.1")
        pkts.append(Ether() / ip / UDP(sport=sport, dport=dport) / Raw(v.data))
    wrpcap(str(path), pkts)


def xdpex_of(packet: ET.Element) -> ET.Element | None:
    return packet.find("proto[@name='xdpex']")


def number(show: str) -> int:
    return int(show, 0)


def test_every_valid_golden_vector_dissects_field_for_field(tmp_path: Path) -> None:
    vectors = [v for v in load_vectors() if not v.malformed]
    assert len({m["type"] for v in vectors for m in v.msgs}) == 16, "golden set lost a type"
    pcap = tmp_path / "golden.pcap"
    write_vectors(pcap, vectors)
    packets = tshark_pdml(pcap)
    assert len(packets) == len(vectors)
    checked = 0
    for v, pkt in zip(vectors, packets, strict=True):
        proto = xdpex_of(pkt)
        assert proto is not None, f"{v.name}: not dissected as xdpex"
        assert proto.find(".//field[@name='_ws.expert']") is None, f"{v.name}: flagged malformed"
        assert v.hdr is not None
        for key, want in v.hdr.items():
            got = proto.find(f".//field[@name='xdpex.hdr.{key}']")
            assert got is not None, f"{v.name}: no xdpex.hdr.{key}"
            assert number(got.get("show", "")) == want, f"{v.name}: hdr.{key}"
        msgs = proto.findall("field[@name='xdpex.msg']")
        assert len(msgs) == len(v.msgs), v.name
        for i, (want_msg, got_msg) in enumerate(zip(v.msgs, msgs, strict=True)):
            kind = str(want_msg["type"])
            shown = {f.get("name", "")[6:]: f for f in got_msg.findall("field")}
            expected_names = {"type"}
            for key, want in want_msg.items():
                name = key
                if key == "reason":
                    name = REASON_FIELD[kind]
                elif key == "count" and kind == "RETRANSMIT_REQ":
                    name = "retransmit_count"
                expected_names.add(name)
                f = shown.get(name)
                assert f is not None, f"{v.name} msg[{i}] {kind}: no xdpex.{name}"
                if key in ("type", "ref_type"):
                    want = codec.MsgType[str(want)].value
                if key == "hmac":
                    assert f.get("value") == bytes(want).hex(), f"{v.name} msg[{i}].hmac"  # type: ignore[arg-type]
                    continue
                got = number(f.get("show", ""))
                assert got == want, f"{v.name} msg[{i}] {kind}.{key}: {got} != {want}"
                if name in ENUMS and got in ENUMS[name]:
                    label = re.search(r": (\S+) \(", f.get("showname", ""))
                    assert label and label.group(1) == ENUMS[name][got], f.get("showname")
                checked += 1
            # Nothing but the proto.h fields (and the generated sequence) is shown.
            assert set(shown) - {"msg_seq"} == expected_names, f"{v.name} msg[{i}] {kind}"
            seq = int(v.hdr["seq"])  # type: ignore[arg-type]
            if seq and "msg_seq" in shown:
                assert number(shown["msg_seq"].get("show", "")) == seq + i
    assert checked > 300


def test_malformed_vectors_carry_parse_h_error_text(tmp_path: Path) -> None:
    # A UDP datagram with no payload is never handed to a subdissector, so the 0-byte vector
    # cannot reach the dissector; every other malformed vector must.
    vectors = [v for v in load_vectors() if v.malformed and v.data]
    assert len(vectors) >= 20
    pcap = tmp_path / "malformed.pcap"
    write_vectors(pcap, vectors)
    packets = tshark_pdml(pcap)
    assert len(packets) == len(vectors)
    for v, pkt in zip(vectors, packets, strict=True):
        proto = xdpex_of(pkt)
        assert proto is not None, f"{v.name}: not dissected as xdpex"
        errs = proto.findall(".//field[@name='_ws.expert']/field")
        ours = [f for f in errs if f.get("name", "").startswith("xdpex.perr.")]
        assert len(ours) == 1, f"{v.name}: {[f.get('name') for f in errs]}"
        code = "XE_PERR_" + ours[0].get("name", "")[len("xdpex.perr.") :].upper()
        assert code == v.error, f"{v.name}: {code} != {v.error}"
        assert ours[0].get("showname") == v.text, f"{v.name}"


def test_scapy_built_datagrams_and_display_filters(tmp_path: Path) -> None:
    to_gw = XE(
        session_id=7,
        seq=41,
        messages=[
            XENewOrder(side=1, ord_type=1, tif=2, symbol_id=3, cl_ord_id=1000 + i, price=-5, qty=9)
            for i in range(3)
        ],
    )
    from_gw = XE(
        flags="FROM_GW+RETRANSMIT",
        session_id=7,
        seq=9,
        messages=[XEFill(side=2, liquidity=2, symbol_id=3, cl_ord_id=1001, exec_id=77, qty=4)],
    )
    ip_tg = IP(src="10.77.0.2", dst="10.77.0.1")
    ip_gw = IP(src="10.77.0.1", dst="10.77.0.2")
    pcap = tmp_path / "scapy.pcap"
    wrpcap(
        str(pcap),
        [
            Ether() / ip_tg / UDP(sport=40000, dport=9000) / to_gw,
            Ether() / ip_gw / UDP(sport=9000, dport=40000) / from_gw,
        ],
    )
    r = subprocess.run(
        ["tshark", "-X", f"lua_script:{LUA}", "-r", str(pcap), "-Y", "xdpex.cl_ord_id == 1001",
         "-T", "fields", "-E", "separator=;", "-e", "xdpex.hdr.seq", "-e", "xdpex.type",
         "-e", "xdpex.msg_seq", "-e", "xdpex.price", "-e", "xdpex.hdr.flags.retransmit"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines == [
        "41;0x02,0x02,0x02;41,42,43;-5,-5,-5;0",
        "9;0x85;9;0;1",
    ]


def test_other_ports_by_preference_and_by_heuristic(tmp_path: Path) -> None:
    dg = XE(session_id=3, seq=1, messages=[XENewOrder(symbol_id=1, cl_ord_id=5, qty=1, price=1)])
    bad = bytearray(bytes(dg))
    bad[18] += 1  # length no longer matches: not taken by the heuristic
    pcap = tmp_path / "port.pcap"
    wrpcap(
        str(pcap),
        [
            Ether() / IP() / UDP(sport=40000, dport=9100) / Raw(bytes(dg)),
            Ether() / IP() / UDP(sport=40000, dport=9100) / Raw(bytes(bad)),
        ],
    )
    good_pkt, bad_pkt = tshark_pdml(pcap)
    proto = xdpex_of(good_pkt)
    assert proto is not None  # the heuristic found it
    cl = proto.find(".//field[@name='xdpex.cl_ord_id']")
    assert cl is not None and cl.get("show") == "5"
    assert xdpex_of(bad_pkt) is None
    # Without the heuristic, only the port preference brings it back, malformed or not.
    off = ("--disable-heuristic", "xdpex_udp")
    assert [xdpex_of(p) for p in tshark_pdml(pcap, *off)] == [None, None]
    moved = tshark_pdml(pcap, *off, "-o", "xdpex.port:9100")
    assert all(xdpex_of(p) is not None for p in moved)
    errs = [
        f.get("name") for f in moved[1].iter("field") if f.get("name", "").startswith("xdpex.perr")
    ]
    assert errs == ["xdpex.perr.length"]
