"""The FastAPI application: routers under /api/v1, error mapping, audit of every change.

`create_app(settings)` builds the app around one `ControlPlane`; its lifespan migrates the
database, makes sure an operator token exists, and (with a gRPC port set) serves gRPC order entry
from the same process, so REST and gRPC share the service layer and its order-entry session.

Errors: service errors map to precise statuses (xdpex.errors); an InvalidArgument has the same
422 shape as FastAPI's own validation errors (`detail[0].loc` ends with the field). Every
POST/PUT/PATCH/DELETE under /api/v1 (allowed or not) leaves an audit record: who, what, the
request body, when and the result; order entry (POST /api/v1/orders and /batch) only with
`audit_order_entry` set, since the journal records it (xdpex.config). The record is committed
before the request reaches its route (result `pending`), the result is filled in after
(xdpex.auditlog): a crash cannot lose the record of an applied change, and a request whose
record cannot be written is refused (503).
The middleware that does this (and times every request) is plain ASGI: Starlette's
BaseHTTPMiddleware costs a task group and memory streams per request.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..auth import AuthError, PermissionDenied
from ..config import Settings, load_settings
from ..errors import InvalidArgument, ServiceError, http_status_of
from ..ratelimit import RateLimited
from ..service import ControlPlane
from . import openapi
from .fastentry import PATHS as FAST_PATHS
from .fastentry import OrderEntryFastPath
from .routes import (
    allowlist,
    audit,
    books,
    bulk,
    dataplane,
    executions,
    firms,
    health,
    orders,
    ratelimits,
    sessions,
    symbols,
    tokens,
)

log = logging.getLogger("xdpex.api")
API_V1 = "/api/v1"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
ORDER_ENTRY = frozenset(("/api/v1/orders", "/api/v1/orders/batch"))  # POST: in the journal


def _error_body(exc: Exception) -> dict:
    """The error model of xdpex.api.openapi: 422 in the validation form, anything else
    `{"detail": "<reason>"}`."""
    if isinstance(
        exc, InvalidArgument
    ):  # loc as pydantic gives it: orders[3].qty -> orders, 3, qty
        parts = exc.field.replace("[", ".").replace("]", "").split(".")
        return {
            "detail": [
                {
                    "loc": ["body", *(int(x) if x.isdigit() else x for x in parts)],
                    "msg": exc.message,
                    "type": "value_error",
                }
            ]
        }
    if http_status_of(exc) == 422:  # e.g. a refusal of xdpexd that names no field of ours
        return {"detail": [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]}
    return {"detail": str(exc)}


def _bearer(scope: Scope) -> str | None:
    for k, v in scope["headers"]:
        if k == b"authorization":
            scheme, _, tok = v.decode("latin-1").partition(" ")
            return tok.strip() if scheme.lower() == "bearer" and tok.strip() else None
    return None


class AuditAndTime:
    """Times every request (Prometheus, by route template) and audits every mutating request
    under /api/v1: record committed first, result after (see the module docstring)."""

    def __init__(self, app: ASGIApp, cp: ControlPlane):
        self.app = app
        self.cp = cp
        self._timers: dict[tuple[str, str, int], Any] = {}  # labelled histogram children

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cp = self.cp
        t0 = time.perf_counter()
        method, url_path = scope["method"], scope["path"]
        audited = method in MUTATING and url_path.startswith(API_V1)
        if audited and method == "POST" and url_path in ORDER_ENTRY:
            audited = cp.settings.audit_order_entry  # the journal records order entry
        status = [500]
        started = [False]

        async def send_w(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                status[0], started[0] = msg["status"], True
            await send(msg)

        rec = 0
        state = scope.setdefault("state", {})
        qs = scope.get("query_string", b"").decode("latin-1")
        target = url_path + (f"?{qs}" if qs else "")
        body = b""
        if audited:
            chunks = []
            while True:
                m = await receive()
                if m["type"] != "http.request":
                    break
                chunks.append(m.get("body", b""))
                if not m.get("more_body", False):
                    break
            body = b"".join(chunks)
            replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
            inner_receive = receive

            async def receive(  # type: ignore[no-redef]
                replay: list[Message] = replay, inner: Receive = inner_receive
            ) -> Message:
                return replay.pop() if replay else await inner()

            token = _bearer(scope)
            who = cp.cached_principal(token)
            if who is None and token:
                who = await run_in_threadpool(cp.try_authenticate, token)
            try:
                rec = await cp.auditlog.begin_async(
                    who, f"{method} {url_path}", target, body[:4000].decode(errors="replace")
                )
            except ServiceError as e:
                log.error("%s %s refused: %s", method, url_path, e)
                resp = JSONResponse({"detail": str(e)}, status_code=http_status_of(e))
                await resp(scope, receive, send_w)
                self._observe(scope, method, url_path, status[0], t0)
                return
        try:
            await self.app(scope, receive, send_w)
        except Exception as exc:
            log.exception("unhandled error in %s %s", method, url_path)
            state["error"] = f"internal error: {exc}"
            if started[0]:
                raise
            resp = JSONResponse(
                {"detail": f"internal error: {type(exc).__name__}"}, status_code=500
            )
            await resp(scope, receive, send_w)
        finally:
            path = self._observe(scope, method, url_path, status[0], t0)
            if rec:
                st = status[0]
                result = "ok" if st < 400 else f"{st}: {state.get('error', '')}"
                cp.auditlog.finish(rec, result, f"{method} {path}")

    def _observe(self, scope: Scope, method: str, url_path: str, status: int, t0: float) -> str:
        route = scope.get("route")
        path = getattr(route, "path", "unmatched")
        if url_path.startswith(API_V1) and not path.startswith(API_V1):
            path = API_V1 + path  # routes of the nested v1 router report their own path
        key = (method, path, status)
        timer = self._timers.get(key)
        if timer is None:
            timer = self._timers[key] = self.cp.metrics.http.labels(method, path, str(status))
        timer.observe(time.perf_counter() - t0)
        return path


class ControlAPI(FastAPI):
    """FastAPI, with the order-entry routes' hot path in front (xdpex.api.fastentry)."""

    fast_entry: OrderEntryFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_V1):
            # the per-token request rate, before any other work (xdpex.ratelimit)
            token = _bearer(scope)
            if token:
                cp: ControlPlane = self.state.cp
                who = cp.cached_principal(token)
                if who is None:
                    who = await run_in_threadpool(cp.try_authenticate, token)
                if who is not None:
                    try:
                        cp.check_rate(who)
                    except RateLimited as e:
                        resp = JSONResponse(
                            {"detail": str(e)},
                            status_code=429,
                            headers={"Retry-After": e.retry_after},
                        )
                        await resp(scope, receive, send)
                        return
        fast = self.fast_entry
        if (
            fast is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in FAST_PATHS
        ):
            replay = await fast(scope, receive, send)
            if replay is None:
                return
            receive = replay
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, cp: ControlPlane | None = None) -> FastAPI:
    settings = settings or load_settings()
    cp = cp or ControlPlane(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.check_tls()  # a TLS setting that cannot work stops the start, naming it
        await run_in_threadpool(cp.start)
        # Everything built so far (FastAPI, pydantic, SQLAlchemy, the routes) lives as long as
        # the process: out of the collector's way, so a full collection scans only what order
        # entry allocated since (it took 125 ms with them on this machine: the REST p99).
        gc.collect()
        gc.freeze()
        # Order entry allocates a few hundred short-lived containers a request, nearly all freed
        # by reference counting: a young generation that large lets them die before the
        # collector looks, so far fewer survive into the older generations' passes.
        gc.set_threshold(100_000, 50, 100)
        if cp.token_file:
            log.warning("operator token: %s", cp.token_file)
        grpc_server = None
        if settings.grpc_port:
            from ..grpc_api import serve

            grpc_server = serve(cp, settings.grpc_host, settings.grpc_port)
        try:
            yield
        finally:
            if grpc_server is not None:
                grpc_server.stop(grace=1).wait()
            await run_in_threadpool(cp.close)

    app = ControlAPI(
        title="xdpex control plane",
        version=__version__,
        lifespan=lifespan,
        description="Operator API of the xdpex order gateway. Bearer token roles: "
        "viewer (read), trader (+ orders), operator (+ configuration).",
    )
    app.state.cp = cp
    app.fast_entry = OrderEntryFastPath(cp)
    openapi.install(app, cp)

    @app.exception_handler(ServiceError)
    @app.exception_handler(AuthError)
    @app.exception_handler(PermissionDenied)
    async def service_error(request: Request, exc: Exception) -> JSONResponse:
        status = http_status_of(exc)
        request.state.error = str(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(_error_body(exc), status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            # Starlette answers with the methods of the first route on the path only; every
            # route of the path counts (RFC 9110: Allow lists what the resource supports)
            path = request.url.path
            allowed = sorted(
                {
                    m
                    for r in app.routes
                    if isinstance(r, APIRoute) and r.path_regex.match(path)
                    for m in (r.methods or ())
                }
            )
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        if errs:
            e = errs[0]
            request.state.error = f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}"
        return await request_validation_exception_handler(request, exc)

    app.add_middleware(AuditAndTime, cp=cp)

    app.include_router(health.router)
    v1 = APIRouter(prefix=API_V1)
    for r in (
        orders,  # first: order entry is the hot path, and routes are matched in this order
        bulk,  # before symbols and sessions: /symbols/bulk is no symbol id
        symbols,
        sessions,
        allowlist,
        ratelimits,
        books,
        executions,
        dataplane,
        tokens,
        audit,
        firms,
    ):
        v1.include_router(r.router)
    app.include_router(v1)
    return app
