"""Test support for the control plane: databases and a real xdpexd, each unique per test.

Used by tests/test_control_*.py. `Database` gives a SQLite file in a fresh directory or a
PostgreSQL schema of its own (dropped afterwards) on the server a test was given (the session's
private cluster, fixture `svc_pg` in conftest.py), so tests never share tables. `Dataplane` is
xdpex.localdp.LocalDataplane (xdpexd in kernel-UDP mode on 127.0.0.1, free port, its own journal
and sockets) plus the control-plane `Settings` that point at it.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from xdpex.config import Settings
from xdpex.db import drop_schema
from xdpex.localcp import free_tcp_port as free_tcp_port
from xdpex.localdp import XDPEXD as XDPEXD
from xdpex.localdp import LocalDataplane
from xdpex.localdp import cleanup_dir as cleanup_dir
from xdpex.localdp import default_config as default_config
from xdpex.localdp import free_udp_port as free_udp_port
from xdpex.localdp import short_tmpdir as short_tmpdir


class Database:
    """A database of its own: kind "sqlite" (a file in `workdir`) or "postgres" (a fresh schema
    on `pg_url`)."""

    def __init__(self, kind: str, workdir: Path, pg_url: str = ""):
        self.kind = kind
        self.schema = ""
        if kind == "sqlite":
            self.url = f"sqlite:///{workdir / 'xdpex.db'}"
        elif kind == "postgres":
            if not pg_url:
                raise ValueError("Database('postgres') needs the server's URL (fixture svc_pg)")
            self.url = pg_url
            self.schema = f"xt_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        else:
            raise ValueError(f"database kind {kind!r}")

    def drop(self) -> None:
        if self.schema:
            drop_schema(self.url, self.schema)


def database(request: pytest.FixtureRequest, kind: str, workdir: Path) -> Database:
    """A `Database` of `kind` for a test; PostgreSQL ones on the session's server (svc_pg),
    which is started only by the first test that asks for one."""
    url = request.getfixturevalue("svc_pg").url if kind == "postgres" else ""
    return Database(kind, workdir, url)


class Dataplane(LocalDataplane):
    """A running xdpexd (udp mode) with its own journal, sockets and port."""

    def settings(self, db: Database, **over: Any) -> Settings:
        base: dict[str, Any] = dict(
            state_dir=self.dir / "state",
            database_url=db.url,
            db_schema=db.schema,
            control_socket=self.ctl,
            order_socket=self.entry,
            journal_dir=self.journal,
            grpc_port=0,
            udp_mode=True,
            operator_token="xt_test_operator",
            dataplane_timeout_s=5.0,  # generous: tests share 2 cores with everything else
        )
        base.update(over)
        return Settings(**base)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """In `d`: a CA (ca.crt/key), a server certificate for 127.0.0.1/localhost and a client
    certificate (server.*, client.*) signed by it, and a second CA nothing is signed by
    (otherca.*). EC P-256, valid one day; made with the openssl CLI."""
    for ca in ("ca", "otherca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "1",
                 "-subj", f"/CN=xdpex test {ca}", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who, ext in (("server", ["-extfile", "san.ext"]), ("client", [])):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{who}.key", "-out", f"{who}.csr", "-subj", f"/CN={who}",
                 cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{who}.crt", "-days", "1", *ext, cwd=d)  # fmt: skip
