"""Order book snapshots from the engine."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query

from ..deps import CP, Viewer
from ..schemas import U32, BookOut

router = APIRouter(prefix="/books", tags=["books"])


@router.get("/{symbol_id}", response_model=BookOut)
def get_book(
    cp: CP, who: Viewer, symbol_id: int = Path(ge=1, le=U32), depth: int = Query(10, ge=1, le=64)
) -> dict:
    """Price levels (price, quantity, orders), best first."""
    return cp.book(who, symbol_id, depth)
