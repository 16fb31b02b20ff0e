"""bench-feed's report: the feed-on/off ratio of the wire runs, per round too, and the rewrite of
only the "## Feed" section of docs/BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_loadgen_benchwire import _row
from xdpex_traffic.benchfeed import render_section
from xdpex_traffic.benchwire import update_section


def _result() -> dict[str, Any]:
    wire = []
    for rnd, (off, on) in enumerate([(400_000, 380_000), (300_000, 297_000)]):
        for path, rate in (("afxdp", off), ("afxdp-feed", on)):
            r = _row(path, 16, "closed", rate, window=1024)
            r["round"] = rnd
            wire.append(r)
    loop = {"orders_per_s": 100_000, "feed_msgs_per_s": 160_000, "subscriber_complete": True,
            "subscriber_gaps": 0, "rewound_messages": 0,
            "latency_ns": {"p50": 9000, "p99": 30000, "p999": 90000}}  # fmt: skip
    return {"wire": wire, "encoder": {"ns_per_order_engine": 200, "ns_per_order_feed": 207},
            "moderate": loop, "loss": loop, "max": loop, "loadavg": [0.5, 1.0]}  # fmt: skip


def test_section_gives_the_feed_cost_as_a_ratio_per_round() -> None:
    text = render_section(_result(), [16])
    assert text.startswith("## Feed\n") and "make bench-feed" in text
    assert "| 16 | 400,000 | 380,000 | 0.95× | 0.95, 0.99 |" in text
    assert "| moderate | 100,000 | 160,000 | True | 0 | 0 | 9000 / 30000 / 90000 |" in text


def test_update_section_leaves_the_others(tmp_path: Path) -> None:
    doc = tmp_path / "B.md"
    before = "# Benchmarks\n\n## Wire\n\nwire\n\n## Feed\n\n{}\n\n## Engine\n\nengine\n"
    doc.write_text(before.format("old"))
    update_section(doc, "## Feed", "## Feed\n\nnew\n")
    assert doc.read_text() == before.format("new")
