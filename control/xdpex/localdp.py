"""An xdpexd of its own beside a tool: the control benchmark, `xdpex bench` and the tests.

`LocalDataplane` starts build/dataplane/xdpexd in kernel-UDP mode on 127.0.0.1 with a free port,
a journal directory in a work directory and unique socket paths, waits for its `ready` line and
stops it with SIGTERM (or any signal: SIGKILL for crash tests). `control_plane()` gives the
control plane as its own process beside it (xdpex.localcp).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import REPO_ROOT
from .localcp import LocalControlPlane

# XDPEX_XDPEXD: another xdpexd binary (the ASan + UBSan build/asan/xdpexd of make asan-e2e).
XDPEXD = Path(os.environ.get("XDPEX_XDPEXD") or REPO_ROOT / "build/dataplane/xdpexd")


def short_tmpdir(tag: str) -> Path:
    """A fresh directory with a short path (AF_UNIX paths are limited to 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=f"xc{tag}-", dir="/tmp"))


def cleanup_dir(d: Path) -> None:
    shutil.rmtree(d, ignore_errors=True)


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def default_config(symbols: int = 4) -> dict[str, Any]:
    return {
        "heartbeat_ms": 1000,
        "symbols": [
            {
                "id": i,
                "name": f"SYM{i}",
                "tick": 1,
                "lot": 1,
                "band": [1, 1_000_000],
                "max_qty": 1_000_000,
            }
            for i in range(1, symbols + 1)
        ],
        "sessions": [],
    }


class LocalDataplane:
    """A running xdpexd (udp mode) with its own journal, sockets and port."""

    def __init__(
        self, workdir: Path, config: dict[str, Any] | None = None, extra: list[str] | None = None
    ):
        if not XDPEXD.exists():
            raise RuntimeError(f"{XDPEXD} is not built: run `make build`")
        self.dir = workdir
        self.journal = workdir / "journal"
        self.ctl = workdir / "ctl.sock"
        self.entry = workdir / "entry.sock"
        self.cfg = workdir / "xdpexd.json"
        self.cfg.write_text(json.dumps(config or default_config()))
        self.port = free_udp_port()
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "xdpexd.log"

    def start(self, timeout: float = 15.0) -> LocalDataplane:
        args = [
            str(XDPEXD),
            "--mode",
            "udp",
            "--addr",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--config",
            str(self.cfg),
            "--journal-dir",
            str(self.journal),
            "--ctl-socket",
            str(self.ctl),
            "--entry-socket",
            str(self.entry),
            "--poll",
            "sleep",
            *self.extra,
        ]
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(args, stdout=logf, stderr=logf)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"xdpexd exited {self.proc.returncode}: {self.log_text()}")
            if b"xdpexd: ready" in self.log.read_bytes():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"xdpexd not ready within {timeout} s: {self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def control_plane(self, token: str, env: dict[str, str] | None = None) -> LocalControlPlane:
        """The control plane as its own process (`python -m xdpex.serve`, SQLite, free ports)
        beside this daemon; the caller starts and stops it."""
        return LocalControlPlane(
            self.dir / "cp",
            ctl_socket=self.ctl,
            order_socket=self.entry,
            journal_dir=self.journal,
            udp_mode=True,
            http_port=0,
            grpc_port=0,
            token=token,
            env=env,
        )
