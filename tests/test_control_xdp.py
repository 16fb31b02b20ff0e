"""Control plane against xdpexd in AF_XDP mode in the veth lab (network namespaces this test
creates and removes): readiness reports the XDP attach mode, the allowlist and the rate limit
set through the REST API land in the XDP program's pinned maps, /metrics carries the XDP verdict
counters and AF_XDP statistics, and orders entered through the control plane are matched."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from control_support import cleanup_dir, short_tmpdir
from dataplane_support import lab_up
from fastapi.testclient import TestClient
from xdpex.api import create_app
from xdpex.config import Settings
from xdpex.metrics import read_pinned_counters
from xdpex_traffic.lab import Lab
from xdpex_traffic.wire import PRICE_BAND, Gateway

OP = {"Authorization": "Bearer xt_test_operator"}


@pytest.fixture
def lab() -> Iterator[Lab]:
    with lab_up("xct") as lab:
        yield lab


def pinned_cfg(pin_dir) -> dict:
    out = subprocess.run(
        ["bpftool", "-j", "map", "dump", "pinned", str(pin_dir / "cfg_map")],
        capture_output=True,
        text=True,
        check=True,
    )
    entry = json.loads(out.stdout)[0]
    return entry["formatted"]["value"] if "formatted" in entry else entry["value"]


def test_afxdp_gateway_is_configured_through_the_api(lab):
    d = short_tmpdir("xdp")
    with Gateway(lab, "afxdp", nsessions=1) as gw:
        s = Settings(
            state_dir=d / "state",
            database_url=f"sqlite:///{d / 'x.db'}",
            grpc_port=0,
            control_socket=gw.ctl_path,
            order_socket=gw.workdir / "entry.sock",
            journal_dir=gw.workdir / "journal",
            xdp_pin_dir=gw.pin_dir,
            operator_token="xt_test_operator",
        )
        try:
            with TestClient(create_app(s), raise_server_exceptions=False) as tc:
                r = tc.get("/readyz")
                assert r.status_code == 200, r.text
                assert r.json()["checks"]["xdp"].startswith("attached (")

                assert (
                    tc.post(
                        "/api/v1/allowlist", json={"prefix": "10.77.0.0/24"}, headers=OP
                    ).status_code
                    == 201
                )
                listed = subprocess.run(
                    [str(s.xdp_tool), "allow", "list", "--pin-dir", str(gw.pin_dir)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                assert "10.77.0.0/24" in listed
                assert (
                    tc.put(
                        "/api/v1/rate-limits", json={"pps": 5000, "burst": 64}, headers=OP
                    ).status_code
                    == 200
                )
                cfg = pinned_cfg(gw.pin_dir)
                assert cfg["rate_pps"] == 5000 and cfg["burst"] == 64 and cfg["allow_cnt"] == 1

                body = {"symbol_id": 1, "side": "buy", "qty": 5, "price": PRICE_BAND[0]}
                o = tc.post("/api/v1/orders", json=body, headers=OP)
                assert o.status_code == 201 and o.json()["status"] == "new", o.text

                m = tc.get("/metrics").text
                assert 'xdpex_xdp_packets_total{reason="rx"}' in m
                assert 'xdpex_afxdp_events_total{queue="0",reason="rx_ring_full"}' in m
                assert "xdpex_dataplane_info{attach_mode=" in m
                # The pinned map read in process (bpf(2)) says what the tool says.
                pinned = read_pinned_counters(gw.pin_dir)
                assert pinned is not None and "rx_cnt" in pinned and "spoofed_cnt" in pinned
                tool = json.loads(subprocess.run(
                    [str(s.xdp_tool), "counters", "--pin-dir", str(gw.pin_dir)],
                    capture_output=True, text=True, check=True, timeout=30).stdout)
                assert list(tool) == list(pinned)
                assert all(0 <= tool[k] - pinned[k] <= 16 for k in tool), (tool, pinned)
        finally:
            cleanup_dir(d)
