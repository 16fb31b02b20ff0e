"""Bulk configuration in the service layer: thousands of symbols or sessions in one call.

Each entry is judged on its own. The control plane refuses what it knows is wrong (a band whose
low bound is above its high bound, an id or a name the database has already, an id or a name
given twice in the request); the rest goes to xdpexd in one `bulk` request, which applies every
entry it can and names each one it refuses with its code (docs/dataplane.md, Refusals). Only
what xdpexd applied is recorded in the database, in one transaction, so the database never
claims an entry the gateway refused; the answer names every refused entry by its index in the
request.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from .configure import dataplane_refusal, dataplane_symbol
from .dataplane import DataplaneRejected
from .errors import Unavailable
from .models import GwSession, Symbol

if TYPE_CHECKING:
    from .auth import Principal
    from .service import ControlPlane


def _record(cp: ControlPlane, model: Any, rows: list[dict[str, Any]], what: str) -> None:
    """Store what xdpexd applied; a database that refuses is said (503), and the
    reconciliation reports those entries until the same request is repeated."""
    try:
        with cp.db.begin() as db:
            db.execute(insert(model), rows)
    except Exception as e:
        raise Unavailable(
            f"{len(rows)} {what} were added to the dataplane but the database did not record "
            f"them ({type(e).__name__}); the reconciliation reports them (not_in_database)"
        ) from e


def _refused(index: int, id_: int | None, code: str, error: str) -> dict[str, Any]:
    return {"index": index, "id": id_, "code": code, "error": error}


def _dp_entry(spec: dict[str, Any]) -> dict[str, Any]:
    return dict(dataplane_symbol(spec), halted=spec["halted"])


def create_symbols(cp: ControlPlane, who: Principal, specs: list[dict[str, Any]]) -> dict:
    """Adds every symbol of `specs` that can be; {"created": n, "refused": [...]}."""
    who.require("operator")
    with cp.config_lock:  # the reconciliation never sees it half stored (xdpex.reconcile)
        try:
            return _create_symbols(cp, specs)
        except DataplaneRejected as e:  # the request refused whole (out_of_memory, standby...)
            raise dataplane_refusal(e, {}, "symbols", "bulk symbols") from e


def _create_symbols(cp: ControlPlane, specs: list[dict[str, Any]]) -> dict:
    refused: list[dict[str, Any]] = []
    with cp.db() as db:
        have_ids = set(db.scalars(select(Symbol.symbol_id)))
        have_names = set(db.scalars(select(Symbol.name)))
    ids: set[int] = set()
    names: set[str] = set()
    send: list[int] = []  # request indices sent to xdpexd, in order
    for i, s in enumerate(specs):
        sid, name = s["symbol_id"], s["name"]
        if s["band_low"] > s["band_high"]:
            refused.append(_refused(i, sid, "bad_band", f"symbols[{i}].band_low: must not "
                                    "exceed band_high"))
        elif sid in have_ids:
            refused.append(_refused(i, sid, "symbol_exists", f"symbols[{i}].symbol_id: symbol "
                                    f"{sid} already exists"))
        elif name in have_names:
            refused.append(_refused(i, sid, "name_in_use", f"symbols[{i}].name: {name!r} is "
                                    "already used"))
        elif sid in ids or name in names:
            refused.append(_refused(i, sid, "duplicate_in_request", f"symbols[{i}]: id {sid} "
                                    f"or name {name!r} given twice"))
        else:
            ids.add(sid)
            names.add(name)
            send.append(i)
    created = 0
    if send:
        ans = cp.ctl.bulk({"symbols": [_dp_entry(specs[i]) for i in send]})
        bad = {int(r["index"]): r for r in ans.get("refused", []) if r.get("kind") == "symbol"}
        rows = []
        for k, i in enumerate(send):
            if k in bad:
                r = bad[k]
                refused.append(_refused(i, specs[i]["symbol_id"], str(r["code"]),
                                        f"symbols[{i}]: {r['error']}"))
            else:
                rows.append(specs[i])
        if rows:
            _record(cp, Symbol, rows, "symbols")
        created = len(rows)
    refused.sort(key=lambda r: r["index"])
    return {"created": created, "refused": refused}


def create_sessions(cp: ControlPlane, who: Principal, specs: list[dict[str, Any]]) -> dict:
    """Creates every session of `specs` that can be, with fresh ids and secrets (shown in this
    answer only); {"created": [...], "refused": [...]}."""
    who.require("operator")
    with cp.config_lock:
        try:
            return _create_sessions(cp, who, specs)
        except DataplaneRejected as e:
            raise dataplane_refusal(e, {}, "sessions", "bulk sessions") from e


def _create_sessions(cp: ControlPlane, who: Principal, specs: list[dict[str, Any]]) -> dict:
    with cp.db() as db:
        first = cp._next_session_id(db)
    entries, secrets_ = [], []
    for k, s in enumerate(specs):
        secret = secrets.token_bytes(32)
        secrets_.append(secret)
        entries.append({
            "id": first + k,
            "secret": secret.hex(),
            "stp": s.get("stp", "none"),
            "cancel_on_disconnect": s.get("cancel_on_disconnect", True),
            "enabled": True,
            "queue": s.get("queue", 0),
            "limits": {"rate": s.get("rate", 0), "burst": s.get("burst", 0)},
        })
    refused: list[dict[str, Any]] = []
    created: list[dict[str, Any]] = []
    if not entries:
        return {"created": created, "refused": refused}
    ans = cp.ctl.bulk({"sessions": entries})
    bad = {int(r["index"]): r for r in ans.get("refused", []) if r.get("kind") == "session"}
    rows = []
    for k, s in enumerate(specs):
        sid = first + k
        if k in bad:
            refused.append(_refused(k, sid, str(bad[k]["code"]), f"sessions[{k}]: "
                                    f"{bad[k]['error']}"))
            continue
        rows.append({"session_id": sid, "name": s["name"], "created_by": who.name,
                     "secret_fingerprint": hashlib.sha256(secrets_[k]).hexdigest()[:16],
                     "internal": False})
        created.append({"session_id": sid, "name": s["name"], "secret": secrets_[k].hex(),
                        "queue": s.get("queue", 0)})
    if rows:
        _record(cp, GwSession, rows, "sessions")
    return {"created": created, "refused": refused}
