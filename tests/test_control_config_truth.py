"""One truth for configuration: a change the dataplane refuses is refused by the API with the
dataplane's reason and the database is left as it was; after a failed or partial apply the two
agree; the periodic reconciliation reports a difference made behind the API's back, in readiness
and /metrics. Real xdpexd (kernel-UDP mode, small engine limits), real PostgreSQL (the session's
private cluster, a schema of this test's own)."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
from control_support import Dataplane, cleanup_dir, database, default_config, short_tmpdir
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from xdpex.api import create_app
from xdpex.dataplane import ControlClient
from xdpex.models import GwSession, Symbol

OP = {"Authorization": "Bearer xt_test_operator"}
MAX_SYMBOLS, MAX_SESSIONS = 64, 8


@pytest.fixture
def stack(request):
    d = short_tmpdir("truth")
    db = database(request, "postgres", d)
    cfg = default_config(4)
    cfg["engine"] = {"max_orders": 4096, "max_symbols": MAX_SYMBOLS, "max_sessions": MAX_SESSIONS}
    dp = Dataplane(d, config=cfg).start()
    s = dp.settings(db, reconcile_interval_s=0.2)
    ctl = ControlClient(dp.ctl, 5.0)
    try:
        with TestClient(create_app(s), raise_server_exceptions=False) as tc:
            yield tc, dp, db, ctl
    finally:
        ctl.close()
        dp.stop()
        db.drop()
        cleanup_dir(d)


def stored(tc: TestClient) -> tuple[list[tuple], list[tuple]]:
    """The database's symbols and sessions, straight from the tables."""
    with tc.app.state.cp.db() as s:
        syms = [
            (y.symbol_id, y.name, y.tick, y.lot, y.band_low, y.band_high, y.halted)
            for y in s.scalars(select(Symbol).order_by(Symbol.symbol_id))
        ]
        sess = [(r.session_id, r.disabled) for r in s.scalars(select(GwSession))]
    return syms, sess


def assert_agree(tc: TestClient, ctl: ControlClient) -> None:
    """Every stored symbol and session is in xdpexd with the same parameters."""
    live = {y["id"]: y for y in ctl.symbols()["symbols"]}
    syms, sess = stored(tc)
    for sid, _name, tick, lot, lo, hi, halted in syms:
        y = live.get(sid)
        assert y is not None, f"symbol {sid} stored but not in xdpexd"
        assert (y["tick"], y["lot"], y["band"], y["halted"]) == (tick, lot, [lo, hi], halted)
    live_sess = {x["id"]: x for x in ctl.sessions()}
    for sid, disabled in sess:
        assert sid in live_sess and live_sess[sid]["enabled"] is (not disabled), sid
    rep = tc.app.state.cp.reconciler.run_once()
    assert not rep.error and not rep.serious, rep.summary()


def sym(symbol_id: int, **kw) -> dict:
    body = {"symbol_id": symbol_id, "name": f"S{symbol_id}", "tick": 1, "lot": 1,
            "band_low": 1, "band_high": 1000}
    return body | kw


def test_symbols_query_lists_what_the_engine_holds(stack):
    _, _, _, ctl = stack
    ans = ctl.symbols()
    assert (ans["max_symbols"], ans["max_sessions"]) == (MAX_SYMBOLS, MAX_SESSIONS)
    assert [(y["id"], y["name"], y["band"]) for y in ans["symbols"]] == [
        (i, f"SYM{i}", [1, 1_000_000]) for i in range(1, 5)
    ]


def test_every_refusal_of_the_dataplane_is_the_apis_answer_and_nothing_is_stored(stack):
    tc, _, _, ctl = stack
    assert tc.post("/api/v1/symbols", json=sym(10), headers=OP).status_code == 201
    before = stored(tc)

    # bad tick: band bounds that are not multiples of it (the dataplane checks, not the API)
    r = tc.post("/api/v1/symbols", json=sym(11, tick=7, band_low=10, band_high=700), headers=OP)
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    assert d["loc"] == ["body", "band_low"] and "multiples of tick 7" in d["msg"], d
    assert "refused by the dataplane" in d["msg"]

    # id over the engine's limit
    r = tc.post("/api/v1/symbols", json=sym(MAX_SYMBOLS + 1), headers=OP)
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    assert d["loc"] == ["body", "symbol_id"] and f"max_symbols {MAX_SYMBOLS}" in d["msg"], d

    # a queue the dataplane does not serve, for a symbol and for a session
    r = tc.post("/api/v1/symbols", json=sym(14, queue=5), headers=OP)
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    assert d["loc"] == ["body", "queue"] and "5 is not served (--queues)" in d["msg"], d
    r = tc.post("/api/v1/sessions", json={"name": "q5", "queue": 5}, headers=OP)
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    assert d["loc"] == ["body", "queue"] and "5 is not served (--queues)" in d["msg"], d

    # duplicate: through the API, and one the dataplane has from its file with other parameters
    r = tc.post("/api/v1/symbols", json=sym(10), headers=OP)
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    r = tc.post("/api/v1/symbols", json=sym(12, name="S10"), headers=OP)
    assert r.status_code == 409 and "already used" in r.json()["detail"]
    r = tc.post("/api/v1/symbols", json=sym(1, tick=5, band_low=5, band_high=500), headers=OP)
    assert r.status_code == 409, r.text
    assert "exists with other tick" in r.json()["detail"], r.text

    # band too wide for the engine's ladder (before issue 13's paged ladder): refused with the
    # engine's reason; once accepted, the dataplane must hold exactly that band
    r = tc.post("/api/v1/symbols", json=sym(13, band_high=100_000_000), headers=OP)
    if r.status_code == 201:
        assert ctl.symbols()["symbols"][-1]["band"] == [1, 100_000_000]
        before = stored(tc)
    else:
        assert r.status_code == 409, r.text
        assert "engine refused symbol 13" in r.json()["detail"], r.text
        assert 13 not in {y["id"] for y in ctl.symbols()["symbols"]}
    assert stored(tc) == before
    assert_agree(tc, ctl)

    # halting a symbol the dataplane does not have is refused with its reason
    r = tc.post("/api/v1/symbols/40/halt", headers=OP)
    assert r.status_code == 404

    # sessions: the limit reached (ids are 1..max_sessions)
    made = []
    for _ in range(MAX_SESSIONS + 2):
        r = tc.post("/api/v1/sessions", json={"name": f"s{len(made)}"}, headers=OP)
        if r.status_code != 201:
            break
        made.append(r.json()["session_id"])
    assert len(made) == MAX_SESSIONS, made
    assert r.status_code == 409 and "session limit reached" in r.json()["detail"], r.text
    assert f"max_sessions {MAX_SESSIONS}" in r.json()["detail"]
    assert sorted(x for x, _ in stored(tc)[1]) == made
    assert stored(tc)[0] == before[0]
    assert_agree(tc, ctl)


def test_out_of_memory_in_the_engine_is_refused_and_nothing_is_stored(stack):
    tc, dp, _, ctl = stack
    assert dp.proc is not None
    pid = dp.proc.pid
    vm = next(
        int(line.split()[1]) * 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmSize:")
    )
    # 32 MB of address space left: a ladder of 8 M levels allocated with the symbol (24 bytes
    # each, per side) does not fit; a paged ladder allocates nothing then. Either way the
    # control socket must still answer (it once wanted 64 MiB per connection) and both agree.
    resource.prlimit(pid, resource.RLIMIT_AS, (vm + (32 << 20), resource.RLIM_INFINITY))
    before = stored(tc)
    r = tc.post("/api/v1/symbols", json=sym(20, band_high=8_000_000), headers=OP)
    live = {y["id"]: y for y in ctl.symbols()["symbols"]}
    if r.status_code == 201:  # a ladder whose memory follows the orders: nothing to run out of
        assert live[20]["band"] == [1, 8_000_000]
    else:
        assert r.status_code == 409, r.text
        assert "Cannot allocate memory" in r.json()["detail"], r.text
        assert 20 not in live and stored(tc) == before
    assert ctl.stats()["ok"] is True
    resource.prlimit(pid, resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert tc.post("/api/v1/symbols", json=sym(21), headers=OP).status_code == 201
    assert_agree(tc, ctl)


def test_a_failed_database_write_after_the_apply_is_reported_then_repaired(stack):
    tc, _, db, ctl = stack
    cp = tc.app.state.cp
    with cp.engine.begin() as c:  # the database refuses new symbols
        c.execute(text(
            f'CREATE FUNCTION "{db.schema}".no_symbols() RETURNS trigger LANGUAGE plpgsql AS '
            "$$BEGIN RAISE EXCEPTION 'symbols are read-only'; END$$"
        ))
        c.execute(text(
            f'CREATE TRIGGER no_symbols BEFORE INSERT ON "{db.schema}".symbols '
            f'FOR EACH ROW EXECUTE FUNCTION "{db.schema}".no_symbols()'
        ))
    r = tc.post("/api/v1/symbols", json=sym(30), headers=OP)
    assert r.status_code == 503, r.text
    assert "added to the dataplane but the database did not record it" in r.json()["detail"]
    rep = cp.reconciler.run_once()
    assert [str(x) for x in rep.differences if x.id == 30] == [
        "symbol 30: not_in_database: in xdpexd only"
    ]
    bulk = {"symbols": [sym(31), sym(32)]}
    r = tc.post("/api/v1/symbols/bulk", json=bulk, headers=OP)
    assert r.status_code == 503 and "2 symbols were added to the dataplane" in r.text, r.text
    assert {x.id for x in cp.reconciler.run_once().differences if x.id > 4} == {30, 31, 32}
    with cp.engine.begin() as c:
        c.execute(text(f'DROP TRIGGER no_symbols ON "{db.schema}".symbols'))
    # the same requests again: the dataplane has them with the same parameters, now stored
    assert tc.post("/api/v1/symbols", json=sym(30), headers=OP).status_code == 201
    r = tc.post("/api/v1/symbols/bulk", json=bulk, headers=OP)
    assert r.status_code == 200 and r.json() == {"created": 2, "refused": []}, r.text
    assert_agree(tc, ctl)
    assert not {x.id for x in cp.reconciler.run_once().differences} & {30, 31, 32}


def wait_for(cond, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def metric(tc: TestClient, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    key = f"{name}{{{want}}}" if labels else name
    for line in tc.get("/metrics").text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return None


def test_reconciliation_reports_differences_made_behind_the_apis_back(stack):
    tc, _, _, ctl = stack
    assert tc.post("/api/v1/symbols", json=sym(10), headers=OP).status_code == 201
    sess = tc.post("/api/v1/sessions", json={"name": "alice"}, headers=OP).json()["session_id"]
    # readiness shows the latest periodic report (at most two periods old)
    r = wait_for(
        lambda: (x := tc.get("/readyz")).json()["checks"]["configuration"].startswith(
            "ok: 1 symbols and 1 sessions agree"
        ) and x,
        "readiness reports the new symbol and session",
    )
    assert r.status_code == 200, r.text
    runs0 = metric(tc, "xdpex_config_reconciliations_total")
    wait_for(lambda: metric(tc, "xdpex_config_reconciliations_total") > runs0, "periodic run")

    # behind the API: halt symbol 10 and disable the session on the control socket, add a row
    # to the database, add a symbol on the control socket
    ctl.halt(10)
    ctl.apply({"sessions": [{"id": sess, "enabled": False}]})
    with tc.app.state.cp.db.begin() as s:
        s.add(Symbol(symbol_id=50, name="GHOST", tick=1, lot=1, band_low=1, band_high=10))
    ctl.apply({"symbols": [{"id": 51, "tick": 1, "lot": 1, "band": [1, 10]}]})

    def seen():
        d = lambda o, k: metric(tc, "xdpex_config_differences", object=o, difference=k)  # noqa: E731
        return (
            d("symbol", "mismatch") == 1
            and d("session", "mismatch") == 1
            and d("symbol", "missing_in_dataplane") == 1
            and d("symbol", "not_in_database") == 5  # the file's 1..4 and 51
        )

    wait_for(seen, "the differences in /metrics (from the periodic reconciliation)")
    assert metric(tc, "xdpex_config_reconcile_ok") == 0
    r = tc.get("/readyz")
    assert r.status_code == 503, r.text
    c = r.json()["checks"]["configuration"]
    assert c.startswith("differs: 3 differences"), c
    assert "symbol 10: mismatch: halted False here, True in xdpexd" in c
    assert "session 1: mismatch: enabled here, disabled in xdpexd" in c
    assert "symbol 50: missing_in_dataplane" in c
    assert "symbol 51: not_in_database" in c

    # repaired behind the API again: agreement is reported
    ctl.resume(10)
    ctl.apply({"sessions": [{"id": sess, "enabled": True}]})
    with tc.app.state.cp.db.begin() as s:
        s.delete(s.get(Symbol, 50))
    wait_for(lambda: metric(tc, "xdpex_config_reconcile_ok") == 1, "agreement reported")
    assert tc.get("/readyz").status_code == 200


def _raw(path: Path, line: bytes, timeout: float = 20.0) -> dict:
    """One request line on a fresh control-socket connection, its answer."""
    import json
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        try:
            s.sendall(line)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the whole line was read: its answer is waiting all the same
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(1 << 16)
            if not chunk:
                raise AssertionError(f"connection closed without an answer (got {buf[:200]!r})")
            buf += chunk
    return json.loads(buf.split(b"\n", 1)[0])


def test_control_socket_long_lines_and_memory_limits(stack):
    _, dp, _, _ = stack
    # a 3 MB request: the line buffer grows to it (64 KiB to start)
    pad = "x" * (3 << 20)
    ans = _raw(dp.ctl, b'{"cmd":"symbols","pad":"' + pad.encode() + b'"}\n')
    assert ans["ok"] is True and len(ans["symbols"]) == 4
    # with 16 MB of address space left, a 40 MB line cannot be held: refused with a reason, and
    # the next connection is served
    pid = dp.proc.pid
    vm = next(
        int(line.split()[1]) * 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmSize:")
    )
    resource.prlimit(pid, resource.RLIMIT_AS, (vm + (16 << 20), resource.RLIM_INFINITY))
    try:
        big = b'{"cmd":"symbols","pad":"' + b"y" * (40 << 20) + b'"}\n'
        ans = _raw(dp.ctl, big)
        assert ans["ok"] is False and ans["code"] == "out_of_memory", ans
        assert "no memory for a" in ans["error"]
        assert _raw(dp.ctl, b'{"cmd":"stats"}\n')["ok"] is True
    finally:
        resource.prlimit(pid, resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
