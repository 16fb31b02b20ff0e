"""The scenarios `xdpex bench` runs, each producing rows for the report.

Wire scenarios (the veth lab, `xdpex lab`): for each path (xdpexd `--mode afxdp`, then `--mode
udp`, same binary and lab, gateway pinned on the lab's gateway CPU with `--poll spin`, the load
generator on the traffic CPU) and each batch size (orders per datagram): a closed loop with a
window of 64 datagrams (the rate the gateway sustains), then an open-loop ladder at fixed
fractions of that rate (throughput against offered rate), and for the latency batch sizes an
open loop at a moderate load and a ping-pong run (one datagram outstanding, the floor) for
round-trip percentiles. The gateway handling, fresh sessions per run
and restart after a failed run come from bench-wire's runner (xdpex_traffic.benchwire).

Control-plane scenarios: a real xdpexd (kernel UDP on loopback) with the control plane in its own
process (`python -m xdpex.serve`, REST + gRPC, SQLite), driven by the control benchmark's own
functions (xdpex.bench.bench_grpc: batch submission; bench_rest: one order per request).

Every scenario is bounded in time; `Plan` says how long.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdpex_traffic.benchwire import _Runner
from xdpex_traffic.lab import Lab

Log = Callable[[str], None]
PATHS = ("afxdp", "udp")
MAX_BATCH = 22  # orders a datagram holds (docs/protocol.md)


@dataclass(frozen=True)
class Plan:
    """How much of each scenario to run."""

    paths: tuple[str, ...] = PATHS
    batches: tuple[int, ...] = (1, 4, 16, 22)
    seconds: float = 2.0  # sending time of each generator run
    ladder: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.25)  # x the closed-loop rate
    latency_rate: int = 50_000  # single-order latency: offered orders/s (at most half the max)
    latency_batches: tuple[int, ...] = (1,)
    control_seconds: float = 3.0  # per control-plane figure; 0 = skip the control plane
    grpc_batch: int = 1000  # orders per gRPC SubmitOrders call
    grpc_clients: int = 2  # concurrent gRPC callers (when the control bench takes the number)
    generator: str = "afxdp"  # the load generator's own I/O (see xdpex-loadgen --xdp)


QUICK = Plan(seconds=1.0, ladder=(0.5, 0.75, 1.0), control_seconds=2.0)
FULL = Plan(
    seconds=3.0,
    ladder=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5),
    latency_batches=(1, 16),
    control_seconds=5.0,
)


def _window(batch: int) -> int:
    return 64 * batch  # 64 datagrams outstanding, as bench-wire does for 1 and 16


def run_wire(lab: Lab, plan: Plan, log: Log, rows: list[dict[str, Any]]) -> None:
    """Every wire scenario of `plan` on `lab` (which is up); appends one row per generator run
    to `rows` as it goes, so what was measured before a failure is kept."""
    secs = plan.seconds
    for path in plan.paths:
        io = ["--xdp", lab.tg_if] if plan.generator == "afxdp" else []
        t0 = time.monotonic()
        runner = _Runner(lab, path, io, lambda m: log(f"  {m}"))
        log(f"{path}: xdpexd up ({time.monotonic() - t0:.1f} s)")
        try:
            for batch in plan.batches:
                win = _window(batch)
                closed = _scenario(
                    runner, log, path, batch, "closed", 0,
                    ["--window", str(win), "--count", str(int(3_000_000 * secs))]
                    + ["--duration", str(secs)],
                    f"closed loop, window {win}",
                )  # fmt: skip
                rows.append(closed)
                base = max(float(closed.get("orders_per_s") or 0.0), 2_000.0)
                for step, frac in enumerate(plan.ladder, start=1):
                    rate = max(int(base * frac), 1_000)
                    row = _scenario(
                        runner, log, path, batch, "open", step,
                        ["--rate", str(rate), "--count", str(int(rate * secs))]
                        + ["--duration", str(secs * 2)],
                        f"open loop {frac:g} x closed, offered {rate:,}/s",
                    )  # fmt: skip
                    rows.append(row)
                    if not row["clean"]:
                        break  # higher rates only lose more (and can wedge the gateway)
                if batch in plan.latency_batches:
                    rate = max(int(min(plan.latency_rate, base * 0.5)), 1_000)
                    rows.append(
                        _scenario(
                            runner, log, path, batch, "latency", 0,
                            ["--rate", str(rate), "--count", str(int(rate * secs))]
                            + ["--duration", str(secs * 2)],
                            f"latency at {rate:,}/s",
                        )
                    )  # fmt: skip
                    # One datagram outstanding: the round-trip floor, without queueing.
                    rows.append(
                        _scenario(
                            runner, log, path, batch, "pingpong", 0,
                            ["--window", str(batch), "--count", str(batch * 20_000)]
                            + ["--duration", str(secs)],
                            "ping-pong (one datagram outstanding)",
                        )
                    )  # fmt: skip
        finally:
            runner.close()
        for row in rows:
            if row["path"] == path:
                row["attach_mode"] = runner.stats.get("attach_mode")
                row["bind_mode"] = runner.stats.get("bind_mode")
                row["generator"] = plan.generator


def _scenario(
    runner: _Runner, log: Log, path: str, batch: int, kind: str, step: int,
    args: list[str], what: str,
) -> dict[str, Any]:  # fmt: skip
    t0 = time.monotonic()
    row = runner.run(batch, kind, args)
    row["step"] = step
    row["scenario"] = "wire"
    row["elapsed_s"] = round(time.monotonic() - t0, 2)
    name = f"{path} x{batch} {what}"
    if "error" in row:
        log(f"{name}: FAILED ({row['elapsed_s']:.1f} s): {row['error']}")
        return row  # the runner has restarted xdpexd already
    rtt = row["rtt_us"]
    log(
        f"{name}: {row['orders_per_s']:,.0f} orders/s, answered {row['answered']:,} of "
        f"{row['sent']:,}, lost {row['lost']:,}, rtt p50 {rtt['p50']:.1f} p99 "
        f"{rtt['p99']:.1f} us ({row['elapsed_s']:.1f} s)"
    )
    if not row["clean"]:
        # After a run that lost datagrams the gateway can stay too busy to answer the next
        # logins for seconds; a fresh one keeps the next scenario's figure its own.
        runner.restart()
    return row


# -- control plane --------------------------------------------------------------------------------


def run_control(plan: Plan, log: Log, rows: list[dict[str, Any]]) -> None:
    """gRPC batch submission and REST single-order entry through a real control plane; appends
    a row for each to `rows`."""
    from .. import bench as cbench
    from ..localcp import LocalControlPlane
    from ..localdp import LocalDataplane, cleanup_dir, short_tmpdir

    t0 = time.monotonic()
    d = short_tmpdir("xbr")
    dp = LocalDataplane(d, extra=["--segment-mb", "64"])
    cp: LocalControlPlane | None = None
    try:
        dp.start()
        cp = dp.control_plane(cbench.TOKEN)
        cp.start()
        http, grpc_port = cp.http_port, cp.grpc_port
        log(f"control plane: up ({time.monotonic() - t0:.1f} s)")
        t1 = time.monotonic()
        try:
            g = cbench.bench_grpc(
                grpc_port, plan.control_seconds, plan.grpc_batch, clients=plan.grpc_clients
            )
            rows.append(_control_row("grpc-batch", plan.grpc_batch, g, time.monotonic() - t1))
        except Exception as e:  # noqa: BLE001 - recorded as a failed scenario, the rest runs on
            rows.append(_failed_row("grpc-batch", plan.grpc_batch, e, time.monotonic() - t1))
        log(_control_line(rows[-1]))
        t1 = time.monotonic()
        try:
            r = cbench.bench_rest(http, plan.control_seconds)
            rows.append(_control_row("rest-single", 1, r, time.monotonic() - t1))
        except Exception as e:  # noqa: BLE001
            rows.append(_failed_row("rest-single", 1, e, time.monotonic() - t1))
        log(_control_line(rows[-1]))
    finally:
        if cp is not None:
            cp.stop()
        dp.stop()
        cleanup_dir(d)


def _control_row(path: str, n: int, r: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """A control-bench result as a report row. Round trip = one call (gRPC: a whole batch)."""
    if "batch_p50_ms" in r:
        p50, p99 = r["batch_p50_ms"], r["batch_p99_ms"]
    else:
        p50, p99 = r["p50_ms"], r["p99_ms"]
    return {
        "scenario": "control",
        "path": path,
        "orders_per_datagram": n,  # orders per call
        "kind": "call",
        "step": 0,
        "offered": None,  # closed loop, one call outstanding
        "window": n,
        "sent": r["orders"],
        "answered": r["orders"],
        "lost": 0,
        "orders_per_s": float(r["orders_per_s"]),
        "rtt_us": {"p50": p50 * 1000.0, "p99": p99 * 1000.0, "p999": None},
        "clean": True,
        "fills": r.get("fills", r.get("fills_in_acks")),
        "clients": r.get("clients", 1),
        "elapsed_s": round(elapsed, 2),
    }


def _failed_row(path: str, n: int, e: Exception, elapsed: float) -> dict[str, Any]:
    msg = (str(e).splitlines() or [type(e).__name__])[0]
    return {
        "scenario": "control", "path": path, "orders_per_datagram": n, "kind": "call",
        "step": 0, "error": f"{type(e).__name__}: {msg}", "clean": False,
        "elapsed_s": round(elapsed, 2),
    }  # fmt: skip


def _control_line(row: dict[str, Any]) -> str:
    what = (
        f"{row['path']} ({row['orders_per_datagram']} orders a call)"
        if row["path"] == "grpc-batch"
        else f"{row['path']} (one order a request)"
    )
    if "error" in row:
        return f"{what}: FAILED ({row['elapsed_s']:.1f} s): {row['error']}"
    rtt = row["rtt_us"]
    return (
        f"{what}: {row['orders_per_s']:,.0f} orders/s, {row['answered']:,} answered, call p50 "
        f"{rtt['p50'] / 1000:.2f} ms p99 {rtt['p99'] / 1000:.2f} ms ({row['elapsed_s']:.1f} s)"
    )


def check_out_dir(out: Path) -> None:
    """Raises ValueError naming --out when the report cannot go there."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise ValueError(f"--out {out}: {parent} is not writable")
