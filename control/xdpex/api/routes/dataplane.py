"""Dataplane status: mode, attach and bind mode, durability, queues, engine, state hash."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..deps import CP, Viewer

router = APIRouter(prefix="/dataplane", tags=["dataplane"])


@router.get("")
def dataplane_status(cp: CP, who: Viewer) -> dict[str, Any]:
    """What xdpexd reports about itself (control socket `stats` and `hash`)."""
    return cp.dataplane_status(who)
