"""Firms and who may read their drop copy: the service functions the REST routes
(xdpex.api.routes.firms) and the drop copy (xdpex.dropcopy) call.

A firm is a name and a set of sessions (a session belongs to one firm at most); its readers are API
token names whose holders may follow the firm's drop copy. Operators configure firms and may read
every firm's drop copy; anyone else needs to be a reader. Every change is audited by the API like
any other (xdpex.api.main).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .auth import PermissionDenied, Principal
from .errors import Conflict, NotFound
from .models import Firm, FirmReader, FirmSession
from .service import ControlPlane


def _out(db: Session, f: Firm) -> dict[str, Any]:
    sessions = db.scalars(select(FirmSession.session_id).where(FirmSession.firm_id == f.firm_id))
    readers = db.scalars(select(FirmReader.token_name).where(FirmReader.firm_id == f.firm_id))
    return {"firm_id": f.firm_id, "name": f.name, "sessions": sorted(sessions),
            "readers": sorted(readers), "created_by": f.created_by,
            "created_at": f.created_at.isoformat()}  # fmt: skip


def _firm(db: Session, firm_id: int) -> Firm:
    f = db.get(Firm, firm_id)
    if f is None:
        raise NotFound(f"firm {firm_id} does not exist")
    return f


def _put_sessions(db: Session, firm_id: int, sessions: list[int]) -> None:
    for i, sid in enumerate(sessions):
        other = db.get(FirmSession, sid)
        if other is not None and other.firm_id != firm_id:
            name = db.get(Firm, other.firm_id)
            raise Conflict(f"sessions[{i}]: session {sid} belongs to firm "
                           f"{name.name if name else other.firm_id}")  # fmt: skip
    db.execute(delete(FirmSession).where(FirmSession.firm_id == firm_id))
    db.flush()
    for sid in sorted(set(sessions)):
        db.add(FirmSession(session_id=sid, firm_id=firm_id))


def _put_readers(db: Session, firm_id: int, readers: list[str]) -> None:
    db.execute(delete(FirmReader).where(FirmReader.firm_id == firm_id))
    db.flush()
    for name in sorted(set(readers)):
        db.add(FirmReader(firm_id=firm_id, token_name=name))


def create_firm(cp: ControlPlane, who: Principal, name: str, sessions: list[int],
                readers: list[str]) -> dict[str, Any]:  # fmt: skip
    who.require("operator")
    with cp.db.begin() as db:
        if db.scalar(select(Firm).where(Firm.name == name)) is not None:
            raise Conflict(f"name: firm {name!r} exists")
        f = Firm(name=name, created_by=who.name)
        db.add(f)
        db.flush()
        _put_sessions(db, f.firm_id, sessions)
        _put_readers(db, f.firm_id, readers)
        db.flush()
        return _out(db, f)


def list_firms(cp: ControlPlane, who: Principal) -> list[dict[str, Any]]:
    who.require("operator")
    with cp.db() as db:
        return [_out(db, f) for f in db.scalars(select(Firm).order_by(Firm.firm_id))]


def get_firm(cp: ControlPlane, who: Principal, firm_id: int) -> dict[str, Any]:
    who.require("operator")
    with cp.db() as db:
        return _out(db, _firm(db, firm_id))


def set_sessions(cp: ControlPlane, who: Principal, firm_id: int,
                 sessions: list[int]) -> dict[str, Any]:  # fmt: skip
    who.require("operator")
    with cp.db.begin() as db:
        f = _firm(db, firm_id)
        _put_sessions(db, firm_id, sessions)
        db.flush()
        return _out(db, f)


def set_readers(cp: ControlPlane, who: Principal, firm_id: int,
                readers: list[str]) -> dict[str, Any]:  # fmt: skip
    who.require("operator")
    with cp.db.begin() as db:
        f = _firm(db, firm_id)
        _put_readers(db, firm_id, readers)
        db.flush()
        return _out(db, f)


def delete_firm(cp: ControlPlane, who: Principal, firm_id: int) -> None:
    who.require("operator")
    with cp.db.begin() as db:
        f = _firm(db, firm_id)
        db.execute(delete(FirmSession).where(FirmSession.firm_id == firm_id))
        db.execute(delete(FirmReader).where(FirmReader.firm_id == firm_id))
        db.delete(f)


def sessions_to_read(cp: ControlPlane, who: Principal, firm: str) -> set[int]:
    """The sessions of `firm` if `who` may read its drop copy (NotFound, PermissionDenied)."""
    with cp.db() as db:
        f = db.scalar(select(Firm).where(Firm.name == firm))
        if f is None:
            raise NotFound(f"firm {firm!r} does not exist")
        if who.role != "operator" and db.get(FirmReader, (f.firm_id, who.name)) is None:
            raise PermissionDenied(f"token {who.name!r} may not read the drop copy of "
                                   f"firm {firm!r}")  # fmt: skip
        return set(db.scalars(select(FirmSession.session_id)
                              .where(FirmSession.firm_id == f.firm_id)))  # fmt: skip
