"""Redis publisher: executions and top-of-book from xdpexd's journal into Redis Streams.

Streams, per queue q: `<prefix>:q<q>:executions` (one entry per Fill: exec_id, order_id, session,
symbol, side, liquidity, price, qty, leaves, ts) and `<prefix>:q<q>:tob` (one entry whenever a
symbol's best bid or ask changes at the end of a journal batch). Every entry's stream ID is
`<journal seq>-<index within the record>`, and the entry also carries `seq`.

Exactly once without any state of our own: Redis refuses IDs at or below a stream's last one, so
the publisher replays the journal from its start (rebuilding the books it needs for top of book)
and sends only entries above each stream's last ID. After a Redis restart or any Redis error it
reconnects with back-off and does the same, so a Redis that lost its data is refilled and one that
kept it is continued, never duplicated.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import redis
from xdpex_proto import codec as c
from xdpex_proto.journal import FLAG_BATCH_END, REC_OUTBOUND, JournalReader, queue_dirs

from .hafollow import Leader, cut, reader_at

log = logging.getLogger("xdpex.publisher")

_F = {t: {n: i + 1 for i, n in enumerate(cls.FIELDS)} for t, cls in c.MESSAGE_TYPES.items()}
_ST = {t: cls.STRUCT for t, cls in c.MESSAGE_TYPES.items()}
T_ACC, T_FILL = int(c.MsgType.ACCEPTED), int(c.MsgType.FILL)
T_CXL, T_REPL = int(c.MsgType.CANCELLED), int(c.MsgType.REPLACED)
MARKET = int(c.OrdType.MARKET)
MSG = c.MSG_SIZE


def _parse_id(i: bytes | str | None) -> tuple[int, int]:
    if not i:
        return (0, -1)
    a, b = (i.decode() if isinstance(i, bytes) else i).split("-")
    return (int(a), int(b))


class Books:
    """Resting quantity per (symbol, side, price), rebuilt from outbound messages."""

    def __init__(self) -> None:
        self.orders: dict[int, tuple[int, int, int, int]] = {}  # oid -> symbol, side, price, leaves
        self.levels: dict[tuple[int, int], dict[int, int]] = {}  # (symbol, side) -> price -> qty

    def _adj(self, sym: int, side: int, px: int, dq: int) -> None:
        lv = self.levels.setdefault((sym, side), {})
        q = lv.get(px, 0) + dq
        if q > 0:
            lv[px] = q
        else:
            lv.pop(px, None)

    def _set(self, oid: int, sym: int, side: int, px: int, leaves: int) -> None:
        old = self.orders.pop(oid, None)
        if old is not None:
            self._adj(old[0], old[1], old[2], -old[3])
        if leaves > 0:
            self.orders[oid] = (sym, side, px, leaves)
            self._adj(sym, side, px, leaves)

    def on(self, t: int, v: tuple) -> int | None:
        """Apply one message; return the symbol it touched."""
        if t == T_ACC:
            f = _F[t]
            if v[f["ord_type"]] == MARKET:
                return None
            self._set(v[f["order_id"]], v[f["symbol_id"]], v[f["side"]], v[f["price"]], v[f["qty"]])
            return v[f["symbol_id"]]
        if t == T_FILL:
            f = _F[t]
            o = self.orders.get(v[f["order_id"]])
            if o is None:
                return None
            self._set(v[f["order_id"]], o[0], o[1], o[2], v[f["leaves"]])
            return o[0]
        if t == T_CXL:
            f = _F[t]
            self._set(v[f["order_id"]], 0, 0, 0, 0)
            return v[f["symbol_id"]]
        if t == T_REPL:
            f = _F[t]
            self._set(
                v[f["order_id"]], v[f["symbol_id"]], v[f["side"]], v[f["price"]], v[f["leaves"]]
            )
            return v[f["symbol_id"]]
        return None

    def top(self, sym: int) -> tuple[int, int, int, int]:
        bids = self.levels.get((sym, int(c.Side.BUY)), {})
        asks = self.levels.get((sym, int(c.Side.SELL)), {})
        bp = max(bids) if bids else 0
        ap = min(asks) if asks else 0
        return bp, bids.get(bp, 0), ap, asks.get(ap, 0)


class _Queue:
    def __init__(self, q: int, qdir: Path, prefix: str):
        self.q = q
        self.reader = JournalReader(qdir)
        self.books = Books()
        self.tob: dict[int, tuple[int, int, int, int]] = {}
        self.exec_key = f"{prefix}:q{q}:executions"
        self.tob_key = f"{prefix}:q{q}:tob"
        self.last_exec = (0, -1)
        self.last_tob = (0, -1)


class Publisher:
    """Journal -> Redis Streams; `step()` publishes what is new, handling Redis outages."""

    def __init__(self, url: str, journal_dir: Path, prefix: str = "xdpex", batch: int = 5000,
                 leader: Leader | None = None):
        self.leader = leader  # HA: follow the leader's journal (xdpex.hafollow)
        self.limits: dict[int, int] | None = None
        self.url = url
        self.journal_dir = Path(journal_dir)
        self.prefix = prefix
        self.batch = batch
        self.r: redis.Redis | None = None
        self.queues: dict[int, _Queue] = {}
        self.retry_at = 0.0
        self.backoff = 0.1
        self.published = 0
        self.connected = False

    def _connect(self) -> None:
        self.r = redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=2)
        self.r.ping()
        self.queues.clear()  # replay from the journal start; skip what each stream holds
        self.connected = True

    def _q(self, q: int, qdir: Path) -> _Queue:
        st = self.queues.get(q)
        if st is None:
            assert self.r is not None
            st = _Queue(q, qdir, self.prefix)
            for key, attr in ((st.exec_key, "last_exec"), (st.tob_key, "last_tob")):
                last = self.r.xrevrange(key, count=1)
                setattr(st, attr, _parse_id(last[0][0]) if last else (0, -1))
            self.queues[q] = st
        return st

    def step(self) -> int:
        now = time.monotonic()
        if now < self.retry_at:
            return 0
        try:
            if self.r is None:
                self._connect()
            n = 0
            if self.leader is not None:
                lead = self.leader.current()
                if lead is None:
                    return 0  # no primary holds a lease
                if lead.journal_dir != self.journal_dir:
                    log.info("following the leader's journal %s", lead.journal_dir)
                    self.journal_dir = lead.journal_dir
                    for q, st in self.queues.items():  # same records, by seq
                        st.reader.close()
                        st.reader = reader_at(self.journal_dir / f"q{q}", st.reader.last_seq)
                self.limits = lead.limits
            for q, qdir in queue_dirs(self.journal_dir).items():
                n += self._publish(self._q(q, qdir))
            self.backoff = 0.1
            return n
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError) as e:
            if self.connected:
                log.warning(
                    "redis %s: %s; reconnecting (will resume from the streams)", self.url, e
                )
            self.connected = False
            self.close()
            self.retry_at = now + self.backoff
            self.backoff = min(self.backoff * 2, 5.0)
            return 0

    def _publish(self, st: _Queue) -> int:
        recs = st.reader.poll(self.batch)
        if self.limits is not None:
            recs = cut(st.reader, recs, self.limits.get(st.q, 0))
        if not recs:
            return 0
        assert self.r is not None
        pipe = self.r.pipeline(transaction=False)
        n = 0
        touched: set[int] = set()
        for rec in recs:
            if rec.type == REC_OUTBOUND:
                p = rec.payload
                for i in range(rec.count):
                    t = p[i * MSG]
                    st_ = _ST.get(t)
                    if st_ is None:
                        continue
                    v = st_.unpack_from(p, i * MSG)
                    sym = st.books.on(t, v)
                    if sym is not None:
                        touched.add(sym)
                    if t == T_FILL and (rec.seq, i) > st.last_exec:
                        f = _F[T_FILL]
                        pipe.xadd(
                            st.exec_key,
                            {
                                "seq": rec.seq,
                                "exec_id": v[f["exec_id"]],
                                "order_id": v[f["order_id"]],
                                "session_id": rec.session_id,
                                "cl_ord_id": v[f["cl_ord_id"]],
                                "symbol_id": v[f["symbol_id"]],
                                "side": v[f["side"]],
                                "liquidity": v[f["liquidity"]],
                                "price": v[f["price"]],
                                "qty": v[f["qty"]],
                                "leaves": v[f["leaves"]],
                                "ts": rec.ts,
                            },
                            id=f"{rec.seq}-{i}",
                        )
                        st.last_exec = (rec.seq, i)
                        n += 1
            if rec.flags & FLAG_BATCH_END and touched:
                for k, sym in enumerate(sorted(touched)):
                    top = st.books.top(sym)
                    if st.tob.get(sym) == top:
                        continue
                    st.tob[sym] = top
                    if (rec.seq, k) > st.last_tob:
                        pipe.xadd(
                            st.tob_key,
                            {
                                "seq": rec.seq,
                                "symbol_id": sym,
                                "bid_px": top[0],
                                "bid_qty": top[1],
                                "ask_px": top[2],
                                "ask_qty": top[3],
                            },
                            id=f"{rec.seq}-{k}",
                        )
                        st.last_tob = (rec.seq, k)
                        n += 1
                touched.clear()
        if n:
            pipe.execute()
        self.published += n
        return len(recs)

    def close(self) -> None:
        for st in self.queues.values():
            st.reader.close()
        self.queues.clear()
        if self.r is not None:
            try:
                self.r.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self.r = None
