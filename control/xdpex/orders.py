"""Order entry and order/execution queries of the service layer (mixed into ControlPlane).

Orders from REST and gRPC are turned into wire NewOrders and entered on the control plane's own
session on xdpexd's order-entry socket (xdpex.orderentry), so they are sequenced, journaled and
matched like any other; queries read what the persister wrote. Also the name tables that map
API words (buy, limit, gtc, ...) to wire codes and back.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from xdpex_proto import codec as c

from .auditlog import AuditLog
from .auth import Principal
from .config import Settings
from .dataplane import ControlClient
from .entrybatch import CHUNK, CHUNK_BITS, Entry, OrderResult, WireOrder
from .errors import Conflict, InvalidArgument, NotFound, Unavailable
from .metrics import Metrics
from .models import Execution, GwSession, Order
from .orderentry import OrderEntrySession

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
MARKET = ORD_TYPES["market"]


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


def reason_name(status: str, reason: int) -> str | None:
    """The name of an order's reason: a reject's or a cancel's, None for any other status."""
    if status == "rejected":
        return reject_name(reason)
    if status == "cancelled":
        return cancel_name(reason)
    return None


@dataclass
class OrderSpec:
    """A validated order request (names as in the API)."""

    symbol_id: int
    side: str
    type: str
    tif: str
    qty: int
    price: int = 0

    def to_wire(self) -> WireOrder:
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
        return (
            SIDES[self.side],
            ORD_TYPES[self.type],
            TIFS[self.tif],
            self.symbol_id,
            self.price,
            self.qty,
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
        "reason": reason_name(r.status, r.reason),
        "field": None,
        "fills": [
            {"exec_id": e, "price": px, "qty": q, "liquidity": liq} for e, px, q, liq in r.fills
        ],
    }
    if r.status == "rejected":
        out["field"] = REJECT_FIELD.get(r.reason)  # type: ignore[call-overload]
    return out


def ack_dicts(e: Entry) -> list[dict[str, Any]]:
    """`result_dict` of every order of an entry, from its columns (the REST answer)."""
    out = []
    sid, fills, st, oid, rsn = e.session_id, e.fills or {}, e.status, e.order_id, e.reason
    filled, leaves = e.filled, e.leaves
    sides, types, tifs = SIDE_NAMES, ORD_TYPE_NAMES, TIF_NAMES
    base = e.chunks.start << CHUNK_BITS
    for i, (side, typ, tif, sym, px, qty) in enumerate(e.orders):
        status = st[i]
        fl = fills.get(i)
        reason = rsn[i]
        field = None
        if status == "rejected":
            rname: str | None = reject_name(reason)
            field = REJECT_FIELD.get(reason)  # type: ignore[call-overload]
        elif status == "cancelled":
            rname = cancel_name(reason)
        else:
            rname = None
        out.append(
            {
                "order_id": oid[i] or None,
                "session_id": sid,
                "cl_ord_id": base + i if i < CHUNK else e.cl_ord_id(i),
                "symbol_id": sym,
                "side": sides.get(side, str(side)),
                "type": types.get(typ, str(typ)),
                "tif": tifs.get(tif, str(tif)),
                "price": px,
                "qty": qty,
                "filled": filled[i],
                "leaves": leaves[i],
                "status": status,
                "reason": rname,
                "field": field,
                "fills": [
                    {"exec_id": x, "price": p, "qty": q, "liquidity": liq} for x, p, q, liq in fl
                ]
                if fl
                else [],
            }
        )
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
        "reason": reason_name(o.status, o.reason),
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


_Row = TypeVar("_Row", Order, Execution)


class OrderService:
    """Order entry and queries; ControlPlane provides the attributes declared here."""

    settings: Settings
    db: sessionmaker[Session]
    ctl: ControlClient
    metrics: Metrics
    oe: OrderEntrySession | None
    _oe_lock: threading.Lock
    entered: dict[int, int]
    _api_metrics: dict[str, tuple[Any, Any, Any]]
    auditlog: AuditLog
    create_session: Callable[..., dict[str, Any]]

    # -- order entry --------------------------------------------------------------------------
    def _session(self) -> OrderEntrySession:
        with self._oe_lock:
            if self.oe is not None:
                try:
                    self.oe.ensure_logged_in()
                    return self.oe
                except Unavailable:
                    if self.oe.failover_s:
                        # High availability: the session logs in again by itself (to the new
                        # primary), with what it has in flight; closing it would fail those.
                        raise
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
                s.order_socket,
                s.state_dir / f"oe-{sid}.sock",
                sid,
                secret,
                s.dataplane_timeout_s,
                failover_s=s.dataplane_failover_s if s.ha_nodes else 0.0,
            )
            oe.pre_send = self.auditlog.spool_flush  # audit records before the orders they record
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
        return ack_dicts(self._enter(self._to_wire(who, specs), api))

    async def submit_orders_async(
        self, who: Principal, specs: list[OrderSpec], api: str = "rest"
    ) -> list[dict[str, Any]]:
        """`submit_orders` for the REST front end: the same validation, session and accounting,
        but the event loop goes on serving other requests while the dataplane answers."""
        return ack_dicts(await self._enter_async(self._to_wire(who, specs), api))

    async def enter_wire_async(
        self,
        who: Principal,
        orders: list[WireOrder],
        api: str,
        audit: tuple[str, str, bytes],
    ) -> Entry:
        """Enter checked wire orders from an event loop (the REST fast path, xdpex.api.
        fastentry), with the request's order-entry audit record (action, target, body) in the
        spool: appended before the orders go out, its result after. The caller answers from
        the entry (`ack_dicts`, or xdpex.fastwire's json_acks)."""
        self._may_enter(who, len(orders))
        if not self.settings.audit_order_entry:  # the journal records order entry
            return await self._enter_async(orders, api)
        action, target, body = audit
        key = self.auditlog.spool_begin(
            who, action, target, body[:4000].decode(errors="replace"), now=False
        )
        try:
            e = await self._enter_async(orders, api)
        except BaseException as exc:
            code = getattr(exc, "http_status", 500)
            self.auditlog.spool_finish(key, f"{code}: {exc}")
            raise
        self.auditlog.spool_finish(key, "ok")
        return e

    async def _enter_async(self, orders: list[WireOrder], api: str) -> Entry:
        oe = self.oe
        if oe is None or not oe.logged_in:
            oe = await asyncio.to_thread(self._session)  # (re)login may take a round trip
        if not oe.attached_here():
            oe.attach_loop(asyncio.get_running_loop())
        t0 = time.perf_counter()
        e = await oe.submit_async(orders)
        self._account(e, api, t0)
        return e

    @staticmethod
    def _may_enter(who: Principal, n: int) -> None:
        who.require("trader")
        if not n:
            raise InvalidArgument("orders", "at least one order is required")

    def _to_wire(self, who: Principal, specs: list[OrderSpec]) -> list[WireOrder]:
        self._may_enter(who, len(specs))
        out = []
        for i, sp in enumerate(specs):
            try:
                out.append(sp.to_wire())
            except InvalidArgument as e:
                if len(specs) == 1:
                    raise
                raise InvalidArgument(f"orders[{i}].{e.field}", e.message) from None
        return out

    def enter(self, who: Principal, orders: list[WireOrder], api: str) -> Entry:
        """Enter checked wire orders on the control plane's session (gRPC, blocking)."""
        self._may_enter(who, len(orders))
        return self._enter(orders, api)

    def enter_send(
        self, who: Principal, orders: list[WireOrder], api: str
    ) -> tuple[OrderEntrySession, tuple[Entry, float, float], float]:
        """The first half of `enter`: the orders are sent, `enter_wait` takes the answers (a
        caller may have several submissions in flight, the gRPC stream does)."""
        self._may_enter(who, len(orders))
        oe = self._session()
        return oe, oe.send(orders), time.perf_counter()

    def enter_wait(
        self, sent: tuple[OrderEntrySession, tuple[Entry, float, float], float], api: str
    ) -> Entry:
        oe, pending, t0 = sent
        e = oe.wait(*pending)
        self._account(e, api, t0)
        return e

    def _enter(self, orders: list[WireOrder], api: str) -> Entry:
        """`enter` once the caller's role and the batch are checked."""
        oe = self._session()
        t0 = time.perf_counter()
        e = oe.submit(orders)
        self._account(e, api, t0)
        return e

    def _account(self, e: Entry, api: str, t0: float) -> None:
        """Metrics, and the orders entered here (for cancel and lookup by order id)."""
        m = self._api_metrics.get(api)
        if m is None:  # labelled children once per API: labels() costs more than the order
            mt = self.metrics
            m = self._api_metrics[api] = (
                mt.order_latency.labels(api),
                mt.orders.labels(api, "accepted"),
                mt.orders.labels(api, "rejected"),
            )
        m[0].observe(time.perf_counter() - t0)
        entered = self.entered
        acc = 0
        orders = e.orders
        for i, oid in enumerate(e.order_id):
            if oid:
                entered[oid] = e.cl_ord_id(i) << 32 | orders[i][3]  # ints only: the GC skips it
                acc += 1
        m[1].inc(acc)
        if acc < e.n:
            m[2].inc(e.n - acc)
        if len(entered) > 200_000:
            for k in list(entered)[:100_000]:
                entered.pop(k, None)  # another thread may trim at the same time

    def cancel_order(self, who: Principal, order_id: int) -> dict[str, Any]:
        who.require("trader")
        hit = self.entered.get(order_id)
        if hit is not None:
            sid, sym, cl = self.oe.session_id if self.oe else 0, hit & U32, hit >> 32
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
        return {"order_id": order_id, "status": "cancelled", "cancelled_qty": res.qty}

    def get_order(self, who: Principal, order_id: int) -> dict[str, Any]:
        who.require("viewer")
        with self.db() as db:
            o = db.scalar(select(Order).where(Order.order_id == order_id))
            if o is not None:
                return order_row_dict(o)
        hit = self.entered.get(order_id)
        r = self.oe.result_of(hit >> 32) if hit is not None and self.oe is not None else None
        if r is None:
            raise NotFound(f"order {order_id} is not known")
        return result_dict(r) | {
            "journal_seq": None,
            "ts_ns": None,
            "queue": None,
        }

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
        eq = {"session_id": session_id, "symbol_id": symbol_id, "status": status}
        return self._page(Order, order_row_dict, eq, since_ns, until_ns, limit, after_id)

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
        eq = {"session_id": session_id, "symbol_id": symbol_id, "order_id": order_id}
        return self._page(Execution, execution_dict, eq, since_ns, until_ns, limit, after_id)

    def _page(
        self,
        model: type[_Row],
        row: Callable[[_Row], dict[str, Any]],
        eq: dict[str, Any],
        since_ns: int | None,
        until_ns: int | None,
        limit: int,
        after_id: int,
    ) -> list[dict[str, Any]]:
        """One page of `model` rows after cursor `after_id`, oldest first: the columns in `eq`
        equal to their values (None = any), gateway time in [since_ns, until_ns)."""
        q = select(model).where(model.id > after_id).order_by(model.id).limit(limit)
        for col, v in eq.items():
            if v is not None:
                q = q.where(getattr(model, col) == v)
        if since_ns is not None:
            q = q.where(model.ts_ns >= since_ns)
        if until_ns is not None:
            q = q.where(model.ts_ns < until_ns)
        with self.db() as db:
            return [row(o) | {"cursor": o.id} for o in db.scalars(q)]

    def counts(self) -> dict[str, int]:
        with self.db() as db:
            return {
                "orders": db.scalar(select(func.count()).select_from(Order)) or 0,
                "executions": db.scalar(select(func.count()).select_from(Execution)) or 0,
            }
