"""REST order entry as served (`python -m xdpex.serve` beside a real xdpexd): the batch route (one
answer per order, in order; limits and field errors named), the hot path answering exactly as the
FastAPI routes do (lax JSON, unknown fields, tokens and roles), and the order-entry audit spool
surviving a crash of the control plane: every order's record is in the table after the restart,
once, including those committed just before the kill."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest
from control_support import Dataplane, cleanup_dir, short_tmpdir

TOKEN = "xt_test_operator"
OP = {"Authorization": f"Bearer {TOKEN}"}


def _order(i: int, **kw: object) -> dict:
    o = {"symbol_id": 1 + i % 4, "side": "buy" if i % 2 else "sell", "qty": 1, "price": 900}
    o.update(kw)
    return o


@pytest.fixture
def served():
    d = short_tmpdir("rest")
    dp = Dataplane(d).start()
    cp = dp.control_plane(TOKEN, env={"XDPEX_DATAPLANE_TIMEOUT_S": "5"})
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()
        dp.stop()
        cleanup_dir(d)


def test_batch_answers_every_order_in_order(served):
    base = served.url
    orders = [_order(i, price=900 + i % 3) for i in range(1000)]
    orders[10] = _order(10, price=2_000_000)  # outside the band: rejected by the engine
    r = httpx.post(f"{base}/api/v1/orders/batch", json={"orders": orders}, headers=OP, timeout=30)
    assert r.status_code == 200, r.text
    acks = r.json()
    assert len(acks) == 1000
    assert [a["price"] for a in acks] == [o["price"] for o in orders]
    assert [a["symbol_id"] for a in acks] == [o["symbol_id"] for o in orders]
    assert acks[10]["status"] == "rejected" and acks[10]["reason"] == "OUTSIDE_BAND"
    assert acks[10]["field"] == "price" and acks[10]["order_id"] is None
    ok = [a for i, a in enumerate(acks) if i != 10]
    assert all(a["status"] in ("new", "filled", "partially_filled") for a in ok)
    assert len({a["order_id"] for a in ok}) == 999
    assert len({a["cl_ord_id"] for a in acks}) == 1000
    # a resting order of the batch is known by its id at once
    rest = next(a for a in ok if a["status"] == "new")
    g = httpx.get(f"{base}/api/v1/orders/{rest['order_id']}", headers=OP)
    assert g.status_code == 200 and g.json()["cl_ord_id"] == rest["cl_ord_id"], g.text


def test_batch_limits_and_field_errors(served):
    base = served.url

    def post(body: object) -> httpx.Response:
        return httpx.post(f"{base}/api/v1/orders/batch", json=body, headers=OP, timeout=30)

    r = post({"orders": [_order(i) for i in range(1001)]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "orders"], r.text
    r = post({"orders": []})
    assert r.status_code == 422, r.text
    bad = [_order(0), _order(1), _order(2, qty=0)]
    r = post({"orders": bad})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "orders", 2, "qty"]
    r = post({"orders": [_order(0), _order(1, price=0)]})  # limit without a price
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "orders", 1, "price"], r.text


def test_hot_path_answers_as_the_routes_do(served):
    base = served.url
    url = f"{base}/api/v1/orders"
    viewer = served.request("POST", "/api/v1/tokens", json={"name": "v", "role": "viewer"})
    assert viewer.status_code in (200, 201), viewer.text
    vtok = {"Authorization": f"Bearer {viewer.json()['token']}"}

    r = httpx.post(url, json=_order(0))
    assert r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer", r.text
    r = httpx.post(url, json=_order(0), headers={"Authorization": "Bearer xt_nobody"})
    assert r.status_code == 401, r.text
    r = httpx.post(url, json=_order(0), headers=vtok)
    assert r.status_code == 403, r.text
    r = httpx.post(url, json=_order(0, colour="red"), headers=OP)  # unknown field: forbidden
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "colour"], r.text
    r = httpx.post(url, json=_order(0, side="up"), headers=OP)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "side"], r.text
    r = httpx.post(url, content=b"{not json", headers=OP | {"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    # lax forms pydantic accepts (a number in a string) are entered by the route itself
    r = httpx.post(url, json=_order(1, qty="3"), headers=OP)
    assert r.status_code == 201 and r.json()["qty"] == 3, r.text
    # the canonical form: the hot path, same answer shape
    r = httpx.post(url, json=_order(0, price=901), headers=OP)
    assert r.status_code == 201, r.text
    assert set(r.json()) == {
        "order_id", "session_id", "cl_ord_id", "symbol_id", "side", "type", "tif", "price",
        "qty", "filled", "leaves", "status", "reason", "field", "fills",
    }  # fmt: skip
    r = httpx.post(url, json=_order(0, price=2_000_000), headers=OP)  # engine reject: 200
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text
    # every request is timed under its route template
    m = httpx.get(f"{base}/metrics").text
    assert 'xdpex_http_request_duration_seconds_count{method="POST",route="/api/v1/orders",' in m


def test_order_audit_records_survive_a_crash_once_each():
    """The spool's writer commits only when asked (flush interval of an hour): ten orders are
    committed by reading the log, ten more are only in the spool when the control plane is
    killed; after the restart all twenty are in the table once, with their results."""
    d = short_tmpdir("spool")
    dp = Dataplane(d).start()
    cp = dp.control_plane(
        TOKEN, env={"XDPEX_AUDIT_SPOOL_FLUSH_S": "3600", "XDPEX_AUDIT_ORDER_ENTRY": "1"}
    )
    try:
        cp.start()
        url = f"{cp.url}/api/v1/orders"
        for i in range(10):
            assert httpx.post(url, json=_order(i, qty=100 + i), headers=OP).status_code == 201
        assert len(_order_records(cp.request("GET", "/api/v1/audit?limit=1000").json())) == 10
        for i in range(10, 20):
            assert httpx.post(url, json=_order(i, qty=100 + i), headers=OP).status_code == 201
        con = sqlite3.connect(cp.db_path, timeout=30)
        try:
            (n,) = con.execute(
                "SELECT count(*) FROM audit_log WHERE action = 'POST /api/v1/orders'"
            ).fetchone()
        finally:
            con.close()
        assert n == 10  # the other ten are only in the spool
        assert cp.proc is not None
        cp.proc.kill()
        cp.proc.wait(10)
        cp.proc = None
        cp.start()
        recs = _order_records(cp.request("GET", "/api/v1/audit?limit=1000").json())
        assert sorted(json.loads(r["detail"])["qty"] for r in recs) == list(range(100, 120))
        assert {r["result"] for r in recs} == {"ok"}
        assert {r["actor"] for r in recs} == {"operator"}
    finally:
        cp.stop()
        dp.stop()
        cleanup_dir(d)


def _order_records(audit: list[dict]) -> list[dict]:
    return [r for r in audit if r["action"] == "POST /api/v1/orders"]
