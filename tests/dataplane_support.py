"""Helpers for the xdpexd tests (tests/test_dataplane_*.py): start the real daemon, talk to its
control socket, and a small synchronous client that speaks the wire protocol through the project's
codec (proto/xdpex_proto/codec.py) with full control over sequence numbers, so tests can send
duplicates, gaps and malformed datagrams on purpose.

Sockets for the veth lab are created inside the lab's traffic namespace with setns(2), so the test
process itself never leaves the root namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from xdpex_proto import codec as c
from xdpex_traffic.wire import ctl_request, dpdk_eal_args

REPO = Path(__file__).resolve().parents[1]
# XDPEX_XDPEXD: another xdpexd binary to test, e.g. the ASan + UBSan build/asan/xdpexd (make
# asan-e2e); every daemon's log is then checked for sanitizer reports when it stops.
XDPEXD = Path(
    os.environ.get("XDPEX_XDPEXD")
    or Path(os.environ.get("XDPEX_BUILD", REPO / "build")) / "dataplane" / "xdpexd"
)
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer")
SECRET = bytes.fromhex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")


def unavailable(why: str) -> None:
    """A test cannot run here (no root, no build, a missing kernel feature): that is a failure,
    on every machine, never a skip."""
    pytest.fail(why)


def need_root_and_built(*paths: Path) -> None:
    """Root, and every build output in `paths` present (else `unavailable`)."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if os.geteuid() != 0:
        unavailable("needs root (network namespaces, XDP, bpffs)")
    elif missing:
        unavailable(f"not built: {', '.join(missing)} (run `make build`)")


def need_root_and_binary() -> None:
    need_root_and_built(XDPEXD)


@contextlib.contextmanager
def lab_up(prefix: str) -> Iterator[Any]:
    """A veth lab (xdpex_traffic.lab) unique to this run: `prefix` + pid + random suffix; taken
    down afterwards, also when bringing it up failed half way."""
    from xdpex_traffic.lab import Lab, LabError

    if os.geteuid() != 0:
        pytest.fail("needs root (network namespaces, XDP)")
    lab = Lab(f"{prefix}{os.getpid() % 100000}{secrets.token_hex(2)}")
    try:
        lab.up()
    except LabError as e:
        lab.down()
        pytest.fail(f"lab up failed: {e}")
    try:
        yield lab
    finally:
        lab.down()


def base_config(nsessions: int = 4, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "engine": {"max_orders": 65536, "max_symbols": 16, "max_sessions": 64},
        "heartbeat_ms": 1000,
        "login_skew_ms": 5000,
        "symbols": [
            {"id": 1, "name": "ACME", "tick": 1, "lot": 1, "band": [1, 100000], "max_qty": 100000},
            {"id": 2, "name": "BOLT", "tick": 5, "lot": 10, "band": [100, 5000], "max_qty": 1000},
        ],
        "sessions": [
            {"id": i, "secret": SECRET.hex(), "cancel_on_disconnect": i == 1}
            for i in range(1, nsessions + 1)
        ],
    }
    cfg.update(extra)
    return cfg


# ---- network namespaces ----------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def in_netns(ns: str | None) -> Iterator[None]:
    """Runs the body with the calling thread in network namespace `ns` (None: stay)."""
    if ns is None:
        yield
        return
    with open("/proc/self/ns/net", "rb") as home, open(f"/run/netns/{ns}", "rb") as target:
        if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        try:
            yield
        finally:
            if _libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")


# ---- the daemon ----------------------------------------------------------------------------


class Daemon:
    """One xdpexd process; `start()` waits for its control socket, `ctl()` sends one request."""

    def __init__(self, workdir: Path, mode: str = "udp", *, config: dict[str, Any] | None = None,
                 netns: str | None = None, iface: str | None = None, addr: str = "127.0.0.1",
                 port: int = 0, durability: str = "none", poll: str = "sleep",
                 pin_dir: str | None = None, extra: list[str] | None = None):
        self.workdir = workdir
        self.mode = mode
        self.config = config or base_config()
        self.netns = netns
        self.iface = iface
        self.addr = addr
        self.port = port or (20000 + os.getpid() % 20000)
        self.durability = durability
        self.poll = poll
        self.pin_dir = pin_dir
        self.extra = extra or []
        self.ctl_path = workdir / "ctl.sock"
        self.entry_path = workdir / "entry.sock"
        self.journal = workdir / "journal"
        self.log_path = workdir / "xdpexd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.dpdk_prefix = f"xt{os.getpid() % 100000}{secrets.token_hex(3)}"

    def argv(self) -> list[str]:
        cfg = self.workdir / "config.json"
        cfg.write_text(json.dumps(self.config))
        argv = [
            str(XDPEXD), "--mode", self.mode, "--config", str(cfg),
            "--journal-dir", str(self.journal), "--ctl-socket", str(self.ctl_path),
            "--entry-socket", str(self.entry_path), "--port", str(self.port),
            "--durability", self.durability, "--poll", self.poll, "--exit-with-parent",
        ]
        if self.mode in ("udp", "dpdk"):
            argv += ["--addr", self.addr]
        if self.iface and self.mode != "dpdk":
            argv += ["--iface", self.iface]
        if self.pin_dir:
            argv += ["--pin-dir", self.pin_dir]
        if self.netns:
            argv += ["--netns", self.netns]
        argv += self.extra
        if self.mode == "dpdk":
            argv += ["--", *dpdk_eal_args(self.dpdk_prefix, self.iface or "")]
        return argv

    def start(self, timeout: float = 10.0) -> None:
        self.runs += 1
        log = open(self.log_path, "ab")
        log.write(f"---- run {self.runs}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"xdpexd exited with {self.proc.returncode}:\n{self.log()}")
            if self.run_log().rstrip().endswith("xdpexd: ready") or "xdpexd: ready\n" in (
                self.run_log()
            ):
                return
            time.sleep(0.02)
        raise AssertionError(f"xdpexd not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def run_log(self) -> str:
        """The log of the latest run only."""
        return self.log().split(f"---- run {self.runs}\n")[-1]

    def ctl(self, req: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        return ctl_request(self.ctl_path, req, timeout)

    def state_hash(self) -> str:
        r = self.ctl({"cmd": "hash"})
        assert r["ok"], r
        return r["state_hash"]

    def stats(self) -> dict[str, Any]:
        r = self.ctl({"cmd": "stats"})
        assert r["ok"], r
        return r

    def q0(self) -> dict[str, Any]:
        return self.stats()["queues"][0]

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            self.check_sanitizers()
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self.check_sanitizers()
        return rc

    def check_sanitizers(self) -> None:
        """A sanitizer report in any run's log is a failure (the ASan + UBSan build)."""
        text = self.log()
        for mark in SANITIZER_MARKS:
            if mark in text:
                at = text.index(mark)
                raise AssertionError(f"xdpexd sanitizer report ({self.log_path}):\n"
                                     f"{text[max(0, at - 200) : at + 4000]}")


# ---- a synchronous wire client ----------------------------------------------------------------


def now_ns() -> int:
    return time.time_ns()


class Client:
    """A session over UDP (in an optional namespace) or over the unix entry socket."""

    def __init__(self, server: tuple[str, int] | Path, session_id: int, secret: bytes = SECRET,
                 *, netns: str | None = None, bind_path: Path | None = None):
        self.session_id = session_id
        self.secret = secret
        self.server: Any = str(server) if isinstance(server, Path) else server
        with in_netns(netns):
            if isinstance(server, Path):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                assert bind_path is not None
                with contextlib.suppress(FileNotFoundError):
                    bind_path.unlink()
                self.sock.bind(str(bind_path))
            else:
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.sock.bind(("0.0.0.0", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.next_seq = 1  # our next inbound sequence
        self.received: list[c.Datagram] = []

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def send_session(self, msgs: list[c.Message], flags: int = 0) -> None:
        self.send_raw(c.encode_datagram(self.session_id, 0, msgs, flags))

    def send_app(self, msgs: list[c.Message], seq: int | None = None) -> int:
        """Sends application messages from `seq` (default: our next) and returns that seq."""
        s = self.next_seq if seq is None else seq
        self.send_raw(c.encode_datagram(self.session_id, s, msgs))
        self.next_seq = max(self.next_seq, s + len(msgs))
        return s

    def login_msg(self, *, next_seq: int = 0, ts: int | None = None, nonce: int | None = None,
                  secret: bytes | None = None, session_id: int | None = None) -> c.Login:
        ts = now_ns() if ts is None else ts
        nonce = secrets.randbits(64) if nonce is None else nonce
        sid = self.session_id if session_id is None else session_id
        proof = c.login_proof(secret or self.secret, sid, ts, nonce)
        return c.Login(session_id=sid, next_seq=next_seq, nonce=nonce, hmac=proof, client_ts=ts)

    def login(self, **kw: Any) -> c.Message:
        self.send_session([self.login_msg(**kw)])
        return self.wait_for(lambda m: isinstance(m, c.LoginAccepted | c.LoginRejected))

    def recv(self, timeout: float = 0.5) -> list[c.Datagram]:
        """Datagrams that arrive within `timeout` of each other."""
        out = []
        while True:
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return out
            data = self.sock.recv(2048)
            d = c.decode_datagram(data, c.Direction.FROM_GW)
            self.received.append(d)
            out.append(d)
            timeout = min(timeout, 0.1)

    def messages(self) -> list[c.Message]:
        return [m for d in self.received for m in d.messages]

    def app_messages(self) -> list[tuple[int, c.Message]]:
        """(outbound seq, message) of every application message received, in arrival order."""
        return [(d.seq + i, m) for d in self.received if d.seq for i, m in enumerate(d.messages)]

    def wait_for(self, pred: Any, timeout: float = 3.0) -> c.Message:
        deadline = time.monotonic() + timeout
        seen = len(self.messages())
        while time.monotonic() < deadline:
            for m in self.messages()[seen:]:
                if pred(m):
                    return m
            seen = len(self.messages())
            self.recv(0.05)
        raise AssertionError(f"no matching message within {timeout} s; got {self.messages()}")

    def wait_count(self, pred: Any, n: int, timeout: float = 5.0) -> list[c.Message]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [m for m in self.messages() if pred(m)]
            if len(got) >= n:
                return got
            self.recv(0.05)
        got = [m for m in self.messages() if pred(m)]
        raise AssertionError(f"{len(got)} of {n} matching messages within {timeout} s")


def new_order(cl: int, side: int = c.Side.BUY, price: int = 100, qty: int = 10, *,
              symbol: int = 1, ord_type: int = c.OrdType.LIMIT, tif: int = c.Tif.GTC) -> c.NewOrder:
    return c.NewOrder(side=side, ord_type=ord_type, tif=tif, symbol_id=symbol, cl_ord_id=cl,
                      price=price, qty=qty, client_ts=now_ns())


# ---- environments: kernel UDP, AF_XDP and DPDK over the veth lab ------------------------------


def free_udp_port() -> int:
    """A loopback UDP port nobody holds right now (several test runs share the machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Env:
    """A running xdpexd plus where its clients connect from."""

    def __init__(self, mode: str, workdir: Path, lab: Any | None, *,
                 config: dict[str, Any] | None = None, **kw: Any):
        self.mode = mode
        self.lab = lab
        self.workdir = workdir
        self._stack: contextlib.ExitStack = contextlib.ExitStack()
        if mode == "afxdp":
            from xdpex_traffic.lab import GW_IF, GW_IP

            self.server = (GW_IP, 9000)
            self.client_ns: str | None = lab.tg_ns
            self.daemon = Daemon(workdir, "afxdp", config=config, netns=lab.gw_ns, iface=GW_IF,
                                 port=9000, pin_dir=f"/sys/fs/bpf/xdpex-{lab.prefix}", **kw)
        elif mode == "udp-xdp":
            # kernel UDP in the lab's gateway namespace with the XDP program in front of the
            # socket (--xdp-filter)
            from xdpex_traffic.lab import GW_IF, GW_IP

            self.server = (GW_IP, 9000)
            self.client_ns = lab.tg_ns
            self.daemon = Daemon(workdir, "udp", config=config, netns=lab.gw_ns, iface=GW_IF,
                                 addr=GW_IP, port=9000, pin_dir=f"/sys/fs/bpf/xdpex-{lab.prefix}",
                                 extra=["--xdp-filter", *kw.pop("extra", [])], **kw)
        elif mode == "dpdk":
            from xdpex_traffic.lab import GW_IF, GW_IP

            self.server = (GW_IP, 9000)
            self.client_ns = lab.tg_ns
            self._stack.enter_context(lab.gateway_stack_aside())
            self.daemon = Daemon(workdir, "dpdk", config=config, netns=lab.gw_ns, iface=GW_IF,
                                 addr=GW_IP, port=9000, **kw)
        else:
            self.server = ("127.0.0.1", free_udp_port())
            self.client_ns = None
            self.daemon = Daemon(workdir, "udp", config=config, addr="127.0.0.1",
                                 port=self.server[1], **kw)
        self.clients: list[Client] = []

    def client(self, session_id: int, secret: bytes = SECRET) -> Client:
        cl = Client(self.server, session_id, secret, netns=self.client_ns)
        self.clients.append(cl)
        return cl

    def entry_client(self, session_id: int, name: str = "cl") -> Client:
        cl = Client(self.daemon.entry_path, session_id,
                    bind_path=self.workdir / f"{name}{session_id}.sock")
        self.clients.append(cl)
        return cl

    def close(self) -> None:
        for cl in self.clients:
            cl.close()
        try:
            self.daemon.stop()
        finally:
            self._stack.close()


# ---- journal reader (docs/dataplane.md "Journal") ---------------------------------------------

import struct as _struct  # noqa: E402

_REC = _struct.Struct("<IIQBBHIQQ")
IN, OUT, SESSION, ADMIN = 1, 2, 3, 4


def read_journal(qdir: Path) -> list[dict[str, Any]]:
    """Every record of a queue's journal, CRC-checked, in order."""
    import crc32c

    out = []
    for seg in sorted(qdir.glob("*.xjl")):
        data = seg.read_bytes()
        assert data[:8] == b"XDPEXJL1", seg
        off = 32
        while off + 4 <= len(data):
            ln, crc, seq, typ, flags, count, sid, msg_seq, ts = _REC.unpack_from(data, off)
            if ln == 0:  # end of the written data of a preallocated segment
                break
            assert crc32c.crc32c(data[off + 8 : off + ln]) == crc, f"{seg} @{off}: CRC"
            payload = data[off + 40 : off + ln]
            out.append({"seq": seq, "type": typ, "flags": flags, "count": count,
                        "session": sid, "msg_seq": msg_seq, "ts": ts, "payload": payload})
            off += ln
    return out


def journal_messages(recs: list[dict[str, Any]], typ: int) -> list[tuple[int, int, c.Message]]:
    """(session, message seq, decoded message) of every inbound or outbound message."""
    out = []
    for r in recs:
        if r["type"] != typ:
            continue
        for i in range(r["count"]):
            out.append((r["session"], r["msg_seq"] + i, c.decode_message(r["payload"], i * 64)))
    return out
