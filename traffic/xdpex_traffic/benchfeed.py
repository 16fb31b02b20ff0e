"""`make bench-feed`: the market-data feed's figures, written to build/bench/feed.json and to the
"## Feed" section of docs/BENCHMARKS.md.

  wire         xdpexd's own producer (the feed built in the queue thread's batch, docs/marketdata.md
               "Producer API") on the veth lab: the wire benchmark's afxdp path (bench-wire's
               closed, open and ping-pong runs) with `--feed` to a multicast group and without,
               alternating rounds so both see the same machine; the ratio is the feed's cost
  encoder      bench_feed on the engine benchmark stream: ns per order of the engine alone and
               with the feed encoder and MoldUDP64 packing, alternating runs (thread CPU time)
  moderate     xdpex-feedsim (the real engine, a real journal, real UDP) on loopback at 100 k
               orders/s: input orders/s, feed messages/s, subscriber latency (the gateway
               timestamp in each message to its receipt by xdpex-feedsub) p50/p99/p999, gaps,
               rewinds served
  loss         the same with 1 % of the packets dropped by the subscriber (rewind fills them)
  max          as fast as the producer goes: the rates, and the gaps the kernel's own drops left

The load average is recorded with every run, since this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("XDPEX_BUILD", REPO / "build")) / "feed"
STREAM = REPO / "data" / "orders-s42-1m.csv.gz"


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _json_line(out: str) -> dict[str, Any]:
    for ln in reversed(out.splitlines()):
        if ln.startswith("{"):
            d: dict[str, Any] = json.loads(ln)
            return d
    raise RuntimeError(f"no JSON in {out[-500:]!r}")


def loopback(orders: int, rate: int, drop: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="xdpex-benchfeed-") as tmp:
        jdir = Path(tmp) / "j"
        d = subprocess.Popen([str(BIN / "xdpex-feedd"), "--journal", str(jdir), "--rewind",
                              "127.0.0.1:0", "--snapshot", "127.0.0.1:0"],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert d.stdout is not None
        rewind = d.stdout.readline().split()[3]
        port = _port()
        sub = subprocess.Popen([str(BIN / "xdpex-feedsub"), "--listen", f"127.0.0.1:{port}",
                                "--rewind", rewind, "--drop-pct", str(drop), "--max-seconds",
                                "300"], stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert sub.stdout is not None
        sub.stdout.readline()  # listening
        load = _loadavg()
        sim = subprocess.run([str(BIN / "xdpex-feedsim"), "--journal", str(jdir), "--dst",
                              f"127.0.0.1:{port}", "--orders", str(orders), "--rate", str(rate),
                              "--linger-ms", "1000"], capture_output=True, text=True,
                             timeout=600, check=True)  # fmt: skip
        produced = _json_line(sim.stdout)
        got = _json_line(sub.communicate(timeout=300)[0])
        d.send_signal(signal.SIGTERM)
        served = _json_line(d.communicate(timeout=30)[0])
    secs = float(produced["seconds"])
    return {
        "orders": orders, "target_rate": rate, "drop_pct": drop, "loadavg": load,
        "orders_per_s": round(orders / secs), "feed_msgs_per_s": round(produced["messages"] / secs),
        "packets": produced["packets"], "subscriber_complete": got["next_seq"] ==
        produced["next_seq"], "subscriber_gaps": got["gaps"],
        "rewinds_served": served["requests"], "rewound_messages": served["served_messages"],
        "latency_ns": got["latency_ns"],
    }  # fmt: skip


FEED_GROUP = "239.77.0.1:9400"


def wire(rounds: int, batches: list[int], log: Any) -> list[dict[str, Any]]:
    """bench-wire's afxdp path without and with `--feed`, `rounds` times alternating."""
    from xdpex_traffic.benchwire import JOURNAL_ARGS, _measure_path
    from xdpex_traffic.lab import Lab

    lab = Lab(f"xbf{os.getpid()}")
    rows: list[dict[str, Any]] = []
    try:
        lab.up()
        for rnd in range(rounds):
            for feed in (False, True):
                args = JOURNAL_ARGS + (["--feed", FEED_GROUP] if feed else [])
                for row in _measure_path(lab, "afxdp", batches, "afxdp", log, args):
                    row |= {"round": rnd, "feed": feed, "loadavg": _loadavg()}
                    row["path"] = "afxdp-feed" if feed else "afxdp"
                    rows.append(row)
    finally:
        lab.down()
    return rows


def render_section(result: dict[str, Any], batches: list[int]) -> str:
    """The "## Feed" section of docs/BENCHMARKS.md."""
    from xdpex_traffic.benchwire import _latency, _machine, _round_ratios, best

    rows = result["wire"]
    out = [
        "## Feed",
        "",
        "Command: `make bench-feed` (`build/bench/feed.json`). Measured "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {_machine()}; load average "
        f"{result['loadavg'][0]:.1f} before, {result['loadavg'][1]:.1f} after (2 cores).",
        "",
        "The producer is xdpexd's queue thread (docs/marketdata.md, \"Producer API\"): the feed "
        "messages of a batch are built from the engine's events and sent with the batch's "
        f"answers. Wire: bench-wire's afxdp path with `--feed {FEED_GROUP}` (a multicast group "
        "on the lab's veth) against the same without, in alternating rounds.",
        "",
        "| orders/datagram | best rate, feed off (orders/s) | best rate, feed on | on/off | "
        "per-round on/off | ping-pong p50 / p99 off (µs) | ping-pong p50 / p99 on (µs) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for b in batches:
        off, on = best(rows, "afxdp", b), best(rows, "afxdp-feed", b)
        ratio = f"{on['orders_per_s'] / off['orders_per_s']:.2f}×" if off and on else "-"
        per = ", ".join(f"{x:.2f}" for x in _round_ratios(rows, "afxdp-feed", "afxdp", b))
        pp = []
        for path in ("afxdp", "afxdp-feed"):
            r = _latency(rows, path, b, "pingpong")
            pp.append(f"{r['rtt_us']['p50']:.1f} / {r['rtt_us']['p99']:.1f}" if r else "-")
        rate = [f"{x['orders_per_s']:,.0f}" if x else "none clean" for x in (off, on)]
        out.append(f"| {b} | {rate[0]} | {rate[1]} | {ratio} | {per or '-'} | {pp[0]} | {pp[1]} |")
    enc = result["encoder"]
    out += ["", "Encoder on the engine benchmark stream (`bench_feed`, thread CPU time): "
            f"`{json.dumps({k: v for k, v in enc.items() if k != 'loadavg'})}`.", ""]
    out += [
        "| loopback run (xdpex-feedsim) | orders/s | feed msgs/s | subscriber complete | gaps | "
        "rewound msgs | latency p50 / p99 / p99.9 (ns) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k in ("moderate", "loss", "max"):
        r = result[k]
        lat = r["latency_ns"]
        lats = " / ".join(str(lat.get(q, "-")) for q in ("p50", "p99", "p999"))
        out.append(f"| {k} | {r['orders_per_s']:,} | {r['feed_msgs_per_s']:,} | "
                   f"{r['subscriber_complete']} | {r['subscriber_gaps']} | {r['rewound_messages']} "
                   f"| {lats} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="xdpex_traffic.benchfeed")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "feed.json")
    ap.add_argument("--orders", type=int, default=500000)
    ap.add_argument("--rounds", type=int, default=2, help="wire: feed off/on rounds")
    ap.add_argument("--batches", default="16,1", help="wire: orders per datagram")
    ap.add_argument("--doc", type=Path, default=None, help="docs/BENCHMARKS.md to update")
    a = ap.parse_args(argv)
    batches = [int(x) for x in a.batches.split(",") if x]
    load0 = _loadavg()

    def log(msg: str) -> None:
        print(f"bench-feed: {msg}", flush=True)

    wire_rows = wire(a.rounds, batches, log) if a.rounds > 0 else []
    enc = subprocess.run([str(BIN / "bench_feed"), str(STREAM), "--runs", "7", "--json"],
                         capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    result: dict[str, Any] = {
        "producer": "xdpexd's queue thread (wire); xdpex-feedsim on loopback (moderate, loss, max)",
        "wire": wire_rows,
        "encoder": _json_line(enc.stdout) | {"loadavg": _loadavg()},
        "moderate": loopback(a.orders, 100000, 0.0),
        "loss": loopback(a.orders // 2, 100000, 1.0),
        "max": loopback(a.orders, 0, 0.0),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    result["loadavg"] = [load0, _loadavg()]
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    section = render_section(result, batches)
    print(section)
    if a.doc is not None:
        from xdpex_traffic.benchwire import update_section

        update_section(a.doc, "## Feed", section)
        log(f"updated {a.doc}")
    ok = all(result[k]["subscriber_complete"] for k in ("moderate", "loss", "max"))
    bad = [r for r in wire_rows if "error" in r]
    for r in bad:
        print(f"bench-feed: wire run failed: {r['path']} x{r['orders_per_datagram']} {r['kind']}: "
              f"{r['error']}", file=sys.stderr)
    return 0 if ok and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
