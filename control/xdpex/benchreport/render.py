"""Writes the `xdpex bench` report: results.json, report.md and PNG charts.

Input is the list of rows the scenarios produced (xdpex.benchreport.scenarios) and a
`meta` dict (command, machine, date, plan, duration). Output, in the report directory:

- results.json: {"meta": ..., "rows": [...]}, every row as measured (failed runs included);
- report.md: a summary per batch size (best clean rate per path, the afxdp/udp ratio), the
  latency table, the control-plane table and every run, as Markdown tables;
- throughput_vs_offered.png: achieved against offered orders/s, one line per path and batch;
- latency.png: round-trip p50/p99/p99.9 per path: open loop at a moderate load, ping-pong, and
  one control-plane call (log scale);
- throughput_by_batch.png: best clean orders/s per batch size, one bar per path.

Charts use matplotlib's Agg backend (no display needed). `write_report` returns the paths written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

CHARTS = ("throughput_vs_offered.png", "latency.png", "throughput_by_batch.png")
WIRE_PATHS = ("afxdp", "udp")
LATENCY_KINDS = ("latency", "pingpong", "call")
_COLORS = {"afxdp": "tab:blue", "udp": "tab:orange", "grpc-batch": "tab:green",
           "rest-single": "tab:red"}  # fmt: skip


def _rate_label(v: float, _pos: object = None) -> str:
    return f"{v / 1e6:g} M" if v >= 1e6 else f"{v / 1e3:g} k" if v >= 1e3 else f"{v:g}"


def _ok(r: dict[str, Any]) -> bool:
    return "error" not in r


def best(rows: list[dict[str, Any]], path: str, batch: int) -> dict[str, Any] | None:
    """The fastest closed- or open-loop run of (path, batch) with every order answered."""
    ok = [
        r for r in rows
        if r["path"] == path and r["orders_per_datagram"] == batch
        and r.get("kind") in ("closed", "open") and r.get("clean")
    ]  # fmt: skip
    return max(ok, key=lambda r: r["orders_per_s"], default=None)


def ratio_of(rows: list[dict[str, Any]], r: dict[str, Any]) -> float | None:
    """afxdp / udp orders/s of the same closed-loop or ping-pong scenario (same batch size and
    window on both paths); None if either is missing or failed. Open-loop rungs are offered a
    fraction of each path's own closed-loop rate, so they have no counterpart to divide by."""
    if r.get("scenario") != "wire" or r.get("kind") not in ("closed", "pingpong"):
        return None
    twin = {
        x["path"]: x for x in rows
        if x.get("scenario") == "wire" and x["orders_per_datagram"] == r["orders_per_datagram"]
        and x["kind"] == r["kind"] and x.get("step") == r.get("step") and _ok(x)
    }  # fmt: skip
    a, u = twin.get("afxdp"), twin.get("udp")
    if a is None or u is None or not u["orders_per_s"]:
        return None
    return float(a["orders_per_s"]) / float(u["orders_per_s"])


def _num(v: float | int | None, fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def _rtt(r: dict[str, Any]) -> str:
    rtt = r.get("rtt_us") or {}
    return " / ".join(_num(rtt.get(k), ".1f") for k in ("p50", "p99", "p999"))


def batches_of(rows: list[dict[str, Any]]) -> list[int]:
    return sorted({r["orders_per_datagram"] for r in rows if r.get("scenario") == "wire"})


INCOMPLETE = (
    "**Incomplete run**: a step failed (see the command's output); the tables hold what was "
    "measured before it."
)


def render_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    out = [
        "# xdpex bench",
        "",
        f"Command: `{meta.get('command', 'xdpex bench')}`. Measured {meta.get('date', '?')} on "
        f"{meta.get('machine', '?')}; load average before/after {meta.get('load_before', 0):.1f} "
        f"/ {meta.get('load_after', 0):.1f}; the run took {meta.get('duration_s', 0):.0f} s.",
        "",
        *([INCOMPLETE, ""] if meta.get("complete") is False else []),
        "Wire: veth lab, xdpexd `--poll spin` on the gateway CPU, xdpex-loadgen "
        f"({meta.get('generator', 'afxdp')} I/O) on the other, 2 fresh sessions a run, 4 symbols, "
        "mix 60 % resting / 30 % cancel / 10 % crossing IOC. Offered = open-loop rate asked of "
        "the generator (`-` = closed loop with a window). Round trip = generator clock now − "
        "echoed client timestamp, in µs; latency = open loop at a moderate load, pingpong = one "
        "datagram outstanding at a time (the floor, no queueing). Control plane: xdpexd "
        "(kernel UDP) behind the REST + gRPC control plane; its round trip is one call (a whole "
        "gRPC batch). Ratio afxdp/udp: orders/s of the same closed-loop or ping-pong run on both "
        "paths (the summary divides the best clean rates).",
        "",
        "## Best rate per batch size (every order answered, no loss)",
        "",
        "| orders/datagram | afxdp orders/s | udp orders/s | ratio afxdp/udp |",
        "| --- | --- | --- | --- |",
    ]
    for b in batches_of(rows):
        a, u = best(rows, "afxdp", b), best(rows, "udp", b)
        ratio = (
            f"{a['orders_per_s'] / u['orders_per_s']:.2f}×"
            if a and u and u["orders_per_s"] else "-"
        )  # fmt: skip
        out.append(
            f"| {b} | {_num(a['orders_per_s']) if a else 'none clean'} | "
            f"{_num(u['orders_per_s']) if u else 'none clean'} | {ratio} |"
        )
    lat = [r for r in rows if r.get("kind") in LATENCY_KINDS and _ok(r)]
    if lat:
        out += [
            "",
            "## Latency",
            "",
            "| path | orders/datagram | run | offered | orders/s | RTT p50 / p99 / p999 (µs) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in lat:
            out.append(
                f"| {r['path']} | {r['orders_per_datagram']} | {r['kind']} | "
                f"{_num(r.get('offered'))} | "
                f"{_num(r['orders_per_s'])} | {_rtt(r)} |"
            )
    out += [
        "",
        "## All runs",
        "",
        "| path | orders/datagram | run | offered | answered | lost | orders/s | "
        "RTT p50 / p99 / p999 (µs) | ratio afxdp/udp |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if not _ok(r):
            out.append(
                f"| {r['path']} | {r['orders_per_datagram']} | {r.get('kind')} | failed: "
                f"{str(r['error']).replace('|', '/')} | | | | | |"
            )
            continue
        twin = ratio_of(rows, r)
        out.append(
            f"| {r['path']} | {r['orders_per_datagram']} | {r.get('kind')} | "
            f"{_num(r.get('offered'))} | {_num(r['answered'])} | {_num(r['lost'])} | "
            f"{_num(r['orders_per_s'])} | {_rtt(r)} | "
            f"{'-' if twin is None else f'{twin:.2f}×'} |"
        )
    out += ["", "Charts: " + ", ".join(f"![{c}]({c})" for c in CHARTS), ""]
    return "\n".join(out)


def chart_throughput_vs_offered(rows: list[dict[str, Any]], png: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    top = 0.0
    for path in WIRE_PATHS:
        for i, b in enumerate(batches_of(rows)):
            pts = sorted(
                (float(r["offered"]), float(r["orders_per_s"])) for r in rows
                if r["path"] == path and r["orders_per_datagram"] == b
                and r.get("kind") == "open" and _ok(r) and r.get("offered")
            )  # fmt: skip
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            top = max(top, *xs, *ys)
            lossy = [
                (float(r["offered"]), float(r["orders_per_s"])) for r in rows
                if r["path"] == path and r["orders_per_datagram"] == b
                and r.get("kind") == "open" and _ok(r) and r.get("offered") and not r["clean"]
            ]  # fmt: skip
            if lossy:
                lx, ly = zip(*lossy, strict=True)
                seen = "lost or gapped (not clean)" in ax.get_legend_handles_labels()[1]
                ax.scatter(lx, ly, s=90, marker="x", color="black", zorder=3,
                           label=None if seen else "lost or gapped (not clean)")  # fmt: skip
            style = "-" if path == "afxdp" else "--"
            ax.plot(xs, ys, marker="os^D"[i % 4], color=_COLORS[path], linestyle=style,
                    label=f"{path}, {b}/datagram")  # fmt: skip
    if top:
        ax.plot([0, top], [0, top], color="grey", lw=0.8, ls=":", label="answered = offered")
    ax.set_xlabel("offered (orders/s)")
    ax.set_ylabel("answered (orders/s)")
    ax.xaxis.set_major_formatter(FuncFormatter(_rate_label))
    ax.yaxis.set_major_formatter(FuncFormatter(_rate_label))
    ax.set_title("Throughput against offered rate, per path")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no successful open-loop run", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(png, format="png")
    plt.close(fig)


def chart_latency(rows: list[dict[str, Any]], png: Path) -> None:
    lat = [r for r in rows if r.get("kind") in LATENCY_KINDS and _ok(r)]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    keys = (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"))
    width = 0.25
    for j, (k, label) in enumerate(keys):
        xs = [i + (j - 1) * width for i in range(len(lat))]
        ys = [float((r["rtt_us"] or {}).get(k) or 0.0) for r in lat]
        ax.bar(xs, ys, width, label=label)
    ax.set_xticks(range(len(lat)))
    ax.set_xticklabels(
        [f"{r['path']} {r['kind']}\n{r['orders_per_datagram']}/"
         f"{'call' if r['kind'] == 'call' else 'dgram'}" for r in lat], fontsize=7,
    )  # fmt: skip
    if any(float((r["rtt_us"] or {}).get("p50") or 0) > 0 for r in lat):
        ax.set_yscale("log")
    ax.set_ylabel("round trip (µs, log scale)")
    ax.set_title("Latency percentiles per path")
    ax.grid(True, axis="y", alpha=0.3)
    if lat:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no successful latency run", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(png, format="png")
    plt.close(fig)


def chart_by_batch(rows: list[dict[str, Any]], png: Path) -> None:
    bs = batches_of(rows)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    width = 0.38
    for j, path in enumerate(WIRE_PATHS):
        ys = [float((best(rows, path, b) or {}).get("orders_per_s") or 0.0) for b in bs]
        xs = [i + (j - 0.5) * width for i in range(len(bs))]
        ax.bar(xs, ys, width, label=path, color=_COLORS[path])
    ax.set_xticks(range(len(bs)))
    ax.set_xticklabels([str(b) for b in bs])
    ax.set_xlabel("orders per datagram")
    ax.set_ylabel("best rate, every order answered (orders/s)")
    ax.yaxis.set_major_formatter(FuncFormatter(_rate_label))
    ax.set_title("Throughput per batch size")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, format="png")
    plt.close(fig)


def write_report(rows: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> list[Path]:
    """Writes results.json, report.md and the charts into `out` (created); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    res = out / "results.json"
    res.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    md = out / "report.md"
    md.write_text(render_markdown(rows, meta))
    pngs = [out / name for name in CHARTS]
    chart_throughput_vs_offered(rows, pngs[0])
    chart_latency(rows, pngs[1])
    chart_by_batch(rows, pngs[2])
    return [res, md, *pngs]


def load_results(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Reads a results.json written by write_report; ValueError names what is wrong."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"--from {path}: {e.strerror}") from e
    except ValueError as e:
        raise ValueError(f"--from {path}: not JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"--from {path}: expected an object with a 'rows' list")
    for i, r in enumerate(data["rows"]):
        for k in ("path", "orders_per_datagram"):
            if not isinstance(r, dict) or k not in r:
                raise ValueError(f"--from {path}: rows[{i}].{k}: missing")
    return data["rows"], data.get("meta") or {}
