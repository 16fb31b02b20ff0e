"""The REST order-entry hot path: POST /api/v1/orders and POST /api/v1/orders/batch as plain ASGI.

FastAPI's routing, dependency solving, pydantic models and middleware stack cost about 1.5 ms of
CPU per request on this machine, ten times the order's own work (docs/BENCHMARKS.md, "Control
plane"). `OrderEntryFastPath` answers the two order-entry routes itself, ahead of FastAPI:

- the bearer token from the 1 s principal cache (a miss is looked up in a worker thread);
- the body parsed with orjson and checked against the schema's rules (xdpex.api.schemas.OrderIn:
  exactly its fields, JSON integers within their bounds, the literal names);
- the order-entry audit record appended to the spool (xdpex.auditlog: page cache, batched into
  the database by the writer thread, recovered after a crash);
- the orders entered on the control plane's session, the acknowledgements returned with orjson.

Anything it does not take on exactly as FastAPI would (a missing, unknown or under-privileged
token, a body that is not canonical JSON of the schema: strings for numbers, unknown fields, a
value out of range, another content type) goes to the FastAPI route unchanged, which gives the
documented error (401, 403, 422 naming the field) or accepts pydantic's lax forms. The routes,
their schemas and the OpenAPI document stay FastAPI's.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from fastapi.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from .. import fastwire as _fw
from ..auth import PermissionDenied, Principal
from ..entrybatch import WireOrder
from ..errors import ServiceError, http_status_of
from ..orders import MARKET, ORD_TYPES, SIDES, TIFS, U32, ack_dicts
from ..service import ControlPlane
from .schemas import PRICE_MAX  # the bound the OpenAPI document states

log = logging.getLogger("xdpex.api")

ORDERS = "/api/v1/orders"
BATCH = "/api/v1/orders/batch"
PATHS = frozenset((ORDERS, BATCH))
MAX_BATCH = 1000
MAX_BODY = 1 << 20  # a batch of 1,000 orders is about 110 kB
_FIELDS = frozenset(("symbol_id", "side", "type", "tif", "qty", "price"))
_JSON_HDR = [(b"content-type", b"application/json")]


def _token(scope: Scope) -> str | None:
    for k, v in scope["headers"]:
        if k == b"authorization":
            scheme, _, tok = v.decode("latin-1").partition(" ")
            tok = tok.strip()
            return tok if scheme.lower() == "bearer" and tok else None
    return None


def _json_content(scope: Scope) -> bool:
    for k, v in scope["headers"]:
        if k == b"content-type":
            ct = v.split(b";", 1)[0].strip().lower()
            return ct == b"application/json"
    return False


def wire_order(o: Any) -> tuple[int, int, int, int, int, int] | None:
    """(side, ord_type, tif, symbol_id, price, qty) of a canonical order object, None for
    anything the FastAPI route must judge (it may accept it in lax form or name the field)."""
    if type(o) is not dict or not o.keys() <= _FIELDS:
        return None
    sym, qty, price = o.get("symbol_id"), o.get("qty"), o.get("price", 0)
    if type(sym) is not int or type(qty) is not int or type(price) is not int:
        return None
    side = SIDES.get(o.get("side"))  # type: ignore[arg-type]
    typ = ORD_TYPES.get(o.get("type", "limit"))  # type: ignore[arg-type]
    tif = TIFS.get(o.get("tif", "gtc"))  # type: ignore[arg-type]
    if side is None or typ is None or tif is None:
        return None
    if not (1 <= sym <= U32 and 1 <= qty <= U32 and 0 <= price <= PRICE_MAX):
        return None
    if price == 0 and typ != MARKET:
        return None  # the service's own check: "must be a positive number of ticks"
    return side, typ, tif, sym, price, qty


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, None when the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        m = await receive()
        if m["type"] != "http.request":
            return None
        chunks.append(m.get("body", b""))
        if not m.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class OrderEntryFastPath:
    """`__call__` answers a POST to ORDERS or BATCH and returns None, or returns the receive
    channel (replaying the body it read) for FastAPI to answer instead, having sent nothing."""

    def __init__(self, cp: ControlPlane):
        self.cp = cp
        self._timers: dict[tuple[str, int], Any] = {}  # labelled HTTP histogram children

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        t0 = time.perf_counter()
        path = scope["path"]
        body = await _read_body(receive)
        if body is None:
            return receive  # the client went away: nothing to answer
        try:
            status, out = await self._handle(scope, path, body)
        except Exception as exc:  # noqa: BLE001 - answered 500 and logged, never a hang
            log.exception("unhandled error in POST %s", path)
            status, out = 500, orjson.dumps({"detail": f"internal error: {type(exc).__name__}"})
        if status == 0:
            return _replayer(body, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON_HDR, (b"content-length", str(len(out)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": out})
        key = (path, status)
        timer = self._timers.get(key)
        if timer is None:
            timer = self._timers[key] = self.cp.metrics.http.labels("POST", path, str(status))
        timer.observe(time.perf_counter() - t0)
        return None

    async def _handle(self, scope: Scope, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body) of the answer, or (0, b"") to leave it to FastAPI."""
        if len(body) > MAX_BODY or not _json_content(scope):
            return 0, b""
        who = await self._principal(scope)
        if who is None:
            return 0, b""
        batch = path == BATCH
        fw = _fw.get()
        # the canonical form decoded in C (xdpex.fastwire: the same checks as `_orders`);
        # None from it: anything else, judged by `_orders` and then FastAPI
        orders = fw.json_orders(body, batch, MAX_BATCH) if fw is not None else None
        if orders is None:
            orders = self._orders(body, batch)
            if orders is None:
                return 0, b""
        try:
            e = await self.cp.enter_wire_async(
                who,
                orders,
                "rest",
                audit=(f"POST {path}", path, body),
            )
        except ServiceError as err:
            return http_status_of(err), orjson.dumps({"detail": str(err)})
        if batch:
            return 200, fw.json_acks(e, False) if fw else orjson.dumps(ack_dicts(e))
        code = 200 if e.status[0] == "rejected" else 201
        return code, fw.json_acks(e, True) if fw else orjson.dumps(ack_dicts(e)[0])

    @staticmethod
    def _orders(body: bytes, batch: bool) -> list[WireOrder] | None:
        """The wire orders of a body in canonical form, None for FastAPI to judge."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if batch:
            if type(doc) is not dict or doc.keys() != {"orders"}:
                return None
            items = doc["orders"]
            if type(items) is not list or not 1 <= len(items) <= MAX_BATCH:
                return None
            orders = [wire_order(o) for o in items]
            if None in orders:
                return None
            return orders  # type: ignore[return-value]
        one = wire_order(doc)
        return None if one is None else [one]

    async def _principal(self, scope: Scope) -> Principal | None:
        token = _token(scope)
        if token is None:
            return None
        cp = self.cp
        who = cp.cached_principal(token)
        if who is None:
            who = await run_in_threadpool(cp.try_authenticate, token)
        if who is None:
            return None
        try:
            who.require("trader")
        except PermissionDenied:
            return None
        return who


def _replayer(body: bytes, inner: Receive) -> Receive:
    sent = [False]

    async def receive() -> Message:
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await inner()

    return receive
