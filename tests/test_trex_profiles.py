"""The TRex STL profiles in traffic/trex, loaded by TRex's own client library without a server.

traffic/trex/run.py --dry-run loads a profile with STLProfile.load_py (in its own process: TRex's
bundled scapy 2.4.3 shadows the project's there) and prints STLProfile.to_json(). The test decodes
each stream's packet with the project's scapy layers and codec, then plays the stream's field
engine forward (flow variables with TRex's documented `inc` semantics: first packet = init_value,
past max_value back to min_value) and checks every generated datagram is the next valid step of
its session: hdr.seq advances by the message count, order ids are the messages' own sequences,
cancels name the orders before them, symbols rotate through 1..S and sides alternate.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from xdpex_proto import codec
from xdpex_traffic.scapy_layers import XE

TOP = Path(__file__).resolve().parent.parent
TREX = TOP / "traffic" / "trex"
RUN = TREX / "run.py"
PROFILES = sorted(p.name for p in TREX.glob("*.py") if "register" in p.read_text())


def dry_run(profile: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), "--dry-run", "--profile", str(TREX / profile), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def load(profile: str, *args: str) -> list[dict[str, Any]]:
    r = dry_run(profile, *args)
    assert r.returncode == 0, r.stderr
    streams: list[dict[str, Any]] = json.loads(r.stdout)
    return streams


def play(stream: dict[str, Any], steps: int) -> list[bytes]:
    """The first `steps` packets the stream's field engine produces."""
    base = base64.b64decode(stream["packet"]["binary"])
    prog = stream["vm"]["instructions"]
    variables = {i["name"]: i for i in prog if i["type"] == "flow_var"}
    values = {name: v["init_value"] for name, v in variables.items()}
    out = []
    for _ in range(steps):
        pkt = bytearray(base)
        for ins in prog:
            if ins["type"] == "flow_var":
                continue
            assert ins["type"] == "write_flow_var", f"unexpected VM instruction {ins['type']}"
            size = variables[ins["name"]]["size"]
            value = (values[ins["name"]] + ins["add_value"]) % (1 << (8 * size))
            order = "big" if ins["is_big_endian"] else "little"
            off = ins["pkt_offset"]
            pkt[off : off + size] = value.to_bytes(size, order)
        out.append(bytes(pkt))
        for name, v in variables.items():
            assert v["op"] == "inc" and not v["split_to_cores"], name
            nxt = values[name] + v["step"]
            values[name] = nxt if nxt <= v["max_value"] else v["min_value"]
    return out


def decode(frame: bytes) -> codec.Datagram:
    pkt = Ether(frame)
    assert pkt[IP].dst == "10.77.10.10" and pkt[UDP].dport == 9000
    assert pkt[UDP].chksum == 0  # the payload changes per packet; 0 = not computed
    assert IP(bytes(pkt[IP])).chksum == pkt[IP].chksum  # IP header untouched, checksum valid
    xe = pkt[XE]  # the project's scapy layer, bound to UDP 9000
    dg = codec.decode_datagram(bytes(pkt[UDP].payload), codec.Direction.TO_GW)
    assert xe.seq == dg.seq and len(xe.messages) == len(dg.messages)
    for m_scapy, m in zip(xe.messages, dg.messages, strict=True):
        assert int(m_scapy.type) == int(m.TYPE)
        for f in ("cl_ord_id", "orig_cl_ord_id", "symbol_id", "side"):
            if hasattr(m, f) and f in m_scapy.fields:
                assert m_scapy.getfieldval(f) == getattr(m, f)
    return dg


def test_every_profile_is_found() -> None:
    assert PROFILES == ["order_cancel.py", "orders.py"]


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_serializes_and_base_packets_decode(profile: str) -> None:
    streams = load(profile, "--sessions", "3", "--first-session", "70", "--orders", "4",
                   "--rate", "90000", "--start-seq", "5,1,1000", "--count", "500",
                   "--cores", "2")  # fmt: skip
    assert len(streams) == 3
    for i, s in enumerate(streams):
        assert s["mode"] == {"rate": {"type": "pps", "value": 30000.0}, "type": "single_burst",
                             "total_pkts": 500}  # fmt: skip
        assert s["core_id"] == i % 2
        dg = decode(base64.b64decode(s["packet"]["binary"]))
        assert dg.session_id == 70 + i
        assert dg.seq == [5, 1, 1000][i]
        assert len(dg.messages) == 4
        assert Ether(base64.b64decode(s["packet"]["binary"]))[UDP].sport == 40000 + i


@pytest.mark.parametrize("orders", [1, 3, 22])
def test_orders_field_engine_makes_valid_sessions(orders: int) -> None:
    (s,) = load("orders.py", "--orders", str(orders), "--symbols", "5", "--start-seq", "11",
                "--price", "-7", "--qty", "3", "--tif", "IOC")  # fmt: skip
    assert s["mode"]["type"] == "continuous"
    seen_symbols: set[int] = set()
    sides: dict[int, list[int]] = {}
    for k, frame in enumerate(play(s, 12)):
        dg = decode(frame)
        assert dg.seq == 11 + k * orders
        for i, m in enumerate(dg.messages):
            assert isinstance(m, codec.NewOrder)
            assert m.cl_ord_id == dg.seq + i  # unique: each order's own sequence
            assert (m.price, m.qty, m.tif, m.ord_type) == (
                -7,
                3,
                codec.Tif.IOC,
                codec.OrdType.LIMIT,
            )
            assert 1 <= m.symbol_id <= 5
            seen_symbols.add(m.symbol_id)
            sides.setdefault(i, []).append(m.side)
    assert seen_symbols == {1, 2, 3, 4, 5}
    for i, seq in sides.items():
        # Each position alternates, starting BUY on even positions and SELL on odd ones.
        first = codec.Side.BUY if i % 2 == 0 else codec.Side.SELL
        assert seq[0] == first and all(a != b for a, b in zip(seq, seq[1:], strict=False))


def test_order_cancel_field_engine_cancels_its_own_orders() -> None:
    (s,) = load("order_cancel.py", "--orders", "6", "--symbols", "2", "--start-seq", "100",
                "--count", "4")  # fmt: skip
    frames = play(s, 5)
    for k, frame in enumerate(frames[:4]):
        dg = decode(frame)
        assert dg.seq == 100 + 6 * k
        news, cancels = dg.messages[:3], dg.messages[3:]
        assert all(isinstance(m, codec.NewOrder) for m in news)
        assert all(isinstance(m, codec.Cancel) for m in cancels)
        for j, (n, c) in enumerate(zip(news, cancels, strict=True)):
            assert n.cl_ord_id == dg.seq + j
            assert c.orig_cl_ord_id == n.cl_ord_id and c.symbol_id == n.symbol_id
    # A burst of --count 4 never wraps inside the burst; the 5th would repeat the first.
    assert decode(frames[4]).seq == 100
    (seq_var,) = [
        i for i in s["vm"]["instructions"] if i["type"] == "flow_var" and i["name"] == "seq"
    ]
    assert (seq_var["min_value"], seq_var["max_value"], seq_var["step"]) == (100, 118, 6)


def test_tunables_as_keywords_and_as_load_py_kwargs() -> None:
    # TRex before 2.89 calls get_streams(direction=..., port_id=..., orders=2, ...); newer ones
    # (and STLProfile.load_py with keyword tunables) pass a list.
    code = (
        "import json, sys, lbr_trex_client\n"
        "from trex.stl.api import STLProfile\n"
        f"sys.path.insert(0, {str(TREX)!r})\n"
        "import orders\n"
        "old = orders.register().get_streams(direction=0, port_id=0, orders=2, sessions=2,\n"
        "                                    first_session=9, start_seq=4)\n"
        f"new = STLProfile.load_py({str(TREX / 'orders.py')!r}, orders=2, sessions=2,\n"
        "                          first_session=9, start_seq=4)\n"
        "print(json.dumps([[s.to_json() for s in old], new.to_json()]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    old, new = json.loads(r.stdout)
    assert old == new
    for streams in (old, new):
        dgs = [decode(base64.b64decode(s["packet"]["binary"])) for s in streams]
        assert [(d.session_id, d.seq, len(d.messages)) for d in dgs] == [(9, 4, 2), (10, 4, 2)]


@pytest.mark.parametrize(
    ("profile", "args", "message"),
    [
        ("orders.py", ["--orders", "23"], "orders: 23, expected 1..22"),
        ("order_cancel.py", ["--orders", "5"], "order_cancel needs an even count"),
        ("orders.py", ["--sessions", "2", "--start-seq", "1,2,3"], "3 values for 2 sessions"),
        ("orders.py", ["--start-seq", "0"], "sequences start at 1"),
        ("orders.py", ["--tif", "GTD"], "invalid choice: 'GTD'"),
        ("orders.py", ["--rate", "0"], "--rate: 0, expected >= 1"),
    ],
)
def test_bad_tunables_name_the_tunable(profile: str, args: list[str], message: str) -> None:
    r = dry_run(profile, *args)
    assert r.returncode == 2
    assert message in r.stderr, r.stderr
