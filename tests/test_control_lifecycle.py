"""`xdpex up` / `xdpex status` / `xdpex down` as an operator runs them: real processes (the
supervisor, xdpexd in kernel-UDP mode, the control plane, the persister), a private state
directory and free ports; the operator token printed by `up` works against the REST API; a
killed dataplane is restarted by the supervisor; `down` leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time

import httpx
from control_support import cleanup_dir, free_tcp_port, free_udp_port, make_pki, short_tmpdir


def xdpex(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xdpex.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def _pids_of(state) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(state) in cmd:
            out.append(int(p))
    return out


def test_up_status_down(tmp_path):
    state = short_tmpdir("life")
    http, grpc_port, udp = free_tcp_port(), free_tcp_port(), free_udp_port()
    try:
        r = xdpex(
            "up",
            "--state-dir",
            str(state),
            "--http",
            f"127.0.0.1:{http}",
            "--grpc",
            f"127.0.0.1:{grpc_port}",
            "--port",
            str(udp),
            "--timeout",
            "60",
            timeout=90,
        )
        assert r.returncode == 0, r.stdout + r.stderr + _logs(state)
        assert "operator token:" in r.stdout and str(state / "operator.token") in r.stdout
        token = (state / "operator.token").read_text().strip()
        assert oct((state / "operator.token").stat().st_mode & 0o777) == "0o600"
        h = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{http}"
        assert httpx.get(f"{base}/readyz").status_code == 200
        r2 = httpx.post(
            f"{base}/api/v1/symbols",
            headers=h,
            json={
                "symbol_id": 1,
                "name": "ACME",
                "tick": 1,
                "lot": 1,
                "band_low": 1,
                "band_high": 100000,
            },
        )
        assert r2.status_code == 201, r2.text
        o = httpx.post(
            f"{base}/api/v1/orders",
            headers=h,
            json={"symbol_id": 1, "side": "buy", "qty": 5, "price": 100},
        )
        assert o.status_code == 201 and o.json()["status"] == "new", o.text
        st = xdpex("status", "--state-dir", str(state))
        assert st.returncode == 0 and "ready: yes" in st.stdout and "mode udp" in st.stdout

        # the supervisor restarts a dataplane that dies; the journal brings the book back
        spec = json.loads((state / "xdpex.json").read_text())
        dp_pids = [
            p
            for p in _pids_of(state)
            if "xdpexd" in open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")
        ]
        assert len(dp_pids) == 1, spec
        os.kill(dp_pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        book = None
        while time.monotonic() < deadline:
            b = httpx.get(f"{base}/api/v1/books/1", headers=h)
            if b.status_code == 200:
                book = b.json()
                break
            time.sleep(0.3)
        assert book is not None and book["bids"] == [{"price": 100, "qty": 5, "orders": 1}]

        d = xdpex("down", "--state-dir", str(state))
        assert d.returncode == 0 and "down" in d.stdout
        assert _pids_of(state) == []
        assert xdpex("status", "--state-dir", str(state)).returncode == 3
    finally:
        xdpex("down", "--state-dir", str(state))
        for p in _pids_of(state):
            os.kill(p, signal.SIGKILL)
        cleanup_dir(state)


def _logs(state) -> str:
    out = []
    for f in sorted((state / "log").glob("*.log")) if (state / "log").exists() else []:
        out.append(f"--- {f.name}\n{f.read_text(errors='replace')[-2000:]}")
    return "\n".join(out)


def test_up_serves_rest_over_tls_when_configured():
    state = short_tmpdir("lifetls")
    pki = state.parent / f"{state.name}-pki"
    pki.mkdir()
    make_pki(pki)
    http, grpc_port, udp = free_tcp_port(), free_tcp_port(), free_udp_port()
    env = {**os.environ, "XDPEX_TLS_CERTFILE": str(pki / "server.crt"),
           "XDPEX_TLS_KEYFILE": str(pki / "server.key")}  # fmt: skip

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "xdpex.cli", *args], capture_output=True,
                              text=True, timeout=90, env=env)  # fmt: skip

    try:
        r = cli("up", "--state-dir", str(state), "--http", f"127.0.0.1:{http}", "--grpc",
                f"127.0.0.1:{grpc_port}", "--port", str(udp), "--timeout", "60")  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr + _logs(state)
        assert f"REST      https://127.0.0.1:{http}" in r.stdout, r.stdout
        ca = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        assert httpx.get(f"https://127.0.0.1:{http}/readyz", verify=ca).status_code == 200
        st = cli("status", "--state-dir", str(state))
        assert st.returncode == 0 and "ready: yes" in st.stdout, st.stdout + st.stderr
        assert cli("down", "--state-dir", str(state)).returncode == 0
    finally:
        cli("down", "--state-dir", str(state))
        for p in _pids_of(state):
            os.kill(p, signal.SIGKILL)
        cleanup_dir(state)
        cleanup_dir(pki)


def test_up_refuses_xdp_filter_without_its_interface():
    """--xdp-filter puts the XDP program in front of the udp socket: it needs --iface, and is
    for udp mode and one gateway on the interface (not --ha)."""
    state = short_tmpdir("lifx")
    try:
        for args in (["--xdp-filter"], ["--mode", "afxdp", "--iface", "lo", "--xdp-filter"],
                     ["--ha", "--iface", "lo", "--xdp-filter"]):
            r = xdpex("up", "--state-dir", str(state), *args, timeout=30)
            assert r.returncode == 2, (args, r.stdout, r.stderr)
            assert "--xdp-filter is for --mode udp, needs --iface" in r.stderr, (args, r.stderr)
    finally:
        cleanup_dir(state)
