"""A private PostgreSQL cluster: `initdb` and `pg_ctl` of Debian's PostgreSQL 15 (or
$XDPEX_PG_BIN), 127.0.0.1 and a free port only, trust authentication on loopback, no unix socket;
as root it belongs to and runs as the `postgres` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from pathlib import Path
from typing import Any

from .procs import (
    Instance,
    ServiceError,
    alive,
    cwd_inside,
    free_port,
    kill_by_pidfile,
    log_tail,
    read_pid,
    wait_gone,
)

PG_BIN = Path(os.environ.get("XDPEX_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresInstance(Instance):
    """A PostgreSQL cluster of its own: `initdb` into <dir>/data, `pg_ctl start -w` on 127.0.0.1
    and a free port, database `dbname` created. `durable=False` (tests) turns fsync,
    synchronous_commit and full_page_writes off; benchmarks keep the server's defaults."""

    kind = "pg"

    def __init__(
        self,
        root: Path | None = None,
        dbname: str = "test",
        durable: bool = False,
        keep: bool = False,
        timeout: float = 90.0,
    ):
        super().__init__(root, keep)
        self.dbname = dbname
        self.durable = durable
        self.timeout = timeout
        self.port = 0
        self.user = "postgres"  # the cluster's superuser role
        self._uid, self._gid = _pg_os_user()

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.dbname}"

    @property
    def data(self) -> Path:
        assert self.dir is not None, "not started"
        return self.dir / "data"

    @property
    def log(self) -> Path:
        assert self.dir is not None, "not started"
        return self.dir / "postgres.log"

    @property
    def pid(self) -> int:
        """The postmaster's pid (from its own pid file), 0 when not running."""
        return read_pid(self.data / "postmaster.pid") if self.dir else 0

    def _run(
        self, binary: str, *args: str, log: Path | None = None, timeout: float | None = None
    ) -> None:
        exe = PG_BIN / binary
        if not exe.exists():
            raise ServiceError(f"{exe} is missing: provisioning/setup.sh installs postgresql")
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            as_user = {"user": self._uid, "group": self._gid, "extra_groups": []}
        r = subprocess.run(
            [str(exe), *args],
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout or self.timeout,
            **as_user,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
        )
        if r.returncode != 0:
            tail = log_tail(log) if log else ""
            raise ServiceError(
                f"{exe} {' '.join(args[:2])} failed (exit {r.returncode}): "
                f"{(r.stdout + r.stderr).strip()}\n{tail}"
            )

    def start(self) -> PostgresInstance:
        """Start (a fresh instance, or again in place after a crash or kill) and wait until
        it answers; a fresh one that fails is removed again."""
        fresh = self.dir is None
        try:
            return self._start()
        except BaseException:
            if fresh:
                self.stop()
            raise

    def _start(self) -> PostgresInstance:
        if self.dir is None:
            blocked = _unreachable(self.root, self._uid, self._gid)
            if blocked:
                raise ServiceError(
                    f"PostgreSQL runs as uid {self._uid}, which cannot enter {blocked} (mode "
                    f"{blocked.stat().st_mode & 0o777:o}): choose a services root it can reach"
                )
            d = self._make_dir()
            data = d / "data"
            data.mkdir(mode=0o700)
            self.log.touch()
            for p in (data, self.log):
                os.chown(p, self._uid, self._gid)
            self._run(
                "initdb",
                "-D",
                str(data),
                "-U",
                self.user,
                "--auth=trust",
                "--no-sync",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-instructions",
            )
            (data / "pg_hba.conf").write_text(
                "# xdpex private cluster: trust on loopback, nothing else\n"
                "host all all 127.0.0.1/32 trust\n"
            )
            with open(data / "postgresql.conf", "a") as f:
                f.write("include 'xdpex.conf'\n")
        elif self.pid and alive(self.pid) and cwd_inside(self.pid, self.data):
            return self  # running
        else:
            kill_by_pidfile(self.data / "postmaster.pid", self.data)  # left over from a crash
            (self.data / "postmaster.pid").unlink(missing_ok=True)
        for attempt in range(3):
            self.port = self.port if attempt == 0 and self.port else free_port()
            self._write_conf()
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    str(int(self.timeout)),
                    "-s",
                    log=self.log,
                )
                break
            except ServiceError:
                if attempt < 2 and "already in use" in log_tail(self.log, 600):
                    continue  # the port was taken between asking and binding
                raise
        self._create_db()
        return self

    def _write_conf(self) -> None:
        off = (
            ""
            if self.durable
            else ("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        )
        conf = self.data / "xdpex.conf"
        conf.write_text(
            f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = ''\n"
            f"max_connections = 200\n{off}"
        )
        os.chown(conf, self._uid, self._gid)

    def _create_db(self) -> None:
        import psycopg

        base = f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres"
        try:
            with psycopg.connect(base, autocommit=True, connect_timeout=10) as c:
                if (
                    c.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)
                    ).fetchone()
                    is None
                ):
                    c.execute(f'CREATE DATABASE "{self.dbname}"')
        except psycopg.Error as e:
            raise ServiceError(f"postgres on port {self.port}: {e}\n{log_tail(self.log)}") from e

    def kill(self) -> int:
        """SIGKILL the postmaster only (a crash: its backends notice and exit); returns its pid."""
        pid = self.pid
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, f"postgres {pid}")
        return pid

    def stop(self) -> None:
        if self.dir is None:
            return
        if self.pid and alive(self.pid):
            try:
                self._run(
                    "pg_ctl",
                    "stop",
                    "-D",
                    str(self.data),
                    "-m",
                    "fast",
                    "-w",
                    "-s",
                    log=self.log,
                    timeout=60,
                )
            except (ServiceError, subprocess.TimeoutExpired):
                pass  # killed below
        kill_by_pidfile(self.data / "postmaster.pid", self.data)
        self._remove_dir()


def _unreachable(path: Path, uid: int, gid: int) -> Path | None:
    """The first directory on the way to `path` that uid/gid may not enter, or None."""
    if uid == os.geteuid():
        return None
    p = path.resolve()
    while not p.exists():
        p = p.parent
    for d in [*reversed(p.parents), p]:
        st = d.stat()
        bit = 0o100 if st.st_uid == uid else 0o010 if st.st_gid == gid else 0o001
        if not st.st_mode & bit:
            return d
    return None


def _pg_os_user() -> tuple[int, int]:
    """The uid/gid PostgreSQL runs as: `postgres` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    try:
        pw = pwd.getpwnam(os.environ.get("XDPEX_PG_USER", "postgres"))
    except KeyError:
        raise ServiceError(
            "PostgreSQL refuses to run as root and there is no `postgres` user: "
            "provisioning/setup.sh installs postgresql, which creates it"
        ) from None
    return pw.pw_uid, pw.pw_gid
