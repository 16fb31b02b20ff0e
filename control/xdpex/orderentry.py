"""The control plane's own session on xdpexd's local order-entry socket (unix SOCK_DGRAM).

REST and gRPC order entry have no side door to the engine: they go through one of these, which
speaks the binary wire protocol (xdpex_proto.codec) exactly like a remote trading client: Login
with the HMAC proof, application datagrams with consecutive inbound sequences, in-order handling
of the gateway's outbound sequence (duplicates skipped, gaps filled by RetransmitRequest),
heartbeats when idle and a fresh login after a Logout. A receiver thread routes every answer to
the request waiting for it (by client order id); while an asyncio event loop is attached
(`attach_loop`, REST), that loop reads the socket instead, so an acknowledgement reaches an
awaiting request without a thread hand-over (`submit_async`), and the thread takes over again
when the loop stops.

`submit()` sends NewOrders packed up to 22 to a datagram with a bounded number of unanswered
messages in flight and returns the `Entry` (xdpex.entrybatch: one column per field, an order's
answer found from its client order id) as of every acknowledgement (Accepted or Rejected), with
whatever fills and cancels arrived with it; `submit_async` sends the orders of one event-loop
turn's callers together. The receiving half is xdpex.orderentry_rx.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from xdpex_proto import codec as c

from . import fastwire as _fw
from .entrybatch import CHUNK, CHUNK_BITS, CHUNK_MASK, PENDING, Entry, OrderResult, WireOrder
from .errors import DeadlineExceeded, ServiceError, Unavailable
from .orderentry_rx import _HDR, OVERDUE_AFTER, T_NEW, UNKNOWN, SessionReceiver, _Waiter

log = logging.getLogger("xdpex.orderentry")


_NEW = c.NewOrder.STRUCT
assert c.NewOrder.FIELDS == (
    "side",
    "ord_type",
    "tif",
    "symbol_id",
    "cl_ord_id",
    "price",
    "qty",
    "client_ts",
), "NewOrder layout changed: update OrderEntrySession._start"
MSG = c.MSG_SIZE
COALESCE_MAX = 64  # orders of an asyncio caller sent at the end of the event-loop turn
KEEP_ORDERS = 8192  # orders of answered entries kept for late fills (few objects: GC)
KEEP_SENT = 16384  # messages kept for a resend after a failover (failover_s > 0)


def _window() -> int:
    """Unanswered messages to keep in flight. The gateway sends answers without blocking, so
    they must fit the receive queue of our socket (net.unix.max_dgram_qlen datagrams of up to 22
    messages, about three answers per order); what overflows is recovered by retransmission,
    but slowly."""
    try:
        qlen = int(open("/proc/sys/net/unix/max_dgram_qlen").read())  # noqa: SIM115
    except (OSError, ValueError):
        qlen = 10
    return max(22, min(4096, (qlen - 2) * c.MAX_MSGS // 3))


def _seq_count(data: bytes) -> tuple[int, int]:
    """A datagram's sequence (0: a session message) and message count, from its header."""
    h = _HDR.unpack_from(data)
    return h[4], h[5]


class OrderEntrySession(SessionReceiver):
    """One logged-in session on the entry socket; thread-safe."""

    def __init__(
        self,
        entry_path: Path | str,
        local_path: Path | str,
        session_id: int,
        secret: bytes,
        timeout: float = 2.0,
        failover_s: float = 0.0,
    ):
        self.entry_path = str(entry_path)
        # High availability (docs/ha.md, "Control-plane order entry across a failover"): with
        # failover_s > 0 a lost gateway (its socket refuses, a Logout, NOT_LOGGED_IN answers,
        # silence) is not the end of the session: the heartbeat thread logs in again (to the
        # new primary, once the entry socket points there) with the first answer not seen,
        # resends with their own seqs the messages the new primary has not applied, and the
        # callers in flight wait up to failover_s more for their answers.
        self.failover_s = failover_s
        self._lost_at: float | None = None  # when the gateway was lost (None: it is not)
        self._lost_why = ""
        self._wait_until = 0.0  # callers in flight across a failover wait until then
        self._sent: deque[tuple[int, int, bytes]] = deque()  # (seq, count, datagram) sent
        self._sent_msgs = 0
        self.failovers = 0
        self._gap_resent, self._gap_resent_at = 0, 0.0
        self.local_path = str(local_path)
        self.session_id = session_id
        self.secret = secret
        self.timeout = timeout
        self._send_lock = threading.Lock()
        self._state = threading.Condition()
        self._sock: socket.socket | None = None
        self._rx: threading.Thread | None = None
        self._hb: threading.Thread | None = None
        self._stop = threading.Event()
        self.logged_in = False
        self.login_error = ""
        self.next_in = 1
        self.expected_out = 1
        self.heartbeat_ms = 1000
        self._last_send = 0.0
        self._early: dict[int, bytes] = {}  # first seq -> messages
        self._chunks: dict[int, Entry] = {}  # chunk number -> entry (see xdpex.entrybatch)
        self._retired: deque[Entry] = deque()  # answered entries, oldest first
        self._kept = 0  # orders in _retired
        self._cancels: dict[int, tuple[OrderResult, _Waiter]] = {}  # orig cl_ord_id -> Cancel
        self._inflight = 0
        self._last_rx = 0.0
        self._gap_asked = 0.0
        self.window = 22
        self._queued: list[Entry] = []  # entries of this event-loop turn (submit_async)
        self._flush_scheduled = False
        # called before any order is sent (the audit spool writes what precedes the orders)
        self.pre_send: Callable[[], None] = _nothing
        self._loop: asyncio.AbstractEventLoop | None = None  # reads the socket (attach_loop)
        self._loop_tid = 0
        # chunk numbers (client order id >> CHUNK_BITS) grow across restarts: they start at the
        # clock in microseconds, and fewer than one chunk a microsecond is ever sent
        self._next_chunk = time.time_ns() // 1000

    # -- life cycle ---------------------------------------------------------------------------
    def open(self) -> None:
        if len(self.local_path.encode()) > 107:
            raise ValueError(f"local socket path too long for AF_UNIX: {self.local_path}")
        try:
            os.unlink(self.local_path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind(self.local_path)
        self._sock = s
        self.window = _window()
        self._stop.clear()
        self._rx = threading.Thread(target=self._rx_loop, name="oe-rx", daemon=True)
        self._rx.start()
        self._hb = threading.Thread(target=self._hb_loop, name="oe-hb", daemon=True)
        self._hb.start()

    def close(self) -> None:
        if self._sock is None:
            return
        if self.logged_in:
            try:
                self._send(0, [c.Logout(reason=c.LogoutReason.USER, client_ts=time.time_ns())])
            except Unavailable:
                pass
        self._stop.set()
        for t in (self._rx, self._hb):
            if t is not None:
                t.join(timeout=2)
        self._detach_loop()
        self._sock.close()
        self._sock = None
        try:
            os.unlink(self.local_path)
        except FileNotFoundError:
            pass
        self._fail_all("order-entry session closed")

    def login(self) -> None:
        """Log in (again); raises Unavailable with the reason when refused or unanswered."""
        self._not_on_reading_loop("login")
        if self._sock is None:
            self.open()
        if self._lost_at is not None:  # the heartbeat thread is logging in again
            raise Unavailable(
                f"gateway failover: the control plane's session {self.session_id} is logging "
                f"in again to the new primary ({self._lost_why}); nothing was entered, retry"
            )
        self._send_login()
        deadline = time.monotonic() + self.timeout
        with self._state:
            while not self.logged_in and not self.login_error:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Unavailable(
                        f"order-entry socket {self.entry_path}: no answer to Login of session "
                        f"{self.session_id} within {self.timeout:g} s"
                    )
                self._state.wait(left)
            if self.login_error:
                raise Unavailable(self.login_error)

    def _send_login(self) -> None:
        """A Login; after a lost gateway it asks for the answers from the first not seen."""
        ts, nonce = time.time_ns(), secrets.randbits(64)
        msg = c.Login(
            session_id=self.session_id,
            next_seq=self.expected_out if self._lost_at is not None else 0,
            nonce=nonce,
            hmac=c.login_proof(self.secret, self.session_id, ts, nonce),
            client_ts=ts,
        )
        with self._state:
            self.logged_in, self.login_error = False, ""
        self._send(0, [msg])

    def _lose(self, why: str) -> None:
        """The gateway is gone (failover_s > 0): log in again from the heartbeat thread. No
        lock taken: called with _send_lock or _state held."""
        if not self.failover_s:
            return
        self.logged_in = False
        if self._lost_at is None:
            now = time.monotonic()
            self._lost_at, self._lost_why = now, why
            self._wait_until = max(self._wait_until, now + self.failover_s)
            log.warning(
                "session %d: gateway lost (%s): logging in again, callers in flight wait up "
                "to %g s more",
                self.session_id,
                why,
                self.failover_s,
            )

    def _remember(self, data: bytes) -> None:
        """Keep an application datagram for a resend after a failover (the last KEEP_SENT
        messages)."""
        seq, n = _seq_count(data)
        if not seq:
            return
        self._sent.append((seq, n, data))
        self._sent_msgs += n
        while self._sent_msgs > KEEP_SENT and len(self._sent) > 1:
            self._sent_msgs -= self._sent.popleft()[1]

    def _resend_from(self, first: int) -> int:
        """After a login at a new primary that applied every message below `first`: send the
        kept datagrams from there on again, with their own seqs (under _state). Orders whose
        callers were already told that they failed go as a Cancel of themselves instead, which
        the gateway refuses (UNKNOWN_ORDER): their seqs are filled, and they are never applied
        after the caller was told. Returns the messages resent, -1 when some are gone."""
        n = 0
        mz = c.MSG_SIZE
        with self._send_lock:  # (no one sends meanwhile: next_in is read and set here)
            if first >= self.next_in:
                self.next_in = first
                return 0
            if not self._sent or self._sent[0][0] > first:
                # (what the new primary lacks is no longer kept: start again from its seq;
                # the callers of what is lost are told)
                self._sent.clear()
                self._sent_msgs = 0
                self.next_in = first
                return -1
            for seq, count, data in list(self._sent):
                if seq + count <= first:
                    continue
                skip = max(0, first - seq)
                body = bytearray(data[c.HDR_SIZE + skip * mz :])
                for j in range(0, len(body), mz):
                    if body[j] != T_NEW:
                        continue
                    cl = int.from_bytes(body[j + 8 : j + 16], "little")
                    if self._given_up(cl):
                        sym = int.from_bytes(body[j + 4 : j + 8], "little")
                        body[j : j + mz] = c.Cancel(symbol_id=sym, orig_cl_ord_id=cl).encode()
                m = count - skip
                hdr = _HDR.pack(
                    c.MAGIC, c.VERSION, 0, self.session_id, seq + skip, m, c.HDR_SIZE + m * mz, 0
                )
                self._sock_send(hdr + bytes(body))
                n += m
        return n

    def _given_up(self, cl_ord_id: int) -> bool:
        e = self._chunks.get(cl_ord_id >> CHUNK_BITS)
        if e is None:
            return True  # nobody waits for it any more
        i = e.index(cl_ord_id)
        return not (0 <= i < e.n) or e.status[i] is UNKNOWN

    def _sock_send(self, data: bytes) -> None:
        assert self._sock is not None
        with contextlib.suppress(OSError):  # (lost again: the next login resends)
            self._sock.sendto(data, socket.MSG_DONTWAIT, self.entry_path)

    def extra_wait(self) -> float:
        """Seconds a caller whose orders are in flight waits beyond its deadline: up to
        failover_s after the gateway was lost, and, while a silent gateway is not yet declared
        lost (three heartbeat intervals: longer than a caller's timeout), until that verdict —
        a gateway that died without refusing anything (its host killed) is noticed by silence
        alone, and the callers of its last orders must wait for the failover like the others."""
        now = time.monotonic()
        if self.failover_s and self._lost_at is None and self.logged_in:
            verdict = self._last_rx + 3 * self.heartbeat_ms / 1000 + 0.2
            if now - self._last_rx > OVERDUE_AFTER and now < verdict:
                return verdict - now
        return max(0.0, self._wait_until - now)

    def ensure_logged_in(self) -> None:
        if not self.logged_in:
            self.login()

    # -- sending ------------------------------------------------------------------------------
    def _send(self, seq: int, msgs: list[c.Message], flags: int = 0) -> None:
        self._send_raw(c.encode_datagram(self.session_id, seq, msgs, flags))

    def _send_raw(self, data: bytes) -> None:
        assert self._sock is not None
        if self.failover_s:
            self._remember(data)
        deadline = 0.0
        while True:
            try:
                self._sock.sendto(data, socket.MSG_DONTWAIT, self.entry_path)
                break
            except BlockingIOError:  # the dataplane's queue is full: wait, but not forever
                now = time.monotonic()
                deadline = deadline or now + self.timeout
                if now > deadline:
                    if self.failover_s and _seq_count(data)[0]:
                        # kept: a login again resends it (else its seq would be a gap)
                        self._lose(f"entry socket full for {self.timeout:g} s")
                        return
                    raise Unavailable(
                        f"dataplane order-entry socket {self.entry_path}: not reading "
                        f"(queue full for {self.timeout:g} s)"
                    ) from None
                time.sleep(0.0001)
            except OSError as e:
                if self.failover_s:
                    self._lose(f"entry socket: {e.strerror or e}")
                    if _seq_count(data)[0]:
                        return  # kept: resent after the login at the new primary
                raise Unavailable(
                    f"dataplane order-entry socket {self.entry_path}: {e.strerror or e}"
                ) from e
        self._last_send = time.monotonic()

    def _new_entry(
        self, orders: Sequence[WireOrder], callback: Callable[[], None] | None = None
    ) -> Entry:
        with self._send_lock:
            first = self._next_chunk
            self._next_chunk += (len(orders) + CHUNK_MASK) // CHUNK
        return Entry(self.session_id, orders, first, callback)

    def submit(self, orders: Sequence[WireOrder], timeout: float | None = None) -> Entry:
        """Send NewOrders, (side, ord_type, tif, symbol_id, price, qty) each, and wait for
        every acknowledgement; raises DeadlineExceeded or Unavailable naming what is missing."""
        return self.wait(*self.send(orders, timeout))

    def send(
        self, orders: Sequence[WireOrder], timeout: float | None = None
    ) -> tuple[Entry, float, float]:
        """The first half of `submit`: send, and return what `wait` takes (a caller may have
        several entries in flight: the gRPC stream)."""
        self._not_on_reading_loop("submit")
        self.ensure_logged_in()
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        e = self._new_entry(orders)
        self._start(e, deadline, block=True)
        return e, deadline, timeout

    def wait(self, e: Entry, deadline: float, timeout: float) -> Entry:
        """The second half of `submit`: every acknowledgement of `e`, or the error."""
        ok = e.wait(max(0.0, deadline - time.monotonic()))
        while not ok and e.error is None and (more := self.extra_wait()) > 0:
            ok = e.wait(more)  # a failover: the new primary answers, or resent ones
        return self._finish(e, ok, timeout)

    async def submit_async(
        self, orders: Sequence[WireOrder], timeout: float | None = None
    ) -> Entry:
        """`submit` for an asyncio caller: the event loop is not blocked while the dataplane
        answers (it reads the socket itself once attached, see attach_loop). The session must be
        logged in. When the in-flight window has no room for all the orders (gRPC batches in
        flight), the blocking `submit` runs in a worker thread instead."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        loop = self._loop if self.attached_here() else None
        if loop is None:
            loop = asyncio.get_running_loop()  # a system call (getpid) per call, in 3.11
        fut: asyncio.Future[None] = loop.create_future()

        def woken() -> None:
            if threading.get_ident() == self._loop_tid and self._loop is loop:
                _set_done(fut)  # answered on this very loop (attach_loop)
            else:
                loop.call_soon_threadsafe(_set_done, fut)

        e = self._new_entry(orders, woken)
        if e.n <= COALESCE_MAX and self._loop_tid == threading.get_ident() and self._reserve(e.n):
            # sent at the end of this event-loop turn, in datagrams shared with the other
            # requests of the turn (one sendto for eight concurrent orders, not eight)
            self._queued.append(e)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush_queued)
        elif not self._start(e, deadline, block=False):
            e.callback = None
            e.event = threading.Event()
            return await asyncio.to_thread(self._submit_started, e, deadline, timeout)
        timer = loop.call_later(max(0.0, deadline - time.monotonic()), _set_done, fut)
        try:
            await fut
            while e.remaining and e.error is None and (more := self.extra_wait()) > 0:
                fut = loop.create_future()  # a failover: wait for the new primary's answers
                timer.cancel()
                timer = loop.call_later(more, _set_done, fut)
                if not e.remaining:
                    break
                await fut
        except asyncio.CancelledError:  # the caller went away: give the window places back
            with contextlib.suppress(ServiceError):
                self._finish(e, True, timeout)
            raise
        finally:
            timer.cancel()
        return self._finish(e, e.remaining == 0, timeout)

    def _reserve(self, n: int) -> bool:
        """Take n places of the in-flight window if it has them (or is empty)."""
        with self._state:
            if self._inflight + n > self.window and self._inflight:
                return False
            self._inflight += n
            return True

    def _flush_queued(self) -> None:
        """Send the orders of every entry queued in this event-loop turn (their window places
        are taken), as few datagrams as they fit in."""
        self._flush_scheduled = False
        q, self._queued = self._queued, []
        if not q:
            return
        try:
            self.pre_send()
        except Exception as err:  # noqa: BLE001 - every caller is told, nothing was sent
            for e in q:  # (their window places are given back by _finish)
                e.error = err
                e.wake()
            return
        pack, now, fw = _NEW.pack, time.time_ns(), _fw.get()
        msgs: list[bytes] = []
        with self._state:
            for e in q:
                self._chunks[e.chunks.start] = e
                base = e.chunks.start << CHUNK_BITS  # entries this small have one chunk
                if fw is not None:
                    packed = fw.pack_new(e.orders, 0, e.n, base, now)
                    msgs += [packed[j : j + MSG] for j in range(0, len(packed), MSG)]
                    continue
                msgs += [
                    pack(T_NEW, s, t, f, sym, base + j, px, qty, now)
                    for j, (s, t, f, sym, px, qty) in enumerate(e.orders)
                ]
        try:
            self._send_msgs(msgs)
        except Unavailable as err:
            for e in q:
                e.error = err
            self._fail_all(str(err))

    def _send_msgs(self, msgs: list[bytes]) -> None:
        """Packed application messages out, up to MAX_MSGS a datagram, in sequence."""
        mx, sid = c.MAX_MSGS, self.session_id
        for d in range(0, len(msgs), mx):
            part = msgs[d : d + mx]
            m = len(part)
            with self._send_lock:
                seq = self.next_in
                self.next_in += m
                hdr = _HDR.pack(c.MAGIC, c.VERSION, 0, sid, seq, m, c.HDR_SIZE + m * MSG, 0)
                self._send_raw(hdr + b"".join(part))

    def _submit_started(self, e: Entry, deadline: float, timeout: float) -> Entry:
        self._start(e, deadline, block=True)
        ok = e.wait(max(0.0, deadline - time.monotonic()))
        return self._finish(e, ok, timeout)

    def _start(self, e: Entry, deadline: float, block: bool) -> bool:
        """Register the entry's chunks and send its orders, up to MAX_MSGS a datagram, keeping
        at most `window` unanswered. With block=False nothing is done and False is returned
        unless the window has room for every order at once (an event loop must not wait)."""
        orders, n, state = e.orders, e.n, self._state
        self.pre_send()
        if not block and not self._reserve(n):
            return False
        pack, now, mx, fw = _NEW.pack, time.time_ns(), c.MAX_MSGS, _fw.get()
        for k, chunk_no in enumerate(e.chunks):
            lo = k * CHUNK
            hi = min(n, lo + CHUNK)
            base = (chunk_no << CHUNK_BITS) - lo  # cl_ord_id of order j is base + j
            with state:
                self._chunks[chunk_no] = e
            for d in range(lo, hi, mx):
                part = orders[d : min(hi, d + mx)]
                m = len(part)
                if block:
                    with state:
                        while self._inflight + m > self.window and self._inflight:
                            if not state.wait(max(0.0, deadline - time.monotonic())):
                                break
                        self._inflight += m
                try:
                    if fw is not None:
                        body = fw.pack_new(orders, d, d + m, base, now)
                    else:
                        body = b"".join(
                            [
                                pack(T_NEW, s, t, f, sym, base + j, px, q, now)
                                for j, (s, t, f, sym, px, q) in enumerate(part, d)
                            ]
                        )
                except (struct.error, OverflowError, TypeError) as err:
                    raise ValueError(
                        f"order {d}..{d + m - 1} does not fit the wire: {err}"
                    ) from None
                with self._send_lock:
                    seq = self.next_in
                    self.next_in += m
                    hdr = _HDR.pack(
                        c.MAGIC, c.VERSION, 0, self.session_id, seq, m, c.HDR_SIZE + m * MSG, 0
                    )
                    self._send_raw(hdr + body)
        return True

    def _finish(self, e: Entry, ok: bool, timeout: float) -> Entry:
        missing: list[int] = []
        with self._state:
            if e.remaining:
                st = e.status
                for i, v in enumerate(st):
                    if v is PENDING:
                        st[i] = UNKNOWN  # a late answer is ignored (the caller is told now)
                        self._inflight -= 1
                    if st[i] is UNKNOWN:
                        missing.append(e.cl_ord_id(i))
                e.remaining = 0
                self._state.notify_all()
            self._retire(e)
        if e.error is not None:
            raise e.error
        if missing and not ok and self._lost_at is not None:
            raise Unavailable(
                f"gateway failover ({self._lost_why}): {len(missing)} of {e.n} orders not "
                f"acknowledged within {timeout + self.failover_s:g} s (session "
                f"{self.session_id}, first cl_ord_id {missing[0]}); those the new primary had "
                "not applied never will be; query the orders by session to see which were"
            )
        if missing and not ok:
            raise DeadlineExceeded(
                f"dataplane did not acknowledge {len(missing)} of {e.n} orders "
                f"within {timeout:g} s (session {self.session_id}, first cl_ord_id "
                f"{missing[0]})"
            )
        if missing:
            raise Unavailable(
                f"order-entry session {self.session_id} ended before every order was "
                "acknowledged; query the orders by session to see which were applied"
            )
        return e

    def result_of(self, cl_ord_id: int) -> OrderResult | None:
        """The answers to an order of this session still kept (the last KEEP_ORDERS)."""
        with self._state:
            e = self._chunks.get(cl_ord_id >> CHUNK_BITS)
            if e is None:
                return None
            i = e.index(cl_ord_id)
            return e.result(i) if 0 <= i < e.n else None

    def _retire(self, e: Entry) -> None:
        """Keep an answered entry for late fills and cancels, up to KEEP_ORDERS orders (under
        _state)."""
        self._retired.append(e)
        self._kept += e.n
        while self._kept > KEEP_ORDERS and len(self._retired) > 1:
            old = self._retired.popleft()
            self._kept -= old.n
            for ch in old.chunks:
                if self._chunks.get(ch) is old:
                    del self._chunks[ch]

    def cancel(
        self, symbol_id: int, orig_cl_ord_id: int, timeout: float | None = None
    ) -> OrderResult:
        """Send a Cancel for one of this session's orders and wait for Cancelled or Rejected."""
        self._not_on_reading_loop("cancel")
        self.ensure_logged_in()
        waiter = _Waiter(1)
        r = OrderResult(self.session_id, orig_cl_ord_id, symbol_id)
        with self._state:
            self._cancels[orig_cl_ord_id] = (r, waiter)
            self._inflight += 1
        msg = c.Cancel(symbol_id=symbol_id, orig_cl_ord_id=orig_cl_ord_id, client_ts=time.time_ns())
        with self._send_lock:
            seq = self.next_in
            self.next_in += 1
            self._send(seq, [msg])
        t = self.timeout if timeout is None else timeout
        if not waiter.event.wait(t):
            with self._state:
                if self._cancels.pop(orig_cl_ord_id, None) is not None:
                    self._inflight -= 1
            raise DeadlineExceeded(f"dataplane did not answer the Cancel within {t:g} s")
        if not r.acked:
            raise Unavailable(f"order-entry session {self.session_id} ended before the answer")
        return r


def _nothing() -> None:
    pass


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
