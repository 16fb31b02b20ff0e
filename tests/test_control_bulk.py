"""REST bulk configuration against a real xdpexd (kernel-UDP mode), on SQLite and PostgreSQL:
thousands of symbols and sessions in one call, every refused entry named with its code (the
control plane's and the dataplane's), the database holding exactly what xdpexd applied, and
/metrics reporting the dataplane's limits and memory."""

from __future__ import annotations

import pytest
from control_support import Dataplane, cleanup_dir, database, short_tmpdir
from fastapi.testclient import TestClient
from xdpex.api import create_app

OP = {"Authorization": "Bearer xt_test_operator"}
INT64_MAX = (1 << 63) - 1


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request):
    d = short_tmpdir("bulk")
    db = database(request, request.param, d)
    cfg = {"engine": {"max_orders": 65536, "max_symbols": 3000, "max_sessions": 300},
           "symbols": [{"id": 1, "name": "FILE1", "tick": 1, "lot": 1, "band": [1, 1000]}],
           "sessions": []}
    dp = Dataplane(d, config=cfg).start()
    try:
        with TestClient(create_app(dp.settings(db)), raise_server_exceptions=False) as tc:
            yield tc, dp
    finally:
        dp.stop()
        db.drop()
        cleanup_dir(d)


def sym(i: int, **kw) -> dict:
    return {"symbol_id": i, "name": f"B{i}", "tick": 1, "lot": 1, "band_low": 1,
            "band_high": 100_000} | kw


def test_bulk_symbols_and_sessions(stack) -> None:
    tc, dp = stack
    body = [sym(i) for i in range(2, 2002)]
    body[5]["band_high"] = INT64_MAX  # any width
    body.insert(100, sym(3001))  # over engine.max_symbols: xdpexd's id_over_limit
    body.insert(200, sym(5000 + 2, name="B2"))  # a name given twice in the request
    body.insert(300, sym(2500, band_low=10, band_high=5))  # low above high
    body.insert(400, sym(2501, tick=3, band_low=3, band_high=10))  # xdpexd's band_off_tick
    body.insert(500, sym(1, name="OTHER", tick=2, band_low=2, band_high=10))  # xdpexd: conflict
    r = tc.post("/api/v1/symbols/bulk", json={"symbols": body}, headers=OP)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["created"] == 2000
    got = [(x["index"], x["id"], x["code"]) for x in out["refused"]]
    assert got == [(100, 3001, "id_over_limit"), (200, 5002, "duplicate_in_request"),
                   (300, 2500, "bad_band"), (400, 2501, "band_off_tick"),
                   (500, 1, "symbol_conflict")], out["refused"]
    assert "max_symbols 3000" in out["refused"][0]["error"]
    listed = tc.get("/api/v1/symbols", headers=OP).json()
    assert [s["symbol_id"] for s in listed] == list(range(2, 2002))  # only what xdpexd applied
    # Again: every entry is now known to the control plane.
    again = tc.post("/api/v1/symbols/bulk", json={"symbols": body[:3]}, headers=OP).json()
    assert again["created"] == 0 and {x["code"] for x in again["refused"]} == {"symbol_exists"}
    # Malformed entries refuse the request whole, each one named.
    bad = tc.post("/api/v1/symbols/bulk", json={"symbols": [sym(9000, tick=0), sym(9001),
                                                             sym(9002, lot=-1)]}, headers=OP)
    assert bad.status_code == 422
    assert tc.get("/api/v1/symbols/9001", headers=OP).status_code == 404

    ses = tc.post("/api/v1/sessions/bulk",
                  json={"sessions": [{"name": f"firm{i}"} for i in range(250)]}, headers=OP)
    assert ses.status_code == 200, ses.text
    created = ses.json()["created"]
    assert len(created) == 250 and ses.json()["refused"] == []
    assert len({c["secret"] for c in created}) == 250
    live = {s["id"] for s in dp_sessions(dp)}
    assert {c["session_id"] for c in created} <= live
    # Past engine.max_sessions: the dataplane refuses those, the rest are created.
    more = tc.post("/api/v1/sessions/bulk",
                   json={"sessions": [{"name": f"late{i}"} for i in range(100)]}, headers=OP)
    body2 = more.json()
    assert len(body2["created"]) == 50
    assert {x["code"] for x in body2["refused"]} == {"id_over_limit"}
    names = {s["name"] for s in tc.get("/api/v1/sessions", headers=OP).json()}
    assert "late49" in names and "late50" not in names

    m = tc.get("/metrics").text
    assert 'xdpex_dataplane_configured{kind="symbols",queue="0"} 2001.0' in m
    assert 'xdpex_dataplane_limit{kind="sessions",queue="0"} 300.0' in m
    assert 'xdpex_dataplane_memory_per_item_bytes{item="resting_order"}' in m


def dp_sessions(dp: Dataplane) -> list[dict]:
    from xdpex.dataplane import ControlClient

    c = ControlClient(dp.ctl)
    try:
        return c.sessions()
    finally:
        c.close()
