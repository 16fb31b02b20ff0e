"""A control plane process beside an xdpexd that is already running: `python -m xdpex.serve`
(REST + gRPC, SQLite in a work directory) pointed at that daemon's control socket, order-entry
socket and journal. `xdpex run` uses it to show the operator side of the demonstration; it is the
same process `xdpex up` supervises, configured through the same XDPEX_* settings.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


class ControlPlaneError(RuntimeError):
    pass


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalControlPlane:
    """Start with `start()`, stop with `stop()` (also on failure); `url` and `token` say where it
    listens and how to call it, `db_path` where its SQLite database is. `env` adds or overrides
    XDPEX_* settings."""

    def __init__(
        self,
        workdir: Path,
        *,
        ctl_socket: Path,
        order_socket: Path,
        journal_dir: Path,
        udp_mode: bool,
        pin_dir: Path | None = None,
        http_port: int = 8080,
        grpc_port: int = 50051,
        token: str | None = None,
        env: dict[str, str] | None = None,
    ):
        self.workdir = Path(workdir)
        self.token = token or secrets.token_urlsafe(24)
        self.db_path = self.workdir / "control.db"
        # The documented ports when free; another free port (said in `moved`) when not; 0 = any
        # free port.
        self.moved: list[str] = []
        self.http_port = self._pick(http_port, "HTTP")
        self.grpc_port = self._pick(grpc_port, "gRPC")
        self.env = {
            **os.environ,
            "XDPEX_STATE_DIR": str(self.workdir / "state"),
            "XDPEX_DATABASE_URL": f"sqlite:///{self.db_path}",
            "XDPEX_CONTROL_SOCKET": str(ctl_socket),
            "XDPEX_ORDER_SOCKET": str(order_socket),
            "XDPEX_JOURNAL_DIR": str(journal_dir),
            "XDPEX_HTTP_PORT": str(self.http_port),
            "XDPEX_GRPC_PORT": str(self.grpc_port),
            "XDPEX_OPERATOR_TOKEN": self.token,
            "XDPEX_UDP_MODE": "true" if udp_mode else "false",
            **(env or {}),
        }
        if pin_dir is not None:
            self.env["XDPEX_XDP_PIN_DIR"] = str(pin_dir)
        self.log_path = self.workdir / "control.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _pick(self, port: int, what: str) -> int:
        if port == 0:
            return free_tcp_port()
        if _port_free(port):
            return port
        other = free_tcp_port()
        self.moved.append(f"{what} port {port} is in use, using {other}")
        return other

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "xdpex.serve"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ControlPlaneError(
                    f"control plane exited with status {self.proc.returncode}:\n{self._log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{self.url}/readyz", timeout=2)
                if r.status_code == 200:
                    return
                last = r.text
            time.sleep(0.2)
        self.stop()
        raise ControlPlaneError(
            f"control plane not ready after {timeout:.0f} s ({last}):\n{self._log_tail()}"
        )

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kw)

    def stop(self, timeout: float = 10.0) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
