"""The `xdpex engine` commands on real data: replay of the shared benchmark stream (exactly
357,529 fills), the LOBSTER replay of real AMZN order flow (executions hit the order the exchange
executed), the native benchmark on a small stream (its fills agree with the replay's), and the
errors a malformed stream gets. The inputs live in <repo>/data (data/README.md); a missing one fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from xdpex_engine.lobster import replay as lobster_replay
from xdpex_engine.native import BUILD_DIR, REPO

DATA = REPO / "data"
STREAM = DATA / "orders-s42-1m.csv.gz"
LOBSTER = DATA / "AMZN_2021-04-12_34200000_57600000_message_10.csv.gz"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"input missing: {path} (see data/README.md)")
    return path


def xdpex(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xdpex.cli", "engine", *args],
                          capture_output=True, text=True, timeout=300)


def small_stream(path: Path) -> Path:
    rows = ["phase,seq,type,sym,oid,side,price,qty"]
    oid = 0
    for i in range(40):  # prefill: a ladder either side of 1000 on two symbols
        side, price = ("B", 995 - i % 10) if i % 2 else ("S", 1005 + i % 10)
        rows.append(f"P,{i},N,{i % 2},{oid},{side},{price},{100 * (1 + i % 3)}")
        oid += 1
    live = list(range(oid))
    for i in range(400):
        kind = i % 10
        if kind < 6:
            side, price = ("B", 996 + i % 4) if i % 2 else ("S", 1004 - i % 4)
            rows.append(f"T,{i},N,{i % 2},{oid},{side},{price},{100 * (1 + i % 4)}")
            live.append(oid)
        elif kind < 9 and live:
            victim = live.pop((i * 7) % len(live))
            rows.append(f"T,{i},C,{victim % 2},{victim},B,1000,100")
        else:
            side, price = ("B", 1010) if i % 20 == 9 else ("S", 990)
            rows.append(f"T,{i},I,{i % 2},{oid},{side},{price},500")
        oid += 1
    path.write_text("\n".join(rows) + "\n")
    return path


def test_replay_of_shared_stream_yields_357529_fills(tmp_path: Path) -> None:
    out = tmp_path / "fills.csv"
    res = xdpex("replay", "--stream", str(need(STREAM)), "--fills", str(out))
    assert res.returncode == 0, res.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "taker_oid,maker_oid,qty,price"
    fills = [tuple(int(x) for x in ln.split(",")) for ln in lines[1:]]
    assert len(fills) == 357_529
    assert all(t != m and q > 0 and p > 0 for t, m, q, p in fills)
    assert fills[0] == (2004, 130, 700, 99999)  # first IOC of the timed part, best bid first
    assert "fills 357529" in res.stderr


def test_replay_refuses_malformed_stream(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("phase,seq,type,sym,oid,side,price,qty\nP,0,N,0,1,X,100,10\n")
    res = xdpex("replay", "--stream", str(bad), "--fills", str(tmp_path / "f.csv"))
    assert res.returncode == 1
    assert "line 2: bad field 'side'" in res.stderr
    bad.write_text("phase,seq,type\n")
    res = xdpex("replay", "--stream", str(bad), "--fills", str(tmp_path / "f.csv"))
    assert res.returncode == 1 and "expected header" in res.stderr


def test_bench_json_agrees_with_replay(tmp_path: Path) -> None:
    stream = small_stream(tmp_path / "small.csv")
    res = xdpex("bench", "--stream", str(stream), "--json", "--runs", "1")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    for key in ("msgs_per_s", "p50_ns", "p99_ns", "p999_ns", "per_type", "rss_bytes"):
        assert key in doc
    assert set(doc["per_type"]) == {"new", "cancel", "ioc"}
    assert doc["messages"] == 400 and doc["deterministic"] is True
    assert doc["p50_ns"] <= doc["p99_ns"] <= doc["p999_ns"]
    fills = tmp_path / "fills.csv"
    rep = xdpex("replay", "--stream", str(stream), "--fills", str(fills))
    assert rep.returncode == 0, rep.stderr
    assert doc["fills"] == len(fills.read_text().splitlines()) - 1 > 0


def test_bench_deep_variant_deepens_queues(tmp_path: Path) -> None:
    stream = small_stream(tmp_path / "small.csv")
    plain = json.loads(xdpex("bench", "--stream", str(stream), "--json", "--runs", "1").stdout)
    deep = json.loads(xdpex("bench", "--stream", str(stream), "--json", "--runs", "1",
                            "--deep", "4").stdout)
    assert deep["deep_factor"] == 4
    # Same orders on fewer, deeper levels.
    assert deep["resting_orders_start"] == plain["resting_orders_start"]
    assert deep["levels_start"] < plain["levels_start"]
    assert deep["orders_per_level_start"] > 1.5 * plain["orders_per_level_start"]
    assert deep["per_type"]["cancel"]["count"] == plain["per_type"]["cancel"]["count"]


def test_lobster_executions_hit_the_executed_order() -> None:
    rep = lobster_replay(need(LOBSTER))
    assert rep.events == 40_674
    assert rep.by_type[1] == 17_187 and rep.by_type[4] == 5_389
    assert rep.skipped[5] == 3_632 and rep.skipped[6] == 1
    assert rep.prefile[4] > 0 and rep.executions + rep.prefile[4] == rep.by_type[4] - (
        rep.stale_events)
    assert rep.share >= 0.99, rep.disagreements[:5]
    assert rep.strict_share >= 0.90
    assert rep.stale_events <= 10  # orders judged stale almost never show up again
    assert len(rep.bids) == 10 and len(rep.asks) == 10
    assert rep.bids[0][0] < rep.asks[0][0]


def test_lobster_command_prints_report_and_book() -> None:
    res = xdpex("lobster", str(need(LOBSTER)), "--show", "3")
    assert res.returncode == 0, res.stderr
    assert "executions of in-file orders" in res.stdout
    assert "final book (top 10 levels)" in res.stdout
    assert len([ln for ln in res.stdout.splitlines() if " | " in ln]) == 11


def test_lobster_rejects_malformed_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("34200.1,1,5,10,33500000,2\n")
    res = xdpex("lobster", str(bad))
    assert res.returncode == 1 and "direction must be 1 or -1" in res.stderr


def test_memory_follows_the_orders_not_the_band() -> None:
    """50 symbols of 1..1,000,000 ticks (the flat ladder needed 48 MB a symbol): the symbols cost
    almost nothing resident, the orders their pages, and cancelling gives every page back."""
    res = subprocess.run([str(BUILD_DIR / "xe_memory"), "--symbols", "50", "--band", "1000000",
                          "--orders", "20000"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["rss_symbols"] - m["rss_created"] < 8 << 20
    # Over 262,144 ticks a directory entry covers 4,096 ticks (a node): 245 entries a side, 123
    # words of entries and 4 of bitmap.
    assert m["directory_bytes"] == 50 * 2 * (123 + 4) * 8
    assert m["rss_orders"] - m["rss_symbols"] < 20000 * 1400  # at most a page and a node each
    assert m["levels"] > 19000 and m["ladder_bytes_after_cancel"] == 0
    assert m["ladder_touched_bytes"] > 0


def test_native_tools_are_built() -> None:
    for name in ("xe_replay", "xe_bench", "xe_memory", "libxdpex_engine.so", "libxdpex_engine.a"):
        assert (BUILD_DIR / name).exists(), f"{name}: run make build"


def test_bench_report_rewrites_only_the_engine_section(tmp_path: Path) -> None:
    from xdpex_engine import benchdoc
    from xdpex_engine.cli import bench_once

    stream = small_stream(tmp_path / "small.csv")
    result = {"machine": benchdoc.machine(), "normal": bench_once(stream, 1, 1, 4096),
              "deep": bench_once(stream, 4, 1, 4096)}
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n## Wire\n\nwire table\n\n## Engine\n\nold figures\n\n"
                   "## Persister\n\npersister table\n")
    benchdoc.update_doc(doc, result, None, stream)
    text = doc.read_text()
    assert "wire table" in text and "persister table" in text and "old figures" not in text
    assert text.index("## Wire") < text.index("## Engine") < text.index("## Persister")
    prev = benchdoc.previous(tmp_path / "missing.json", doc)
    assert prev is not None and prev["normal"]["msgs_per_s"] == result["normal"]["msgs_per_s"]
    benchdoc.update_doc(doc, result, prev, stream)
    assert "1.00x / 1.00x" in doc.read_text()  # same figures again: ratio 1 to the previous
    assert doc.read_text().count("## Engine") == 1
