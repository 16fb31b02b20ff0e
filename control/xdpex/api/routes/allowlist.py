"""Source allowlist (IPv4 prefixes), applied live to the XDP program's LPM trie by xdpexd."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from ..deps import CP, Operator, Viewer
from ..schemas import AllowIn, Prefix

router = APIRouter(prefix="/allowlist", tags=["allowlist"])


@router.get("", response_model=list[str])
def get_allowlist(cp: CP, who: Viewer) -> list[str]:
    """Allowed source prefixes; empty = every source."""
    return cp.get_allowlist(who)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=list[str])
def add_prefix(cp: CP, who: Operator, body: AllowIn) -> list[str]:
    """Allow a source prefix."""
    return cp.add_allow(who, body.prefix)


@router.delete("", response_model=list[str])
def remove_prefix(
    cp: CP,
    who: Operator,
    prefix: Annotated[
        Prefix,
        Query(description="IPv4 prefix, e.g. 10.0.0.0/8 (host bits are cleared)"),
    ],
) -> list[str]:
    """Remove a source prefix."""
    return cp.remove_allow(who, prefix)
