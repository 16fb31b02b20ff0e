"""`xdpex lab faults`: seeded, rate-driven loss, duplication and reordering on the veth lab.

This kernel has no netem qdisc, so the faults come from tc_faults (traffic/faults/tc_faults.bpf.c),
a tc classifier on the traffic side's lab interface: egress for datagrams to the gateway (direction
0, "in"), ingress for the gateway's answers (direction 1, "out"). The gateway's side of the lab is
left alone, so the same faults apply to xdpexd in AF_XDP, kernel-UDP and DPDK mode. For datagram n
of a direction, draws from a seeded mix of (seed, direction, n) decide: drop it; hold it back;
send 1..burst extra copies of it (bpf_clone_redirect). The same seed and the same traffic give the
same faults.

Reordering needs somewhere to keep a datagram, which BPF does not have. A held datagram is
redirected into a second veth pair inside the traffic namespace (xe-tgh0 -> xe-tgh1, no addresses),
where the relay (`Relay`, a small process reading it with an AF_PACKET socket) keeps it until
`depth` more datagrams of its direction have passed the injector (it watches the counter map) or
`hold_ms` has passed, whichever is first, then sends it back through the pair; tc_faults on
xe-tgh0's ingress puts it back on its way (egress of the lab interface or its ingress). So a held
datagram arrives about `depth` datagrams late.

The program and its two maps are pinned under /sys/fs/bpf/xdpex-faults-<prefix>/; configuration
and counters are mmapable arrays (traffic/faults/faults.h) read and written in place. Python:
`Injector(lab).apply(FaultSpec(loss=0.1, seed=7))`, `.counters()`, `.remove()`. Command line:
`xdpex lab faults on --loss 0.1 --dup 0.05 --reorder 0.02 --seed 7`, `... stats`, `... off`.

The market-data feed is a stream of its own: `--feed-port 9400 --feed-loss 0.01` drops 1 % of the
MoldUDP64 datagrams arriving from the gateway at that UDP port (multicast or unicast), counted as
`feed` and `feed_dropped` of direction "out", drawn from the seed independently of the orders.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import mmap
import os
import platform
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xdpex_traffic.lab import DEFAULT_PREFIX, Lab, LabError, Netlink, _run, build_dir

HOLD_NEAR = "xe-tgh0"  # where held datagrams leave for the relay and come back from it
HOLD_FAR = "xe-tgh1"  # the relay's end
PORT = 9000
PPM = 1_000_000
BURST_MAX = 8
DIRS = ("in", "out")  # 0: traffic -> gateway, 1: gateway -> traffic
# struct fault_cfg and struct fault_cnt of traffic/faults/faults.h
CFG = struct.Struct("<Q2I2I2I8I")
CNT_FIELDS = (
    "seen",
    "dropped",
    "dup_events",
    "copies",
    "held",
    "released",
    "errors",
    "copy_msgs",
    "session",
    "msgs",
    "drop_msgs",
    "hold_msgs",
    "feed",
    "feed_dropped",
)
CNT = struct.Struct(f"<{len(CNT_FIELDS)}Q")
_SYS_BPF = {"x86_64": 321, "aarch64": 280}
_BPF_OBJ_GET = 7
_libc = ctypes.CDLL(None, use_errno=True)


class FaultError(RuntimeError):
    """A step of the fault injector failed; the message names it."""


def faults_object() -> Path:
    return build_dir() / "traffic" / "tc_faults.bpf.o"


@dataclass(frozen=True)
class FaultSpec:
    """Rates are fractions (0.1 = 10 %) applied in each direction listed in `dirs`."""

    loss: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0
    burst: int = 1  # a duplicated datagram gets 1..burst extra copies
    depth: int = 4  # a held datagram is released after this many later ones of its direction
    hold_ms: float = 20.0  # ... or after this long, whichever is first
    seed: int = 1
    dirs: str = "both"  # both, in (to the gateway), out (from it)
    all_datagrams: bool = False  # also session datagrams (login, heartbeat, gap, resend request)
    port: int = PORT
    feed_port: int = 0  # the market-data feed's UDP port (MoldUDP64 from the gateway); 0: none
    feed_loss: float = 0.0  # drop rate of feed datagrams

    def __post_init__(self) -> None:
        for name in ("loss", "dup", "reorder", "feed_loss"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise FaultError(f"--{name} {v}: a rate is a fraction from 0 to 1")
        if self.loss + self.reorder > 1.0:
            raise FaultError(f"--loss {self.loss} + --reorder {self.reorder} exceed 1")
        if not 1 <= self.burst <= BURST_MAX:
            raise FaultError(f"--burst {self.burst}: 1..{BURST_MAX} copies")
        if not 1 <= self.depth <= 10_000:
            raise FaultError(f"--depth {self.depth}: 1..10000 datagrams")
        if not 0 < self.hold_ms <= 10_000:
            raise FaultError(f"--hold-ms {self.hold_ms}: more than 0, at most 10000")
        if self.dirs not in ("both", "in", "out"):
            raise FaultError(f"--dirs {self.dirs!r}: both, in or out")
        if not 0 <= self.seed < 1 << 64:
            raise FaultError(f"--seed {self.seed}: 0..2^64-1")
        if not 1 <= self.port <= 65535:
            raise FaultError(f"--port {self.port}: 1..65535")
        if not 0 <= self.feed_port <= 65535 or self.feed_port == self.port:
            raise FaultError(f"--feed-port {self.feed_port}: 1..65535 and not --port (0: no feed)")
        if self.feed_loss and not self.feed_port:
            raise FaultError("--feed-loss needs --feed-port (the feed's UDP port)")

    def rates(self, what: str) -> tuple[int, int]:
        ppm = round(getattr(self, what) * PPM)
        return (
            ppm if self.dirs in ("both", "in") else 0,
            ppm if self.dirs in ("both", "out") else 0,
        )


def _bpf_obj_get(path: Path) -> int:
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise FaultError(f"bpf(2): no syscall number known for {platform.machine()}")
    name = ctypes.create_string_buffer(str(path).encode())
    attr = ctypes.create_string_buffer(struct.pack("<QII", ctypes.addressof(name), 0, 0), 128)
    fd = _libc.syscall(nr, _BPF_OBJ_GET, attr, 128)
    if fd < 0:
        err = ctypes.get_errno()
        raise FaultError(f"open pinned map {path}: {os.strerror(err)} (errno {err})")
    return int(fd)


def _map(path: Path) -> mmap.mmap:
    fd = _bpf_obj_get(path)
    try:
        return mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError as e:
        raise FaultError(f"mmap {path}: {e}") from e
    finally:
        os.close(fd)


class Counters:
    """fcnt_map, mapped: what the injector did per direction, read in place."""

    def __init__(self, pin_dir: Path) -> None:
        self._m = _map(pin_dir / "fcnt_map")

    def seen(self, d: int) -> int:
        return int(struct.unpack_from("<Q", self._m, d * CNT.size)[0])

    def read(self) -> dict[str, dict[str, int]]:
        return {
            name: dict(zip(CNT_FIELDS, CNT.unpack_from(self._m, d * CNT.size), strict=True))
            for d, name in enumerate(DIRS)
        }

    def clear(self) -> None:
        self._m[: len(DIRS) * CNT.size] = bytes(len(DIRS) * CNT.size)

    def close(self) -> None:
        self._m.close()


class Injector:
    """tc_faults on one lab, with its holding pair and relay."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.pin_dir = Path("/sys/fs/bpf") / f"xdpex-faults-{lab.prefix}"
        self.relay_pid = Path(tempfile.gettempdir()) / f"xdpex-faults-{lab.prefix}.relay"

    # -- set-up ----------------------------------------------------------------------------------

    def _tc(self, args: list[str], step: str, check: bool = True) -> None:
        try:
            _run(self.lab.run_cmd(self.lab.tg_ns, ["tc", *args]), step, check)
        except LabError as e:
            raise FaultError(str(e)) from e

    def _holding_pair(self) -> tuple[int, int]:
        ns = self.lab.tg_ns
        try:
            with Netlink(ns) as nl:
                if nl.index(HOLD_NEAR) is None:
                    nl.call(
                        "create holding pair",
                        HOLD_NEAR,
                        "link",
                        "add",
                        ifname=HOLD_NEAR,
                        kind="veth",
                        peer={"ifname": HOLD_FAR},
                    )
                near, far, wire = nl.index(HOLD_NEAR), nl.index(HOLD_FAR), nl.index(self.lab.tg_if)
                if near is None or far is None or wire is None:
                    raise FaultError(f"holding pair or {self.lab.tg_if} missing in {ns}")
                for idx, ifname in ((near, HOLD_NEAR), (far, HOLD_FAR)):
                    nl.call("bring up", ifname, "link", "set", index=idx, state="up")
        except LabError as e:
            raise FaultError(str(e)) from e
        for ifname in (HOLD_NEAR, HOLD_FAR):  # no router solicitations into the relay
            _run(
                self.lab.netns_cmd(ns, ["sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1"]),
                "disable IPv6 on the holding pair",
                check=False,
            )
        return wire, near

    def _load(self) -> None:
        obj = faults_object()
        if not obj.exists():
            raise FaultError(f"fault injector {obj} is missing (run `make build`)")
        if (self.pin_dir / "prog").exists():
            return
        self.pin_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [
                "bpftool",
                "prog",
                "load",
                str(obj),
                str(self.pin_dir / "prog"),
                "type",
                "classifier",
                "pinmaps",
                str(self.pin_dir),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if proc.returncode != 0:
            raise FaultError(f"load {obj}: {(proc.stderr or proc.stdout).strip()[-2000:]}")

    def apply(self, spec: FaultSpec, clear: bool = True) -> None:
        """Attach (or re-configure) the injector with `spec`; counters start at 0 if `clear`."""
        if not self.lab.status()["ready"]:
            raise FaultError(f"lab {self.lab.prefix} is not up (xdpex lab up --prefix ...)")
        wire, near = self._holding_pair()
        self._load()
        prog = str(self.pin_dir / "prog")
        for dev, hook in (
            (self.lab.tg_if, "egress"),
            (self.lab.tg_if, "ingress"),
            (HOLD_NEAR, "ingress"),
        ):
            self._tc(["qdisc", "replace", "dev", dev, "clsact"], f"clsact on {dev}")
            self._tc(
                [
                    "filter",
                    "replace",
                    "dev",
                    dev,
                    hook,
                    "pref",
                    "1",
                    "handle",
                    "1",
                    "bpf",
                    "da",
                    "pinned",
                    prog,
                ],
                f"attach tc_faults to {dev} {hook}",
            )
        cfg = _map(self.pin_dir / "fcfg_map")
        try:
            cfg[: CFG.size] = CFG.pack(
                spec.seed,
                *spec.rates("loss"),
                *spec.rates("dup"),
                *spec.rates("reorder"),
                spec.burst,
                spec.port,
                wire,
                near,
                int(spec.all_datagrams),
                spec.feed_port,
                round(spec.feed_loss * PPM),
                0,
            )
            if clear:
                c = Counters(self.pin_dir)
                c.clear()
                c.close()
            cfg[CFG.size - 4 : CFG.size] = struct.pack("<I", 1)  # enabled, last
        finally:
            cfg.close()
        self._stop_relay()
        if spec.reorder > 0:
            self._start_relay(spec)

    def _start_relay(self, spec: FaultSpec) -> None:
        cmd = [
            sys.executable,
            "-m",
            "xdpex_traffic.faults",
            "relay",
            "--prefix",
            self.lab.prefix,
            "--depth",
            str(spec.depth),
            "--hold-ms",
            str(spec.hold_ms),
        ]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        proc = subprocess.Popen(
            self.lab.run_cmd(self.lab.tg_ns, cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
        )
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20.0)
        line = proc.stdout.readline().decode().strip() if ready else ""
        if line != "relay ready":
            proc.kill()
            err = proc.stderr.read().decode().strip() if proc.stderr else ""
            raise FaultError(f"start the holding relay: {line or 'no answer'} {err[-1000:]}")
        self.relay_pid.write_text(str(proc.pid))

    def _stop_relay(self) -> None:
        try:
            pid = int(self.relay_pid.read_text())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.02)
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        break
                except ChildProcessError:
                    pass
        except ProcessLookupError:
            pass
        self.relay_pid.unlink(missing_ok=True)

    def counters(self) -> dict[str, dict[str, int]]:
        if not (self.pin_dir / "fcnt_map").exists():
            raise FaultError(f"no fault injector on lab {self.lab.prefix} (xdpex lab faults on)")
        c = Counters(self.pin_dir)
        try:
            return c.read()
        finally:
            c.close()

    def settle(self, timeout: float = 10.0) -> dict[str, dict[str, int]]:
        """The counters once every held datagram has come back from the relay."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.counters()
            if all(c[d]["released"] >= c[d]["held"] for d in DIRS) or time.monotonic() > deadline:
                return c
            time.sleep(0.02)

    def remove(self, in_lab: bool = True) -> None:
        """Detach everything; fine when absent or when the lab is already down. `in_lab=False`:
        only the relay and the pinned objects (the lab's namespaces are about to go)."""
        self._stop_relay()
        if in_lab and Path("/run/netns", self.lab.tg_ns).exists():
            for dev in (self.lab.tg_if, HOLD_NEAR):
                self._tc(["qdisc", "del", "dev", dev, "clsact"], "remove clsact", check=False)
            try:
                with Netlink(self.lab.tg_ns) as nl:
                    idx = nl.index(HOLD_NEAR)
                    if idx is not None:
                        nl.call("remove holding pair", HOLD_NEAR, "link", "del", index=idx)
            except LabError as e:
                raise FaultError(str(e)) from e
        if self.pin_dir.exists():
            for p in self.pin_dir.iterdir():
                p.unlink()
            self.pin_dir.rmdir()


class Relay:
    """Holds the datagrams tc_faults hands it, releases each `depth` datagrams (or `hold_ms`)
    later. Runs in the traffic namespace on the far end of the holding pair."""

    def __init__(self, prefix: str, depth: int, hold_ms: float) -> None:
        self.depth, self.hold_s = depth, hold_ms / 1000.0
        self.counters = Counters(Injector(Lab(prefix)).pin_dir)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind((HOLD_FAR, 0))
        self.sock.setblocking(False)
        # (release when the direction's seen counter reaches this, deadline, direction, frame)
        self.held: collections.deque[tuple[int, float, int, bytes]] = collections.deque()
        self.stop = False

    @staticmethod
    def direction(frame: bytes, port: int = PORT) -> int:
        dport = int.from_bytes(frame[36:38], "big") if len(frame) >= 38 else 0
        return 0 if dport == port else 1

    def step(self, timeout: float) -> None:
        r, _, _ = select.select([self.sock], [], [], timeout)
        now = time.monotonic()
        if r:
            while True:
                try:
                    frame, addr = self.sock.recvfrom(2048)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                d = self.direction(frame)
                self.held.append((self.counters.seen(d) + self.depth, now + self.hold_s, d, frame))
        if self.held:
            keep: collections.deque[tuple[int, float, int, bytes]] = collections.deque()
            seen = [self.counters.seen(0), self.counters.seen(1)]
            for item in self.held:
                at, deadline, d, frame = item
                if seen[d] >= at or now >= deadline:
                    self.sock.send(frame)
                else:
                    keep.append(item)
            self.held = keep

    def run(self) -> None:
        print("relay ready", flush=True)
        while not self.stop:
            self.step(0.001 if self.held else 0.05)
        for _, _, _, frame in self.held:  # let nothing held be lost on the way out
            self.sock.send(frame)


def describe(c: dict[str, Any]) -> str:
    """One line per direction: what the injector did."""
    return "; ".join(f"{d}: " + ", ".join(f"{k} {v}" for k, v in c[d].items()) for d in DIRS)


# -- command line ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["on", "stats", "off", "relay"],
        help="on: attach or re-configure; stats: counters as JSON; off: remove",
    )
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="lab prefix (default %(default)s)")
    add_fault_options(parser)


def add_fault_options(parser: Any) -> None:
    """The injector's options (also on `xdpex lab`'s parser, for `xdpex lab faults on ...`)."""
    parser.add_argument("--loss", type=float, default=0.0, help="drop rate, e.g. 0.1")
    parser.add_argument("--dup", type=float, default=0.0, help="duplication rate")
    parser.add_argument("--burst", type=int, default=1, help="a duplicate is 1..N extra copies")
    parser.add_argument("--reorder", type=float, default=0.0, help="rate of datagrams held back")
    parser.add_argument("--depth", type=int, default=4, help="held back by this many datagrams")
    parser.add_argument("--hold-ms", type=float, default=20.0, help="... or at most this long")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dirs", default="both", help="both, in (to the gateway) or out")
    parser.add_argument(
        "--all-datagrams",
        action="store_true",
        help="also session datagrams (login, heartbeats, gaps, resend requests)",
    )
    parser.add_argument("--port", type=int, default=PORT, help="the gateway's UDP port")
    parser.add_argument(
        "--feed-port", type=int, default=0, help="the market-data feed's UDP port (0: none)"
    )
    parser.add_argument(
        "--feed-loss", type=float, default=0.0, help="drop rate of feed datagrams, e.g. 0.01"
    )
    parser.add_argument("--keep", action="store_true", help="on: keep the counters")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "relay":
            relay = Relay(args.prefix, args.depth, args.hold_ms)

            def _stop(*_: object) -> None:
                relay.stop = True

            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            relay.run()
            return 0
        inj = Injector(Lab(args.prefix))
        if args.action == "on":
            spec = FaultSpec(
                loss=args.loss,
                dup=args.dup,
                reorder=args.reorder,
                burst=args.burst,
                depth=args.depth,
                hold_ms=args.hold_ms,
                seed=args.seed,
                dirs=args.dirs,
                all_datagrams=args.all_datagrams,
                port=args.port,
                feed_port=args.feed_port,
                feed_loss=args.feed_loss,
            )
            inj.apply(spec, clear=not args.keep)
            print(json.dumps({"lab": args.prefix, "faults": asdict(spec)}))
        elif args.action == "stats":
            print(json.dumps(inj.counters()))
        else:
            inj.remove()
            print(f"lab {args.prefix}: faults off")
    except (FaultError, LabError, OSError) as e:
        print(f"xdpex lab faults {args.action}: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="xdpex lab faults", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
