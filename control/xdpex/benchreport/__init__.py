"""`xdpex bench`: every end-to-end figure in one run, written as a report with tables and charts.

Brings up a veth lab of its own (unique namespace prefix), measures the wire path in AF_XDP and
kernel-UDP mode side by side for several batch sizes (closed loop, an open-loop ladder, single-
order latency at a moderate load), then gRPC batch submission and REST single-order entry through
the control plane, and writes results.json, report.md and PNG charts into --out
(xdpex.benchreport.render). One progress line per scenario, with its elapsed time.

The lab, every xdpexd and the control plane are stopped and removed on the way out, also after a
failure, Ctrl-C or SIGTERM. A scenario that fails is recorded in the report as failed and the run
goes on; the exit status is 0 when the report was written and at least one scenario succeeded,
1 when the lab or a daemon could not be set up (the report then holds what was measured
before, `"complete": false` in its meta) or nothing succeeded, 2 for bad arguments, 130 after
Ctrl-C (no report). `--from results.json` redraws a report from earlier results without measuring.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .scenarios import FULL, MAX_BATCH, PATHS, QUICK, Plan, check_out_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="report directory (created)")
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs and a 2-rung ladder (a few minutes)"
    )
    parser.add_argument("--paths", help=f"wire paths, comma-separated (default {','.join(PATHS)})")
    parser.add_argument(
        "--batches", help="orders per datagram, comma-separated, 1..22 (default 1,4,16,22)"
    )
    parser.add_argument("--seconds", type=float, help="sending time of each wire run")
    parser.add_argument(
        "--ladder", help="open-loop rates as fractions of the closed-loop rate, e.g. 0.5,1"
    )
    parser.add_argument(
        "--control-seconds", type=float, help="time per control-plane figure; 0 skips them"
    )
    parser.add_argument("--grpc-batch", type=int, help="orders per gRPC SubmitOrders call")
    parser.add_argument("--generator", choices=["afxdp", "udp"], help="load generator I/O")
    parser.add_argument("--prefix", help="lab namespace prefix (default xbr<pid>)")
    parser.add_argument(
        "--from", dest="from_json", type=Path, help="redraw the report from a results.json"
    )


def _ints(flag: str, text: str, lo: int, hi: int) -> tuple[int, ...]:
    out = []
    for part in text.split(","):
        try:
            v = int(part)
        except ValueError:
            raise ValueError(f"{flag}: {part!r} is not a whole number") from None
        if not lo <= v <= hi:
            raise ValueError(f"{flag}: {v} is outside {lo}..{hi}")
        out.append(v)
    if not out:
        raise ValueError(f"{flag}: empty")
    return tuple(out)


def make_plan(args: argparse.Namespace) -> Plan:
    """The plan from --quick and the overrides; ValueError names the bad option."""
    plan = QUICK if args.quick else FULL
    over: dict[str, Any] = {}
    if args.paths is not None:
        paths = tuple(p for p in args.paths.split(",") if p)
        bad = [p for p in paths if p not in PATHS]
        if bad or not paths:
            raise ValueError(f"--paths: {','.join(bad) or 'empty'}: expected afxdp and/or udp")
        over["paths"] = paths
    if args.batches is not None:
        over["batches"] = _ints("--batches", args.batches, 1, MAX_BATCH)
    if args.seconds is not None:
        if not 0.2 <= args.seconds <= 30:
            raise ValueError(f"--seconds: {args.seconds:g} is outside 0.2..30")
        over["seconds"] = args.seconds
    if args.ladder is not None:
        try:
            ladder = tuple(float(x) for x in args.ladder.split(",") if x)
        except ValueError:
            raise ValueError(f"--ladder: {args.ladder!r}: expected numbers like 0.5,1") from None
        if any(not 0.05 <= x <= 4 for x in ladder):
            raise ValueError(f"--ladder: {args.ladder}: each fraction must be in 0.05..4")
        over["ladder"] = ladder
    if args.control_seconds is not None:
        if not 0 <= args.control_seconds <= 60:
            raise ValueError(f"--control-seconds: {args.control_seconds:g} is outside 0..60")
        over["control_seconds"] = args.control_seconds
    if args.grpc_batch is not None:
        if not 1 <= args.grpc_batch <= 100_000:
            raise ValueError(f"--grpc-batch: {args.grpc_batch} is outside 1..100000")
        over["grpc_batch"] = args.grpc_batch
    if args.generator is not None:
        over["generator"] = args.generator
    return dataclasses.replace(plan, **over)


def _machine() -> str:
    from xdpex_traffic.benchwire import _machine as machine

    return machine()


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    from . import render

    def err(msg: str) -> int:
        print(f"xdpex bench: {msg}", file=sys.stderr)
        return 2

    try:
        plan = make_plan(args)
        check_out_dir(args.out)
        if args.prefix is not None:
            from xdpex_traffic.lab import Lab, LabError

            try:
                Lab(args.prefix)
            except LabError as e:
                raise ValueError(str(e)) from None
        if args.from_json is not None:
            rows, meta = render.load_results(args.from_json)
    except ValueError as e:
        return err(str(e))
    if args.from_json is not None:
        for p in render.write_report(rows, meta, args.out):
            print(f"xdpex bench: wrote {p}")
        return 0
    return _measure(plan, args)


def _measure(plan: Plan, args: argparse.Namespace) -> int:
    from xdpex_traffic.lab import Lab, LabError
    from xdpex_traffic.wire import WireError

    from . import render
    from .scenarios import run_control, run_wire

    t0 = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f} s] {msg}", flush=True)

    if os.geteuid() != 0:
        print("xdpex bench: needs root (network namespaces, XDP)", file=sys.stderr)
        return 1
    from xdpex_traffic.lab import xdp_pass_object
    from xdpex_traffic.wire import loadgen_path, xdpexd_path

    for binary in (xdpexd_path(), loadgen_path(), xdp_pass_object()):
        if not binary.exists():
            print(f"xdpex bench: {binary} is not built (run `make build`)", file=sys.stderr)
            return 1
    try:
        lab = Lab(args.prefix or f"xbr{os.getpid()}")
    except LabError as e:
        print(f"xdpex bench: {e}", file=sys.stderr)
        return 2
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    status = 0
    try:
        log(f"lab {lab.prefix}: up; plan {dataclasses.asdict(plan)}")
        lab.up()
        run_wire(lab, plan, log, rows)
        lab.down()
        log(f"lab {lab.prefix}: down")
        if plan.control_seconds > 0:
            run_control(plan, log, rows)
    except KeyboardInterrupt:
        print("xdpex bench: interrupted; lab and daemons stopped", file=sys.stderr)
        status = 130
    except (LabError, WireError, OSError, RuntimeError) as e:
        print(f"xdpex bench: failed: {e}", file=sys.stderr)
        status = 1
    finally:
        try:
            lab.down()
        finally:
            signal.signal(signal.SIGTERM, old_term)
    if status == 130 or not rows:
        return status or 1  # interrupted: no report; a failure keeps what was measured
    meta = {
        "command": "xdpex bench " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else []),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": _machine(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "duration_s": round(time.monotonic() - t0, 1),
        "generator": plan.generator,
        "plan": dataclasses.asdict(plan),
        "complete": status == 0,
    }
    paths = render.write_report(rows, meta, args.out)
    md = paths[1].read_text()
    print(md.split("\n## All runs")[0].rstrip())
    failed = [r for r in rows if "error" in r]
    print()
    for p in paths:
        print(f"xdpex bench: wrote {p}")
    print(
        f"xdpex bench: {len(rows) - len(failed)} of {len(rows)} scenarios succeeded in "
        f"{meta['duration_s']:.0f} s" + (f"; FAILED: {len(failed)}" if failed else "")
    )
    if status == 0 and len(failed) == len(rows):
        status = 1
    return status
