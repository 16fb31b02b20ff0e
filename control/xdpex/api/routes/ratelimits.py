"""Per-source datagram rate limit, applied live to the XDP program's config by xdpexd."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import CP, Operator, Viewer
from ..schemas import RateIn, RateOut

router = APIRouter(prefix="/rate-limits", tags=["rate-limits"])


@router.get("", response_model=RateOut)
def get_rate(cp: CP, who: Viewer) -> dict:
    """Current per-source limit (0 = unlimited)."""
    return cp.get_rate(who)


@router.put("", response_model=RateOut)
def set_rate(cp: CP, who: Operator, body: RateIn) -> dict:
    """Set the per-source limit: datagrams per second and burst."""
    return cp.set_rate(who, body.pps, body.burst)
