"""traffic/wireshark/xdpex_feed.lua under the real tshark, against the feed's golden vectors.

Every golden packet is written to a pcap with scapy (UDP to port 9400), tshark decodes it with the
Lua dissector to PDML, and the header and every message field must equal the vector's value, enum
fields showing feed.h's names (from the codec's enums). Malformed packets must carry feed.h's error
as expert info with its exact text. The rewind request vector goes to port 9401 and must dissect
as a request; the order protocol's dissector loaded beside it must not change a thing.
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
from xdpex_proto import feed
from xdpex_proto.feed_golden import Vector, load_vectors

TOP = Path(__file__).resolve().parent.parent
LUA = TOP / "traffic" / "wireshark" / "xdpex_feed.lua"
ORDER_LUA = TOP / "traffic" / "wireshark" / "xdpex.lua"
VECTORS = load_vectors()
ENUMS: dict[str, dict[int, str]] = {
    "type": {m.value: m.name for m in feed.MsgType},
    "side": {m.value: m.name for m in feed.Side},
    "event": {m.value: m.name for m in feed.SysEvent},
    "state": {m.value: m.name for m in feed.SymbolStateCode},
    "status": {m.value: m.name for m in feed.SnapStatus},
}


def pdml(pcap: Path, *scripts: Path) -> list[ET.Element]:
    if shutil.which("tshark") is None:
        pytest.fail("tshark is missing: provisioning/setup.sh installs it")
    argv = ["tshark"]
    for s in scripts or (LUA,):
        argv += ["-X", f"lua_script:{s}"]
    r = subprocess.run([*argv, "-r", str(pcap), "-T", "pdml"], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, LC_ALL="C"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Lua: Error" not in r.stderr, r.stderr
    return ET.fromstring(r.stdout).findall("packet")


def write(path: Path, vectors: list[Vector], dport: int = 9400) -> None:
    wrpcap(str(path), [Ether() / IP(src="10.77.0.1", dst="239.77.0.1")
                       / UDP(sport=40000, dport=dport) / Raw(v.data) for v in vectors])  # fmt: skip


def proto_of(pkt: ET.Element) -> ET.Element:
    p = pkt.find("proto[@name='xdpexfeed']")
    assert p is not None, "not dissected as xdpexfeed"
    return p


def test_every_packet_vector_dissects_field_for_field(tmp_path: Path) -> None:
    vectors = [v for v in VECTORS if v.kind == "PACKET" and not v.malformed]
    write(tmp_path / "g.pcap", vectors)
    packets = pdml(tmp_path / "g.pcap")
    assert len(packets) == len(vectors)
    checked = 0
    for v, pkt in zip(vectors, packets, strict=True):
        proto = proto_of(pkt)
        assert proto.find(".//field[@name='_ws.expert']") is None, f"{v.name}: flagged malformed"
        assert v.hdr is not None
        sess = proto.find(".//field[@name='xdpexfeed.mold.session']")
        assert sess is not None and sess.get("show", "").rstrip() == v.hdr["session"], v.name
        for key in ("seq", "count"):
            got = proto.find(f".//field[@name='xdpexfeed.mold.{key}']")
            assert got is not None and int(got.get("show", ""), 0) == v.hdr[key], f"{v.name} {key}"
        msgs = proto.findall("field[@name='xdpexfeed.msg']")
        assert len(msgs) == len(v.msgs), v.name
        for i, (want, got_msg) in enumerate(zip(v.msgs, msgs, strict=True)):
            shown = {f.get("name", "")[10:]: f for f in got_msg.findall("field")}
            assert set(shown) - {"msg_seq"} == set(want), f"{v.name} msg[{i}]"
            assert int(shown["msg_seq"].get("show", "")) == int(v.hdr["seq"]) + i
            for key, value in want.items():
                if key == "type":
                    value = feed.MsgType[str(value)].value
                got = int(shown[key].get("show", ""), 0)
                assert got == value, f"{v.name} msg[{i}].{key}: {got} != {value}"
                if key in ENUMS and got in ENUMS[key]:
                    label = re.search(r": (\S+) \(", shown[key].get("showname", ""))
                    assert label and label.group(1) == ENUMS[key][got], shown[key].get("showname")
                checked += 1
    assert checked > 250


def test_malformed_packets_carry_feed_h_error_text(tmp_path: Path) -> None:
    vectors = [v for v in VECTORS if v.malformed and v.data]  # UDP with no payload: no subdissector
    write(tmp_path / "m.pcap", vectors)
    packets = pdml(tmp_path / "m.pcap")
    assert len(packets) == len(vectors) >= 15
    for v, pkt in zip(vectors, packets, strict=True):
        errs = [f for f in proto_of(pkt).findall(".//field[@name='_ws.expert']/field")
                if f.get("name", "").startswith("xdpexfeed.perr.")]  # fmt: skip
        assert len(errs) == 1, v.name
        code = "XF_PERR_" + errs[0].get("name", "")[len("xdpexfeed.perr.") :].upper()
        assert code == v.error, v.name
        assert errs[0].get("showname") == v.text, v.name


def test_rewind_request_and_the_order_dissector_alongside(tmp_path: Path) -> None:
    req = next(v for v in VECTORS if v.kind == "REQUEST")
    write(tmp_path / "r.pcap", [req], dport=9401)
    (pkt,) = pdml(tmp_path / "r.pcap", LUA, ORDER_LUA)
    proto = proto_of(pkt)
    assert req.hdr is not None
    for key in ("seq", "count"):
        f = proto.find(f"field[@name='xdpexfeed.req.{key}']")
        assert f is not None and int(f.get("show", "")) == req.hdr[key]
    assert pkt.find("proto[@name='xdpex']") is None
