"""Control-plane settings: one `Settings` class read from the environment and an optional file.

Every knob of the control plane lives here (database URL, Redis URL, the dataplane's control and
order-entry sockets, the journal directory, listen addresses, the XDP pin directory). Values come,
highest priority first, from init arguments, `XDPEX_*` environment variables, the env-style file
named by `XDPEX_CONFIG` (or `xdpex.env` in the working directory), then the defaults below.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


def _env_file() -> str:
    return os.environ.get("XDPEX_CONFIG", "xdpex.env")


class Settings(BaseSettings):
    """Configuration of the xdpex control plane (API, gRPC, persister, publisher)."""

    model_config = SettingsConfigDict(env_prefix="XDPEX_", extra="ignore")

    # state and storage
    state_dir: Path = Field(Path("/var/lib/xdpex"), description="tokens file, default database")
    database_url: str = Field("", description="SQLAlchemy URL; empty = SQLite in state_dir")
    db_schema: str = Field("", description="PostgreSQL schema (created if missing); empty = public")
    migrate_on_start: bool = True

    # bootstrap operator token: when set it is (re)registered on start; otherwise one is generated
    # on first start and written to state_dir/operator.token (mode 0600)
    operator_token: str = ""
    # lifetime of tokens created through the API unless the request says (0 = they never expire)
    token_default_ttl_s: float = 0.0
    # per-token request rate of REST and gRPC (requests/s, burst); 0 = unlimited. A token may
    # carry its own (POST /api/v1/tokens `rate`, `burst`).
    api_token_rate: float = 10_000.0
    api_token_burst: int = 20_000

    # listen addresses
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051  # 0 = no gRPC server; tests use an ephemeral port
    # TLS for REST and gRPC: a PEM certificate (chain) and its key; both or neither. With
    # tls_client_ca set, clients must present a certificate that CA signed (mutual TLS).
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    tls_client_ca: Path | None = None

    # dataplane
    control_socket: Path = Field(Path("/run/xdpex/control.sock"))
    order_socket: Path = Field(Path("/run/xdpex/orders.sock"))
    journal_dir: Path = Field(Path("/var/lib/xdpex/journal"))
    dataplane_timeout_s: float = 2.0
    # with ha_nodes (xdpex up --ha): how much longer orders in flight when the primary is lost
    # wait for the new primary's answers (the control plane's session logs in again there and
    # resends what it had not applied; docs/ha.md)
    dataplane_failover_s: float = 5.0
    # how often the stored symbols and sessions are compared with the dataplane's (0 = only when
    # readiness asks); differences show in readiness and /metrics (xdpex.reconcile)
    reconcile_interval_s: float = 10.0
    oe_sessions: int = 1  # control-plane sessions held on the order-entry socket
    oe_session_name: str = "control-plane"
    # Order entry is recorded by the journal (every NewOrder and answer, xdpexd); the audit log
    # keeps every configuration and administrative change. audit_order_entry=True also gives
    # each order-entry request (REST POST /api/v1/orders[/batch], gRPC submissions) a record:
    # spooled first (xdpex.auditspool), committed by the audit writer at least every
    # audit_spool_flush_s, nothing lost on a crash; it costs CPU per request on the entry path
    # (docs/BENCHMARKS.md, "Control plane").
    audit_order_entry: bool = False
    audit_spool_flush_s: float = 0.05

    # XDP
    xdp_tool: Path = Field(REPO_ROOT / "build/xdp/xdpex-xdp")
    xdp_pin_dir: Path = Field(Path("/sys/fs/bpf/xdpex"))
    udp_mode: bool = False  # declared kernel-UDP mode: readiness does not require XDP

    # persister / publisher
    redis_url: str = ""  # empty = no Redis publisher
    # high availability: "JOURNAL_DIR=CTL_SOCKET,..." of a gateway pair; the persister and the
    # publisher then follow the leader's journal (xdpex.hafollow)
    ha_nodes: str = ""
    redis_stream_prefix: str = "xdpex"
    persist_batch: int = 5000
    persist_poll_s: float = 0.05

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None

    def check_tls(self) -> None:
        """Refuse a TLS configuration that cannot work, naming the setting and the file."""
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError(
                "XDPEX_TLS_CERTFILE and XDPEX_TLS_KEYFILE go together: set both or neither"
            )
        if self.tls_client_ca is not None and self.tls_certfile is None:
            raise ValueError("XDPEX_TLS_CLIENT_CA needs XDPEX_TLS_CERTFILE and XDPEX_TLS_KEYFILE")
        if self.tls_certfile is None or self.tls_keyfile is None:
            return
        import ssl

        for name, f in (
            ("XDPEX_TLS_CERTFILE", self.tls_certfile),
            ("XDPEX_TLS_KEYFILE", self.tls_keyfile),
            ("XDPEX_TLS_CLIENT_CA", self.tls_client_ca),
        ):
            if f is not None and not os.access(f, os.R_OK):
                raise ValueError(f"{name} {f}: cannot be read")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(self.tls_certfile, self.tls_keyfile)
        except ssl.SSLError as e:
            raise ValueError(
                f"XDPEX_TLS_CERTFILE {self.tls_certfile} / XDPEX_TLS_KEYFILE {self.tls_keyfile}: "
                f"{e.reason or e} (not a PEM certificate and its private key?)"
            ) from e
        if self.tls_client_ca is not None:
            try:
                ctx.load_verify_locations(self.tls_client_ca)
            except ssl.SSLError as e:
                raise ValueError(
                    f"XDPEX_TLS_CLIENT_CA {self.tls_client_ca}: {e.reason or e}"
                ) from e

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.state_dir / 'xdpex.db'}"

    @property
    def operator_token_file(self) -> Path:
        return self.state_dir / "operator.token"


def load_settings(**overrides: object) -> Settings:
    """Settings from init overrides, the environment and the env file (in that order)."""
    return Settings(_env_file=_env_file(), **overrides)  # type: ignore[call-arg,arg-type]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
