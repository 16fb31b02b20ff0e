"""Gateway configuration in the service layer (mixed into ControlPlane): symbols, session
credentials, source allowlist and rate limit, book snapshots and dataplane status.

Every change is applied to xdpexd through its control socket first (it validates, journals and,
in AF_XDP mode, writes the XDP program's maps) and recorded in the database after, so the
database never claims something the gateway refused. A refusal is answered with the dataplane's
own reason: 409 when the request conflicts with what the dataplane holds (the symbol exists with
other parameters, a limit is reached, the engine is out of memory), 422 naming the field
otherwise. An apply the dataplane answers with fewer changes than asked (its engine refused an
entry) is checked against what the dataplane then holds (`symbols`, `sessions`) and refused the
same way, with nothing stored. Changes and the periodic reconciliation (xdpex.reconcile) hold
`config_lock`, so the reconciliation never sees a change half made.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from .auth import Principal
from .dataplane import ControlClient, DataplaneRejected
from .errors import Conflict, InvalidArgument, NotFound, ServiceError, Unavailable
from .models import ConfigItem, GwSession, Symbol

log = logging.getLogger("xdpex.configure")

# A refusal that names the dataplane's state or capacity rather than a bad value (HTTP 409).
_STATE_REFUSAL = re.compile(
    r"exists|already|limit|out of memory|cannot allocate|no (room|space)|full|reached", re.I
)
# xdpexd's refusal codes (docs/dataplane.md, Refusals) about its state or capacity: 409.
STATE_CODES = frozenset(
    ("symbol_conflict", "session_queue_conflict", "out_of_memory", "engine_refused", "standby",
     "limit_reached", "unknown_symbol")
)  # fmt: skip
# ... and the API field the others are about, when the message names no field.
CODE_FIELDS = {
    "id_over_limit": "symbol_id",
    "bad_tick": "tick",
    "bad_lot": "lot",
    "bad_band": "band_low",
    "band_off_tick": "band_low",
    "bad_max_qty": "max_qty",
    "bad_name": "name",
    "queue_not_served": "queue",
}
# The dataplane's field names (config fragment) -> the API's.
_SYMBOL_FIELDS = {
    "id": "symbol_id",
    "band": "band_low",
    "name": "name",
    "tick": "tick",
    "lot": "lot",
    "max_qty": "max_qty",
    "queue": "queue",
    "halted": "halted",
}
_SESSION_FIELDS = {
    "queue": "queue",
    "stp": "stp",
    "cancel_on_disconnect": "cancel_on_disconnect",
    "limits.rate": "rate",
    "limits.burst": "burst",
}


def dataplane_refusal(
    e: DataplaneRejected, fields: dict[str, str], default_field: str, what: str
) -> ServiceError:
    """The API's answer to a refusal of xdpexd: Conflict for state and capacity, otherwise
    InvalidArgument on the API field the dataplane's message names (`config.symbols[0].tick:
    ...` -> tick). The dataplane's message is kept whole."""
    msg = str(e)
    if e.code in STATE_CODES or (not e.code and _STATE_REFUSAL.search(msg)):
        return Conflict(f"{what}: refused by the dataplane: {msg}")
    m = re.match(r"(?:config\.)?\w+\[\d+\]\.([\w.]+):", msg)
    field = fields.get(m.group(1), "") if m else ""
    field = field or CODE_FIELDS.get(e.code, default_field)
    return InvalidArgument(field, f"refused by the dataplane: {msg}")


def dataplane_symbol(spec: dict[str, Any]) -> dict[str, Any]:
    """A symbol as the dataplane's `symbols` query shows it."""
    return {
        "id": spec["symbol_id"],
        "name": spec["name"],
        "tick": spec["tick"],
        "lot": spec["lot"],
        "band": [spec["band_low"], spec["band_high"]],
        "max_qty": spec["max_qty"],
        "queue": spec["queue"],
    }


class ConfigService:
    """Configuration; ControlPlane provides the attributes declared here."""

    db: sessionmaker[Session]
    ctl: ControlClient
    config_lock: threading.RLock

    def dataplane_symbols(self) -> dict[int, dict[str, Any]]:
        """The symbols xdpexd holds, by id."""
        return {int(y["id"]): y for y in self.ctl.symbols().get("symbols", [])}

    # -- symbols ------------------------------------------------------------------------------
    def list_symbols(self, who: Principal) -> list[dict[str, Any]]:
        who.require("viewer")
        with self.db() as db:
            return [self._sym(s) for s in db.scalars(select(Symbol).order_by(Symbol.symbol_id))]

    def get_symbol(self, who: Principal, symbol_id: int) -> dict[str, Any]:
        who.require("viewer")
        with self.db() as db:
            s = db.get(Symbol, symbol_id)
            if s is None:
                raise NotFound(f"symbol {symbol_id} is not configured through the control plane")
            return self._sym(s)

    @staticmethod
    def _sym(s: Symbol) -> dict[str, Any]:
        return {
            "symbol_id": s.symbol_id,
            "name": s.name,
            "tick": s.tick,
            "lot": s.lot,
            "band_low": s.band_low,
            "band_high": s.band_high,
            "max_qty": s.max_qty,
            "queue": s.queue,
            "halted": s.halted,
        }

    def create_symbol(self, who: Principal, spec: dict[str, Any]) -> dict[str, Any]:
        who.require("operator")
        if spec["band_low"] > spec["band_high"]:
            raise InvalidArgument("band_low", "must not exceed band_high")
        sid = spec["symbol_id"]
        with self.config_lock:
            with self.db() as db:
                if db.get(Symbol, sid) is not None:
                    raise Conflict(f"symbol {sid} already exists")
                if db.scalar(select(Symbol).where(Symbol.name == spec["name"])) is not None:
                    raise Conflict(f"symbol name {spec['name']!r} is already used")
            want = dataplane_symbol(spec)
            frag = dict(want, halted=spec["halted"])
            try:
                ans = self.ctl.apply({"symbols": [frag]})
            except DataplaneRejected as e:
                raise dataplane_refusal(e, _SYMBOL_FIELDS, "symbol_id", f"symbol {sid}") from e
            if (ans.get("applied") or {}).get("symbols") != 1:
                # Taken, but not added: the engine refused the entry. Only what the dataplane
                # then holds counts.
                live = self.dataplane_symbols().get(sid)
                if live is None or {k: live.get(k) for k in want} != want:
                    reason = "; ".join(ans.get("refused") or []) or (
                        "its engine did not add the symbol (no reason given; "
                        f"applied {ans.get('applied')})"
                    )
                    raise Conflict(f"symbol {sid}: refused by the dataplane: {reason}")
            try:
                with self.db.begin() as db:
                    s = Symbol(**spec)
                    db.add(s)
            except Exception as e:
                log.error("symbol %s is in the dataplane but could not be recorded: %s", sid, e)
                raise Unavailable(
                    f"symbol {sid} was added to the dataplane but the database did not record "
                    f"it ({type(e).__name__}); the reconciliation reports it until the same "
                    "request is repeated"
                ) from e
        return self._sym(s)

    def set_halted(self, who: Principal, symbol_id: int, halted: bool) -> dict[str, Any]:
        who.require("operator")
        with self.config_lock:
            if symbol_id:
                self.get_symbol(who, symbol_id)
            try:
                (self.ctl.halt if halted else self.ctl.resume)(symbol_id)
            except DataplaneRejected as e:
                raise Conflict(
                    f"symbol {symbol_id}: refused by the dataplane: {e} (the control plane's "
                    "database has it: the reconciliation reports the difference)"
                ) from e
            with self.db.begin() as db:
                q = (
                    select(Symbol)
                    if symbol_id == 0
                    else select(Symbol).where(Symbol.symbol_id == symbol_id)
                )
                for s in db.scalars(q):
                    s.halted = halted
        return {"symbol_id": symbol_id, "halted": halted}

    # -- sessions -----------------------------------------------------------------------------
    def _next_session_id(self, db: Session) -> int:
        used = {int(x) for x in db.scalars(select(GwSession.session_id))}
        try:
            used |= {int(s["id"]) for s in self.ctl.sessions()}
        except Unavailable:
            raise
        return max(used, default=0) + 1

    def create_session(
        self, who: Principal, spec: dict[str, Any], internal: bool = False
    ) -> dict[str, Any]:
        if not internal:
            who.require("operator")
        secret = secrets.token_bytes(32)
        with self.config_lock:
            with self.db() as db:
                sid = self._next_session_id(db)
            try:
                ans = self.ctl.apply(
                    {
                        "sessions": [
                            {
                                "id": sid,
                                "secret": secret.hex(),
                                "stp": spec.get("stp", "none"),
                                "cancel_on_disconnect": spec.get("cancel_on_disconnect", True),
                                "enabled": True,
                                "queue": spec.get("queue", 0),
                                "limits": {
                                    "rate": spec.get("rate", 0),
                                    "burst": spec.get("burst", 0),
                                },
                            }
                        ]
                    }
                )
            except DataplaneRejected as e:
                if e.code == "id_over_limit" or re.match(r"(config\.)?sessions\[0\]\.id: ", f"{e}"):
                    raise Conflict(
                        f"session limit reached: the next free session id {sid} is above the "
                        f"dataplane's engine.max_sessions (dataplane: {e})"
                    ) from e
                raise dataplane_refusal(e, _SESSION_FIELDS, "name", f"session {sid}") from e
            if (ans.get("applied") or {}).get("sessions") != 1:
                live = {int(x["id"]) for x in self.ctl.sessions()}
                if sid not in live:
                    reason = "; ".join(ans.get("refused") or []) or (
                        f"not added (applied {ans.get('applied')})"
                    )
                    raise Conflict(f"session {sid}: refused by the dataplane: {reason}")
            with self.db.begin() as db:
                db.add(
                    GwSession(
                        session_id=sid,
                        name=spec["name"],
                        secret_fingerprint=hashlib.sha256(secret).hexdigest()[:16],
                        created_by=who.name,
                        internal=internal,
                    )
                )
        return {
            "session_id": sid,
            "name": spec["name"],
            "secret": secret.hex(),
            "queue": spec.get("queue", 0),
        }

    def list_sessions(self, who: Principal) -> list[dict[str, Any]]:
        who.require("viewer")
        try:
            live = {int(s["id"]): s for s in self.ctl.sessions()}
            reachable = True
        except Unavailable:
            live, reachable = {}, False
        with self.db() as db:
            rows = {r.session_id: r for r in db.scalars(select(GwSession))}
        out = []
        for sid in sorted(set(rows) | set(live)):
            r, lv = rows.get(sid), live.get(sid, {})
            out.append(
                {
                    "session_id": sid,
                    "name": r.name if r else None,
                    "internal": bool(r and r.internal),
                    "disabled": bool(r and r.disabled),
                    "state": lv.get("state", "unknown" if not reachable else "not configured"),
                    "bound": lv.get("bound"),
                    "next_in": lv.get("next_in"),
                    "next_out": lv.get("next_out"),
                    "queue": lv.get("queue"),
                }
            )
        return out

    def get_session(self, who: Principal, session_id: int) -> dict[str, Any]:
        for s in self.list_sessions(who):
            if s["session_id"] == session_id:
                return s
        raise NotFound(f"session {session_id} does not exist")

    def disconnect_session(self, who: Principal, session_id: int) -> dict[str, Any]:
        who.require("operator")
        self.get_session(who, session_id)
        try:
            self.ctl.logout(session_id)
        except DataplaneRejected as e:  # "session N: not logged in"
            raise Conflict(str(e)) from e
        return {"session_id": session_id, "disconnected": True}

    def set_session_enabled(self, who: Principal, session_id: int, enabled: bool) -> dict[str, Any]:
        who.require("operator")
        with self.config_lock:
            self.get_session(who, session_id)
            try:
                self.ctl.apply({"sessions": [{"id": session_id, "enabled": enabled}]})
            except DataplaneRejected as e:
                raise Conflict(f"session {session_id}: refused by the dataplane: {e}") from e
            with self.db.begin() as db:
                r = db.get(GwSession, session_id)
                if r is not None:
                    r.disabled = not enabled
        return {"session_id": session_id, "enabled": enabled}

    # -- allowlist and rate -------------------------------------------------------------------
    def _item(self, key: str, default: Any) -> Any:
        with self.db() as db:
            it = db.get(ConfigItem, key)
            return json.loads(it.value) if it else default

    def _set_item(self, key: str, value: Any) -> None:
        with self.db.begin() as db:
            it = db.get(ConfigItem, key)
            if it is None:
                db.add(ConfigItem(key=key, value=json.dumps(value)))
            else:
                it.value = json.dumps(value)

    def get_allowlist(self, who: Principal) -> list[str]:
        who.require("viewer")
        return list(self._item("allowlist", []))

    def add_allow(self, who: Principal, prefix: str) -> list[str]:
        who.require("operator")
        cur = self.get_allowlist(who)
        if prefix in cur:
            raise Conflict(f"prefix {prefix} is already in the allowlist")
        new = sorted(cur + [prefix])
        self.ctl.apply({"allowlist": new})
        self._set_item("allowlist", new)
        return new

    def remove_allow(self, who: Principal, prefix: str) -> list[str]:
        who.require("operator")
        cur = self.get_allowlist(who)
        if prefix not in cur:
            raise NotFound(f"prefix {prefix} is not in the allowlist")
        new = [p for p in cur if p != prefix]
        self.ctl.apply({"allowlist": new})
        self._set_item("allowlist", new)
        return new

    def get_rate(self, who: Principal) -> dict[str, int]:
        who.require("viewer")
        return dict(self._item("rate", {"pps": 0, "burst": 0}))

    def set_rate(self, who: Principal, pps: int, burst: int) -> dict[str, int]:
        who.require("operator")
        if pps and not burst:
            burst = pps  # one second's worth
        self.ctl.apply({"rate": {"pps": pps, "burst": burst}})
        self._set_item("rate", {"pps": pps, "burst": burst})
        return {"pps": pps, "burst": burst}

    # -- books and dataplane ------------------------------------------------------------------
    def book(self, who: Principal, symbol_id: int, depth: int) -> dict[str, Any]:
        who.require("viewer")
        try:
            b = self.ctl.book(symbol_id, depth)
        except DataplaneRejected as e:
            if e.code == "unknown_symbol" or str(e).endswith(": unknown"):
                raise NotFound(str(e)) from e
            raise
        lv = lambda xs: [{"price": p, "qty": q, "orders": n} for p, q, n in xs]  # noqa: E731
        return {
            "symbol_id": symbol_id,
            "bids": lv(b.get("bids", [])),
            "asks": lv(b.get("asks", [])),
        }

    def dataplane_status(self, who: Principal) -> dict[str, Any]:
        who.require("viewer")
        st = self.ctl.stats()
        h = self.ctl.state_hash()
        return {
            k: st.get(k)
            for k in (
                "mode",
                "attach_mode",
                "bind_mode",
                "durability",
                "poll",
                "uptime_s",
                "queues",
                "engine",
            )
        } | {"state_hash": h.get("state_hash"), "ha": self._ha()}

    def _ha(self) -> dict[str, Any] | None:
        """Role, epoch, lease, standbys and replication lag (records, bytes, microseconds) or
        what a standby follows (docs/ha.md); None when the dataplane does not say."""
        try:
            ha = self.ctl.request("ha")
        except ServiceError:
            return None
        ha.pop("ok", None)
        keep = ("queue", "role", "epoch", "journal_seq", "acked_seq", "held_datagrams",
                "draining", "standbys", "following")
        ha["queues"] = [{k: q[k] for k in keep if k in q} for q in ha.get("queues", [])]
        return ha
