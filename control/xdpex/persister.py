"""Persister: tails xdpexd's journal and writes orders, executions and session events to the
database (SQLite by default, PostgreSQL given a URL).

Each poll takes the records of complete writev batches from one queue's journal, turns them into
rows (Accepted/Rejected create orders, Fill adds an execution and updates its order, Cancelled and
Replaced update orders, session-event records add session events) and writes them in ONE
transaction together with the new journal position (`persister_position`, one row per queue).
A restart therefore resumes exactly after the last committed batch: no row is lost and none is
written twice. Inserts are batched (SQLAlchemy insertmanyvalues), updates are merged per order
within a poll.

Run: `python -m xdpex.persister` (settings from XDPEX_* / the env file; `--once` drains and exits).
With XDPEX_REDIS_URL set, the same process also runs the Redis publisher (xdpex.publisher).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from xdpex_proto import codec as c
from xdpex_proto.journal import (
    REC_INBOUND,
    REC_OUTBOUND,
    REC_SESSION,
    JournalReader,
    Record,
    SessKind,
    decode_session_event,
    queue_dirs,
)

from .db import make_engine, migrate
from .hafollow import Leader, cut, parse_nodes, reader_at
from .models import Execution, Order, PersisterPosition

log = logging.getLogger("xdpex.persister")

MSG = c.MSG_SIZE
# Field positions (after the type byte) of the messages we read, taken from the codec's layouts.
_F = {t: {n: i + 1 for i, n in enumerate(cls.FIELDS)} for t, cls in c.MESSAGE_TYPES.items()}
_ST = {t: cls.STRUCT for t, cls in c.MESSAGE_TYPES.items()}
T_NEW, T_ACC, T_REJ = int(c.MsgType.NEW_ORDER), int(c.MsgType.ACCEPTED), int(c.MsgType.REJECTED)
T_FILL, T_CXL, T_REPL = int(c.MsgType.FILL), int(c.MsgType.CANCELLED), int(c.MsgType.REPLACED)
SESSION_EVENTS = {int(k): k.name.lower() for k in SessKind}  # login, ..., admin_logout


def _msgs(rec: Record):
    p = rec.payload
    for i in range(rec.count):
        off = i * MSG
        t = p[off]
        st = _ST.get(t)
        if st is not None:
            yield t, st.unpack_from(p, off), i


class Batch:
    """Rows derived from a run of journal records, ready to be written in one transaction."""

    def __init__(self, queue: int):
        self.queue = queue
        self.new_orders: dict[int, dict[str, Any]] = {}  # order_id -> row
        self.rejected: list[dict[str, Any]] = []
        self.updates: dict[int, dict[str, Any]] = {}  # order_id -> merged update of older rows
        self.executions: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.inbound: dict[tuple[int, int], tuple] = {}  # (session, seq) -> NewOrder fields

    def add(self, rec: Record) -> None:
        if rec.type == REC_INBOUND:
            for t, v, i in _msgs(rec):
                if t == T_NEW:
                    self.inbound[(rec.session_id, rec.msg_seq + i)] = v
        elif rec.type == REC_OUTBOUND:
            for t, v, _ in _msgs(rec):
                self._outbound(rec, t, v)
        elif rec.type == REC_SESSION:
            ev = decode_session_event(rec.payload)
            kind = ev.kind if ev is not None else 0
            self.events.append(
                {
                    "queue": self.queue,
                    "session_id": rec.session_id,
                    "event": SESSION_EVENTS.get(kind, f"kind{kind}"),
                    "detail": ev.peer if ev is not None else "",
                    "journal_seq": rec.seq,
                    "ts_ns": rec.ts,
                }
            )

    def _outbound(self, rec: Record, t: int, v: tuple) -> None:
        q, sid, seq, ts = self.queue, rec.session_id, rec.seq, rec.ts
        if t == T_ACC:
            f = _F[T_ACC]
            self.new_orders[v[f["order_id"]]] = {
                "queue": q,
                "order_id": v[f["order_id"]],
                "session_id": sid,
                "cl_ord_id": v[f["cl_ord_id"]],
                "symbol_id": v[f["symbol_id"]],
                "side": v[f["side"]],
                "ord_type": v[f["ord_type"]],
                "tif": v[f["tif"]],
                "price": v[f["price"]],
                "qty": v[f["qty"]],
                "filled": 0,
                "leaves": v[f["qty"]],
                "status": "new",
                "reason": 0,
                "journal_seq": seq,
                "ts_ns": ts,
                "updated_seq": seq,
            }
        elif t == T_REJ:
            f = _F[T_REJ]
            if v[f["ref_type"]] != T_NEW:
                return  # a refused Cancel/Replace changes no order
            n = self.inbound.get((sid, v[f["ref_seq"]]))
            nf = _F[T_NEW]
            self.rejected.append(
                {
                    "queue": q,
                    "order_id": None,
                    "session_id": sid,
                    "cl_ord_id": v[f["cl_ord_id"]],
                    "symbol_id": v[f["symbol_id"]],
                    "side": n[nf["side"]] if n else 0,
                    "ord_type": n[nf["ord_type"]] if n else 0,
                    "tif": n[nf["tif"]] if n else 0,
                    "price": n[nf["price"]] if n else 0,
                    "qty": n[nf["qty"]] if n else 0,
                    "filled": 0,
                    "leaves": 0,
                    "status": "rejected",
                    "reason": v[f["reason"]],
                    "journal_seq": seq,
                    "ts_ns": ts,
                    "updated_seq": seq,
                }
            )
        elif t == T_FILL:
            f = _F[T_FILL]
            oid, qty, leaves = v[f["order_id"]], v[f["qty"]], v[f["leaves"]]
            self.executions.append(
                {
                    "queue": q,
                    "exec_id": v[f["exec_id"]],
                    "order_id": oid,
                    "session_id": sid,
                    "cl_ord_id": v[f["cl_ord_id"]],
                    "symbol_id": v[f["symbol_id"]],
                    "side": v[f["side"]],
                    "liquidity": v[f["liquidity"]],
                    "price": v[f["price"]],
                    "qty": qty,
                    "leaves": leaves,
                    "journal_seq": seq,
                    "ts_ns": ts,
                }
            )
            status = "filled" if leaves == 0 else "partially_filled"
            row = self.new_orders.get(oid)
            if row is not None:
                row["filled"] += qty
                row.update(leaves=leaves, status=status, updated_seq=seq)
            else:
                u = self._upd(oid)
                u["dfilled"] += qty
                u.update(leaves=leaves, status=status, useq=seq)
        elif t == T_CXL:
            f = _F[T_CXL]
            oid = v[f["order_id"]]
            row = self.new_orders.get(oid)
            vals = {"leaves": 0, "status": "cancelled", "reason": v[f["reason"]]}
            if row is not None:
                row.update(vals, updated_seq=seq)
            else:
                self._upd(oid).update(vals, useq=seq)
        elif t == T_REPL:
            f = _F[T_REPL]
            oid = v[f["order_id"]]
            ch = {
                "cl_ord_id": v[f["cl_ord_id"]],
                "price": v[f["price"]],
                "qty": v[f["qty"]],
                "leaves": v[f["leaves"]],
            }
            row = self.new_orders.get(oid)
            if row is not None:
                row.update(ch, updated_seq=seq)
                row["status"] = "partially_filled" if row["filled"] else "new"
            else:
                self._upd(oid).update(ch, status=None, useq=seq)

    def _upd(self, oid: int) -> dict[str, Any]:
        u = self.updates.get(oid)
        if u is None:
            u = self.updates[oid] = {
                "q": self.queue,
                "oid": oid,
                "dfilled": 0,
                "leaves": None,
                "status": None,
                "reason": None,
                "cl_ord_id": None,
                "price": None,
                "qty": None,
                "useq": 0,
            }
        return u

    @property
    def rows(self) -> int:
        return len(self.new_orders) + len(self.rejected) + len(self.executions) + len(self.events)


_ORDER_UPDATE = (
    update(Order)
    .where(Order.queue == bindparam("q"), Order.order_id == bindparam("oid"))
    .values(
        filled=Order.filled + bindparam("dfilled"),
        leaves=bindparam("leaves"),
        status=bindparam("status"),
        reason=bindparam("reason"),
        cl_ord_id=bindparam("cl_ord_id"),
        price=bindparam("price"),
        qty=bindparam("qty"),
        updated_seq=bindparam("useq"),
    )
)


ORDER_COLS = (
    "queue",
    "order_id",
    "session_id",
    "cl_ord_id",
    "symbol_id",
    "side",
    "ord_type",
    "tif",
    "price",
    "qty",
    "filled",
    "leaves",
    "status",
    "reason",
    "journal_seq",
    "ts_ns",
    "updated_seq",
)
EXEC_COLS = (
    "queue",
    "exec_id",
    "order_id",
    "session_id",
    "cl_ord_id",
    "symbol_id",
    "side",
    "liquidity",
    "price",
    "qty",
    "leaves",
    "journal_seq",
    "ts_ns",
)
EVENT_COLS = ("queue", "session_id", "event", "detail", "journal_seq", "ts_ns")


def bulk_insert(db: Session, table: str, cols: tuple[str, ...], rows: list[dict]) -> None:
    """Insert rows fast: COPY on PostgreSQL, one executemany on SQLite (same transaction)."""
    conn = db.connection()
    data = [tuple(r[c] for c in cols) for r in rows]
    if conn.dialect.name == "postgresql":
        raw: Any = conn.connection.dbapi_connection  # psycopg.Connection
        assert raw is not None
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp,
        ):
            for row in data:
                cp.write_row(row)
    else:
        marks = ", ".join("?" * len(cols))
        conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", data)


def write_batch(db: Session, b: Batch, position: tuple[int, int, int]) -> None:
    """Write a batch's rows and the journal position, in the caller's transaction."""
    if b.new_orders or b.rejected:
        bulk_insert(db, "orders", ORDER_COLS, list(b.new_orders.values()) + b.rejected)
    if b.updates:
        # Fill in unchanged columns from the current rows, then one executemany UPDATE.
        ids = list(b.updates)
        cur: dict[int | None, Any] = {}
        for i in range(0, len(ids), 1000):
            part = ids[i : i + 1000]
            for row in db.execute(
                select(
                    Order.order_id,
                    Order.status,
                    Order.reason,
                    Order.cl_ord_id,
                    Order.price,
                    Order.qty,
                    Order.filled,
                ).where(Order.queue == b.queue, Order.order_id.in_(part))
            ):
                cur[row[0]] = row
        params = []
        for oid, u in b.updates.items():
            if (r := cur.get(oid)) is None:
                log.warning(
                    "queue %d: journal updates order %d that was never accepted", b.queue, oid
                )
                continue
            filled = r.filled + u["dfilled"]
            status = u["status"] or ("partially_filled" if filled else "new")
            if r.status == "cancelled" and u["status"] is None:
                status = "cancelled"
            params.append(
                {
                    **u,
                    "status": status,
                    "reason": r.reason if u["reason"] is None else u["reason"],
                    "cl_ord_id": r.cl_ord_id if u["cl_ord_id"] is None else u["cl_ord_id"],
                    "price": r.price if u["price"] is None else u["price"],
                    "qty": r.qty if u["qty"] is None else u["qty"],
                    "leaves": u["leaves"] if u["leaves"] is not None else 0,
                }
            )
        if params:
            db.connection().execute(_ORDER_UPDATE, params)
    if b.executions:
        bulk_insert(db, "executions", EXEC_COLS, b.executions)
    if b.events:
        bulk_insert(db, "session_events", EVENT_COLS, b.events)
    seg, off, seq = position
    name = f"q{b.queue}"
    pos = db.get(PersisterPosition, name)
    if pos is None:
        db.add(PersisterPosition(name=name, segment=seg, offset=off, journal_seq=seq))
    else:
        pos.segment, pos.offset, pos.journal_seq = seg, off, seq


# --- what the database must hold --------------------------------------------------------------
@dataclass
class StoredOrders:
    """What the persister must have written, in one shape for the journal's view and the
    database's, so a check (the soak's storage scenario, the persister tests) compares them with
    ==: each accepted order's final state {(queue, order_id): [status, filled, leaves, price,
    qty]}, each rejected new order, sorted [(session_id, cl_ord_id, reason)], each execution,
    sorted [(queue, exec_id, order_id, price, qty, leaves)], and the order rows beyond one per
    order (a doubled row; never any in the journal's view)."""

    orders: dict[tuple[int, int], list[Any]] = field(default_factory=dict)
    rejected: list[tuple[int, int, int]] = field(default_factory=list)
    executions: list[tuple[int, ...]] = field(default_factory=list)
    doubled_rows: int = 0


def journal_orders(journal_dir: Path) -> StoredOrders:
    """From the journal's outbound answers alone."""
    v = StoredOrders()
    for q, qdir in queue_dirs(journal_dir).items():
        r = JournalReader(qdir, stall_s=0)
        try:
            while recs := r.poll(100000):
                for rec in recs:
                    if rec.type != REC_OUTBOUND:
                        continue
                    for i in range(rec.count):
                        m = c.decode_message(rec.payload, i * MSG)
                        if isinstance(m, c.Accepted):
                            v.orders[(q, m.order_id)] = ["new", 0, m.qty, m.price, m.qty]
                        elif isinstance(m, c.Rejected) and m.ref_type == c.MsgType.NEW_ORDER:
                            v.rejected.append((rec.session_id, m.cl_ord_id, int(m.reason)))
                        elif isinstance(m, c.Fill):
                            v.executions.append(
                                (q, m.exec_id, m.order_id, m.price, m.qty, m.leaves)
                            )
                            o = v.orders[(q, m.order_id)]
                            o[1] += m.qty
                            o[2] = m.leaves
                            o[0] = "filled" if m.leaves == 0 else "partially_filled"
                        elif isinstance(m, c.Cancelled):
                            o = v.orders[(q, m.order_id)]
                            o[0], o[2] = "cancelled", 0
        finally:
            r.close()
    v.rejected.sort()
    v.executions.sort()
    return v


def database_orders(db: Any) -> StoredOrders:
    """From the database (db: a SQLAlchemy Connection or Session)."""
    v = StoredOrders()
    for r in db.execute(
        select(
            Order.queue,
            Order.order_id,
            Order.status,
            Order.filled,
            Order.leaves,
            Order.price,
            Order.qty,
            Order.session_id,
            Order.cl_ord_id,
            Order.reason,
        )
    ):
        if r[1] is None:
            v.rejected.append((r[7], r[8], int(r[9])))
        elif (r[0], r[1]) in v.orders:
            v.doubled_rows += 1
        else:
            v.orders[(r[0], r[1])] = [r[2], r[3], r[4], r[5], r[6]]
    v.executions = [
        tuple(e)
        for e in db.execute(
            select(
                Execution.queue,
                Execution.exec_id,
                Execution.order_id,
                Execution.price,
                Execution.qty,
                Execution.leaves,
            )
        )
    ]
    v.rejected.sort()
    v.executions.sort()
    return v


class Persister:
    """Applies every queue's journal to the database; `step()` does one poll of each queue."""

    def __init__(
        self, engine: Engine, journal_dir: Path, batch: int = 5000, leader: Leader | None = None
    ):
        self.engine = engine
        self.journal_dir = Path(journal_dir)
        self.batch = batch
        self.leader = leader  # HA: follow the leader's journal (xdpex.hafollow)
        self.readers: dict[int, JournalReader] = {}
        self.rows_total = 0
        self.records_total = 0

    def _reader(self, q: int, qdir: Path) -> JournalReader:
        r = self.readers.get(q)
        if r is None:
            with Session(self.engine) as db:
                pos = db.get(PersisterPosition, f"q{q}")
            if self.leader is not None:  # the position may be another node's journal's
                r = reader_at(qdir, pos.journal_seq if pos else 0)
            else:
                r = (
                    JournalReader(qdir)
                    if pos is None
                    else JournalReader(qdir, pos.segment, pos.offset, pos.journal_seq)
                )
            self.readers[q] = r
        return r

    def positions(self) -> dict[int, int]:
        return {q: r.last_seq for q, r in self.readers.items()}

    def step(self) -> int:
        """Apply what is new in every queue; returns records applied."""
        n = 0
        limits: dict[int, int] | None = None
        if self.leader is not None:
            lead = self.leader.current()
            if lead is None:
                return 0  # no primary holds a lease: nothing certain to persist
            if lead.journal_dir != self.journal_dir:
                log.info("following the leader's journal %s", lead.journal_dir)
                self.close()
                self.readers.clear()
                self.journal_dir = lead.journal_dir
            limits = lead.limits
        for q, qdir in queue_dirs(self.journal_dir).items():
            r = self._reader(q, qdir)
            recs = r.poll(self.batch)
            if limits is not None:
                recs = cut(r, recs, limits.get(q, 0))
            if not recs:
                continue
            b = Batch(q)
            for rec in recs:
                b.add(rec)
            try:
                with Session(self.engine) as db, db.begin():
                    write_batch(db, b, r.position)
            except BaseException:
                r.close()  # re-read from the committed position next time
                self.readers.pop(q, None)
                raise
            n += len(recs)
            self.rows_total += b.rows
            self.records_total += len(recs)
        return n

    def drain(self) -> int:
        total = 0
        while n := self.step():
            total += n
        return total

    def close(self) -> None:
        for r in self.readers.values():
            r.close()


def main(argv: list[str] | None = None) -> int:
    from .config import load_settings

    ap = argparse.ArgumentParser(prog="xdpex-persister", description=__doc__.splitlines()[0])
    ap.add_argument("--once", action="store_true", help="apply what is there, then exit")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="xdpex-persister: %(message)s")
    s = load_settings()
    engine = make_engine(s.effective_database_url, s.db_schema)
    leader = Leader(parse_nodes(s.ha_nodes)) if s.ha_nodes else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if s.migrate_on_start:
        backoff = 0.1
        while True:  # started while the database is away: wait for it (--once: fail)
            try:
                migrate(engine)
                break
            except DBAPIError as e:
                if args.once or stop.is_set():
                    raise
                why = str(e.orig or e).strip().splitlines()[0]
                log.warning("database unavailable (%s): retrying in %.1f s", why, backoff)
                if stop.wait(backoff):
                    return 0
                backoff = min(backoff * 2, 5.0)
        if backoff > 0.1:
            log.info("database back: resuming")
    p = Persister(engine, s.journal_dir, s.persist_batch, leader)
    pub = None
    if s.redis_url:
        from .publisher import Publisher

        pub = Publisher(s.redis_url, s.journal_dir, s.redis_stream_prefix, leader=leader)
    log.info(
        "journal %s -> %s%s",
        s.journal_dir,
        engine.url.render_as_string(hide_password=True),
        f", redis {s.redis_url}" if pub else "",
    )
    # The database may go away (restarted, failed over, network): the persister waits for it,
    # retrying with a growing pause, and resumes at its committed position; the publisher goes
    # on meanwhile. (--once: an error is the exit status.)
    db_backoff, db_retry_at = 0.1, 0.0
    try:
        while not stop.is_set():
            busy = 0
            if time.monotonic() >= db_retry_at:
                try:
                    busy = p.step()
                    if db_backoff > 0.1:
                        log.info("database back: resuming")
                    db_backoff = 0.1
                except DBAPIError as e:
                    if args.once:
                        raise
                    why = str(e.orig or e).strip().splitlines()[0]
                    log.warning("database unavailable (%s): retrying in %.1f s", why, db_backoff)
                    db_retry_at = time.monotonic() + db_backoff
                    db_backoff = min(db_backoff * 2, 5.0)
            if pub is not None:
                busy += pub.step()
            if args.once and not busy:
                break
            if not busy:
                stop.wait(s.persist_poll_s)
    finally:
        p.close()
        if pub is not None:
            pub.close()
    log.info("stopped: %d records, %d rows", p.records_total, p.rows_total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
