"""Control plane REST API without a dataplane: storage on SQLite and PostgreSQL, tokens and roles,
the role matrix over every mutating route of the OpenAPI spec, 422 naming the field, audit,
readiness and 503 when the dataplane is down. (With a real xdpexd: test_control_e2e.py.)"""

from __future__ import annotations

import re

import pytest
from control_support import cleanup_dir, database, short_tmpdir
from fastapi.testclient import TestClient
from sqlalchemy import inspect
from xdpex.api import create_app
from xdpex.config import Settings
from xdpex.db import make_engine, migrate

OP = {"Authorization": "Bearer xt_test_operator"}
TABLES = {
    "api_tokens",
    "audit_log",
    "gw_sessions",
    "symbols",
    "config_items",
    "orders",
    "executions",
    "session_events",
    "persister_position",
    "firms",
    "firm_sessions",
    "firm_readers",
    "alembic_version",
}


@pytest.fixture(params=["sqlite", "postgres"])
def db(request):
    d = short_tmpdir("db")
    dbase = database(request, request.param, d)
    try:
        yield dbase
    finally:
        dbase.drop()
        cleanup_dir(d)


@pytest.fixture
def client(db):
    d = short_tmpdir("api")
    s = Settings(
        state_dir=d / "state",
        database_url=db.url,
        db_schema=db.schema,
        grpc_port=0,
        control_socket=d / "none.sock",
        order_socket=d / "none-e.sock",
        journal_dir=d / "j",
        operator_token="xt_test_operator",
    )
    try:
        with TestClient(create_app(s), raise_server_exceptions=False) as tc:
            yield tc
    finally:
        cleanup_dir(d)


def token(tc: TestClient, role: str) -> dict[str, str]:
    r = tc.post("/api/v1/tokens", json={"name": f"t-{role}", "role": role}, headers=OP)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_migrations_create_every_table_and_are_idempotent(db):
    eng = make_engine(db.url, db.schema)
    migrate(eng)
    migrate(eng)
    assert set(inspect(eng).get_table_names()) == TABLES
    eng.dispose()


def test_tokens_are_required_and_revocable(client):
    assert client.get("/api/v1/symbols").status_code == 401
    assert (
        client.get("/api/v1/symbols", headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    r = client.post("/api/v1/tokens", json={"name": "v", "role": "viewer"}, headers=OP)
    tok = r.json()
    h = {"Authorization": f"Bearer {tok['token']}"}
    assert client.get("/api/v1/symbols", headers=h).status_code == 200
    listed = client.get("/api/v1/tokens", headers=OP).json()
    assert all("token" not in t for t in listed) and any(t["id"] == tok["id"] for t in listed)
    assert client.delete(f"/api/v1/tokens/{tok['id']}", headers=OP).status_code == 204
    r = client.get("/api/v1/symbols", headers=h)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def _mutating_routes(tc: TestClient) -> list[tuple[str, str]]:
    spec = tc.get("/openapi.json").json()
    out = []
    for path, ops in spec["paths"].items():
        for method in ops:
            if method.upper() in {"POST", "PUT", "PATCH", "DELETE"}:
                out.append((method.upper(), re.sub(r"\{[^}]+\}", "1", path)))
    return out


def test_role_matrix_viewer_and_trader_cannot_change_configuration(client):
    routes = _mutating_routes(client)
    assert len(routes) >= 12, routes
    viewer, trader = token(client, "viewer"), token(client, "trader")
    for method, path in routes:
        r = client.request(method, path, headers=viewer, json={})
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        r = client.request(method, path, headers=trader, json={})
        if path.startswith("/api/v1/orders"):
            assert r.status_code != 403, (method, path)
        else:
            assert r.status_code == 403, (method, path, r.status_code, r.text)


def test_validation_errors_name_the_field(client):
    trader = token(client, "trader")
    r = client.post(
        "/api/v1/orders",
        headers=trader,
        json={"symbol_id": 1, "side": "buy", "qty": 0, "price": 10},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == "qty"
    r = client.post(
        "/api/v1/orders", headers=trader, json={"symbol_id": 1, "side": "up", "qty": 1, "price": 10}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "side"
    r = client.post(
        "/api/v1/orders",
        headers=trader,
        json={"symbol_id": 1, "side": "buy", "type": "limit", "qty": 1},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "price"
    r = client.post(
        "/api/v1/symbols",
        headers=OP,
        json={"symbol_id": 9, "name": "X", "tick": 1, "lot": 1, "band_low": 10, "band_high": 5},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "band_low"
    r = client.post("/api/v1/allowlist", headers=OP, json={"prefix": "10.0.0.256/24"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "prefix"
    r = client.get("/api/v1/books/1?depth=0", headers=OP)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "depth"


def test_dataplane_down_gives_503_with_the_reason(client):
    r = client.post(
        "/api/v1/symbols",
        headers=OP,
        json={"symbol_id": 9, "name": "X", "tick": 1, "lot": 1, "band_low": 1, "band_high": 5},
    )
    assert r.status_code == 503 and "none.sock" in r.json()["detail"]
    trader = token(client, "trader")
    r = client.post(
        "/api/v1/orders",
        headers=trader,
        json={"symbol_id": 1, "side": "buy", "qty": 1, "price": 10},
    )
    assert r.status_code == 503 and "control socket" in r.json()["detail"]
    r = client.get("/readyz")
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["database"] == "ok" and checks["dataplane"].startswith("unreachable")
    assert client.get("/healthz").status_code == 200
    m = client.get("/metrics").text
    assert "xdpex_dataplane_up 0.0" in m


def test_every_change_is_audited_with_who_what_and_result(client):
    viewer = token(client, "viewer")
    client.post("/api/v1/allowlist", headers=viewer, json={"prefix": "10.0.0.0/24"})
    client.put("/api/v1/rate-limits", headers=OP, json={"pps": -1, "burst": 0})
    rows = client.get("/api/v1/audit?limit=10", headers=OP).json()
    by_action = {(r["action"], r["actor"]): r for r in rows}
    denied = by_action[("POST /api/v1/allowlist", "t-viewer")]
    assert denied["result"].startswith("403") and "10.0.0.0/24" in denied["detail"]
    bad = by_action[("PUT /api/v1/rate-limits", "operator")]
    assert bad["result"].startswith("422") and "pps" in bad["result"]
    created = by_action[("POST /api/v1/tokens", "operator")]
    assert created["result"] == "ok"


def test_a_body_with_nul_bytes_is_audited_and_answered(client):
    # PostgreSQL text cannot hold NUL: the audit record escapes it instead of refusing the request
    r = client.post(
        "/api/v1/allowlist",
        content=b'{"prefix": "10.0.0.0/8\x00"}',
        headers=OP | {"Content-Type": "application/json"},
    )
    assert r.status_code in (400, 422), r.text
    rec = client.get("/api/v1/audit?limit=5", headers=OP).json()
    rec = [a for a in rec if a["action"] == "POST /api/v1/allowlist"][0]
    assert "\\u0000" in rec["detail"] and rec["result"].startswith(str(r.status_code))
