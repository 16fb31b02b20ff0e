"""`xdpex bench` end to end on a very small plan: a real veth lab, the real xdpexd in both modes
driven by xdpex-loadgen, the real control plane (REST + gRPC) in front of a real xdpexd. The
report it writes must hold every run: results.json has the rows, report.md has a table line for
each, the charts are PNG files matplotlib wrote (signature, its Software tag, a size and pixel
dimensions of a real chart). `--from` redraws the same report from results.json. Ctrl-C or
SIGTERM in the middle stops every daemon and removes the lab. Bad arguments are refused with a
message naming the option, before anything is set up."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dataplane_support import REPO, XDPEXD, need_root_and_built

LOADGEN = Path(os.environ.get("XDPEX_BUILD", REPO / "build")) / "traffic" / "xdpex-loadgen"
CHARTS = ("throughput_vs_offered.png", "latency.png", "throughput_by_batch.png")
SMALL = ["--batches", "1,16", "--seconds", "0.3", "--ladder", "1", "--control-seconds", "0.5",
         "--grpc-batch", "100"]  # fmt: skip


def bench(*args: str) -> list[str]:
    return [sys.executable, "-m", "xdpex.cli", "bench", *args]


def need_bench() -> None:
    need_root_and_built(XDPEXD, LOADGEN)


def leftovers(prefix: str) -> list[str]:
    """Namespaces, pins and processes of the lab `prefix` that still exist."""
    paths = [Path("/run/netns") / f"{prefix}-{side}" for side in ("gw", "tg")]
    paths.append(Path("/sys/fs/bpf") / f"xdpex-{prefix}")
    found = [str(p) for p in paths if p.exists()]
    me = os.getpid()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if prefix in cmd and "pytest" not in cmd:
            found.append(f"pid {d.name}: {cmd[:120]}")
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    need_bench()
    out = tmp_path_factory.mktemp("bench") / "report"
    prefix = f"xbrt{os.getpid() % 100000}"
    p = subprocess.run(bench("--out", str(out), "--prefix", prefix, *SMALL),
                       capture_output=True, text=True, timeout=85)  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    yield out, p.stdout, prefix


def rows_of(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    data = json.loads((out / "results.json").read_text())
    return data["rows"], data["meta"]


def test_bench_runs_every_scenario_and_cleans_up(report: tuple[Path, str, str]) -> None:
    out, stdout, prefix = report
    rows, meta = rows_of(out)
    assert meta["plan"]["batches"] == [1, 16] and meta["duration_s"] > 0
    for path in ("afxdp", "udp"):
        for n in (1, 16):
            mine = [r for r in rows if r["path"] == path and r["orders_per_datagram"] == n]
            (closed,) = [r for r in mine if r["kind"] == "closed"]
            assert "error" not in closed, closed
            assert closed["answered"] == closed["sent"] > 0 and closed["orders_per_s"] > 0
            assert [r["kind"] for r in mine if r["kind"] == "open"] == ["open"]
            assert [r["kind"] for r in mine if r["kind"] == "latency"] == ["latency"]
            assert [r["kind"] for r in mine if r["kind"] == "pingpong"] == ["pingpong"]
    grpc = [r for r in rows if r["path"] == "grpc-batch"]
    rest = [r for r in rows if r["path"] == "rest-single"]
    assert len(grpc) == len(rest) == 1
    for r in grpc + rest:
        assert "error" not in r, r
        assert r["answered"] > 0 and r["rtt_us"]["p50"] > 0
    assert grpc[0]["orders_per_datagram"] == 100 and grpc[0]["answered"] % 100 == 0

    # One progress line per scenario, each with the elapsed time.
    progress = [ln for ln in stdout.splitlines() if re.match(r"\[\s*\d+\.\d s\] ", ln)]
    for r in rows:
        label = (
            r["path"] if r["scenario"] == "control" else f"{r['path']} x{r['orders_per_datagram']}"
        )
        assert any(label in ln and ("orders/s" in ln or "FAILED" in ln) for ln in progress), label
    assert "Best rate per batch size" in stdout
    assert leftovers(prefix) == []


def test_markdown_has_every_row(report: tuple[Path, str, str]) -> None:
    out, _, _ = report
    rows, _ = rows_of(out)
    md = (out / "report.md").read_text()
    table = md.split("## All runs")[1].splitlines()
    for r in rows:
        start = f"| {r['path']} | {r['orders_per_datagram']} | {r['kind']} | "
        if "error" in r:
            assert any(ln.startswith(start + "failed:") for ln in table), start
            continue
        cells = f"| {r['answered']:,} | {r['lost']:,} | {r['orders_per_s']:,.0f} |"
        match = [ln for ln in table if ln.startswith(start) and cells in ln]
        assert match, (start, r)
        twin = [x for x in rows if x["kind"] == r["kind"] == "closed" and "error" not in x
                and x["orders_per_datagram"] == r["orders_per_datagram"]]  # fmt: skip
        if len(twin) == 2:  # closed loop on both paths: the ratio column divides them
            a, u = sorted(twin, key=lambda x: x["path"])  # afxdp < udp
            assert match[0].endswith(f"| {a['orders_per_s'] / u['orders_per_s']:.2f}× |"), match
    # Summary: both batch sizes with the ratio of the best clean rates.
    for n in (1, 16):
        best = {
            p: max((r["orders_per_s"] for r in rows if r["path"] == p and r.get("clean")
                    and r["orders_per_datagram"] == n and r["kind"] in ("closed", "open")),
                   default=None)
            for p in ("afxdp", "udp")
        }  # fmt: skip
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {n} | "))
        if best["afxdp"] and best["udp"]:
            assert f"{best['afxdp'] / best['udp']:.2f}×" in line, line
    assert "## Latency" in md and "| rest-single | 1 |" in md


def test_charts_are_real_pngs(report: tuple[Path, str, str]) -> None:
    import matplotlib.image as mpimg

    out, _, _ = report
    for name in CHARTS:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(data) > 10_000, (name, len(data))
        assert b"Software" in data[:4096] and b"Matplotlib" in data[:4096], name
        img = mpimg.imread(out / name)
        assert img.shape[:2] == (500, 800), (name, img.shape)
        assert img[..., :3].std() > 0.05, f"{name} is blank"


def test_from_redraws_the_same_report(report: tuple[Path, str, str], tmp_path: Path) -> None:
    out, _, _ = report
    again = tmp_path / "again"
    p = subprocess.run(bench("--out", str(again), "--from", str(out / "results.json")),
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert (again / "report.md").read_text() == (out / "report.md").read_text()
    assert json.loads((again / "results.json").read_text()) == json.loads(
        (out / "results.json").read_text()
    )
    for name in CHARTS:
        assert (again / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_tears_everything_down(sig: int, tmp_path: Path) -> None:
    need_bench()
    prefix = f"xbri{os.getpid() % 10000}{sig}"
    proc = subprocess.Popen(
        bench("--out", str(tmp_path / "r"), "--prefix", prefix, "--batches", "16", "--seconds",
              "3", "--control-seconds", "0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        for line in proc.stdout:  # interrupt once a gateway runs and traffic flows
            if "xdpexd up" in line or time.monotonic() > deadline:
                break
        time.sleep(1.0)
        proc.send_signal(sig)
        rc = proc.wait(30)
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 130, err
    assert "interrupted; lab and daemons stopped" in err
    time.sleep(0.5)
    assert leftovers(prefix) == []
    assert not (tmp_path / "r" / "results.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batches", "1,23"], "--batches: 23 is outside 1..22"),
        (["--batches", "1,x"], "--batches: 'x' is not a whole number"),
        (["--paths", "afxdp,dpdk"], "--paths: dpdk: expected afxdp and/or udp"),
        (["--seconds", "0"], "--seconds: 0 is outside 0.2..30"),
        (["--ladder", "half"], "--ladder: 'half': expected numbers"),
        (["--control-seconds", "-1"], "--control-seconds: -1 is outside 0..60"),
        (["--prefix", "bad/name"], "--prefix 'bad/name'"),
    ],
)
def test_bad_arguments_are_named(args: list[str], message: str, tmp_path: Path) -> None:
    p = subprocess.run(bench("--out", str(tmp_path / "r"), *args), capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert not (tmp_path / "r").exists()


def test_bad_out_and_from(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    p = subprocess.run(bench("--out", str(f)), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and f"--out {f}: exists and is not a directory" in p.stderr
    p = subprocess.run(bench("--out", str(tmp_path / "r"), "--from", str(f)),
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 2 and f"--from {f}: not JSON" in p.stderr
    f.write_text(json.dumps({"rows": [{"path": "udp"}]}))
    p = subprocess.run(bench("--out", str(tmp_path / "r"), "--from", str(f)),
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 2 and "rows[0].orders_per_datagram: missing" in p.stderr
    p = subprocess.run(bench(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--out" in p.stderr


def test_missing_build_is_named(tmp_path: Path) -> None:
    need_root_and_built(XDPEXD)
    env = {**os.environ, "XDPEX_BUILD": str(tmp_path / "nobuild")}
    p = subprocess.run(bench("--out", str(tmp_path / "r")), capture_output=True, text=True,
                       timeout=60, env=env)  # fmt: skip
    assert p.returncode == 1
    assert f"{tmp_path}/nobuild/dataplane/xdpexd is not built (run `make build`)" in p.stderr
    assert not (tmp_path / "r").exists()
