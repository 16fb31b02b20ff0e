"""Firms for the drop copy: a name, its sessions, and the API token names that may read it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ... import firms
from ..deps import CP, Operator
from ..schemas import U32, json_int

router = APIRouter(prefix="/firms", tags=["firms"])
FirmId = Path(ge=1, le=2**31 - 1)  # firms.firm_id is a 32-bit integer
NAME = r"^[A-Za-z0-9_.@-]+$"
SessionIds = list[Annotated[int, Field(ge=1, le=U32), BeforeValidator(json_int)]]
TokenNames = list[Annotated[str, Field(min_length=1, max_length=64, pattern=NAME)]]


class FirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=NAME)
    sessions: SessionIds = Field(default_factory=list, max_length=4096)
    readers: TokenNames = Field(default_factory=list, max_length=256)


class FirmSessions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sessions: SessionIds = Field(max_length=4096)


class FirmReaders(BaseModel):
    model_config = ConfigDict(extra="forbid")
    readers: TokenNames = Field(max_length=256)


class FirmOut(BaseModel):
    firm_id: int
    name: str
    sessions: list[int]
    readers: list[str]
    created_by: str
    created_at: str


@router.post("", status_code=status.HTTP_201_CREATED, response_model=FirmOut)
def create_firm(cp: CP, who: Operator, body: FirmIn) -> dict:
    """Create a firm with its sessions and drop-copy readers."""
    return firms.create_firm(cp, who, body.name, body.sessions, body.readers)


@router.get("", response_model=list[FirmOut])
def list_firms(cp: CP, who: Operator) -> list[dict]:
    """Every firm."""
    return firms.list_firms(cp, who)


@router.get("/{firm_id}", response_model=FirmOut)
def get_firm(cp: CP, who: Operator, firm_id: int = FirmId) -> dict:
    """One firm."""
    return firms.get_firm(cp, who, firm_id)


@router.put("/{firm_id}/sessions", response_model=FirmOut)
def set_sessions(cp: CP, who: Operator, body: FirmSessions, firm_id: int = FirmId) -> dict:
    """Replace the firm's sessions (a session belongs to one firm at most: 409 otherwise)."""
    return firms.set_sessions(cp, who, firm_id, body.sessions)


@router.put("/{firm_id}/readers", response_model=FirmOut)
def set_readers(cp: CP, who: Operator, body: FirmReaders, firm_id: int = FirmId) -> dict:
    """Replace who may read the firm's drop copy (API token names)."""
    return firms.set_readers(cp, who, firm_id, body.readers)


@router.delete("/{firm_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_firm(cp: CP, who: Operator, firm_id: int = FirmId) -> None:
    """Remove a firm (its sessions keep trading; their drop copy is no longer served)."""
    firms.delete_firm(cp, who, firm_id)
