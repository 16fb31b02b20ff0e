"""Bearer tokens and roles, shared by REST and gRPC.

A token is 32 random bytes in URL-safe base64 prefixed `xt_`; the database keeps only its
SHA-256, so a leaked database does not leak tokens. Roles are ordered: viewer (read everything),
trader (also enter and cancel orders), operator (also configure symbols, sessions, allowlist, rate
limits, tokens and the dataplane). The first start writes an operator token to
`state_dir/operator.token` (mode 0600) unless `XDPEX_OPERATOR_TOKEN` names one.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ROLES, ApiToken, utcnow

RANK = {r: i for i, r in enumerate(ROLES)}


class AuthError(Exception):
    """No token, or a token that is unknown or revoked (HTTP 401, gRPC UNAUTHENTICATED)."""


class PermissionDenied(Exception):
    """A valid token whose role is below what the action needs (HTTP 403, PERMISSION_DENIED)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and role."""

    name: str
    role: str

    def require(self, role: str) -> None:
        if RANK[self.role] < RANK[role]:
            raise PermissionDenied(f"role {self.role!r} may not do this; needs {role!r} or above")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "xt_" + secrets.token_urlsafe(32)


def create_token(db: Session, name: str, role: str, token: str | None = None) -> str:
    """Store a new token with `role` and return its secret (shown once)."""
    if role not in RANK:
        raise ValueError(f"role: must be one of {', '.join(ROLES)}")
    token = token or new_token()
    db.add(ApiToken(name=name, role=role, token_hash=hash_token(token)))
    db.flush()
    return token


def authenticate(db: Session, token: str | None) -> Principal:
    if not token:
        raise AuthError("missing bearer token")
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        raise AuthError("unknown or revoked token")
    return Principal(row.name, row.role)


def revoke_token(db: Session, token_id: int) -> bool:
    row = db.get(ApiToken, token_id)
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return True


def ensure_operator_token(db: Session, configured: str, token_file: Path) -> str | None:
    """Make sure an operator can log in; return where the token is, or None if configured.

    With `configured` set, that token is registered (once). Otherwise, when no live operator token
    exists, one is generated and written to `token_file` with mode 0600.
    """
    if configured:
        h = hash_token(configured)
        if db.scalar(select(ApiToken).where(ApiToken.token_hash == h)) is None:
            create_token(db, "operator", "operator", configured)
        return None
    live = db.scalar(
        select(ApiToken).where(ApiToken.role == "operator", ApiToken.revoked_at.is_(None))
    )
    if live is not None and token_file.exists():
        return str(token_file)
    token = create_token(db, "operator", "operator")
    token_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return str(token_file)
