"""API tokens: create (secret shown once), list, revoke. Operator only."""

from __future__ import annotations

from fastapi import APIRouter, Path, status

from ..deps import CP, Operator
from ..schemas import TokenIn, TokenInfo, TokenOut

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TokenOut)
def create_token(cp: CP, who: Operator, body: TokenIn) -> dict:
    """Create a token with a role; the token is in this answer only."""
    return cp.create_token(who, body.name, body.role)


@router.get("", response_model=list[TokenInfo])
def list_tokens(cp: CP, who: Operator) -> list[dict]:
    """List tokens (never their secrets)."""
    return cp.list_tokens(who)


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(cp: CP, who: Operator, token_id: int = Path(ge=1, le=2**31 - 1)) -> None:
    """Revoke a token; it stops working at once."""
    cp.revoke_token(who, token_id)
