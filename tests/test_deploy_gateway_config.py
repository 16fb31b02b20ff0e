"""provisioning/lab/gateway-config.py: the configuration and credentials a two-host lab uses,
checked by the real consumers on loopback: xdpexd (kernel-UDP mode) starts with the configuration
and xdpex-loadgen logs every session in with the secrets file and gets every order answered.
"""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent
SCRIPT = TOP / "provisioning" / "lab" / "gateway-config.py"
XDPEXD = TOP / "build" / "dataplane" / "xdpexd"
LOADGEN = TOP / "build" / "traffic" / "xdpex-loadgen"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gen(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "-o", str(out), *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_files_are_private_and_consistent(tmp_path: Path) -> None:
    r = gen(tmp_path, "--sessions", "3", "--symbols", "5")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "gateway.json").read_text())
    lines = (tmp_path / "secrets.txt").read_text().splitlines()
    assert [s["id"] for s in cfg["symbols"]] == [1, 2, 3, 4, 5]
    assert {int(x.split()[0]): x.split()[1] for x in lines} == {
        s["id"]: s["secret"] for s in cfg["sessions"]
    }
    assert all(len(bytes.fromhex(s["secret"])) == 32 for s in cfg["sessions"])
    for f in ("gateway.json", "secrets.txt"):
        assert stat.S_IMODE((tmp_path / f).stat().st_mode) == 0o600
    again = gen(tmp_path)
    assert again.returncode == 2 and "exists (use --force" in again.stderr
    assert (tmp_path / "secrets.txt").read_text().splitlines() == lines  # untouched
    assert gen(tmp_path, "--force").returncode == 0
    assert (tmp_path / "secrets.txt").read_text().splitlines() != lines
    bad = gen(tmp_path / "x", "--sessions", "0")
    assert bad.returncode == 2 and "--sessions 0: expected 1..1024" in bad.stderr


def test_xdpexd_and_loadgen_accept_them(tmp_path: Path) -> None:
    for binary in (XDPEXD, LOADGEN):
        if not binary.exists():
            pytest.fail(f"{binary} is not built (run `make build`)")
    assert gen(tmp_path, "--sessions", "2", "--symbols", "2").returncode == 0
    port = free_udp_port()
    log = (tmp_path / "xdpexd.log").open("w")
    gw = subprocess.Popen(
        [str(XDPEXD), "--mode", "udp", "--addr", "127.0.0.1", "--port", str(port),
         "--config", str(tmp_path / "gateway.json"), "--journal-dir", str(tmp_path / "j"),
         "--ctl-socket", str(tmp_path / "ctl.sock"), "--entry-socket", str(tmp_path / "e.sock"),
         "--poll", "sleep"],
        stdout=log, stderr=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while "xdpexd: ready" not in (tmp_path / "xdpexd.log").read_text():
            assert gw.poll() is None, (tmp_path / "xdpexd.log").read_text()
            assert time.monotonic() < deadline, "xdpexd did not get ready"
            time.sleep(0.05)
        assert "2 symbols, 2 sessions" in (tmp_path / "xdpexd.log").read_text()
        r = subprocess.run(
            [str(LOADGEN), "--server", f"127.0.0.1:{port}", "--credentials",
             str(tmp_path / "secrets.txt"), "--symbols", "1,2", "--count", "200", "--batch", "4",
             "--duration", "5", "--window", "32"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["sent"] == 200 and report["answered"] == 200, report
    finally:
        gw.send_signal(signal.SIGTERM)
        try:
            gw.wait(15)
        finally:
            if gw.poll() is None:
                gw.kill()
                gw.wait()
            log.close()
    assert gw.returncode == 0, (tmp_path / "xdpexd.log").read_text()
