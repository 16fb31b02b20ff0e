"""API tokens: create (secret shown once), list, revoke, rotate. Operator only, except that a
token may rotate itself."""

from __future__ import annotations

from fastapi import APIRouter, Path, status

from ..deps import CP, Operator, Viewer
from ..schemas import TokenIn, TokenInfo, TokenOut, TokenRotated, TokenRotateIn

router = APIRouter(prefix="/tokens", tags=["tokens"])
TokenId = Path(ge=1, le=2**31 - 1)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TokenOut)
def create_token(cp: CP, who: Operator, body: TokenIn) -> dict:
    """Create a token with a role, optionally a lifetime and its own request rate; the token is
    in this answer only."""
    return cp.create_token(who, body.name, body.role, body.expires_in_s, body.rate, body.burst)


@router.get("", response_model=list[TokenInfo])
def list_tokens(cp: CP, who: Operator) -> list[dict]:
    """List tokens (never their secrets)."""
    return cp.list_tokens(who)


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(cp: CP, who: Operator, token_id: int = TokenId) -> None:
    """Revoke a token; it stops working at once. A token cannot revoke itself (409)."""
    cp.revoke_token(who, token_id)


@router.post("/{token_id}/rotate", status_code=status.HTTP_201_CREATED, response_model=TokenRotated)
def rotate_token(cp: CP, who: Viewer, body: TokenRotateIn, token_id: int = TokenId) -> dict:
    """Replace a token's secret: a new token (same name, role, rate and lifetime) is made and the
    old one expires after `grace_s`. Operators may rotate any token; any token may rotate itself."""
    return cp.rotate_token(who, token_id, body.grace_s)
