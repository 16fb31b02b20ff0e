"""Persister and Redis publisher against a real xdpexd journal.

- The persister (a real `python -m xdpex.persister` process) is SIGKILLed several times while
  orders stream in and restarted; afterwards the database equals the journal: same counts and
  the same content hash of every order's final state and every execution, computed here by an
  independent replay of the journal's outbound messages. On SQLite and PostgreSQL.
- The Redis publisher puts every execution into its stream exactly once, across a restart of
  the publisher and across a restart of the Redis server itself (a redis-server of the test's
  own, xdpex.services.RedisInstance, killed and started again on its port: it has lost its data,
  so the publisher must refill the stream).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager

import pytest
import redis
from control_support import Database, Dataplane, cleanup_dir, short_tmpdir
from sqlalchemy import func, select
from xdpex.auth import Principal
from xdpex.errors import Conflict
from xdpex.models import PersisterPosition
from xdpex.persister import database_orders, journal_orders
from xdpex.publisher import Publisher
from xdpex.service import ControlPlane, OrderSpec
from xdpex.services import RedisInstance

WHO = Principal("test", "operator")


def drive(cp: ControlPlane, n: int, seed: int, stop: threading.Event | None = None) -> int:
    """Enter n orders (limit, IOC, some off-band rejects) and cancel some resting ones."""
    rnd = random.Random(seed)
    sent = 0
    while sent < n and not (stop and stop.is_set()):
        specs = []
        for _ in range(100):
            side = rnd.choice(["buy", "sell"])
            px = rnd.randint(95, 105) if rnd.random() > 0.02 else 9_999_999
            tif = "ioc" if rnd.random() < 0.2 else "gtc"
            specs.append(OrderSpec(rnd.randint(1, 3), side, "limit", tif, rnd.randint(1, 20), px))
        acks = cp.submit_orders(WHO, specs)
        for a in acks[:5]:
            if a["status"] in ("new", "partially_filled"):
                try:
                    cp.cancel_order(WHO, a["order_id"])
                except Conflict:
                    pass  # filled after its acknowledgement: nothing left to cancel
        sent += len(specs)
        if stop is not None:
            stop.wait(0.04)  # spread the load so that the persister is killed mid-stream
    return sent


@contextmanager
def stack(kind: str, pg_url: str = ""):
    d = short_tmpdir("per")
    db = Database(kind, d, pg_url)
    dp = Dataplane(d, extra=["--segment-mb", "1"]).start()  # several segments
    s = dp.settings(db)
    cp = ControlPlane(s)
    cp.start()
    try:
        yield cp, dp, s
    finally:
        cp.close()
        dp.stop()
        db.drop()
        cleanup_dir(d)


@pytest.fixture(params=["sqlite", "postgres"])
def env(request):
    url = request.getfixturevalue("svc_pg").url if request.param == "postgres" else ""
    with stack(request.param, url) as e:
        yield e


@pytest.fixture
def env_sqlite():
    """The publisher reads only the journal: one database backend is enough."""
    with stack("sqlite") as e:
        yield e


def persister(s, *extra):
    env = {
        **os.environ,
        "XDPEX_DATABASE_URL": s.database_url,
        "XDPEX_DB_SCHEMA": s.db_schema,
        "XDPEX_JOURNAL_DIR": str(s.journal_dir),
        "XDPEX_STATE_DIR": str(s.state_dir),
        "XDPEX_PERSIST_BATCH": "250",
        "XDPEX_REDIS_URL": "",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "xdpex.persister", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_persister_killed_mid_stream_loses_and_doubles_nothing(env):
    cp, dp, s = env
    stop = threading.Event()
    load = threading.Thread(target=drive, args=(cp, 60000, 1, stop))  # until stopped
    load.start()

    def position() -> int:
        with cp.db() as db:
            return db.scalar(select(func.max(PersisterPosition.journal_seq))) or 0

    positions = [0]
    try:
        for delay in (0.05, 0.2, 0.1, 0.3):
            p = persister(s)
            deadline = time.monotonic() + 30
            while position() <= positions[-1] and time.monotonic() < deadline:
                time.sleep(0.01)  # wait for its first commit, then kill it in the middle
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait(10)
            positions.append(position())
        assert load.is_alive(), "the load ended before the last kill: not mid-stream"
        # More orders after the last kill, until the journal spans three segments: the restart
        # has to catch up, across a segment boundary (how long that takes depends on the load).
        time.sleep(0.5)
        deadline = time.monotonic() + 90
        while len(list((s.journal_dir / "q0").glob("*.xjl"))) < 3:
            assert load.is_alive(), "the load ended before the journal reached three segments"
            assert time.monotonic() < deadline, "the journal did not reach three segments in 90 s"
            time.sleep(0.1)
    finally:
        stop.set()
        load.join(120)
    p = persister(s, "--once")
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out.decode()
    want = journal_orders(s.journal_dir)
    assert len(list((s.journal_dir / "q0").glob("*.xjl"))) >= 3  # crossed segment boundaries
    with cp.db() as db:
        final = db.scalar(select(func.max(PersisterPosition.journal_seq)))
    # it was killed at different points, each before the end of the journal
    assert positions == sorted(set(positions)) and positions[-1] < final, positions
    assert len(want.orders) > 5000 and len(want.executions) > 1000 and want.rejected
    with cp.db() as db:
        got = database_orders(db)
    assert got.doubled_rows == 0
    assert len(got.orders) == len(want.orders) and len(got.executions) == len(want.executions)
    assert got == want


def _drain(pub: Publisher, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    idle = 0
    while time.monotonic() < deadline and idle < 3:
        idle = idle + 1 if pub.step() == 0 else 0
        time.sleep(0.05)


def _stream_ids(r: redis.Redis, key: str) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in i.decode().split("-")) for i, _ in r.xrange(key)]


def test_redis_stream_holds_every_execution_once_across_restarts(env_sqlite):
    cp, dp, s = env_sqlite
    srv = RedisInstance().start()  # its own: this test kills it
    url = srv.url
    prefix = f"xt{uuid.uuid4().hex[:8]}"
    try:
        drive(cp, 2000, 2)
        pub = Publisher(url, s.journal_dir, prefix)
        _drain(pub)
        pub.close()
        pub = Publisher(url, s.journal_dir, prefix)  # a restarted publisher adds nothing twice
        drive(cp, 1000, 3)
        _drain(pub)
        srv.kill()
        drive(cp, 1000, 4)
        assert pub.step() == 0 and not pub.connected
        srv.start()  # same port, empty again: the stream must be refilled
        time.sleep(pub.backoff + 0.1)
        _drain(pub)
        r = redis.Redis.from_url(url)
        execs = journal_orders(s.journal_dir).executions
        ids = _stream_ids(r, f"{prefix}:q0:executions")
        assert len(ids) == len(set(ids)) == len(execs) > 500
        got = sorted(
            (
                0,
                int(f[b"exec_id"]),
                int(f[b"order_id"]),
                int(f[b"price"]),
                int(f[b"qty"]),
                int(f[b"leaves"]),
            )
            for _, f in r.xrange(f"{prefix}:q0:executions")
        )
        assert got == execs
        tob = r.xrange(f"{prefix}:q0:tob")
        assert tob and all(int(f[b"seq"]) == int(i.decode().split("-")[0]) for i, f in tob)
        pub.close()
    finally:
        srv.stop()


def test_publisher_top_of_book_matches_the_engine(env_sqlite, svc_redis):
    cp, dp, s = env_sqlite
    prefix = f"xt{uuid.uuid4().hex[:8]}"
    r = redis.Redis.from_url(svc_redis.url)
    try:
        drive(cp, 600, 5)
        pub = Publisher(svc_redis.url, s.journal_dir, prefix)
        _drain(pub)
        pub.close()
        execs = journal_orders(s.journal_dir).executions
        assert r.xlen(f"{prefix}:q0:executions") == len(execs) > 0
        latest = {}
        for _, f in r.xrange(f"{prefix}:q0:tob"):
            latest[int(f[b"symbol_id"])] = tuple(
                int(f[k]) for k in (b"bid_px", b"bid_qty", b"ask_px", b"ask_qty")
            )
        assert set(latest) == {1, 2, 3}
        for sym, top in latest.items():
            b = cp.book(WHO, sym, 1)
            want = (
                b["bids"][0]["price"] if b["bids"] else 0,
                b["bids"][0]["qty"] if b["bids"] else 0,
                b["asks"][0]["price"] if b["asks"] else 0,
                b["asks"][0]["qty"] if b["asks"] else 0,
            )
            assert top == want, (sym, top, want)
    finally:
        for k in r.scan_iter(f"{prefix}:*"):
            r.delete(k)
