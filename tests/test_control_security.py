"""API security: tokens that expire (401 saying so) and rotate (the old secret lives a grace
period, then names its successor), the 0003 migration both ways, a token cannot revoke itself,
the per-token request rate (429 with Retry-After and the reason; gRPC RESOURCE_EXHAUSTED), and
TLS for REST and gRPC from certificate files made here with openssl, checked with real TLS
clients (httpx, grpc) against `python -m xdpex.serve` beside a real xdpexd. PostgreSQL is the
session's private cluster."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
from alembic import command
from alembic.config import Config
from control_support import (
    Dataplane,
    cleanup_dir,
    database,
    free_tcp_port,
    make_pki,
    short_tmpdir,
)
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from xdpex.api import create_app
from xdpex.config import Settings
from xdpex.db import MIGRATIONS, make_engine, migrate
from xdpex.grpc_api import serve
from xdpex.pb import orderentry_pb2 as pb
from xdpex.pb import orderentry_pb2_grpc as pbg

OP = {"Authorization": "Bearer xt_test_operator"}


def wait_for(cond, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture
def db(request):
    d = short_tmpdir("sec")
    dbase = database(request, "postgres", d)
    try:
        yield dbase, d
    finally:
        dbase.drop()
        cleanup_dir(d)


@pytest.fixture
def api(db):
    dbase, d = db
    s = Settings(
        state_dir=d / "state",
        database_url=dbase.url,
        db_schema=dbase.schema,
        grpc_port=0,
        control_socket=d / "none.sock",
        order_socket=d / "none-e.sock",
        journal_dir=d / "j",
        operator_token="xt_test_operator",
        reconcile_interval_s=0,
    )
    with TestClient(create_app(s), raise_server_exceptions=False) as tc:
        yield tc


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def test_migration_0003_adds_and_removes_the_token_columns(db):
    dbase, _ = db
    eng = make_engine(dbase.url, dbase.schema)
    migrate(eng, "0002_firms")
    with eng.begin() as c:
        c.execute(text(
            "INSERT INTO api_tokens (name, role, token_hash, created_at) "
            "VALUES ('old', 'viewer', 'h1', now())"
        ))
    migrate(eng)
    cols = {c["name"] for c in inspect(eng).get_columns("api_tokens")}
    assert {"expires_at", "rotated_to", "rate", "burst"} <= cols
    with eng.connect() as c:
        assert c.execute(text("SELECT name, expires_at FROM api_tokens")).all() == [("old", None)]
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002_firms")
    cols = {c["name"] for c in inspect(eng).get_columns("api_tokens")}
    assert not {"expires_at", "rotated_to", "rate", "burst"} & cols
    eng.dispose()


def test_an_expired_token_is_refused_saying_when(api):
    r = api.post("/api/v1/tokens", json={"name": "brief", "role": "viewer", "expires_in_s": 1},
                 headers=OP)
    assert r.status_code == 201, r.text
    tok = r.json()
    assert tok["expires_at"] and tok["expired"] is False
    h = bearer(tok["token"])
    assert api.get("/api/v1/symbols", headers=h).status_code == 200
    r = wait_for(lambda: (x := api.get("/api/v1/symbols", headers=h)).status_code == 401 and x,
                 "the token expires", 10)
    assert r.json()["detail"] == f"token {tok['id']} (brief) expired at {tok['expires_at']}"
    assert r.headers["www-authenticate"] == "Bearer"
    listed = {t["id"]: t for t in api.get("/api/v1/tokens", headers=OP).json()}
    assert listed[tok["id"]]["expired"] is True
    r = api.get("/api/v1/symbols", headers=bearer("xt_nothing"))
    assert r.status_code == 401 and r.json()["detail"] == "unknown token"


def test_rotation_keeps_the_old_secret_for_the_grace_period_then_names_the_successor(api):
    t = api.post("/api/v1/tokens", json={"name": "bot", "role": "trader", "expires_in_s": 3600,
                                         "rate": 50}, headers=OP).json()
    old = bearer(t["token"])
    # a trader rotates itself
    r = api.post(f"/api/v1/tokens/{t['id']}/rotate", json={"grace_s": 1}, headers=old)
    assert r.status_code == 201, r.text
    new = r.json()
    assert (new["name"], new["role"], new["rate"]) == ("bot", "trader", 50)
    assert new["id"] != t["id"] and new["replaces"]["rotated_to"] == new["id"]
    assert new["expires_at"] > t["expires_at"]  # the same lifetime, from now
    assert api.get("/api/v1/symbols", headers=bearer(new["token"])).status_code == 200
    assert api.get("/api/v1/symbols", headers=old).status_code == 200  # within the grace
    m = api.get("/metrics").text  # when each live token expires, for an alert to rotate ahead
    line = "xdpex_api_token_expiry_timestamp_seconds"
    line += f'{{name="bot",role="trader",token_id="{new["id"]}"}}'
    got = [x for x in m.splitlines() if x.startswith(line + " ")]
    assert got and abs(float(got[0].split()[-1]) - (time.time() + 3600)) < 120, got
    r = wait_for(lambda: (x := api.get("/api/v1/symbols", headers=old)).status_code == 401 and x,
                 "the grace period ends", 10)
    assert f"it was rotated: use token {new['id']}" in r.json()["detail"]
    assert api.get("/api/v1/symbols", headers=bearer(new["token"])).status_code == 200
    # rotated once only; another's token only by an operator
    r = api.post(f"/api/v1/tokens/{t['id']}/rotate", json={}, headers=OP)
    assert r.status_code == 409 and "already rotated" in r.json()["detail"]
    v = api.post("/api/v1/tokens", json={"name": "v", "role": "viewer"}, headers=OP).json()
    r = api.post(f"/api/v1/tokens/{new['id']}/rotate", json={}, headers=bearer(v["token"]))
    assert r.status_code == 403
    r = api.post(f"/api/v1/tokens/{new['id']}/rotate", json={"grace_s": 0}, headers=OP)
    assert r.status_code == 201
    assert api.get("/api/v1/symbols", headers=bearer(new["token"])).status_code == 401


def test_a_token_cannot_revoke_itself_nor_the_api_the_configured_one(api):
    op2 = api.post("/api/v1/tokens", json={"name": "op2", "role": "operator"}, headers=OP).json()
    h2 = bearer(op2["token"])
    r = api.delete(f"/api/v1/tokens/{op2['id']}", headers=h2)
    assert r.status_code == 409 and "cannot revoke itself" in r.json()["detail"]
    assert api.get("/api/v1/symbols", headers=h2).status_code == 200
    conf = api.get("/api/v1/tokens", headers=OP).json()[0]  # XDPEX_OPERATOR_TOKEN
    for r in (
        api.delete(f"/api/v1/tokens/{conf['id']}", headers=h2),
        api.post(f"/api/v1/tokens/{conf['id']}/rotate", json={"grace_s": 0}, headers=OP),
    ):
        assert r.status_code == 409 and "XDPEX_OPERATOR_TOKEN" in r.json()["detail"], r.text
    assert api.get("/api/v1/symbols", headers=OP).status_code == 200
    assert api.delete(f"/api/v1/tokens/{op2['id']}", headers=OP).status_code == 204


def test_per_token_rate_limit_answers_429_with_retry_after_and_a_reason(api):
    t = api.post("/api/v1/tokens", json={"name": "slow", "role": "operator", "rate": 2,
                                         "burst": 3}, headers=OP).json()
    h = bearer(t["token"])
    codes = [api.get("/api/v1/symbols", headers=h).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429], codes
    r = api.get("/api/v1/symbols", headers=h)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert r.json()["detail"].startswith(
        f"rate limit: token {t['id']} (slow) may send 2 requests/s (burst 3); retry in"
    )
    # mutating requests are limited too, before anything is done
    r = api.post("/api/v1/symbols", json={"symbol_id": 9, "name": "X", "tick": 1, "lot": 1,
                                          "band_low": 1, "band_high": 5}, headers=h)
    assert r.status_code == 429
    # other tokens are not affected; the token recovers at its rate
    assert api.get("/api/v1/symbols", headers=OP).status_code == 200
    wait_for(lambda: api.get("/api/v1/symbols", headers=h).status_code == 200, "refilled", 5)
    m = api.get("/metrics").text
    assert 'xdpex_api_rate_limited_total{token="slow"}' in m

    # gRPC: the same bucket per token, RESOURCE_EXHAUSTED with the reason
    g = api.post("/api/v1/tokens", json={"name": "g", "role": "trader", "rate": 1, "burst": 2},
                 headers=OP).json()
    cp = api.app.state.cp
    server = serve(cp, "127.0.0.1", 0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{cp.grpc_port}") as ch:
            stub = pbg.OrderEntryStub(ch)
            md = (("authorization", f"Bearer {g['token']}"),)
            req = pb.SubmitOrderRequest(order=pb.NewOrder(symbol_id=1, side=pb.BUY, qty=1, price=1))
            got = []
            for _ in range(3):
                try:
                    stub.SubmitOrder(req, metadata=md, timeout=10)
                    got.append("OK")
                except grpc.RpcError as e:
                    got.append(e.code().name)
                    last = e.details()
            # no dataplane behind this API: the calls within the rate reach it and fail there
            assert got == ["UNAVAILABLE", "UNAVAILABLE", "RESOURCE_EXHAUSTED"], got
            assert last.startswith(f"rate limit: token {g['id']} (g) may send 1 requests/s")
            # an expired token: UNAUTHENTICATED saying so
            x = api.post("/api/v1/tokens", json={"name": "x", "role": "trader",
                                                 "expires_in_s": 1}, headers=OP).json()

            def refused():
                try:
                    stub.SubmitOrder(req, metadata=(("authorization", f"Bearer {x['token']}"),),
                                     timeout=10)
                except grpc.RpcError as e:
                    return e.code() == grpc.StatusCode.UNAUTHENTICATED and e.details()
                return None

            said = wait_for(refused, "the token expires for gRPC too", 10)
            assert said == f"token {x['id']} (x) expired at {x['expires_at']}", said
    finally:
        server.stop(0)


# -- TLS -----------------------------------------------------------------------------------------


def trust(ca: Path) -> ssl.SSLContext:
    """A client context that trusts only `ca` (and checks the host name)."""
    return ssl.create_default_context(cafile=str(ca))


class TlsControlPlane:
    """`python -m xdpex.serve` with TLS settings beside a real xdpexd."""

    def __init__(self, dp: Dataplane, d: Path, db, **env: str):
        self.http, self.grpc = free_tcp_port(), free_tcp_port()
        self.log = d / "cp.log"
        self.env = {
            **os.environ,
            "XDPEX_STATE_DIR": str(d / "cpstate"),
            "XDPEX_DATABASE_URL": db.url,
            "XDPEX_DB_SCHEMA": db.schema,
            "XDPEX_CONTROL_SOCKET": str(dp.ctl),
            "XDPEX_ORDER_SOCKET": str(dp.entry),
            "XDPEX_JOURNAL_DIR": str(dp.journal),
            "XDPEX_HTTP_PORT": str(self.http),
            "XDPEX_GRPC_PORT": str(self.grpc),
            "XDPEX_OPERATOR_TOKEN": "xt_test_operator",
            "XDPEX_UDP_MODE": "true",
            **env,
        }
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "xdpex.serve"], env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def tls_stack(db):
    dbase, d = db
    pki = d / "pki"
    pki.mkdir()
    make_pki(pki)
    dp = Dataplane(d).start()
    cp = TlsControlPlane(dp, d, dbase, XDPEX_TLS_CERTFILE=str(pki / "server.crt"),
                         XDPEX_TLS_KEYFILE=str(pki / "server.key"))
    try:
        yield cp, pki
    finally:
        cp.stop()
        dp.stop()


def test_rest_and_grpc_over_tls_with_real_clients(tls_stack):
    cp, pki = tls_stack
    base = f"https://127.0.0.1:{cp.http}"

    def ready():
        if cp.proc.poll() is not None:
            raise AssertionError(cp.log.read_text())
        try:
            return httpx.get(f"{base}/readyz", verify=trust(pki / "ca.crt"), timeout=2)
        except httpx.HTTPError:
            return None

    r = wait_for(ready, "the control plane answers over TLS", 30)
    assert r.status_code == 200, r.text
    with httpx.Client(base_url=base, verify=trust(pki / "ca.crt"), headers=OP, timeout=10) as c:
        r = c.post("/api/v1/orders", json={"symbol_id": 1, "side": "buy", "qty": 5, "price": 7})
        assert r.status_code == 201 and r.json()["status"] == "new", r.text
        assert c.get("/api/v1/books/1").json()["bids"] == [{"price": 7, "qty": 5, "orders": 1}]
    # a client that does not trust the issuer refuses the server; plain HTTP gets nowhere
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{base}/healthz", verify=trust(pki / "otherca.crt"), timeout=5)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{cp.http}/healthz", timeout=5)

    creds = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.crt").read_bytes())
    md = (("authorization", "Bearer xt_test_operator"),)
    req = pb.SubmitOrderRequest(order=pb.NewOrder(symbol_id=1, side=pb.SELL, qty=2, price=7))
    with grpc.secure_channel(f"127.0.0.1:{cp.grpc}", creds) as ch:
        ack = pbg.OrderEntryStub(ch).SubmitOrder(req, metadata=md, timeout=10)
        assert ack.status == "filled" and ack.fills[0].qty == 2, ack
    with grpc.insecure_channel(f"127.0.0.1:{cp.grpc}") as ch:
        with pytest.raises(grpc.RpcError) as e:
            pbg.OrderEntryStub(ch).SubmitOrder(req, metadata=md, timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    other = grpc.ssl_channel_credentials(root_certificates=(pki / "otherca.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{cp.grpc}", other) as ch:
        with pytest.raises(grpc.RpcError) as e:
            pbg.OrderEntryStub(ch).SubmitOrder(req, metadata=md, timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate_of_the_configured_ca(db):
    dbase, d = db
    pki = d / "pki"
    pki.mkdir()
    make_pki(pki)
    dp = Dataplane(d).start()
    cp = TlsControlPlane(dp, d, dbase, XDPEX_TLS_CERTFILE=str(pki / "server.crt"),
                         XDPEX_TLS_KEYFILE=str(pki / "server.key"),
                         XDPEX_TLS_CLIENT_CA=str(pki / "ca.crt"))
    try:
        base = f"https://127.0.0.1:{cp.http}"
        ctx = trust(pki / "ca.crt")
        ctx.load_cert_chain(pki / "client.crt", pki / "client.key")

        def ready():
            if cp.proc.poll() is not None:
                raise AssertionError(cp.log.read_text())
            try:
                return httpx.get(f"{base}/readyz", verify=ctx, timeout=2)
            except httpx.HTTPError:
                return None

        assert wait_for(ready, "mutual TLS answers", 30).status_code == 200
        with pytest.raises(httpx.HTTPError):  # no client certificate: the handshake fails
            httpx.get(f"{base}/healthz", verify=trust(pki / "ca.crt"), timeout=5)
        md = (("authorization", "Bearer xt_test_operator"),)
        req = pb.SubmitOrderRequest(order=pb.NewOrder(symbol_id=2, side=pb.BUY, qty=1, price=3))
        ca = (pki / "ca.crt").read_bytes()
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=(pki / "client.key").read_bytes(),
            certificate_chain=(pki / "client.crt").read_bytes(),
        )
        with grpc.secure_channel(f"127.0.0.1:{cp.grpc}", creds) as ch:
            assert pbg.OrderEntryStub(ch).SubmitOrder(req, metadata=md, timeout=10).status == "new"
        with grpc.secure_channel(f"127.0.0.1:{cp.grpc}",
                                 grpc.ssl_channel_credentials(root_certificates=ca)) as ch:
            with pytest.raises(grpc.RpcError) as e:
                pbg.OrderEntryStub(ch).SubmitOrder(req, metadata=md, timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        cp.stop()
        dp.stop()


def test_a_tls_setting_that_cannot_work_stops_the_start_naming_it(db):
    dbase, d = db
    pki = d / "pki"
    pki.mkdir()
    make_pki(pki)
    dp = Dataplane(d).start()
    try:
        for env, said in (
            ({"XDPEX_TLS_CERTFILE": str(pki / "server.crt")}, "go together: set both or neither"),
            ({"XDPEX_TLS_CERTFILE": str(pki / "server.crt"),
              "XDPEX_TLS_KEYFILE": str(pki / "client.key")},
             f"XDPEX_TLS_KEYFILE {pki / 'client.key'}: KEY_VALUES_MISMATCH"),
            ({"XDPEX_TLS_CERTFILE": str(pki / "nope.crt"),
              "XDPEX_TLS_KEYFILE": str(pki / "server.key")},
             f"XDPEX_TLS_CERTFILE {pki / 'nope.crt'}: cannot be read"),
        ):
            cp = TlsControlPlane(dp, d, dbase, **env)
            try:
                assert cp.proc.wait(30) == 2
            finally:
                cp.stop()
            assert said in cp.log.read_text(), cp.log.read_text()
    finally:
        dp.stop()
