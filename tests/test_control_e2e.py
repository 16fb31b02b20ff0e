"""Control plane against a real xdpexd (kernel-UDP mode, own journal, sockets and port), on SQLite
and PostgreSQL: session credentials, order entry and cancel through the control plane's own
session, engine rejects naming the field, symbols applied and halted, book snapshots, readiness
and metrics, persistence of orders and executions, gRPC batch entry and the execution stream,
schemathesis over the OpenAPI spec (no 5xx), and 503 once the dataplane is gone."""

from __future__ import annotations

import logging
import threading
import time

import grpc
import pytest
import schemathesis
from control_support import Dataplane, cleanup_dir, database, short_tmpdir
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from xdpex.api import create_app
from xdpex.grpc_api import serve
from xdpex.pb import orderentry_pb2 as pb
from xdpex.pb import orderentry_pb2_grpc as pbg
from xdpex.persister import Persister
from xdpex.service import OrderSpec

OP = {"Authorization": "Bearer xt_test_operator"}


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request):
    d = short_tmpdir("e2e")
    db = database(request, request.param, d)
    dp = Dataplane(d).start()
    s = dp.settings(db)
    try:
        with TestClient(create_app(s), raise_server_exceptions=False) as tc:
            yield tc, dp, s
    finally:
        dp.stop()
        db.drop()
        cleanup_dir(d)


def order(tc, side, qty, price, **kw):
    body = {"symbol_id": 1, "side": side, "qty": qty, "price": price, **kw}
    return tc.post("/api/v1/orders", json=body, headers=OP)


def test_order_entry_cancel_book_and_persistence(stack):
    tc, dp, s = stack
    assert tc.get("/readyz").status_code == 200
    r = tc.post("/api/v1/sessions", json={"name": "alice"}, headers=OP)
    assert r.status_code == 201 and len(r.json()["secret"]) == 64
    alice = r.json()["session_id"]
    listed = {x["session_id"]: x for x in tc.get("/api/v1/sessions", headers=OP).json()}
    assert listed[alice]["state"] == "logged_out" and "secret" not in listed[alice]

    buy = order(tc, "buy", 10, 100)
    assert buy.status_code == 201 and buy.json()["status"] == "new"
    buy = buy.json()
    sell = order(tc, "sell", 4, 100).json()
    assert sell["status"] == "filled" and sell["fills"][0]["qty"] == 4
    book = tc.get("/api/v1/books/1?depth=5", headers=OP).json()
    assert book["bids"] == [{"price": 100, "qty": 6, "orders": 1}] and book["asks"] == []
    rej = order(tc, "sell", 4, 10_000_000)
    assert rej.status_code == 200
    assert rej.json()["status"] == "rejected" and rej.json()["reason"] == "OUTSIDE_BAND"
    assert rej.json()["field"] == "price"

    r = tc.delete(f"/api/v1/orders/{buy['order_id']}", headers=OP)
    assert r.status_code == 200 and r.json()["cancelled_qty"] == 6
    r = tc.delete(f"/api/v1/orders/{buy['order_id']}", headers=OP)
    assert r.status_code == 409 and "UNKNOWN_ORDER" in r.json()["detail"]
    assert tc.delete("/api/v1/orders/999999", headers=OP).status_code == 404

    p = Persister(tc.app.state.cp.engine, s.journal_dir)
    p.drain()
    p.close()
    sid = buy["session_id"]
    rows = tc.get(f"/api/v1/orders?session_id={sid}", headers=OP).json()
    assert [(o["order_id"], o["status"], o["filled"]) for o in rows] == [
        (buy["order_id"], "cancelled", 4),
        (sell["order_id"], "filled", 4),
        (None, "rejected", 0),
    ]
    assert (
        tc.get("/api/v1/orders?status=rejected", headers=OP).json()[0]["reason"] == "OUTSIDE_BAND"
    )
    ex = tc.get(f"/api/v1/executions?session_id={sid}", headers=OP).json()
    assert sorted((e["liquidity"], e["qty"], e["price"]) for e in ex) == [
        ("maker", 4, 100),
        ("taker", 4, 100),
    ]
    got = tc.get(f"/api/v1/orders/{buy['order_id']}", headers=OP).json()
    assert got["status"] == "cancelled" and got["reason"] == "USER" and got["leaves"] == 0

    m = tc.get("/metrics").text
    assert "xdpex_dataplane_up 1.0" in m
    assert 'xdpex_dataplane_rx_msgs_total{queue="0"}' in m
    assert 'xdpex_journal_ahead_bytes{queue="0",state="reserved"}' in m
    assert 'xdpex_journal_ahead_bytes{queue="0",state="mapped"}' in m
    assert 'xdpex_persister_lag_records{queue="0"} 0.0' in m
    assert 'xdpex_orders_entered_total{api="rest",result="rejected"} 1.0' in m
    assert "xdpex_order_entry_latency_seconds_bucket" in m
    st = tc.get("/api/v1/dataplane", headers=OP).json()
    assert st["mode"] == "udp" and st["state_hash"].startswith("0x")


def test_symbols_are_applied_to_the_engine_and_halted(stack):
    tc, _, _ = stack
    body = {
        "symbol_id": 10,
        "name": "NEWCO",
        "tick": 5,
        "lot": 10,
        "band_low": 100,
        "band_high": 1000,
    }
    assert tc.post("/api/v1/symbols", json=body, headers=OP).status_code == 201
    assert tc.post("/api/v1/symbols", json=body, headers=OP).status_code == 409
    assert tc.get("/api/v1/symbols/10", headers=OP).json()["tick"] == 5
    assert order(tc, "buy", 10, 500, symbol_id=10).json()["status"] == "new"
    off = order(tc, "buy", 10, 503, symbol_id=10).json()
    assert off["reason"] == "OFF_TICK" and off["field"] == "price"
    assert order(tc, "buy", 7, 500, symbol_id=10).json()["reason"] == "OFF_LOT"
    assert tc.post("/api/v1/symbols/10/halt", headers=OP).json()["halted"] is True
    assert order(tc, "buy", 10, 500, symbol_id=10).json()["reason"] == "HALTED"
    tc.post("/api/v1/symbols/10/resume", headers=OP)
    assert order(tc, "buy", 10, 500, symbol_id=10).json()["status"] == "new"
    bad = dict(body, symbol_id=20000, name="BIG")  # above engine.max_symbols (16,384)
    r = tc.post("/api/v1/symbols", json=bad, headers=OP)
    assert r.status_code == 422 and "symbols[0]" in str(r.json()["detail"])


def test_allowlist_and_rate_limits_are_applied(stack):
    tc, _, _ = stack
    assert (
        tc.post("/api/v1/allowlist", json={"prefix": "127.0.0.0/8"}, headers=OP).status_code == 201
    )
    assert tc.post("/api/v1/allowlist", json={"prefix": "10.11.0.0/24"}, headers=OP).json() == [
        "10.11.0.0/24",
        "127.0.0.0/8",
    ]
    assert tc.delete("/api/v1/allowlist?prefix=10.11.0.0/24", headers=OP).json() == ["127.0.0.0/8"]
    assert tc.delete("/api/v1/allowlist?prefix=10.11.0.0/24", headers=OP).status_code == 404
    assert tc.put("/api/v1/rate-limits", json={"pps": 1000, "burst": 50}, headers=OP).json() == {
        "pps": 1000,
        "burst": 50,
    }
    assert tc.get("/api/v1/rate-limits", headers=OP).json()["pps"] == 1000


def test_grpc_batch_entry_and_execution_stream(stack):
    tc, _, _ = stack
    cp = tc.app.state.cp
    server = serve(cp, "127.0.0.1", 0)
    ch = grpc.insecure_channel(f"127.0.0.1:{cp.grpc_port}")
    md = [("authorization", "Bearer xt_test_operator")]
    try:
        stub = pbg.OrderEntryStub(ch)
        orders = [
            pb.NewOrder(
                symbol_id=2,
                side=pb.BUY if i % 2 else pb.SELL,
                type=pb.LIMIT,
                tif=pb.GTC,
                qty=5,
                price=200,
            )
            for i in range(100)
        ]
        acks = stub.SubmitOrders(pb.SubmitOrdersRequest(orders=orders), metadata=md).acks
        # every sell meets the buy behind it; an ack carries the fills that arrived with it,
        # the execution stream below has all of them
        assert len(acks) == 100 and all(a.order_id for a in acks)
        assert all(a.status in ("new", "filled") for a in acks)
        assert sum(1 for a in acks if a.status == "filled") >= 25
        ack_fills = {(f.exec_id, a.order_id) for a in acks for f in a.fills}
        one = stub.SubmitOrder(
            pb.SubmitOrderRequest(order=pb.NewOrder(symbol_id=2, side=pb.BUY, qty=3, price=150)),
            metadata=md,
        )
        assert one.status == "new" and one.order_id > 0
        cx = stub.CancelOrder(pb.CancelOrderRequest(order_id=one.order_id), metadata=md)
        assert cx.status == "cancelled" and cx.cancelled_qty == 3
        seen = []
        for ex in stub.StreamExecutions(
            pb.StreamExecutionsRequest(from_seq=1, symbol_id=2), metadata=md, timeout=10
        ):
            seen.append((ex.exec_id, ex.order_id))
            if len(seen) == 100:
                break
        assert len(set(seen)) == 100 and len({e for e, _ in seen}) == 50
        assert ack_fills <= set(seen)

        # from_seq 0: only executions from now on, as they happen
        live: list[int] = []
        stream = stub.StreamExecutions(pb.StreamExecutionsRequest(), metadata=md, timeout=10)

        def read_live() -> None:
            try:
                for ex in stream:
                    live.append(ex.exec_id)
            except grpc.RpcError as e:  # cancelled below, once the two fills are in
                if e.code() != grpc.StatusCode.CANCELLED:
                    raise

        reader = threading.Thread(target=read_live)
        reader.start()
        time.sleep(0.5)  # the stream has started at the journal's end
        pair = [pb.NewOrder(symbol_id=4, side=side, qty=2, price=300) for side in (pb.SELL, pb.BUY)]
        stub.SubmitOrders(pb.SubmitOrdersRequest(orders=pair), metadata=md)
        deadline = time.monotonic() + 10
        while len(live) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        stream.cancel()
        reader.join(5)
        assert len(live) == 2 and len(set(live)) == 1 and live[0] not in {e for e, _ in seen}
    finally:
        ch.close()
        server.stop(0).wait()


def test_schemathesis_finds_no_server_errors(stack):
    tc, _, _ = stack
    logging.getLogger("xdpex").setLevel(logging.CRITICAL)
    schema = schemathesis.openapi.from_asgi("/openapi.json", tc.app)
    errors: list[str] = []
    n = 0
    for res in schema.get_all_operations():
        op = res.ok()

        @given(op.as_strategy())
        @settings(
            max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def call(case):  # noqa: ANN001
            nonlocal n
            n += 1
            resp = case.call(headers=OP)
            if resp.status_code >= 500:
                errors.append(f"{case.operation.label}: {resp.status_code} {resp.text[:200]}")

        call()
    assert n > 100
    assert not errors, errors[:5]


def test_dataplane_gone_gives_503_with_the_reason(stack):
    tc, dp, _ = stack
    assert order(tc, "buy", 1, 100).status_code == 201
    dp.stop()
    time.sleep(0.1)
    r = order(tc, "buy", 1, 100)
    assert r.status_code == 503, r.text
    assert "socket" in r.json()["detail"]
    r = tc.get("/api/v1/books/1", headers=OP)
    assert r.status_code == 503 and "ctl.sock" in r.json()["detail"]
    r = tc.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["dataplane"].startswith("unreachable")


def test_concurrent_batches_share_the_session_safely(stack):
    tc, _, _ = stack
    cp = tc.app.state.cp
    who = cp.authenticate("xt_test_operator")
    results: list[list] = []
    errors: list[Exception] = []

    def worker(k: int) -> None:
        try:
            for j in range(5):
                specs = [
                    OrderSpec(
                        3, "buy" if (i + k) % 2 else "sell", "limit", "gtc", 1, 500 + (i + j) % 3
                    )
                    for i in range(200)
                ]
                results.append(cp.submit_orders(who, specs, "test"))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    acks = [a for batch in results for a in batch]
    assert len(acks) == 4 * 5 * 200
    assert len({a["order_id"] for a in acks}) == len(acks)
    assert len({a["cl_ord_id"] for a in acks}) == len(acks)
