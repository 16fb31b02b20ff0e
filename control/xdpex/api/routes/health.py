"""Liveness, readiness and Prometheus metrics (no token needed: scraped by monitoring)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..deps import CP

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready; `checks` says why"}})
async def readyz(cp: CP) -> JSONResponse:
    """Readiness: database and dataplane reachable, XDP attached or kernel-UDP mode declared."""
    ok, checks = await run_in_threadpool(cp.readiness)
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
    )


@router.get("/metrics", response_class=Response)
async def metrics(cp: CP) -> Response:
    """Prometheus exposition of every xdpex_* metric."""
    body, ctype = await run_in_threadpool(cp.metrics.exposition)
    return Response(body, media_type=ctype)
