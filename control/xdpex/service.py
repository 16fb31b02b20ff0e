"""The control plane's service layer: what REST (xdpex.api) and gRPC (xdpex.grpc_api) both call.

`ControlPlane` holds the settings, the database, the dataplane control-socket client and the
control plane's own order-entry session(s) on the dataplane's local socket. Every function here
takes the caller (`Principal`), checks its role, does the work and raises the errors of
xdpex.errors, which each front end maps to its status codes. Configuration changes are applied
to the dataplane first (which validates and journals them) and recorded in the database after, so
the database never claims something the gateway refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from xdpex_traffic import codec as c

from . import auth
from .auth import Principal
from .config import Settings
from .dataplane import ControlClient
from .db import make_engine, migrate, session_factory
from .errors import Conflict, InvalidArgument, NotFound, Unavailable
from .metrics import Metrics
from .models import ApiToken, AuditRecord, ConfigItem, Execution, GwSession, Order, Symbol
from .orderentry import OrderEntrySession, OrderResult

log = logging.getLogger("xdpex.service")

SIDES = {"buy": int(c.Side.BUY), "sell": int(c.Side.SELL)}
ORD_TYPES = {
    "limit": int(c.OrdType.LIMIT),
    "market": int(c.OrdType.MARKET),
    "post_only": int(c.OrdType.POST_ONLY),
}
TIFS = {"day": int(c.Tif.DAY), "gtc": int(c.Tif.GTC), "ioc": int(c.Tif.IOC), "fok": int(c.Tif.FOK)}
SIDE_NAMES = {v: k for k, v in SIDES.items()}
ORD_TYPE_NAMES = {v: k for k, v in ORD_TYPES.items()}
TIF_NAMES = {v: k for k, v in TIFS.items()}
# Engine reject reasons that are about one field of the order.
REJECT_FIELD = {
    c.RejectReason.UNKNOWN_SYMBOL: "symbol_id",
    c.RejectReason.OFF_TICK: "price",
    c.RejectReason.OFF_LOT: "qty",
    c.RejectReason.OUTSIDE_BAND: "price",
    c.RejectReason.BAD_QUANTITY: "qty",
    c.RejectReason.BAD_PRICE: "price",
    c.RejectReason.BAD_SIDE: "side",
    c.RejectReason.BAD_ORDER_TYPE: "type",
    c.RejectReason.BAD_TIF: "tif",
    c.RejectReason.DUPLICATE_ID: "cl_ord_id",
}
U32 = (1 << 32) - 1


def reject_name(reason: int) -> str:
    try:
        return c.RejectReason(reason).name
    except ValueError:
        return str(reason)


def cancel_name(reason: int) -> str:
    try:
        return c.CancelReason(reason).name
    except ValueError:
        return str(reason)


@dataclass
class OrderSpec:
    """A validated order request (names as in the API)."""

    symbol_id: int
    side: str
    type: str
    tif: str
    qty: int
    price: int = 0

    def to_msg(self) -> c.NewOrder:
        for f, v, table in (
            ("side", self.side, SIDES),
            ("type", self.type, ORD_TYPES),
            ("tif", self.tif, TIFS),
        ):
            if v not in table:
                raise InvalidArgument(f, f"{v!r} is not one of {', '.join(table)}")
        if not 1 <= self.symbol_id <= U32:
            raise InvalidArgument("symbol_id", f"{self.symbol_id} is outside 1..{U32}")
        if not 1 <= self.qty <= U32:
            raise InvalidArgument("qty", f"{self.qty} is outside 1..{U32}")
        if self.type != "market" and self.price <= 0:
            raise InvalidArgument("price", "must be a positive number of ticks for this type")
        if not -(1 << 63) <= self.price < (1 << 63):
            raise InvalidArgument("price", "does not fit a signed 64-bit number of ticks")
        return c.NewOrder(
            side=SIDES[self.side],
            ord_type=ORD_TYPES[self.type],
            tif=TIFS[self.tif],
            symbol_id=self.symbol_id,
            price=self.price,
            qty=self.qty,
        )


def result_dict(r: OrderResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "order_id": r.order_id or None,
        "session_id": r.session_id,
        "cl_ord_id": r.cl_ord_id,
        "symbol_id": r.symbol_id,
        "side": SIDE_NAMES.get(r.side, str(r.side)),
        "type": ORD_TYPE_NAMES.get(r.ord_type, str(r.ord_type)),
        "tif": TIF_NAMES.get(r.tif, str(r.tif)),
        "price": r.price,
        "qty": r.qty,
        "filled": r.filled,
        "leaves": r.leaves,
        "status": r.status,
        "reason": None,
        "field": None,
        "fills": r.fills,
    }
    if r.status == "rejected":
        out["reason"] = reject_name(r.reason)
        out["field"] = REJECT_FIELD.get(r.reason)  # type: ignore[call-overload]
    elif r.status == "cancelled":
        out["reason"] = cancel_name(r.reason)
    return out


def order_row_dict(o: Order) -> dict[str, Any]:
    return {
        "order_id": o.order_id,
        "session_id": o.session_id,
        "cl_ord_id": o.cl_ord_id,
        "symbol_id": o.symbol_id,
        "side": SIDE_NAMES.get(o.side, str(o.side)),
        "type": ORD_TYPE_NAMES.get(o.ord_type, str(o.ord_type)),
        "tif": TIF_NAMES.get(o.tif, str(o.tif)),
        "price": o.price,
        "qty": o.qty,
        "filled": o.filled,
        "leaves": o.leaves,
        "status": o.status,
        "reason": (
            reject_name(o.reason)
            if o.status == "rejected"
            else cancel_name(o.reason)
            if o.status == "cancelled"
            else None
        ),
        "journal_seq": o.journal_seq,
        "ts_ns": o.ts_ns,
        "queue": o.queue,
    }


def execution_dict(e: Execution) -> dict[str, Any]:
    return {
        "exec_id": e.exec_id,
        "order_id": e.order_id,
        "session_id": e.session_id,
        "cl_ord_id": e.cl_ord_id,
        "symbol_id": e.symbol_id,
        "side": SIDE_NAMES.get(e.side, str(e.side)),
        "liquidity": "maker" if e.liquidity == 1 else "taker",
        "price": e.price,
        "qty": e.qty,
        "leaves": e.leaves,
        "journal_seq": e.journal_seq,
        "ts_ns": e.ts_ns,
        "queue": e.queue,
    }


class ControlPlane:
    """Everything a request needs; one per process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = make_engine(settings.effective_database_url, settings.db_schema)
        self.db = session_factory(self.engine)
        self.ctl = ControlClient(settings.control_socket, settings.dataplane_timeout_s)
        self.oe: OrderEntrySession | None = None
        self._oe_lock = threading.Lock()
        self.entered: dict[int, OrderResult] = {}  # order_id -> result, orders entered here
        self.token_file: str | None = None
        self.metrics = Metrics(self)
        self.grpc_port = 0
        self._auth_cache: dict[
            str, tuple[Principal, float]
        ] = {}  # bound port once xdpex.grpc_api.serve ran

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

    def close(self) -> None:
        if self.oe is not None:
            self.oe.close()
            self.oe = None
        self.ctl.close()
        self.engine.dispose()

    # -- auth and audit -----------------------------------------------------------------------
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
        self._auth_cache[token] = (who, now + 1.0)  # type: ignore[index]
        return who

    def audit(
        self, who: Principal | None, action: str, target: str, detail: Any, result: str
    ) -> None:
        try:
            body = detail if isinstance(detail, str) else json.dumps(detail, default=str)
            with self.db.begin() as db:
                db.add(
                    AuditRecord(
                        actor=who.name if who else "anonymous",
                        role=who.role if who else "-",
                        action=action[:128],
                        target=target[:256],
                        detail=body[:4000],
                        result=result[:256],
                    )
                )
        except Exception:  # noqa: BLE001 - an audit failure must be visible, not fatal
            log.exception("audit record not written: %s %s %s", action, target, result)

    def list_audit(self, who: Principal, limit: int) -> list[dict[str, Any]]:
        who.require("operator")
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
    def create_token(self, who: Principal, name: str, role: str) -> dict[str, Any]:
        who.require("operator")
        if role not in auth.RANK:
            raise InvalidArgument("role", f"{role!r} is not one of viewer, trader, operator")
        with self.db.begin() as db:
            tok = auth.create_token(db, name, role)
            row = db.scalar(select(ApiToken).where(ApiToken.token_hash == auth.hash_token(tok)))
            assert row is not None
            return {"id": row.id, "name": name, "role": role, "token": tok}

    def list_tokens(self, who: Principal) -> list[dict[str, Any]]:
        who.require("operator")
        with self.db() as db:
            return [
                {
                    "id": t.id,
                    "name": t.name,
                    "role": t.role,
                    "created_at": t.created_at.isoformat(),
                    "revoked": t.revoked_at is not None,
                }
                for t in db.scalars(select(ApiToken).order_by(ApiToken.id))
            ]

    def revoke_token(self, who: Principal, token_id: int) -> None:
        who.require("operator")
        with self.db.begin() as db:
            if not auth.revoke_token(db, token_id):
                raise NotFound(f"token {token_id} does not exist")
        self._auth_cache.clear()

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
        ok = (
            checks["database"] == "ok"
            and checks["dataplane"] == "ok"
            and not checks["xdp"].startswith(("not attached", "unknown"))
        )
        return ok, checks

    # -- symbols ------------------------------------------------------------------------------
    def list_symbols(self, who: Principal) -> list[dict[str, Any]]:
        who.require("viewer")
        with self.db() as db:
            return [self._sym(s) for s in db.scalars(select(Symbol).order_by(Symbol.symbol_id))]

    def get_symbol(self, who: Principal, symbol_id: int) -> dict[str, Any]:
        who.require("viewer")
        with self.db() as db:
            s = db.get(Symbol, symbol_id)
            if s is None:
                raise NotFound(f"symbol {symbol_id} is not configured through the control plane")
            return self._sym(s)

    @staticmethod
    def _sym(s: Symbol) -> dict[str, Any]:
        return {
            "symbol_id": s.symbol_id,
            "name": s.name,
            "tick": s.tick,
            "lot": s.lot,
            "band_low": s.band_low,
            "band_high": s.band_high,
            "max_qty": s.max_qty,
            "queue": s.queue,
            "halted": s.halted,
        }

    def create_symbol(self, who: Principal, spec: dict[str, Any]) -> dict[str, Any]:
        who.require("operator")
        if spec["band_low"] > spec["band_high"]:
            raise InvalidArgument("band_low", "must not exceed band_high")
        with self.db() as db:
            if db.get(Symbol, spec["symbol_id"]) is not None:
                raise Conflict(f"symbol {spec['symbol_id']} already exists")
            if db.scalar(select(Symbol).where(Symbol.name == spec["name"])) is not None:
                raise Conflict(f"symbol name {spec['name']!r} is already used")
        self.ctl.apply(
            {
                "symbols": [
                    {
                        "id": spec["symbol_id"],
                        "name": spec["name"],
                        "tick": spec["tick"],
                        "lot": spec["lot"],
                        "band": [spec["band_low"], spec["band_high"]],
                        "max_qty": spec["max_qty"],
                        "queue": spec["queue"],
                        "halted": spec["halted"],
                    }
                ]
            }
        )
        with self.db.begin() as db:
            s = Symbol(**spec)
            db.add(s)
        return self._sym(s)

    def set_halted(self, who: Principal, symbol_id: int, halted: bool) -> dict[str, Any]:
        who.require("operator")
        if symbol_id:
            self.get_symbol(who, symbol_id)
        (self.ctl.halt if halted else self.ctl.resume)(symbol_id)
        with self.db.begin() as db:
            q = (
                select(Symbol)
                if symbol_id == 0
                else select(Symbol).where(Symbol.symbol_id == symbol_id)
            )
            for s in db.scalars(q):
                s.halted = halted
        return {"symbol_id": symbol_id, "halted": halted}

    # -- sessions -----------------------------------------------------------------------------
    def _next_session_id(self, db: Session) -> int:
        used = {int(x) for x in db.scalars(select(GwSession.session_id))}
        try:
            used |= {int(s["id"]) for s in self.ctl.sessions()}
        except Unavailable:
            raise
        return max(used, default=0) + 1

    def create_session(
        self, who: Principal, spec: dict[str, Any], internal: bool = False
    ) -> dict[str, Any]:
        if not internal:
            who.require("operator")
        secret = secrets.token_bytes(32)
        with self.db() as db:
            sid = self._next_session_id(db)
        self.ctl.apply(
            {
                "sessions": [
                    {
                        "id": sid,
                        "secret": secret.hex(),
                        "stp": spec.get("stp", "none"),
                        "cancel_on_disconnect": spec.get("cancel_on_disconnect", True),
                        "enabled": True,
                        "queue": spec.get("queue", 0),
                        "limits": {"rate": spec.get("rate", 0), "burst": spec.get("burst", 0)},
                    }
                ]
            }
        )
        with self.db.begin() as db:
            db.add(
                GwSession(
                    session_id=sid,
                    name=spec["name"],
                    secret_fingerprint=hashlib.sha256(secret).hexdigest()[:16],
                    created_by=who.name,
                    internal=internal,
                )
            )
        return {
            "session_id": sid,
            "name": spec["name"],
            "secret": secret.hex(),
            "queue": spec.get("queue", 0),
        }

    def list_sessions(self, who: Principal) -> list[dict[str, Any]]:
        who.require("viewer")
        try:
            live = {int(s["id"]): s for s in self.ctl.sessions()}
            reachable = True
        except Unavailable:
            live, reachable = {}, False
        with self.db() as db:
            rows = {r.session_id: r for r in db.scalars(select(GwSession))}
        out = []
        for sid in sorted(set(rows) | set(live)):
            r, lv = rows.get(sid), live.get(sid, {})
            out.append(
                {
                    "session_id": sid,
                    "name": r.name if r else None,
                    "internal": bool(r and r.internal),
                    "disabled": bool(r and r.disabled),
                    "state": lv.get("state", "unknown" if not reachable else "not configured"),
                    "bound": lv.get("bound"),
                    "next_in": lv.get("next_in"),
                    "next_out": lv.get("next_out"),
                    "queue": lv.get("queue"),
                }
            )
        return out

    def get_session(self, who: Principal, session_id: int) -> dict[str, Any]:
        for s in self.list_sessions(who):
            if s["session_id"] == session_id:
                return s
        raise NotFound(f"session {session_id} does not exist")

    def disconnect_session(self, who: Principal, session_id: int) -> dict[str, Any]:
        who.require("operator")
        self.get_session(who, session_id)
        self.ctl.logout(session_id)
        return {"session_id": session_id, "disconnected": True}

    def set_session_enabled(self, who: Principal, session_id: int, enabled: bool) -> dict[str, Any]:
        who.require("operator")
        self.get_session(who, session_id)
        self.ctl.apply({"sessions": [{"id": session_id, "enabled": enabled}]})
        with self.db.begin() as db:
            r = db.get(GwSession, session_id)
            if r is not None:
                r.disabled = not enabled
        return {"session_id": session_id, "enabled": enabled}

    # -- allowlist and rate -------------------------------------------------------------------
    def _item(self, key: str, default: Any) -> Any:
        with self.db() as db:
            it = db.get(ConfigItem, key)
            return json.loads(it.value) if it else default

    def _set_item(self, key: str, value: Any) -> None:
        with self.db.begin() as db:
            it = db.get(ConfigItem, key)
            if it is None:
                db.add(ConfigItem(key=key, value=json.dumps(value)))
            else:
                it.value = json.dumps(value)

    def get_allowlist(self, who: Principal) -> list[str]:
        who.require("viewer")
        return list(self._item("allowlist", []))

    def add_allow(self, who: Principal, prefix: str) -> list[str]:
        who.require("operator")
        cur = self.get_allowlist(who)
        if prefix in cur:
            raise Conflict(f"prefix {prefix} is already in the allowlist")
        new = sorted(cur + [prefix])
        self.ctl.apply({"allowlist": new})
        self._set_item("allowlist", new)
        return new

    def remove_allow(self, who: Principal, prefix: str) -> list[str]:
        who.require("operator")
        cur = self.get_allowlist(who)
        if prefix not in cur:
            raise NotFound(f"prefix {prefix} is not in the allowlist")
        new = [p for p in cur if p != prefix]
        self.ctl.apply({"allowlist": new})
        self._set_item("allowlist", new)
        return new

    def get_rate(self, who: Principal) -> dict[str, int]:
        who.require("viewer")
        return dict(self._item("rate", {"pps": 0, "burst": 0}))

    def set_rate(self, who: Principal, pps: int, burst: int) -> dict[str, int]:
        who.require("operator")
        if pps and not burst:
            raise InvalidArgument("burst", "must be at least 1 when pps is set")
        self.ctl.apply({"rate": {"pps": pps, "burst": burst}})
        self._set_item("rate", {"pps": pps, "burst": burst})
        return {"pps": pps, "burst": burst}

    # -- books and dataplane ------------------------------------------------------------------
    def book(self, who: Principal, symbol_id: int, depth: int) -> dict[str, Any]:
        who.require("viewer")
        b = self.ctl.book(symbol_id, depth)
        lv = lambda xs: [{"price": p, "qty": q, "orders": n} for p, q, n in xs]  # noqa: E731
        return {
            "symbol_id": symbol_id,
            "bids": lv(b.get("bids", [])),
            "asks": lv(b.get("asks", [])),
        }

    def dataplane_status(self, who: Principal) -> dict[str, Any]:
        who.require("viewer")
        st = self.ctl.stats()
        h = self.ctl.state_hash()
        return {
            k: st.get(k)
            for k in (
                "mode",
                "attach_mode",
                "bind_mode",
                "durability",
                "poll",
                "uptime_s",
                "queues",
                "engine",
            )
        } | {"state_hash": h.get("state_hash")}

    # -- order entry --------------------------------------------------------------------------
    def _session(self) -> OrderEntrySession:
        with self._oe_lock:
            if self.oe is not None:
                try:
                    self.oe.ensure_logged_in()
                    return self.oe
                except Unavailable:
                    self.oe.close()
                    self.oe = None
            s = self.settings
            sys_who = Principal("control-plane", "operator")
            with self.db() as db:
                row = db.scalar(
                    select(GwSession).where(
                        GwSession.internal.is_(True), GwSession.name == s.oe_session_name
                    )
                )
            secret = secrets.token_bytes(32)
            if row is None:
                made = self.create_session(
                    sys_who, {"name": s.oe_session_name, "cancel_on_disconnect": False}, True
                )
                sid, secret = made["session_id"], bytes.fromhex(made["secret"])
            else:  # a new secret every start: the old one was never stored
                sid = row.session_id
                self.ctl.apply({"sessions": [{"id": sid, "secret": secret.hex(), "enabled": True}]})
            oe = OrderEntrySession(
                s.order_socket, s.state_dir / f"oe-{sid}.sock", sid, secret, s.dataplane_timeout_s
            )
            oe.open()
            try:
                oe.login()
            except BaseException:
                oe.close()
                raise
            self.oe = oe
            return oe

    def submit_orders(
        self, who: Principal, specs: list[OrderSpec], api: str = "rest"
    ) -> list[dict[str, Any]]:
        """Validate and enter orders; one acknowledgement dict per order, in order."""
        who.require("trader")
        if not specs:
            raise InvalidArgument("orders", "at least one order is required")
        msgs = []
        for i, sp in enumerate(specs):
            try:
                msgs.append(sp.to_msg())
            except InvalidArgument as e:
                if len(specs) == 1:
                    raise
                raise InvalidArgument(f"orders[{i}].{e.field}", e.message) from None
        return [result_dict(r) for r in self.enter(who, msgs, api)]

    def enter(self, who: Principal, msgs: list[c.NewOrder], api: str) -> list[OrderResult]:
        """Enter validated NewOrders on the control plane's session (REST and gRPC)."""
        who.require("trader")
        if not msgs:
            raise InvalidArgument("orders", "at least one order is required")
        oe = self._session()
        t0 = time.perf_counter()
        results = oe.submit(msgs)
        self.metrics.order_latency.labels(api).observe(time.perf_counter() - t0)
        acc = 0
        entered = self.entered
        for r in results:
            if r.order_id:
                entered[r.order_id] = r
                acc += 1
        self.metrics.orders.labels(api, "accepted").inc(acc)
        if acc < len(results):
            self.metrics.orders.labels(api, "rejected").inc(len(results) - acc)
        if len(entered) > 200_000:
            for k in list(entered)[:100_000]:
                entered.pop(k, None)  # another thread may trim at the same time
        return results

    def cancel_order(self, who: Principal, order_id: int) -> dict[str, Any]:
        who.require("trader")
        r = self.entered.get(order_id)
        if r is not None:
            sid, sym, cl = r.session_id, r.symbol_id, r.cl_ord_id
        else:
            with self.db() as db:
                o = db.scalar(select(Order).where(Order.order_id == order_id))
                if o is None:
                    raise NotFound(f"order {order_id} is not known")
                sid, sym, cl = o.session_id, o.symbol_id, o.cl_ord_id
        oe = self._session()
        if sid != oe.session_id:
            raise Conflict(
                f"order {order_id} belongs to session {sid}, which the control plane does not "
                "hold; cancel it from that session, or disconnect the session "
                "(cancel-on-disconnect)"
            )
        res = oe.cancel(sym, cl)
        if res.status == "rejected":
            raise Conflict(f"order {order_id} cannot be cancelled: {reject_name(res.reason)}")
        if r is not None:
            r.status, r.leaves = "cancelled", 0
        return {"order_id": order_id, "status": "cancelled", "cancelled_qty": res.qty}

    def get_order(self, who: Principal, order_id: int) -> dict[str, Any]:
        who.require("viewer")
        with self.db() as db:
            o = db.scalar(select(Order).where(Order.order_id == order_id))
            if o is not None:
                return order_row_dict(o)
        r = self.entered.get(order_id)
        if r is None:
            raise NotFound(f"order {order_id} is not known")
        return result_dict(r) | {"journal_seq": None, "ts_ns": None, "queue": None}

    def query_orders(
        self,
        who: Principal,
        *,
        session_id: int | None = None,
        symbol_id: int | None = None,
        status: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[dict[str, Any]]:
        who.require("viewer")
        q = select(Order).where(Order.id > after_id).order_by(Order.id).limit(limit)
        if session_id is not None:
            q = q.where(Order.session_id == session_id)
        if symbol_id is not None:
            q = q.where(Order.symbol_id == symbol_id)
        if status is not None:
            q = q.where(Order.status == status)
        if since_ns is not None:
            q = q.where(Order.ts_ns >= since_ns)
        if until_ns is not None:
            q = q.where(Order.ts_ns < until_ns)
        with self.db() as db:
            return [order_row_dict(o) | {"cursor": o.id} for o in db.scalars(q)]

    def query_executions(
        self,
        who: Principal,
        *,
        session_id: int | None = None,
        symbol_id: int | None = None,
        order_id: int | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[dict[str, Any]]:
        who.require("viewer")
        q = select(Execution).where(Execution.id > after_id).order_by(Execution.id).limit(limit)
        if session_id is not None:
            q = q.where(Execution.session_id == session_id)
        if symbol_id is not None:
            q = q.where(Execution.symbol_id == symbol_id)
        if order_id is not None:
            q = q.where(Execution.order_id == order_id)
        if since_ns is not None:
            q = q.where(Execution.ts_ns >= since_ns)
        if until_ns is not None:
            q = q.where(Execution.ts_ns < until_ns)
        with self.db() as db:
            return [execution_dict(e) | {"cursor": e.id} for e in db.scalars(q)]

    def counts(self) -> dict[str, int]:
        with self.db() as db:
            return {
                "orders": db.scalar(select(func.count()).select_from(Order)) or 0,
                "executions": db.scalar(select(func.count()).select_from(Execution)) or 0,
            }
