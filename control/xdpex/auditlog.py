"""The audit log writer: one thread that group-commits audit records for REST and gRPC.

Every change goes through the API in two steps, so that no crash can lose the record of a change
that was applied:

1. `begin` (or `begin_async`) inserts the record (who, what, the request) with result
   `pending` and returns only once that insert is committed. The front end applies the change
   only after this; if the insert fails, the change is refused (503 / UNAVAILABLE).
2. `finish` sets the final result (and the route's action name). It is queued, not waited for,
   and does not wake the writer: it is committed with the next record's insert, or after at most
   FINISH_DELAY_S. A crash before that leaves the record with result `pending`, i.e. "attempted,
   result not recorded" - the change itself is then visible in the journal and the orders table.

Concurrent requests share transactions: the writer takes everything queued since its last
commit (inserts of waiting requests and finishes of answered ones) into one transaction, so a
commit is paid once per batch, not per request, and the event loop never waits on the database.
`record` writes a complete record in one step (waits for its commit); `flush` waits until
everything queued before it is committed (reads of the log call it first).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, Table

from .auth import Principal
from .errors import Unavailable
from .models import AuditRecord, utcnow

log = logging.getLogger("xdpex.audit")
PENDING = "pending"
MAX_BATCH = 1024
FINISH_DELAY_S = 0.05  # a result with nothing else to write waits this long to share a commit
_T: Table = AuditRecord.__table__  # type: ignore[assignment]
_COLS = ("at", "actor", "role", "action", "target", "detail", "result")


class _Item:
    __slots__ = ("values", "record_id", "done", "fut", "error")

    def __init__(
        self,
        values: dict[str, Any] | None,
        record_id: int,
        done: Callable | None,
        fut: asyncio.Future | None = None,
    ):
        self.values = values  # None: a flush marker
        self.record_id = record_id  # 0: insert; else: update of that record
        self.done = done  # called with the item once its transaction committed or failed
        self.fut = fut  # or: resolved with the item on its event loop
        self.error: Exception | None = None


def _row(who: Principal | None, action: str, target: str, detail: str, result: str) -> dict:
    return {
        "at": utcnow(),
        "actor": who.name if who else "anonymous",
        "role": who.role if who else "-",
        "action": action[:128],
        "target": target[:256],
        "detail": detail[:4000],
        "result": result[:256],
    }


class AuditLog:
    """Thread-safe; one per ControlPlane. `close` commits what is queued and stops the thread."""

    def __init__(self, engine: Engine):
        self.engine = engine
        d = engine.dialect
        ph = "?" if d.paramstyle == "qmark" else "%s"
        self._returning = d.name != "sqlite"  # SQLite: cursor.lastrowid
        self._insert = (
            f"INSERT INTO {_T.name} ({', '.join(_COLS)}) VALUES ({', '.join([ph] * len(_COLS))})"
            + (" RETURNING id" if self._returning else "")
        )
        self._update = (
            f"UPDATE {_T.name} SET result = {ph}, action = COALESCE({ph}, action) WHERE id = {ph}"
        )
        self._at = _T.c.at.type.bind_processor(d)  # SQLite stores datetimes as text
        self._q: deque[_Item] = deque()
        self._cv = threading.Condition()
        self._stop = False
        self._urgent = False  # an item someone waits for is queued
        self._thread: threading.Thread | None = None
        self.batches = 0  # transactions committed (the benchmark reports records per commit)
        self.records = 0
        self._raw: Any = None  # the writer thread's DB-API connection (from the pool)

    # -- writer thread ------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def _put(self, item: _Item, urgent: bool = True) -> None:
        """Queue an item; an urgent one (someone waits for it) wakes the writer, others wait
        for the next urgent one or at most FINISH_DELAY_S."""
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._ensure_thread()
            self._q.append(item)
            if urgent:
                self._urgent = True
                self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._urgent and not self._stop:
                    if not self._q:
                        self._cv.wait()
                    elif not self._cv.wait(FINISH_DELAY_S):
                        break  # only results queued, and they waited long enough
                if not self._q:
                    if self._stop:
                        return
                    continue
                n = min(len(self._q), MAX_BATCH)
                batch = [self._q.popleft() for _ in range(n)]
                self._urgent = bool(self._q)
            self._write(batch)

    def _write_once(self, batch: list[_Item]) -> None:
        # Plain DB-API statements on a connection this thread keeps: it shares the GIL with the
        # event loop, and SQLAlchemy's per-statement and pool work was most of its time.
        if self._raw is None:
            self._raw = self.engine.raw_connection()
        raw = self._raw
        try:
            cur = raw.cursor()
            ups = []
            for it in batch:
                v = it.values
                if v is None:
                    continue
                if "at" not in v:  # a finish: update of a record inserted earlier
                    ups.append((v["result"], v.get("action"), it.record_id))
                    continue
                at = self._at(v["at"]) if self._at else v["at"]
                cur.execute(self._insert, (at, *(v[k] for k in _COLS[1:])))
                rid = cur.fetchone()[0] if self._returning else cur.lastrowid  # type: ignore[index]
                it.record_id = int(rid)
            if ups:
                cur.executemany(self._update, ups)
            cur.close()
            raw.commit()
            self.records += sum(1 for it in batch if it.values and "at" in it.values)
        except BaseException:
            self._raw = None
            try:
                raw.rollback()  # no lock may outlive the failed transaction
            except Exception:  # noqa: BLE001 - the connection may be gone
                log.debug("rollback of the audit connection failed", exc_info=True)
            try:
                raw.invalidate()  # a fresh connection for the next attempt
            except Exception:  # noqa: BLE001
                log.debug("invalidating the audit connection failed", exc_info=True)
            raise

    def _write(self, batch: list[_Item]) -> None:
        try:
            try:
                self._write_once(batch)
            except Exception:  # noqa: BLE001 - once more on a fresh connection (server restart)
                log.warning("audit batch failed, retrying on a new connection", exc_info=True)
                for it in batch:
                    if it.values is not None and "at" in it.values:
                        it.record_id = 0  # inserts of the failed transaction were rolled back
                self._write_once(batch)
            self.batches += 1
        except Exception as e:  # noqa: BLE001 - reported to every waiter and logged
            log.exception("audit records not written (%d in the batch)", len(batch))
            for it in batch:
                it.error = e
        by_loop: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        for it in batch:
            if it.fut is not None:
                by_loop.setdefault(it.fut.get_loop(), []).append(it)
            elif it.done is not None:
                it.done(it)
        for loop, items in by_loop.items():  # one wake-up per event loop and batch
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass

    # -- blocking API (gRPC threads, the service layer) ---------------------------------------
    def _wait(self, values: dict | None, record_id: int = 0) -> _Item:
        ev = threading.Event()
        item = _Item(values, record_id, lambda _it: ev.set())
        self._put(item)
        ev.wait()
        return item

    def begin(self, who: Principal | None, action: str, target: str, detail: str) -> int:
        """Insert a `pending` record and return its id once committed; raises Unavailable."""
        it = self._wait(_row(who, action, target, detail, PENDING))
        if it.error is not None:
            raise Unavailable(f"audit log not writable, change refused: {it.error}")
        return it.record_id

    def record(
        self, who: Principal | None, action: str, target: str, detail: str, result: str
    ) -> None:
        """A complete record in one step (for attempts that changed nothing); waits for it."""
        it = self._wait(_row(who, action, target, detail, result))
        if it.error is not None:
            log.error("audit record not written: %s %s %s", action, target, result)

    def finish(self, record_id: int, result: str, action: str | None = None) -> None:
        """Set the result of a record from `begin`; queued, committed with the next batch."""
        vals: dict[str, Any] = {"result": result[:256]}
        if action:
            vals["action"] = action[:128]
        self._put(_Item(vals, record_id, None), urgent=False)

    def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        if self._thread is not None:
            self._wait(None)

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    # -- asyncio API (the REST front end: the event loop never waits on the database) ---------
    async def begin_async(
        self, who: Principal | None, action: str, target: str, detail: str
    ) -> int:
        fut: asyncio.Future[_Item] = asyncio.get_running_loop().create_future()
        self._put(_Item(_row(who, action, target, detail, PENDING), 0, None, fut))
        it = await fut
        if it.error is not None:
            raise Unavailable(f"audit log not writable, change refused: {it.error}")
        return it.record_id


def _resolve(items: list[_Item]) -> None:
    for it in items:
        if it.fut is not None and not it.fut.done():
            it.fut.set_result(it)
