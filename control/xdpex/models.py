"""SQLAlchemy models of the control plane's database (SQLite by default, PostgreSQL given a URL).

Two kinds of tables live here. Control-plane state written by the API: `api_tokens` (bearer
tokens, stored as SHA-256 of the secret, each with a role), `audit_log` (who changed what, when,
and the outcome), `gw_sessions` (session credentials created through the API; the secret itself is
shown once and never stored), `symbols` and `config_items` (allowlist, rate limit), which the
control plane applies to the dataplane. And the persisted trading record written only by the
persister from the journal: `orders`, `executions`, `session_events` and `persister_position`
(how far the journal has been applied, updated in the same transaction as the rows it covers).
And the drop copy's configuration: `firms`, the sessions of each (`firm_sessions`) and who may
read each firm's drop copy (`firm_readers`).

The schema is created and upgraded by alembic (control/xdpex/migrations); `Base.metadata` is the
single description both alembic and the code use.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("viewer", "trader", "operator")

# 64-bit surrogate keys; SQLite only auto-increments a column declared INTEGER PRIMARY KEY
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ApiToken(Base):
    """A bearer token of the REST/gRPC API: only its SHA-256 is kept."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # refused (401, "expired") from then on; None = never. Rotation sets it on the old token.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    rotated_to: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the successor's id
    # requests/s and burst of this token; None = the configured default (XDPEX_API_TOKEN_RATE)
    rate: Mapped[int | None] = mapped_column(Integer, nullable=True)
    burst: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AuditRecord(Base):
    """One change attempted through the API (or the CLI): who, what, when, result."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(128))  # e.g. "POST /api/v1/symbols"
    target: Mapped[str] = mapped_column(String(256), default="")
    detail: Mapped[str] = mapped_column(Text, default="")  # request body, JSON
    result: Mapped[str] = mapped_column(String(256))  # "ok" or "<status>: <reason>"


class GwSession(Base):
    """Session credentials created through the control plane (the secret is never stored)."""

    __tablename__ = "gw_sessions"
    session_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(64))
    secret_fingerprint: Mapped[str] = mapped_column(String(16))  # first 16 hex of SHA-256
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)  # the control plane's own


class Order(Base):
    """An order as the journal saw it: created by Accepted/Rejected, updated by fills/cancels."""

    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    queue: Mapped[int] = mapped_column(Integer, default=0)  # dataplane queue (journal q<n>)
    order_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: rejected
    session_id: Mapped[int] = mapped_column(BigInteger)
    cl_ord_id: Mapped[int] = mapped_column(BigInteger)
    symbol_id: Mapped[int] = mapped_column(BigInteger)
    side: Mapped[int] = mapped_column(Integer)
    ord_type: Mapped[int] = mapped_column(Integer)
    tif: Mapped[int] = mapped_column(Integer)
    price: Mapped[int] = mapped_column(BigInteger)
    qty: Mapped[int] = mapped_column(BigInteger)
    filled: Mapped[int] = mapped_column(BigInteger, default=0)
    leaves: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))  # new partial filled cancelled rejected
    reason: Mapped[int] = mapped_column(Integer, default=0)  # reject or cancel reason code
    journal_seq: Mapped[int] = mapped_column(BigInteger)  # record that created the row
    ts_ns: Mapped[int] = mapped_column(BigInteger)  # gateway receive time
    updated_seq: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (
        UniqueConstraint("queue", "order_id", name="uq_orders_queue_order"),
        Index("ix_orders_session_cl", "session_id", "cl_ord_id"),
        Index("ix_orders_symbol_status", "symbol_id", "status"),
        Index("ix_orders_ts", "ts_ns"),
    )


class Execution(Base):
    """One side of one trade (a Fill message); exec_id is shared by both sides."""

    __tablename__ = "executions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    queue: Mapped[int] = mapped_column(Integer, default=0)
    exec_id: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[int] = mapped_column(BigInteger)
    session_id: Mapped[int] = mapped_column(BigInteger)
    cl_ord_id: Mapped[int] = mapped_column(BigInteger)
    symbol_id: Mapped[int] = mapped_column(BigInteger)
    side: Mapped[int] = mapped_column(Integer)
    liquidity: Mapped[int] = mapped_column(Integer)
    price: Mapped[int] = mapped_column(BigInteger)
    qty: Mapped[int] = mapped_column(BigInteger)
    leaves: Mapped[int] = mapped_column(BigInteger)
    journal_seq: Mapped[int] = mapped_column(BigInteger)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (
        UniqueConstraint("queue", "exec_id", "order_id", name="uq_executions_exec_order"),
        Index("ix_executions_session", "session_id"),
        Index("ix_executions_symbol_ts", "symbol_id", "ts_ns"),
    )


class SessionEvent(Base):
    """Session activity from the journal: logins, logouts, disconnects."""

    __tablename__ = "session_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    queue: Mapped[int] = mapped_column(Integer, default=0)
    session_id: Mapped[int] = mapped_column(BigInteger, index=True)
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(256), default="")
    journal_seq: Mapped[int] = mapped_column(BigInteger)
    ts_ns: Mapped[int] = mapped_column(BigInteger)


class PersisterPosition(Base):
    """How far the persister has applied the journal; written with the rows it covers."""

    __tablename__ = "persister_position"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # "q<queue>"
    segment: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger)
    journal_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Symbol(Base):
    """A symbol configured through the control plane (applied to xdpexd with `apply`)."""

    __tablename__ = "symbols"
    symbol_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    tick: Mapped[int] = mapped_column(BigInteger)
    lot: Mapped[int] = mapped_column(BigInteger)
    band_low: Mapped[int] = mapped_column(BigInteger)
    band_high: Mapped[int] = mapped_column(BigInteger)
    max_qty: Mapped[int] = mapped_column(BigInteger, default=0)
    queue: Mapped[int] = mapped_column(Integer, default=0)
    halted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConfigItem(Base):
    """Gateway-wide settings the control plane applies as a whole (allowlist, rate), as JSON."""

    __tablename__ = "config_items"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Firm(Base):
    """A firm: a set of sessions whose execution reports it may follow as a drop copy."""

    __tablename__ = "firms"
    firm_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FirmSession(Base):
    """A session of a firm; a session belongs to one firm at most."""

    __tablename__ = "firm_sessions"
    session_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    firm_id: Mapped[int] = mapped_column(Integer, index=True)


class FirmReader(Base):
    """An API token name allowed to read a firm's drop copy (operators may read every firm's)."""

    __tablename__ = "firm_readers"
    firm_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    token_name: Mapped[str] = mapped_column(String(64), primary_key=True)
