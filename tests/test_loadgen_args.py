"""xdpex-loadgen's command line and login, without a gateway.

Bad options are refused with exit status 2 and a message naming the option. The Login the
generator sends is checked byte for byte by a peer in this test with the Python codec (the same
HMAC the gateway verifies); the peer's LoginRejected must surface as exit status 3 naming the
reason. The generator's runs against the real xdpexd are in test_loadgen_xdpexd.py.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest
from xdpex_proto import codec
from xdpex_traffic.wire import loadgen_path

SECRET = bytes(range(32))


def _lg(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    if not loadgen_path().exists():
        pytest.fail(f"{loadgen_path()} missing: run `make build` first")
    return subprocess.run(
        [str(loadgen_path()), *args], capture_output=True, text=True, timeout=timeout
    )


BASE = ["--server", "127.0.0.1:9", "--session", f"1:{SECRET.hex()}"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--batch", "0"], "--batch: 0 is out of range 1..22"),
        (["--batch", "23"], "--batch: 23 is out of range 1..22"),
        (["--batch", "x"], "--batch: 'x' is not a number"),
        (["--count", "-5"], "--count: '-5' is not a number"),
        (["--rate", "0"], "--rate: '0' is not a positive number"),
        (["--duration", "abc"], "--duration: 'abc' is not a positive number"),
        (["--mix", "50:40:20"], "--mix: '50:40:20' is not NEW:CANCEL:CROSS adding up to 100"),
        (["--price", "100:50"], "--price: '100:50' is not MIN:MAX with 0 < MIN < MAX"),
        (["--symbols", "3-1"], "--symbols: 1 is out of range 3..4294967295"),
        (["--window", "8", "--batch", "16"], "--window: 8 is smaller than --batch 16"),
        (["--rate", "1000", "--window", "64"], "--window: open loop (--rate) and closed loop"),
        (["--session", "1:abcd"], "--session: session 1 given twice"),
        (["--session", "2:xyz1"], "--session: session 2: the secret is not hex"),
        (["--session", "0:abcd"], "--session: 0 is out of range 1..4294967295"),
        (["--bogus"], "unknown option or missing value: '--bogus'"),
        (["--credentials", "/nonexistent/creds"], "--credentials: /nonexistent/creds: No such"),
        (["--login-stagger", "0"], "--login-stagger: '0' is not a positive number"),
        (["--relogin-ms", "-3"], "--relogin-ms: '-3' is not a positive number"),
        (["--server", "127.0.0.1:9,127.0.0.2:9", "--login-stagger", "10"],
         "--login-stagger: logins inside the run are for one gateway, not several --server"),
    ],
)
def test_bad_option_is_named(args: list[str], named: str) -> None:
    r = _lg(*BASE, *args)
    assert r.returncode == 2
    assert named in r.stderr
    assert r.stdout == ""


def test_server_and_session_are_required() -> None:
    r = _lg("--session", "1:00")
    assert r.returncode == 2 and "--server: required" in r.stderr
    r = _lg("--server", "10.0.0.1")
    assert r.returncode == 2 and "--session: at least one session" in r.stderr
    r = _lg("--server", "300.1.1.1", "--session", "1:00")
    assert r.returncode == 2 and "'300.1.1.1' is not an IPv4 address" in r.stderr


def test_help() -> None:
    r = _lg("--help")
    assert r.returncode == 0 and "--batch N" in r.stdout


def _peer(sock: socket.socket, seen: list[codec.Login], reason: int) -> None:
    """Answers the first Login with LoginRejected(reason) if its proof verifies, else BAD_PROOF."""
    data, addr = sock.recvfrom(2048)
    dg = codec.decode_datagram(data, codec.Direction.TO_GW)
    login = dg.messages[0]
    assert isinstance(login, codec.Login)
    seen.append(login)
    ok = codec.verify_login(SECRET, login)
    rej = codec.LoginRejected(
        reason=reason if ok else codec.LoginReason.BAD_PROOF,
        session_id=login.session_id,
        echo_ts=login.client_ts,
        recv_ts=time.time_ns(),
    )
    sock.sendto(codec.encode_datagram(dg.session_id, 0, [rej], codec.F_FROM_GW), addr)


def test_login_proof_verifies_and_reject_reason_is_named() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port = sock.getsockname()[1]
        seen: list[codec.Login] = []
        t = threading.Thread(target=_peer, args=(sock, seen, codec.LoginReason.DISABLED))
        t.start()
        r = _lg("--server", f"127.0.0.1:{port}", "--session", f"77:{SECRET.hex()}")
        t.join()
    assert r.returncode == 3, r.stderr
    # DISABLED (not BAD_PROOF) proves the HMAC matched the codec's computation.
    assert "session 77: login rejected: DISABLED" in r.stderr
    login = seen[0]
    assert login.session_id == 77 and login.next_seq == 0
    assert abs(login.client_ts - time.time_ns()) < 10_000_000_000


def test_wrong_secret_is_refused_with_bad_proof() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port = sock.getsockname()[1]
        t = threading.Thread(target=_peer, args=(sock, [], codec.LoginReason.DISABLED))
        t.start()
        r = _lg("--server", f"127.0.0.1:{port}", "--session", f"5:{'ab' * 32}")
        t.join()
    assert r.returncode == 3 and "session 5: login rejected: BAD_PROOF" in r.stderr


def test_silent_gateway_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        t0 = time.monotonic()
        r = _lg("--server", f"127.0.0.1:{port}", "--session", f"5:{SECRET.hex()}")
        assert 5.5 < time.monotonic() - t0 < 15
    assert r.returncode == 3 and "no answer from the gateway" in r.stderr


@pytest.mark.parametrize(
    ("line", "named"),
    [
        (f"1 {SECRET.hex()} 2-1", "--credentials: 1 is out of range 2..4294967295"),
        (f"1 {SECRET.hex()} x", "--credentials: 'x' is not a number"),
        (f"1 {SECRET.hex()} 1 extra", "is not 'ID HEXSECRET [SYMBOLS]'"),
    ],
)
def test_bad_credentials_symbols_are_named(tmp_path, line: str, named: str) -> None:
    creds = tmp_path / "creds.txt"
    creds.write_text(line + "\n")
    r = _lg("--server", "127.0.0.1:9", "--credentials", str(creds))
    assert r.returncode == 2 and named in r.stderr, r.stderr
