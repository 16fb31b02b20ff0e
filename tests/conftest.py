"""Shared pytest fixtures. Each part names its fixtures after itself (dp_* = the dataplane,
svc_* = the private services: PostgreSQL, Redis and etcd started for the session)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def dp_lab() -> Iterator[object]:
    """The two-namespace veth lab (xdpex_traffic.lab) for the dataplane's AF_XDP tests, unique
    per test module and pid, removed afterwards."""
    from dataplane_support import XDPEXD, need_root_and_built
    from xdpex_traffic.lab import Lab, xdp_pass_object

    need_root_and_built(XDPEXD, xdp_pass_object())
    lab = Lab(f"tdp{os.getpid() % 100000}")
    lab.up()
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture
def dp_workdir() -> Iterator[Path]:
    """A fresh directory for one xdpexd (journal, sockets, log)."""
    with tempfile.TemporaryDirectory(prefix="xdpexd-test-") as d:
        yield Path(d)


@pytest.fixture(params=["udp", "afxdp", "dpdk"])
def dp_mode(request: pytest.FixtureRequest) -> str:
    """Every dataplane backend, for behaviour they share."""
    return str(request.param)


@pytest.fixture
def dp_env(request: pytest.FixtureRequest, dp_mode: str, dp_workdir: Path) -> Iterator[object]:
    """A started xdpexd in `dp_mode` (udp: loopback; afxdp and dpdk: the veth lab) with the
    default test configuration (dataplane_support.base_config)."""
    from dataplane_support import Env, base_config, need_root_and_binary

    need_root_and_binary()
    lab = request.getfixturevalue("dp_lab") if dp_mode != "udp" else None
    env = Env(dp_mode, dp_workdir, lab, config=base_config())
    try:
        env.daemon.start()
        yield env
    finally:
        env.close()


# -- private services (svc_*): PostgreSQL, Redis and etcd of the test session's own ---------------


@dataclass(frozen=True)
class ExternalService:
    """A server the tests were pointed at with XDPEX_TEST_PG_URL / XDPEX_TEST_REDIS_URL /
    XDPEX_TEST_ETCD: used as it is, never started or stopped here."""

    url: str

    @property
    def endpoints(self) -> list[str]:
        return self.url.split(",")


@pytest.fixture(scope="session")
def svc_pg() -> Iterator[object]:
    """The session's PostgreSQL (xdpex_services.PostgresInstance: initdb + pg_ctl, free port,
    database `test`), started by the first test that needs it and stopped at the end; `.url`.
    Tests isolate themselves in schemas of their own (control_support.Database)."""
    url = os.environ.get("XDPEX_TEST_PG_URL")
    if url:
        yield ExternalService(url)
        return
    from xdpex_services import PostgresInstance

    pg = PostgresInstance().start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def svc_redis() -> Iterator[object]:
    """The session's redis-server (xdpex_services.RedisInstance, free port, no persistence);
    `.url`. Tests that take Redis down start a RedisInstance of their own."""
    url = os.environ.get("XDPEX_TEST_REDIS_URL")
    if url:
        yield ExternalService(url)
        return
    from xdpex_services import RedisInstance

    r = RedisInstance().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="session")
def svc_etcd() -> Iterator[object]:
    """The session's single-member etcd (xdpex_services.EtcdCluster.single(): free ports,
    heartbeat 50 ms, election 500 ms, so a 1 s lease is granted as 1 s); `.endpoints`."""
    url = os.environ.get("XDPEX_TEST_ETCD")
    if url:
        yield ExternalService(url)
        return
    from xdpex_services import EtcdCluster

    e = EtcdCluster.single().start()
    try:
        yield e
    finally:
        e.stop()
