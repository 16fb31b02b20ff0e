"""`make bench-failover`: what high availability costs and how fast it takes over (docs/ha.md).

On the two sites of `xdpex lab up --ha` (AF_XDP, gateway pinned on CPU 0 with --poll sleep,
xdpex-loadgen on CPU 1 in kernel-UDP mode), in one run, alternating:

- durability `none`: the primary alone; `replicated`: the same primary with a standby on the
  other site acknowledging every batch before its answers leave (the standby runs --poll sleep,
  unpinned: on this 2-core machine it shares the cores with both);
- for each, ping-pong (one order outstanding): round-trip p50/p99; and the best batched rate
  (closed loop, 16 orders a datagram, window 1024).

Then the kill series: tests/test_ha_failover.py::test_kill9_of_the_primary_under_load in AF_XDP
mode with XDPEX_HA_KILLS kills (default 20), alternating between the two sites, each the primary
killed with -9 (agent and all) under client load: the takeover time (kill -> first answer from
the new primary, seen by the client) p50 and max, orders sent, answered, lost and duplicated.

Everything goes to build/bench/failover.json; the "## Failover" section of docs/BENCHMARKS.md is
rewritten with the table, the command and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xdpex_traffic.lab import GW_CPU, HA_IPS, TG_CPU, HaLab
from xdpex_traffic.wire import Gateway, run_loadgen

REPO = Path(__file__).resolve().parents[2]
PING = ["--window", "1", "--batch", "1", "--count", "20000", "--duration", "3", "--drain", "2"]
BATCHED = ["--window", "1024", "--batch", "16", "--count", "3000000", "--duration", "2",
           "--drain", "2"]
ROUNDS = 2


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _stages(gw: Gateway) -> dict[str, Any]:
    """Queue 0's replication stage times (repl.c, `ha` "stages_us")."""
    return dict(gw.ctl({"cmd": "ha"})["queues"][0].get("stages_us", {}))


def measure(lab: HaLab, log: Any, poll: str = "spin") -> list[dict[str, Any]]:
    site_a, site_b = lab.sides
    rows: list[dict[str, Any]] = []
    for rnd in range(ROUNDS):
        for durability in ("none", "replicated"):
            extra = ["--segment-mb", "1024"]
            if durability == "replicated":
                extra += ["--durability", "replicated", "--repl-listen", f"{HA_IPS[0]}:7700"]
            gw = Gateway(site_a, "afxdp", nsessions=4, cpu=GW_CPU, poll=poll,
                         extra_args=extra)
            sb = None
            try:
                gw.start(timeout=60)
                if durability == "replicated":
                    sb = Gateway(site_b, "afxdp", nsessions=4, poll="sleep",
                                 extra_args=["--role", "standby", "--repl-from",
                                             f"{HA_IPS[0]}:7700", "--segment-mb", "1024"])
                    sb.sessions = gw.sessions  # the same configuration, or the hashes differ
                    sb.start(timeout=60)
                for kind, args, sess in (("ping-pong", PING, 0), ("batched", BATCHED, 1)):
                    r = run_loadgen(site_a, gw, [gw.sessions[sess]], args, cpu=TG_CPU,
                                    timeout=120)
                    row = {"round": rnd, "durability": durability, "kind": kind,
                           "orders_per_s": r["orders_per_s"], "sent": r["sent"],
                           "answered": r["answered"], "lost": r["lost"],
                           "rtt_us": {k: r["rtt_us"][k] for k in ("p50", "p99", "max")}}
                    if sb is not None:
                        # Where the replication time went (repl.c, `ha` "stages_us"), since
                        # the gateways started: the ping-pong alone, then with the batched run.
                        row["stages_us"] = {**_stages(gw), **_stages(sb)}
                    rows.append(row)
                    log(f"{durability:10s} {kind:9s} {r['orders_per_s']:>12,.0f} orders/s  "
                        f"rtt p50 {r['rtt_us']['p50']:.1f} p99 {r['rtt_us']['p99']:.1f} us")
            finally:
                if sb is not None:
                    sb.cleanup()
                gw.cleanup()
    return rows


def kill_series(kills: int, log: Any) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = dict(os.environ, XDPEX_HA_KILLS=str(kills), XDPEX_HA_REPORT=out.name)
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               str(REPO / "tests" / "test_ha_failover.py"), "-k", "kill9 and afxdp"]
        log(f"kill series: {kills} kills ({' '.join(cmd[3:])})")
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=120 + 30 * kills)
        if p.returncode != 0:
            raise SystemExit(f"bench-failover: the kill series failed:\n{p.stdout[-4000:]}")
        r: dict[str, Any] = json.loads(Path(out.name).read_text())
    t = sorted(r["takeover_s"])
    r["takeover_p50_s"] = round(statistics.median(t), 3)
    r["takeover_max_s"] = round(t[-1], 3)
    return r


def best(rows: list[dict[str, Any]], durability: str, kind: str) -> dict[str, Any]:
    runs = [r for r in rows if r["durability"] == durability and r["kind"] == kind]
    if kind == "batched":
        return max(runs, key=lambda r: r["orders_per_s"])
    return min(runs, key=lambda r: r["rtt_us"]["p50"])


def render(rows: list[dict[str, Any]], kills: dict[str, Any], load: tuple[float, float],
           cmd: str, poll: str = "sleep") -> str:
    pn, pr = best(rows, "none", "ping-pong"), best(rows, "replicated", "ping-pong")
    bn, br = best(rows, "none", "batched"), best(rows, "replicated", "batched")
    lines = [
        "## Failover", "",
        f"`{cmd}` (traffic/xdpex_traffic/benchfailover.py), load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after (other sessions share this 2-core machine). AF_XDP on the two "
        f"sites of `xdpex lab up --ha`; gateway on CPU 0 (--poll {poll}), xdpex-loadgen on CPU 1; "
        "with `replicated` a standby on the other site (--poll sleep, unpinned) acknowledges "
        f"each batch before its answers leave. Best of {ROUNDS} alternating rounds.", "",
        "| durability | ping-pong RTT p50 (µs) | p99 (µs) | batched orders/s (x16) |",
        "| --- | ---: | ---: | ---: |",
        f"| none | {pn['rtt_us']['p50']:.1f} | {pn['rtt_us']['p99']:.1f} | "
        f"{bn['orders_per_s']:,.0f} |",
        f"| replicated | {pr['rtt_us']['p50']:.1f} | {pr['rtt_us']['p99']:.1f} | "
        f"{br['orders_per_s']:,.0f} |",
        "",
        f"`replicated` adds {pr['rtt_us']['p50'] - pn['rtt_us']['p50']:.1f} µs to the "
        f"ping-pong p50 and keeps {100 * br['orders_per_s'] / bn['orders_per_s']:.0f} % of the "
        "batched rate.", "",
        "Kill series (test_kill9_of_the_primary_under_load, AF_XDP, the primary and its agent "
        "killed with -9 under a client sending 500 orders/s, alternating sites; takeover = kill "
        "to the first answer from the new primary, as the client saw it):", "",
        "| kills | takeover p50 (s) | max (s) | orders sent | answered | lost | duplicated |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {kills['kills']} | {kills['takeover_p50_s']:.2f} | {kills['takeover_max_s']:.2f} | "
        f"{kills['sent']:,} | {kills['answered']:,} | {kills['lost']} | "
        f"{kills['duplicated']} |",
        "",
        "Most of the takeover is etcd's: the 1 s lease has to run out, and etcd 3.4 looks for "
        "expired leases every 500 ms; the election, the promotion and the client's move take "
        "tens of milliseconds.", "",
    ]
    return "\n".join(lines)


def update_doc(doc: Path, section: str) -> None:
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == "## Failover"), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    doc.write_text(new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench-failover", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "build" / "bench" / "failover.json")
    ap.add_argument("--doc", type=Path, default=None)
    ap.add_argument("--kills", type=int, default=int(os.environ.get("XDPEX_HA_KILLS", "20")))
    ap.add_argument("--poll", choices=["spin", "busy", "sleep"], default="sleep",
                    help="the primary's --poll (sleep; with spin, on 2 cores, the standby and "
                         "the replication threads wait for a core)")
    ap.add_argument("--no-kills", action="store_true", help="rates only, no kill series")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(f"bench-failover: {msg}", flush=True)

    load0 = _loadavg()
    lab = HaLab(f"bf{os.getpid() % 100000}")
    lab.up()
    try:
        rows = measure(lab, log, args.poll)
    finally:
        lab.down()
    if args.no_kills:
        print(json.dumps(rows, indent=1))
        return 0
    kills = kill_series(args.kills, log)
    load1 = _loadavg()
    out = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "load_average": [load0, load1], "rows": rows, "kill_series": kills,
           "summary": {d: {"ping_pong_rtt_us": best(rows, d, "ping-pong")["rtt_us"],
                           "batched_orders_per_s": best(rows, d, "batched")["orders_per_s"]}
                       for d in ("none", "replicated")}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    log(f"wrote {args.out}: takeover p50 {kills['takeover_p50_s']} s, max "
        f"{kills['takeover_max_s']} s, lost {kills['lost']}, duplicated {kills['duplicated']}")
    if args.doc:
        update_doc(args.doc, render(rows, kills, (load0, load1), "make bench-failover", args.poll))
        log(f"updated {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
