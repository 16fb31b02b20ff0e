"""The control plane's own session on xdpexd's local order-entry socket (unix SOCK_DGRAM).

REST and gRPC order entry have no side door to the engine: they go through one of these, which
speaks the binary wire protocol (xdpex_traffic.codec) exactly like a remote trading client: Login
with the HMAC proof, application datagrams with consecutive inbound sequences, in-order handling
of the gateway's outbound sequence (duplicates skipped, gaps filled by RetransmitRequest),
heartbeats when idle and a fresh login after a Logout. A receiver thread routes every answer to
the request waiting for it (by client order id); while an asyncio event loop is attached
(`attach_loop`, REST), that loop reads the socket instead, so an acknowledgement reaches an
awaiting request without a thread hand-over (`submit_async`), and the thread takes over again
when the loop stops.

`submit()` sends a batch of NewOrders packed up to 22 to a datagram with a bounded number of
unanswered messages in flight, and returns one `OrderResult` per order as of its acknowledgement
(Accepted or Rejected) plus whatever fills and cancels arrived with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from xdpex_traffic import codec as c

from .entrybatch import CHUNK, CHUNK_BITS, CHUNK_MASK, PENDING, Entry, OrderResult, WireOrder
from .errors import DeadlineExceeded, ServiceError, Unavailable

log = logging.getLogger("xdpex.orderentry")

_HDR = struct.Struct("<HBBIQHHI")  # struct xe_hdr, as in the codec
_APP = {t: cls.STRUCT for t, cls in c.MESSAGE_TYPES.items() if t >= 0x83 and t != 0x88}



T_ACC, T_REJ, T_FILL = int(c.MsgType.ACCEPTED), int(c.MsgType.REJECTED), int(c.MsgType.FILL)
T_CXLD, T_CXL_REQ = int(c.MsgType.CANCELLED), int(c.MsgType.CANCEL)
T_NEW = int(c.MsgType.NEW_ORDER)
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
UNKNOWN = "unknown"  # an order whose answer did not come in time (the caller was told so)
KEEP_ORDERS = 8192  # orders of answered entries kept for late fills (few objects: GC)
# Every answer is read with one struct (one C call a datagram, iter_unpack): the type byte, three
# bytes, a u32 and eight-byte words at the offsets the gateway's answers share. The positions of
# the fields used are checked against the codec's own layouts (include/xdpex/proto.h) below.
_ANS = struct.Struct("<BBBBIQQqII24x")
_ANS_AT = {1: 1, 2: 2, 3: 3, 4: 4, 8: 5, 16: 6, 24: 7, 32: 8, 36: 9}  # byte offset -> position
_APP_TYPES = frozenset(_APP)


def _at(cls: type[c.Message], name: str) -> int:
    """Position in an _ANS tuple of field `name` of the codec's message `cls`."""
    off = 1
    fmt = cls.STRUCT.format.lstrip("<")[1:]  # the type byte first
    fields = iter(cls.FIELDS)
    for m in re.finditer(r"(\d*)([A-Za-z])", fmt):
        size = struct.calcsize("<" + m.group(0))
        if m.group(2) != "x":
            if next(fields) == name:
                return _ANS_AT[off]
        off += size
    raise KeyError(name)


ACC_CL, ACC_OID, ACC_QTY = (_at(c.Accepted, f) for f in ("cl_ord_id", "order_id", "qty"))
REJ_REF, REJ_CL = (_at(c.Rejected, f) for f in ("ref_type", "cl_ord_id"))
REJ_REASON_LO = _at(c.Rejected, "reason")  # u16 at byte 2: two bytes of _ANS
assert REJ_REASON_LO == 2 and c.Rejected.STRUCT.format.startswith("<BBH")
FILL_CL, FILL_QTY, FILL_LEAVES, FILL_EXEC, FILL_PX, FILL_LIQ = (
    _at(c.Fill, f) for f in ("cl_ord_id", "qty", "leaves", "exec_id", "price", "liquidity")
)
CXL_CL, CXL_REASON, CXL_OID, CXL_SIDE, CXL_PX, CXL_QTY = (
    _at(c.Cancelled, f) for f in ("cl_ord_id", "reason", "order_id", "side", "price", "qty")
)
assert ACC_CL == REJ_CL == FILL_CL == CXL_CL
RETRANSMIT_AFTER = 0.03  # s before a gap (later datagram seen) is asked for again
OVERDUE_AFTER = 0.25  # s of silence with answers outstanding before asking for anything new


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


class _Waiter:
    """Counts the answers a caller waits for; `wake` (from the receiver thread) sets the event
    and calls `callback` (an asyncio caller's hand-over to its event loop)."""

    __slots__ = ("event", "remaining", "callback")

    def __init__(self, n: int, callback: Callable[[], None] | None = None):
        self.event = threading.Event()
        self.remaining = n
        self.callback = callback

    def wake(self) -> None:
        self.event.set()
        if self.callback is not None:
            try:
                self.callback()
            except RuntimeError:  # the caller's event loop is closed: nobody waits any more
                pass


class OrderEntrySession:
    """One logged-in session on the entry socket; thread-safe."""

    def __init__(
        self,
        entry_path: Path | str,
        local_path: Path | str,
        session_id: int,
        secret: bytes,
        timeout: float = 2.0,
    ):
        self.entry_path = str(entry_path)
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
        self._early: dict[int, list[tuple]] = {}  # first seq -> messages
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
        ts, nonce = time.time_ns(), secrets.randbits(64)
        msg = c.Login(
            session_id=self.session_id,
            next_seq=0,
            nonce=nonce,
            hmac=c.login_proof(self.secret, self.session_id, ts, nonce),
            client_ts=ts,
        )
        with self._state:
            self.logged_in, self.login_error = False, ""
        self._send(0, [msg])
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

    def ensure_logged_in(self) -> None:
        if not self.logged_in:
            self.login()

    # -- sending ------------------------------------------------------------------------------
    def _send(self, seq: int, msgs: list[c.Message], flags: int = 0) -> None:
        self._send_raw(c.encode_datagram(self.session_id, seq, msgs, flags))

    def _send_raw(self, data: bytes) -> None:
        assert self._sock is not None
        deadline = 0.0
        while True:
            try:
                self._sock.sendto(data, socket.MSG_DONTWAIT, self.entry_path)
                break
            except BlockingIOError:  # the dataplane's queue is full: wait, but not forever
                now = time.monotonic()
                deadline = deadline or now + self.timeout
                if now > deadline:
                    raise Unavailable(
                        f"dataplane order-entry socket {self.entry_path}: not reading "
                        f"(queue full for {self.timeout:g} s)"
                    ) from None
                time.sleep(0.0001)
            except OSError as e:
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
        pack, now = _NEW.pack, time.time_ns()
        msgs: list[bytes] = []
        with self._state:
            for e in q:
                self._chunks[e.chunks.start] = e
                base = e.chunks.start << CHUNK_BITS  # entries this small have one chunk
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
        pack, now, mx = _NEW.pack, time.time_ns(), c.MAX_MSGS
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
                    body = b"".join(
                        [
                            pack(T_NEW, s, t, f, sym, base + j, px, q, now)
                            for j, (s, t, f, sym, px, q) in enumerate(part, d)
                        ]
                    )
                except struct.error as err:
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

    # -- receiving ----------------------------------------------------------------------------
    def _rx_loop(self) -> None:
        assert self._sock is not None
        sock = self._sock
        while not self._stop.is_set():
            if self._loop_reading():
                self._stop.wait(0.05)  # the event loop reads the socket (attach_loop)
                continue
            try:
                ready, _, _ = select.select([sock], [], [], 0.05)
            except (OSError, ValueError):
                return
            if ready and not self._drain(sock) and self._stop.is_set():
                return

    def _drain(self, sock: socket.socket) -> bool:
        """Handle every datagram queued on the socket, then wake the callers whose answers are
        complete; False when the socket failed."""
        done: list[Entry | _Waiter] = []
        ok = True
        while True:
            try:
                data = sock.recv(2048, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError:
                ok = False
                break
            self._on_datagram(data, done)
        self._last_rx = time.monotonic()
        for w in done:
            w.wake()
        return ok

    # -- receiving on an asyncio event loop ---------------------------------------------------
    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let `loop` (call from its thread) read the socket while it runs, instead of the
        receiver thread: an acknowledgement then reaches an asyncio caller without a thread
        hand-over. Blocking callers (gRPC, cancels) are woken from the loop. The receiver
        thread takes over again when the loop stops or is closed."""
        old = self._loop
        if old is loop or self._sock is None or (old is not None and self._loop_reading()):
            return  # attached already, closed, or another running loop reads
        if old is not None and not old.is_closed():
            old.remove_reader(self._sock.fileno())  # a stopped loop that may run again
        self._loop_tid = threading.get_ident()
        loop.add_reader(self._sock.fileno(), self._on_readable)
        self._loop = loop

    def attached_here(self) -> bool:
        """Whether the calling thread runs the loop that reads this session (attach_loop)."""
        return self._loop_tid == threading.get_ident() and self._loop_reading()

    def _not_on_reading_loop(self, what: str) -> None:
        """A blocking call on the thread of the loop that reads the socket would wait for an
        answer that only that (blocked) loop can read: refuse it instead of hanging."""
        if threading.get_ident() == self._loop_tid and self._loop_reading():
            raise RuntimeError(
                f"OrderEntrySession.{what} blocks; on the event loop that reads the session "
                "use submit_async (or run it in a worker thread)"
            )

    def _loop_reading(self) -> bool:
        loop = self._loop
        return loop is not None and loop.is_running() and not loop.is_closed()

    def _on_readable(self) -> None:
        if self._sock is not None:
            self._drain(self._sock)

    def _detach_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed() or self._sock is None:
            return
        fd = self._sock.fileno()
        if threading.get_ident() == self._loop_tid or not loop.is_running():
            loop.remove_reader(fd)
            return
        removed = threading.Event()

        def remove() -> None:
            loop.remove_reader(fd)
            removed.set()

        try:
            loop.call_soon_threadsafe(remove)
        except RuntimeError:  # closed meanwhile
            return
        removed.wait(2)

    def _on_datagram(self, data: bytes, done: list[Entry | _Waiter]) -> None:
        # Fast path for well-formed application datagrams: header and message fields are
        # unpacked with the codec's structs into tuples, without building dataclasses.
        n = len(data)
        if n >= c.HDR_SIZE:
            magic, ver, flags, sid, seq, count, length, _ = _HDR.unpack_from(data, 0)
            if (
                seq
                and magic == c.MAGIC
                and ver == c.VERSION
                and flags & c.F_FROM_GW
                and not flags & ~c.F_KNOWN
                and 1 <= count <= c.MAX_MSGS
                and length == n == c.HDR_SIZE + count * c.MSG_SIZE
            ):
                if _APP_TYPES.issuperset(data[c.HDR_SIZE :: c.MSG_SIZE]):
                    self._on_app(seq, list(_ANS.iter_unpack(memoryview(data)[c.HDR_SIZE :])), done)
                    return
        try:
            dg = c.decode_datagram(data, c.Direction.FROM_GW)
        except c.ProtocolError as e:
            log.warning("session %d: malformed datagram from the gateway: %s", self.session_id, e)
            return
        if dg.seq == 0:
            for m in dg.messages:
                self._on_session_msg(m)
            return
        log.warning("session %d: unexpected datagram from the gateway: %r", self.session_id, dg)

    def _on_app(self, first: int, msgs: list[tuple], done: list[Entry | _Waiter]) -> None:
        with self._state:
            if first + len(msgs) <= self.expected_out:
                return  # duplicate
            if first > self.expected_out:
                self._early[first] = msgs
                self._ask_missing()
                return
            self._apply(msgs[self.expected_out - first :], done)
            while self._early:
                k = min(self._early)
                if k > self.expected_out:
                    break
                m2 = self._early.pop(k)
                if k + len(m2) > self.expected_out:
                    self._apply(m2[self.expected_out - k :], done)
            self._state.notify_all()

    def _ask_missing(self, force: bool = False) -> None:
        """Ask for what is missing: before the first early datagram, or (force) anything new."""
        now = time.monotonic()
        if not force and now - self._gap_asked < RETRANSMIT_AFTER:
            return
        self._gap_asked = now
        if self._early:
            count = min(self._early) - self.expected_out
        elif force:
            count = 1024
        else:
            return
        self._send_retransmit(self.expected_out, count)

    def _send_retransmit(self, from_seq: int, count: int) -> None:
        try:
            self._send(
                0, [c.RetransmitReq(from_seq=from_seq, count=count, client_ts=time.time_ns())]
            )
        except Unavailable as e:
            log.warning("session %d: cannot request retransmission: %s", self.session_id, e)

    def _apply(self, msgs: list[tuple], done: list[Entry | _Waiter]) -> None:
        """Handle in-order messages (codec struct tuples, type first); the first has outbound
        sequence `expected_out`. An answer finds its order by its client order id: the chunk
        (cl >> CHUNK_BITS) names the entry, the low bits and the chunk's place the index."""
        self.expected_out += len(msgs)
        chunks, cancels, bits, mask = self._chunks, self._cancels, CHUNK_BITS, CHUNK_MASK
        for v in msgs:
            t = v[0]
            if t == T_ACC or (t == T_REJ and v[REJ_REF] != T_CXL_REQ):
                cl = v[ACC_CL] if t == T_ACC else v[REJ_CL]
                e = chunks.get(cl >> bits)
                if e is None:
                    continue
                i = ((cl >> bits) - e.chunks.start) << bits | (cl & mask)
                if i >= e.n or e.status[i] is not PENDING:
                    continue  # not ours, a duplicate, or given up on
                if t == T_ACC:
                    e.status[i] = "new"
                    e.order_id[i] = v[ACC_OID]
                    e.leaves[i] = v[ACC_QTY]
                else:
                    reason = v[2] | v[3] << 8
                    e.status[i] = "rejected"
                    e.reason[i] = reason
                    if reason == c.RejectReason.NOT_LOGGED_IN:
                        self.logged_in = False
                self._inflight -= 1
                e.remaining -= 1
                if e.remaining == 0:
                    done.append(e)
            elif t == T_FILL:
                cl = v[FILL_CL]
                e = chunks.get(cl >> bits)
                if e is None:
                    continue
                i = ((cl >> bits) - e.chunks.start) << bits | (cl & mask)
                if i < e.n and e.status[i] is not PENDING:
                    e.filled[i] += v[FILL_QTY]
                    e.leaves[i] = v[FILL_LEAVES]
                    e.status[i] = "filled" if v[FILL_LEAVES] == 0 else "partially_filled"
                    fills = e.fills
                    if fills is None:
                        fills = e.fills = {}
                    fl = fills.get(i)
                    if fl is None:
                        fl = fills[i] = []
                    fl.append((v[FILL_EXEC], v[FILL_PX], v[FILL_QTY], v[FILL_LIQ]))
            elif t == T_REJ:  # a refused Cancel
                ent = cancels.pop(v[REJ_CL], None)
                if ent is not None:
                    r, w = ent
                    r.status, r.reason, r.acked = "rejected", v[2] | v[3] << 8, True
                    self._inflight -= 1
                    done.append(w)
            elif t == T_CXLD:
                cl = v[CXL_CL]
                e = chunks.get(cl >> bits)
                if e is not None:
                    i = ((cl >> bits) - e.chunks.start) << bits | (cl & mask)
                    if i < e.n and e.status[i] is not PENDING:
                        e.status[i] = "cancelled"
                        e.reason[i] = v[CXL_REASON]
                        e.leaves[i] = 0
                if v[CXL_REASON] == c.CancelReason.USER:
                    ent = cancels.pop(cl, None)
                    if ent is not None:
                        r, w = ent
                        r.status, r.order_id, r.reason, r.acked = (
                            "cancelled",
                            v[CXL_OID],
                            v[CXL_REASON],
                            True,
                        )
                        r.side, r.price, r.qty = v[CXL_SIDE], v[CXL_PX], v[CXL_QTY]
                        self._inflight -= 1
                        done.append(w)

    def _on_session_msg(self, m: c.Message) -> None:
        with self._state:
            if isinstance(m, c.LoginAccepted):
                self.next_in = m.next_in_seq
                self.expected_out = m.next_out_seq
                self.heartbeat_ms = m.heartbeat_ms or 1000
                self._early.clear()
                self.logged_in = True
            elif isinstance(m, c.LoginRejected):
                try:
                    name = c.LoginReason(m.reason).name
                except ValueError:
                    name = f"reason {m.reason}"
                self.login_error = (
                    f"dataplane refused the login of control-plane session {self.session_id}: "
                    f"{name}"
                )
            elif isinstance(m, c.Logout):
                self.logged_in = False
                if m.reason != c.LogoutReason.USER:  # USER: the answer to our own Logout
                    log.warning(
                        "session %d: logged out by the gateway (reason %d)",
                        self.session_id,
                        m.reason,
                    )
            elif isinstance(m, c.SequenceGap):
                log.error(
                    "session %d: gateway expected inbound %d, got %d",
                    self.session_id,
                    m.expected,
                    m.received,
                )
                self.next_in = max(self.next_in, m.expected)
            elif isinstance(m, c.Heartbeat) and m.next_seq > self.expected_out:
                self._send_retransmit(self.expected_out, m.next_seq - self.expected_out)
            self._state.notify_all()
        if isinstance(m, c.Logout):
            self._fail_all("logged out by the gateway")

    def _fail_all(self, why: str) -> None:
        """Wake every caller still waiting: their orders' answers will not come any more (they
        see them as missing and are told `why` in substance: the session ended)."""
        with self._state:
            waiting: list[Entry | _Waiter] = [w for _, w in self._cancels.values()]
            self._cancels.clear()
            for e in {id(e): e for e in self._chunks.values() if e.remaining}.values():
                e.error = e.error or Unavailable(
                    f"order-entry session {self.session_id} ended ({why}) before every order "
                    "was acknowledged; query the orders by session to see which were applied"
                )
                st = e.status
                for i, v in enumerate(st):
                    if v is PENDING:
                        st[i] = UNKNOWN
                waiting.append(e)
            self._inflight = 0
        if waiting:
            log.warning("session %d: %s; %d callers woken", self.session_id, why, len(waiting))
        for w in waiting:
            w.wake()  # callers see their orders unanswered

    def _hb_loop(self) -> None:
        """Heartbeats when idle; retransmission requests when answers are overdue."""
        while not self._stop.wait(0.01):
            if not self.logged_in:
                continue
            now = time.monotonic()
            with self._state:
                overdue = (
                    self._inflight > 0 and now - max(self._last_rx, self._last_send) > OVERDUE_AFTER
                )
                if (self._early or overdue) and now - self._gap_asked > RETRANSMIT_AFTER:
                    self._ask_missing(force=True)
            if time.monotonic() - self._last_send >= self.heartbeat_ms / 2000:
                try:
                    with self._send_lock:
                        self._send(
                            0,
                            [c.Heartbeat(next_seq=self.next_in, client_ts=time.time_ns())],
                            c.F_HEARTBEAT,
                        )
                except Unavailable:
                    pass


def _nothing() -> None:
    pass


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
