"""Shared pytest fixtures. Each part names its fixtures after itself (dp_* = the dataplane)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
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
