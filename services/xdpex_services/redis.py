"""A private redis-server: 127.0.0.1 and a free port, no persistence unless asked, the same port
across a kill and a start so its clients reconnect to the same URL.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

from .procs import (
    Instance,
    ServiceError,
    exited,
    free_port,
    kill_by_pidfile,
    log_tail,
    read_pid,
    reap_child,
    spawn,
    wait_until,
)


class RedisInstance(Instance):
    """A redis-server of its own on 127.0.0.1 and a free port; no persistence unless
    `persist=True` (then an append-only file in its directory, kept across kill and start).
    The port stays the same across `kill()`/`stop_process()` and `start()`, so clients reconnect
    to the same URL."""

    kind = "redis"

    def __init__(
        self,
        root: Path | None = None,
        persist: bool = False,
        keep: bool = False,
        timeout: float = 30.0,
    ):
        super().__init__(root, keep)
        self.persist = persist
        self.timeout = timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        assert self.dir is not None, "not started"
        return self.dir / "redis.pid"

    @property
    def log(self) -> Path:
        assert self.dir is not None, "not started"
        return self.dir / "redis.log"

    @property
    def pid(self) -> int:
        return read_pid(self.pidfile) if self.dir else 0

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> RedisInstance:
        """Start (a fresh instance, or again in place after a crash or kill) and wait until
        it answers; a fresh one that fails is removed again."""
        fresh = self.dir is None
        try:
            return self._start()
        except BaseException:
            if fresh:
                self.stop()
            raise

    def _start(self) -> RedisInstance:
        if self.dir is None:
            self._make_dir()
        elif self.proc is not None and self.proc.poll() is None:
            return self
        else:
            kill_by_pidfile(self.pidfile, self.dir)
        assert self.dir is not None
        fixed = bool(self.port)
        for attempt in range(3):
            if not fixed:
                self.port = free_port()
            keep = (
                ["--appendonly", "yes", "--appendfsync", "everysec"]
                if self.persist
                else ["--appendonly", "no"]
            )
            self.proc = spawn(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.dir),
                    "--save",
                    "",
                    *keep,
                    "--daemonize",
                    "no",
                ],
                self.dir,
                self.log,
                self.pidfile,
            )
            try:
                wait_until(
                    f"redis-server on port {self.port}",
                    self.ping,
                    lambda: exited(self.proc, "redis-server", self.log),
                    self.timeout,
                )
                return self
            except ServiceError:
                reap_child(self.proc, signal.SIGKILL)
                if not fixed and attempt < 2 and "Address already in use" in log_tail(self.log):
                    continue
                raise
        raise AssertionError("unreachable")

    def kill(self) -> int:
        """SIGKILL the server (a crash; without persistence its data is gone); returns its pid."""
        pid = self.proc.pid if self.proc else 0
        reap_child(self.proc, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        if self.dir is None:
            return
        reap_child(self.proc, signal.SIGTERM)
        self.proc = None
        kill_by_pidfile(self.pidfile, self.dir)
        self._remove_dir()
