"""REST order entry as served (`python -m xdpex.serve`: uvicorn, uvloop, one event loop) against a
real xdpexd, and the audit log's write-ahead: many keep-alive connections at once while gRPC
batches fill the session's in-flight window (every order acknowledged once, with its own ids,
and audited "ok"); a change is refused (503) and not applied when its audit record cannot be
written; the record is committed ("pending") before the change and its result after."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading

import grpc
import httpx
import pytest
from control_support import Database, Dataplane, cleanup_dir, database, short_tmpdir
from sqlalchemy import text
from xdpex.auditlog import PENDING, AuditLog
from xdpex.auth import Principal
from xdpex.db import make_engine, migrate
from xdpex.errors import Unavailable
from xdpex.pb import orderentry_pb2 as pb
from xdpex.pb import orderentry_pb2_grpc as pbg

TOKEN = "xt_test_operator"
OP = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def served():
    """xdpexd + the control plane as its own process (SQLite); yields (base url, grpc port,
    database file)."""
    d = short_tmpdir("entry")
    dp = Dataplane(d).start()
    cp = dp.control_plane(
        TOKEN, env={"XDPEX_DATAPLANE_TIMEOUT_S": "5", "XDPEX_AUDIT_ORDER_ENTRY": "1"}
    )
    try:
        cp.start()
        yield cp.url, cp.grpc_port, cp.db_path
    finally:
        cp.stop()
        dp.stop()
        cleanup_dir(d)


def _rest_entered(base: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith('xdpex_order_entry_latency_seconds_count{api="rest"}'):
            return float(line.split()[-1])
    return 0.0


def test_many_connections_while_grpc_batches_fill_the_window(served):
    base, grpc_port, _ = served
    grpc_acks: list[int] = []
    grpc_err: list[Exception] = []

    def grpc_batches() -> None:  # 5 x 1000 orders: more than the session's in-flight window
        try:
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
                stub = pbg.OrderEntryStub(ch)
                orders = [
                    pb.NewOrder(
                        symbol_id=3,
                        side=pb.BUY if i % 2 else pb.SELL,
                        type=pb.LIMIT,
                        tif=pb.GTC,
                        qty=1,
                        price=700 + i % 3,
                    )
                    for i in range(1000)
                ]
                for _ in range(5):
                    acks = stub.SubmitOrders(
                        pb.SubmitOrdersRequest(orders=orders),
                        metadata=[("authorization", f"Bearer {TOKEN}")],
                        timeout=30,
                    ).acks
                    grpc_acks.extend(a.order_id for a in acks)
        except Exception as e:  # noqa: BLE001 - asserted below
            grpc_err.append(e)

    async def rest(conns: int, per_conn: int) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
        async with httpx.AsyncClient(base_url=base, headers=OP, limits=limits, timeout=30) as cl:

            async def one_conn(k: int) -> list[httpx.Response]:
                out = []
                for j in range(per_conn):
                    body = {"symbol_id": 2, "side": "buy" if (j + k) % 2 else "sell", "qty": 1}
                    out.append(await cl.post("/api/v1/orders", json=body | {"price": 900}))
                return out

            got = await asyncio.gather(*(one_conn(k) for k in range(conns)))
        return [r for rs in got for r in rs]

    t = threading.Thread(target=grpc_batches)
    t.start()
    resps = asyncio.run(rest(8, 25))
    t.join(60)
    assert not t.is_alive() and not grpc_err, grpc_err
    assert len(grpc_acks) == 5000 and len(set(grpc_acks)) == 5000 and 0 not in grpc_acks
    assert [r.status_code for r in resps] == [201] * 200, [r.text for r in resps[:3]]
    acks = [r.json() for r in resps]
    assert len({a["order_id"] for a in acks}) == 200
    assert len({a["cl_ord_id"] for a in acks}) == 200
    assert not {a["order_id"] for a in acks} & set(grpc_acks)
    assert all(a["status"] in ("new", "filled", "partially_filled") for a in acks)
    # every order audited, with its final result (list_audit waits for queued results)
    audit = httpx.get(f"{base}/api/v1/audit?limit=1000", headers=OP).json()
    posts = [r for r in audit if r["action"] == "POST /api/v1/orders"]
    assert len(posts) == 200 and {r["result"] for r in posts} == {"ok"}
    assert [r["actor"] for r in posts] == ["operator"] * 200
    grpc_rec = [r for r in audit if r["action"] == "gRPC SubmitOrders"]
    assert len(grpc_rec) == 5 and {r["result"] for r in grpc_rec} == {"ok"}


def _audit(base: str) -> list[dict]:
    return httpx.get(f"{base}/api/v1/audit?limit=1000", headers=OP).json()


def test_a_change_is_refused_when_its_audit_record_cannot_be_written_orders_wait_in_the_spool(
    served,
):
    """A configuration change whose audit record cannot be committed is refused (503) and not
    applied. An order's record goes to the spool first: the order is entered, and its record
    reaches the table once the table can be written again, none lost and none doubled."""
    base, _, db = served
    order = {"symbol_id": 2, "side": "buy", "qty": 1, "price": 900}
    assert httpx.post(f"{base}/api/v1/orders", json=order, headers=OP).status_code == 201
    entered = _rest_entered(base)
    con = sqlite3.connect(db, timeout=30)
    try:
        con.execute("ALTER TABLE audit_log RENAME TO audit_log_away")
        con.commit()
        sym = {"symbol_id": 11, "name": "NOAUDIT", "tick": 1, "lot": 1}
        sym |= {"band_low": 1, "band_high": 10000}
        r = httpx.post(f"{base}/api/v1/symbols", json=sym, headers=OP)
        assert r.status_code == 503 and "audit log" in r.json()["detail"], r.text
        r = httpx.post(f"{base}/api/v1/orders", json=order | {"qty": 7}, headers=OP)
        assert r.status_code == 201, r.text
        assert _rest_entered(base) == entered + 1
        con.execute("ALTER TABLE audit_log_away RENAME TO audit_log")
        con.commit()
    finally:
        con.close()
    symbols = httpx.get(f"{base}/api/v1/symbols", headers=OP).json()
    assert 11 not in {s["symbol_id"] for s in symbols}
    posts = [a for a in _audit(base) if a["action"] == "POST /api/v1/orders"]
    assert [a["result"] for a in posts] == ["ok", "ok"], posts  # newest first
    assert [json.loads(a["detail"])["qty"] for a in posts] == [7, 1]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_audit_record_is_committed_before_the_change_and_completed_after(kind, request):
    d = short_tmpdir("audit")
    db = database(request, kind, d)
    eng = make_engine(db.url, db.schema)
    log = AuditLog(eng)
    try:
        migrate(eng)
        who = Principal("alice", "trader")
        rid = log.begin(who, "POST /api/v1/orders", "/api/v1/orders", '{"qty": 1}')
        with eng.connect() as c:  # another connection sees it at once: it is committed
            row = c.execute(text(f"SELECT actor, role, result FROM audit_log WHERE id = {rid}"))
            assert tuple(row.one()) == ("alice", "trader", PENDING)
        log.finish(rid, "ok", "POST /api/v1/orders")
        log.flush()
        with eng.connect() as c:
            row = c.execute(text(f"SELECT result FROM audit_log WHERE id = {rid}"))
            assert row.scalar_one() == "ok"

        async def concurrent() -> list[int]:
            return list(
                await asyncio.gather(
                    *(log.begin_async(who, "POST x", f"/t/{i}", "{}") for i in range(50))
                )
            )

        ids = asyncio.run(concurrent())
        assert len(set(ids)) == 50
        for i in ids:
            log.finish(i, "409: exists")
        log.close()  # commits what is queued
        with eng.connect() as c:
            rows = c.execute(text("SELECT target, result FROM audit_log WHERE action = 'POST x'"))
            got = {t: r for t, r in rows}
        assert got == {f"/t/{i}": "409: exists" for i in range(50)}
        with eng.begin() as c:
            c.execute(text("DROP TABLE audit_log"))
        with pytest.raises(Unavailable, match="audit log not writable"):
            log.begin(who, "POST y", "/y", "{}")
    finally:
        log.close()
        eng.dispose()
        db.drop()
        cleanup_dir(d)


def test_session_read_by_an_event_loop_is_handed_back_when_the_loop_ends():
    """REST lets the event loop read the session's socket (attach_loop); a blocking order call
    on that loop is refused (it would wait for itself); once the loop is closed, blocking
    callers (gRPC, cancels) and a new loop are answered as before."""
    from xdpex.service import ControlPlane, OrderSpec

    d = short_tmpdir("oeloop")
    db = Database("sqlite", d)
    dp = Dataplane(d).start()
    cp = ControlPlane(dp.settings(db))
    try:
        cp.start()
        who = cp.authenticate("xt_test_operator")

        def spec(i: int) -> OrderSpec:
            return OrderSpec(2, "buy" if i % 2 else "sell", "limit", "gtc", 1, 800)

        async def on_loop(n: int) -> list[dict]:
            got = await asyncio.gather(*(cp.submit_orders_async(who, [spec(i)]) for i in range(n)))
            assert cp.oe is not None and cp.oe._loop_reading()  # the loop reads the socket
            with pytest.raises(RuntimeError, match="submit_async"):  # would wait for itself
                cp.submit_orders(who, [spec(0)])
            return [a for acks in got for a in acks]

        first = asyncio.run(on_loop(20))  # that loop is closed when asyncio.run returns
        assert cp.oe is not None and not cp.oe._loop_reading()
        blocking = cp.submit_orders(who, [spec(i) for i in range(30)])  # receiver thread again
        second = asyncio.run(on_loop(5))  # a new loop
        # A bid below every offer: nothing entered after it can fill it before the cancel (the
        # acks above alternate sides at one price, so a "new" one may have traded since).
        (rest,) = cp.submit_orders(who, [OrderSpec(2, "buy", "limit", "gtc", 1, 799)])
        assert rest["status"] == "new", rest
        assert cp.cancel_order(who, rest["order_id"])["status"] == "cancelled"
        ids = [a["order_id"] for a in first + blocking + second + [rest]]
        assert len(ids) == 56 and len(set(ids)) == 56 and None not in ids
    finally:
        cp.close()
        dp.stop()
        db.drop()
        cleanup_dir(d)
