"""examples/trade.py run as a user would, against the real xdpexd (tests/dataplane_support.py):
over kernel UDP on loopback, over AF_XDP in a veth lab (the script runs in the traffic namespace)
and over the local order-entry socket. The printed outcomes must be the trades the script makes
(two fills a side per cross, at the resting prices, the same execution ids on both sides), the
cancel, both replaces, the refused order and the mass cancel; afterwards the gateway's book is
empty and both sessions are logged out. A wrong secret and bad arguments end with a clear error."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dataplane_support import REPO, SECRET, Env, base_config, need_root_and_binary

SCRIPT = REPO / "examples" / "trade.py"
PRICE = 1000


def run_example(args: list[str], prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*(prefix or []), sys.executable, str(SCRIPT), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def sessions(a: int = 1, b: int = 2, key: bytes = SECRET) -> list[str]:
    return ["--session", f"{a}:{key.hex()}", "--session", f"{b}:{key.hex()}"]


@pytest.fixture(params=["udp", "afxdp", "entry"])
def gw(
    request: pytest.FixtureRequest, dp_workdir: Path
) -> Iterator[tuple[Env, list[str], list[str]]]:
    """A started xdpexd and how to reach it: (env, where-arguments, command prefix)."""
    need_root_and_binary()
    mode = "afxdp" if request.param == "afxdp" else "udp"
    lab = request.getfixturevalue("dp_lab") if mode == "afxdp" else None
    env = Env(mode, dp_workdir, lab, config=base_config())
    try:
        env.daemon.start()
        if request.param == "entry":
            where, prefix = ["--entry-socket", str(env.daemon.entry_path)], []
        else:
            host, port = env.server
            where = ["--gateway", f"{host}:{port}"]
            prefix = lab.run_cmd(lab.tg_ns, []) if lab is not None else []
        yield env, where, prefix
    finally:
        env.close()


def lines_of(out: str, who: str, kind: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith(f"[{who}] {kind}")]


def fills(out: str, who: str) -> list[dict[str, Any]]:
    pat = re.compile(r"exec_id=(\d+) (BUY|SELL) (\d+) @ (\d+), leaves (\d+) \((ADDED|REMOVED)\)")
    res = []
    for ln in lines_of(out, who, "fill"):
        m = pat.search(ln)
        assert m, ln
        res.append({"exec": int(m[1]), "side": m[2], "qty": int(m[3]), "price": int(m[4]),
                    "liq": m[6]})  # fmt: skip
    return res


def test_example_trades_against_the_gateway(gw: tuple[Env, list[str], list[str]]) -> None:
    env, where, prefix = gw
    p = run_example([*where, *sessions(), "--price", str(PRICE)], prefix)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert "[maker] logged in as session 1" in out and "[taker] logged in as session 2" in out
    assert len(lines_of(out, "maker", "accepted")) == 5
    assert len(lines_of(out, "taker", "accepted")) == 2

    taker, maker = fills(out, "taker"), fills(out, "maker")
    assert [(f["side"], f["qty"], f["price"]) for f in taker] == [
        ("SELL", 10, PRICE - 1), ("SELL", 5, PRICE - 2),
        ("BUY", 10, PRICE + 2), ("BUY", 6, PRICE + 3),
    ]  # fmt: skip
    assert {f["liq"] for f in taker} == {"REMOVED"} and {f["liq"] for f in maker} == {"ADDED"}
    # The maker's side of each execution: same id, quantity and price, opposite side.
    by_exec = {f["exec"]: f for f in maker}
    assert sorted(by_exec) == sorted(f["exec"] for f in taker)
    for f in taker:
        mf = by_exec[f["exec"]]
        assert (mf["qty"], mf["price"]) == (f["qty"], f["price"]) and mf["side"] != f["side"]

    user_cxl = [ln for ln in lines_of(out, "maker", "cancelled") if ln.endswith(" USER")]
    assert len(user_cxl) == 1
    rep = lines_of(out, "maker", "replaced")
    assert len(rep) == 2
    assert rep[0].endswith(f"6 @ {PRICE + 1}, leaves 6")
    assert rep[1].endswith(f"6 @ {PRICE + 3}, leaves 6")
    assert lines_of(out, "taker", "rejected")[0].endswith("NEW_ORDER: BAD_QUANTITY")
    assert any(ln.endswith(" MASS") for ln in lines_of(out, "maker", "cancelled"))
    assert "[maker] 4 fills, 31 lots traded, net position -1; logged out" in out
    assert "[taker] 4 fills, 31 lots traded, net position +1; logged out" in out

    # The gateway agrees: nothing rests, both sessions logged out.
    book = env.daemon.ctl({"cmd": "book", "symbol": 1})
    assert book["ok"] and book["bids"] == [] and book["asks"] == [], book
    st = {s["id"]: s["state"] for s in env.daemon.ctl({"cmd": "sessions"})["sessions"]}
    assert st[1] == st[2] == "logged_out", st


def test_example_reports_a_refused_login(dp_workdir: Path) -> None:
    need_root_and_binary()
    env = Env("udp", dp_workdir, None, config=base_config())
    try:
        env.daemon.start()
        host, port = env.server
        p = run_example(["--gateway", f"{host}:{port}", *sessions(key=b"\x01" * 32)])
        assert p.returncode == 1
        assert "maker: login of session 1: login rejected: BAD_PROOF" in p.stderr
    finally:
        env.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gateway", "127.0.0.1:9"], "give two different sessions"),
        (["--gateway", "127.0.0.1:9", *sessions(1, 1)], "give two different sessions"),
        (["--gateway", "127.0.0.1:x", *sessions()], "expected HOST[:PORT]"),
        (["--gateway", "127.0.0.1", "--session", "1:zz", "--session", "2:00"], "ID:HEXSECRET"),
        (["--gateway", "127.0.0.1", "--credentials", "/nonexistent/s.txt"], "--credentials"),
        ([*sessions()], "one of the arguments --gateway --entry-socket is required"),
        (["--gateway", "127.0.0.1", *sessions(), "--price", "2"], "--price: 2 is too low"),
    ],
)
def test_example_bad_arguments(args: list[str], message: str) -> None:
    p = run_example(args)
    assert p.returncode == 2 and message in p.stderr, p.stderr
