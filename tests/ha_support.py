"""Helpers for the failover tests (tests/test_ha_failover.py): a node is one real xdpexd `--ha`
plus its real `xdpex ha-agent` (optionally inside a network namespace of the test's own, so its
link to etcd can be cut), and a synchronous client that follows the leader across a list of
gateway addresses the way docs/ha.md asks every client to: move on at a heartbeat timeout or a
Logout, log in with the last sequence seen, resend what the gateway had not applied.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataplane_support import SECRET, Daemon, base_config, free_udp_port, in_netns, now_ns
from xdpex_proto import codec as c

REPO = Path(__file__).resolve().parents[1]
HB_MS = 200  # the gateways' heartbeat interval in these tests
LOGIN_TRY = 0.3  # seconds a client waits for LoginAccepted before it tries the next address
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(pred: Any, what: str, timeout: float = 15.0, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s: {what}")


def ha_config() -> dict[str, Any]:
    return base_config(nsessions=8, heartbeat_ms=HB_MS)


class Node:
    """xdpexd --ha and its agent: kernel UDP on 127.0.0.1, or (`site`: one side of an
    xdpex_traffic.lab.HaLab) AF_XDP on the site's gateway interface, replicating over the link
    between the two gateway namespaces."""

    def __init__(self, workdir: Path, name: str, etcd: list[str], *, cluster: str,
                 agent_netns: str | None = None, durability: str = "replicated",
                 missing: str = "local", ttl: int = 1, margin_ms: int = 300,
                 site: Any = None, repl_ip: str = "127.0.0.1"):
        (workdir / name).mkdir(exist_ok=True)
        self.name, self.etcd, self.cluster = name, etcd, cluster
        self.agent_netns = agent_netns
        self.ttl, self.margin_ms = ttl, margin_ms
        self.repl = f"{repl_ip}:{free_tcp_port() if site is None else 7700}"
        extra = ["--ha", "--repl-listen", self.repl, "--name", name, "--durability", durability,
                 "--repl-missing", missing]
        if site is None:
            self.d = Daemon(workdir / name, "udp", config=ha_config(), addr="127.0.0.1",
                            port=free_udp_port(), poll="sleep", extra=extra)
            self.server = ("127.0.0.1", self.d.port)
            self.client_ns: str | None = None
        else:
            from xdpex_traffic.lab import GW_IF, GW_IP

            self.d = Daemon(workdir / name, "afxdp", config=ha_config(), netns=site.gw_ns,
                            iface=GW_IF, port=9000, poll="sleep",
                            pin_dir=f"/sys/fs/bpf/xdpex-{site.prefix}", extra=extra)
            self.server = (GW_IP, 9000)
            self.client_ns = site.tg_ns
        self.agent: subprocess.Popen[bytes] | None = None
        self.agent_log = workdir / name / "agent.log"
        self.restarts = 0

    @property
    def endpoint(self) -> tuple[tuple[str, int], str | None]:
        """Where a client reaches this node: (address, the namespace its socket lives in)."""
        return self.server, self.client_ns

    def agent_argv(self) -> list[str]:
        argv = [sys.executable, "-m", "xdpex.cli", "ha-agent", "--etcd", ",".join(self.etcd),
                "--cluster", self.cluster, "--ctl", str(self.d.ctl_path),
                "--gateway", f"{self.server[0]}:{self.server[1]}", "--ttl", str(self.ttl),
                "--margin-ms", str(self.margin_ms)]
        return ["ip", "netns", "exec", self.agent_netns, *argv] if self.agent_netns else argv

    def start(self) -> None:
        self.d.start()
        self.start_agent()

    def start_agent(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(REPO / "control"), str(REPO / "proto"), str(REPO / "traffic"),
             os.environ.get("PYTHONPATH", "")]))
        with open(self.agent_log, "ab") as log:
            self.agent = subprocess.Popen(self.agent_argv(), stdout=log, stderr=log, env=env,
                                          start_new_session=True)

    def kill9(self) -> None:
        """The host dies: agent and xdpexd at once."""
        if self.agent is not None and self.agent.poll() is None:
            os.killpg(self.agent.pid, signal.SIGKILL)
            self.agent.wait(10)
        if self.d.proc is not None and self.d.proc.poll() is None:
            self.d.kill9()

    def stop(self) -> None:
        self.kill9()

    def restart_as_standby(self) -> None:
        """What a supervisor does: start xdpexd (--ha: a standby) and its agent again; an old
        primary with a tail nobody acknowledged cuts it and exits 75, and is started again."""
        self.restarts += 1
        self.kill9()
        for _ in range(3):
            try:
                self.d.start()
            except AssertionError:
                if self.d.proc is not None and self.d.proc.returncode == 75:
                    continue
                raise
            # A cut happens after the handshake, once the agent told it whom to follow.
            self.start_agent()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.d.proc is not None \
                    and self.d.proc.poll() is None:
                with contextlib.suppress(Exception):
                    f = self.ha()["queues"][0].get("following", {})
                    if f.get("state") == "streaming":
                        return
                time.sleep(0.02)
            if self.d.proc is not None and self.d.proc.poll() == 75:
                self.kill9()
                continue
            return
        raise AssertionError(f"{self.name} did not rejoin:\n{self.d.log()[-3000:]}")

    def ha(self) -> dict[str, Any]:
        return self.d.ctl({"cmd": "ha"}, timeout=2)

    def role(self) -> str:
        try:
            return str(self.ha()["role"])
        except Exception:  # noqa: BLE001 - a dead node has no role
            return "dead"

    def log(self) -> str:
        return self.agent_log.read_text(errors="replace") if self.agent_log.exists() else ""


@dataclass
class Answer:
    seq: int
    msg: c.Message
    src: int  # the index of the gateway it came from in FollowingClient.servers
    at: float  # time.monotonic() when the client read it
    kernel_ns: int = 0  # CLOCK_REALTIME when the kernel received it (SO_TIMESTAMPNS)


@dataclass
class FollowStats:
    failovers: int = 0
    logins: int = 0
    resent: int = 0
    logouts: int = 0
    moves: list[tuple[float, str]] = field(default_factory=list)


class FollowingClient:
    """One session that follows the leader across `servers`, sending orders under load from a
    thread of its own. Every answer is kept by its gateway sequence (a datagram received twice
    counts once), with where and when it arrived."""

    def __init__(self, servers: list[tuple[tuple[str, int], str | None]], session_id: int = 2,
                 *, rate: int = 500, batch: int = 4, crossing: bool = False):
        self.servers = servers
        self.at = 0
        self.session_id = session_id
        self.socks = []
        for _, ns in servers:
            with in_netns(ns):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("0.0.0.0", 0))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.socks.append(sock)
        self.rate, self.batch = rate, batch
        self.crossing = crossing  # every other order trades with the one before it
        self.next_seq = 1  # our next inbound seq
        self.sent: dict[int, c.Message] = {}  # inbound seq -> message
        self.applied_below = 1  # the gateway has applied every seq below this
        self.answers: dict[int, Answer] = {}
        self.dups = 0
        self.expected = 1  # next outbound seq we need
        self.logged_in = False
        self.epoch = 0
        self.last_rx = time.monotonic()
        self.next_cl = 1
        self.stats = FollowStats()
        self.stop_ev = threading.Event()
        self.paused = threading.Event()
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # -- wire --------------------------------------------------------------------------------
    @property
    def server(self) -> int:
        return self.at % len(self.servers)

    def src_of(self, node: Any) -> int:
        return self.servers.index(node.endpoint)

    def _send(self, seq: int, msgs: list[c.Message]) -> None:
        self.socks[self.server].sendto(c.encode_datagram(self.session_id, seq, msgs),
                                       self.servers[self.server][0])

    def _login(self) -> None:
        ts = now_ns()
        nonce = int.from_bytes(os.urandom(8), "little")
        proof = c.login_proof(SECRET, self.session_id, ts, nonce)
        self._send(0, [c.Login(session_id=self.session_id, next_seq=self.expected, nonce=nonce,
                               hmac=proof, client_ts=ts)])

    def _recv(self, timeout: float) -> None:
        r, _, _ = select.select(self.socks, [], [], timeout)
        while r:
            for sock in r:
                data, anc, _, _ = sock.recvmsg(2048, socket.CMSG_SPACE(16))
                kts = 0
                for level, kind, raw in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", raw[:16])
                        kts = sec * 1_000_000_000 + nsec
                self._on_datagram(data, self.socks.index(sock), kts)
            r, _, _ = select.select(self.socks, [], [], 0)

    def _on_datagram(self, data: bytes, src: int, kernel_ns: int = 0) -> None:
        self.last_rx = time.monotonic()
        d = c.decode_datagram(data, c.Direction.FROM_GW)
        if d.seq == 0:
            for m in d.messages:
                self._on_session(m, src)
            return
        for i, m in enumerate(d.messages):
            s = d.seq + i
            if s in self.answers:
                self.dups += 1
                continue
            self.answers[s] = Answer(s, m, src, self.last_rx, kernel_ns)
        while self.expected in self.answers:
            self.expected += 1
        if d.seq > self.expected:  # a gap: ask for it again
            self._send(0, [c.RetransmitReq(from_seq=self.expected, count=d.seq - self.expected,
                                           client_ts=now_ns())])

    def _on_session(self, m: c.Message, src: int) -> None:
        if isinstance(m, c.LoginAccepted) and not self.logged_in and src == self.server:
            self.logged_in = True
            self.epoch = m.epoch
            self.stats.logins += 1
            self.applied_below = m.next_in_seq
            # Resend, with the same seqs, what the gateway had not applied.
            todo = [s for s in sorted(self.sent) if s >= m.next_in_seq]
            for k in range(0, len(todo), 20):
                chunk = todo[k:k + 20]
                self._send(chunk[0], [self.sent[s] for s in chunk])
                self.stats.resent += len(chunk)
            if m.next_out_seq > self.expected:
                self._send(0, [c.RetransmitReq(from_seq=self.expected,
                                               count=m.next_out_seq - self.expected,
                                               client_ts=now_ns())])
        elif isinstance(m, c.Logout) and src == self.server:
            self.stats.logouts += 1
            self._move("logout")
        elif isinstance(m, c.Heartbeat) and self.logged_in:
            if m.next_seq > self.expected:  # answers we have not seen
                self._send(0, [c.RetransmitReq(from_seq=self.expected,
                                               count=m.next_seq - self.expected,
                                               client_ts=now_ns())])

    def _move(self, why: str) -> None:
        self.logged_in = False
        self.at += 1
        self.stats.failovers += 1
        self.stats.moves.append((time.monotonic(), why))
        self.last_rx = time.monotonic()

    # -- the load ----------------------------------------------------------------------------
    def new_orders(self, n: int) -> list[c.Message]:
        out: list[c.Message] = []
        for _ in range(n):
            k = self.next_cl
            self.next_cl += 1
            side = c.Side.BUY if k % 2 else c.Side.SELL
            if self.crossing:
                price = 100
            else:
                price = 100 + (k % 50) if side == c.Side.SELL else 50 - (k % 40)  # never crosses
            out.append(c.NewOrder(side=side, ord_type=c.OrdType.LIMIT, tif=c.Tif.GTC,
                                  symbol_id=1, cl_ord_id=k, price=price, qty=1,
                                  client_ts=now_ns()))
        return out

    def _loop(self) -> None:
        period = self.batch / self.rate
        next_send = time.monotonic()
        next_login = 0.0
        hb_timeout = 3 * HB_MS / 1000
        while not self.stop_ev.is_set():
            now = time.monotonic()
            if not self.logged_in:
                if now >= next_login:
                    if now - self.last_rx > LOGIN_TRY:  # a standby says nothing: the next
                        self._move("no answer to login")
                    self._login()
                    next_login = now + 0.1
            else:
                if now - self.last_rx > hb_timeout:
                    self._move("heartbeat timeout")
                    continue
                if now >= next_send and not self.paused.is_set():
                    msgs = self.new_orders(self.batch)
                    seq = self.next_seq
                    for i, m in enumerate(msgs):
                        self.sent[seq + i] = m
                    self.next_seq += len(msgs)
                    self._send(seq, msgs)
                    next_send = max(next_send + period, now - 0.1)
                elif now - self.last_rx > HB_MS / 1000:
                    self._send(0, [c.Heartbeat(next_seq=self.expected, client_ts=now_ns())])
            self._recv(0.002)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e

    def start(self) -> None:
        self.last_rx = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_ev.set()
        if self.thread is not None:
            self.thread.join(10)
        if self.error:
            raise self.error

    def logout(self) -> None:
        """End the session (after stop()): a Logout, and its answer awaited."""
        n = self.stats.logouts
        for _ in range(20):
            self._send(0, [c.Logout(reason=c.LogoutReason.USER, client_ts=now_ns())])
            self._recv(0.1)
            if self.stats.logouts > n:
                return
        raise AssertionError(f"no Logout answered by {self.server}")

    def quiesce(self, timeout: float = 20.0) -> None:
        """Stop sending new orders and wait until every order sent has its answer."""
        self.paused.set()
        wait_until(lambda: self.logged_in and self.unanswered() == set(),
                   f"every order answered (missing {sorted(self.unanswered())[:10]}...)",
                   timeout)

    # -- what the test checks ----------------------------------------------------------------
    def accepted(self) -> dict[int, list[Answer]]:
        out: dict[int, list[Answer]] = {}
        for a in list(self.answers.values()):
            if isinstance(a.msg, c.Accepted | c.Rejected):
                out.setdefault(a.msg.cl_ord_id, []).append(a)
        return out

    def unanswered(self) -> set[int]:
        got = self.accepted()
        return {m.cl_ord_id for m in list(self.sent.values()) if m.cl_ord_id not in got}

    def answered_count(self) -> int:
        return sum(1 for a in list(self.answers.values()) if isinstance(a.msg, c.Accepted))


@contextlib.contextmanager
def etcd_netns(tag: str) -> Iterator[tuple[str, str, str]]:
    """A network namespace `tag` joined to this one by a veth pair; yields (netns, the root
    side's address, the link's root-side name). The agent inside reaches etcd at that address;
    `ip link set <link> down` cuts it off."""
    ns, host_if, ns_if = f"{tag}", f"{tag}h", f"{tag}n"
    base = 10 + os.getpid() % 200
    host_ip, ns_ip = f"10.{base}.77.1", f"10.{base}.77.2"

    def ip(*a: str) -> None:
        subprocess.run(["ip", *a], check=True, capture_output=True, timeout=10)

    ip("netns", "add", ns)
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", ns)
        ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        ip("netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, host_ip, host_if
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
