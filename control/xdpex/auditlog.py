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
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table

from .auditspool import FLUSH_S, AuditSpool, SpoolRecord
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
    __slots__ = ("values", "record_id", "done", "fut", "error", "dedupe", "ref")

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
        self.dedupe = False  # a recovered spool record: insert only if not in the table yet
        self.ref: _Item | None = None  # a spool result: update the record `ref` inserted


def _text(s: str, n: int) -> str:
    """At most `n` characters, a NUL written as \\u0000: PostgreSQL text cannot hold NUL, and a
    request body with one must still be recorded (else the change would be refused, 503)."""
    s = s[:n]
    return s.replace("\x00", "\\u0000")[:n] if "\x00" in s else s


def _row(who: Principal | None, action: str, target: str, detail: str, result: str) -> dict:
    return {
        "at": utcnow(),
        "actor": who.name if who else "anonymous",
        "role": who.role if who else "-",
        "action": _text(action, 128),
        "target": _text(target, 256),
        "detail": _text(detail, 4000),
        "result": _text(result, 256),
    }


class AuditLog:
    """Thread-safe; one per ControlPlane. `close` commits what is queued and stops the thread."""

    def __init__(
        self,
        engine: Engine,
        spool_dir: Path | None = None,
        spool_name: str = "audit-spool",
        spool_flush_s: float = FLUSH_S,
    ):
        self.engine = engine
        self._spool = AuditSpool(spool_dir, spool_name) if spool_dir is not None else None
        self._spool_flush_s = spool_flush_s
        self._open: dict[int, _Item] = {}  # spool key -> its record, until its result is in
        self._spool_retry: list[_Item] = []  # spool items of a transaction that failed
        self._asleep = False  # the writer waits for work without a timeout
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
        self._find = (
            f"SELECT id FROM {_T.name} WHERE at = {ph} AND actor = {ph} AND action = {ph} "
            f"AND target = {ph}"
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

    def start(self) -> None:
        """Start the writer now (it commits what an earlier run left in the spool first)."""
        with self._cv:
            self._ensure_thread()

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

    def _spool_due(self) -> bool:
        sp = self._spool
        return sp is not None and (sp.pending() or bool(self._spool_retry))

    def _run(self) -> None:
        if self._spool is not None:
            self._recover()
        while True:
            with self._cv:
                while not self._urgent and not self._stop:
                    if self._spool_due():
                        if not self._cv.wait(self._spool_flush_s):
                            break  # spool lines waited long enough
                    elif not self._q:
                        self._asleep = True  # until woken: a spool line wakes it (spool_begin)
                        self._cv.wait()
                        self._asleep = False
                    elif not self._cv.wait(FINISH_DELAY_S):
                        break  # only results queued, and they waited long enough
                stopping = self._stop
                if not self._q and not self._spool_due():
                    if stopping:
                        return
                    continue
                n = min(len(self._q), MAX_BATCH)
                batch = [self._q.popleft() for _ in range(n)]
                self._urgent = bool(self._q)
            self._write(batch)
            if stopping and self._spool_retry:
                log.error(
                    "audit: %d spooled records not committed at close; they stay in "
                    "the spool and are committed at the next start",
                    len(self._spool_retry),
                )
                return

    # -- the spool (order entry) --------------------------------------------------------------
    def _recover(self) -> None:
        """Queue the records of an earlier run's spool (they are committed with the first
        batch, each only if the table does not have it yet)."""
        assert self._spool is not None
        try:
            recs = self._spool.recover()
        except OSError as e:
            log.error("audit spool %s cannot be read: %s", self._spool.dir, e)
            return
        if recs:
            log.warning("audit: %d spooled records from an earlier run to commit", len(recs))
            self._spool_retry.extend(self._spool_items(recs))
            self._open.clear()  # a recovered record without its result stays pending

    def _spool_items(self, recs: list[SpoolRecord]) -> list[_Item]:
        """Items for spool lines: a record and its result in one take become one insert."""
        items: list[_Item] = []
        fresh: set[int] = set()  # records of this take, not written yet
        opened = self._open
        for r in recs:
            if r.begin:
                it = _Item(r.values, 0, None)
                it.dedupe = r.recovered
                opened[r.key] = it
                items.append(it)
                fresh.add(id(it))
                continue
            begun = opened.pop(r.key, None)
            if begun is None:
                continue  # its record was never written (cut short by a crash)
            if id(begun) in fresh:
                assert begun.values is not None
                begun.values["result"] = r.values["result"]
            else:
                up = _Item({"result": r.values["result"]}, begun.record_id, None)
                up.ref = begun
                items.append(up)
        if len(opened) > 100_000:  # results that never came (a bug): do not grow forever
            for k in list(opened)[:50_000]:
                del opened[k]
        return items

    def spool_begin(
        self, who: Principal | None, action: str, target: str, detail: str, now: bool = True
    ) -> int:
        """Append an order-entry record to the spool (result `pending`); raises Unavailable
        when it cannot be written, and the orders must then not be entered. now=False: written
        by the next `spool_flush`, which must come before the orders are sent."""
        if self._spool is None:
            return self.begin(who, action, target, detail)
        key = self._spool.begin(_row(who, action, target, detail, PENDING), now)
        if self._asleep or self._thread is None:
            with self._cv:
                self._ensure_thread()
                self._cv.notify()  # it then waits FLUSH_S for more before it commits
        return key

    def spool_flush(self) -> None:
        if self._spool is not None:
            self._spool.flush()

    def spool_finish(self, key: int, result: str) -> None:
        if self._spool is None:
            self.finish(key, result)
            return
        try:
            self._spool.finish(key, result)
        except Unavailable as e:
            log.error("audit: result %r of spooled record %d not written: %s", result, key, e)

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
                    rid = it.ref.record_id if it.ref is not None else it.record_id
                    if rid:
                        ups.append((v["result"], v.get("action"), rid))
                    continue
                at = self._at(v["at"]) if self._at else v["at"]
                if it.dedupe:
                    cur.execute(self._find, (at, v["actor"], v["action"], v["target"]))
                    row = cur.fetchone()
                    if row is not None:
                        it.record_id = int(row[0])
                        if v["result"] != PENDING:
                            ups.append((v["result"], None, it.record_id))
                        continue
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
        spooled: list[_Item] = []
        if self._spool is not None:
            spooled, self._spool_retry = self._spool_retry, []
            try:
                spooled += self._spool_items(self._spool.take())
            except OSError as e:
                log.error("audit spool %s cannot be read: %s", self._spool.dir, e)
        items = spooled + batch if spooled else batch
        try:
            try:
                self._write_once(items)
            except Exception:  # noqa: BLE001 - once more on a fresh connection (server restart)
                log.warning("audit batch failed, retrying on a new connection", exc_info=True)
                self._rolled_back(items)
                self._write_once(items)
            self.batches += 1
            if self._spool is not None:
                self._spool.committed()
        except Exception as e:  # noqa: BLE001 - reported to every waiter and logged
            log.exception("audit records not written (%d in the batch)", len(items))
            self._rolled_back(items)
            for it in batch:
                it.error = e
            if spooled:  # kept (and in the spool files): tried again with the next batch
                self._spool_retry = spooled
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

    @staticmethod
    def _rolled_back(items: list[_Item]) -> None:
        for it in items:
            if it.values is not None and "at" in it.values:
                it.record_id = 0  # inserts of the failed transaction were rolled back

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
        vals: dict[str, Any] = {"result": _text(result, 256)}
        if action:
            vals["action"] = _text(action, 128)
        self._put(_Item(vals, record_id, None), urgent=False)

    def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        if self._thread is not None:
            self._wait(None)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()  # the writer's last take then empties and removes every file
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
