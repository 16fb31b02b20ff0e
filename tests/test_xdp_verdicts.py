"""Verdict table for the gateway's frame checks (xdp/xdpex_check.h), run twice: in the kernel,
as the XDP program xdp_steer under BPF_PROG_TEST_RUN, and in user space, as the filter the DPDK
backend runs (xdp/xdpex_filter.c, the same checks over plain-memory state).

No interface is involved: build/xdp/xdpex-xdp `testrun` loads xdp_steer, configures it (ports,
allowlist, rate, session bindings), runs every packet read from stdin through the real program and
prints the verdict and the summed per-CPU counters after each packet; `usertest` does the same
through the user-space filter. Packets are built with the scapy layers of xdpex_traffic. Each row
states the packet, the expected verdict and the one reason counter that must move (besides
rx_cnt); every other counter must stay where it was.

Without an interface, bpf_redirect_map() finds no AF_XDP socket in xsks_map, so a valid datagram
comes back as XDP_PASS counted in no_sock_cnt (the fallback that keeps kernel-UDP mode working);
`usertest` answers a valid datagram the same way, having no dataplane behind it either.
XDP_REDIRECT with a real socket is covered by the dataplane's end-to-end tests.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw
from xdpex_traffic.scapy_layers import XE, XELogin, XENewOrder

TOP = Path(__file__).resolve().parents[1]
TOOL = TOP / "build" / "xdp" / "xdpex-xdp"
COUNTERS = [
    "rx_cnt", "redirect_cnt", "no_sock_cnt", "not_ours_cnt", "truncated_cnt", "bad_magic_cnt",
    "bad_version_cnt", "bad_count_cnt", "bad_length_cnt", "bad_session_cnt", "fragment_cnt",
    "not_allowed_cnt", "spoofed_cnt", "rate_limit_cnt", "bad_flags_cnt", "bad_seq_cnt",
]  # fmt: skip

CLIENT = "10.1.0.1"
GATEWAY = "10.1.0.2"
STRANGER = "192.0.2.7"
CPORT = 40000
PASS, DROP = "XDP_PASS", "XDP_DROP"


@pytest.fixture(scope="module", autouse=True)
def tool() -> Path:
    """The built tool and root: missing either is a failure, never a skip."""
    if not TOOL.is_file():
        pytest.fail(f"{TOOL} is missing: run `make build` first (xdp/build.mk builds it)")
    if os.geteuid() != 0:
        pytest.fail("xdp_steer tests load BPF programs and need root")
    return TOOL


def order(n: int = 1) -> list[Packet]:
    return [
        XENewOrder(side=1, ord_type=1, tif=2, symbol_id=1, cl_ord_id=100 + i, price=1000, qty=5)
        for i in range(n)
    ]


def xe(n: int = 1, session: int = 7, **kw: Any) -> XE:
    return XE(session_id=session, seq=1, messages=order(n), **kw)


def udp4(
    payload: Packet | bytes,
    src: str = CLIENT,
    sport: int = CPORT,
    dport: int = 9000,
    vlan: int | None = None,
    **ip: Any,
) -> bytes:
    l3 = IP(src=src, dst=GATEWAY, **ip) / UDP(sport=sport, dport=dport) / payload
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    return bytes(eth / Dot1Q(vlan=vlan) / l3 if vlan is not None else eth / l3)


@pytest.fixture(params=["testrun", "usertest"], ids=["kernel", "userspace"])
def runner(request: pytest.FixtureRequest) -> str:
    """The xdpex-xdp subcommand that runs the checks: in the kernel or in user space."""
    return str(request.param)


def run(runner: str, packets: list[bytes], *opts: str) -> list[dict]:
    """Run `packets` through one fresh instance of the checks; one result dict per packet."""
    stdin = "".join(p.hex() + "\n" for p in packets)
    proc = subprocess.run(
        [str(TOOL), runner, *opts], input=stdin, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"xdpex-xdp {runner} {opts} failed: {proc.stderr}"
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(packets), proc.stdout
    return results


@dataclass
class Row:
    desc: str
    packet: bytes
    verdict: str
    reason: str  # the counter that must move by one besides rx_cnt


@dataclass
class Table:
    opts: list[str]
    rows: list[Row] = field(default_factory=list)


def check_table(runner: str, table: Table) -> None:
    results = run(runner, [r.packet for r in table.rows], *table.opts)
    before = dict.fromkeys(COUNTERS, 0)
    for row, res in zip(table.rows, results, strict=True):
        after = res["counters"]
        assert list(after) == COUNTERS
        delta = {k: after[k] - before[k] for k in COUNTERS if after[k] != before[k]}
        assert (res["verdict"], delta) == (row.verdict, {"rx_cnt": 1, row.reason: 1}), row.desc
        assert after["rx_cnt"] == sum(v for k, v in after.items() if k != "rx_cnt"), row.desc
        before = after


def login() -> XE:
    return XE(session_id=7, seq=0, messages=[XELogin(session_id=7, next_seq=0, nonce=1)])


def truncated(pkt: bytes, cut: int) -> bytes:
    return pkt[:-cut]


BASIC = Table(
    opts=[],
    rows=[
        Row("valid, one NewOrder", udp4(xe(1)), PASS, "no_sock_cnt"),
        Row("valid, batch of 22", udp4(xe(22)), PASS, "no_sock_cnt"),
        Row("valid Login (session datagram, seq 0)", udp4(login()), PASS, "no_sock_cnt"),
        Row("valid with IPv4 options (IHL 6)", udp4(xe(1), options=[IPOption_NOP()] * 4), PASS,
            "no_sock_cnt"),
        Row("valid, 802.1Q tagged", udp4(xe(3), vlan=42), PASS, "no_sock_cnt"),
        Row("bad magic, 802.1Q tagged", udp4(xe(1, magic=0x4559), vlan=42), DROP,
            "bad_magic_cnt"),
        Row("two VLAN tags are not ours",
            bytes(Ether() / Dot1Q(vlan=1) / Dot1Q(vlan=2) / IP(dst=GATEWAY) / UDP(dport=9000)
                  / xe(1)), PASS, "not_ours_cnt"),
        Row("bad magic", udp4(xe(1, magic=0x5845)), DROP, "bad_magic_cnt"),
        Row("bad version 2", udp4(xe(1, version=2)), DROP, "bad_version_cnt"),
        Row("bad version 0", udp4(xe(1, version=0)), DROP, "bad_version_cnt"),
        Row("header length < UDP payload", udp4(xe(2, length=24 + 64)), DROP, "bad_length_cnt"),
        Row("header length > UDP payload", udp4(xe(1, length=24 + 128)), DROP,
            "bad_length_cnt"),
        Row("count 2 but one message (count x 64 mismatch)", udp4(xe(1, count=2)), DROP,
            "bad_length_cnt"),
        Row("payload not a multiple of 64", udp4(bytes(xe(1)) + b"\0" * 10), DROP,
            "bad_length_cnt"),
        Row("count 0", udp4(XE(session_id=7, seq=1, messages=[])), DROP, "bad_count_cnt"),
        Row("count 23", udp4(xe(23)), DROP, "bad_count_cnt"),
        Row("session id 0", udp4(xe(1, session=0)), DROP, "bad_session_cnt"),
        # What parse.h refuses at the header level never reaches the dataplane (fuzz/bpfdiff.c):
        Row("unknown flag bit 0x08", udp4(xe(1, flags=0x08)), DROP, "bad_flags_cnt"),
        Row("FROM_GW from a client", udp4(xe(1, flags=0x04)), DROP, "bad_flags_cnt"),
        Row("RETRANSMIT from a client", udp4(xe(1, flags=0x01)), DROP, "bad_flags_cnt"),
        Row("seq + count - 1 wraps", udp4(XE(session_id=7, seq=2**64 - 1, messages=order(2))),
            DROP, "bad_seq_cnt"),
        Row("seq 2^64 - 1, one message", udp4(XE(session_id=7, seq=2**64 - 1,
                                                 messages=order(1))), PASS, "no_sock_cnt"),
        Row("frame cut inside the messages", truncated(udp4(xe(2)), 70), DROP,
            "truncated_cnt"),
        Row("UDP payload shorter than the header", udp4(bytes(xe(1))[:20]), DROP,
            "truncated_cnt"),
        Row("UDP length beyond the IP total length",
            udp4(xe(1))[:16] + (20 + 8 + 24).to_bytes(2, "big") + udp4(xe(1))[18:], DROP,
            "truncated_cnt"),
        Row("wrong UDP port 9001", udp4(xe(1), dport=9001), PASS, "not_ours_cnt"),
        Row("TCP to port 9000", bytes(Ether() / IP(dst=GATEWAY) / TCP(dport=9000) / bytes(xe(1))),
            PASS, "not_ours_cnt"),
        Row("ICMP echo", bytes(Ether() / IP(dst=GATEWAY) / ICMP()), PASS, "not_ours_cnt"),
        Row("IPv6 UDP to 9000", bytes(Ether() / IPv6(dst="fd00::2") / UDP(dport=9000) / xe(1)),
            PASS, "not_ours_cnt"),
        Row("ARP request", bytes(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=GATEWAY)), PASS,
            "not_ours_cnt"),
        Row("IPv4 EtherType, no IP header", bytes(Ether(type=0x0800)), PASS, "not_ours_cnt"),
        Row("IPv4 header cut short", udp4(xe(1))[:14 + 12], PASS, "not_ours_cnt"),
        Row("first fragment (MF) to 9000", udp4(xe(1), flags="MF"), DROP, "fragment_cnt"),
        Row("later fragment (offset 64)", bytes(Ether() / IP(dst=GATEWAY, proto=17, frag=8)
                                                / Raw(b"\0" * 64)), DROP, "fragment_cnt"),
        Row("last fragment (offset, no MF)", bytes(Ether() / IP(dst=GATEWAY, proto=17, frag=3)
                                                   / Raw(b"\0" * 40)), DROP, "fragment_cnt"),
        Row("first fragment to another port", udp4(xe(1), dport=53, flags="MF"), PASS,
            "not_ours_cnt"),
        Row("later TCP fragment", bytes(Ether() / IP(dst=GATEWAY, proto=6, frag=8)
                                        / Raw(b"\0" * 64)), PASS, "not_ours_cnt"),
    ],
)  # fmt: skip


def test_basic_verdicts(runner: str) -> None:
    check_table(runner, BASIC)


def test_later_fragments_pass_when_configured(runner: str) -> None:
    check_table(runner, Table(opts=["--pass-frags"], rows=[
        Row("later fragment with --pass-frags", bytes(Ether() / IP(dst=GATEWAY, proto=17, frag=8)
                                                      / Raw(b"\0" * 64)), PASS, "not_ours_cnt"),
        Row("first fragment to 9000 still dropped", udp4(xe(1), flags="MF"), DROP,
            "fragment_cnt"),
    ]))  # fmt: skip


def test_configured_ports(runner: str) -> None:
    check_table(runner, Table(opts=["--port", "9100", "--port", "9200"], rows=[
        Row("9100 is ours", udp4(xe(1), dport=9100), PASS, "no_sock_cnt"),
        Row("9200 is ours, bad magic", udp4(xe(1, magic=1), dport=9200), DROP, "bad_magic_cnt"),
        Row("9000 is no longer ours", udp4(xe(1, magic=1), dport=9000), PASS, "not_ours_cnt"),
    ]))  # fmt: skip


def test_allowlist(runner: str) -> None:
    check_table(runner, Table(opts=["--allow", "10.1.0.0/24", "--allow", "198.51.100.9"], rows=[
        Row("allowed source in a /24", udp4(xe(1)), PASS, "no_sock_cnt"),
        Row("allowed /32 source", udp4(xe(1), src="198.51.100.9"), PASS, "no_sock_cnt"),
        Row("disallowed source", udp4(xe(1), src=STRANGER), DROP, "not_allowed_cnt"),
        Row("neighbour of the /32", udp4(xe(1), src="198.51.100.10"), DROP, "not_allowed_cnt"),
        Row("disallowed source, not ours: kernel decides", udp4(xe(1), src=STRANGER, dport=22),
            PASS, "not_ours_cnt"),
        Row("disallowed and malformed: malformed wins", udp4(xe(1, magic=1), src=STRANGER),
            DROP, "bad_magic_cnt"),
    ]))  # fmt: skip


def test_rate_limit_per_source(runner: str) -> None:
    # 1 datagram/s with a burst of 3: the 4th back-to-back datagram of a source is over the rate;
    # another source has its own bucket. Malformed datagrams do not consume tokens.
    check_table(runner, Table(opts=["--pps", "1", "--burst", "3"], rows=[
        Row("burst 1/3", udp4(xe(1)), PASS, "no_sock_cnt"),
        Row("malformed, not charged", udp4(xe(1, version=9)), DROP, "bad_version_cnt"),
        Row("burst 2/3", udp4(xe(1)), PASS, "no_sock_cnt"),
        Row("burst 3/3", udp4(xe(22)), PASS, "no_sock_cnt"),
        Row("over the rate", udp4(xe(1)), DROP, "rate_limit_cnt"),
        Row("still over the rate", udp4(login()), DROP, "rate_limit_cnt"),
        Row("another source has its own bucket", udp4(xe(1), src="10.1.0.3"), PASS,
            "no_sock_cnt"),
    ]))  # fmt: skip


def test_unlimited_rate(runner: str) -> None:
    check_table(runner, Table(opts=["--pps", "0"], rows=[
        Row(f"unlimited {i}", udp4(xe(1)), PASS, "no_sock_cnt") for i in range(10)
    ]))  # fmt: skip


def test_session_binding(runner: str) -> None:
    check_table(runner, Table(opts=["--bind", f"7={CLIENT}:{CPORT}"], rows=[
        Row("bound session from its address", udp4(xe(1)), PASS, "no_sock_cnt"),
        Row("bound session from another IP", udp4(xe(1), src="10.1.0.66"), DROP, "spoofed_cnt"),
        Row("bound session from another port", udp4(xe(1), sport=CPORT + 1), DROP,
            "spoofed_cnt"),
        Row("unbound session 8 from anywhere (Login can happen)",
            udp4(xe(1, session=8), src="10.1.0.66"), PASS, "no_sock_cnt"),
    ]))  # fmt: skip


def test_checks_in_order_allowlist_before_binding_before_rate(runner: str) -> None:
    opts = ["--allow", "10.1.0.0/16", "--bind", f"7={CLIENT}:{CPORT}", "--pps", "1", "--burst", "1"]
    check_table(runner, Table(opts=opts, rows=[
        Row("outside the allowlist and spoofing", udp4(xe(1), src=STRANGER), DROP,
            "not_allowed_cnt"),
        Row("spoofing from inside the allowlist", udp4(xe(1), src="10.1.9.9"), DROP,
            "spoofed_cnt"),
        Row("the real client", udp4(xe(1)), PASS, "no_sock_cnt"),
        Row("the real client, over the rate", udp4(xe(1)), DROP, "rate_limit_cnt"),
        Row("spoofer again: not charged to the client", udp4(xe(1), src="10.1.9.9"), DROP,
            "spoofed_cnt"),
    ]))  # fmt: skip


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (["--allow", "10.1.0.1/24"], "host bits set"),
        (["--allow", "10.1.0.0/33"], "--allow 10.1.0.0/33"),
        (["--allow", "not-an-ip"], "--allow not-an-ip"),
        (["--pps", "-1"], "--pps -1"),
        (["--pps", "5", "--burst", "0"], "--burst 0"),
        (["--bind", "0=10.1.0.1:40000"], "--bind 0=10.1.0.1:40000"),
        (["--bind", "7=10.1.0.1"], "--bind 7=10.1.0.1"),
        (["--port", "0"], "--port 0"),
        (["--port", "1"] * 9, "at most 8 ports"),
    ],
)
def test_bad_options_name_the_field(runner: str, opts: list[str], message: str) -> None:
    proc = subprocess.run(
        [str(TOOL), runner, *opts], input="", capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert message in proc.stderr


def test_bad_hex_input_is_refused_with_its_line(runner: str) -> None:
    proc = subprocess.run(
        [str(TOOL), runner],
        input=udp4(xe(1)).hex() + "\n\nzz\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert len(proc.stdout.splitlines()) == 1
    assert "stdin line 3: not a hex packet" in proc.stderr
