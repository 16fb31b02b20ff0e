"""A private etcd cluster: one member or N on chosen addresses (and network namespaces), tuned so
that a 1 s lease is granted as 1 s; members can be killed and started again for failover tests.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .procs import (
    Instance,
    ServiceError,
    alive,
    cwd_inside,
    exited,
    free_port,
    kill_by_pidfile,
    read_pid,
    reap_child,
    spawn,
    wait_until,
)


@dataclass(frozen=True)
class EtcdMember:
    """One member: its name, the address its client and peer URLs listen on, their ports (0 =
    a free one, asked of this namespace's kernel) and optionally a network namespace to run it
    in (`ip netns exec <netns> etcd ...`; its address must then be one of that namespace's)."""

    name: str
    host: str = "127.0.0.1"
    client_port: int = 0
    peer_port: int = 0
    netns: str | None = None

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"


def _member_port(m: EtcdMember, in_netns: int) -> int:
    """A port for a member that did not choose one: a free one here, etcd's usual one inside a
    network namespace of its own (nothing else listens there)."""
    return in_netns if m.netns else free_port(m.host)


class EtcdCluster(Instance):
    """An etcd cluster of its own: one member (`single()`) or N with chosen addresses, each in
    <dir>/<name>/ with its log <name>.log and pid file <name>.pid. Heartbeat and election timeout
    default to 50 ms / 500 ms, so the smallest lease etcd grants (1.5 election timeouts, rounded
    up to whole seconds) is 1 s. Members can be killed and started again (`kill_member`,
    `start_member`: it rejoins with its data) for failover tests.

    `home` makes a detached cluster (`xdpex lab up --ha`): its directory is `home` itself, with
    no owner process (nothing reaps it when the process that started it exits, and a later
    process finds its members by pid file); a member whose data directory exists rejoins with
    it. `stop()` kills the members and removes `home` (unless `keep`)."""

    kind = "etcd"

    def __init__(
        self,
        members: Sequence[EtcdMember],
        root: Path | None = None,
        heartbeat_ms: int = 50,
        election_ms: int = 500,
        keep: bool = False,
        timeout: float = 60.0,
        home: Path | None = None,
    ):
        super().__init__(root, keep)
        self.home = Path(home) if home is not None else None
        names = [m.name for m in members]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"etcd members: names must be unique and non-empty, got {names}")
        self.members = [
            replace(
                m,
                client_port=m.client_port or _member_port(m, 2379),
                peer_port=m.peer_port or _member_port(m, 2380),
            )
            for m in members
        ]
        self.heartbeat_ms, self.election_ms = heartbeat_ms, election_ms
        self.timeout = timeout
        self.token = f"xdpex-{secrets.token_hex(6)}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._started: set[str] = set()
        if self.home is not None:
            self.dir = self.home
            self._started = {m.name for m in self.members if (self.home / m.name).is_dir()}

    @classmethod
    def single(cls, root: Path | None = None, **kw: Any) -> EtcdCluster:
        return cls([EtcdMember("m0")], root=root, **kw)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def member(self, name: str) -> EtcdMember:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"etcd member {name!r}: members are {[m.name for m in self.members]}")

    def log(self, name: str) -> Path:
        assert self.dir is not None, "not started"
        return self.dir / f"{name}.log"

    def pid(self, name: str) -> int:
        return read_pid(self.dir / f"{name}.pid") if self.dir else 0

    def _argv(self, m: EtcdMember) -> list[str]:
        assert self.dir is not None
        cluster = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        state = "existing" if m.name in self._started else "new"
        argv = [
            "etcd",
            "--name",
            m.name,
            "--data-dir",
            str(self.dir / m.name),
            "--listen-client-urls",
            m.client_url,
            "--advertise-client-urls",
            m.client_url,
            "--listen-peer-urls",
            m.peer_url,
            "--initial-advertise-peer-urls",
            m.peer_url,
            "--initial-cluster",
            cluster,
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            self.token,
            "--heartbeat-interval",
            str(self.heartbeat_ms),
            "--election-timeout",
            str(self.election_ms),
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ]
        return ["ip", "netns", "exec", m.netns, *argv] if m.netns else argv

    def healthy(self, name: str) -> bool:
        """etcd's own /health answer (true only when the member sees a leader and can serve)."""
        m = self.member(name)
        if m.netns:
            r = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    m.netns,
                    "etcdctl",
                    "--endpoints",
                    m.client_url,
                    "--command-timeout=1s",
                    "endpoint",
                    "health",
                ],
                capture_output=True,
                timeout=10,
            )
            return r.returncode == 0
        try:
            with urllib.request.urlopen(f"{m.client_url}/health", timeout=1) as r:
                return bool(json.loads(r.read()).get("health") == "true")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def _call(self, m: EtcdMember, path: str) -> dict[str, Any]:
        """POST {} to a v3 JSON gateway endpoint of a member (in its namespace with curl, for a
        member in a netns: its address is that namespace's)."""
        if m.netns:
            r = subprocess.run(
                ["ip", "netns", "exec", m.netns, "curl", "-sS", "--max-time", "1", "-X", "POST",
                 "-d", "{}", f"{m.client_url}{path}"],
                capture_output=True, timeout=10,
            )  # fmt: skip
            if r.returncode != 0:
                raise OSError(f"etcd member {m.name} {path}: {r.stderr.decode(errors='replace')}")
            netns_out: dict[str, Any] = json.loads(r.stdout)
            return netns_out
        req = urllib.request.Request(f"{m.client_url}{path}", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=1) as r:
            out: dict[str, Any] = json.loads(r.read())
            return out

    def leader(self) -> str | None:
        """The member every running member names as its leader, if that one is running too;
        None during an election."""
        names: dict[int, str] = {}
        leaders = set()
        for m in self.members:
            if not self.running(m.name):
                continue
            try:
                if not names:
                    names = {
                        int(x["ID"]): x["name"]
                        for x in self._call(m, "/v3/cluster/member/list")["members"]
                    }
                leaders.add(int(self._call(m, "/v3/maintenance/status").get("leader", 0)))
            except (OSError, urllib.error.URLError, ValueError, KeyError, TypeError):
                return None
        if len(leaders) != 1:
            return None
        name = names.get(leaders.pop())
        return name if name is not None and self.running(name) else None

    def wait_leader(self, timeout: float = 30.0) -> str:
        """Wait until the running members agree on a running leader (after a kill: the
        election); its name."""
        found: list[str] = []

        def ready() -> bool:
            name = self.leader()
            if name:
                found.append(name)
            return bool(name)

        wait_until("etcd leader election", ready, lambda: None, timeout)
        return found[-1]

    def _launch(self, m: EtcdMember) -> None:
        assert self.dir is not None
        pidfile = self.dir / f"{m.name}.pid"
        kill_by_pidfile(pidfile, self.dir)
        self.procs[m.name] = spawn(self._argv(m), self.dir, self.log(m.name), pidfile)

    def _wait_healthy(self, names: Sequence[str]) -> None:
        errors: list[str] = []

        def one(name: str) -> None:
            try:
                wait_until(
                    f"etcd member {name} ({self.member(name).client_url})",
                    lambda: self.healthy(name),
                    lambda: exited(self.procs.get(name), "etcd", self.log(name)),
                    self.timeout,
                )
            except ServiceError as e:
                errors.append(str(e))

        threads = [threading.Thread(target=one, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise ServiceError("\n".join(errors))

    def start(self) -> EtcdCluster:
        """Start every member (together: they need each other for a quorum) and wait until each
        answers /health."""
        if shutil.which("etcd") is None:
            raise ServiceError("etcd is not installed: provisioning/setup.sh installs etcd-server")
        if self.home is not None:
            self.home.mkdir(parents=True, exist_ok=True)
            self.dir = self.home
        elif self.dir is None:
            self._make_dir()
        down = [m for m in self.members if not self.running(m.name)]
        for m in down:
            self._launch(m)
        try:
            self._wait_healthy([m.name for m in down])
        except ServiceError:
            self.stop()
            raise
        self._started.update(m.name for m in down)
        return self

    def running(self, name: str) -> bool:
        p = self.procs.get(name)
        if p is not None:
            return p.poll() is None
        # (a detached cluster started by another process: its pid file, if it still names one
        # of ours)
        pid = self.pid(name)
        return bool(pid and self.dir and alive(pid) and cwd_inside(pid, self.dir))

    def kill_member(self, name: str) -> int:
        """SIGKILL one member (its data stays); returns its pid."""
        p = self.procs.get(name)
        if p is None:
            assert self.dir is not None, "not started"
            pid = self.pid(name)
            kill_by_pidfile(self.dir / f"{name}.pid", self.dir)
            return pid
        reap_child(p, signal.SIGKILL)
        return p.pid

    def start_member(self, name: str) -> None:
        """Start a stopped member again with its data; it rejoins the cluster."""
        if not self.running(name):
            self._launch(self.member(name))
            self._wait_healthy([name])

    def stop(self) -> None:
        if self.dir is None:
            return
        for name in list(self.procs):
            reap_child(self.procs.pop(name), signal.SIGTERM)
        if self.dir.is_dir():
            for pidfile in self.dir.glob("*.pid"):
                kill_by_pidfile(pidfile, self.dir)
        if self.home is not None:
            if not self.keep:
                shutil.rmtree(self.home, ignore_errors=True)
            self._started.clear()
            return
        self._remove_dir()
