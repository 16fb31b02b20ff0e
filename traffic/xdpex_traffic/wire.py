"""Driving the real gateway over the veth lab, shared by `xdpex run`, bench-wire and the tests.

`Gateway` starts `xdpexd` (docs/dataplane.md) inside the lab's gateway namespace with a generated
configuration (symbols, sessions with fresh random secrets), waits until its control socket
answers, queries it and stops it cleanly. `run_loadgen` runs `xdpex-loadgen` in the traffic
namespace against it and returns the generator's JSON. Every step that fails raises `WireError`
with a message that names the step and carries the daemon's last log lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdpex_traffic.lab import Lab, build_dir

PORT = 9000
PRICE_BAND = (9000, 11000)  # symbol band in ticks; the generator trades inside LOADGEN_PRICES
LOADGEN_PRICES = "9900:10100"


class WireError(RuntimeError):
    """A step of a gateway run failed; the message names it."""


def dpdk_eal_args(prefix: str, iface: str) -> list[str]:
    """EAL arguments for xdpexd --mode dpdk on a lab veth (docs/lab.md): no hugepages (1 GiB of
    ordinary memory; less leaves no room for the mbuf pool), no PCI scan, an af_packet port on
    `iface`, a runtime directory of its own (--file-prefix, so runs never share one)."""
    return ["--no-huge", "-m", "1024", "--no-pci", "--no-telemetry", "--file-prefix", prefix,
            f"--vdev=net_af_packet0,iface={iface}", "-l", "0", "--log-level=lib.eal:warning"]


def xdpexd_path() -> Path:
    return build_dir() / "dataplane" / "xdpexd"


def loadgen_path() -> Path:
    return build_dir() / "traffic" / "xdpex-loadgen"


def ctl_request(path: Path, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """One request on xdpexd's control socket at `path` (one JSON line each way)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(request).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    answer: dict[str, Any] = json.loads(buf)
    return answer


@dataclass(frozen=True)
class Session:
    id: int
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def arg(self) -> str:
        return f"{self.id}:{self.secret.hex()}"


def session_queue(session_id: int, queues: int) -> int:
    """The queue `Gateway` gives a session: ids spread round-robin over the queues."""
    return (session_id - 1) % queues


def queue_symbols(symbols: Sequence[int], queue: int, queues: int) -> list[int]:
    """The symbols xdpexd puts on `queue` by default: the ((id - 1) mod n)-th queue."""
    return [s for s in symbols if (s - 1) % queues == queue]


def make_config(
    symbols: Sequence[int], sessions: Sequence[Session], queues: int = 1
) -> dict[str, Any]:
    """An xdpexd configuration (docs/dataplane.md "Configuration file"); with several queues
    each session gets a queue (`session_queue`), the symbols xdpexd's default one."""
    return {
        "heartbeat_ms": 1000,
        "symbols": [
            {"id": s, "name": f"SYM{s}", "tick": 1, "lot": 1, "band": list(PRICE_BAND)}
            for s in symbols
        ],
        "sessions": [
            {"id": s.id, "secret": s.secret.hex(), "cancel_on_disconnect": True}
            | ({"queue": session_queue(s.id, queues)} if queues > 1 else {})
            for s in sessions
        ],
    }


class Gateway:
    """One xdpexd process in the lab's gateway namespace.

    The defaults suit tests on a shared machine (`--poll sleep`, no pinning); benchmarks and
    `xdpex run` ask for `poll="spin"` and `cpu=GW_CPU`. In udp mode the XDP program filters in
    front of the socket (`--xdp-filter`) unless `xdp_filter=False` (the plain kernel-UDP
    baseline of the benchmarks).
    """

    def __init__(
        self,
        lab: Lab,
        mode: str,
        *,
        symbols: Sequence[int] = (1, 2, 3, 4),
        nsessions: int = 8,
        cpu: int | None = None,
        poll: str = "sleep",
        workdir: Path | None = None,
        extra_args: Sequence[str] = (),
        xdpexd: Path | None = None,
        config_extra: dict[str, Any] | None = None,
        queues: int = 1,
        xdp_filter: bool | None = None,
    ) -> None:
        if mode not in ("afxdp", "udp", "dpdk"):
            raise WireError(f"mode {mode!r}: expected afxdp, udp or dpdk")
        if xdp_filter and mode != "udp":
            raise WireError(f"xdp_filter: for udp mode (mode {mode} has its filter already)")
        # udp mode runs with the XDP program in front of its socket (--xdp-filter) unless told
        # otherwise: what a deployment does. The plain socket is the benchmarks' baseline.
        self.xdp_filter = mode == "udp" if xdp_filter is None else xdp_filter
        self.lab, self.mode, self.cpu, self.poll = lab, mode, cpu, poll
        self.queues = queues  # served queues 0..queues-1 (the lab needs as many, afxdp)
        self.binary = xdpexd or xdpexd_path()  # another build of it: A/B benchmarks
        self.symbols = list(symbols)
        self.extra_args = list(extra_args)
        self.config_extra = dict(config_extra or {})  # merged into the configuration file
        self.sessions = [Session(i + 1) for i in range(nsessions)]
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"xdpex-{lab.prefix}-{mode}-"))
        self.config_path = self.workdir / "config.json"
        self.ctl_path = self.workdir / "ctl.sock"
        self.log_path = self.workdir / "xdpexd.log"
        self.pin_dir = Path("/sys/fs/bpf") / f"xdpex-{lab.prefix}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._aside: contextlib.ExitStack = contextlib.ExitStack()

    @property
    def server(self) -> str:
        return f"{self.lab.gw_ip}:{PORT}"

    def command(self) -> list[str]:
        cmd = [
            str(self.binary),
            "--mode", self.mode,
            "--config", str(self.config_path),
            "--journal-dir", str(self.workdir / "journal"),
            "--ctl-socket", str(self.ctl_path),
            "--entry-socket", str(self.workdir / "entry.sock"),
            "--port", str(PORT),
            "--poll", self.poll,
            "--exit-with-parent",
        ]  # fmt: skip
        if self.mode != "dpdk":
            cmd += ["--iface", self.lab.gw_if]
        if self.mode == "afxdp" or self.xdp_filter:
            cmd += ["--pin-dir", str(self.pin_dir)]
        if self.mode != "afxdp":
            cmd += ["--addr", self.lab.gw_ip]
        if self.xdp_filter:
            cmd += ["--xdp-filter"]
        if self.cpu is not None:
            cmd += ["--cpus", str(self.cpu)]
        if self.queues > 1:
            cmd += ["--queues", ",".join(map(str, range(self.queues)))]
        cmd += self.extra_args
        if self.mode == "dpdk":
            cmd += ["--", *dpdk_eal_args(f"xdpex-{self.lab.prefix}", self.lab.gw_if)]
        return cmd

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").rstrip().splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:]) or "(empty log)"

    def start(self, timeout: float = 20.0) -> None:
        binary = self.binary
        if not binary.exists():
            raise WireError(f"start xdpexd: {binary} is not built (run `make build`)")
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(make_config(self.symbols, self.sessions, self.queues) | self.config_extra, f)
        if self.mode == "dpdk":
            self._aside.enter_context(self.lab.gateway_stack_aside())
        log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            self.lab.run_cmd(self.lab.gw_ns, self.command()),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise WireError(
                    f"start xdpexd ({self.mode}): exited with status {self.proc.returncode}:\n"
                    f"{self.log_tail()}"
                )
            if self.ctl_path.exists():
                try:
                    if self.ctl({"cmd": "hash"}).get("ok"):
                        return
                except (OSError, ValueError):
                    pass
            time.sleep(0.05)
        self.stop()
        raise WireError(
            f"start xdpexd ({self.mode}): control socket not answering after {timeout:.0f} s:\n"
            f"{self.log_tail()}"
        )

    def ctl(self, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """One request on the control socket."""
        return ctl_request(self.ctl_path, request, timeout)

    def stats(self) -> dict[str, Any]:
        st = self.ctl({"cmd": "stats"})
        if not st.get("ok"):
            raise WireError(f"xdpexd stats: {st.get('error')}")
        return st

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait for a clean stop; SIGKILL after `timeout`. Returns the exit status."""
        rc = 0
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
                    rc = -signal.SIGKILL
            rc = rc or self.proc.returncode
            self.proc = None
        self._aside.close()
        return rc

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Gateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def run_loadgen(
    lab: Lab,
    gw: Gateway,
    sessions: Sequence[Session],
    args: Sequence[str],
    *,
    cpu: int | None = None,
    timeout: float = 120.0,
    own_symbols: bool = False,
    stderr_line: Callable[[str], None] | None = None,
    started: Callable[[subprocess.Popen[str]], None] | None = None,
) -> dict[str, Any]:
    """Runs xdpex-loadgen in the traffic namespace against `gw`; returns its JSON report.

    `cpu` pins the generator (benchmarks use TG_CPU, the core the lab steers the traffic side's
    receive work to). `own_symbols`: each session trades only the symbols of its own queue (a
    gateway with several queues answers an order for another queue's symbol UNKNOWN_SYMBOL).
    `stderr_line` is called with each line the generator writes on stderr, as it comes
    (`--log-logins`); then `started` is handed the generator's process once it runs (to stop
    it with SIGINT: it stops sending, drains and reports)."""
    binary = loadgen_path()
    if not binary.exists():
        raise WireError(f"load generator: {binary} is not built (run `make build`)")
    with tempfile.NamedTemporaryFile("w", prefix="xdpex-creds-", suffix=".txt") as creds:
        os.chmod(creds.name, 0o600)
        for s in sessions:
            syms = ""
            if own_symbols:
                mine = queue_symbols(gw.symbols, session_queue(s.id, gw.queues), gw.queues)
                if not mine:
                    raise WireError(f"session {s.id}: no symbol on its queue")
                syms = " " + ",".join(map(str, mine))
            creds.write(f"{s.id} {s.secret.hex()}{syms}\n")
        creds.flush()
        cmd = [str(binary), "--server", gw.server, "--credentials", creds.name]
        cmd += ["--symbols", ",".join(map(str, gw.symbols)), "--price", LOADGEN_PRICES]
        if cpu is not None:
            cmd += ["--cpu", str(cpu)]
        cmd += list(args)
        try:
            if stderr_line is None:
                proc = subprocess.run(
                    lab.run_cmd(lab.tg_ns, cmd), capture_output=True, text=True, timeout=timeout
                )
            else:
                proc = _run_streaming(lab.run_cmd(lab.tg_ns, cmd), stderr_line, timeout, started)
        except subprocess.TimeoutExpired as e:
            raise WireError(f"load generator: no result after {timeout:.0f} s") from e
    if proc.returncode != 0:
        raise WireError(
            f"load generator exited with status {proc.returncode}: {proc.stderr.strip()}\n"
            f"xdpexd log:\n{gw.log_tail()}"
        )
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except ValueError as e:
        raise WireError(f"load generator: output is not JSON: {proc.stdout[:200]!r}") from e
    return result


def _run_streaming(
    argv: list[str],
    line_cb: Callable[[str], None],
    timeout: float,
    started: Callable[[subprocess.Popen[str]], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """subprocess.run(argv) with stdout captured and each stderr line handed to `line_cb` as
    it is written (and kept, for the error message)."""
    lines: list[str] = []
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stderr is not None
    if started is not None:
        started(p)
    out: list[str] = []
    stdout = p.stdout
    reader = threading.Thread(target=lambda: out.append(stdout.read()), daemon=True)
    reader.start()
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        p.kill()

    timer = threading.Timer(timeout, expire)
    timer.start()
    try:
        for ln in p.stderr:
            lines.append(ln)
            line_cb(ln.rstrip("\n"))
        p.wait()
    finally:
        timer.cancel()
    if expired.is_set():
        raise subprocess.TimeoutExpired(argv, timeout)
    reader.join(5)
    err = "".join(x for x in lines if not x.startswith("login "))
    return subprocess.CompletedProcess(argv, p.returncode, "".join(out), err)
