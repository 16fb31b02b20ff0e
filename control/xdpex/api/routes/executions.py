"""Executions (fills) as persisted from the journal."""

from __future__ import annotations

from fastapi import APIRouter, Query

from ..deps import CP, Viewer
from ..schemas import I64, U32, ExecutionOut

router = APIRouter(prefix="/executions", tags=["executions"])


@router.get("", response_model=list[ExecutionOut])
def query_executions(
    cp: CP,
    who: Viewer,
    session_id: int | None = Query(None, ge=1, le=U32),
    symbol_id: int | None = Query(None, ge=1, le=U32),
    order_id: int | None = Query(None, ge=1, le=I64),
    since_ns: int | None = Query(None, ge=0, le=I64),
    until_ns: int | None = Query(None, ge=0, le=I64),
    limit: int = Query(100, ge=1, le=10000),
    after: int = Query(0, ge=0, le=I64, description="cursor of the last row of the previous page"),
) -> list[dict]:
    """Executions by session, symbol, order and gateway time, oldest first."""
    return cp.query_executions(
        who,
        session_id=session_id,
        symbol_id=symbol_id,
        order_id=order_id,
        since_ns=since_ns,
        until_ns=until_ns,
        limit=limit,
        after_id=after,
    )
