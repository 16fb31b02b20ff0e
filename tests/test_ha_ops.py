"""`xdpex up --ha` on one host as an operator runs it: the supervisor starts a private etcd, two
xdpexd --ha and their agents, the control plane and the persister; `xdpex status` and
/api/v1/dataplane show role, epoch and replication lag; an order entered over REST reaches the
standby; the primary killed with -9 is replaced by the standby and rejoins as standby, and the
REST API keeps answering from the new leader; `down` leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import httpx
from control_support import cleanup_dir, free_tcp_port, free_udp_port, short_tmpdir
from test_control_lifecycle import _logs, _pids_of, xdpex
from xdpex_traffic.wire import ctl_request


def two_free_tcp_ports() -> int:
    """A port p with p + 1 free as well (etcd's client and peer ports, the two nodes'
    replication ports), below the kernel's ephemeral range: a port the kernel hands out for an
    outgoing connection meanwhile cannot take p + 1 from the node that binds it later."""
    import random

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        p = random.randrange(10000, max(10002, low - 2))
        with socket.socket() as s1, socket.socket() as s2:
            try:
                s1.bind(("127.0.0.1", p))
                s2.bind(("127.0.0.1", p + 1))
                return p
            except OSError:
                continue
    raise AssertionError("no two adjacent free TCP ports")


def node_lines(state) -> dict[str, str]:
    """`xdpex status`'s line per node."""
    st = xdpex("status", "--state-dir", str(state))
    return dict(re.findall(r"^  node (\w): (.*)$", st.stdout, re.M))


def roles(state) -> dict[str, str]:
    """Each node's role and, for a standby, its replication state, from its control socket
    (cheaper to poll than `xdpex status`, which starts a Python each time)."""
    out = {}
    for n in ("a", "b"):
        try:
            ha = ctl_request(state / "run" / f"{n}.ctl.sock", {"cmd": "ha"}, 1.0)
        except (OSError, ValueError):
            out[n] = "down"
            continue
        f = (ha.get("queues") or [{}])[0].get("following") or {}
        out[n] = f"{ha.get('role')} {f.get('state', '')}".strip()
    return out


def wait_for(pred, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_up_ha_status_failover_down() -> None:
    state = short_tmpdir("ha")
    http, grpc_port, etcd = free_tcp_port(), free_tcp_port(), two_free_tcp_ports()
    udp = free_udp_port()
    try:
        r = xdpex("up", "--ha", "--state-dir", str(state), "--http", f"127.0.0.1:{http}",
                  "--grpc", f"127.0.0.1:{grpc_port}", "--port", str(udp), "--etcd-port",
                  str(etcd), "--repl-port", str(two_free_tcp_ports()), "--timeout", "60",
                  timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr + _logs(state)
        assert "high availability" in r.stdout
        token = (state / "operator.token").read_text().strip()
        h = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{http}"
        wait_for(lambda: sorted(roles(state).values()) == ["primary", "standby streaming"],
                 f"a primary and a streaming standby: {roles(state)}")
        nodes = node_lines(state)
        lead = next(n for n, v in nodes.items() if v.startswith("primary"))
        other = "b" if lead == "a" else "a"
        assert re.search(r"epoch [1-9]\d* lease \d+ ms", nodes[lead]), nodes
        assert "standby " + other in nodes[lead] and "lag" in nodes[lead], nodes
        dp = httpx.get(f"{base}/api/v1/dataplane", headers=h).json()
        assert dp["ha"]["role"] == "primary" and dp["ha"]["name"] == lead, dp
        assert dp["ha"]["durability"] == "replicated"
        sb = dp["ha"]["queues"][0]["standbys"]
        assert sb and {"lag_records", "lag_bytes", "lag_us"} <= set(sb[0]), sb
        r2 = httpx.post(f"{base}/api/v1/symbols", headers=h,
                        json={"symbol_id": 1, "name": "ACME", "tick": 1, "lot": 1,
                              "band_low": 1, "band_high": 100000})
        assert r2.status_code == 201, r2.text

        # The leader's xdpexd dies: the standby takes over, the old one rejoins as standby.
        old_epoch = dp["ha"]["epoch"]
        pids = [p for p in _pids_of(state)
                if f"{lead}.ctl.sock" in open(f"/proc/{p}/cmdline", "rb").read().decode(
                    errors="replace") and b"xdpexd" in open(f"/proc/{p}/cmdline", "rb").read()]
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGKILL)
        wait_for(lambda: roles(state)[other] == "primary", f"{other} took over: {roles(state)}")
        wait_for(lambda: roles(state)[lead] == "standby streaming",
                 f"{lead} rejoined as standby: {roles(state)}")
        nodes = node_lines(state)
        assert nodes[other].startswith("primary") and "standby " + lead in nodes[other], nodes
        assert "following" in nodes[lead] and "(streaming)" in nodes[lead], nodes

        def api_on_new_leader() -> bool:
            try:
                d = httpx.get(f"{base}/api/v1/dataplane", headers=h, timeout=2).json()
            except (httpx.HTTPError, ValueError):
                return False
            return d.get("ha", {}).get("name") == other and d["ha"]["epoch"] > old_epoch

        wait_for(api_on_new_leader, "the REST API on the new leader")
        syms = httpx.get(f"{base}/api/v1/symbols", headers=h)
        assert syms.status_code == 200 and "ACME" in syms.text

        d = xdpex("down", "--state-dir", str(state))
        assert d.returncode == 0 and "down" in d.stdout
        assert _pids_of(state) == []
    finally:
        xdpex("down", "--state-dir", str(state))
        for p in _pids_of(state):
            os.kill(p, signal.SIGKILL)
        cleanup_dir(state)


def test_run_ha_shows_a_failover_under_load() -> None:
    r = xdpex("run", "--ha", "--ha-seconds", "4", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "every order answered across the failover" in r.stdout
    assert re.search(r"node b now primary \(epoch \d+\)", r.stdout), r.stdout
    assert re.search(r"lost 0; moved [1-9]", r.stdout), r.stdout
