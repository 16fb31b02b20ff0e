"""The receiving half of the control plane's order-entry session (xdpex.orderentry).

`SessionReceiver` is mixed into OrderEntrySession: the receiver thread (or, while one is
attached, the asyncio event loop, see `attach_loop`) drains the session's socket; in-order
application datagrams are read with one struct per datagram and their answers routed to the
entries waiting for them by client order id (xdpex.entrybatch); early datagrams wait for the
missing ones (RetransmitRequest after RETRANSMIT_AFTER), session messages (LoginAccepted,
Logout, SequenceGap, Heartbeat) update the session; a heartbeat thread keeps an idle session
alive and asks again for answers that are overdue.
"""

from __future__ import annotations

import asyncio
import logging
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

from xdpex_proto import codec as c

from . import fastwire as _fw
from .entrybatch import CHUNK_BITS, CHUNK_MASK, PENDING, Entry, OrderResult
from .errors import Unavailable

log = logging.getLogger("xdpex.orderentry")

_HDR = struct.Struct("<HBBIQHHI")  # struct xe_hdr, as in the codec
_APP = {t: cls.STRUCT for t, cls in c.MESSAGE_TYPES.items() if t >= 0x83 and t != 0x88}
T_ACC, T_REJ, T_FILL = int(c.MsgType.ACCEPTED), int(c.MsgType.REJECTED), int(c.MsgType.FILL)
T_CXLD, T_CXL_REQ = int(c.MsgType.CANCELLED), int(c.MsgType.CANCEL)
T_NEW = int(c.MsgType.NEW_ORDER)
UNKNOWN = "unknown"  # an order whose answer did not come in time (the caller was told so)

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
_NLI = bytes([T_REJ, T_NEW]) + int(c.RejectReason.NOT_LOGGED_IN).to_bytes(2, "little")


def _has_not_logged_in(data: bytes) -> bool:
    """Whether the messages hold a NewOrder's Rejected NOT_LOGGED_IN (a message's first 4
    bytes)."""
    at = data.find(_NLI)
    while at >= 0:
        if at % c.MSG_SIZE == 0:
            return True
        at = data.find(_NLI, at + 1)
    return False


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


class SessionReceiver:
    """The receiving methods of OrderEntrySession, which provides the attributes below."""

    session_id: int
    logged_in: bool
    login_error: str
    next_in: int
    expected_out: int
    heartbeat_ms: int
    _sock: socket.socket | None
    _stop: threading.Event
    _state: threading.Condition
    _send_lock: threading.Lock
    _early: dict[int, bytes]
    _chunks: dict[int, Entry]
    _cancels: dict[int, tuple[OrderResult, _Waiter]]
    _inflight: int
    _last_rx: float
    _last_send: float
    _gap_asked: float
    _loop: asyncio.AbstractEventLoop | None
    _loop_tid: int
    _send: Callable[..., None]
    failover_s: float
    failovers: int
    _lost_at: float | None
    _lost_why: str
    _lose: Callable[[str], None]
    _resend_from: Callable[[int], int]
    _send_login: Callable[[], None]

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
                    self._on_app(seq, count, data[c.HDR_SIZE :], done)
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

    def _on_app(self, first: int, count: int, msgs: bytes, done: list[Entry | _Waiter]) -> None:
        """`count` application messages (MSG_SIZE bytes each), the first with outbound
        sequence `first`."""
        mz = c.MSG_SIZE
        with self._state:
            if first + count <= self.expected_out:
                return  # duplicate
            if first > self.expected_out:
                self._early[first] = msgs
                self._ask_missing()
                return
            self._apply(msgs[(self.expected_out - first) * mz :], done)
            while self._early:
                k = min(self._early)
                if k > self.expected_out:
                    break
                m2 = self._early.pop(k)
                if k + len(m2) // mz > self.expected_out:
                    self._apply(m2[(self.expected_out - k) * mz :], done)
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

    def _apply(self, data: bytes, done: list[Entry | _Waiter]) -> None:
        """Handle in-order messages (MSG_SIZE bytes each); the first has outbound sequence
        `expected_out`. With the C extension, Accepted, Rejected and Fill messages are applied
        by it (xdpex.fastwire: the same code as `_apply_msgs`, in C) up to the first message
        it leaves to Python (cancels), which `_apply_msgs` takes, and so on, in order."""
        n = len(data) // c.MSG_SIZE
        self.expected_out += n
        fw = _fw.get()
        if self.failover_s and _has_not_logged_in(data):
            fw = None  # (rare: the Python path keeps those orders waiting, see _apply_msgs)
        if fw is None:
            self._apply_msgs(list(_ANS.iter_unpack(data)), done)
            return
        k, apply, chunks = 0, fw.apply, self._chunks
        while k < n:
            k, dec, not_logged_in = apply(data, k, chunks, done)
            self._inflight -= dec
            if not_logged_in:
                self.logged_in = False
            if k < n:
                self._apply_msgs([_ANS.unpack_from(data, k * c.MSG_SIZE)], done)
                k += 1

    def _apply_msgs(self, msgs: list[tuple], done: list[Entry | _Waiter]) -> None:
        """Handle in-order messages (codec struct tuples, type first). An answer finds its
        order by its client order id: the chunk (cl >> CHUNK_BITS) names the entry, the low
        bits and the chunk's place the index."""
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
                if t == T_REJ and v[2] | v[3] << 8 == c.RejectReason.NOT_LOGGED_IN and \
                        self.failover_s:
                    # a new primary that has not seen our login yet: not applied; resent
                    # after the login there
                    self._lose("the gateway says not logged in")
                    continue
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
            if isinstance(m, c.LoginAccepted) and self._lost_at is not None:
                self._relogged(m)
            elif isinstance(m, c.LoginAccepted):
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
            elif isinstance(m, c.Logout) and self.failover_s and \
                    m.reason != c.LogoutReason.USER:
                self._lose(f"logged out by the gateway, reason {m.reason}")  # (a switchover)
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
        if isinstance(m, c.Logout) and not (self.failover_s and m.reason != c.LogoutReason.USER):
            self._fail_all("logged out by the gateway")

    def _relogged(self, m: c.LoginAccepted) -> None:
        """LoginAccepted after a lost gateway (under _state): the new primary applied every
        message below next_in_seq; the rest is sent again with the same seqs, the answers from
        the first not seen are replayed (the Login asked for them)."""
        lost = self._lost_at
        assert lost is not None
        self.heartbeat_ms = m.heartbeat_ms or 1000
        self._early.clear()
        sent = self.next_in
        resent = self._resend_from(m.next_in_seq)
        if resent < 0:
            log.error("session %d: the new primary lacks messages from %d that are no longer "
                      "kept; their callers are told", self.session_id, m.next_in_seq)
            self._fail_all("messages lost in the failover")
        self.next_in = max(sent, m.next_in_seq)
        self.expected_out = min(self.expected_out, m.next_out_seq)
        self._lost_at = None
        self.failovers += 1
        self.logged_in = True
        log.warning(
            "session %d: logged in again at epoch %d after %.0f ms (%s): %d messages resent "
            "from %d",
            self.session_id,
            m.epoch,
            (time.monotonic() - lost) * 1000,
            self._lost_why,
            max(resent, 0),
            m.next_in_seq,
        )

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
        next_login = 0.0
        while not self._stop.wait(0.01):
            now = time.monotonic()
            if self._lost_at is not None:  # log in again (to the new primary) every 0.1 s
                if now >= next_login:
                    next_login = now + 0.1
                    try:
                        self._send_login()
                    except Unavailable:
                        pass  # (the entry socket still names the dead one)
                continue
            if not self.logged_in:
                continue
            if (
                self.failover_s
                and now - self._last_rx > 3 * self.heartbeat_ms / 1000
                and now - self._last_send < 1.0  # (the gateway's heartbeat answers ours)
            ):
                self._lose(f"no datagram from the gateway for {3 * self.heartbeat_ms} ms")
                continue
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
