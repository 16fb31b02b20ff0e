"""The drop copy against a real xdpexd and its real journal: firms configured over REST (sessions,
readers; conflicts, validation and roles refused with the reason), then the gRPC DropCopy stream
of a firm equal, report for report and byte for byte, to what each of its sessions received
itself, exactly once from a requested sequence, live while orders flow, and after xdpexd was
killed with SIGKILL and restarted; other firms' sessions never appear, and callers without the
right are refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from dataplane_support import Env, base_config, need_root_and_binary, new_order
from fastapi.testclient import TestClient
from xdpex.api.main import create_app
from xdpex.config import Settings
from xdpex.dropcopy import pb, pbg
from xdpex.grpc_api import serve
from xdpex.service import ControlPlane
from xdpex_proto import codec as c

OP = "xt_dropcopy_operator"
OPH = {"Authorization": f"Bearer {OP}"}


class World:
    def __init__(self, env: Env, tc: TestClient, cp: ControlPlane, stub: Any):
        self.env, self.tc, self.cp, self.stub = env, tc, cp, stub

    def token(self, name: str, role: str = "viewer") -> str:
        r = self.tc.post("/api/v1/tokens", json={"name": name, "role": role}, headers=OPH)
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def stream(self, tok: str, firm: str, **kw: Any) -> list[Any]:
        req = pb.DropCopyRequest(firm=firm, **kw)
        return list(self.stub.Stream(req, metadata=[("authorization", f"Bearer {tok}")],
                                     timeout=30))  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    need_root_and_binary()
    env = Env("udp", tmp_path / "dp", None, config=base_config(nsessions=4))
    (tmp_path / "dp").mkdir()
    env.daemon.start()
    s = Settings(state_dir=tmp_path / "state", database_url=f"sqlite:///{tmp_path / 'cp.db'}",
                 grpc_port=0, control_socket=env.daemon.ctl_path,
                 order_socket=tmp_path / "none-e.sock", journal_dir=env.daemon.journal,
                 operator_token=OP)  # fmt: skip
    cp = ControlPlane(s)
    try:
        with TestClient(create_app(s, cp)) as tc:
            server = serve(cp, "127.0.0.1", 0)
            ch = grpc.insecure_channel(f"127.0.0.1:{cp.grpc_port}")
            try:
                yield World(env, tc, cp, pbg.DropCopyStub(ch))
            finally:
                ch.close()
                server.stop(0).wait()
    finally:
        env.close()


def trade(w: World, clients: dict[int, Any], base: int) -> None:
    """Resting orders, crossing ones, a cancel, a replace and rejects between sessions 1..3."""
    a, b, x = clients[1], clients[2], clients[3]
    a.send_app([new_order(base + 1, c.Side.BUY, 100, 10), new_order(base + 2, c.Side.BUY, 99, 5),
                new_order(base + 3, c.Side.BUY, 0, 5)])  # the last: BAD_PRICE
    a.wait_count(lambda m: isinstance(m, c.Accepted | c.Rejected) and m.cl_ord_id > base, 3)
    x.send_app([new_order(base + 1, c.Side.SELL, 100, 4)])  # trades with session 1
    b.send_app([new_order(base + 1, c.Side.SELL, 99, 8), c.Cancel(1, base + 77, 0),
                c.Replace(1, base + 1, base + 5, 101, 1, 0)])  # unknown cancel, replace
    for cl, n in ((a, 5), (b, 4), (x, 2)):
        cl.wait_count(lambda m: isinstance(m, c.Fill | c.Accepted | c.Rejected | c.Replaced |
                                            c.Cancelled), n)  # fmt: skip


def own_reports(cl: Any) -> list[tuple[int, bytes]]:
    cl.recv(0.2)
    return sorted({(seq, m.encode()) for seq, m in cl.app_messages()})


def by_session(reports: list[Any]) -> dict[int, list[tuple[int, bytes]]]:
    out: dict[int, list[tuple[int, bytes]]] = {}
    for r in reports:
        out.setdefault(r.session_id, []).append((r.seq, bytes(r.raw)))
    return out


def test_firms_over_rest(world: World) -> None:
    tc = world.tc
    r = tc.post("/api/v1/firms", json={"name": "acme", "sessions": [1, 2], "readers": ["risk"]},
                headers=OPH)  # fmt: skip
    assert r.status_code == 201, r.text
    acme = r.json()
    assert acme["sessions"] == [1, 2] and acme["readers"] == ["risk"]
    r = tc.post("/api/v1/firms", json={"name": "bolt", "sessions": [2, 3]}, headers=OPH)
    assert r.status_code == 409 and "session 2 belongs to firm acme" in r.json()["detail"]
    r = tc.post("/api/v1/firms", json={"name": "acme"}, headers=OPH)
    assert r.status_code == 409
    r = tc.post("/api/v1/firms", json={"name": "bad", "sessions": [0]}, headers=OPH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-2:] == ["sessions", 0]
    r = tc.post("/api/v1/firms", json={"name": "bad name"}, headers=OPH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "name"
    viewer = {"Authorization": f"Bearer {world.token('v')}"}
    assert tc.get("/api/v1/firms", headers=viewer).status_code == 403
    r = tc.put(f"/api/v1/firms/{acme['firm_id']}/sessions", json={"sessions": [1, 2, 4]},
               headers=OPH)  # fmt: skip
    assert r.status_code == 200 and r.json()["sessions"] == [1, 2, 4]
    r = tc.put(f"/api/v1/firms/{acme['firm_id']}/readers", json={"readers": ["risk", "ops"]},
               headers=OPH)  # fmt: skip
    assert r.json()["readers"] == ["ops", "risk"]
    assert tc.get("/api/v1/firms/999", headers=OPH).status_code == 404
    assert [f["name"] for f in tc.get("/api/v1/firms", headers=OPH).json()] == ["acme"]
    assert tc.delete(f"/api/v1/firms/{acme['firm_id']}", headers=OPH).status_code == 204
    assert tc.get("/api/v1/firms", headers=OPH).json() == []
    audit = tc.get("/api/v1/audit?limit=50", headers=OPH).json()
    assert any(a["action"] == "POST /api/v1/firms" and a["result"] == "ok" for a in audit)


def test_drop_copy_equals_each_sessions_own_answers(world: World) -> None:
    r = world.tc.post("/api/v1/firms", json={"name": "acme", "sessions": [1, 2],
                                             "readers": ["risk"]}, headers=OPH)  # fmt: skip
    assert r.status_code == 201
    risk, other = world.token("risk"), world.token("other")
    clients = {s: world.env.client(s) for s in (1, 2, 3)}
    for cl in clients.values():
        assert isinstance(cl.login(), c.LoginAccepted)
    trade(world, clients, 100)

    got = by_session(world.stream(risk, "acme"))
    assert set(got) == {1, 2}, "only the firm's sessions"
    for s in (1, 2):
        mine = own_reports(clients[s])
        assert got[s] == mine, f"session {s}"
        assert [q for q, _ in mine] == list(range(1, len(mine) + 1))
    # From a requested sequence, exactly once.
    again = by_session(world.stream(risk, "acme", from_seq=3, session_from={2: 2}))
    assert again[1] == got[1][2:] and again[2] == got[2][1:]
    # Live: a stream that follows sees the next reports as they are sent, once each.
    live: list[Any] = []
    req = pb.DropCopyRequest(firm="acme", from_seq=1, follow=True)
    call = world.stub.Stream(req, metadata=[("authorization", f"Bearer {risk}")])
    need = sum(len(v) for v in got.values())

    def reader() -> None:
        try:
            for rep in call:
                live.append(rep)
        except grpc.RpcError:
            pass

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    trade(world, clients, 200)
    # kill -9 and restart xdpexd in the middle of the session: replay journals nothing twice
    world.env.daemon.kill9()
    world.env.daemon.start()
    for cl in clients.values():
        assert isinstance(cl.login(next_seq=0), c.LoginAccepted)
    trade(world, clients, 300)
    mine = {s: own_reports(clients[s]) for s in (1, 2)}
    total = sum(len(v) for v in mine.values())
    assert total > need
    deadline = threading.Event()
    for _ in range(300):
        if len(live) >= total:
            break
        deadline.wait(0.05)
    call.cancel()
    t.join(5)
    assert by_session(live) == mine, "live drop copy across a kill -9 equals the answers"
    assert len(live) == total

    # Refusals.
    def code(tok: str | None, **kw: Any) -> grpc.StatusCode:
        md = [("authorization", f"Bearer {tok}")] if tok else []
        with pytest.raises(grpc.RpcError) as ei:
            list(world.stub.Stream(pb.DropCopyRequest(**kw), metadata=md, timeout=10))
        return ei.value.code()

    assert code(None, firm="acme") == grpc.StatusCode.UNAUTHENTICATED
    assert code(other, firm="acme") == grpc.StatusCode.PERMISSION_DENIED
    assert code(risk, firm="nosuch") == grpc.StatusCode.NOT_FOUND
    assert code(risk, firm="") == grpc.StatusCode.INVALID_ARGUMENT
    assert code(risk, firm="acme", session_from={3: 1}) == grpc.StatusCode.INVALID_ARGUMENT
    # An operator reads any firm.
    assert by_session(world.stream(OP, "acme")) == mine
