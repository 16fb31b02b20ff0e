"""`xdpex lab`: the two-host topology on one machine, as two network namespaces and a veth pair.

The gateway side (namespace `<prefix>-gw`, interface xe-gw0, 10.77.0.1/24) is where xdpexd runs
and attaches its XDP program; the traffic side (namespace `<prefix>-tg`, interface xe-tg0,
10.77.0.2/24) is where the load generator, scapy and the client library run. The addresses exist
only inside these namespaces, so several labs (tests pass a unique --prefix) never collide.

The lab is configured so native XDP and AF_XDP work in both directions on veth: one rx/tx queue
per end by default (every frame lands on queue 0, where the gateway's AF_XDP socket listens), or
`queues` of them (`Lab(prefix, queues=2)`, `xdpex lab up --queues 2`: the sender's transmit queue,
picked by the kernel's hash of each flow, is the peer's receive queue, so the flows of a traffic
side spread over the gateway's queues as RSS would spread them on a NIC), fixed MAC
addresses and permanent neighbour entries (no ARP on the fast path), GRO on both ends and a
minimal XDP_PASS program on the traffic end (a veth drops frames redirected or XDP_TX'd into it
unless its peer runs XDP or GRO), transmit checksum offload off (so every UDP checksum on the wire
is real and captures verify), MTU 1500, and receive packet steering so each side's stack work
runs on its own core (gateway CPU 0, traffic CPU 1) whoever transmitted. RPS acts only on frames
that reach the stack (kernel-UDP mode, session messages): a veth runs its receive NAPI, and so
the receiving side's XDP program and the copy into its AF_XDP socket, inside the sender's
transmit call on the sender's core (measured: the generator's sendto carries the gateway's
veth_poll/XDP/xsk receive work, and xdpexd's carries the generator's). Busy polling does not
move it here: xdpexd --poll busy calls xsk_recvmsg but never napi_busy_loop (perf), and with
napi_defer_hard_irqs/gro_flush_timeout set its round trips waited for the flush timer. `up` and
`down` are idempotent. The same is available to Python as `Lab(prefix).up()` / `.down()` /
`.status()`.

Links, addresses and neighbours inside the namespaces are managed over netlink with pyroute2;
what netlink does not cover stays a command (`ip netns add/del`, which are bind mounts; ethtool
offloads; the RPS mask in the namespace's /sys; loading the XDP object). Every failure raises
LabError naming the step, the interface and the namespace.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

DEFAULT_PREFIX = "xdpex"
GW_IF = "xe-gw0"
TG_IF = "xe-tg0"
GW_IP = "10.77.0.1"
TG_IP = "10.77.0.2"
PREFIX_LEN = 24
GW_MAC = "02:78:65:4d:00:01"
TG_MAC = "02:78:65:4d:00:02"
MTU = 1500
GW_CPU = 0  # the gateway's core: xdpexd and the gateway side's receive processing
TG_CPU = 1  # the traffic side's core: the load generator and its receive processing
# IFLA_XDP_ATTACHED, as the kernel numbers it and as pyroute2 names it
_XDP_MODES: dict[Any, str] = {1: "native", 2: "generic", 3: "offload", 4: "multi"}
_XDP_MODES |= {"xdp": "native", "skb": "generic", "hw": "offload", "multi": "multi"}
NUD_PERMANENT = 0x80
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


class LabError(RuntimeError):
    """A lab step failed; the message names the step and the command's own error."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def build_dir() -> Path:
    return Path(os.environ.get("XDPEX_BUILD", repo_root() / "build"))


def xdp_pass_object() -> Path:
    return build_dir() / "traffic" / "xdp_pass.bpf.o"


def _run(argv: Sequence[str], step: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except FileNotFoundError as e:
        raise LabError(f"{step}: {argv[0]} not found (run `make setup`)") from e
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{step}: `{' '.join(argv)}` timed out") from e
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip()
        raise LabError(f"{step}: `{' '.join(argv)}` failed: {err}")
    return proc


def _errno(e: LabError) -> int | None:
    """The errno of the netlink or OS failure a LabError was raised from, if any."""
    cause = e.__cause__
    code = getattr(cause, "code", None) or getattr(cause, "errno", None)
    return code if isinstance(code, int) else None


def _nl_error(step: str, ns: str, ifname: str | None, e: Exception) -> LabError:
    code = getattr(e, "code", None) or getattr(e, "errno", None)
    why = f"{os.strerror(code)} (errno {code})" if isinstance(code, int) and code > 0 else str(e)
    where = f"{ifname} in namespace {ns}" if ifname else f"namespace {ns}"
    return LabError(f"{step}: {where}: {why}")


_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns into {what}: {os.strerror(err)}")


def socket_in(
    ns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM
) -> socket.socket:
    """A socket of network namespace `ns`, made by this thread after setns() into it (a socket
    stays in the namespace it was made in), so one process can talk on both sides of the lab."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target, f"namespace {ns}")
            try:
                return socket.socket(family, kind)
            finally:
                _setns(home, "this thread's namespace")
        finally:
            os.close(target)
    finally:
        os.close(home)


class Netlink:
    """pyroute2 in one namespace, with each call's failure named (step, interface).

    The netlink socket is opened by this thread after setns() into the namespace, and the thread
    returns to its own namespace at once: the socket stays in the one it was made in. (pyroute2's
    own netns= forks a helper process, which would inherit the caller's signal handlers.)"""

    def __init__(self, ns: str):
        self.ns = ns
        try:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                target = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _setns(target, f"namespace {ns}")
                    try:
                        self.ipr = IPRoute()
                    finally:
                        _setns(home, "this thread's namespace")
                finally:
                    os.close(target)
            finally:
                os.close(home)
        except (OSError, NetlinkError) as e:
            raise _nl_error("open netlink", ns, None, e) from e

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.ipr.close()

    def index(self, ifname: str) -> int | None:
        found = self.ipr.link_lookup(ifname=ifname)
        return int(found[0]) if found else None

    def call(self, step: str, iface: str | None, fn: str, /, *args: Any, **kw: Any) -> Any:
        """`IPRoute.<fn>(*args, **kw)`; a failure says `step`, `iface` and the namespace."""
        try:
            return getattr(self.ipr, fn)(*args, **kw)
        except (OSError, NetlinkError) as e:
            raise _nl_error(step, self.ns, iface, e) from e


@dataclass(frozen=True)
class Lab:
    """One lab instance; every name derives from `prefix`."""

    prefix: str = DEFAULT_PREFIX
    queues: int = 1  # rx/tx queues on each end of the veth pair

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix):
            raise LabError(
                f"--prefix {self.prefix!r}: use 1-40 characters from [A-Za-z0-9_.-], "
                "starting with a letter or digit"
            )
        if not 1 <= self.queues <= 16:
            raise LabError(f"--queues {self.queues}: must be 1..16")

    gw_if = GW_IF
    tg_if = TG_IF
    gw_ip = GW_IP
    tg_ip = TG_IP
    gw_mac = GW_MAC
    tg_mac = TG_MAC
    mtu = MTU

    @property
    def gw_ns(self) -> str:
        return f"{self.prefix}-gw"

    @property
    def tg_ns(self) -> str:
        return f"{self.prefix}-tg"

    # -- helpers ---------------------------------------------------------------------------------

    def netns_cmd(self, ns: str, argv: Sequence[str]) -> list[str]:
        """`argv` run inside namespace `ns` with the namespace's own /sys (`ip netns exec`)."""
        return ["ip", "netns", "exec", ns, *argv]

    def run_cmd(self, ns: str, argv: Sequence[str]) -> list[str]:
        """`argv` run in network namespace `ns` only: the host's mounts stay visible, bpffs at
        /sys/fs/bpf included (`ip netns exec` would hide it), which the XDP programs need."""
        return ["nsenter", f"--net=/run/netns/{ns}", "--", *argv]

    def _ns_exists(self, ns: str) -> bool:
        return Path("/run/netns", ns).exists()

    def _link(self, ns: str, ifname: str) -> dict[str, Any] | None:
        """The interface as netlink reports it (state, MAC, MTU, IPv4 addresses, XDP), None
        when the namespace or the interface does not exist."""
        if not self._ns_exists(ns):
            return None
        with Netlink(ns) as nl:
            idx = nl.index(ifname)
            if idx is None:
                return None
            try:
                link = nl.call("probe", ifname, "get_links", idx)[0]
                addrs = nl.call("probe", ifname, "get_addr", index=idx, family=2)
            except LabError as e:
                # The kernel was still tearing the interface down when we looked it up (its
                # namespace or its peer deleted): it is gone, as far as the lab is concerned.
                if _errno(e) == errno.ENODEV:
                    return None
                raise
            nla = link.get_attr("IFLA_XDP")
            xdp = (
                {k: nla.get_attr(k) for k in ("IFLA_XDP_ATTACHED", "IFLA_XDP_PROG_ID")}
                if nla is not None
                else {}
            )
            return {
                "ifindex": idx,
                "operstate": link.get_attr("IFLA_OPERSTATE"),
                "address": link.get_attr("IFLA_ADDRESS"),
                "mtu": link.get_attr("IFLA_MTU"),
                "queues": link.get_attr("IFLA_NUM_RX_QUEUES"),
                "addr_info": [
                    {
                        "family": "inet",
                        "local": a.get_attr("IFA_ADDRESS"),
                        "prefixlen": a["prefixlen"],
                    }
                    for a in addrs
                ],
                "xdp": {
                    "mode": xdp.get("IFLA_XDP_ATTACHED"),
                    "prog_id": xdp.get("IFLA_XDP_PROG_ID"),
                }
                if xdp.get("IFLA_XDP_ATTACHED")
                else None,
            }

    # -- lifecycle -------------------------------------------------------------------------------

    def up(self) -> None:
        """Create or repair the lab; safe to call when it already exists."""
        obj = xdp_pass_object()
        if not obj.exists():
            raise LabError(f"XDP pass program {obj} is missing (run `make build`)")
        for ns in (self.gw_ns, self.tg_ns):
            if not self._ns_exists(ns):  # (a mount: `ip netns add`, not netlink)
                _run(["ip", "netns", "add", ns], f"create namespace {ns}")
        gw, tg = self._link(self.gw_ns, GW_IF), self._link(self.tg_ns, TG_IF)
        if gw is None or tg is None or gw["queues"] != self.queues or tg["queues"] != self.queues:
            # Half a pair (an interrupted up, or a namespace deleted by hand whose veth the
            # kernel is still tearing down), or a pair with another number of queues: remove
            # what is there and start again.
            for ns, ifname, link in ((self.gw_ns, GW_IF, gw), (self.tg_ns, TG_IF, tg)):
                if link is not None:
                    with Netlink(ns) as nl:
                        try:
                            nl.call("remove stale veth", ifname, "link", "del",
                                    index=link["ifindex"])  # fmt: skip
                        except LabError as e:
                            if _errno(e) != errno.ENODEV:  # (gone meanwhile: fine)
                                raise
            self._create_pair()
        for ns, ifname, mac, ip, peer_ip, peer_mac in (
            (self.gw_ns, GW_IF, GW_MAC, GW_IP, TG_IP, TG_MAC),
            (self.tg_ns, TG_IF, TG_MAC, TG_IP, GW_IP, GW_MAC),
        ):
            with Netlink(ns) as nl:
                lo, idx = nl.index("lo"), nl.index(ifname)
                if idx is None:
                    raise LabError(f"configure {ifname} in namespace {ns}: interface is gone")
                nl.call("bring up loopback", "lo", "link", "set", index=lo, state="up")
                nl.call("set MAC and MTU", ifname, "link", "set", index=idx, address=mac, mtu=MTU)
                nl.call(f"set address {ip}/{PREFIX_LEN}", ifname, "addr", "replace",
                        index=idx, address=ip, prefixlen=PREFIX_LEN)  # fmt: skip
                _run(
                    self.netns_cmd(ns, ["ethtool", "-K", ifname, "gro", "on", "tx", "off"]),
                    f"set offloads on {ifname} in namespace {ns}",
                )
                nl.call("bring up", ifname, "link", "set", index=idx, state="up")
                nl.call(f"static neighbour {peer_ip}", ifname, "neigh", "replace", dst=peer_ip,
                        lladdr=peer_mac, ifindex=idx, state=NUD_PERMANENT)  # fmt: skip
        if (os.cpu_count() or 1) >= 2:
            # Receive Packet Steering: the stack work for what each side receives runs on that
            # side's core (gateway GW_CPU, traffic TG_CPU), as it would on two hosts, rather than
            # on the core of whichever process transmitted into the veth. (Not for frames an
            # XDP program redirects: see the module docstring.)
            for ns, ifname, cpu in ((self.gw_ns, GW_IF, GW_CPU), (self.tg_ns, TG_IF, TG_CPU)):
                for q in range(self.queues):
                    path = f"/sys/class/net/{ifname}/queues/rx-{q}/rps_cpus"
                    _run(
                        self.netns_cmd(ns, ["sh", "-c", f"echo {1 << cpu:x} > {path}"]),
                        f"steer {ifname} receive processing to CPU {cpu}",
                    )
        if self._xdp_prog(self.tg_ns, TG_IF) is None:
            _run(
                ["ip", "-n", self.tg_ns, "link", "set", "dev", TG_IF, "xdpdrv"]
                + ["obj", str(obj), "sec", "xdp"],
                f"attach XDP pass program on {TG_IF}",
            )

    @contextlib.contextmanager
    def gateway_stack_aside(self) -> Iterator[None]:
        """For a gateway that owns the wire itself (xdpexd --mode dpdk on an af_packet port, which
        sees every frame the kernel sees): the gateway address comes off the gateway interface
        for the duration, so the namespace's kernel stack neither answers ARP for it (the
        gateway does) nor sends port-unreachables for the gateway port."""
        step = f"take {GW_IP} off {GW_IF} in {self.gw_ns}"
        _run(["ip", "-n", self.gw_ns, "addr", "del", f"{GW_IP}/{PREFIX_LEN}", "dev", GW_IF], step)
        try:
            yield
        finally:
            _run(["ip", "-n", self.gw_ns, "addr", "replace", f"{GW_IP}/{PREFIX_LEN}", "dev", GW_IF],
                 f"put {GW_IP} back on {GW_IF} in {self.gw_ns}")

    def _create_pair(self) -> None:
        """The veth pair, `queues` queues each way on both ends, the peer in the traffic
        namespace."""
        err: LabError | None = None
        for _ in range(20):
            try:
                with Netlink(self.gw_ns) as nl:
                    nl.call(
                        f"create veth pair (peer {TG_IF} in {self.tg_ns})",
                        GW_IF,
                        "link",
                        "add",
                        ifname=GW_IF,
                        kind="veth",
                        num_tx_queues=self.queues,
                        num_rx_queues=self.queues,
                        peer={
                            "ifname": TG_IF,
                            "net_ns_fd": self.tg_ns,
                            "num_tx_queues": self.queues,
                            "num_rx_queues": self.queues,
                        },
                    )
                return
            except LabError as e:
                err = e
                time.sleep(0.1)  # namespace clean-up runs asynchronously in the kernel
        assert err is not None
        raise err

    def down(self) -> None:
        """Remove both namespaces (and with them the veth pair) and the fault injector if it
        was attached (xdpex_traffic.faults); fine when absent."""
        from xdpex_traffic.faults import Injector  # (imports this module)

        Injector(self).remove(in_lab=False)  # (the namespaces take its hooks and pair along)
        for ns in (self.gw_ns, self.tg_ns):
            if self._ns_exists(ns):
                _run(["ip", "netns", "del", ns], f"delete namespace {ns}")

    def _xdp_prog(self, ns: str, ifname: str) -> dict[str, Any] | None:
        link = self._link(ns, ifname)
        if link is None or link["xdp"] is None:
            return None
        xdp = link["xdp"]
        pid = xdp["prog_id"]
        name = None
        if pid:  # the program's name is the bpf syscall's, not netlink's
            proc = _run(["bpftool", "-j", "prog", "show", "id", str(pid)], "probe", False)
            if proc.returncode == 0 and proc.stdout.strip():
                name = json.loads(proc.stdout).get("name")
        return {"mode": _XDP_MODES.get(xdp["mode"], str(xdp["mode"])), "id": pid, "name": name}

    def status(self) -> dict[str, Any]:
        """What exists: per side, namespace, link state, address, MAC, MTU, XDP program."""
        out: dict[str, Any] = {"prefix": self.prefix}
        for side, ns, ifname in (("gateway", self.gw_ns, GW_IF), ("traffic", self.tg_ns, TG_IF)):
            info: dict[str, Any] = {"namespace": ns, "exists": self._ns_exists(ns)}
            link = self._link(ns, ifname)
            if link is not None:
                info["interface"] = ifname
                info["state"] = link.get("operstate")
                info["mac"] = link.get("address")
                info["mtu"] = link.get("mtu")
                info["queues"] = link.get("queues")
                info["addresses"] = [
                    f"{a['local']}/{a['prefixlen']}"
                    for a in link.get("addr_info", [])
                    if a.get("family") == "inet"
                ]
                info["xdp"] = self._xdp_prog(ns, ifname)
                rps = _run(
                    self.netns_cmd(ns, ["cat", f"/sys/class/net/{ifname}/queues/rx-0/rps_cpus"]),
                    "probe",
                    False,
                )
                info["rps_cpus"] = rps.stdout.strip() or None
            out[side] = info
        out["ready"] = bool(
            out["gateway"].get("state") == "UP" and out["traffic"].get("state") == "UP"
        )
        return out


HA_IFS = ("xe-ha0", "xe-ha1")
HA_IPS = ("10.79.0.1", "10.79.0.2")
# The etcd cluster of `lab up --ha`: one member in each gateway namespace and one in a third
# namespace of its own (`<prefix>c-etcd`, the tie-breaking site), each on an address of its own
# namespace (on its loopback: it stays local whatever link is down). Each gateway namespace has
# one etcd link (xe-et0) to the third namespace, which forwards between the two; peer and client
# traffic between members goes over these links (not over the replication link, so cutting a
# gateway off from etcd leaves its replication running, as a broken switch port would).
ETCD_IF = "xe-et0"  # in each gateway namespace
ETCD_C_IFS = ("xe-eta", "xe-etb")  # the third namespace's ends of a's and b's etcd links
ETCD_LINK_IPS = (("10.80.1.1", "10.80.1.2"), ("10.80.2.1", "10.80.2.2"))  # (gateway, third)
ETCD_MEMBER_IPS = ("10.80.0.1", "10.80.0.2", "10.80.0.3")  # members a, b, c
ETCD_NET = "10.80.0.0/16"
ETCD_HEARTBEAT_MS = 50  # etcd's --heartbeat-interval and --election-timeout for a 1 s lease
ETCD_ELECTION_MS = 500  # (the smallest lease etcd grants is 1.5 election timeouts, in seconds)
LAB_STATE = Path("/run/xdpex-lab")


@dataclass(frozen=True)
class HaLab:
    """`xdpex lab up --ha`: two gateway hosts, each a Lab of its own (`<prefix>a-gw` with its
    traffic side `<prefix>a-tg`, and `<prefix>b-*`; the same addresses in both, as two sites
    would have), a replication link between the two gateway namespaces (xe-ha0 10.79.0.1 in
    a's, xe-ha1 10.79.0.2 in b's) that each xdpexd's --repl-listen binds, and a three-member
    etcd cluster: member a in `<prefix>a-gw` (10.80.0.1), b in `<prefix>b-gw` (10.80.0.2), c in
    `<prefix>c-etcd` (10.80.0.3), a third site linked to both gateway namespaces (xe-et0 in each;
    the member addresses are routed over those links), with heartbeat 50 ms and election
    timeout 500 ms so a 1 s lease is granted as 1 s. The members run detached, their data in
    /run/xdpex-lab/<prefix>/etcd; `down` stops them. The HA agents run beside each xdpexd in its
    gateway namespace (docs/ha.md)."""

    prefix: str = DEFAULT_PREFIX

    @property
    def sides(self) -> tuple[Lab, Lab]:
        return Lab(f"{self.prefix}a"), Lab(f"{self.prefix}b")

    @property
    def etcd_ns(self) -> str:
        """The third site's namespace (etcd member c only)."""
        return f"{self.prefix}c-etcd"

    @property
    def etcd_home(self) -> Path:
        return LAB_STATE / self.prefix / "etcd"

    def etcd_cluster(self) -> Any:
        """The lab's etcd cluster (xdpex.services.EtcdCluster, detached at etcd_home): members
        a, b, c in their namespaces, client port 2379 and peer port 2380 on each address."""
        from xdpex.services import EtcdCluster, EtcdMember

        a, b = self.sides
        nss = (a.gw_ns, b.gw_ns, self.etcd_ns)
        return EtcdCluster(
            [EtcdMember(n, host=ip, client_port=2379, peer_port=2380, netns=ns)
             for n, ip, ns in zip("abc", ETCD_MEMBER_IPS, nss, strict=True)],
            heartbeat_ms=ETCD_HEARTBEAT_MS, election_ms=ETCD_ELECTION_MS, home=self.etcd_home)

    def etcd_endpoints(self, first: str | None = None) -> list[str]:
        """Client URLs of the three members, member `first` (a node's own) first."""
        names = ["a", "b", "c"]
        if first is not None:
            names.remove(first)
            names.insert(0, first)
        return [f"http://{ETCD_MEMBER_IPS['abc'.index(n)]}:2379" for n in names]

    def etcd_link(self, member: str) -> list[tuple[str, str]]:
        """(namespace, interface) of what cuts member `member` off from the others: a gateway
        namespace's one etcd link, or both of the third namespace's."""
        a, b = self.sides
        if member == "a":
            return [(a.gw_ns, ETCD_IF)]
        if member == "b":
            return [(b.gw_ns, ETCD_IF)]
        if member == "c":
            return [(self.etcd_ns, i) for i in ETCD_C_IFS]
        raise ValueError(f"etcd member {member!r}: the lab's are a, b, c")

    def set_etcd_link(self, member: str, up: bool) -> None:
        for ns, ifname in self.etcd_link(member):
            _run(["ip", "-n", ns, "link", "set", ifname, "up" if up else "down"],
                 f"set {ifname} in {ns} {'up' if up else 'down'}")
        if up:  # (routes over a link go with it when it goes down)
            self._etcd_routes()

    def up(self, etcd: bool = True) -> None:
        a, b = self.sides
        a.up()
        b.up()
        if a._link(a.gw_ns, HA_IFS[0]) is None or b._link(b.gw_ns, HA_IFS[1]) is None:
            for lab, ifname in ((a, HA_IFS[0]), (b, HA_IFS[1])):
                if lab._link(lab.gw_ns, ifname) is not None:
                    _run(["ip", "-n", lab.gw_ns, "link", "del", ifname], "remove stale ha link")
            _run(["ip", "-n", a.gw_ns, "link", "add", HA_IFS[0], "type", "veth", "peer", "name",
                  HA_IFS[1], "netns", b.gw_ns], f"create the replication link {HA_IFS}")
        for lab, ifname, ip in ((a, HA_IFS[0], HA_IPS[0]), (b, HA_IFS[1], HA_IPS[1])):
            _run(["ip", "-n", lab.gw_ns, "addr", "replace", f"{ip}/30", "dev", ifname],
                 f"set address {ip} on {ifname} in {lab.gw_ns}")
            _run(["ip", "-n", lab.gw_ns, "link", "set", ifname, "up"],
                 f"bring up {ifname} in {lab.gw_ns}")
        self._etcd_net()
        if etcd:
            from xdpex.services import ServiceError

            try:
                self.etcd_cluster().start()
            except ServiceError as e:
                raise LabError(f"start the lab's etcd members: {e}") from e

    def _etcd_net(self) -> None:
        """The third namespace, the etcd links and addresses, forwarding in the third namespace
        and the routes to the member addresses."""
        a, b = self.sides
        c = self.etcd_ns
        if not Path("/run/netns", c).exists():
            _run(["ip", "netns", "add", c], f"create namespace {c}")
        _run(["ip", "-n", c, "link", "set", "lo", "up"], f"bring up loopback in {c}")
        for lab, c_if, (gw_ip, c_ip), m_ip in zip(
                (a, b), ETCD_C_IFS, ETCD_LINK_IPS, ETCD_MEMBER_IPS, strict=False):
            if lab._link(lab.gw_ns, ETCD_IF) is None or a._link(c, c_if) is None:
                for ns, ifname in ((lab.gw_ns, ETCD_IF), (c, c_if)):
                    if a._link(ns, ifname) is not None:
                        _run(["ip", "-n", ns, "link", "del", ifname], "remove stale etcd link")
                _run(["ip", "-n", lab.gw_ns, "link", "add", ETCD_IF, "type", "veth", "peer",
                      "name", c_if, "netns", c], f"create the etcd link {lab.gw_ns}-{c}")
            for ns, ifname, ip in ((lab.gw_ns, ETCD_IF, gw_ip), (c, c_if, c_ip)):
                _run(["ip", "-n", ns, "addr", "replace", f"{ip}/30", "dev", ifname],
                     f"set address {ip} on {ifname} in {ns}")
                _run(["ip", "-n", ns, "link", "set", ifname, "up"], f"bring up {ifname} in {ns}")
            _run(["ip", "-n", lab.gw_ns, "addr", "replace", f"{m_ip}/32", "dev", "lo"],
                 f"set the etcd address {m_ip} in {lab.gw_ns}")
        _run(["ip", "-n", c, "addr", "replace", f"{ETCD_MEMBER_IPS[2]}/32", "dev", "lo"],
             f"set the etcd address {ETCD_MEMBER_IPS[2]} in {c}")
        _run(["ip", "netns", "exec", c, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
             f"forwarding in {c}")
        self._etcd_routes()

    def _etcd_routes(self) -> None:
        a, b = self.sides
        for lab, (_, c_ip), m_ip, (gw_ip, _) in zip(
                (a, b), ETCD_LINK_IPS, ETCD_MEMBER_IPS, ETCD_LINK_IPS, strict=False):
            _run(["ip", "-n", lab.gw_ns, "route", "replace", ETCD_NET, "via", c_ip, "dev",
                  ETCD_IF], f"route {ETCD_NET} in {lab.gw_ns}")
            _run(["ip", "-n", self.etcd_ns, "route", "replace", f"{m_ip}/32", "via", gw_ip],
                 f"route to etcd member {m_ip} in {self.etcd_ns}")

    def down(self) -> None:
        cl = self.etcd_cluster()
        cl.stop()  # (before the namespaces go: a process keeps its namespace alive)
        with contextlib.suppress(OSError):
            (LAB_STATE / self.prefix).rmdir()
        for lab in self.sides:
            lab.down()
        if Path("/run/netns", self.etcd_ns).exists():
            _run(["ip", "netns", "del", self.etcd_ns], f"delete namespace {self.etcd_ns}")

    def etcd_status(self) -> dict[str, Any]:
        cl = self.etcd_cluster()
        out: dict[str, Any] = {"members": {}}
        for m in cl.members:
            run = cl.running(m.name)
            out["members"][m.name] = {"namespace": m.netns, "client_url": m.client_url,
                                      "running": run, "healthy": run and cl.healthy(m.name)}
        out["leader"] = cl.leader()
        out["healthy"] = sum(1 for v in out["members"].values() if v["healthy"])
        return out

    def status(self) -> dict[str, Any]:
        a, b = self.sides
        out: dict[str, Any] = {"prefix": self.prefix, "a": a.status(), "b": b.status()}
        links = [lab._link(lab.gw_ns, i) for lab, i in ((a, HA_IFS[0]), (b, HA_IFS[1]))]
        out["replication_link"] = {
            "a": f"{HA_IFS[0]} {HA_IPS[0]}", "b": f"{HA_IFS[1]} {HA_IPS[1]}",
            "up": all(x is not None and x.get("operstate") in ("UP", "UNKNOWN") for x in links)}
        out["etcd"] = self.etcd_status()
        out["ready"] = bool(out["a"]["ready"] and out["b"]["ready"]
                            and out["replication_link"]["up"] and out["etcd"]["healthy"] == 3)
        return out


def _print_status(st: dict[str, Any]) -> None:
    print(f"lab {st['prefix']}: {'up' if st['ready'] else 'not ready'}")
    for side in ("gateway", "traffic"):
        info = st[side]
        if not info["exists"]:
            print(f"  {side:8s} namespace {info['namespace']}: absent")
            continue
        if "interface" not in info:
            print(f"  {side:8s} namespace {info['namespace']}: present, no veth")
            continue
        xdp = info["xdp"]
        xdp_s = f"xdp {xdp['name']} (id {xdp['id']}, {xdp['mode']})" if xdp else "no xdp"
        print(
            f"  {side:8s} {info['namespace']}: {info['interface']} {info['state']} "
            f"{' '.join(info['addresses']) or 'no address'} {info['mac']} mtu {info['mtu']} "
            f"{xdp_s}"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["up", "down", "status", "faults"],
        help="faults: the fault injector, `xdpex lab faults --help` (xdpex_traffic.faults)",
    )
    parser.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        help="namespace name prefix: <prefix>-gw and <prefix>-tg (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="status as JSON")
    parser.add_argument("--queues", type=int, default=1,
                        help="rx/tx queues on each end of the veth pair (default %(default)s)")
    parser.add_argument("--ha", action="store_true",
                        help="two gateway sites (<prefix>a-*, <prefix>b-*), a replication "
                             "link between their gateway namespaces and a three-member etcd, "
                             "one member per gateway namespace and one in <prefix>c-etcd "
                             "(docs/ha.md)")
    parser.add_argument(
        "faults_action",
        nargs="?",
        choices=["on", "stats", "off"],
        metavar="on|stats|off",
        help="with `faults`: attach, counters, remove",
    )
    from xdpex_traffic.faults import add_fault_options  # (imports this module)

    add_fault_options(parser.add_argument_group("fault injector (xdpex lab faults on)"))


def run(args: argparse.Namespace) -> int:
    if args.action == "faults":
        from xdpex_traffic import faults

        args.action = args.faults_action or "stats"
        return faults.run(args)
    if args.faults_action:
        print(f"xdpex lab {args.action}: unexpected argument {args.faults_action}", file=sys.stderr)
        return 2
    try:
        if args.ha:
            return _run_ha(HaLab(args.prefix), args)
        lab = Lab(args.prefix, queues=args.queues)
        if args.action == "up":
            lab.up()
            _print_status(lab.status())
        elif args.action == "down":
            lab.down()
            print(f"lab {lab.prefix}: down")
        else:
            st = lab.status()
            if args.json:
                print(json.dumps(st, indent=2))
            else:
                _print_status(st)
    except LabError as e:
        print(f"xdpex lab {args.action}: {e}", file=sys.stderr)
        return 1
    return 0


def _run_ha(ha: HaLab, args: argparse.Namespace) -> int:
    if args.action == "up":
        ha.up()
    elif args.action == "down":
        ha.down()
        print(f"ha lab {ha.prefix}: down")
        return 0
    st = ha.status()
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        for side in ("a", "b"):
            _print_status(st[side])
        rl = st["replication_link"]
        print(f"  replication {rl['a']} <-> {rl['b']} {'up' if rl['up'] else 'DOWN'}")
        et = st["etcd"]
        print(f"  etcd {et['healthy']}/3 healthy, raft leader {et['leader'] or 'none'}")
        for name, m in et["members"].items():
            state = "healthy" if m["healthy"] else "running, unhealthy" if m["running"] else "down"
            print(f"    member {name} {m['namespace']} {m['client_url']} {state}")
    return 0 if st["ready"] or args.action == "status" else 1
