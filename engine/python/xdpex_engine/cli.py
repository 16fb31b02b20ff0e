"""`xdpex engine`: matching engine tools.

  replay   apply a benchmark stream (data/README.md's format) and write every fill
           (native: build/engine/xe_replay)
  bench    time the engine on a stream, natively (build/engine/xe_bench); with --report, the
           plain and deep-queue runs are written to a JSON file and, with --update-doc, to the
           Engine section of docs/BENCHMARKS.md
  lobster  replay a LOBSTER message file and check each execution hit the order the exchange
           executed
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from xdpex_engine.native import BUILD_DIR

DEEP_FACTOR = 12  # prices on 12-tick steps: about 90 orders a level on orders-s42-1m


def _tool(name: str) -> Path:
    path = BUILD_DIR / name
    if not path.exists():
        raise SystemExit(f"xdpex engine: {path} not found: build the engine first (make build)")
    return path


def _stream(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such stream file: {value}")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="engine_command", metavar="ACTION", required=True)
    p = sub.add_parser("replay", help="apply a benchmark stream, write every fill")
    p.add_argument("--stream", type=_stream, required=True, help="stream .csv or .csv.gz")
    p.add_argument("--fills", required=True, help="output: taker_oid,maker_oid,qty,price")
    p.add_argument("--max-orders", type=int, default=1 << 20, help="engine order pool size")
    p.set_defaults(_engine=run_replay)

    p = sub.add_parser("bench", help="native engine benchmark on a stream")
    p.add_argument("--stream", type=_stream, required=True, help="stream .csv or .csv.gz")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--deep", type=int, nargs="?", const=DEEP_FACTOR, default=0, metavar="F",
                   help=f"deep-queue variant: prices on F-tick steps, queues about F times "
                   f"deeper (default {DEEP_FACTOR})")
    p.add_argument("--runs", type=int, default=5, help="throughput runs (median reported)")
    p.add_argument("--max-orders", type=int, default=1 << 18, help="engine order pool size")
    p.add_argument("--report", type=Path, help="run plain and deep, write both to this JSON")
    p.add_argument("--update-doc", type=Path, help="with --report: rewrite the Engine "
                   "section of this markdown file (docs/BENCHMARKS.md)")
    p.set_defaults(_engine=run_bench)

    p = sub.add_parser("lobster", help="replay a LOBSTER message file, check executions")
    p.add_argument("file", type=_stream, help="LOBSTER message file (.csv or .csv.gz)")
    p.add_argument("--show", type=int, default=20, help="disagreements to list")
    p.add_argument("--levels", type=int, default=10, help="book levels to print")
    p.set_defaults(_engine=run_lobster)


def run(args: argparse.Namespace) -> int:
    return int(args._engine(args))


def run_replay(args: argparse.Namespace) -> int:
    cmd = [str(_tool("xe_replay")), str(args.stream), args.fills, "--max-orders",
           str(args.max_orders)]
    res = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(res.stderr)
    return res.returncode


def bench_once(stream: Path, deep: int, runs: int, max_orders: int) -> dict:
    cmd = [str(_tool("xe_bench")), str(stream), "--json", "--runs", str(runs), "--max-orders",
           str(max_orders)]
    if deep > 1:
        cmd += ["--deep", str(deep)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"xdpex engine bench: {' '.join(cmd)} failed: {res.stderr.strip()}")
    out = json.loads(res.stdout)
    out["command"] = " ".join(cmd)
    return out


def run_bench(args: argparse.Namespace) -> int:
    if args.report is None:
        cmd = [str(_tool("xe_bench")), str(args.stream), "--runs", str(args.runs),
               "--max-orders", str(args.max_orders)]
        if args.json:
            cmd.append("--json")
        if args.deep > 1:
            cmd += ["--deep", str(args.deep)]
        return subprocess.run(cmd).returncode
    from xdpex_engine import benchdoc

    deep = args.deep if args.deep > 1 else DEEP_FACTOR
    result = {
        "machine": benchdoc.machine(),
        "normal": bench_once(args.stream, 1, args.runs, args.max_orders),
        "deep": bench_once(args.stream, deep, args.runs, args.max_orders),
    }
    previous = benchdoc.previous(args.report, args.update_doc)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(result, indent=2) + "\n")
    print(benchdoc.summary(result, previous))
    print(f"written {args.report}")
    if args.update_doc:
        benchdoc.update_doc(args.update_doc, result, previous, args.stream)
        print(f"updated the Engine section of {args.update_doc}")
    return 0


def run_lobster(args: argparse.Namespace) -> int:
    from xdpex_engine.lobster import format_report, replay

    try:
        rep = replay(args.file, top=args.levels)
    except ValueError as exc:
        print(f"xdpex engine lobster: {exc}", file=sys.stderr)
        return 1
    print(format_report(rep, args.file, show=args.show))
    return 0
