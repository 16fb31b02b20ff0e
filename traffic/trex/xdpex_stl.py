"""Shared part of the xdpex TRex STL profiles (orders.py, order_cancel.py): tunables, packets and
the field engine that makes every datagram a valid next step of its session.

A profile makes one stream per session. The gateway applies a session's inbound messages strictly
in sequence (docs/protocol.md, Sequencing), so each stream carries a field-engine variable `seq`
that starts at the session's next inbound sequence (--start-seq, which the runner takes from
LoginAccepted) and grows by the number of messages a datagram holds; it is written to hdr.seq and,
plus the message's index, to each NewOrder's cl_ord_id (and each Cancel's orig_cl_ord_id), so
order ids never repeat within a session. Symbols rotate through 1..--symbols and sides alternate,
also by field-engine variables. A stream is pinned to one TRex core and its variables are not split
across cores, so its datagrams leave in sequence order.

Sessions must be logged in before the stream starts, from the stream's own source address and
port (the gateway binds a session to the Login's address): traffic/trex/run.py does that and passes
--first-session / --start-seq. The packets themselves are built with the project's scapy layers in
a child process (xdpex_packets.py; TRex's bundled scapy is too old for them). Set XDPEX_PYTHON to
the interpreter that has the project installed when the repository's .venv is not it.

Tunables (TRex console: start -f traffic/trex/orders.py -t rate=100000,orders=16; TRex >= 2.89
passes them as a list: -t --rate 100000 --orders 16):
  --rate PPS total datagrams/s over all sessions     --orders N messages a datagram (1..22)
  --symbols S symbols 1..S                           --sessions K streams/sessions
  --first-session ID, --start-seq SEQ[,SEQ...]       --count N datagrams a session (0 = endless)
  --price TICKS --qty Q --tif DAY|GTC|IOC|FOK        --src/--dst IP, --dport
  --sport PORT of session 1 (+1 per further session)
  --cores C TRex tx cores to spread sessions over    --pg-id ID per-stream flow stats from ID up
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from trex.stl.api import (
    STLFlowStats,
    STLPktBuilder,
    STLScVmRaw,
    STLStream,
    STLTXCont,
    STLTXSingleBurst,
    STLVmFlowVar,
    STLVmWrFlowVar,
)

HERE = Path(__file__).resolve().parent
BUILDER = HERE / "xdpex_packets.py"
TIFS = {"DAY": 1, "GTC": 2, "IOC": 3, "FOK": 4}
U64_MAX = (1 << 64) - 1
NEW_ORDER = 0x02


class TunableError(ValueError):
    """A tunable with a bad value; the message names it."""


def _positive(name: str):
    def conv(text: str) -> int:
        try:
            v = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name}: {text!r} is not a whole number") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"--{name}: {v}, expected >= 1")
        return v

    return conv


def tunables_parser(prog: str, defaults: dict[str, Any]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--rate", type=_positive("rate"), default=defaults.get("rate", 10_000))
    p.add_argument("--orders", type=_positive("orders"), default=defaults.get("orders", 16))
    p.add_argument("--symbols", type=_positive("symbols"), default=1)
    p.add_argument("--sessions", type=_positive("sessions"), default=1)
    p.add_argument("--first-session", type=_positive("first-session"), default=1)
    p.add_argument("--start-seq", default="1", help="one value, or one per session")
    p.add_argument("--count", type=int, default=0, help="datagrams per session, 0 = endless")
    p.add_argument("--price", type=int, default=10_000)
    p.add_argument("--qty", type=_positive("qty"), default=1)
    p.add_argument("--tif", choices=sorted(TIFS), default="DAY")
    p.add_argument("--src", default="10.77.10.20")
    p.add_argument("--dst", default="10.77.10.10")
    p.add_argument("--sport", type=_positive("sport"), default=40000)
    p.add_argument("--dport", type=_positive("dport"), default=9000)
    p.add_argument("--src-mac", default="02:00:00:00:00:02")
    p.add_argument("--dst-mac", default="02:00:00:00:00:01")
    p.add_argument("--cores", type=_positive("cores"), default=1)
    p.add_argument("--pg-id", type=int, default=0, help="flow stats pg_id of session 1 (0 = off)")
    return p


def parse_tunables(prog: str, tunables: Any, defaults: dict[str, Any]) -> argparse.Namespace:
    """Accepts the list form (TRex >= 2.89) and the dict form (older consoles, load_py kwargs)."""
    if isinstance(tunables, dict):
        argv = [x for k, v in tunables.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    else:
        # load_py(file, first_session=9) arrives as "--first_session 9".
        argv = [
            str(x).replace("_", "-") if str(x).startswith("--") else str(x)
            for x in (tunables or [])
        ]
    args = tunables_parser(prog, defaults).parse_args(argv)
    seqs = [s for s in str(args.start_seq).split(",") if s]
    try:
        starts = [int(s, 0) for s in seqs]
    except ValueError:
        raise TunableError(f"--start-seq: {args.start_seq!r} is not a list of numbers") from None
    if len(starts) == 1:
        starts *= args.sessions
    if len(starts) != args.sessions:
        raise TunableError(f"--start-seq: {len(starts)} values for {args.sessions} sessions")
    if any(s < 1 for s in starts):
        raise TunableError(f"--start-seq: {args.start_seq}, sequences start at 1")
    if args.count < 0:
        raise TunableError(f"--count: {args.count}, expected >= 0")
    if args.sport + args.sessions - 1 > 65535:
        raise TunableError(f"--sport: {args.sport} + {args.sessions} sessions passes port 65535")
    if args.first_session + args.sessions - 1 >= 1 << 32:
        raise TunableError("--first-session: session ids pass 2^32-1")
    args.starts = starts
    return args


def builder_python() -> str:
    env = os.environ.get("XDPEX_PYTHON")
    if env:
        return env
    venv = HERE.parent.parent / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def build_packets(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs xdpex_packets.py in a clean interpreter (the project's scapy, not TRex's)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TREX_EXT_LIBS", "PYTHONPATH")}
    r = subprocess.run(
        [builder_python(), str(BUILDER)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    if r.returncode != 0:
        raise TunableError(r.stderr.strip() or f"{BUILDER.name} exited with {r.returncode}")
    result: dict[str, Any] = json.loads(r.stdout)
    return result


def field_engine(fields: dict[str, Any], args: argparse.Namespace, start: int) -> STLScVmRaw:
    """The per-datagram rewrite: hdr.seq, order ids, symbols and sides (see the module text)."""
    n = args.orders
    last = U64_MAX - (n - 1) if args.count == 0 else start + n * (args.count - 1)
    variables: dict[str, Any] = {
        "seq": STLVmFlowVar(name="seq", init_value=start, min_value=start, max_value=last,
                            size=8, step=n, op="inc", split_to_cores=False),
    }  # fmt: skip
    writes: list[Any] = [STLVmWrFlowVar(fv_name="seq", pkt_offset=fields["seq"], is_big=False)]
    for i, m in enumerate(fields["messages"]):
        # The order a message is about: a NewOrder is its own (id = its sequence), a Cancel names
        # the NewOrder half a datagram before it.
        pos = i if m["type"] == NEW_ORDER else i - n // 2
        for key in ("cl_ord_id", "orig_cl_ord_id"):
            if key in m:
                writes.append(STLVmWrFlowVar(fv_name="seq", pkt_offset=m[key], add_val=pos,
                                             is_big=False))  # fmt: skip
        if args.symbols > 1 and "symbol_id" in m:
            name = f"sym{pos}"
            variables.setdefault(name, STLVmFlowVar(
                name=name, init_value=pos % args.symbols + 1, min_value=1,
                max_value=args.symbols, size=4, op="inc", split_to_cores=False))  # fmt: skip
            writes.append(STLVmWrFlowVar(fv_name=name, pkt_offset=m["symbol_id"], is_big=False))
        if args.kind == "orders" and "side" in m:
            # Position i alternates BUY/SELL from one datagram to the next, so even with an odd
            # count the book sees as much of each side.
            name = f"side{i % 2}"
            variables.setdefault(name, STLVmFlowVar(
                name=name, init_value=i % 2 + 1, min_value=1, max_value=2, size=1, op="inc",
                split_to_cores=False))  # fmt: skip
            writes.append(STLVmWrFlowVar(fv_name=name, pkt_offset=m["side"]))
    return STLScVmRaw(list(variables.values()) + writes)


class XdpexProfile:
    """Base of the profiles: KIND picks the message mix, DEFAULTS the tunables' defaults."""

    KIND = "orders"
    DEFAULTS: dict[str, Any] = {}

    def get_streams(self, direction: int = 0, tunables: Any = (), **kwargs: Any) -> list[Any]:
        if not tunables:
            # TRex before 2.89 passes tunables as keyword arguments.
            tunables = {k: v for k, v in kwargs.items() if k not in ("port_id", "direction")}
        args = parse_tunables(f"{self.KIND}.py", tunables, self.DEFAULTS)
        args.kind = self.KIND
        sessions = [
            {"session_id": args.first_session + i, "start_seq": args.starts[i],
             "sport": args.sport + i}
            for i in range(args.sessions)
        ]  # fmt: skip
        spec = {
            "kind": self.KIND, "orders": args.orders, "symbols": args.symbols,
            "price": args.price, "qty": args.qty, "tif": TIFS[args.tif], "src": args.src,
            "dst": args.dst, "dport": args.dport, "src_mac": args.src_mac,
            "dst_mac": args.dst_mac, "sessions": sessions,
        }  # fmt: skip
        built = build_packets(spec)
        pps = args.rate / args.sessions
        streams = []
        for i, (s, pkt) in enumerate(zip(sessions, built["packets"], strict=True)):
            vm = field_engine(pkt["fields"], args, s["start_seq"])
            mode = (
                STLTXSingleBurst(total_pkts=args.count, pps=pps)
                if args.count
                else STLTXCont(pps=pps)
            )
            flow = STLFlowStats(pg_id=args.pg_id + i) if args.pg_id else None
            streams.append(
                STLStream(
                    name=f"session-{s['session_id']}",
                    packet=STLPktBuilder(pkt_buffer=bytes.fromhex(pkt["hex"]), vm=vm),
                    mode=mode,
                    flow_stats=flow,
                    core_id=i % args.cores,
                )
            )
        return streams
