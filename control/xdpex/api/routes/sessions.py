"""Trading sessions: create credentials (secret shown once), list, disconnect, enable/disable."""

from __future__ import annotations

from fastapi import APIRouter, Path, status

from ..deps import CP, Operator, Viewer
from ..schemas import U32, SessionAction, SessionCreated, SessionIn, SessionOut

router = APIRouter(prefix="/sessions", tags=["sessions"])
SessionId = Path(ge=1, le=U32)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SessionCreated)
def create_session(cp: CP, who: Operator, body: SessionIn) -> dict:
    """Create session credentials; the secret is in this answer only."""
    return cp.create_session(who, body.model_dump())


@router.get("", response_model=list[SessionOut])
def list_sessions(cp: CP, who: Viewer) -> list[dict]:
    """Sessions with their live state from the dataplane."""
    return cp.list_sessions(who)


@router.get("/{session_id:int}", response_model=SessionOut)
def get_session(cp: CP, who: Viewer, session_id: int = SessionId) -> dict:
    """One session."""
    return cp.get_session(who, session_id)


@router.post("/{session_id:int}/disconnect", response_model=SessionAction)
def disconnect_session(cp: CP, who: Operator, session_id: int = SessionId) -> dict:
    """Log the session out (Logout ADMIN, cancel-on-disconnect if set)."""
    return cp.disconnect_session(who, session_id)


@router.post("/{session_id:int}/disable", response_model=SessionAction)
def disable_session(cp: CP, who: Operator, session_id: int = SessionId) -> dict:
    """Refuse further logins of the session (LoginRejected DISABLED)."""
    return cp.set_session_enabled(who, session_id, False)


@router.post("/{session_id:int}/enable", response_model=SessionAction)
def enable_session(cp: CP, who: Operator, session_id: int = SessionId) -> dict:
    """Allow logins of the session again."""
    return cp.set_session_enabled(who, session_id, True)
