"""The audit log: every change attempted through the API, newest first. Operator only."""

from __future__ import annotations

from fastapi import APIRouter, Query

from ..deps import CP, Operator
from ..schemas import AuditOut

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditOut])
def list_audit(cp: CP, who: Operator, limit: int = Query(100, ge=1, le=10000)) -> list[dict]:
    """Latest audit records: who, what, when, result."""
    return cp.list_audit(who, limit)
