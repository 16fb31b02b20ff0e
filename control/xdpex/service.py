"""The control plane's service layer: what REST (xdpex.api) and gRPC (xdpex.grpc_api) both call.

`ControlPlane` holds the settings, the database, the dataplane control-socket client and the
control plane's own order-entry session on the dataplane's local socket. Every method takes the
caller (`Principal`), checks its role, does the work and raises the errors of xdpex.errors, which
each front end maps to its status codes. This file has the core (life cycle, tokens, audit,
readiness); configuration is in xdpex.configure, order entry and queries in xdpex.orders.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text

from . import auth
from .auditlog import AuditLog
from .auth import AuthError, Principal
from .config import Settings
from .configure import ConfigService
from .dataplane import ControlClient
from .db import make_engine, migrate, session_factory
from .errors import Conflict, InvalidArgument, NotFound
from .metrics import Metrics
from .models import ApiToken, AuditRecord, utcnow
from .orderentry import OrderEntrySession
from .orders import (
    ORD_TYPES,
    REJECT_FIELD,
    SIDES,
    TIFS,
    OrderService,
    OrderSpec,
    cancel_name,
    reject_name,
    result_dict,
)
from .ratelimit import RateLimitCollector, TokenExpiryCollector, TokenRateLimiter
from .reconcile import ReconcileCollector, Reconciler

__all__ = [
    "ControlPlane",
    "OrderSpec",
    "ORD_TYPES",
    "REJECT_FIELD",
    "SIDES",
    "TIFS",
    "cancel_name",
    "reject_name",
    "result_dict",
]

log = logging.getLogger("xdpex.service")


class ControlPlane(ConfigService, OrderService):
    """Everything a request needs; one per process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = make_engine(settings.effective_database_url, settings.db_schema)
        self.db = session_factory(self.engine)
        self.auditlog = AuditLog(
            self.engine,
            spool_dir=settings.state_dir / "audit-spool",
            spool_flush_s=settings.audit_spool_flush_s,
        )
        self.ctl = ControlClient(settings.control_socket, settings.dataplane_timeout_s)
        self.oe: OrderEntrySession | None = None
        self._oe_lock = threading.Lock()
        # orders entered here: order_id -> cl_ord_id << 32 | symbol_id (for cancel by order id)
        self.entered: dict[int, int] = {}
        self._api_metrics: dict[str, tuple[Any, Any, Any]] = {}
        self.token_file: str | None = None
        self.metrics = Metrics(self)
        self.grpc_port = 0  # the bound port once xdpex.grpc_api.serve ran
        self._auth_cache: dict[str, tuple[Principal, float]] = {}  # token -> caller, expiry
        self.config_lock = threading.RLock()  # configuration changes vs the reconciliation
        self.reconciler = Reconciler(self, settings.reconcile_interval_s)
        self.metrics.registry.register(ReconcileCollector(self.reconciler))
        self.ratelimit = TokenRateLimiter(settings.api_token_rate, settings.api_token_burst)
        self.metrics.registry.register(RateLimitCollector(self.ratelimit))
        self.metrics.registry.register(TokenExpiryCollector(self))

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        s.state_dir.mkdir(parents=True, exist_ok=True)
        if s.migrate_on_start:
            migrate(self.engine)
        with self.db.begin() as db:
            self.token_file = auth.ensure_operator_token(
                db, s.operator_token, s.operator_token_file
            )
        self.auditlog.start()
        self.reconciler.start()

    def close(self) -> None:
        self.reconciler.close()
        if self.oe is not None:
            self.oe.close()
            self.oe = None
        self.ctl.close()
        self.auditlog.close()
        self.engine.dispose()

    # -- auth and audit -----------------------------------------------------------------------
    def cached_principal(self, token: str | None) -> Principal | None:
        """The caller of a token verified less than a second ago, without touching the database
        (None: not cached, call `authenticate`)."""
        hit = self._auth_cache.get(token) if token else None
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return None

    def authenticate(self, token: str | None) -> Principal:
        """The caller of a token; answers are cached for a second (a revocation through this
        process clears the cache at once)."""
        now = time.monotonic()
        hit = self._auth_cache.get(token) if token else None
        if hit is not None and hit[1] > now:
            return hit[0]
        with self.db() as db:
            who = auth.authenticate(db, token)
        if len(self._auth_cache) > 10000:
            self._auth_cache.clear()
        until = now + 1.0
        if who.expires is not None:  # never answered from the cache past its expiry
            until = min(until, now + who.expires - time.time())
        self._auth_cache[token] = (who, until)  # type: ignore[index]
        return who

    def check_rate(self, who: Principal) -> None:
        """Count one request of `who` against its token's rate (raises RateLimited)."""
        self.ratelimit.check(who)

    def try_authenticate(self, token: str | None) -> Principal | None:
        """`authenticate`, or None for a missing, unknown or revoked token (for audit records;
        the request itself is refused by its route)."""
        try:
            return self.authenticate(token)
        except AuthError:
            return None

    def audit(
        self, who: Principal | None, action: str, target: str, detail: Any, result: str
    ) -> None:
        """A complete audit record for an attempt that changed nothing (or whose change is
        already recorded through `audit_begin`); waits until it is committed."""
        body = detail if isinstance(detail, str) else json.dumps(detail, default=str)
        self.auditlog.record(who, action, target, body, result)

    def audit_begin(self, who: Principal | None, action: str, target: str, detail: Any) -> int:
        """Record a change before it is applied (result `pending`); raises Unavailable when the
        record cannot be written, and the change must then not be applied. See xdpex.auditlog."""
        body = detail if isinstance(detail, str) else json.dumps(detail, default=str)
        return self.auditlog.begin(who, action, target, body)

    def audit_finish(self, record_id: int, result: str, action: str | None = None) -> None:
        self.auditlog.finish(record_id, result, action)

    def list_audit(self, who: Principal, limit: int) -> list[dict[str, Any]]:
        who.require("operator")
        self.auditlog.flush()  # results of requests answered a moment ago
        with self.db() as db:
            rows = db.scalars(select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit))
            return [
                {
                    "id": r.id,
                    "at": r.at.isoformat(),
                    "actor": r.actor,
                    "role": r.role,
                    "action": r.action,
                    "target": r.target,
                    "detail": r.detail,
                    "result": r.result,
                }
                for r in rows
            ]

    # -- tokens -------------------------------------------------------------------------------
    @staticmethod
    def _token_info(t: ApiToken) -> dict[str, Any]:
        exp = auth.aware(t.expires_at)
        return {
            "id": t.id,
            "name": t.name,
            "role": t.role,
            "created_at": auth.aware(t.created_at).isoformat(),  # type: ignore[union-attr]
            "revoked": t.revoked_at is not None,
            "expires_at": exp.isoformat() if exp is not None else None,
            "expired": exp is not None and exp <= utcnow(),
            "rotated_to": t.rotated_to,
            "rate": t.rate,
            "burst": t.burst,
        }

    def create_token(
        self,
        who: Principal,
        name: str,
        role: str,
        expires_in_s: int | None = None,
        rate: int | None = None,
        burst: int | None = None,
    ) -> dict[str, Any]:
        who.require("operator")
        if role not in auth.RANK:
            raise InvalidArgument("role", f"{role!r} is not one of viewer, trader, operator")
        ttl = expires_in_s if expires_in_s is not None else self.settings.token_default_ttl_s
        exp = utcnow() + timedelta(seconds=ttl) if ttl else None
        with self.db.begin() as db:
            tok = auth.create_token(db, name, role, expires_at=exp, rate=rate, burst=burst)
            row = db.scalar(select(ApiToken).where(ApiToken.token_hash == auth.hash_token(tok)))
            assert row is not None
            return self._token_info(row) | {"token": tok}

    def list_tokens(self, who: Principal) -> list[dict[str, Any]]:
        who.require("operator")
        with self.db() as db:
            return [self._token_info(t) for t in db.scalars(select(ApiToken).order_by(ApiToken.id))]

    def revoke_token(self, who: Principal, token_id: int) -> None:
        who.require("operator")
        if who.token_id == token_id:
            raise Conflict(
                f"token {token_id} is the one making this request: a token cannot revoke itself "
                "(revoke it with another operator token, or rotate it)"
            )
        with self.db.begin() as db:
            self._not_configured(db, token_id, "revoked")
            if not auth.revoke_token(db, token_id):
                raise NotFound(f"token {token_id} does not exist")
        self._auth_cache.clear()

    def _not_configured(self, db: Any, token_id: int, what: str) -> None:
        """The token of XDPEX_OPERATOR_TOKEN belongs to the configuration, not to the API."""
        conf = self.settings.operator_token
        row = db.get(ApiToken, token_id)
        if conf and row is not None and row.token_hash == auth.hash_token(conf):
            raise Conflict(
                f"token {token_id} is XDPEX_OPERATOR_TOKEN of the configuration: it cannot be "
                f"{what} through the API (change the configuration to replace it)"
            )

    def rotate_token(self, who: Principal, token_id: int, grace_s: float) -> dict[str, Any]:
        """A new secret for token `token_id` (a successor token); the old one keeps working for
        `grace_s`. An operator may rotate any token, any token itself."""
        if who.token_id != token_id:
            who.require("operator")
        with self.db.begin() as db:
            self._not_configured(db, token_id, "rotated")
            try:
                got = auth.rotate_token(db, token_id, grace_s)
            except ValueError as e:
                raise Conflict(str(e)) from e
            if got is None:
                raise NotFound(f"token {token_id} does not exist")
            new, secret = got
            old = db.get(ApiToken, token_id)
            assert old is not None
            out = self._token_info(new) | {"token": secret, "replaces": self._token_info(old)}
        self._auth_cache.clear()
        return out

    # -- health -------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as e:  # noqa: BLE001 - any failure means not ready
            checks["database"] = f"unreachable: {type(e).__name__}: {str(e).splitlines()[0]}"
        try:
            st = self.ctl.stats()
            checks["dataplane"] = "ok"
            mode, attach = st.get("mode"), st.get("attach_mode")
            if mode == "afxdp" and attach in ("native", "generic"):
                checks["xdp"] = f"attached ({attach})"
            elif mode == "dpdk":
                port = st.get("dpdk") or {}
                checks["xdp"] = (
                    f"not used: DPDK port {port.get('name')} ({st.get('bind_mode')}) with the "
                    "same checks in user space"
                )
            elif mode == "udp" and attach in ("native", "generic"):
                checks["xdp"] = f"attached ({attach}) as the filter in front of the UDP socket"
            elif mode == "udp" and self.settings.udp_mode:
                checks["xdp"] = "not used: kernel-UDP mode declared (XDPEX_UDP_MODE)"
            elif mode == "udp":
                checks["xdp"] = (
                    "not attached: dataplane runs in kernel-UDP mode but XDPEX_UDP_MODE is not set"
                )
            else:
                checks["xdp"] = f"not attached (mode {mode}, attach_mode {attach})"
        except Exception as e:  # noqa: BLE001
            checks["dataplane"] = f"unreachable: {e}"
            checks["xdp"] = "unknown: dataplane unreachable"
        if checks["database"] == "ok" and checks["dataplane"] == "ok":
            checks["configuration"] = self.reconciler.latest().summary()
        else:
            checks["configuration"] = "not compared: database or dataplane unreachable"
        ok = (
            checks["database"] == "ok"
            and checks["dataplane"] == "ok"
            and not checks["xdp"].startswith(("not attached", "unknown"))
            and checks["configuration"].startswith("ok")
        )
        return ok, checks
