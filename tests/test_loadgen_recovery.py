"""xdpex-loadgen's recovery against the real xdpexd, with real loss on the veth lab.

xdp_lossy (traffic/loadgen/xdp_lossy.bpf.c) drops every 23rd application datagram on both ends:
orders lost on the way in come back as SequenceGap and are resent, answers lost on the way out
show as an outbound gap and are fetched with RetransmitRequest. Every order must still be
answered exactly once, and the gateway must have applied each exactly once.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from dataplane_support import need_root_and_built
from xdpex_traffic.lab import Lab, build_dir, xdp_pass_object
from xdpex_traffic.wire import Gateway, loadgen_path, run_loadgen, xdpexd_path

LOSSY = build_dir() / "traffic" / "xdp_lossy.bpf.o"


def _need() -> None:
    need_root_and_built(xdpexd_path(), loadgen_path(), xdp_pass_object(), LOSSY)


def _attach(ns: str, ifname: str, obj: str) -> None:
    subprocess.run(
        ["ip", "-n", ns, "link", "set", "dev", ifname, "xdpdrv", "off"], capture_output=True
    )
    subprocess.run(
        ["ip", "-n", ns, "link", "set", "dev", ifname, "xdpdrv", "obj", obj, "sec", "xdp"],
        check=True,
    )


@pytest.fixture
def lossy_lab() -> Iterator[Lab]:
    _need()
    lab = Lab(f"tlr{os.getpid()}")
    try:
        lab.up()
        # The gateway runs in kernel-UDP mode, so both ends are free for the loss injector.
        _attach(lab.gw_ns, lab.gw_if, str(LOSSY))
        _attach(lab.tg_ns, lab.tg_if, str(LOSSY))
        yield lab
    finally:
        lab.down()


def test_every_order_answered_exactly_once_under_loss(lossy_lab: Lab) -> None:
    lab = lossy_lab
    assert lab.status()["traffic"]["xdp"]["name"] == "xdp_lossy"
    # (the loss injector holds the gateway's interface: no XDP filter in front of the socket)
    with Gateway(lab, "udp", nsessions=2, xdp_filter=False) as gw:
        r = run_loadgen(
            lab,
            gw,
            gw.sessions,
            ["--count", "6000", "--batch", "4", "--window", "64", "--duration", "30"]
            + ["--drain", "8"],
            timeout=90,
        )
        st = gw.stats()
    rec = r["recovery"]
    assert r["sent"] == 6000 and r["answered"] == 6000 and r["lost"] == 0, r
    # Loss happened in both directions and was repaired the protocol's way.
    assert rec["seq_gaps"] > 0 and rec["resent"] > 0
    assert rec["out_gaps"] > 0 and rec["rtx_requests"] > 0
    assert rec["unrecoverable"] == 0 and rec["out_lost"] == 0
    assert r["unmatched"] == 0 and r["bad_datagrams"] == 0
    assert r["rtt_us"]["samples"] == 6000
    # Exactly once on the gateway: every order applied once, resends skipped as duplicates.
    q0 = st["queues"][0]
    assert q0["applied"] == 6000
    assert q0["gaps"] > 0 and q0["retransmitted"] > 0
