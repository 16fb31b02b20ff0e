"""`xdpex engine`: matching engine tools.

  replay   apply a benchmark stream (data/README.md's format) and write every fill
           (native: build/engine/xe_replay)
  bench    time the engine on a stream, natively (build/engine/xe_bench); with --report, the
           plain, deep-queue, deep-book and wide-sweep runs are written to a JSON file and, with
           --update-doc, to the Engine section of docs/BENCHMARKS.md; with --baseline, another
           build of xe_bench (make engine-base: the old engine) runs alternately in the same run
  lobster  replay a LOBSTER message file and check each execution hit the order the exchange
           executed
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from xdpex_engine.native import BUILD_DIR

DEEP_FACTOR = 12  # prices on 12-tick steps: about 90 orders a level on orders-s42-1m
SYNTHETIC = ("deep_book", "wide_sweep")  # xe_bench --synthetic deep-book / wide-sweep
VARIANTS = ("normal", "deep") + SYNTHETIC


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
    p.add_argument("--baseline", type=Path, help="with --report: another xe_bench build (the "
                   "old engine, make engine-base) run alternately on every stream")
    p.add_argument("--rounds", type=int, default=3, help="with --baseline: alternations per "
                   "stream (the median round is reported)")
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


def bench_once(stream: Path | None, deep: int, runs: int, max_orders: int,
               tool: Path | None = None, synthetic: str | None = None) -> dict:
    cmd = [str(tool or _tool("xe_bench"))]
    cmd += ["--synthetic", synthetic] if synthetic else [str(stream)]
    cmd += ["--json", "--runs", str(runs), "--max-orders", str(max_orders)]
    if deep > 1:
        cmd += ["--deep", str(deep)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"xdpex engine bench: {' '.join(cmd)} failed: {res.stderr.strip()}")
    out = json.loads(res.stdout)
    out["command"] = " ".join(cmd)
    return out


def _variant(args: argparse.Namespace, name: str, deep: int, tool: Path | None = None) -> dict:
    if name in SYNTHETIC:
        return bench_once(None, 1, args.runs, args.max_orders, tool, name.replace("_", "-"))
    return bench_once(args.stream, deep if name == "deep" else 1, args.runs, args.max_orders,
                      tool)


MEMORY_RUNS = (  # (symbols, band, resting orders) for xe_memory
    (100, 100_000, 100_000),
    (10_000, 100_000, 100_000),
)


def memory_once(tool: Path, symbols: int, band: int, orders: int) -> dict:
    cmd = [str(tool), "--symbols", str(symbols), "--band", str(band), "--orders", str(orders)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"xdpex engine bench: {' '.join(cmd)} failed: {res.stderr.strip()}")
    return dict(json.loads(res.stdout))


def run_memory(baseline: Path | None) -> dict:
    """Resident memory of symbols and resting orders (xe_memory), this engine and the old one;
    the old one only where it fits in memory (its ladder costs 4.8 MB a symbol)."""
    out: dict = {"runs": []}
    for symbols, band, orders in MEMORY_RUNS:
        row = {"new": memory_once(_tool("xe_memory"), symbols, band, orders)}
        base_tool = baseline.parent / "xe_memory" if baseline else None
        if base_tool and base_tool.exists() and symbols * band <= 10_000_000:
            row["base"] = memory_once(base_tool, symbols, band, orders)
        out["runs"].append(row)
    return out


def _median_round(rounds: list[dict]) -> dict:
    """The round whose thread-CPU rate is the median: one whole run, not a mix of runs."""
    ranked = sorted(rounds, key=lambda r: r["cpu_msgs_per_s"])
    out = dict(ranked[len(ranked) // 2])
    out["rounds_cpu_msgs_per_s"] = [r["cpu_msgs_per_s"] for r in rounds]
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

    if args.baseline is not None and not args.baseline.exists():
        raise SystemExit(f"xdpex engine bench: baseline {args.baseline} not found "
                         "(make engine-base builds it)")
    deep = args.deep if args.deep > 1 else DEEP_FACTOR
    result: dict = {"machine": benchdoc.machine()}
    if args.baseline is None:
        for name in VARIANTS:
            result[name] = _variant(args, name, deep)
    else:
        # This engine and the baseline alternate, round after round, so the shared machine's
        # busy spells hit both alike; the median round of each is reported.
        base: dict = {}
        for name in VARIANTS:
            mine, theirs = [], []
            for _ in range(max(1, args.rounds)):
                mine.append(_variant(args, name, deep))
                theirs.append(_variant(args, name, deep, args.baseline))
            result[name] = _median_round(mine)
            base[name] = _median_round(theirs)
        commit = args.baseline.parent / "COMMIT"
        result["baseline"] = base | {
            "tool": benchdoc._rel(args.baseline),
            "commit": commit.read_text().strip() if commit.exists() else "unknown"}
    result["memory"] = run_memory(args.baseline)
    result["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)
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
