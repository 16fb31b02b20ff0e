"""`xdpex pcap`: capture order traffic in the lab and read captures one protocol message a line.

`xdpex pcap capture -o run.pcap` records the order port of a lab run in both directions with
tcpdump inside a lab namespace, bounded by --count packets and --seconds; it returns once either is
reached. It captures on the gateway's veth (`<prefix>-gw`/xe-gw0) unless that runs an XDP program
(xdpexd in AF_XDP mode: redirected frames never reach a packet tap), then on the traffic end's
(`<prefix>-tg`/xe-tg0), which carries the same datagrams; --side picks one.
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
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from xdpex_proto import codec

from .lab import DEFAULT_PREFIX, GW_IF, TG_IF, Lab

NO_FIELDS = ("type", "body")


class PcapError(RuntimeError):
    """A capture or dissection that cannot go on; the message says what to fix."""


@dataclass(frozen=True)
class Captured:
    """What tcpdump reported: packets written, and packets the kernel dropped before tcpdump
    could read them (the capture is incomplete when that is not 0)."""

    packets: int
    dropped: int


# Capture ------------------------------------------------------------------------------------------


def capture(
    out: Path,
    netns: str | None,
    iface: str,
    port: int = codec.DEFAULT_PORT,
    count: int = 10_000,
    seconds: float = 10.0,
    ready: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
    buffer_kib: int = 32768,
    to_port_only: bool = False,
) -> Captured:
    """Records UDP `port` on `iface` (inside `netns` when given) into `out`. Stops after `count`
    packets, `seconds`, or when `stop` is set, whichever comes first; `ready` is called once
    tcpdump listens. `buffer_kib` is the kernel capture buffer (tcpdump -B); `to_port_only`
    records only datagrams to `port` (the clients' side of a session)."""
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
    # --immediate-mode: hand every packet over at once; without it packets wait in a ring block
    # that a stop before the block's timeout discards uncounted.
    argv = [*prefix, tcpdump, "-i", iface, "-n", "-U", "--immediate-mode", "-s", "0",
            "-B", str(buffer_kib),
            "-c", str(count), "-w", str(out), "udp",
            *(["dst", "port"] if to_port_only else ["port"]), str(port)]  # fmt: skip
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
        while proc.poll() is None:
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                proc.send_signal(signal.SIGINT)  # tcpdump flushes the file and reports its counts
                proc.wait(10)
                break
            time.sleep(0.05)
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    m = re.search(r"(\d+) packets? captured", rest)
    if m is None:
        raise PcapError(f"tcpdump on {iface} ended without a count: {rest.strip()}")
    d = re.search(r"(\d+) packets? dropped by kernel", rest)
    return Captured(int(m.group(1)), int(d.group(1)) if d else 0)


def capture_point(prefix: str, side: str) -> tuple[str, str, str]:
    """(namespace, interface, why) for a lab capture. In AF_XDP mode the XDP program redirects
    the gateway's received frames before any packet tap and AF_XDP transmits bypass it too, so
    tcpdump on the gateway's veth sees nothing; `auto` then captures on the traffic end, where
    the same datagrams pass through the ordinary stack in both directions."""
    lab = Lab(prefix)
    if side == "gw":
        return lab.gw_ns, GW_IF, "gateway end"
    if side == "tg":
        return lab.tg_ns, TG_IF, "traffic end"
    probe = subprocess.run(["ip", "-n", lab.gw_ns, "-j", "link", "show", "dev", GW_IF],
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode == 0 and '"xdp"' in probe.stdout:
        return lab.tg_ns, TG_IF, "traffic end: the gateway's veth runs XDP (AF_XDP mode)"
    return lab.gw_ns, GW_IF, "gateway end"


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
    c.add_argument(
        "--side",
        choices=("auto", "gw", "tg"),
        default="auto",
        help="lab end: gw, tg, or auto = gw unless it runs XDP (AF_XDP mode), then tg",
    )
    c.add_argument("--netns", help="capture in this namespace instead ('' = the host's)")
    c.add_argument("--iface", help="with --netns: the interface")  # fmt: skip
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
            ns: str | None
            if args.netns is None:
                ns, iface, why = capture_point(args.prefix, args.side)
            elif not args.iface:
                raise PcapError("--netns needs --iface")
            else:
                ns, iface, why = args.netns or None, args.iface, "as given"
            where = f"{ns}/{iface}" if ns else iface
            limits = f"at most {args.count} packets, {args.seconds:g} s"
            print(f"capturing UDP {args.port} on {where} ({why}) into {args.output} ({limits})",
                  file=sys.stderr)  # fmt: skip
            got = capture(
                args.output,
                ns,
                iface,
                args.port,
                args.count,
                args.seconds,
                ready=lambda: print("listening", file=sys.stderr, flush=True),
            )
            print(f"{got.packets} packets captured into {args.output}")
            if got.dropped:
                print(f"xdpex pcap: warning: the kernel dropped {got.dropped} packets before "
                      "tcpdump read them; the capture is incomplete (lower the rate)",
                      file=sys.stderr)  # fmt: skip
                return 1
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
