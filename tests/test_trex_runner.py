"""traffic/trex/run.py without a TRex server: argument handling, and that an unreachable or silent
server ends in a clear error within the connect timeout instead of a hang.

A real run needs a TRex server owning a NIC (docs/lab.md, Vagrant and bare metal); none runs here.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent
RUN = TOP / "traffic" / "trex" / "run.py"
SECRET = "ab" * 32


def runner(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=timeout
    )
    return r, time.monotonic() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_a_clear_error() -> None:
    port = free_port()
    r, took = runner("--server", "127.0.0.1", "--sync-port", str(port), "--async-port",
                     str(free_port()), "--secret", SECRET, "--connect-timeout", "15")  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert f"run.py: error: cannot connect to the TRex server at tcp://127.0.0.1:{port}" in r.stderr
    assert "t-rex-64 -i" in r.stderr  # says what to check
    assert took < 15
    assert r.stdout == ""


def test_silent_server_times_out_at_connect_timeout() -> None:
    # Something listens on the RPC port but never answers: the connect must not hang.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        r, took = runner(
            *("--server", "127.0.0.1", "--sync-port", str(port), "--async-port", str(free_port())),
            *("--secret", SECRET, "--connect-timeout", "1"),
        )
    assert r.returncode == 3, r.stderr
    assert f"tcp://127.0.0.1:{port}" in r.stderr
    assert "no answer in 1 s" in r.stderr or "cannot connect" in r.stderr
    assert took < 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--server is required (or --dry-run)"),
        (["--server", "h"], "--login trex needs --secret or --secrets"),
        (["--server", "h", "--login", "none"], "--login none needs --start-seq"),
        (["--server", "h", "--secret", "abcd"], "--secret: 2 bytes, expected 32"),
        (["--server", "h", "--secret", "zz"], "--secret: not hex"),
        (["--server", "h", "--secret", SECRET, "--sync-port", "0"], "--sync-port: 0"),
        (["--server", "h", "--secret", SECRET, "--duration", "0"], "must be > 0"),
        (["--profile", "/nonexistent.py", "--dry-run"], "--profile: /nonexistent.py does not"),
        (["--server", "h", "--login", "bogus"], "invalid choice: 'bogus'"),
    ],
)
def test_bad_arguments_name_the_option(args: list[str], message: str) -> None:
    r, _ = runner(*args)
    assert r.returncode == 2
    assert message in r.stderr, r.stderr


def test_secrets_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "secrets"
    bad.write_text("# id secret\n1 " + SECRET + "\n2\n")
    r, _ = runner("--server", "127.0.0.1", "--sync-port", str(free_port()), "--secrets", str(bad),
                  "--sessions", "2")  # fmt: skip
    assert r.returncode == 2
    assert f"--secrets {bad}:3: expected 'session_id hex'" in r.stderr
    short = tmp_path / "short"
    short.write_text("1 " + SECRET + "\n")
    r, _ = runner("--server", "127.0.0.1", "--sync-port", str(free_port()), "--secrets",
                  str(short), "--sessions", "2")  # fmt: skip
    assert r.returncode == 2
    assert "--secrets: no secret for session(s) [2]" in r.stderr
