"""Client of xdpexd's control socket (unix SOCK_STREAM, one JSON object per line each way).

docs/dataplane.md is the contract: `hash`, `stats`, `sessions`, `symbols`, `book`, `apply`, `halt`,
`resume`, `logout`, `expire_day`, `journal`. One connection is kept and reused under a lock
(requests are answered in order); a broken connection is reopened once per request. A dataplane
that cannot be reached raises `Unavailable` naming the socket and the OS error; an answer with
`"ok": false` raises `DataplaneRejected` carrying the dataplane's own message (which names the
field, e.g. `sessions[0].secret: not hex`).
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

from .errors import ServiceError, Unavailable


class DataplaneRejected(ServiceError):
    """xdpexd refused a request: its message names what is wrong (HTTP 422); `code` is its
    refusal code (docs/dataplane.md, Refusals), "" from an xdpexd that gives none."""

    http_status = 422
    grpc_code = "INVALID_ARGUMENT"

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class ControlClient:
    """Blocking, thread-safe JSON-lines client of the control socket."""

    def __init__(self, path: Path | str, timeout: float = 2.0):
        self.path = str(path)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._buf = b""

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buf = b""

    def _connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError as e:
            s.close()
            raise Unavailable(f"dataplane control socket {self.path}: {e.strerror or e}") from e
        return s

    def _roundtrip(self, line: bytes) -> dict[str, Any]:
        if self._sock is None:
            self._sock = self._connect()
        self._sock.sendall(line)
        while b"\n" not in self._buf:
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise ConnectionResetError("control socket closed by the dataplane")
            self._buf += chunk
        out, self._buf = self._buf.split(b"\n", 1)
        return json.loads(out)

    def request(self, cmd: str, *, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """Send one request and return the answer; raises Unavailable or DataplaneRejected.
        `timeout` replaces the client's own for this request (bulk configuration)."""
        line = (json.dumps({"cmd": cmd, **args}, separators=(",", ":")) + "\n").encode()
        with self._lock:
            for attempt in (1, 2):
                try:
                    if timeout is not None:
                        if self._sock is None:
                            self._sock = self._connect()
                        self._sock.settimeout(timeout)
                    try:
                        ans = self._roundtrip(line)
                    finally:
                        if timeout is not None and self._sock is not None:
                            self._sock.settimeout(self.timeout)
                    break
                except Unavailable:
                    self._drop()
                    raise
                except TimeoutError as e:
                    self._drop()
                    raise Unavailable(
                        f"dataplane control socket {self.path}: no answer to {cmd!r} "
                        f"within {self.timeout:g} s"
                    ) from e
                except (OSError, ValueError) as e:
                    self._drop()
                    if attempt == 2:
                        raise Unavailable(f"dataplane control socket {self.path}: {e}") from e
        if not isinstance(ans, dict):
            raise Unavailable(f"dataplane control socket {self.path}: answer is not an object")
        if not ans.get("ok", False):
            raise DataplaneRejected(
                str(ans.get("error") or f"{cmd}: refused without a reason"),
                str(ans.get("code") or ""),
            )
        return ans

    # Convenience wrappers, one per command of docs/dataplane.md.
    def stats(self) -> dict[str, Any]:
        return self.request("stats")

    def state_hash(self) -> dict[str, Any]:
        return self.request("hash")

    def sessions(self) -> list[dict[str, Any]]:
        return list(self.request("sessions").get("sessions", []))

    def symbols(self) -> dict[str, Any]:
        """Every symbol the engines hold (`symbols`) and the engine limits (`max_symbols`,
        `max_sessions`)."""
        return self.request("symbols")

    def book(self, symbol: int, depth: int) -> dict[str, Any]:
        return self.request("book", symbol=symbol, depth=depth)

    def apply(self, config: dict[str, Any]) -> dict[str, Any]:
        return self.request("apply", config=config)

    def halt(self, symbol: int) -> dict[str, Any]:
        return self.request("halt", symbol=symbol)

    def resume(self, symbol: int) -> dict[str, Any]:
        return self.request("resume", symbol=symbol)

    def logout(self, session: int) -> dict[str, Any]:
        return self.request("logout", session=session)

    def journal(self) -> dict[str, Any]:
        return self.request("journal")

    def bulk(self, config: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """`bulk`: every entry applied that can be; the answer's `refused` names the others."""
        return self.request("bulk", timeout=timeout, config=config)
