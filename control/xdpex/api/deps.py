"""Annotated dependencies of the REST API: the ControlPlane, the caller and its role.

They are coroutines: FastAPI runs a plain-function dependency in a worker thread, a hop per
dependency per request. A token verified within the last second is answered from the cache;
otherwise the database lookup runs in a worker thread."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..auth import Principal
from ..service import ControlPlane

bearer = HTTPBearer(auto_error=False, description="API token (xt_...) from `xdpex up` or /tokens")


async def get_cp(request: Request) -> ControlPlane:
    return request.app.state.cp  # type: ignore[no-any-return]


CP = Annotated[ControlPlane, Depends(get_cp)]


async def get_principal(
    request: Request,
    cp: CP,
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    token = cred.credentials if cred else None
    who = cp.cached_principal(token)
    if who is None:
        who = await run_in_threadpool(cp.authenticate, token)
    request.state.principal = who
    return who


def _role(role: str):
    async def dep(who: Annotated[Principal, Depends(get_principal)]) -> Principal:
        who.require(role)
        return who

    return dep


Viewer = Annotated[Principal, Depends(_role("viewer"))]
Trader = Annotated[Principal, Depends(_role("trader"))]
Operator = Annotated[Principal, Depends(_role("operator"))]
