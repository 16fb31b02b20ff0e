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

`submit()` sends a batch of NewOrders packed up to 22 to a datagram with a bounded number of
unanswered messages in flight, and returns one `OrderResult` per order as of its acknowledgement
(Accepted or Rejected) plus whatever fills and cancels arrived with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from xdpex_proto import codec as c

from .errors import DeadlineExceeded, Unavailable

log = logging.getLogger("xdpex.orderentry")

_HDR = struct.Struct("<HBBIQHHI")  # struct xe_hdr, as in the codec
_APP = {t: cls.STRUCT for t, cls in c.MESSAGE_TYPES.items() if t >= 0x83 and t != 0x88}


def _ix(cls: type[c.Message], name: str) -> int:
    """Position of a field in the codec's struct tuple (the type byte is at 0)."""
    return cls.FIELDS.index(name) + 1


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
), "NewOrder layout changed: update OrderEntrySession.submit"
ACC_CL, ACC_OID, ACC_QTY = (_ix(c.Accepted, f) for f in ("cl_ord_id", "order_id", "qty"))
REJ_REF, REJ_CL, REJ_REASON = (_ix(c.Rejected, f) for f in ("ref_type", "cl_ord_id", "reason"))
FILL_CL, FILL_QTY, FILL_LEAVES, FILL_EXEC, FILL_PX, FILL_LIQ = (
    _ix(c.Fill, f) for f in ("cl_ord_id", "qty", "leaves", "exec_id", "price", "liquidity")
)
CXL_CL, CXL_REASON, CXL_OID, CXL_SIDE, CXL_PX, CXL_QTY = (
    _ix(c.Cancelled, f) for f in ("cl_ord_id", "reason", "order_id", "side", "price", "qty")
)
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


@dataclass(slots=True)
class OrderResult:
    """What the gateway answered to one NewOrder or Cancel. (`_start` builds these with
    positional arguments: keep the order of the first eleven fields.)"""

    session_id: int
    cl_ord_id: int
    symbol_id: int
    status: str = "pending"  # new partially_filled filled cancelled rejected
    order_id: int = 0
    reason: int = 0
    side: int = 0
    ord_type: int = 0
    tif: int = 0
    price: int = 0
    qty: int = 0
    filled: int = 0
    leaves: int = 0
    fills: list[tuple[int, int, int, int]] = field(default_factory=list)  # exec_id px qty liq
    acked: bool = False


assert tuple(f.name for f in fields(OrderResult))[:11] == (
    "session_id",
    "cl_ord_id",
    "symbol_id",
    "status",
    "order_id",
    "reason",
    "side",
    "ord_type",
    "tif",
    "price",
    "qty",
), "OrderResult layout changed: update OrderEntrySession._start"


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
        self._pending: dict[int, tuple[OrderResult, _Waiter]] = {}  # cl_ord_id -> NewOrder
        self._cancels: dict[int, tuple[OrderResult, _Waiter]] = {}  # orig cl_ord_id -> Cancel
        self._inflight = 0
        self._acked: dict[int, OrderResult] = {}
        self._last_rx = 0.0
        self._gap_asked = 0.0
        self.window = 22
        self._loop: asyncio.AbstractEventLoop | None = None  # reads the socket (attach_loop)
        self._loop_tid = 0
        self._next_cl = time.time_ns() // 1000  # grows across restarts: no clash with live ids

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

    def new_cl_ord_id(self) -> int:
        with self._send_lock:
            self._next_cl += 1
            return self._next_cl

    def submit(self, orders: list[c.NewOrder], timeout: float | None = None) -> list[OrderResult]:
        """Send NewOrders (cl_ord_id 0 = assign one) and wait for every acknowledgement."""
        self._not_on_reading_loop("submit")
        self.ensure_logged_in()
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        waiter = _Waiter(len(orders))
        results = self._start(orders, waiter, deadline, block=True)
        assert results is not None
        ok = waiter.event.wait(max(0.0, deadline - time.monotonic()))
        return self._finish(orders, results, ok, timeout)

    async def submit_async(
        self, orders: list[c.NewOrder], timeout: float | None = None
    ) -> list[OrderResult]:
        """`submit` for an asyncio caller: the event loop is not blocked while the dataplane
        answers (the receiver thread hands the acknowledgement over to the loop). The session
        must be logged in. When the in-flight window is full (gRPC batches in flight), the
        blocking `submit` runs in a worker thread instead."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def woken() -> None:
            if threading.get_ident() == self._loop_tid and self._loop is loop:
                _set_done(fut)  # answered on this very loop (attach_loop)
            else:
                loop.call_soon_threadsafe(_set_done, fut)

        waiter = _Waiter(len(orders), woken)
        results = self._start(orders, waiter, deadline, block=False)
        if results is None:
            return await asyncio.to_thread(self.submit, orders, timeout)
        try:
            await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            pass
        return self._finish(orders, results, waiter.event.is_set(), timeout)

    def _start(
        self, orders: list[c.NewOrder], waiter: _Waiter, deadline: float, block: bool
    ) -> list[OrderResult] | None:
        """Assign client order ids, register the orders with `waiter` and send them. With
        block=False (one datagram's worth only) nothing is done and None is returned when the
        in-flight window has no room."""
        if not block:
            if len(orders) > c.MAX_MSGS:
                return None
            with self._state:
                if self._inflight + len(orders) > self.window and self._inflight:
                    return None
        results: list[OrderResult] = []
        now = time.time_ns()
        sid, new_result = self.session_id, OrderResult
        with self._send_lock:
            next_cl = self._next_cl
            self._next_cl += len(orders)
        for o in orders:
            if not o.cl_ord_id:
                next_cl += 1
                o.cl_ord_id = next_cl
            o.client_ts = now
            results.append(  # positional (field order of OrderResult): the batch hot path
                new_result(
                    sid,
                    o.cl_ord_id,
                    o.symbol_id,
                    "pending",
                    0,
                    0,
                    o.side,
                    o.ord_type,
                    o.tif,
                    o.price,
                    o.qty,
                )
            )
        for i in range(0, len(orders), c.MAX_MSGS):
            chunk = orders[i : i + c.MAX_MSGS]
            with self._state:
                while self._inflight + len(chunk) > self.window and self._inflight:
                    if not self._state.wait(max(0.0, deadline - time.monotonic())):
                        break
                for o, r in zip(chunk, results[i : i + c.MAX_MSGS], strict=True):
                    self._pending[o.cl_ord_id] = (r, waiter)
                self._inflight += len(chunk)
            try:
                body = b"".join(
                    _NEW.pack(
                        T_NEW,
                        o.side,
                        o.ord_type,
                        o.tif,
                        o.symbol_id,
                        o.cl_ord_id,
                        o.price,
                        o.qty,
                        o.client_ts,
                    )
                    for o in chunk
                )
            except struct.error:
                body = b"".join(o.encode() for o in chunk)  # raises naming the bad field
            n = len(chunk)
            with self._send_lock:
                seq = self.next_in
                self.next_in += n
                hdr = _HDR.pack(
                    c.MAGIC, c.VERSION, 0, self.session_id, seq, n, c.HDR_SIZE + n * c.MSG_SIZE, 0
                )
                self._send_raw(hdr + body)
        return results

    def _finish(
        self, orders: list[c.NewOrder], results: list[OrderResult], ok: bool, timeout: float
    ) -> list[OrderResult]:
        if not ok:
            with self._state:
                missing = [r.cl_ord_id for r in results if not r.acked]
                for cl in missing:
                    if self._pending.pop(cl, None) is not None:
                        self._inflight -= 1
            if missing:
                raise DeadlineExceeded(
                    f"dataplane did not acknowledge {len(missing)} of {len(orders)} orders "
                    f"within {timeout:g} s (session {self.session_id}, first cl_ord_id "
                    f"{missing[0]})"
                )
        if not all(r.acked for r in results):
            raise Unavailable(
                f"order-entry session {self.session_id} ended before every order was "
                "acknowledged; query the orders by session to see which were applied"
            )
        return results

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
        done: list[_Waiter] = []
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

    def _on_datagram(self, data: bytes, done: list[_Waiter]) -> None:
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
                msgs = []
                for off in range(c.HDR_SIZE, n, c.MSG_SIZE):
                    st = _APP.get(data[off])
                    if st is None:
                        break
                    msgs.append(st.unpack_from(data, off))
                else:
                    self._on_app(seq, msgs, done)
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

    def _on_app(self, first: int, msgs: list[tuple], done: list[_Waiter]) -> None:
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

    def _apply(self, msgs: list[tuple], done: list[_Waiter]) -> None:
        """Handle in-order messages (codec struct tuples, type first); the first has outbound
        sequence `expected_out`."""
        self.expected_out += len(msgs)
        pending, cancels, acked = self._pending, self._cancels, self._acked
        for v in msgs:
            t = v[0]
            if t == T_ACC or (t == T_REJ and v[REJ_REF] != T_CXL_REQ):
                cl = v[ACC_CL] if t == T_ACC else v[REJ_CL]
                ent = pending.pop(cl, None)
                if ent is None:
                    continue
                r, w = ent
                if t == T_ACC:
                    r.status, r.order_id, r.leaves = "new", v[ACC_OID], v[ACC_QTY]
                else:
                    r.status, r.reason = "rejected", v[REJ_REASON]
                    if v[REJ_REASON] == c.RejectReason.NOT_LOGGED_IN:
                        self.logged_in = False
                r.acked = True
                acked[cl] = r
                self._inflight -= 1
                w.remaining -= 1
                if w.remaining == 0:
                    done.append(w)
            elif t == T_REJ:  # a refused Cancel
                ent = cancels.pop(v[REJ_CL], None)
                if ent is not None:
                    r, w = ent
                    r.status, r.reason, r.acked = "rejected", v[REJ_REASON], True
                    self._inflight -= 1
                    done.append(w)
            elif t == T_FILL:
                r2 = acked.get(v[FILL_CL])
                if r2 is not None:
                    r2.filled += v[FILL_QTY]
                    r2.leaves = v[FILL_LEAVES]
                    r2.status = "filled" if v[FILL_LEAVES] == 0 else "partially_filled"
                    r2.fills.append((v[FILL_EXEC], v[FILL_PX], v[FILL_QTY], v[FILL_LIQ]))
            elif t == T_CXLD:
                r2 = acked.get(v[CXL_CL])
                if r2 is not None:
                    r2.status, r2.reason, r2.leaves = "cancelled", v[CXL_REASON], 0
                if v[CXL_REASON] == c.CancelReason.USER:
                    ent = cancels.pop(v[CXL_CL], None)
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
        if len(acked) > 65536:
            for k in list(acked)[: len(acked) - 32768]:
                del acked[k]

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
        with self._state:
            waiters = {
                id(w): w for _, w in list(self._pending.values()) + list(self._cancels.values())
            }
            self._pending.clear()
            self._cancels.clear()
            self._inflight = 0
        for w in waiters.values():
            w.wake()  # callers see acked=False

    def _hb_loop(self) -> None:
        """Heartbeats when idle; retransmission requests when answers are overdue."""
        while not self._stop.wait(0.01):
            if not self.logged_in:
                continue
            now = time.monotonic()
            with self._state:
                overdue = (self._pending or self._cancels) and now - max(
                    self._last_rx, self._last_send
                ) > OVERDUE_AFTER
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


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
