"""`make bench-feed`: the market-data feed's figures, written to build/bench/feed.json.

Until the producer runs inside xdpexd (docs/marketdata.md "Producer API"), the feed is measured
around its own producer, xdpex-feedsim (the real engine, a real journal, real UDP), on loopback:

  encoder      bench_feed on the engine benchmark stream: ns per order of the engine alone and
               with the feed encoder and MoldUDP64 packing, alternating runs (thread CPU time)
  moderate     100 k orders/s: input orders/s, feed messages/s, subscriber latency (the gateway
               timestamp in each message to its receipt by xdpex-feedsub) p50/p99/p999, gaps,
               rewinds served
  loss         the same with 1 % of the packets dropped by the subscriber (rewind fills them)
  max          as fast as the producer goes: the rates, and the gaps the kernel's own drops left

The wire-rate figures with the feed on against off need the producer in xdpexd; the load average
is recorded with every run, since this machine is shared.
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="xdpex_traffic.benchfeed")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "feed.json")
    ap.add_argument("--orders", type=int, default=500000)
    a = ap.parse_args(argv)
    enc = subprocess.run([str(BIN / "bench_feed"), str(STREAM), "--runs", "7", "--json"],
                         capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    result: dict[str, Any] = {
        "producer": "xdpex-feedsim (loopback); the producer in xdpexd is not wired yet",
        "encoder": _json_line(enc.stdout) | {"loadavg": _loadavg()},
        "moderate": loopback(a.orders, 100000, 0.0),
        "loss": loopback(a.orders // 2, 100000, 1.0),
        "max": loopback(a.orders, 0, 0.0),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if all(result[k]["subscriber_complete"] for k in ("moderate", "loss", "max")) else 1


if __name__ == "__main__":
    sys.exit(main())
