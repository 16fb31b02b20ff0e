"""`xdpex run --ha`: a failover under load, shown end to end on this host (docs/ha.md).

A private etcd, two xdpexd --ha (kernel UDP on 127.0.0.1, durability replicated) with an
`xdpex ha-agent` each, and xdpex-loadgen sending orders to both addresses at a fixed rate. A
third of the way through, the primary and its agent are killed with -9 (as when its host dies);
the standby takes over, the generator follows it. Printed: who led before and after and the
epochs, the agents' own account of the election, and what the client saw (orders sent,
answered, lost; how many times it moved and how long its longest move took).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from xdpex_services import EtcdCluster
from xdpex_traffic.wire import Session, ctl_request, loadgen_path, make_config, xdpexd_path


def _free(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Node:
    def __init__(self, d: Path, name: str, config: Path, etcd: list[str]):
        self.name, self.dir = name, d / name
        self.dir.mkdir()
        self.port, self.repl = _free(socket.SOCK_DGRAM), _free(socket.SOCK_STREAM)
        self.ctl = self.dir / "ctl.sock"
        self.dp_argv = [
            str(xdpexd_path()), "--mode", "udp", "--addr", "127.0.0.1", "--port",
            str(self.port), "--config", str(config), "--journal-dir", str(self.dir / "journal"),
            "--ctl-socket", str(self.ctl), "--entry-socket", str(self.dir / "entry.sock"),
            "--poll", "sleep", "--ha", "--name", name, "--repl-listen",
            f"127.0.0.1:{self.repl}", "--durability", "replicated", "--repl-missing", "local",
            "--exit-with-parent",
        ]  # fmt: skip
        self.agent_argv = [sys.executable, "-m", "xdpex.cli", "ha-agent", "--etcd",
                           ",".join(etcd), "--cluster", "run", "--ctl", str(self.ctl),
                           "--gateway", f"127.0.0.1:{self.port}"]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        with open(self.dir / "xdpexd.log", "ab") as log:
            self.procs.append(subprocess.Popen(self.dp_argv, stdout=log, stderr=log))
        deadline = time.monotonic() + 20
        while not self.ctl.exists():
            if time.monotonic() > deadline or self.procs[-1].poll() is not None:
                raise RuntimeError(f"xdpexd {self.name} did not start: "
                                   f"{(self.dir / 'xdpexd.log').read_text()[-2000:]}")
            time.sleep(0.05)
        with open(self.dir / "agent.log", "ab") as log:
            self.procs.append(subprocess.Popen(self.agent_argv, stdout=log, stderr=log,
                                               start_new_session=True))

    def ha(self) -> dict[str, Any]:
        try:
            return ctl_request(self.ctl, {"cmd": "ha"}, 1.0)
        except (OSError, ValueError):
            return {}

    def kill9(self) -> None:
        for p in reversed(self.procs):  # the agent first: nobody revokes the lease
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(10)

    def agent_lines(self) -> list[str]:
        path = self.dir / "agent.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []


def _wait(pred: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError(f"not within {timeout:g} s: {what}")


def run_ha(rate: int, seconds: float) -> int:
    if os.geteuid() != 0:
        print("xdpex run --ha: needs root (the lab's conventions; xdpexd pins memory)",
              file=sys.stderr)
    sessions = [Session(1)]
    with tempfile.TemporaryDirectory(prefix="xdpex-run-ha-") as tmp:
        d = Path(tmp)
        config = d / "config.json"
        config.write_text(json.dumps(make_config([1, 2, 3, 4], sessions)))
        etcd = EtcdCluster.single(root=d / "etcd").start()
        nodes = [_Node(d, n, config, etcd.endpoints) for n in ("a", "b")]
        try:
            nodes[0].start()
            _wait(lambda: nodes[0].ha().get("role") == "primary", "node a elected")
            nodes[1].start()
            _wait(lambda: (nodes[1].ha().get("queues") or [{}])[0].get("following", {})
                  .get("state") == "streaming", "node b following a")
            before = nodes[0].ha()
            print(f"xdpex run --ha: node a primary (epoch {before.get('epoch')}), node b "
                  f"standby; xdpex-loadgen at {rate:,} orders/s for {seconds:g} s to both")
            creds = d / "creds.txt"
            creds.write_text(f"{sessions[0].id} {sessions[0].secret.hex()}\n")
            creds.chmod(0o600)
            servers = ",".join(f"127.0.0.1:{n.port}" for n in reversed(nodes))  # standby first
            lg = subprocess.Popen(
                [str(loadgen_path()), "--server", servers, "--credentials", str(creds),
                 "--symbols", "1,2,3,4", "--price", "9900:10100", "--rate", str(rate),
                 "--duration", str(seconds), "--drain", "10", "--batch", "4",
                 "--count", str(10**9)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            killed: list[float] = []

            def kill() -> None:
                killed.append(time.time())
                nodes[0].kill9()

            timer = threading.Timer(seconds / 3, kill)
            timer.start()
            out, err = lg.communicate(timeout=seconds + 60)
            timer.cancel()
            if lg.returncode != 0:
                print(f"xdpex run --ha: xdpex-loadgen failed: {err.strip()}", file=sys.stderr)
                return 1
            r = json.loads(out)
            after = nodes[1].ha()
            print(f"  killed node a (xdpexd and agent, -9) at {seconds / 3:.1f} s")
            for line in nodes[1].agent_lines():
                if "leader:" in line or "no leader" in line:
                    ts, _, rest = line.partition(" ")
                    dt = float(ts) - killed[0] if killed else 0.0
                    print(f"  {dt:+.3f} s  {rest}")
            print(f"  node b now {after.get('role')} (epoch {after.get('epoch')})")
            print(f"  the client: sent {r['sent']:,}, answered {r['answered']:,}, lost "
                  f"{r['lost']:,}; moved {r['failovers']} time(s), the longest move "
                  f"{r['failover_ms_max']:.0f} ms from leaving a gateway (3 heartbeats of "
                  f"silence) to LoginAccepted at the next; "
                  f"{r['recovery']['resent']:,} resent, unmatched answers {r['unmatched']}")
            ok = r["lost"] == 0 and r["answered"] == r["sent"] and after.get("role") == "primary"
            print("xdpex run --ha: " + ("every order answered across the failover" if ok
                                         else "ORDERS LOST OR UNANSWERED"))
            return 0 if ok else 1
        finally:
            for n in nodes:
                n.kill9()
            etcd.stop()
