"""Bulk configuration of xdpexd (docs/dataplane.md, control socket `bulk`): thousands of symbols
and sessions in one request, every valid entry applied, every refused one named with its code,
journaled (a restart arrives at the same state), and the same from the configuration file; bands
of any width, an order resting at the far end of one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataplane_support import SECRET, Env, base_config, need_root_and_binary, new_order
from xdpex_proto import codec as c

INT64_MAX = (1 << 63) - 1


def symbol(i: int, **kw: Any) -> dict[str, Any]:
    return {"id": i, "name": f"S{i}", "tick": 1, "lot": 1, "band": [1, 100_000]} | kw


def session(i: int, **kw: Any) -> dict[str, Any]:
    return {"id": i, "secret": SECRET.hex()} | kw


def env_with(workdir: Path, **engine: int) -> Env:
    need_root_and_binary()
    cfg = base_config()
    cfg["engine"] |= engine
    env = Env("udp", workdir, None, config=cfg)
    env.daemon.start()
    return env


def test_bulk_applies_valid_entries_and_names_every_refused_one(dp_workdir: Path) -> None:
    env = env_with(dp_workdir, max_symbols=3000, max_sessions=700)
    try:
        d = env.daemon
        syms = [symbol(i) for i in range(3, 2503)]  # 1 and 2 come from the file
        syms[10]["band"] = [1, INT64_MAX]  # id 13: the widest band there is
        bad = [
            (symbol(2600, tick=0), "bad_tick"),
            (symbol(3001), "id_over_limit"),
            (symbol(5), "duplicate_in_request"),  # 5 is in syms already
            (symbol(2601, tick=4, band=[4, 10]), "band_off_tick"),
            (symbol(2602, band=[9, 1]), "bad_band"),
            (symbol(1, tick=2, band=[2, 100]), "symbol_conflict"),  # the file's ACME
            ({"id": 2603}, "unknown_symbol"),
            (symbol(2604, queue=5), "queue_not_served"),
            ({"tick": 1}, "invalid_field"),
        ]
        # Refused entries spread through the request: their indices must come back.
        at = [0, 100, 700, 1200, 1300, 1900, 2000, 2400, 2499]
        for pos, (entry, _) in zip(reversed(at), reversed(bad), strict=True):
            syms.insert(pos, entry)
        sess = [session(i) for i in range(5, 605)]
        sess.insert(3, {"id": 700})  # new, no secret
        sess.insert(50, session(701))
        req = {"cmd": "bulk", "config": {"symbols": syms, "sessions": sess}}
        r = d.ctl(req, timeout=30)
        assert r["ok"] is True, r
        assert r["applied"] == {"symbols": 2500, "sessions": 600}
        where = {id(x): i for i, x in enumerate(syms)}
        want = [("symbol", where[id(e)], code) for e, code in bad]
        want = sorted(want, key=lambda w: w[1])
        want += [("session", 3, "secret_required"), ("session", 50, "id_over_limit")]
        got = [(x["kind"], x["index"], x["code"]) for x in r["refused"]]
        assert got == want, r["refused"]
        dup = next(x for x in r["refused"] if x["code"] == "duplicate_in_request")
        assert dup["id"] == 5 and dup["error"].startswith(f"symbols[{dup['index']}].id: 5")
        conflict = next(x for x in r["refused"] if x["code"] == "symbol_conflict")
        assert conflict["id"] == 1 and "exists with other tick" in conflict["error"]
        assert d.ctl({"cmd": "book", "symbol": 2502})["ok"]
        assert d.ctl({"cmd": "book", "symbol": 2600})["code"] == "unknown_symbol"
        assert len(d.ctl({"cmd": "sessions"})["sessions"]) == 4 + 600

        # A bulk session trades on the widest band: both ends of it.
        s = env.client(600)
        assert isinstance(s.login(), c.LoginAccepted)
        s.send_app([new_order(1, price=INT64_MAX, qty=3, symbol=13, side=c.Side.SELL),
                    new_order(2, price=1, qty=2, symbol=13, side=c.Side.BUY)])
        acc = s.wait_count(lambda m: isinstance(m, c.Accepted), 2)
        assert [a.cl_ord_id for a in acc] == [1, 2]
        book = d.ctl({"cmd": "book", "symbol": 13})
        assert book["asks"] == [[INT64_MAX, 3, 1]] and book["bids"] == [[1, 2, 1]]

        # Journaled: a restart replays to the same state; the same bulk again applies the
        # same entries (they exist with the same fields) and refuses the same ones.
        before = d.state_hash()
        d.kill9()
        d.start()
        assert d.state_hash() == before
        again = d.ctl(req, timeout=30)
        assert again["applied"] == r["applied"] and again["refused"] == r["refused"]
        assert d.state_hash() == before
    finally:
        env.close()


def test_bulk_refuses_a_malformed_request_whole(dp_workdir: Path) -> None:
    env = env_with(dp_workdir)
    try:
        d = env.daemon
        before = d.state_hash()
        for cfg, text in [
            (None, "config: required"),
            ({"symbols": {}}, "config.symbols: must be an array"),
            ({"allowlist": []}, "config.allowlist: unknown field"),
        ]:
            req: dict[str, Any] = {"cmd": "bulk"}
            if cfg is not None:
                req["config"] = cfg
            r = d.ctl(req)
            assert r["ok"] is False and r["code"] == "invalid_field", r
            assert r["error"].startswith(text), r
        r = d.ctl({"cmd": "bulk", "config": {"symbols": []}})
        assert r == {"ok": True, "applied": {"symbols": 0, "sessions": 0}, "refused": []}
        assert d.state_hash() == before
    finally:
        env.close()


def test_configuration_file_with_thousands_of_symbols_and_sessions(dp_workdir: Path) -> None:
    need_root_and_binary()
    cfg = base_config()
    cfg["engine"] = {"max_orders": 65536, "max_symbols": 20000, "max_sessions": 4096}
    cfg["symbols"] = [symbol(i) for i in range(1, 20001)]
    cfg["sessions"] = [session(i) for i in range(1, 4097)]
    env = Env("udp", dp_workdir, None, config=cfg)
    try:
        env.daemon.start(timeout=30)
        d = env.daemon
        assert d.ctl({"cmd": "book", "symbol": 20000})["ok"]
        s = env.client(4096)
        assert isinstance(s.login(), c.LoginAccepted)
        s.send_app([new_order(1, price=99_999, qty=1, symbol=19999)])
        assert s.wait_for(lambda m: isinstance(m, c.Accepted)).symbol_id == 19999
        st = d.stats()
        assert st["limits"]["symbols"] == {"configured": 20000, "max": 20000}
        assert st["limits"]["sessions"] == {"configured": 4096, "max": 4096}
    finally:
        env.close()
