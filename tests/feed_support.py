"""Helpers for the market-data feed tests: start the real tools of feed/ (xdpex-feedd, the rewind
and snapshot server; xdpex-feedsim, a producer around the real engine writing a real journal;
xdpex-feedsub and xdpex_traffic.feedsub, the C and Python subscribers) as processes, optionally
inside a network namespace, and wait for the lines they print rather than for time to pass."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
FEED_BIN = Path(os.environ.get("XDPEX_BUILD", REPO / "build")) / "feed"
FEEDD = FEED_BIN / "xdpex-feedd"
FEEDSIM = FEED_BIN / "xdpex-feedsim"
FEEDSUB = FEED_BIN / "xdpex-feedsub"


def need_tools() -> None:
    missing = [str(p) for p in (FEEDD, FEEDSIM, FEEDSUB) if not p.exists()]
    if missing:
        pytest.fail(f"not built: {', '.join(missing)} (run `make build`)")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_ns(ns: str | None, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv] if ns else list(argv)


class Proc:
    """A child process whose stdout is read line by line (wait_line) and kept."""

    def __init__(self, argv: Sequence[str], ns: str | None = None, name: str = ""):
        self.name = name or Path(argv[0]).name
        self.argv = in_ns(ns, argv)
        self.p = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, bufsize=1)  # fmt: skip
        self.lines: list[str] = []
        self.err = ""

    def wait_line(self, contains: str, timeout: float = 20.0) -> str:
        """The first stdout line containing `contains` (already read or coming)."""
        for ln in self.lines:
            if contains in ln:
                return ln
        end = time.monotonic() + timeout
        assert self.p.stdout is not None
        while time.monotonic() < end:
            r, _, _ = select.select([self.p.stdout], [], [], 0.2)
            if not r:
                if self.p.poll() is not None:
                    break
                continue
            ln = self.p.stdout.readline()
            if not ln:
                break
            self.lines.append(ln.rstrip("\n"))
            if contains in ln:
                return ln
        self.finish(timeout=5)
        pytest.fail(f"{self.name}: no line with {contains!r} within {timeout} s; stdout "
                    f"{self.lines[-5:]}, stderr {self.err[-2000:]}")  # fmt: skip

    def finish(self, timeout: float = 60.0, sig: int | None = None) -> int:
        if sig is not None and self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
        self.lines += out.splitlines()
        self.err += err
        return int(self.p.returncode)

    def last_json(self) -> dict[str, Any]:
        for ln in reversed(self.lines):
            if ln.startswith("{"):
                out: dict[str, Any] = json.loads(ln)
                return out
        raise AssertionError(f"{self.name}: no JSON line in {self.lines[-5:]}; {self.err[-2000:]}")

    def kill9(self) -> None:
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()


class FeedD(Proc):
    """xdpex-feedd over a journal directory; .rewind and .snapshot are its (host, port)."""

    def __init__(self, journal: Path, host: str = "127.0.0.1", rewind_port: int = 0,
                 snapshot_port: int = 0, ns: str | None = None,
                 extra: Sequence[str] = ()):  # fmt: skip
        super().__init__([str(FEEDD), "--journal", str(journal), "--rewind",
                          f"{host}:{rewind_port}", "--snapshot", f"{host}:{snapshot_port}",
                          *extra], ns)  # fmt: skip
        ln = self.wait_line("rewind udp")
        words = ln.split()
        rh, rp = words[3].rsplit(":", 1)
        sh, sp = words[6].rsplit(":", 1)
        self.rewind = (rh, int(rp))
        self.snapshot = (sh, int(sp))

    def stop(self) -> dict[str, Any]:
        rc = self.finish(timeout=10, sig=signal.SIGTERM)
        assert rc == 0, self.err
        return self.last_json()


def sim(journal: Path, *args: str, ns: str | None = None) -> Proc:
    return Proc([str(FEEDSIM), "--journal", str(journal), *args], ns)


def c_sub(*args: str, ns: str | None = None) -> Proc:
    p = Proc([str(FEEDSUB), *args], ns, "xdpex-feedsub")
    p.wait_line("listening on")
    return p


def py_sub(*args: str, ns: str | None = None) -> Proc:
    p = Proc([sys.executable, "-m", "xdpex_traffic.feedsub", *args], ns, "feedsub.py")
    p.wait_line("listening on", timeout=60)
    return p


def addr(hp: tuple[str, int]) -> str:
    return f"{hp[0]}:{hp[1]}"
