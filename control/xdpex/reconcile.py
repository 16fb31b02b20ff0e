"""Periodic reconciliation: the control plane's stored configuration against what xdpexd holds.

Every `reconcile_interval_s` a thread compares the database's symbols and sessions with the
dataplane's (`symbols` and `sessions` on the control socket) and keeps the latest report. Three
kinds of difference:

- `missing_in_dataplane`: the database has a symbol or session the dataplane does not (the
  control plane would claim something the gateway does not do);
- `mismatch`: both have it with different parameters (tick, lot, band, max_qty, queue, halted;
  a session's enabled flag);
- `not_in_database`: the dataplane has it and the database does not. Symbols and sessions of
  xdpexd's configuration file are of this kind, so it is reported but does not make the control
  plane unready.

The report is in readiness (`checks.configuration`; the first two kinds make it not ready) and
in /metrics (`xdpex_config_differences{object,difference}`, `xdpex_config_reconciliations_total`,
`xdpex_config_reconcile_timestamp_seconds`). A comparison holds the configuration lock, so a
change half made (applied to the dataplane, not yet stored) is never reported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select

from .models import GwSession, Symbol

if TYPE_CHECKING:
    from .service import ControlPlane

log = logging.getLogger("xdpex.reconcile")

KINDS = ("missing_in_dataplane", "mismatch", "not_in_database")
OBJECTS = ("symbol", "session")


@dataclass(frozen=True)
class Difference:
    object: str  # symbol | session
    id: int
    kind: str  # one of KINDS
    detail: str

    def __str__(self) -> str:
        return f"{self.object} {self.id}: {self.kind}: {self.detail}"


@dataclass
class Report:
    at: float  # time.time() of the comparison
    differences: list[Difference] = field(default_factory=list)
    error: str = ""  # the comparison could not be made (dataplane or database unreachable)
    symbols: int = 0  # in the database
    sessions: int = 0

    @property
    def serious(self) -> list[Difference]:
        return [d for d in self.differences if d.kind != "not_in_database"]

    def summary(self) -> str:
        if self.error:
            return f"not compared: {self.error}"
        extra = [d for d in self.differences if d.kind == "not_in_database"]
        tail = (
            f"; {len(extra)} only in the dataplane (its configuration file or a change made "
            f"behind the API): {', '.join(str(d) for d in extra[:5])}"
            if extra
            else ""
        )
        if self.serious:
            n = len(self.serious)
            return (
                f"differs: {n} difference{'s' if n > 1 else ''}: "
                + "; ".join(str(d) for d in self.serious[:10])
                + tail
            )
        return f"ok: {self.symbols} symbols and {self.sessions} sessions agree{tail}"


SYMBOL_COLS = (
    Symbol.symbol_id,
    Symbol.tick,
    Symbol.lot,
    Symbol.band_low,
    Symbol.band_high,
    Symbol.max_qty,
    Symbol.queue,
    Symbol.halted,
)
SESSION_COLS = (GwSession.session_id, GwSession.disabled)
_NAMES = ("tick", "lot", "band_low", "band_high", "max_qty", "queue", "halted")


def _dp_key(y: dict[str, Any]) -> tuple:
    band = y.get("band") or (None, None)
    return (y.get("tick"), y.get("lot"), band[0], band[1], y.get("max_qty"), y.get("queue"),
            bool(y.get("halted")))  # fmt: skip


def compare(
    db_symbols: list[tuple],
    db_sessions: list[tuple],
    dp_symbols: list[dict[str, Any]],
    dp_sessions: list[dict[str, Any]],
) -> list[Difference]:
    """Every difference between the database's rows (SYMBOL_COLS, SESSION_COLS) and the
    dataplane's answers."""
    out: list[Difference] = []
    live = {int(y["id"]): y for y in dp_symbols}
    for sid, *mine in db_symbols:
        y = live.pop(int(sid), None)
        if y is None:
            out.append(Difference("symbol", sid, "missing_in_dataplane", "not in xdpexd"))
            continue
        mine[-1] = bool(mine[-1])
        theirs = _dp_key(y)
        if tuple(mine) != theirs:
            pairs = zip(_NAMES, mine, theirs, strict=True)
            diff = [f"{k} {a} here, {b} in xdpexd" for k, a, b in pairs if a != b]
            out.append(Difference("symbol", sid, "mismatch", ", ".join(diff)))
    for sid in sorted(live):
        out.append(Difference("symbol", sid, "not_in_database", "in xdpexd only"))
    sess = {int(x["id"]): x for x in dp_sessions}
    for sid, disabled in db_sessions:
        x = sess.pop(int(sid), None)
        if x is None:
            out.append(Difference("session", sid, "missing_in_dataplane", "not in xdpexd"))
            continue
        enabled = bool(x.get("enabled", True))
        if enabled == bool(disabled):
            out.append(
                Difference(
                    "session",
                    sid,
                    "mismatch",
                    f"{'disabled' if disabled else 'enabled'} here, "
                    f"{'enabled' if enabled else 'disabled'} in xdpexd",
                )
            )
    for sid in sorted(sess):
        out.append(Difference("session", sid, "not_in_database", "in xdpexd only"))
    return out


class Reconciler:
    """The periodic comparison of one ControlPlane; `latest()` is its last report."""

    def __init__(self, cp: ControlPlane, interval_s: float):
        self.cp = cp
        self.interval_s = interval_s
        self.runs = 0
        self._last: Report | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: set[str] = set()  # differences already logged

    def run_once(self) -> Report:
        cp = self.cp
        with cp.config_lock:
            try:
                dp_sym = cp.ctl.symbols().get("symbols", [])
                dp_ses = cp.ctl.sessions()
                with cp.engine.connect() as conn:  # plain rows: 10,000 ORM objects cost 0.5 s
                    db_sym = [tuple(r) for r in conn.execute(select(*SYMBOL_COLS))]
                    db_ses = [tuple(r) for r in conn.execute(select(*SESSION_COLS))]
                rep = Report(
                    time.time(),
                    compare(db_sym, db_ses, dp_sym, dp_ses),
                    symbols=len(db_sym),
                    sessions=len(db_ses),
                )
            except Exception as e:  # noqa: BLE001 - reported, tried again next period
                rep = Report(time.time(), error=f"{type(e).__name__}: {e}")
        self.runs += 1
        self._last = rep
        now = {str(d) for d in rep.serious}
        for d in sorted(now - self._reported):
            log.error("configuration differs from the dataplane: %s", d)
        self._reported = now
        return rep

    def latest(self) -> Report:
        """The last report; a fresh one when there is none or it is older than two periods."""
        rep = self._last
        if rep is None or time.time() - rep.at > 2 * max(self.interval_s, 1.0):
            rep = self.run_once()
        return rep

    def start(self) -> None:
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="xdpex-reconcile", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - never let the thread die
                log.exception("reconciliation failed")


class ReconcileCollector(Collector):
    """/metrics view of the latest report (no comparison at scrape time)."""

    def __init__(self, rec: Reconciler):
        self.rec = rec

    def collect(self) -> Iterator[Metric]:
        rep = self.rec._last
        g = GaugeMetricFamily(
            "xdpex_config_differences",
            "differences between the control plane's stored configuration and xdpexd's, by "
            "object and kind (latest reconciliation)",
            labels=["object", "difference"],
        )
        for obj in OBJECTS:
            for kind in KINDS:
                n = (
                    sum(1 for d in rep.differences if d.object == obj and d.kind == kind)
                    if rep
                    else 0
                )
                g.add_metric([obj, kind], float(n))
        yield g
        ok = GaugeMetricFamily(
            "xdpex_config_reconcile_ok",
            "1 if the latest reconciliation compared both sides and found no serious difference",
        )
        ok.add_metric([], 1.0 if rep and not rep.error and not rep.serious else 0.0)
        yield ok
        ts = GaugeMetricFamily(
            "xdpex_config_reconcile_timestamp_seconds", "when the latest reconciliation ran"
        )
        ts.add_metric([], rep.at if rep else 0.0)
        yield ts
        c = CounterMetricFamily("xdpex_config_reconciliations", "reconciliations run")
        c.add_metric([], float(self.rec.runs))
        yield c
