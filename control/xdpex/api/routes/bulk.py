"""Bulk configuration: thousands of symbols or sessions in one request (xdpex.bulkconfig).

A request whose entries are malformed is refused whole (422, every bad entry named by pydantic);
otherwise every entry that can be applied is, and the answer names each refused one with its
index in the request, a code (the dataplane's, docs/dataplane.md Refusals, or the control
plane's: symbol_exists, name_in_use, duplicate_in_request, bad_band) and a text.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ... import bulkconfig
from ..deps import CP, Operator
from ..schemas import SessionCreated, SessionIn, Strict, SymbolIn

router = APIRouter(tags=["bulk"])

MAX_BULK = 100_000


class SymbolsBulkIn(Strict):
    symbols: list[SymbolIn] = Field(min_length=1, max_length=MAX_BULK)


class SessionsBulkIn(Strict):
    sessions: list[SessionIn] = Field(min_length=1, max_length=MAX_BULK)


class BulkRefused(BaseModel):
    index: int = Field(description="the entry's position in the request")
    id: int | None = Field(description="the symbol or session id it named or was given")
    code: str = Field(description="machine-readable reason (docs/dataplane.md, Refusals)")
    error: str


class SymbolsBulkOut(BaseModel):
    created: int
    refused: list[BulkRefused]


class SessionsBulkOut(BaseModel):
    created: list[SessionCreated]
    refused: list[BulkRefused]


@router.post("/symbols/bulk", response_model=SymbolsBulkOut)
def create_symbols(cp: CP, who: Operator, body: SymbolsBulkIn) -> dict:
    """Add many symbols at once; every refused entry is named in the answer."""
    return bulkconfig.create_symbols(cp, who, [s.model_dump() for s in body.symbols])


@router.post("/sessions/bulk", response_model=SessionsBulkOut)
def create_sessions(cp: CP, who: Operator, body: SessionsBulkIn) -> dict:
    """Create many sessions at once; their secrets are in this answer only."""
    return bulkconfig.create_sessions(cp, who, [s.model_dump() for s in body.sessions])
