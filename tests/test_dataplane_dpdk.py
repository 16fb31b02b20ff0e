"""What only the DPDK backend does (xdpexd --mode dpdk on an af_packet port over the veth lab): it
answers ARP for the gateway address itself, computes the checksums the kernel would, runs the XDP
program's checks in user space and reports the port's counters and xstats; and how it refuses
what it cannot do. Behaviour all backends share runs in all three modes elsewhere (dp_mode).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from dataplane_support import XDPEXD, Env, base_config, need_root_and_binary, new_order
from xdpex_proto import codec as c
from xdpex_traffic.lab import GW_IP, GW_MAC, TG_IF

NODPDK = XDPEXD.parent / "xdpexd-nodpdk"


def udp_csum_errors(ns: str) -> int:
    """UdpInCsumErrors of namespace `ns` (/proc/net/snmp as the namespace sees it)."""
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"],
                         capture_output=True, text=True, check=True, timeout=10).stdout
    head, vals = [ln.split() for ln in out.splitlines() if ln.startswith("Udp:")][:2]
    return int(vals[head.index("InCsumErrors")])


@pytest.fixture
def dpdk_env(dp_lab, dp_workdir: Path):
    need_root_and_binary()
    env = Env("dpdk", dp_workdir, dp_lab, config=base_config())
    try:
        env.daemon.start()
        yield env
    finally:
        env.close()


def test_answers_arp_for_the_gateway_address(dpdk_env: Env, dp_lab) -> None:
    tg = dp_lab.tg_ns

    def ip(*args: str) -> str:
        return subprocess.run(["ip", "-n", tg, *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout

    # The lab pins the gateway's MAC on the traffic side; forget it, so the first datagram needs
    # an ARP answer, and only xdpexd can give one (the gateway's kernel has no address now).
    ip("neigh", "del", GW_IP, "dev", TG_IF)
    try:
        a = dpdk_env.client(1)
        assert isinstance(a.login(), c.LoginAccepted)
        assert GW_MAC in ip("neigh", "show", GW_IP, "dev", TG_IF)
        assert dpdk_env.daemon.q0()["dpdk"]["arp_replies"] >= 1
    finally:
        ip("neigh", "replace", GW_IP, "lladdr", GW_MAC, "dev", TG_IF, "nud", "permanent")


def test_answers_carry_valid_checksums_and_the_port_is_reported(dpdk_env: Env, dp_lab) -> None:
    errors = udp_csum_errors(dp_lab.tg_ns)
    a = dpdk_env.client(1)
    assert isinstance(a.login(), c.LoginAccepted)
    for k in range(20):
        a.send_app([new_order(k + 1, price=100 + k)])
    a.wait_count(lambda m: isinstance(m, c.Accepted), 20)
    # The lab turns transmit offloads off, so the kernel checks every UDP checksum it receives.
    assert udp_csum_errors(dp_lab.tg_ns) == errors
    st = dpdk_env.daemon.stats()
    assert (st["mode"], st["attach_mode"], st["bind_mode"]) == ("dpdk", "pmd", "net_af_packet")
    port = st["dpdk"]
    assert port["name"] == "net_af_packet0" and port["tx_checksum_offload"] is False
    # 21 datagrams in; the answers are packed per session, up to 22 messages a datagram.
    assert port["stats"]["ipackets"] >= 21 and port["stats"]["opackets"] >= 2
    assert port["xstats"]["rx_good_packets"] == port["stats"]["ipackets"]
    assert st["queues"][0]["dpdk"]["ipackets"] >= 21
    x = st["xdp_counters"]
    assert x["redirect_cnt"] == 21 and x["no_sock_cnt"] == 0
    assert x["rx_cnt"] == sum(v for k, v in x.items() if k != "rx_cnt")


def test_port_figures_reach_the_metrics(dpdk_env: Env) -> None:
    from xdpex.metrics import _DataplaneCollector

    a = dpdk_env.client(1)
    assert isinstance(a.login(), c.LoginAccepted)
    st = dpdk_env.daemon.stats()
    fams = {f.name: f for f in _DataplaneCollector._dpdk(st)}
    assert set(fams) == {"xdpex_dpdk_port", "xdpex_dpdk_xstat", "xdpex_dpdk_queue"}
    port = {s.labels["counter"]: s.value for s in fams["xdpex_dpdk_port"].samples}
    assert port["ipackets"] == st["dpdk"]["stats"]["ipackets"] >= 1
    xstat = {s.labels["name"]: s.value for s in fams["xdpex_dpdk_xstat"].samples}
    assert xstat["rx_q0_packets"] >= 1
    q = {s.labels["counter"]: s.value for s in fams["xdpex_dpdk_queue"].samples}
    assert q["arp_replies"] == st["queues"][0]["dpdk"]["arp_replies"]


def test_user_space_filter_applies_the_allowlist_and_rate_live(dpdk_env: Env) -> None:
    d = dpdk_env.daemon
    assert d.ctl({"cmd": "apply", "config": {"allowlist": ["192.0.2.0/24"]}})["ok"]
    a = dpdk_env.client(1)
    a.send_session([a.login_msg()])
    assert a.recv(0.4) == []
    assert d.stats()["xdp_counters"]["not_allowed_cnt"] == 1
    limit = {"allowlist": [], "rate": {"pps": 1, "burst": 2}}
    assert d.ctl({"cmd": "apply", "config": limit})["ok"]
    assert isinstance(a.login(), c.LoginAccepted)
    for k in range(4):  # the login took one token and one is left (unless a second passes)
        a.send_app([new_order(k + 1)])
    a.wait_for(lambda m: isinstance(m, c.Accepted) and m.cl_ord_id == 1)
    a.recv(0.3)
    accepted = [m.cl_ord_id for m in a.messages() if isinstance(m, c.Accepted)]
    dropped = d.stats()["xdp_counters"]["rate_limit_cnt"]
    assert accepted == list(range(1, len(accepted) + 1)) and dropped >= 2
    assert len(accepted) + dropped == 4


@pytest.mark.parametrize(
    ("extra", "eal", "message"),
    [
        ([], ["--no-huge", "-m", "1024", "--no-pci", "--no-such-eal-option"],
         "EAL initialisation failed"),
        ([], ["--no-huge", "-m", "1024", "--no-pci", "--no-telemetry"], "no ethdev port"),
        (["--queues", "1"], [], "serves queues 0..n-1"),
        (["--poll", "busy"], [], "busy polling is a kernel socket feature"),
    ],
)
def test_refusals_say_why(dp_workdir: Path, extra: list[str], eal: list[str], message: str) -> None:
    need_root_and_binary()
    cfg = dp_workdir / "config.json"
    cfg.write_text('{"symbols": [], "sessions": []}')
    argv = [str(XDPEXD), "--mode", "dpdk", "--config", str(cfg), "--journal-dir",
            str(dp_workdir / "j"), "--ctl-socket", str(dp_workdir / "ctl.sock"),
            "--entry-socket", str(dp_workdir / "entry.sock"), "--addr", "10.9.9.9", *extra]
    argv += ["--", *eal, "--file-prefix", f"xtref{dp_workdir.name[-6:]}"] if eal else []
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and message in r.stderr, r.stderr


def test_gateway_address_is_required(dp_workdir: Path) -> None:
    need_root_and_binary()
    r = subprocess.run([str(XDPEXD), "--mode", "dpdk", "--config", "/dev/null", "--journal-dir",
                        str(dp_workdir)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "dpdk mode needs the gateway's IPv4 address" in r.stderr


def test_a_build_without_dpdk_says_what_is_missing(dp_workdir: Path) -> None:
    assert NODPDK.exists(), f"{NODPDK} is not built (make build builds it where DPDK is found)"
    r = subprocess.run([str(NODPDK), "--mode", "dpdk", "--config", "/dev/null", "--journal-dir",
                        str(dp_workdir), "--addr", GW_IP, "--iface", "net_af_packet0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "built without DPDK" in r.stderr and "libdpdk-dev" in r.stderr
