"""`xdpex pcap`: capture order traffic in the lab and read captures one protocol message a line.

`xdpex pcap capture -o run.pcap` records the order port on the gateway's veth (namespace
`<prefix>-gw`, interface xe-gw0: both directions, as the gateway sees them) with tcpdump inside the
namespace, bounded by --count packets and --seconds; it returns once either is reached.
`xdpex pcap dissect run.pcap` decodes every datagram with the project's scapy layers and prints
one line per message (timestamp, addresses, direction, session, the message's sequence, type and
every field, enums by name); a datagram the gateway would refuse prints one line with parse.h's
reason instead. For Wireshark, traffic/wireshark/xdpex.lua does the same in the GUI.

    xdpex lab up && xdpex pcap capture --count 1000 --seconds 10 -o /tmp/run.pcap &
    make run   # or any traffic through the lab
    xdpex pcap dissect /tmp/run.pcap | head
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import codec
from .lab import DEFAULT_PREFIX, GW_IF

NO_FIELDS = ("type", "body")


class PcapError(RuntimeError):
    """A capture or dissection that cannot go on; the message says what to fix."""


# Capture ------------------------------------------------------------------------------------------


def capture(
    out: Path,
    netns: str | None,
    iface: str,
    port: int = codec.DEFAULT_PORT,
    count: int = 10_000,
    seconds: float = 10.0,
    ready: Callable[[], None] | None = None,
) -> int:
    """Records UDP `port` on `iface` (inside `netns` when given) into `out`; returns the number of
    packets captured. Stops after `count` packets or `seconds`, whichever comes first; `ready` is
    called once tcpdump listens."""
    if count < 1 or seconds <= 0:
        raise PcapError("--count must be >= 1 and --seconds > 0")
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise PcapError("tcpdump is not installed (provisioning/setup.sh installs it)")
    prefix: list[str] = []
    if netns is not None:
        if not Path("/run/netns", netns).exists():
            raise PcapError(f"network namespace {netns} does not exist (run `xdpex lab up`)")
        prefix = ["ip", "netns", "exec", netns]
    probe = subprocess.run([*prefix, "ip", "link", "show", "dev", iface], capture_output=True)
    if probe.returncode != 0:
        where = f" in namespace {netns}" if netns else ""
        raise PcapError(f"interface {iface} does not exist{where}")
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [*prefix, tcpdump, "-i", iface, "-n", "-U", "-s", "0", "-c", str(count),
            "-w", str(out), "udp", "port", str(port)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + seconds
    try:
        # tcpdump says "listening on IFACE" once its socket is open: only then is traffic recorded.
        line = proc.stderr.readline()
        if "listening on" not in line:
            proc.wait(5)
            raise PcapError(f"tcpdump on {iface}: {(line + proc.stderr.read()).strip()}")
        if ready is not None:
            ready()
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # tcpdump flushes the file and reports its counts
            proc.wait(10)
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    m = re.search(r"(\d+) packets? captured", rest)
    if m is None:
        raise PcapError(f"tcpdump on {iface} ended without a count: {rest.strip()}")
    return int(m.group(1))


# Dissect ------------------------------------------------------------------------------------------


@dataclass
class Summary:
    datagrams: int = 0
    messages: int = 0
    malformed: int = 0
    skipped: int = 0


def _field_text(layer: object, fld: object) -> str:
    value = layer.getfieldval(fld.name)  # type: ignore[attr-defined]
    if isinstance(value, bytes):
        return value.hex()
    text = str(fld.i2repr(layer, value))  # type: ignore[attr-defined]
    # Enum fields print as their proto.h name.
    return text.strip("'")


def dissect(path: Path, port: int = codec.DEFAULT_PORT, summary: Summary | None = None
            ) -> Iterator[str]:  # fmt: skip
    """One line per message of every datagram to or from UDP `port` in the capture at `path`."""
    from scapy.error import Scapy_Exception
    from scapy.layers.inet import IP, UDP
    from scapy.utils import PcapReader

    from .scapy_layers import XE, bind_port

    if port != codec.DEFAULT_PORT:
        bind_port(port)
    s = summary if summary is not None else Summary()
    try:
        reader = PcapReader(str(path))
    except (OSError, Scapy_Exception) as e:
        raise PcapError(f"{path}: cannot read as pcap ({e})") from None
    with reader:
        for pkt in reader:
            if UDP not in pkt or port not in (pkt[UDP].sport, pkt[UDP].dport):
                s.skipped += 1
                continue
            ip, udp = pkt[IP] if IP in pkt else None, pkt[UDP]
            src = f"{ip.src}:{udp.sport}" if ip is not None else str(udp.sport)
            dst = f"{ip.dst}:{udp.dport}" if ip is not None else str(udp.dport)
            payload = bytes(udp.payload)
            if udp.sport == port and udp.dport != port:
                direction = codec.Direction.FROM_GW
            elif udp.dport == port and udp.sport != port:
                direction = codec.Direction.TO_GW
            else:
                direction = codec.Direction.AUTO
            head = f"{float(pkt.time):.6f} {src} > {dst}"
            s.datagrams += 1
            try:
                codec.decode_datagram(payload, direction)
            except codec.ProtocolError as e:
                s.malformed += 1
                yield f"{head} MALFORMED {e}"
                continue
            xe = XE(payload)
            arrow = "gw>cl" if int(xe.flags) & codec.F_FROM_GW else "cl>gw"
            marks = "".join(
                f" [{name}]"
                for bit, name in ((codec.F_RETRANSMIT, "RETRANSMIT"), (codec.F_HEARTBEAT, "HB"))
                if int(xe.flags) & bit
            )
            for i, m in enumerate(xe.messages):
                t = int(m.type)
                seq = "-" if xe.seq == 0 else str(xe.seq + i)
                fields = " ".join(
                    f"{f.name}={_field_text(m, f)}"
                    for f in m.fields_desc
                    if f.name not in NO_FIELDS and not f.name.startswith("pad")
                )
                s.messages += 1
                yield (f"{head} {arrow} session={xe.session_id} seq={seq}{marks} "
                       f"{codec.msg_type_name(t)} {fields}")  # fmt: skip


# Command line -------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = sub.add_parser("capture", help="record the order port on the lab gateway's veth")
    c.add_argument("-o", "--output", type=Path, required=True, help="pcap file to write")
    c.add_argument("--prefix", default=DEFAULT_PREFIX, help="lab prefix (namespace <prefix>-gw)")
    c.add_argument("--netns", help="namespace to capture in (default <prefix>-gw; '' = none)")
    c.add_argument("--iface", default=GW_IF, help=f"interface (default {GW_IF})")
    c.add_argument("--port", type=int, default=codec.DEFAULT_PORT)
    c.add_argument("--count", type=int, default=10_000, help="stop after this many packets")
    c.add_argument("--seconds", type=float, default=10.0, help="stop after this long")
    d = sub.add_parser("dissect", help="one line per protocol message of a pcap")
    d.add_argument("pcap", type=Path)
    d.add_argument("--port", type=int, default=codec.DEFAULT_PORT)
    d.add_argument("--limit", type=int, default=0, help="stop after this many lines (0 = all)")


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        print(f"xdpex pcap: error: --port {args.port}, expected 1..65535", file=sys.stderr)
        return 2
    try:
        if args.action == "capture":
            ns = f"{args.prefix}-gw" if args.netns is None else (args.netns or None)
            where = f"{ns}/{args.iface}" if ns else args.iface
            limits = f"at most {args.count} packets, {args.seconds:g} s"
            print(f"capturing UDP {args.port} on {where} into {args.output} ({limits})",
                  file=sys.stderr)  # fmt: skip
            n = capture(args.output, ns, args.iface, args.port, args.count, args.seconds)
            print(f"{n} packets captured into {args.output}")
            return 0
        s = Summary()
        for n, line in enumerate(dissect(args.pcap, args.port, s), 1):
            print(line)
            if args.limit and n >= args.limit:
                break
        print(f"{s.datagrams} datagrams, {s.messages} messages, {s.malformed} malformed, "
              f"{s.skipped} other packets", file=sys.stderr)  # fmt: skip
        return 0
    except PcapError as e:
        print(f"xdpex pcap: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `| head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
