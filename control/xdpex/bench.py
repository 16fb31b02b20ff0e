"""Control-plane benchmarks (`make control-bench`): REST order entry driven by wrk, gRPC by the
project's callers, each figure beside the kernel-UDP wire path of the same run.

One run starts a real xdpexd (kernel-UDP mode, `--poll sleep`), the control plane as served
(`python -m xdpex.serve`: REST + gRPC, SQLite) and the persister tailing the journal into the same
database, as `xdpex up` runs them; then, for a bounded time each:

- `rest`, 1,000 orders/s offered: wrk at a constant rate (control/bench/orders.lua: a schedule
  per connection, latency from the scheduled time, so a slow answer counts against the requests
  it held up);
- `rest`, closed loop over 8 connections: the rate;
- `rest-batch`: POST /api/v1/orders/batch, 1,000 orders a request, closed loop;
- `grpc-batch`: SubmitOrders, 1,000 orders a call, 2 callers back to back;
- `grpc-stream`: StreamOrders, 1,000-order batches, 2 callers each keeping the window full;
- `udp-wire`: xdpex-loadgen over UDP to the same xdpexd (16 orders a datagram, closed loop).

Rows (api, connections, offered, orders_per_s, p50_ms, p99_ms, errors, and the control plane's
CPU time per order) go to JSON (--out); the "## Control plane" section of docs/BENCHMARKS.md is
rewritten with the table (--doc). The persister's drain rates into SQLite and PostgreSQL follow.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
from xdpex_services import PostgresInstance

from .config import REPO_ROOT
from .db import drop_schema, make_engine, migrate
from .localdp import LocalDataplane, cleanup_dir, short_tmpdir
from .pb import orderentry_pb2 as pb
from .pb import orderentry_pb2_grpc as pbg
from .persister import Persister

TOKEN = "xt_bench_operator"
SECTION = "## Control plane"
WRK_LUA = REPO_ROOT / "control/bench/orders.lua"
LOADGEN = REPO_ROOT / "build/traffic/xdpex-loadgen"
SEEDS_RATE = 946  # orders/s of the system this replaces (issue 14), the reference row
# The bench's one token sends every row back to back: the per-token request limit (10,000/s,
# burst 20,000 by default) would answer the later closed-loop runs 429 and the rows would measure
# the limiter (seen: one REST 8-connection run of three with 3,119 errors). 0 = unlimited.
_UNLIMITED = {"XDPEX_API_TOKEN_RATE": "0"}
# control-plane builds compared in one run (--variants): the first is the one served by default
VARIANTS = {
    "c": {"XDPEX_FASTWIRE": "1", "XDPEX_AUDIT_ORDER_ENTRY": "0"} | _UNLIMITED,
    "python": {"XDPEX_FASTWIRE": "0", "XDPEX_AUDIT_ORDER_ENTRY": "0"} | _UNLIMITED,
    "python+audit": {"XDPEX_FASTWIRE": "0", "XDPEX_AUDIT_ORDER_ENTRY": "1"} | _UNLIMITED,
}
VARIANT_TEXT = {
    "c": "as served: per-order work in C (xdpex.fastwire), order entry not in the audit log",
    "python": "the Python paths (XDPEX_FASTWIRE=0), order entry not in the audit log",
    "python+audit": "the Python paths and a spooled audit record per order-entry request "
    "(XDPEX_FASTWIRE=0 XDPEX_AUDIT_ORDER_ENTRY=1): the code before issue 14's last steps",
}
GOALS = {
    ("rest", "rate"): "p99 ≤ 3 ms at 1,000 orders/s",
    ("rest", "closed"): "≥ 5,000 orders/s",
    ("rest-batch", "closed"): "≥ 100,000 orders/s",
    ("grpc-batch", "closed"): "≥ 200,000 orders/s, call p99 ≤ 20 ms",
    ("grpc-stream", "closed"): "≥ 200,000 orders/s",
}


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else 0.0


class CpuMeter:
    """CPU seconds (user + system) a process used between `start` and `stop`."""

    def __init__(self, pid: int):
        self.pid = pid
        self.path = Path(f"/proc/{pid}/stat")
        self.t0 = 0.0

    def _now(self) -> float:
        f = self.path.read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def start(self) -> None:
        self.t0 = self._now()

    def stop(self) -> float:
        return self._now() - self.t0


def _orders(n: int) -> list[Any]:
    """Alternating buy and sell GTC limits at one price a symbol: each trades with the one
    before, the books stay shallow (the same orders as the wrk script's)."""
    return [
        pb.NewOrder(
            symbol_id=1 + (i // 2) % 4,
            side=pb.BUY if i % 2 else pb.SELL,
            type=pb.LIMIT,
            tif=pb.GTC,
            qty=1,
            price=900,
        )
        for i in range(n)
    ]


def bench_wrk(url: str, mode: str, batch: int, rate: int, conns: int, secs: float) -> dict:
    """wrk with control/bench/orders.lua; rate 0 = closed loop."""
    threads = conns if rate else min(conns, 2)
    secs = max(1, math.ceil(secs))  # wrk takes whole seconds
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--timeout", "10s"]
    cmd += ["-s", str(WRK_LUA), url, "--", mode, str(batch), str(rate), TOKEN, str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("XDPEX_WRK ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()[:500]}")
    w = json.loads(line.split(" ", 1)[1])
    el = w["duration_us"] / 1e6
    return {
        "orders": w["ok"] * batch,
        "seconds": round(el, 3),
        "orders_per_s": round(w["ok"] * batch / el),
        "requests_per_s": round(w["requests"] / el),
        "p50_ms": round(w["p50_us"] / 1e3, 3),
        "p99_ms": round(w["p99_us"] / 1e3, 3),
        "p999_ms": round(w["p999_us"] / 1e3, 3),
        "errors": w["bad_status"] + w["socket_errors"] + w["timeouts"],
        "latency_from": "schedule" if w["corrected"] else "send",
    }


def bench_rest(port: int, seconds: float, connections: int = 1) -> dict[str, Any]:
    """POST /api/v1/orders closed loop over `connections` (wrk; `xdpex bench` uses it)."""
    return bench_wrk(f"http://127.0.0.1:{port}", "single", 1, 0, connections, seconds)


def bench_grpc(port: int, seconds: float, batch: int, clients: int) -> dict[str, Any]:
    """`clients` callers (threads, one channel each) each sending SubmitOrders back to back."""
    md = [("authorization", f"Bearer {TOKEN}")]
    req = pb.SubmitOrdersRequest(orders=_orders(batch))
    lat: list[float] = []
    counts = [0, 0]  # orders, errors
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def caller() -> None:
        with grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20)]
        ) as ch:
            stub = pbg.OrderEntryStub(ch)
            stub.SubmitOrders(req, metadata=md)  # warm up (login, caches)
            start.wait()
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                t = time.perf_counter()
                try:
                    n, err = len(stub.SubmitOrders(req, metadata=md, timeout=30).acks), 0
                except grpc.RpcError:
                    n, err = 0, 1
                with lock:
                    lat.append(time.perf_counter() - t)
                    counts[0] += n
                    counts[1] += err

    return _run_callers(caller, clients, start, counts, lat)


def bench_grpc_stream(port: int, seconds: float, batch: int, clients: int) -> dict[str, Any]:
    """`clients` StreamOrders calls, each keeping as many batches unanswered as the window the
    server announces allows (its credit); latency is a batch's, from its send to its answer."""
    md = [("authorization", f"Bearer {TOKEN}")]
    orders = _orders(batch)
    lat: list[float] = []
    counts = [0, 0]
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def caller() -> None:
        sent: queue.SimpleQueue[float] = queue.SimpleQueue()
        room = threading.Semaphore(0)
        t_end = [0.0]

        def requests():  # type: ignore[no-untyped-def]
            ref = 0
            while time.perf_counter() < t_end[0]:
                room.acquire()
                ref += 1
                sent.put(time.perf_counter())
                yield pb.OrderStreamRequest(ref=ref, orders=orders)

        with grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20)]
        ) as ch:
            stub = pbg.OrderEntryStub(ch)
            stub.SubmitOrders(pb.SubmitOrdersRequest(orders=orders), metadata=md)  # warm up
            start.wait()
            t_end[0] = time.perf_counter() + seconds
            call = stub.StreamOrders(requests(), metadata=md, timeout=seconds + 60)
            window = int(dict(call.initial_metadata()).get("xdpex-window", batch))
            for _ in range(max(1, window // batch)):
                room.release()
            try:
                for resp in call:
                    t = time.perf_counter()
                    with lock:
                        lat.append(t - sent.get())
                        counts[0] += len(resp.acks)
                        counts[1] += 1 if resp.error else 0
                    room.release()
            except grpc.RpcError:
                with lock:
                    counts[1] += 1

    return _run_callers(caller, clients, start, counts, lat)


def _run_callers(caller, clients, start, counts, lat) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    threads = [threading.Thread(target=caller) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    el = time.perf_counter() - t0
    return {
        "orders": counts[0],
        "seconds": round(el, 3),
        "orders_per_s": round(counts[0] / el),
        "p50_ms": round(_pct(lat, 50) * 1e3, 3),
        "p99_ms": round(_pct(lat, 99) * 1e3, 3),
        "errors": counts[1],
        "latency_from": "call" if lat else "-",
    }


def bench_udp(port: int, secret_of: dict[str, Any], seconds: float) -> dict[str, Any]:
    """xdpex-loadgen over UDP, 16 orders a datagram, closed loop (window 1024)."""
    cmd = [str(LOADGEN), "--server", f"127.0.0.1:{port}"]
    cmd += ["--session", f"{secret_of['session_id']}:{secret_of['secret']}"]
    cmd += ["--batch", "16", "--window", "1024", "--count", "20000000"]
    cmd += ["--duration", f"{seconds:g}", "--symbols", "1-4", "--price", "900:1100"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"xdpex-loadgen failed ({out.returncode}): {out.stderr.strip()}")
    r = json.loads(out.stdout)
    lat = r.get("latency_us") or r.get("rtt_us") or {}
    return {
        "orders": r["answered"],
        "seconds": r["duration_s"],
        "orders_per_s": r["orders_per_s"],
        "p50_ms": round(lat.get("p50", 0) / 1e3, 3),
        "p99_ms": round(lat.get("p99", 0) / 1e3, 3),
        "errors": r["lost"],
        "latency_from": "send",
    }


DRAIN_RECORDS = 300_000  # journal records drained at most (a bounded time on a busy machine)


def bench_persister(journal: Path, url: str, schema: str = "") -> dict[str, Any]:
    """Drain `journal` into the database at `url` (empty, or a fresh `schema` in it, dropped
    afterwards), up to DRAIN_RECORDS records (and the rest of the poll that passes it)."""
    eng = make_engine(url, schema)
    try:
        migrate(eng)
        p = Persister(eng, journal, batch=5000)
        t0 = time.perf_counter()
        while p.records_total < DRAIN_RECORDS and p.step():
            pass
        el = time.perf_counter() - t0
        p.close()
        return {
            "records": p.records_total,
            "rows": p.rows_total,
            "seconds": round(el, 3),
            "rows_per_s": round(p.rows_total / el),
            "records_per_s": round(p.records_total / el),
        }
    finally:
        eng.dispose()
        if schema:
            drop_schema(url, schema)


def bench_persister_postgres(journal: Path, pg_url: str = "") -> dict[str, Any]:
    """The persister into PostgreSQL: a private cluster (durable settings, like a gateway's
    server), or a schema of its own on `pg_url`."""
    if pg_url:
        res = bench_persister(journal, pg_url, f"xbench_{os.getpid()}")
        res["server"] = pg_url
        return res
    with PostgresInstance(dbname="bench", durable=True) as pg:
        res = bench_persister(journal, pg.url)
    res["server"] = "private PostgreSQL cluster (xdpex_services, fsync on)"
    return res


def _row(
    api: str, conns: int, offered: int | None, r: dict[str, Any], cpu_s: float, pers_s: float
) -> dict:
    row = {"api": api, "connections": conns, "offered": offered}
    row |= {k: r[k] for k in ("orders_per_s", "p50_ms", "p99_ms", "errors")}
    row["server_cpu_us_per_order"] = round(cpu_s / max(1, r["orders"]) * 1e6, 1)
    row["persister_cpu_us_per_order"] = round(pers_s / max(1, r["orders"]) * 1e6, 1)
    row |= {k: v for k, v in r.items() if k not in row}
    return row


def _runs(r: dict[str, Any]) -> str:
    xs = r.get("runs_orders_per_s") or []
    return f" (runs {xs[0]:,}–{xs[-1]:,})" if len(xs) > 1 else ""


def _compare(res: dict[str, Any]) -> str:
    """The before/after table: every variant's rows beside the first variant's."""
    variants = res.get("variants") or []
    if len(variants) < 2:
        return ""
    first = variants[0]
    by = {(r.get("variant", first), r["api"], r["offered"]): r for r in res["rows"]}
    lines = [
        "\nBefore/after in the same run (one control plane after another beside the same "
        "xdpexd and persister, the same rows):\n",
        *(f"- `{v}`: {VARIANT_TEXT[v]}" for v in variants),
        "",
        "| api | offered | variant | orders/s | p50 ms | p99 ms | CPU µs/order | "
        f"orders/s ÷ `{first}`'s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in res["rows"]:
        if r.get("variant", first) != first or r["api"] == "udp-wire":
            continue
        for v in variants:
            x = by.get((v, r["api"], r["offered"]))
            if x is None:
                continue
            lines.append(
                f"| {r['api']} | {r['offered'] or 'closed loop'} | `{v}` | "
                f"{x['orders_per_s']:,}{_runs(x)} | {x['p50_ms']} | {x['p99_ms']} | "
                f"{x['server_cpu_us_per_order']} | "
                f"{x['orders_per_s'] / max(1, r['orders_per_s']):.2f} |"
            )
    return "\n".join(lines) + "\n"


def write_doc(doc: Path, res: dict[str, Any], cmd: str) -> None:
    first = (res.get("variants") or ["c"])[0]
    rows = [r for r in res["rows"] if r.get("variant", first) == first or r["api"] == "udp-wire"]
    udp = next((r for r in rows if r["api"] == "udp-wire"), None)
    ref = udp["orders_per_s"] if udp else 0
    lines = [
        "| api | connections | offered (orders/s) | orders/s | p50 ms | p99 ms | errors | "
        "control-plane CPU µs/order | × seeds (946/s) | ÷ kernel-UDP wire | goal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| seeds (reference) | — | — | {SEEDS_RATE:,} | — | — | — | — | 1.00× | "
        f"{SEEDS_RATE / ref:.4f} | — |"
        if ref
        else "",
    ]
    for r in rows:
        kind = "rate" if r["offered"] else "closed"
        lines.append(
            f"| {r['api']} | {r['connections']} | {r['offered'] or 'closed loop'} | "
            f"{r['orders_per_s']:,}{_runs(r)} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | "
            f"{r['server_cpu_us_per_order'] if r['api'] != 'udp-wire' else '—'} | "
            f"{r['orders_per_s'] / SEEDS_RATE:.2f}× | "
            f"{r['orders_per_s'] / ref:.3f} | {GOALS.get((r['api'], kind), '—')} |"
            if ref
            else f"| {r['api']} | {r['connections']} | {r['offered']} | {r['orders_per_s']} |"
        )
    ps, pp = res.get("persister_sqlite"), res.get("persister_postgres")
    pers = ""
    if ps and pp:
        pers = (
            f"\nPersister, draining this run's journal afterwards (its first {DRAIN_RECORDS:,} "
            f"records at most): SQLite {ps['rows_per_s']:,} "
            f"rows/s ({ps['records_per_s']:,} journal records/s, {ps['rows']:,} rows), "
            f"PostgreSQL {pp['rows_per_s']:,} rows/s ({pp['records_per_s']:,} records/s).\n"
        )
    body = (
        f"{SECTION}\n\nMeasured by `{cmd}` on {res['host']} ({res['date']}), "
        f"{res['cpus']} cores shared with other work (load average at the start "
        f"{res['load_avg']}, at the end {res.get('load_avg_end', '?')}). One xdpexd in "
        "kernel-UDP mode (`--poll sleep`), the control plane as served (`python -m xdpex.serve`: "
        "uvicorn + uvloop + httptools, one process, REST and gRPC, SQLite), the persister tailing "
        "the journal into the same database, and the clients: wrk (Debian's) with "
        "`control/bench/orders.lua` for REST, the project's gRPC callers (threads of the bench "
        "process), xdpex-loadgen for the kernel-UDP wire path of the same xdpexd. Each row ran "
        f"{res['seconds']:g} s (median of {res['repeat']} runs by rate). Latency: REST from the "
        "scheduled send at a constant rate (wrk2-style, no coordinated omission) and from the send "
        "in closed loop; gRPC per call (batch of 1,000) or per streamed batch. CPU µs/order: the "
        "control plane process's user + system time over the row, per order (the persister's "
        "is in the JSON rows: `persister_cpu_us_per_order`). Raw rows: "
        "`build/bench/control.json`.\n\n"
        + "\n".join(x for x in lines if x)
        + "\n"
        + _compare(res)
        + pers
        + "\n"
        + NOTES
    )
    text = doc.read_text() if doc.exists() else "# xdpex benchmarks\n"
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + body + (text[nxt:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    doc.write_text(text)


NOTES_FILE = REPO_ROOT / "control/bench/NOTES.md"
NOTES = NOTES_FILE.read_text() if NOTES_FILE.exists() else ""


def _py_spy(out: Path | None, name: str, pid: int, secs: float) -> subprocess.Popen[bytes] | None:
    """py-spy sampling `pid` (every thread, native frames left out) for the row's duration."""
    if out is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("py-spy")
    cmd = [str(exe), "record", "-p", str(pid), "-d", str(max(1, math.ceil(secs))), "-r", "250"]
    cmd += ["-f", "raw", "-o", str(out / f"{name}.txt"), "--threads"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _median(runs: list[dict]) -> dict:
    runs = sorted(runs, key=lambda r: r["orders_per_s"])
    med = dict(runs[len(runs) // 2])
    if len(runs) > 1:
        med["runs_orders_per_s"] = [r["orders_per_s"] for r in runs]
    return med


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="xdpex-control-bench", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="per run")
    ap.add_argument("--repeat", type=int, default=1, help="runs per row; the median is kept")
    ap.add_argument("--rate", type=int, default=1000, help="REST constant-rate row (orders/s)")
    ap.add_argument("--rate-connections", type=int, default=4)
    ap.add_argument("--connections", type=int, default=8, help="REST closed-loop connections")
    ap.add_argument("--batch", type=int, default=1000, help="orders per batch (REST, gRPC)")
    ap.add_argument("--batch-connections", type=int, default=2, help="REST batch connections")
    ap.add_argument("--clients", type=int, default=2, help="gRPC callers")
    ap.add_argument("--only", default="", help="comma-separated apis to run (default all)")
    ap.add_argument("--no-persister-drain", action="store_true")
    ap.add_argument("--pg-url", default="", help="drain into this PostgreSQL (a schema of its "
                    "own) instead of a private cluster")
    ap.add_argument("--py-spy", type=Path, metavar="DIR", help="record the control plane with "
                    "py-spy during each row's first run: DIR/<api>-<connections>.txt (collapsed "
                    "stacks, idle frames left out)")
    ap.add_argument(
        "--variants",
        default="c",
        help="comma-separated control-plane variants to run the control-plane rows with, one "
        f"after another beside the same xdpexd ({', '.join(VARIANTS)}); the first gives the "
        "main table, the others the before/after table",
    )
    ap.add_argument("--out", type=Path, help="JSON results")
    ap.add_argument("--doc", type=Path, help="BENCHMARKS.md to update")
    a = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (provisioning/setup.sh installs Debian's wrk)")
    only = set(filter(None, a.only.split(",")))
    variants = [v for v in a.variants.split(",") if v]
    if not variants or set(variants) - set(VARIANTS):
        raise SystemExit(f"--variants: names from {', '.join(VARIANTS)}")
    d = short_tmpdir("bench")
    dp = LocalDataplane(d, extra=["--segment-mb", "256"]).start()
    cp = dp.control_plane(TOKEN, env=VARIANTS[variants[0]])
    pers: subprocess.Popen[bytes] | None = None
    res: dict[str, Any] = {
        "host": platform.node(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_avg": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "seconds": a.seconds,
        "repeat": a.repeat,
        "variants": variants,
        "rows": [],
    }
    try:
        cp.start()
        with open(d / "persister.log", "wb") as plog:
            pers = subprocess.Popen(
                [sys.executable, "-m", "xdpex.persister"], env=cp.env, stdout=plog, stderr=plog
            )
        assert cp.proc is not None
        meter, pmeter = CpuMeter(cp.proc.pid), CpuMeter(pers.pid)
        url, gport = cp.url, cp.grpc_port
        sess = httpx.post(
            f"{url}/api/v1/sessions",
            json={"name": "bench-udp", "cancel_on_disconnect": False},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        sess.raise_for_status()
        plan = [
            ("rest", a.rate_connections, a.rate,
             lambda: bench_wrk(url, "single", 1, a.rate, a.rate_connections, a.seconds)),
            ("rest", a.connections, None,
             lambda: bench_wrk(url, "single", 1, 0, a.connections, a.seconds)),
            ("rest-batch", a.batch_connections, None,
             lambda: bench_wrk(url, "batch", a.batch, 0, a.batch_connections, a.seconds)),
            ("grpc-batch", a.clients, None,
             lambda: bench_grpc(gport, a.seconds, a.batch, a.clients)),
            ("grpc-stream", a.clients, None,
             lambda: bench_grpc_stream(gport, a.seconds, a.batch, a.clients)),
            ("udp-wire", 1, None, lambda: bench_udp(dp.port, sess.json(), a.seconds)),
        ]  # fmt: skip
        for vi, variant in enumerate(variants):
            if vi:  # the next variant: another control plane, the same xdpexd and persister
                cp.stop()
                cp = dp.control_plane(TOKEN, env=VARIANTS[variant])
                cp.start()
                assert cp.proc is not None
                meter = CpuMeter(cp.proc.pid)
                url, gport = cp.url, cp.grpc_port
            bench_wrk(url, "single", 1, 0, 2, 1)  # warm up (login, caches)
            for api, conns, offered, run in plan:
                if (only and api not in only) or (vi and api == "udp-wire"):
                    continue
                runs = []
                for k in range(max(1, a.repeat)):
                    spy = None
                    if k == 0 and a.py_spy is not None:
                        name = f"{api}-{conns}" + (f"-{variant}" if vi else "")
                        spy = _py_spy(a.py_spy, name, meter.pid, a.seconds)
                    meter.start()
                    pmeter.start()
                    r = run()
                    if spy is not None:
                        spy.wait(a.seconds + 30)
                    runs.append(_row(api, conns, offered, r, meter.stop(), pmeter.stop()))
                    runs[-1]["variant"] = variant
                    print(f"{variant} {api} x{conns}: {runs[-1]}", flush=True)
                res["rows"].append(_median(runs))
        res["load_avg_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    finally:
        if pers is not None:
            pers.terminate()
            pers.wait(10)
        cp.stop()
        dp.stop()
    try:
        if not a.no_persister_drain:
            res["persister_sqlite"] = bench_persister(dp.journal, f"sqlite:///{d / 'drain.db'}")
            print(f"persister SQLite: {res['persister_sqlite']}", flush=True)
            res["persister_postgres"] = bench_persister_postgres(dp.journal, a.pg_url)
            print(f"persister PostgreSQL: {res['persister_postgres']}", flush=True)
    finally:
        cleanup_dir(d)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1))
    if a.doc:
        write_doc(a.doc, res, "make control-bench")
    return 0


if __name__ == "__main__":
    sys.exit(main())
