"""Bearer tokens and roles, shared by REST and gRPC.

A token is 32 random bytes in URL-safe base64 prefixed `xt_`; the database keeps only its
SHA-256, so a leaked database does not leak tokens. Roles are ordered: viewer (read everything),
trader (also enter and cancel orders), operator (also configure symbols, sessions, allowlist, rate
limits, tokens and the dataplane). The first start writes an operator token to
`state_dir/operator.token` (mode 0600) unless `XDPEX_OPERATOR_TOKEN` names one.

A token may expire (`expires_at`; XDPEX_TOKEN_DEFAULT_TTL_S gives new tokens one by default) and
is then refused with 401 saying when it expired. Rotation makes a new token with the same name,
role, rate and lifetime and lets the old one live `grace_s` more (then it is refused as expired,
naming its successor), so a client can switch without a gap. Each token may carry its own
request rate (xdpex.ratelimit); None means the configured default.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ROLES, ApiToken, utcnow

RANK = {r: i for i, r in enumerate(ROLES)}


class AuthError(Exception):
    """No token, or a token that is unknown, revoked or expired (HTTP 401, gRPC
    UNAUTHENTICATED); the message says which."""


class PermissionDenied(Exception):
    """A valid token whose role is below what the action needs (HTTP 403, PERMISSION_DENIED)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and role."""

    name: str
    role: str
    token_id: int = 0  # 0: not a stored token (the control plane itself)
    expires: float | None = None  # epoch seconds; None = never
    rate: int | None = None  # requests/s of this token; None = the default
    burst: int | None = None

    def require(self, role: str) -> None:
        if RANK[self.role] < RANK[role]:
            raise PermissionDenied(f"role {self.role!r} may not do this; needs {role!r} or above")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "xt_" + secrets.token_urlsafe(32)


def aware(t: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite gives them back naive)."""
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=UTC)


def create_token(
    db: Session,
    name: str,
    role: str,
    token: str | None = None,
    *,
    expires_at: datetime | None = None,
    rate: int | None = None,
    burst: int | None = None,
) -> str:
    """Store a new token with `role` and return its secret (shown once)."""
    if role not in RANK:
        raise ValueError(f"role: must be one of {', '.join(ROLES)}")
    token = token or new_token()
    db.add(
        ApiToken(
            name=name,
            role=role,
            token_hash=hash_token(token),
            expires_at=expires_at,
            rate=rate,
            burst=burst,
        )
    )
    db.flush()
    return token


def authenticate(db: Session, token: str | None, now: datetime | None = None) -> Principal:
    if not token:
        raise AuthError("missing bearer token")
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None:
        raise AuthError("unknown token")
    if row.revoked_at is not None:
        raise AuthError(f"token {row.id} ({row.name}) was revoked at {aware(row.revoked_at)}")
    exp = aware(row.expires_at)
    if exp is not None and exp <= (now or utcnow()):
        succ = f"; it was rotated: use token {row.rotated_to}" if row.rotated_to else ""
        raise AuthError(f"token {row.id} ({row.name}) expired at {exp.isoformat()}{succ}")
    return Principal(
        row.name,
        row.role,
        row.id,
        exp.timestamp() if exp is not None else None,
        row.rate,
        row.burst,
    )


def rotate_token(db: Session, token_id: int, grace_s: float) -> tuple[ApiToken, str] | None:
    """A successor of token `token_id` (same name, role, rate; the same lifetime from now) and
    its secret; the old token expires `grace_s` from now (sooner if it already would). None if
    there is no such token; ValueError if it is revoked, expired or already rotated."""
    row = db.get(ApiToken, token_id)
    if row is None:
        return None
    now = utcnow()
    exp = aware(row.expires_at)
    if row.revoked_at is not None:
        raise ValueError(f"token {token_id} is revoked")
    if row.rotated_to is not None:
        raise ValueError(f"token {token_id} was already rotated to token {row.rotated_to}")
    if exp is not None and exp <= now:
        raise ValueError(f"token {token_id} has expired")
    life = exp - aware(row.created_at) if exp is not None else None  # type: ignore[operator]
    secret = create_token(
        db,
        row.name,
        row.role,
        expires_at=now + life if life is not None else None,
        rate=row.rate,
        burst=row.burst,
    )
    new = db.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    assert new is not None
    end = now + timedelta(seconds=grace_s)
    row.expires_at = end if exp is None or end < exp else exp
    row.rotated_to = new.id
    return new, secret


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
        select(ApiToken).where(
            ApiToken.role == "operator",
            ApiToken.revoked_at.is_(None),
            ApiToken.expires_at.is_(None),
        )
    )
    if live is not None and token_file.exists():
        return str(token_file)
    token = create_token(db, "operator", "operator")
    token_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return str(token_file)
