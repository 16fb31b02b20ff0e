"""bench-wire's report: which run counts as the best rate, the afxdp/udp ratio, and the rewrite of
only the "## Wire" section of docs/BENCHMARKS.md (the Engine section belongs to someone else)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xdpex_traffic.benchwire import best, render_section, update_doc


def _row(path: str, n: int, kind: str, rate: float, clean: bool = True, **kw: Any) -> dict:
    row = {
        "path": path,
        "orders_per_datagram": n,
        "kind": kind,
        "offered": kw.get("offered"),
        "window": kw.get("window"),
        "sent": 1000,
        "answered": 1000 if clean else 990,
        "lost": 0 if clean else 10,
        "orders_per_s": rate,
        "rtt_us": {"p50": 5.0, "p90": 6.0, "p99": 9.0, "p999": 12.0, "max": 20.0},
        "seq_gaps": 0,
        "resent": 0,
        "out_gaps": 0,
        "clean": clean,
        "attach_mode": "native",
        "bind_mode": "copy",
        "generator": "afxdp",
    }
    return row


ROWS = [
    _row("afxdp", 16, "closed", 3_000_000, window=1024),
    _row("afxdp", 16, "open", 3_300_000, offered=3_300_000),
    _row("afxdp", 16, "open", 3_600_000, clean=False, offered=3_900_000),
    _row("afxdp", 16, "latency", 500_000, offered=500_000),
    _row("udp", 16, "closed", 1_000_000, window=1024),
    _row("udp", 16, "latency", 500_000, offered=500_000),
    {
        "path": "udp",
        "orders_per_datagram": 16,
        "kind": "pingpong",
        "error": "load generator exited with status 3",
        "clean": False,
    },
]


def test_best_is_the_fastest_clean_run() -> None:
    b = best(ROWS, "afxdp", 16)
    assert b is not None and b["orders_per_s"] == 3_300_000  # the lossy 3.6 M run does not count
    assert best(ROWS, "udp", 1) is None


def test_section_has_table_ratio_and_command() -> None:
    text = render_section(ROWS, [16], (0.5, 1.5))
    assert text.startswith("## Wire\n")
    assert "make bench-wire" in text
    assert (
        "| afxdp | 16 | 3,300,000 | open, offered 3,300,000 | 5.0 / 6.0 / 9.0 / 12.0 | 500,000 |"
        in text
    )
    assert "Ratio afxdp/udp, 16 orders/datagram: **3.30×**" in text
    assert "0.5 / 1.5" in text
    assert "| udp | 16 | pingpong | failed: load generator exited with status 3 |" in text


def test_latency_summary_is_the_median_p99_run() -> None:
    lat = [r for r in ROWS if r["kind"] == "latency" and r["path"] == "afxdp"][0]
    runs = [{**lat, "rtt_us": {**lat["rtt_us"], "p99": p99}} for p99 in (4000.0, 9.0, 50.0)]
    rows = [r for r in ROWS if r["kind"] != "latency"] + runs
    text = render_section(rows, [16])
    assert "| 5.0 / 6.0 / 50.0 / 12.0 | 500,000 |" in text


def test_update_doc_replaces_only_the_wire_section(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(
        "# Benchmarks\n\n## Engine\n\nengine table\n\n## Wire\n\nold\n\n## Notes\n\nkeep\n"
    )
    update_doc(doc, "## Wire\n\nnew\n")
    text = doc.read_text()
    assert "engine table" in text and "keep" in text
    assert "old" not in text and "## Wire\n\nnew\n" in text
    assert text.index("## Engine") < text.index("## Wire") < text.index("## Notes")
    update_doc(doc, "## Wire\n\nnewer\n")
    assert doc.read_text().count("## Wire") == 1 and "newer" in doc.read_text()


def test_update_doc_appends_or_creates(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    update_doc(doc, "## Wire\n\nx\n")
    assert doc.read_text() == "# Benchmarks\n\n## Wire\n\nx\n"
    doc.write_text("# Benchmarks\n\n## Engine\n\ne\n")
    update_doc(doc, "## Wire\n\ny\n")
    assert doc.read_text() == "# Benchmarks\n\n## Engine\n\ne\n\n## Wire\n\ny\n"


def test_rounds_give_a_ratio_per_round_and_their_median() -> None:
    rows = []
    for rnd, (base, new) in enumerate([(100_000, 90_000), (50_000, 60_000), (80_000, 84_000)]):
        for path, rate in (("afxdp-base", base), ("afxdp", new)):
            row = _row(path, 16, "closed", rate, window=1024)
            row["round"] = rnd
            rows.append(row)
    text = render_section(rows, [16])
    # The best of each over all rounds: 90,000 / 100,000.
    assert "Ratio afxdp/afxdp-base, 16 orders/datagram: **0.90×**" in text
    assert "per round (the two measured back to back): 0.90, 1.20, 1.05; median 1.05×" in text
