"""`make config-bench`: configuring a venue's worth of symbols and sessions, end to end.

10,000 symbols with bands of 1..100,000 ticks and 4,096 sessions, three ways, each on a fresh
xdpexd (kernel-UDP mode, its own journal and sockets):
  file   in the configuration file: from exec to "ready";
  ctl    one `bulk` request on the control socket;
  rest   POST /api/v1/symbols/bulk and /api/v1/sessions/bulk to the control plane running as its
         own process (`python -m xdpex.serve`, SQLite): from the first byte sent to the last
         answer, the dataplane applied and the database written.
For each: the time, xdpexd's resident memory (VmRSS) after it and before any order, and
what `stats` reports (limits, memory). Results to JSON and the "Configuration" section of
docs/BENCHMARKS.md.

usage: python -m xdpex.configbench [--symbols N] [--sessions N] [--out F.json] [--doc F.md]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx

from .dataplane import ControlClient
from .localdp import LocalDataplane, cleanup_dir, short_tmpdir

TOKEN = "xt_configbench_operator"
SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def engine(nsym: int, nses: int) -> dict[str, int]:
    # The defaults hold 16,384 symbols and 4,096 sessions; the control plane's own order-entry
    # session needs one more.
    return {"max_orders": 1 << 20, "max_symbols": max(16384, nsym), "max_sessions": nses + 64}


def symbols(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"S{i}", "tick": 1, "lot": 1, "band": [1, 100_000]}
            for i in range(1, n + 1)]


def sessions(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "secret": SECRET} for i in range(1, n + 1)]


def _report(dp: LocalDataplane, seconds: float, **extra: Any) -> dict[str, Any]:
    assert dp.proc is not None
    c = ControlClient(dp.ctl, timeout=30)
    try:
        st = c.stats()
    finally:
        c.close()
    return {"seconds": round(seconds, 3), "rss_bytes": rss_bytes(dp.proc.pid),
            "limits": st.get("limits"), "memory": st.get("memory")} | extra


def run_file(nsym: int, nses: int) -> dict[str, Any]:
    d = short_tmpdir("cfgb")
    cfg = {"engine": engine(nsym, nses), "symbols": symbols(nsym), "sessions": sessions(nses)}
    dp = LocalDataplane(d, config=cfg)
    try:
        t0 = time.monotonic()
        dp.start(timeout=120)
        return _report(dp, time.monotonic() - t0)
    finally:
        dp.stop()
        cleanup_dir(d)


def run_empty(nsym: int, nses: int) -> dict[str, Any]:
    d = short_tmpdir("cfgb")
    dp = LocalDataplane(d, config={"engine": engine(nsym, nses), "symbols": [], "sessions": []})
    try:
        dp.start(timeout=120)
        return _report(dp, 0.0)
    finally:
        dp.stop()
        cleanup_dir(d)


def run_ctl(nsym: int, nses: int) -> dict[str, Any]:
    d = short_tmpdir("cfgb")
    dp = LocalDataplane(d, config={"engine": engine(nsym, nses), "symbols": [], "sessions": []})
    try:
        dp.start(timeout=120)
        c = ControlClient(dp.ctl, timeout=120)
        try:
            t0 = time.monotonic()
            ans = c.bulk({"symbols": symbols(nsym), "sessions": sessions(nses)})
            dt = time.monotonic() - t0
        finally:
            c.close()
        if ans["applied"] != {"symbols": nsym, "sessions": nses} or ans["refused"]:
            raise SystemExit(f"config-bench: bulk applied {ans['applied']}, refused "
                             f"{ans['refused'][:3]}")
        return _report(dp, dt)
    finally:
        dp.stop()
        cleanup_dir(d)


def run_rest(nsym: int, nses: int) -> dict[str, Any]:
    d = short_tmpdir("cfgb")
    dp = LocalDataplane(d, config={"engine": engine(nsym, nses), "symbols": [], "sessions": []})
    cp = None
    try:
        dp.start(timeout=120)
        cp = dp.control_plane(TOKEN)
        cp.start()
        hdr = {"Authorization": f"Bearer {TOKEN}"}
        body_s = {"symbols": [{"symbol_id": s["id"], "name": s["name"], "tick": 1, "lot": 1,
                               "band_low": 1, "band_high": 100_000} for s in symbols(nsym)]}
        body_p = {"sessions": [{"name": f"firm{i}"} for i in range(nses)]}
        with httpx.Client(base_url=cp.url, headers=hdr, timeout=300) as h:
            t0 = time.monotonic()
            r1 = h.post("/api/v1/symbols/bulk", json=body_s)
            t1 = time.monotonic()
            r2 = h.post("/api/v1/sessions/bulk", json=body_p)
            t2 = time.monotonic()
        r1.raise_for_status()
        r2.raise_for_status()
        a1, a2 = r1.json(), r2.json()
        if a1["created"] != nsym or len(a2["created"]) != nses:
            raise SystemExit(f"config-bench: REST created {a1['created']} symbols, "
                             f"{len(a2['created'])} sessions; refused {a1['refused'][:3]} "
                             f"{a2['refused'][:3]}")
        return _report(dp, t2 - t0, symbols_seconds=round(t1 - t0, 3),
                       sessions_seconds=round(t2 - t1, 3))
    finally:
        if cp is not None:
            cp.stop()
        dp.stop()
        cleanup_dir(d)


def section(res: dict[str, Any]) -> str:
    mib = lambda b: f"{b / 2**20:,.0f}"  # noqa: E731
    n, s = res["symbols"], res["sessions"]
    rows = [
        ("configuration file (exec to ready)", res["file"]),
        ("control socket `bulk`, one request", res["ctl"]),
        ("REST `POST /api/v1/symbols/bulk` + `/sessions/bulk`", res["rest"]),
    ]
    mem = res["ctl"]["memory"] or {}
    per = mem.get("per", {})
    out = [
        "## Configuration",
        "",
        f"Command: `make config-bench` (`python -m xdpex.configbench`): {n:,} symbols with "
        f"bands of 1..100,000 ticks and {s:,} sessions on a fresh xdpexd (kernel-UDP mode, one "
        f"queue, engine max_orders 1,048,576), three ways. Run {res['date']}, load average "
        f"{res['load_avg']} (2 CPUs shared with other work).",
        "",
        "| how | time, s | xdpexd resident before any order, MiB | goal |",
        "| --- | --- | --- | --- |",
        f"| xdpexd started with no symbols and sessions | | {mib(res['empty']['rss_bytes'])} | |",
    ]
    for name, r in rows:
        extra = ""
        if "symbols_seconds" in r:
            extra = f" (symbols {r['symbols_seconds']:.2f}, sessions {r['sessions_seconds']:.2f})"
        out.append(f"| {name} | {r['seconds']:.2f}{extra} | {mib(r['rss_bytes'])} | "
                   "≤ 10 s, ≤ 2,048 MiB |")
    out += [
        "",
        f"What `stats` reports after the bulk request: engine fixed "
        f"{mib(mem.get('engine_fixed_bytes', 0))} MiB (order pool, index, books), ladder "
        f"directories {mib(mem.get('directory_bytes', 0))} MiB, ladder in use "
        f"{mem.get('ladder_bytes', 0):,} bytes (no order yet), dataplane "
        f"{mib(mem.get('dataplane_bytes', 0))} MiB (sessions, symbols, transmit slots), the "
        f"event buffer {mib(mem.get('event_buffer_bytes', 0))} MiB and the ladder pools "
        f"{mib(mem.get('ladder_reserved_bytes', 0))} MiB of address space (resident only as "
        f"used); per symbol id {per.get('symbol_id')} B "
        f"(+ its directory, 16 B per 64 ticks of band beyond 3,200 ticks), per session id "
        f"{per.get('session_id')} B, per resting order {per.get('resting_order')} B plus "
        f"its share of a {per.get('page')}-byte page (64 levels) when it opens one.",
        "",
        "Before the paged ladder, 1,000 such symbols took 19.8 s through REST and 4.79 GB "
        "(issue 13): every price of every band owned a level on both sides.",
        "",
    ]
    return "\n".join(out)


def update_doc(doc: Path, text: str) -> None:
    body = doc.read_text() if doc.exists() else "# Benchmarks\n\n"
    m = re.search(r"^## Configuration\n.*?(?=^## |\Z)", body, flags=re.S | re.M)
    if m:
        body = body[:m.start()] + text + ("\n" if m.end() < len(body) else "") + body[m.end():]
    else:
        body = body.rstrip("\n") + "\n\n" + text
    doc.write_text(body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xdpex.configbench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, default=10_000)
    ap.add_argument("--sessions", type=int, default=4_096)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--doc", type=Path)
    a = ap.parse_args(argv)
    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_avg": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "symbols": a.symbols, "sessions": a.sessions,
    }
    for name, fn in (("empty", run_empty), ("file", run_file), ("ctl", run_ctl),
                     ("rest", run_rest)):
        res[name] = fn(a.symbols, a.sessions)
        r = res[name]
        print(f"{name:5}: {r['seconds']:.2f} s, xdpexd resident {r['rss_bytes'] / 2**20:.0f} MiB")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2) + "\n")
    if a.doc:
        update_doc(a.doc, section(res))
        print(f"updated the Configuration section of {a.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
