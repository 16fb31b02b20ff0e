"""`make bench-wire`: the wire path measured end to end, AF_XDP and DPDK against kernel UDP, in one
run.

For each path (xdpexd --mode afxdp, --mode udp, --mode dpdk, same binary, same lab, gateway
pinned on CPU 0, xdpex-loadgen on CPU 1; with --baseline-xdpexd also afxdp-base and udp-base, the
same modes of another build, e.g. the one before a change) and each datagram size (16 orders,
1 order):

- closed loop with a window of unanswered orders, three times: the rate the gateway sustains;
- open loop from 0.7 x that figure upwards in steps of 1.2 while clean: the highest offered rate
  with every order answered and no datagram lost on the way (no sequence gap either way);
- open loop at a moderate load, three times: round-trip percentiles (the median-p99 run shown);
- ping-pong (one datagram outstanding): the round-trip floor.

Rows go to build/bench/wire.json; the "## Wire" section of docs/BENCHMARKS.md is rewritten with the
table, the command, the machine and the ratios to kernel UDP and to the baseline build (the rest
of the file is left alone). Bounded: about a minute of traffic per path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from xdpex_traffic.lab import GW_CPU, TG_CPU, Lab, LabError
from xdpex_traffic.wire import Gateway, WireError, run_loadgen

# Per datagram size: closed-loop window, closed-loop count, fixed moderate load (orders/s).
PLANS: dict[int, dict[str, int]] = {
    16: {"window": 1024, "count": 3_000_000, "moderate": 500_000},
    1: {"window": 64, "count": 600_000, "moderate": 100_000},
}
# Open loop: from LADDER_START x the closed-loop rate, up by LADDER_STEP while every order is
# answered without loss, at most LADDER_RUNGS runs.
LADDER_START, LADDER_STEP, LADDER_RUNGS = 0.7, 1.2, 8
RUN_SECONDS = 1.5
# Runs repeated because other work on this shared 2-core machine moves single runs a lot: the
# closed loop (the best clean rate counts, for both paths alike) and the moderate load (the run
# with the median p99 is the one summarised).
CLOSED_RUNS, LATENCY_RUNS = 3, 3
# Journal space each gateway reserves before its first run (one segment that large), as a
# gateway does before the market opens: a whole bench's records (about 3 GB per path) then land on
# page cache that is already there. New page cache is what the journal would otherwise pay for
# per order; on this VM (its host hands memory out on first touch) that is ~3 ns a byte, more
# than everything else an order costs. Both paths get the same.
JOURNAL_ARGS = ["--segment-mb", "4096", "--journal-reserve-mb", "4096"]


def _row(path: str, batch: int, kind: str, r: dict[str, Any]) -> dict[str, Any]:
    rec = r["recovery"]
    return {
        "path": path,
        "orders_per_datagram": batch,
        "kind": kind,
        "offered": r["offered"],
        "window": r["window"],
        "sent": r["sent"],
        "answered": r["answered"],
        "lost": r["lost"],
        "orders_per_s": r["orders_per_s"],
        "rtt_us": {k: r["rtt_us"][k] for k in ("p50", "p90", "p99", "p999", "max")},
        "seq_gaps": rec["seq_gaps"],
        "resent": rec["resent"],
        "out_gaps": rec["out_gaps"],
        "clean": r["lost"] == 0 and rec["seq_gaps"] == 0 and rec["out_gaps"] == 0,
        "fills": r["fills"],
        "generator_busy_pct": r.get("generator_busy_pct"),
        "generator_cpu_wait_pct": r.get("generator_cpu_wait_pct"),
        "rejects": r["rejects"],
    }


# The order paths appear in the report; "<mode>-base" is that mode of the --baseline-xdpexd build.
PATH_ORDER = ["afxdp", "afxdp-base", "udp", "udp-base", "dpdk"]


def mode_of(path: str) -> str:
    return path.removesuffix("-base")


class _Runner:
    """One xdpexd for a path; hands every generator run fresh sessions and, when a run fails
    (the gateway stopped answering), records the failure and starts a fresh gateway."""

    def __init__(
        self,
        lab: Lab,
        path: str,
        io: list[str],
        log: Any,
        gw_args: list[str] = JOURNAL_ARGS,
        xdpexd: Path | None = None,
    ) -> None:
        self.lab, self.path, self.io, self.log, self.gw_args = lab, path, io, log, gw_args
        self.xdpexd = xdpexd
        self.gw = self._start()
        self.next = 0
        self.stats: dict[str, Any] = {}

    def _start(self) -> Gateway:
        gw = Gateway(
            self.lab,
            mode_of(self.path),
            nsessions=64,
            cpu=GW_CPU,
            poll="spin",
            extra_args=self.gw_args,
            xdpexd=self.xdpexd,
            xdp_filter=False,  # kernel UDP as it is: the baseline
        )
        try:
            gw.start(timeout=120.0)  # the journal reservation: ~12 s on a cold VM
        except BaseException:
            gw.cleanup()
            raise
        return gw

    def _busy(self) -> tuple[int, int] | None:
        """The gateway's (busy_ns, batches) summed over its queues, None if it does not say."""
        try:
            qs = self.gw.stats().get("queues", [])
            return sum(q["busy_ns"] for q in qs), sum(q["batches"] for q in qs)
        except (OSError, ValueError, KeyError, WireError):
            return None

    def _sched(self) -> tuple[int, int] | None:
        """xdpexd's (ns on a CPU, ns runnable but waiting for one), summed over its threads
        (/proc/PID/task/*/schedstat); None if unreadable."""
        proc = self.gw.proc
        if proc is None:
            return None
        run = wait = 0
        try:
            for task in Path(f"/proc/{proc.pid}/task").iterdir():
                f = (task / "schedstat").read_text().split()
                run, wait = run + int(f[0]), wait + int(f[1])
        except (OSError, ValueError, IndexError):
            return None
        return run, wait

    def run(self, batch: int, kind: str, args: list[str]) -> dict[str, Any]:
        if self.next + 2 > len(self.gw.sessions):
            self.restart()
        sessions = self.gw.sessions[self.next : self.next + 2]
        self.next += 2
        full = ["--batch", str(batch), "--drain", "2", *self.io, *args]
        before, sched0 = self._busy(), self._sched()
        try:
            r = run_loadgen(self.lab, self.gw, sessions, full, cpu=TG_CPU)
        except WireError as e:
            msg = str(e).splitlines()[0]
            self.log(f"{self.path} x{batch} {kind}: FAILED: {msg}; restarting xdpexd")
            self.restart()
            return {
                "path": self.path,
                "orders_per_datagram": batch,
                "kind": kind,
                "error": msg,
                "clean": False,
            }
        row = _row(self.path, batch, kind, r)
        after = self._busy()
        if before is not None and after is not None and r.get("duration_s"):
            busy_ns, batches = after[0] - before[0], after[1] - before[1]
            row["gateway_busy_pct"] = round(100.0 * busy_ns / (r["duration_s"] * 1e9), 1)
            row["gateway_ns_per_order"] = round(busy_ns / r["answered"]) if r["answered"] else None
            row["gateway_batches"] = batches
        sched1 = self._sched()
        if sched0 is not None and sched1 is not None:
            run, wait = sched1[0] - sched0[0], sched1[1] - sched0[1]
            row["gateway_cpu_wait_pct"] = round(100.0 * wait / (run + wait), 1) if run else None
        return row

    def restart(self) -> None:
        self.gw.cleanup()
        self.gw = self._start()
        self.next = 0

    def close(self) -> None:
        try:
            self.stats = self.gw.stats()
        except (OSError, ValueError, WireError):
            self.stats = {}
        rc = self.gw.stop()
        log_tail = self.gw.log_tail()
        self.gw.cleanup()
        if rc != 0:
            raise WireError(f"xdpexd {self.path} exited with status {rc}:\n{log_tail}")


def _measure_path(
    lab: Lab,
    path: str,
    batches: list[int],
    generator: str,
    log: Any,
    gw_args: list[str] = JOURNAL_ARGS,
    xdpexd: Path | None = None,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    io = ["--xdp", lab.tg_if] if generator == "afxdp" else []
    runner = _Runner(lab, path, io, log, gw_args, xdpexd)
    try:
        for batch in batches:
            plan = PLANS.get(batch, PLANS[16])
            closed = []
            for _ in range(CLOSED_RUNS):
                row = runner.run(
                    batch,
                    "closed",
                    ["--window", str(plan["window"]), "--count", str(plan["count"])]
                    + ["--duration", "3"],
                )
                rows.append(row)
                closed.append(row.get("orders_per_s", 0.0))
            base = max(max(closed), 10_000.0)
            log(f"{path} x{batch} closed window {plan['window']}: {base:,.0f}/s")
            rate = int(base * LADDER_START)
            for _ in range(LADDER_RUNGS):
                row = runner.run(
                    batch,
                    "open",
                    ["--rate", str(rate), "--count", str(int(rate * RUN_SECONDS))]
                    + ["--duration", str(RUN_SECONDS * 2)],
                )
                rows.append(row)
                if "error" not in row:
                    log(
                        f"{path} x{batch} open {rate:,}/s: {row['orders_per_s']:,.0f}/s "
                        f"lost {row['lost']} gaps {row['seq_gaps']}+{row['out_gaps']}"
                    )
                if not row["clean"]:
                    break  # higher rates only lose more (and may wedge the gateway)
                rate = int(rate * LADDER_STEP)
            moderate = int(min(plan["moderate"], base * 0.5))
            for _ in range(LATENCY_RUNS):
                row = runner.run(
                    batch,
                    "latency",
                    ["--rate", str(moderate), "--count", str(int(moderate * 2))]
                    + ["--duration", "4"],
                )
                rows.append(row)
                if "error" not in row:
                    rtt = row["rtt_us"]
                    log(
                        f"{path} x{batch} latency at {moderate:,}/s: p50 {rtt['p50']} "
                        f"p90 {rtt['p90']} p99 {rtt['p99']}"
                    )
            # Ping-pong: one datagram outstanding, the round-trip floor without queueing.
            row = runner.run(
                batch,
                "pingpong",
                ["--window", str(batch), "--count", str(batch * 20_000), "--duration", "2"],
            )
            rows.append(row)
            if "error" not in row:
                rtt = row["rtt_us"]
                log(f"{path} x{batch} ping-pong: p50 {rtt['p50']} p99 {rtt['p99']}")
    finally:
        runner.close()
    for row in rows:
        row["attach_mode"] = runner.stats.get("attach_mode")
        row["bind_mode"] = runner.stats.get("bind_mode")
        row["generator"] = generator
        row["gateway_args"] = " ".join(gw_args)
    return rows


def best(rows: list[dict[str, Any]], path: str, batch: int) -> dict[str, Any] | None:
    """The fastest run of (path, batch) in which every order was answered without a loss."""
    ok = [
        r
        for r in rows
        if r["path"] == path
        and r["orders_per_datagram"] == batch
        and r["kind"] in ("closed", "open")
        and r["clean"]
    ]
    return max(ok, key=lambda r: r["orders_per_s"], default=None)


def _round_ratios(rows: list[dict[str, Any]], num: str, den: str, batch: int) -> list[float]:
    """best(num) / best(den) within each round of a `--rounds` run, in round order."""
    out = []
    for rnd in sorted({r.get("round", 0) for r in rows}):
        mine = [r for r in rows if r.get("round", 0) == rnd]
        a, u = best(mine, num, batch), best(mine, den, batch)
        if a and u and u["orders_per_s"] > 0:
            out.append(a["orders_per_s"] / u["orders_per_s"])
    return out


def _latency(
    rows: list[dict[str, Any]], path: str, batch: int, kind: str = "latency"
) -> dict[str, Any] | None:
    """Of the runs of `kind`, the one with the median p99 (the lower middle of an even count)."""
    runs = sorted(
        (
            r
            for r in rows
            if r["path"] == path
            and r["orders_per_datagram"] == batch
            and r["kind"] == kind
            and "error" not in r
        ),
        key=lambda r: r["rtt_us"]["p99"],
    )
    return runs[(len(runs) - 1) // 2] if runs else None


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Linux {platform.release()}"


def render_section(
    rows: list[dict[str, Any]], batches: list[int], load: tuple[float, float] = (0.0, 0.0)
) -> str:
    """The "## Wire" section of docs/BENCHMARKS.md; `load` = 1-minute load average before and
    after the run (other work on this 2-core machine skews every figure)."""
    attach = {r["path"]: f"{r.get('attach_mode')}/{r.get('bind_mode')}" for r in rows}
    paths = [p for p in PATH_ORDER if any(r["path"] == p for r in rows)]
    gen_io = (
        "its own AF_XDP socket, `--xdp`"
        if rows and rows[0].get("generator") == "afxdp"
        else "kernel UDP, sendmmsg/recvmmsg"
    )
    gw_args = rows[0].get("gateway_args", " ".join(JOURNAL_ARGS)) if rows else ""
    reserved = (
        " (the journal space a whole bench needs reserved before the first run, as before a "
        "market opens)"
        if "--journal-reserve-mb" in gw_args
        else ""
    )
    flags = f"--poll spin --durability none {gw_args}".strip()
    out = [
        "## Wire",
        "",
        "Command: `make bench-wire` (rows in `build/bench/wire.json`). "
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {_machine()}.",
        f"Veth lab (`xdpex lab`), xdpexd `{flags}` pinned on CPU 0{reserved}, "
        f"xdpex-loadgen ({gen_io}) pinned on CPU 1, 2 sessions per run, 4 symbols, "
        "mix 60 % resting / 30 % cancel / 10 % crossing IOC. AF_XDP attach/bind: "
        f"{attach.get('afxdp', 'n/a')}; DPDK: {attach.get('dpdk', 'n/a')} (an af_packet port on "
        "the same veth, EAL `--no-huge -m 1024 --no-pci`). Paths `*-base`: the same modes of "
        "the baseline build given to `--baseline-xdpexd`. Load average before/after the run: "
        f"{load[0]:.1f} / {load[1]:.1f} (2 cores; anything above ~2 means other work competed).",
        "",
        "Best rate = the fastest run (closed loop with a window, or open loop at a fixed rate) in "
        "which every order was answered and no datagram was lost in either direction. Round trip "
        "= generator clock now − echoed client timestamp, open loop at the moderate load shown; "
        "ping-pong = one datagram outstanding at a time (no queueing). Generator busy % = share "
        "of the run the generator spent sending and receiving rather than waiting (near 100 "
        "would mean the generator, not the gateway, set the pace). Gateway busy % = share of the "
        "run xdpexd's queue thread spent on rx batches (parse, engine, journal write, transmit) "
        "rather than spinning idle, from its `busy_ns` counter; gateway ns/order = that time "
        "per answered order (wall time, so it includes any preemption by other work). CPU wait % "
        "= share of the run the generator / xdpexd was runnable but another task held its core "
        "(/proc schedstat): the machine is shared, and this, not the wire path, makes the "
        "millisecond tails.",
        "",
        "| path | orders/datagram | best rate, all answered (orders/s) | run | "
        "rtt p50 / p90 / p99 / p99.9 (µs), median-p99 run of 3 | at load (orders/s) | "
        "ping-pong rtt p50 / p99 (µs) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for batch in batches:
        for path in paths:
            b, lat = best(rows, path, batch), _latency(rows, path, batch)
            rate = f"{b['orders_per_s']:,.0f}" if b else "none clean"
            how = (
                (f"closed, window {b['window']}" if b["kind"] == "closed" else
                 f"open, offered {b['offered']:,.0f}")
                if b else "-"
            )  # fmt: skip
            rtt = (
                " / ".join(f"{lat['rtt_us'][k]:.1f}" for k in ("p50", "p90", "p99", "p999"))
                if lat
                else "-"
            )
            at = f"{lat['offered']:,.0f}" if lat else "-"
            pp = _latency(rows, path, batch, "pingpong")
            pps = f"{pp['rtt_us']['p50']:.1f} / {pp['rtt_us']['p99']:.1f}" if pp else "-"
            out.append(f"| {path} | {batch} | {rate} | {how} | {rtt} | {at} | {pps} |")
    out.append("")
    for batch in batches:
        for num, den in (
            ("afxdp", "udp"),
            ("dpdk", "udp"),
            ("dpdk", "afxdp"),
            ("afxdp", "afxdp-base"),
            ("udp", "udp-base"),
        ):
            a, u = best(rows, num, batch), best(rows, den, batch)
            if a and u and u["orders_per_s"] > 0:
                ratio = a["orders_per_s"] / u["orders_per_s"]
                out.append(f"- Ratio {num}/{den}, {batch} orders/datagram: **{ratio:.2f}×**")
                per = _round_ratios(rows, num, den, batch)
                if len(per) > 1:
                    mid = sorted(per)[len(per) // 2]
                    out.append(
                        f"  - per round (the two measured back to back): "
                        f"{', '.join(f'{x:.2f}' for x in per)}; median {mid:.2f}×"
                    )
    waits = {
        who: sorted(w for r in rows if (w := r.get(f"{who}_cpu_wait_pct")) is not None)
        for who in ("generator", "gateway")
    }
    if waits["generator"] or waits["gateway"]:
        med = {k: f"{v[len(v) // 2]:.0f} %" if v else "n/a" for k, v in waits.items()}
        out.append(
            f"- CPU wait, median over the runs (runnable but another task held the core): "
            f"generator {med['generator']}, xdpexd {med['gateway']}"
        )
    out.append("")
    out.append("All runs:")
    out.append("")
    out.append(
        "| path | n | run | offered | window | sent | answered | lost | orders/s | "
        "p50 | p90 | p99 | p99.9 | gaps in/out | generator busy % | gateway busy % | "
        "gateway ns/order | CPU wait % gen / gw |"
    )
    out.append("|" + " --- |" * 18)
    for r in rows:
        if "error" in r:
            out.append(
                f"| {r['path']} | {r['orders_per_datagram']} | {r['kind']} | failed: "
                f"{r['error']} | | | | | | | | | | | | | | |"
            )
            continue
        off = f"{r['offered']:,.0f}" if r["offered"] else "-"
        out.append(
            f"| {r['path']} | {r['orders_per_datagram']} | {r['kind']} | {off} | "
            f"{r['window'] or '-'} | {r['sent']:,} | {r['answered']:,} | {r['lost']:,} | "
            f"{r['orders_per_s']:,.0f} | {r['rtt_us']['p50']:.1f} | {r['rtt_us']['p90']:.1f} | "
            f"{r['rtt_us']['p99']:.1f} | "
            f"{r['rtt_us']['p999']:.1f} | {r['seq_gaps']}/{r['out_gaps']} | "
            f"{r.get('generator_busy_pct') or 0:.0f} | {_opt(r.get('gateway_busy_pct'))} | "
            f"{_opt(r.get('gateway_ns_per_order'))} | "
            f"{_opt(r.get('generator_cpu_wait_pct'))} / {_opt(r.get('gateway_cpu_wait_pct'))} |"
        )
    return "\n".join(out) + "\n"


def _opt(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def update_doc(doc: Path, section: str) -> None:
    """Replaces the "## Wire" section of `doc` (up to the next "## " heading), or appends it."""
    update_section(doc, "## Wire", section)


def update_section(doc: Path, heading: str, section: str) -> None:
    """Replaces the section of `doc` under `heading` (up to the next "## " heading), or appends
    it."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == heading), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench-wire", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("build/bench/wire.json"))
    p.add_argument("--doc", type=Path, default=None, help="docs/BENCHMARKS.md to update")
    p.add_argument("--paths", default="afxdp,udp,dpdk")
    p.add_argument(
        "--baseline-xdpexd",
        type=Path,
        default=None,
        help="another build of xdpexd (e.g. before a change; `make bench-wire BASE=<git ref>` "
        "builds one): its afxdp and udp modes are measured too, as afxdp-base and udp-base",
    )
    p.add_argument("--batches", default="16,1")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every path this many times, alternating (with --baseline-xdpexd: base, "
        "new, base, new, ...), so a busy spell of the shared machine hits both builds alike; "
        "the ratios are then also given per round",
    )
    p.add_argument("--prefix", default=f"xbw{os.getpid()}")
    p.add_argument(
        "--generator",
        choices=["afxdp", "udp"],
        default="afxdp",
        help="the load generator's own I/O (default: its AF_XDP socket)",
    )
    p.add_argument(
        "--gateway-args",
        default=" ".join(JOURNAL_ARGS),
        help="extra xdpexd options for both paths (default: %(default)s); e.g. '' to measure "
        "the journal reserving its pages as it goes",
    )
    a = p.parse_args(argv)
    paths = [x for x in a.paths.split(",") if x]
    bad = [x for x in paths if x not in ("afxdp", "udp", "dpdk")]
    if bad:
        p.error(f"--paths {a.paths}: {bad[0]} is not afxdp, udp or dpdk")
    if a.baseline_xdpexd is not None:
        if not a.baseline_xdpexd.exists():
            p.error(f"--baseline-xdpexd {a.baseline_xdpexd}: no such file")
        # Each mode right after its baseline, so the two share the machine's state of the moment.
        paths = [q for m in paths for q in ((f"{m}-base", m) if m != "dpdk" else (m,))]
    batches = [int(x) for x in a.batches.split(",") if x]
    if a.rounds < 1:
        p.error(f"--rounds {a.rounds}: at least 1")

    def log(msg: str) -> None:
        print(f"bench-wire: {msg}", flush=True)

    lab = Lab(a.prefix)
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    try:
        lab.up()
        for rnd in range(a.rounds):
            for path in paths:
                binary = a.baseline_xdpexd if path.endswith("-base") else None
                got = _measure_path(
                    lab, path, batches, a.generator, log, a.gateway_args.split(), binary
                )
                for row in got:
                    row["round"] = rnd
                rows += got
    except (LabError, WireError, OSError) as e:
        print(f"bench-wire: failed: {e}", file=sys.stderr)
        return 1
    finally:
        lab.down()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=1) + "\n")
    section = render_section(rows, batches, (load_before, os.getloadavg()[0]))
    print(section)
    if a.doc is not None:
        update_doc(a.doc, section)
        log(f"updated {a.doc}")
    log(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
