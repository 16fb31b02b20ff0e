"""The FastAPI application: routers under /api/v1, error mapping, audit of every change.

`create_app(settings)` builds the app around one `ControlPlane`; its lifespan migrates the
database, makes sure an operator token exists, and (with a gRPC port set) serves gRPC order entry
from the same process, so REST and gRPC share the service layer and its order-entry session.

Errors: service errors map to precise statuses (xdpex.errors); an InvalidArgument has the same
422 shape as FastAPI's own validation errors (`detail[0].loc` ends with the field). Every
POST/PUT/PATCH/DELETE under /api/v1 (allowed or not) leaves an audit record: who, what, the
request body, when and the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .. import __version__
from ..auth import AuthError, PermissionDenied
from ..config import Settings, load_settings
from ..errors import InvalidArgument, ServiceError, http_status_of
from ..service import ControlPlane
from .routes import (
    allowlist,
    audit,
    books,
    dataplane,
    executions,
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


def _error_body(exc: Exception) -> dict:
    if isinstance(exc, InvalidArgument):
        return {
            "detail": [
                {
                    "loc": ["body", *exc.field.replace("[", ".").replace("]", "").split(".")],
                    "msg": exc.message,
                    "type": "value_error",
                }
            ]
        }
    return {"detail": str(exc)}


def create_app(settings: Settings | None = None, cp: ControlPlane | None = None) -> FastAPI:
    settings = settings or load_settings()
    cp = cp or ControlPlane(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(cp.start)
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

    app = FastAPI(
        title="xdpex control plane",
        version=__version__,
        lifespan=lifespan,
        description="Operator API of the xdpex order gateway. Bearer token roles: "
        "viewer (read), trader (+ orders), operator (+ configuration).",
    )
    app.state.cp = cp

    @app.exception_handler(ServiceError)
    @app.exception_handler(AuthError)
    @app.exception_handler(PermissionDenied)
    async def service_error(request: Request, exc: Exception) -> JSONResponse:
        status = http_status_of(exc)
        request.state.error = str(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(_error_body(exc), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        if errs:
            e = errs[0]
            request.state.error = f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}"
        return await request_validation_exception_handler(request, exc)

    @app.middleware("http")
    async def audit_and_time(request: Request, call_next):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        audited = request.method in MUTATING and request.url.path.startswith(API_V1)
        body = (await request.body())[:4000] if audited else b""
        try:
            response = await call_next(request)
        except Exception as exc:
            log.exception("unhandled error in %s %s", request.method, request.url.path)
            response = JSONResponse(
                {"detail": f"internal error: {type(exc).__name__}"}, status_code=500
            )
            request.state.error = f"internal error: {exc}"
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        if request.url.path.startswith(API_V1) and not path.startswith(API_V1):
            path = API_V1 + path  # routes of the nested v1 router report their own path
        cp.metrics.http.labels(request.method, path, str(response.status_code)).observe(
            time.perf_counter() - t0
        )
        if audited:
            who = getattr(request.state, "principal", None)
            st = response.status_code
            result = "ok" if st < 400 else f"{st}: {getattr(request.state, 'error', '')}"
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            await run_in_threadpool(
                cp.audit,
                who,
                f"{request.method} {path}",
                target,
                body.decode(errors="replace"),
                result,
            )
        return response

    app.include_router(health.router)
    v1 = APIRouter(prefix=API_V1)
    for r in (
        symbols,
        sessions,
        allowlist,
        ratelimits,
        books,
        orders,
        executions,
        dataplane,
        tokens,
        audit,
    ):
        v1.include_router(r.router)
    app.include_router(v1)
    return app
