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

from .auth import Principal
from .config import Settings
from .dataplane import ControlClient
from .errors import Conflict, InvalidArgument, NotFound, Unavailable
from .metrics import Metrics
from .models import Execution, GwSession, Order
from .orderentry import OrderEntrySession, OrderResult

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
        "reason": reason_name(r.status, r.reason),
        "field": None,
        "fills": [
            {"exec_id": e, "price": px, "qty": q, "liquidity": liq} for e, px, q, liq in r.fills
        ],
    }
    if r.status == "rejected":
        out["field"] = REJECT_FIELD.get(r.reason)  # type: ignore[call-overload]
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
    entered: dict[int, OrderResult]
    create_session: Callable[..., dict[str, Any]]

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
        return [result_dict(r) for r in self._enter(self._to_msgs(who, specs), api)]

    async def submit_orders_async(
        self, who: Principal, specs: list[OrderSpec], api: str = "rest"
    ) -> list[dict[str, Any]]:
        """`submit_orders` for the REST front end: the same validation, session and accounting,
        but the event loop goes on serving other requests while the dataplane answers."""
        msgs = self._to_msgs(who, specs)
        oe = self.oe
        if oe is None or not oe.logged_in:
            oe = await asyncio.to_thread(self._session)  # (re)login may take a round trip
        oe.attach_loop(asyncio.get_running_loop())  # no-op once attached
        t0 = time.perf_counter()
        results = await oe.submit_async(msgs)
        self._account(results, api, t0)
        return [result_dict(r) for r in results]

    @staticmethod
    def _may_enter(who: Principal, n: int) -> None:
        who.require("trader")
        if not n:
            raise InvalidArgument("orders", "at least one order is required")

    def _to_msgs(self, who: Principal, specs: list[OrderSpec]) -> list[c.NewOrder]:
        self._may_enter(who, len(specs))
        msgs = []
        for i, sp in enumerate(specs):
            try:
                msgs.append(sp.to_msg())
            except InvalidArgument as e:
                if len(specs) == 1:
                    raise
                raise InvalidArgument(f"orders[{i}].{e.field}", e.message) from None
        return msgs

    def enter(self, who: Principal, msgs: list[c.NewOrder], api: str) -> list[OrderResult]:
        """Enter validated NewOrders on the control plane's session (REST and gRPC)."""
        self._may_enter(who, len(msgs))
        return self._enter(msgs, api)

    def _enter(self, msgs: list[c.NewOrder], api: str) -> list[OrderResult]:
        """`enter` once the caller's role and the batch are checked."""
        oe = self._session()
        t0 = time.perf_counter()
        results = oe.submit(msgs)
        self._account(results, api, t0)
        return results

    def _account(self, results: list[OrderResult], api: str, t0: float) -> None:
        """Metrics, and the orders entered here (for cancel by order id)."""
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
