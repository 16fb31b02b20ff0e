"""`xdpex pcap capture|dissect` on a real lab: two namespaces and a veth pair (xdpex_traffic.lab,
unique prefix per run), datagrams sent over the veth from both ends, captured on the gateway's
veth with tcpdump inside its namespace and dissected back one message a line.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dataplane_support import lab_up
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap
from xdpex_proto import codec
from xdpex_proto.golden import load_vectors
from xdpex_traffic.lab import Lab
from xdpex_traffic.pcap import Captured, PcapError, capture, capture_point
from xdpex_traffic.wire import Gateway, run_loadgen

TOP = Path(__file__).resolve().parent.parent
XDPEX = [sys.executable, "-m", "xdpex.cli"]

# Sent from inside a namespace: N datagrams of 3 NewOrders (client side) or 1 Accepted (gateway).
SENDER = """
import socket, sys
from xdpex_proto import codec
side, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if side == "tg":
    s.bind(("10.77.0.2", 40000))
    for k in range(n):
        msgs = [codec.NewOrder(side=1 + i % 2, ord_type=1, tif=2, symbol_id=7,
                               cl_ord_id=1 + 3 * k + i, price=100, qty=5) for i in range(3)]
        s.sendto(codec.encode_datagram(42, 1 + 3 * k, msgs), ("10.77.0.1", 9000))
else:
    s.bind(("10.77.0.1", 9000))
    for k in range(n):
        acc = codec.Accepted(side=1, ord_type=1, tif=2, symbol_id=7, cl_ord_id=1 + k,
                             order_id=500 + k, price=100, qty=5)
        s.sendto(codec.encode_datagram(42, 1 + k, [acc], codec.F_FROM_GW), ("10.77.0.2", 40000))
"""


@pytest.fixture
def lab() -> Iterator[Lab]:
    with lab_up("xpc") as lab:
        yield lab


def send(lab: Lab, side: str, n: int) -> None:
    ns = lab.tg_ns if side == "tg" else lab.gw_ns
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, side, str(n)],
                   check=True, timeout=60)  # fmt: skip


def test_capture_both_directions_and_dissect(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "run.pcap"
    listening = threading.Event()
    result: dict[str, Captured] = {}

    def cap() -> None:
        result["n"] = capture(out, lab.gw_ns, lab.gw_if, count=15, seconds=30,
                              ready=listening.set)  # fmt: skip

    t = threading.Thread(target=cap)
    t.start()
    assert listening.wait(20), "tcpdump did not start listening"
    send(lab, "tg", 10)
    send(lab, "gw", 5)
    t.join(40)
    assert not t.is_alive()
    assert result["n"] == Captured(15, 0)  # bounded by --count: stops as soon as 15 are in

    r = subprocess.run([*XDPEX, "pcap", "dissect", str(out)], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 10 * 3 + 5
    assert "15 datagrams, 35 messages, 0 malformed, 0 other packets" in r.stderr
    orders = [ln for ln in lines if " NEW_ORDER " in ln]
    answers = [ln for ln in lines if " ACCEPTED " in ln]
    assert len(orders) == 30 and len(answers) == 5
    for j, ln in enumerate(orders):
        assert "10.77.0.2:40000 > 10.77.0.1:9000 cl>gw session=42" in ln
        assert f" seq={1 + j} NEW_ORDER side={'BUY' if j % 3 % 2 == 0 else 'SELL'} " in ln
        assert f" cl_ord_id={1 + j} price=100 qty=5 " in ln and "tif=GTC" in ln
    for k, ln in enumerate(answers):
        assert "10.77.0.1:9000 > 10.77.0.2:40000 gw>cl session=42" in ln
        assert f" seq={1 + k} ACCEPTED " in ln and f" order_id={500 + k} " in ln


def test_capture_stops_at_seconds_without_traffic(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "idle.pcap"
    t0 = time.monotonic()
    r = subprocess.run([*XDPEX, "pcap", "capture", "--prefix", lab.prefix, "--seconds", "1",
                        "-o", str(out)], capture_output=True, text=True, timeout=60)  # fmt: skip
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"0 packets captured into {out}"
    assert r.stderr.splitlines()[1] == "listening"  # printed once tcpdump records
    assert 1 <= took < 15
    assert out.exists()


def test_capture_errors_are_specific(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(PcapError, match="namespace nosuch-gw does not exist"):
        capture(tmp_path / "x.pcap", "nosuch-gw", "xe-gw0")
    with pytest.raises(PcapError, match=f"interface nope0 does not exist in namespace {lab.gw_ns}"):
        capture(tmp_path / "x.pcap", lab.gw_ns, "nope0")
    with pytest.raises(PcapError, match="--count must be >= 1"):
        capture(tmp_path / "x.pcap", lab.gw_ns, lab.gw_if, count=0)


def test_dissect_golden_vectors_and_malformed(tmp_path: Path) -> None:
    vectors = [v for v in load_vectors() if v.data]
    pkts = []
    for v in vectors:
        sport, dport = {"TO_GW": (40000, 9000), "FROM_GW": (9000, 40000)}.get(v.dir, (9000, 9000))
        ip = IP(src="10.77.0.2", dst="10.77.0.1")
        pkts.append(Ether() / ip / UDP(sport=sport, dport=dport) / Raw(v.data))
    pkts.append(Ether() / IP() / UDP(sport=53, dport=53) / Raw(b"dns"))  # not ours: skipped
    pcap = tmp_path / "golden.pcap"
    wrpcap(str(pcap), pkts)
    r = subprocess.run([*XDPEX, "pcap", "dissect", str(pcap)], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    good = [v for v in vectors if not v.malformed]
    bad = [v for v in vectors if v.malformed]
    assert len(lines) == sum(len(v.msgs) for v in good) + len(bad)
    malformed = [ln.split(" MALFORMED ", 1)[1] for ln in lines if " MALFORMED " in ln]
    assert malformed == [v.text for v in bad]
    assert f"{len(vectors)} datagrams" in r.stderr and "1 other packets" in r.stderr
    # Every message line names its type and carries every field the golden vector lists.
    msg_lines = iter(ln for ln in lines if " MALFORMED " not in ln)
    for v in good:
        for m in v.msgs:
            ln = next(msg_lines)
            assert f" {m['type']} " in ln
            for key, want in m.items():
                if key in ("type", "ref_type") or isinstance(want, bytes):
                    continue
                assert f" {key}=" in ln, (v.name, key, ln)
    # --limit stops early.
    r = subprocess.run([*XDPEX, "pcap", "dissect", str(pcap), "--limit", "3"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert len(r.stdout.splitlines()) == 3


def test_dissect_other_port_and_bad_file(tmp_path: Path) -> None:
    dg = codec.encode_datagram(9, 4, [codec.Cancel(symbol_id=2, orig_cl_ord_id=77)])
    pcap = tmp_path / "p.pcap"
    wrpcap(str(pcap), [Ether() / IP() / UDP(sport=41000, dport=9100) / Raw(dg)])
    r = subprocess.run([*XDPEX, "pcap", "dissect", str(pcap), "--port", "9100"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "cl>gw session=9 seq=4 CANCEL symbol_id=2 orig_cl_ord_id=77" in r.stdout
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture")
    r = subprocess.run([*XDPEX, "pcap", "dissect", str(junk)], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 1
    assert f"xdpex pcap: error: {junk}: cannot read as pcap" in r.stderr


@pytest.mark.parametrize("mode", ["udp", "afxdp"])
def test_capture_a_real_gateway_run(lab: Lab, tmp_path: Path, mode: str) -> None:
    # xdpexd in the gateway namespace, xdpex-loadgen in the traffic namespace (as `make run`).
    ns, iface, why = capture_point(lab.prefix, "auto")
    assert (ns, iface) == (lab.gw_ns, lab.gw_if)  # no XDP on the gateway yet
    out = tmp_path / f"{mode}.pcap"
    with Gateway(lab, mode, nsessions=2) as gw:
        ns, iface, why = capture_point(lab.prefix, "auto")
        if mode == "afxdp":
            # Redirected frames never reach a tap on the gateway's veth: capture the other end.
            assert (ns, iface) == (lab.tg_ns, lab.tg_if) and "XDP" in why
        listening, stop = threading.Event(), threading.Event()
        result: dict[str, Captured] = {}

        def cap() -> None:
            result["n"] = capture(out, ns, iface, count=100_000, seconds=60,
                                  ready=listening.set, stop=stop)  # fmt: skip

        t = threading.Thread(target=cap)
        t.start()
        try:
            assert listening.wait(20), "tcpdump did not start listening"
            report = run_loadgen(lab, gw, gw.sessions, ["--count", "300", "--batch", "4",
                                 "--duration", "5", "--window", "64"])  # fmt: skip
            time.sleep(0.3)  # the last answers and logouts reach the tap
        finally:
            stop.set()
            t.join(30)
    assert report["sent"] == 300 and report["answered"] == 300, report
    assert result["n"].dropped == 0 and result["n"].packets > 0, result

    r = subprocess.run([*XDPEX, "pcap", "dissect", str(out)], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    kinds = [ln.split(" seq=", 1)[1].split()[1] for ln in lines if " MALFORMED " not in ln]
    assert not [ln for ln in lines if " MALFORMED " in ln]
    assert kinds.count("LOGIN") == 2 and kinds.count("LOGIN_ACCEPTED") == 2
    # Every order is on the wire once at least (the generator resends what is slow to answer,
    # with the same sequence): 300 distinct (session, sequence) pairs, 1..n per session.
    orders = {
        (ln.split(" session=")[1].split()[0], int(ln.split(" seq=")[1].split()[0]))
        for ln in lines
        if " cl>gw " in ln and (" NEW_ORDER " in ln or " CANCEL " in ln)
    }
    assert len(orders) == 300
    for sid in {s for s, _ in orders}:
        seqs = sorted(q for s, q in orders if s == sid)
        assert seqs == list(range(1, len(seqs) + 1))
    answers = sum(kinds.count(k) for k in ("ACCEPTED", "REJECTED", "CANCELLED"))
    assert answers >= 300 - kinds.count("CANCEL")

    # The Lua dissector reads the same capture without a complaint.
    t = subprocess.run(
        ["tshark", "-X", f"lua_script:{TOP / 'traffic/wireshark/xdpex.lua'}", "-r", str(out),
         "-T", "fields", "-e", "xdpex.type", "-e", "_ws.expert"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert t.returncode == 0, t.stderr
    types = [x for row in t.stdout.splitlines() for x in row.split("\t")[0].split(",") if x]
    assert len(types) == len(kinds)
    assert not [row for row in t.stdout.splitlines() if row.split("\t")[1:] != [""]]
