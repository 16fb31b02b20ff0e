"""What an unauthenticated sender can get out of xdpexd, and who may use its local sockets.

- One answer for everyone who has not proven itself: an unknown session, a disabled one and a bad
  proof all get LoginRejected(BAD_PROOF), byte for byte the same apart from the timestamps; the
  detail is in the log and in the stats counters (login_unknown, login_disabled,
  login_bad_proof). A session's real state (DISABLED, ...) is told only to a Login whose proof
  verifies.
- The refused-login budget ("login_limit"): refusals are charged to a GCRA bucket per source
  address and to one per queue; a Login from a source (or a queue) whose bucket is empty is
  dropped unanswered before its HMAC and counted in login_throttled. Checked against the
  bucket's arithmetic, with the elapsed time measured, per source and in total.
- The control and entry sockets: mode --socket-mode (0660 default, or 0600) and group
  --socket-group, checked with stat and by connecting as an unprivileged user (root passes every
  permission check, so that is the only real test of them).

Real xdpexd processes: the login tests in kernel-UDP mode on loopback and in AF_XDP mode in the
veth lab (the XDP program in front, answers built as frames; other sources are extra addresses
of the traffic namespace); the socket tests in udp mode (sockets are the same in every mode).
"""

from __future__ import annotations

import grp
import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dataplane_support import XDPEXD, Client, Env, base_config, in_netns, need_root_and_binary
from xdpex_proto import codec as c
from xdpex_traffic.lab import TG_IF

LR = c.LoginReason


@pytest.fixture
def workdir(dp_workdir: Path) -> Path:
    need_root_and_binary()
    return dp_workdir


@pytest.fixture(params=["udp", "afxdp"])
def lab(request: pytest.FixtureRequest) -> Any:
    """The veth lab for AF_XDP mode (module-wide), None for kernel UDP on loopback."""
    return request.getfixturevalue("dp_lab") if request.param == "afxdp" else None


def started(workdir: Path, lab: Any = None, **cfg: object) -> Env:
    env = Env("afxdp" if lab is not None else "udp", workdir, lab, config=base_config(**cfg))
    env.daemon.start()
    return env


@pytest.fixture
def env(workdir: Path, lab: Any) -> Iterator[Env]:
    e = started(workdir, lab)
    try:
        yield e
    finally:
        e.close()


def source(env: Env, i: int) -> str:
    """The i-th other source address a client can send from: 127.0.0.i on loopback (udp), or
    10.77.0.(100 + i) added to the traffic namespace's interface (afxdp)."""
    if env.lab is None:
        return f"127.0.0.{i}"
    addr = f"10.77.0.{100 + i}"
    have = subprocess.run(env.lab.netns_cmd(env.lab.tg_ns, ["ip", "-4", "-o", "addr", "show",
                                                            "dev", TG_IF]),
                          capture_output=True, text=True, check=True).stdout
    if f" {addr}/" not in have:
        subprocess.run(env.lab.netns_cmd(env.lab.tg_ns, ["ip", "addr", "add", f"{addr}/24",
                                                         "dev", TG_IF]), check=True)
    return addr


def from_addr(env: Env, sid: int, addr: str, secret: bytes | None = None) -> Client:
    """A client of session `sid` sending from address `addr` (another source)."""
    cl = env.client(sid) if secret is None else env.client(sid, secret)
    cl.sock.close()
    with in_netns(env.client_ns):
        cl.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cl.sock.bind((addr, 0))
    return cl


def rejected(cl: Client, **kw: object) -> c.LoginRejected:
    r = cl.login(**kw)
    assert isinstance(r, c.LoginRejected), r
    return r


def test_one_reason_for_unauthenticated_logins(env: Env) -> None:
    wrong = b"\x5a" * 32
    r = env.daemon.ctl({"cmd": "apply", "config": {"sessions": [{"id": 3, "enabled": False}]}})
    assert r["ok"], r
    answers = {
        "unknown": rejected(env.client(33)),
        "unknown, wrong key too": rejected(env.client(33, wrong)),
        "bad proof": rejected(env.client(2, wrong)),
        "disabled, bad proof": rejected(env.client(3, wrong)),
    }
    for what, a in answers.items():
        assert a.reason == LR.BAD_PROOF, (what, a)
    # Nothing else tells them apart: the same fields but the echoed and receive timestamps.
    shapes = {(a.session_id == 33, a.reason) for a in answers.values()}
    assert shapes == {(True, LR.BAD_PROOF), (False, LR.BAD_PROOF)}
    # Whoever proves itself learns the real state.
    assert rejected(env.client(3)).reason == LR.DISABLED
    q = env.daemon.q0()
    assert (q["login_unknown"], q["login_bad_proof"], q["login_disabled"]) == (2, 2, 1), q
    assert q["login_rejects"] == 5 and q["login_throttled"] == 0, q
    # The operator's detail: the first refusal is logged with its reason (then at most one line
    # a second, the rest counted in the next line).
    deadline = time.monotonic() + 5
    while "refused: unknown session" not in env.daemon.run_log():
        assert time.monotonic() < deadline, env.daemon.run_log()
        time.sleep(0.05)


def answered_within(cl: Client, n: int, wait: float) -> tuple[int, float]:
    """Sends n bad-proof Logins back to back; returns (answers received, seconds the sending
    took)."""
    t0 = time.monotonic()
    for _ in range(n):
        cl.send_session([cl.login_msg(secret=b"\x77" * 32)])
    took = time.monotonic() - t0
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        cl.recv(0.1)
    got = [m for m in cl.messages() if isinstance(m, c.LoginRejected)]
    assert all(m.reason == LR.BAD_PROOF for m in got), got
    return len(got), took


def test_refused_logins_are_bounded_per_source(workdir: Path, lab: Any) -> None:
    # 1 refusal a second per source, 3 back to back; the queue's budget out of the way.
    env = started(workdir, lab, login_limit={"per_source_rate": 1, "per_source_burst": 3,
                                        "total_rate": 100000, "total_burst": 100000})
    try:
        cl = from_addr(env, 2, source(env, 2))
        got, took = answered_within(cl, 12, 0.5)
        # GCRA: the burst, then one more per whole second that passed while sending.
        assert 3 <= got <= 3 + int(took) + 1, (got, took)
        q = env.daemon.q0()
        assert q["login_throttled"] == 12 - got and q["login_bad_proof"] == got, q
        # Another source still has its own budget.
        other = from_addr(env, 2, source(env, 3))
        assert rejected(other, secret=b"\x77" * 32).reason == LR.BAD_PROOF
        # The throttled source is not even answered with the right proof (no HMAC is spent on
        # it)...
        cl.received.clear()
        cl.send_session([cl.login_msg()])
        assert [m for d in cl.recv(0.3) for m in d.messages] == []
        # ...until its bucket refills (one token a second): then it logs in.
        deadline = time.monotonic() + 5
        while True:
            cl.send_session([cl.login_msg()])
            got_acc = [m for d in cl.recv(0.3) for m in d.messages
                       if isinstance(m, c.LoginAccepted)]
            if got_acc:
                break
            assert time.monotonic() < deadline, env.daemon.q0()
    finally:
        env.close()


def test_refused_logins_are_bounded_in_total(workdir: Path, lab: Any) -> None:
    env = started(workdir, lab, login_limit={"per_source_rate": 100000, "per_source_burst": 100000,
                                        "total_rate": 1, "total_burst": 4})
    try:
        t0 = time.monotonic()
        clients = [from_addr(env, 2, source(env, 10 + i)) for i in range(3)]
        for cl in clients:
            for _ in range(3):
                cl.send_session([cl.login_msg(secret=b"\x77" * 32)])
        took = time.monotonic() - t0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            for cl in clients:
                cl.recv(0.05)
        got = sum(1 for cl in clients for m in cl.messages() if isinstance(m, c.LoginRejected))
        assert 4 <= got <= 4 + int(took) + 1, (got, took)
        q = env.daemon.q0()
        assert q["login_throttled"] == 9 - got and q["login_rejects"] == got, q
    finally:
        env.close()


def test_login_limit_config_is_checked(workdir: Path) -> None:
    cfg = workdir / "bad.json"
    for bad, msg in [({"per_source_burst": 0}, "login_limit.per_source_burst: must be an integer"),
                     ({"rate": 5}, "login_limit.rate: unknown field"),
                     ([], "login_limit: must be an object")]:
        cfg.write_text(__import__("json").dumps(base_config(login_limit=bad)))
        r = subprocess.run([str(XDPEXD), "--mode", "udp", "--addr", "127.0.0.1", "--config",
                            str(cfg), "--journal-dir", str(workdir / "j"), "--ctl-socket",
                            str(workdir / "c.sock"), "--entry-socket", str(workdir / "e.sock")],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and msg in r.stderr, (bad, r.stderr)


# ---- socket permissions ------------------------------------------------------------------------

NOBODY = 65534  # uid and gid of nobody / nogroup on Debian


def connect_as_nobody(path: Path, kind: int, gid: int = NOBODY) -> int:
    """errno of connecting to `path` as uid nobody with primary group `gid` (0 = connected), in
    a forked child (the interpreter itself may not be readable by nobody)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(NOBODY)
            s = socket.socket(socket.AF_UNIX, kind)
            try:
                s.connect(str(path))
                code = 0
            except OSError as e:
                code = e.errno or 98
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def sockets_of(env: Env) -> dict[str, tuple[Path, int]]:
    return {"ctl": (env.daemon.ctl_path, socket.SOCK_STREAM),
            "entry": (env.daemon.entry_path, socket.SOCK_DGRAM)}


@pytest.mark.parametrize("mode", [None, "0600", "0660"])
def test_socket_mode_and_group(workdir: Path, mode: str | None) -> None:
    workdir.chmod(0o711)  # nobody may reach the sockets; the sockets themselves decide
    group = grp.getgrgid(NOBODY).gr_name
    extra = ["--socket-group", group] + (["--socket-mode", mode] if mode else [])
    env = Env("udp", workdir, None, config=base_config(), extra=extra)
    env.daemon.start()
    try:
        want = int(mode or "0660", 8)
        for name, (path, kind) in sockets_of(env).items():
            st = path.stat()
            assert stat.S_ISSOCK(st.st_mode), name
            assert stat.S_IMODE(st.st_mode) == want, (name, oct(st.st_mode))
            assert st.st_gid == NOBODY, (name, st.st_gid)
            # Group members may connect with 0660, nobody else ever.
            rc = connect_as_nobody(path, kind)
            assert rc == (0 if want == 0o660 else 13), (name, mode, rc)  # 13 = EACCES
            assert connect_as_nobody(path, kind, gid=NOBODY - 1) == 13, name
    finally:
        env.close()


def test_socket_default_group_is_the_process_group(env: Env) -> None:
    for name, (path, _) in sockets_of(env).items():
        st = path.stat()
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == os.getgid(), (name, st)


@pytest.mark.parametrize("opt,val,msg", [
    ("--socket-mode", "0666", "--socket-mode 0666: 0600 (owner only) or 0660"),
    ("--socket-mode", "rw", "--socket-mode rw: 0600"),
    ("--socket-group", "no-such-group-xdpex", "--socket-group no-such-group-xdpex: no such group"),
])
def test_socket_options_are_checked(workdir: Path, opt: str, val: str, msg: str) -> None:
    r = subprocess.run([str(XDPEXD), "--mode", "udp", "--config", "/dev/null", "--journal-dir",
                        str(workdir / "j"), opt, val], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and msg in r.stderr, r.stderr
