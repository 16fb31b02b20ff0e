"""Symbols: configure (applied to the engine through the control socket), list, halt, resume."""

from __future__ import annotations

from fastapi import APIRouter, Path, status

from ..deps import CP, Operator, Viewer
from ..schemas import U32, HaltOut, SymbolIn, SymbolOut

router = APIRouter(prefix="/symbols", tags=["symbols"])
SymbolId = Path(ge=0, le=U32, description="0 = every symbol (halt/resume only)")


@router.get("", response_model=list[SymbolOut])
def list_symbols(cp: CP, who: Viewer) -> list[dict]:
    """Symbols configured through the control plane."""
    return cp.list_symbols(who)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SymbolOut)
def create_symbol(cp: CP, who: Operator, body: SymbolIn) -> dict:
    """Add a symbol to the engine (tick, lot, price band, maximum quantity)."""
    return cp.create_symbol(who, body.model_dump())


@router.get("/{symbol_id:int}", response_model=SymbolOut)
def get_symbol(cp: CP, who: Viewer, symbol_id: int = Path(ge=1, le=U32)) -> dict:
    """One symbol."""
    return cp.get_symbol(who, symbol_id)


@router.post("/{symbol_id:int}/halt", response_model=HaltOut)
def halt_symbol(cp: CP, who: Operator, symbol_id: int = SymbolId) -> dict:
    """Halt trading (orders are rejected HALTED); 0 halts every symbol."""
    return cp.set_halted(who, symbol_id, True)


@router.post("/{symbol_id:int}/resume", response_model=HaltOut)
def resume_symbol(cp: CP, who: Operator, symbol_id: int = SymbolId) -> dict:
    """Resume trading; 0 resumes every symbol."""
    return cp.set_halted(who, symbol_id, False)
