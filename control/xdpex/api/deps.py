"""Annotated dependencies of the REST API: the ControlPlane, the caller and its role."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..auth import Principal
from ..service import ControlPlane

bearer = HTTPBearer(auto_error=False, description="API token (xt_...) from `xdpex up` or /tokens")


def get_cp(request: Request) -> ControlPlane:
    return request.app.state.cp  # type: ignore[no-any-return]


CP = Annotated[ControlPlane, Depends(get_cp)]


def get_principal(
    request: Request,
    cp: CP,
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    who = cp.authenticate(cred.credentials if cred else None)
    request.state.principal = who
    return who


def _role(role: str):
    def dep(who: Annotated[Principal, Depends(get_principal)]) -> Principal:
        who.require(role)
        return who

    return dep


Viewer = Annotated[Principal, Depends(_role("viewer"))]
Trader = Annotated[Principal, Depends(_role("trader"))]
Operator = Annotated[Principal, Depends(_role("operator"))]
