"""`xdpex run` (what `make run` calls) end to end, small: the lab comes up, xdpexd runs in AF_XDP
mode, the load generator's orders are all answered, the control plane beside it takes an order
over REST and cancels it, and everything is gone afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from dataplane_support import need_root_and_binary

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_run_drives_orders_and_the_control_plane_then_cleans_up():
    need_root_and_binary()
    prefix = f"xrun{os.getpid() % 10000}"
    cmd = [sys.executable, "-m", "xdpex.cli", "run", "--prefix", prefix]
    cmd += ["--orders", "20000", "--latency-orders", "2000", "--latency-rate", "10000"]
    cmd += ["--http-port", str(_free_port()), "--grpc-port", str(_free_port())]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=REPO)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "batched (16 orders/datagram): sent 20,000 answered 20,000 lost 0" in out, out
    assert "single order/datagram: sent 2,000 answered 2,000 lost 0" in out, out
    assert "xdpexd mode=afxdp" in out and "redirect_cnt" in out, out
    assert "control plane at http://127.0.0.1:" in out, out
    assert "GTC on symbol 1 -> new" in out and "DELETE -> cancelled" in out, out
    assert "xdp: attached" in out, out
    assert out.rstrip().endswith("xdpex run: ok"), out
    assert f"{prefix}-gw" not in _namespaces() and f"{prefix}-tg" not in _namespaces()
    assert not Path(f"/sys/fs/bpf/xdpex-{prefix}").exists()


def test_run_refuses_a_bad_batch_size():
    p = subprocess.run(
        [sys.executable, "-m", "xdpex.cli", "run", "--batch", "23"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert p.returncode == 2
    assert "--batch 23: must be 1..22" in p.stderr
