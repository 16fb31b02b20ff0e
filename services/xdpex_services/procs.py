"""Processes of the private services, found by pid file: the instance directory with its owner
file, the checks that a pid still names our process (its working directory is inside the
instance directory), killing a process group by pid file, reaping the directories of dead
owners, and waiting for readiness by probing the service's own answer.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

OWNER = "owner"
LOG_TAIL = 2500  # bytes of a log quoted in an error


class ServiceError(RuntimeError):
    """A private service could not be started or stopped; the text names the binary and quotes
    the end of its log."""


def services_root() -> Path:
    """Where instance directories go: $XDPEX_SERVICES_DIR, else build/services of this checkout
    when build/ is there, else <tmp>/xdpex-services."""
    env = os.environ.get("XDPEX_SERVICES_DIR")
    if env:
        return Path(env)
    build = Path(__file__).resolve().parents[2] / "build"  # of the checkout
    if build.is_dir() and os.access(build, os.W_OK):
        return build / "services"
    return Path(tempfile.gettempdir()) / "xdpex-services"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that is free now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, n: int = LOG_TAIL) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode(errors="replace")
    except OSError as e:
        return f"(no log: {e})"


# -- processes, found by pid file -----------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state), None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def start_time(pid: int) -> int:
    st = _stat(pid)
    return int(st[19]) if st else -1


def cwd_inside(pid: int, d: Path) -> bool:
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
    except OSError:
        return False
    root = str(d.resolve())
    return cwd == root or cwd.startswith(root + "/")


def group_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid`."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[0] not in ("Z", "X") and int(st[2]) == pgid:
                out.append(int(name))
    return out


def read_pid(pidfile: Path) -> int:
    """The pid on the first line of a pid file; 0 if there is none."""
    try:
        first = pidfile.read_text().split("\n", 1)[0].strip()
    except OSError:
        return 0
    return int(first) if first.isdigit() else 0


def kill_by_pidfile(pidfile: Path, home: Path, timeout: float = 15.0) -> int:
    """Kill (SIGKILL) the process a pid file names and the rest of its process group (services
    are started as group leaders), but only processes whose working directory is inside `home`.
    Waits until they are gone; returns how many were signalled."""
    pid = read_pid(pidfile)
    if not pid:
        return 0
    victims = [p for p in {pid, *group_members(pid)} if alive(p) and cwd_inside(p, home)]
    for p in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in victims):
        for p in victims:  # our own children would otherwise stay zombies
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(p, os.WNOHANG)
        if time.monotonic() > deadline:
            raise ServiceError(f"{pidfile}: processes {victims} did not die after SIGKILL")
        time.sleep(0.01)
    return len(victims)


def wait_gone(pid: int, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            raise ServiceError(f"{what}: still alive {timeout:g} s after SIGKILL")
        time.sleep(0.005)


def _owner_alive(d: Path) -> bool:
    try:
        pid, start = (int(x) for x in (d / OWNER).read_text().split())
    except (OSError, ValueError):
        return False
    return alive(pid) and start_time(pid) == start


def reap_stale(root: Path | None = None) -> list[Path]:
    """Stop and remove every instance directory under `root` whose owner process is gone (a
    crashed test run or benchmark): each pid file in it names what to kill. Returns them."""
    root = root or services_root()
    reaped = []
    try:
        dirs = sorted(p for p in root.iterdir() if (p / OWNER).exists())
    except FileNotFoundError:
        return []
    for d in dirs:
        if _owner_alive(d):
            continue
        for pidfile in [*d.glob("*.pid"), *d.glob("*/postmaster.pid")]:
            kill_by_pidfile(pidfile, d)
        shutil.rmtree(d, ignore_errors=True)
        reaped.append(d)
    return reaped


class Instance(abc.ABC):
    """An instance directory with its owner file; subclasses start the service in it."""

    kind = "service"

    def __init__(self, root: Path | None, keep: bool):
        self.root = Path(root) if root else services_root()
        self.keep = keep
        self.dir: Path | None = None

    def _make_dir(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        reap_stale(self.root)
        d = Path(tempfile.mkdtemp(prefix=f"{self.kind}-{os.getpid()}-", dir=self.root))
        d.chmod(0o755)
        (d / OWNER).write_text(f"{os.getpid()} {start_time(os.getpid())}\n")
        self.dir = d
        atexit.register(self.stop)
        return d

    def _remove_dir(self) -> None:
        atexit.unregister(self.stop)
        if self.dir is not None and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    @abc.abstractmethod
    def start(self) -> Self:
        """Start (or start again after a crash) and wait until the service answers."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the service and remove its directory (unless `keep`)."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(
    what: str, ready: Callable[[], bool], dead: Callable[[], str | None], timeout: float
) -> None:
    """Poll `ready` (a probe of the service's own answer) until it is true; ServiceError when
    `dead` says the process exited or `timeout` passes."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        if ready():
            return
        why = dead()
        if why:
            raise ServiceError(f"{what}: {why}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what}: not ready within {timeout:g} s")
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def spawn(argv: list[str], cwd: Path, log: Path, pidfile: Path) -> subprocess.Popen[bytes]:
    """Start a service as the leader of a new process group, its output in `log`, its pid in
    `pidfile`."""
    if shutil.which(argv[0]) is None:
        raise ServiceError(f"{argv[0]} is not installed: provisioning/setup.sh installs it")
    with open(log, "ab") as out:
        p = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pidfile.write_text(f"{p.pid}\n")
    return p


def exited(p: subprocess.Popen[bytes] | None, name: str, log: Path) -> str | None:
    if p is None or p.poll() is None:
        return None
    return f"{name} exited {p.returncode}; last lines of {log}:\n{log_tail(log)}"


def reap_child(p: subprocess.Popen[bytes] | None, sig: int, timeout: float = 15.0) -> None:
    if p is None or p.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        p.send_signal(sig)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout)
