"""asyncio trading client for the xdpex gateway (wire protocol v1, docs/protocol.md).

What a real trading client needs: login with an HMAC proof, both sequences, resend of unanswered
orders (same sequence numbers, so the gateway applies each exactly once), RetransmitRequest on a
gap in the gateway's sequence, heartbeats and timeout detection, logout, and batching.

    client = await XeClient.connect(("10.0.0.1", 9000), session_id=7, secret=key)
    acc = await client.new_order(symbol_id=1, side=Side.BUY, price=10_000, qty=5)
    if isinstance(acc, Rejected): print(RejectReason(acc.reason).name)
    order = client.order(acc.cl_ord_id)           # Order: status, leaves, fills, ...
    await order.done                              # resolves when filled, cancelled or rejected
    res = await client.cancel(1, acc.cl_ord_id)   # Cancelled or Rejected
    await client.logout()

API (XeClient):
- `await XeClient.connect(remote, session_id, secret, *, local=None, next_seq=0, ...)`: opens a
  UDP socket to remote (host, port) bound to local, or a unix datagram socket when remote is a
  path (the dataplane's entry socket; local must then be a path to bind), and logs in. Raises
  LoginError (.reason: LoginReason) or TimeoutError. `next_seq` asks the gateway to replay its
  messages from that sequence (0 = none). To resume after the session was lost (timeout, logout),
  connect a new client with next_seq=old.expected_in: it receives what the old one missed, and
  its own sequence continues from LoginAccepted.next_in_seq.
- `new_order(symbol_id, side, price, qty, *, ord_type=LIMIT, tif=GTC, cl_ord_id=None)`,
  `cancel(symbol_id, cl_ord_id)`, `replace(symbol_id, orig_cl_ord_id, price, qty, *,
  new_cl_ord_id=None)`, `mass_cancel(symbol_id=0, side=0)`: queue one message and return a
  Request, awaitable for the answer: Accepted or Rejected (new order), Cancelled or Rejected
  (cancel), Replaced or Rejected (replace), the first Cancelled(MASS) or Rejected (mass cancel).
  Calls made without awaiting in between are sent together, up to 22 messages a datagram
  (batching); `flush()` sends at once; `resend_unanswered()` resends what is unanswered now.
  Awaiting raises SessionLost if the session dies first, or AnswerTimeout after `max_resends`
  resends without an answer. Resends happen after `resend_after` seconds (default: 4 x the
  measured round trip, 50 ms..1 s) with the same sequence numbers.
- `order(cl_ord_id)` -> Order (status, order_id, leaves, filled, fills, done future);
  `fills(cl_ord_id)` -> the Fills of that order, in gateway sequence order.
- `on_message`: callback for every gateway application message, in sequence order, exactly once.
- `stats`: counters (sent, resent, duplicates, gaps, retransmit requests, malformed, ...).
- `await logout()`, `close()`; `closed` future resolves with the reason when the session ends.

Failover (docs/ha.md): `remote` may be a list of gateway addresses (a primary and its standbys).
On a heartbeat timeout or a Logout from the gateway (reason SWITCHOVER, ...) the client does not
close: it moves to the next address and logs in there with the first gateway sequence it has not
applied (a standby does not answer: it tries the next one every `login_try` seconds, for at most
`failover_timeout`), then resends, with the same sequence numbers, every message the new
primary has not applied (LoginAccepted.next_in_seq); the new primary replays what it missed.
Pending requests stay pending across the move. `epoch` is the gateway's leadership epoch of the
last login, `stats["failovers"]` counts moves, `on_failover(reason, remote)` is called on each.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from xdpex_proto import codec as c

log = logging.getLogger("xdpex.client")

MAX_EARLY = 1 << 16  # gateway messages buffered beyond a gap


def _logout_name(reason: int) -> str:
    try:
        return c.LogoutReason(reason).name
    except ValueError:
        return f"reason {reason}"


class ClientError(Exception):
    pass


class LoginError(ClientError):
    def __init__(self, reason: int):
        try:
            name = c.LoginReason(reason).name
        except ValueError:
            name = f"unknown reason {reason}"
        super().__init__(f"login rejected: {name}")
        self.reason = reason


class SessionLost(ClientError):
    """The session ended (timeout, logout, closed) before the answer came."""


class AnswerTimeout(ClientError):
    """A message was resent max_resends times without an answer."""


@dataclass
class Order:
    cl_ord_id: int
    symbol_id: int
    side: int
    price: int
    qty: int
    ord_type: int
    tif: int
    status: str = "pending"  # pending, live, filled, cancelled, rejected
    order_id: int = 0
    leaves: int = 0
    filled: int = 0
    reason: int = 0  # reject or cancel reason
    fills: list[c.Fill] = field(default_factory=list)
    done: asyncio.Future[Order] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def _finish(self, status: str) -> None:
        self.status = status
        if not self.done.done():
            self.done.set_result(self)


class Request:
    """One sequenced message in flight; await it for its answer."""

    __slots__ = ("msg", "seq", "key", "future", "sent_at", "resends", "wire")

    def __init__(self, msg: c.Message, seq: int, key: tuple[str, int],
                 future: asyncio.Future[c.Message]):  # fmt: skip
        self.msg = msg
        self.seq = seq
        self.key = key  # what identifies its answer: ("new", cl_ord_id), ("mass", client_ts), ...
        self.future = future
        self.sent_at = 0.0
        self.resends = 0
        self.wire = msg.encode()

    def __await__(self) -> Generator[Any, None, c.Message]:
        return self.future.__await__()

    @property
    def client_ts(self) -> int:
        return int(getattr(self.msg, "client_ts", 0))


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, client: XeClient):
        self.client = client

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.client._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        self.client.stats["socket_errors"] += 1
        log.debug("socket error: %s", exc)


class XeClient:
    def __init__(self, session_id: int, secret: bytes, *, resend_after: float | None = None,
                 max_resends: int = 20, tick: float = 0.01,
                 on_message: Callable[[c.Message], None] | None = None,
                 failover_timeout: float = 30.0, login_try: float = 0.25,
                 on_failover: Callable[[str, Any], None] | None = None):  # fmt: skip
        if not 0 < session_id < 1 << 32:
            raise ValueError(f"session_id: {session_id}, expected 1..{(1 << 32) - 1}")
        self.session_id = session_id
        self.secret = secret
        self.fixed_resend = resend_after
        self.max_resends = max_resends
        self.tick = tick
        self.on_message = on_message
        self.stats: Counter[str] = Counter()
        self.orders: dict[int, Order] = {}
        self.heartbeat_ms = 1000
        self.next_out = 1  # our next application sequence
        self.expected_in = 1  # the gateway's next sequence we apply
        self.logged_in = False
        self.srtt: float | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[str] = self._loop.create_future()
        self._queue: list[Request] = []  # created, not sent yet
        self._inflight: dict[int, Request] = {}  # seq -> not known applied: resend candidates
        self._pending: dict[int, Request] = {}  # seq -> answer not received yet
        self._waiting: dict[tuple[str, int], list[Request]] = {}  # answer key -> pending, by seq
        self._ever_logged_in = False
        self._login_next_seq = 0
        self._early: dict[int, c.Message] = {}  # gateway messages beyond expected_in
        self._login: asyncio.Future[c.Message] | None = None
        self._logout: asyncio.Future[c.Message] | None = None
        self._flush_scheduled = False
        self._last_ts = 0
        self._last_sent = self._last_recv = time.monotonic()
        self._retx_at = 0.0
        self._ids = itertools.count(int.from_bytes(os.urandom(3), "little") << 32 | 1)
        self._ticker: asyncio.Task[None] | None = None
        self.remotes: list[Any] = []
        self.remote_at = 0
        self.epoch = 0
        self.failover_timeout = failover_timeout
        self.login_try = login_try
        self.on_failover = on_failover
        self._local: Any = None
        self._failing: asyncio.Task[None] | None = None

    # connection and session ---------------------------------------------------------------------

    @classmethod
    async def connect(cls, remote: tuple[str, int] | str | list[Any], session_id: int,
                      secret: bytes, *, local: tuple[str, int] | str | None = None,
                      next_seq: int = 0, login_timeout: float = 2.0,
                      **kw: Any) -> XeClient:  # fmt: skip
        """`remote`: one address, or a list of them (failover, see the module docstring): the
        first that accepts the login within login_timeout (each tried for login_try) wins."""
        self = cls(session_id, secret, **kw)
        self.remotes = list(remote) if isinstance(remote, list) else [remote]
        if not self.remotes:
            raise ValueError("remote: at least one gateway address")
        self._local = local
        try:
            if len(self.remotes) == 1:
                await self._open(self.remotes[0])
                await self.login(next_seq=next_seq, timeout=login_timeout)
            else:
                await self._login_somewhere(next_seq, login_timeout)
        except BaseException:
            self.close("login failed")
            raise
        return self

    @property
    def remote(self) -> Any:
        return self.remotes[self.remote_at % len(self.remotes)]

    async def _open(self, remote: Any) -> None:
        if self._transport is not None:
            self._transport.close()
        if isinstance(remote, str):
            if not isinstance(self._local, str):
                raise ValueError("local: a unix remote needs a local socket path to bind")
            family = socket.AF_UNIX
            with contextlib.suppress(FileNotFoundError):
                if self._transport is not None:
                    os.unlink(self._local)
        else:
            family = socket.AF_INET6 if ":" in remote[0] else socket.AF_INET
        self._transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Proto(self), local_addr=self._local, remote_addr=remote, family=family
        )

    async def _login_somewhere(self, next_seq: int | None, timeout: float) -> None:
        """Tries the addresses in turn from the current one until one accepts the login."""
        deadline = self._loop.time() + timeout
        while True:
            await self._open(self.remote)
            try:
                await self.login(next_seq=next_seq,
                                 timeout=max(min(self.login_try, deadline - self._loop.time()),
                                             0.01))
                return
            except TimeoutError:
                if self._loop.time() >= deadline:
                    raise TimeoutError(f"session {self.session_id}: no gateway of "
                                       f"{self.remotes} accepted the login") from None
                self.remote_at += 1

    def _fail_over(self, reason: str) -> None:
        """Heartbeat timeout or Logout with more than one address: move on (module docstring)."""
        if self._failing is not None or self.closed.done():
            return
        self.logged_in = False
        self.stats["failovers"] += 1
        log.warning("session %d: %s at %s: moving to the next gateway", self.session_id, reason,
                    self.remote)  # fmt: skip
        self.remote_at += 1
        if self.on_failover is not None:
            self.on_failover(reason, self.remote)
        self._failing = asyncio.create_task(self._failover_task(), name="xdpex-client-failover")

    async def _failover_task(self) -> None:
        try:
            await self._login_somewhere(None, self.failover_timeout)
        except (TimeoutError, ClientError, OSError) as e:
            self._failing = None
            self.close(f"failover failed: {e}")
            return
        self._failing = None

    @property
    def local_address(self) -> Any:
        assert self._transport is not None
        return self._transport.get_extra_info("sockname")

    async def login(self, next_seq: int | None = None, timeout: float = 2.0) -> c.LoginAccepted:
        """Logs in; resends the Login (fresh timestamp and nonce) every 0.5 s until answered or
        timeout. next_seq None: a first login asks for no replay, a repeated one resumes from the
        first gateway message not yet applied."""
        if next_seq is None:
            next_seq = self.expected_in if self._ever_logged_in else 0
        self._login = self._loop.create_future()
        self._login_next_seq = next_seq
        deadline = self._loop.time() + timeout
        while True:
            left = deadline - self._loop.time()
            if left <= 0:
                raise TimeoutError(f"session {self.session_id}: no answer to Login")
            ts, nonce = self._ts(), secrets.randbits(64)
            proof = c.login_proof(self.secret, self.session_id, ts, nonce)
            self._send_session([c.Login(self.session_id, next_seq, nonce, proof, ts)])
            try:
                ans = await asyncio.wait_for(asyncio.shield(self._login), min(left, 0.5))
                break
            except TimeoutError:
                continue
        if isinstance(ans, c.LoginRejected):
            raise LoginError(ans.reason)
        assert isinstance(ans, c.LoginAccepted)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_loop(), name="xdpex-client-tick")
        return ans

    def _on_login_accepted(self, m: c.LoginAccepted) -> None:
        """Sets up both sequences at once, before any replay datagram that follows is handled."""
        self.heartbeat_ms = max(m.heartbeat_ms, 10)
        self.epoch = m.epoch
        self.expected_in = self._login_next_seq or m.next_out_seq
        self._early = {s: x for s, x in self._early.items() if s >= self.expected_in}
        self._drain()
        self._applied_through(m.next_in_seq - 1)
        if self.next_out < m.next_in_seq:
            self.next_out = m.next_in_seq
        self.logged_in = self._ever_logged_in = True
        self._last_recv = time.monotonic()
        self._resend(force=True)

    async def logout(self, timeout: float = 1.0) -> None:
        """Sends Logout and waits for the gateway's Logout (or timeout), then closes."""
        if self.closed.done():
            return
        self.flush()
        self._logout = self._loop.create_future()
        self._send_session([c.Logout(c.LogoutReason.USER, 0, self._ts())])
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._logout, timeout)
        self.close("logout")

    def close(self, reason: str = "closed") -> None:
        if self._failing is not None:
            self._failing.cancel()
            self._failing = None
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._transport is not None:
            self._transport.close()
        self.logged_in = False
        if not self.closed.done():
            self.closed.set_result(reason)
        err = SessionLost(f"session {self.session_id}: {reason}")
        for req in list(self._pending.values()):
            self._fail(req, err)
        for fut in (self._login, self._logout):
            if fut is not None and not fut.done():
                fut.set_exception(err)
                fut.exception()
        self._inflight.clear()
        self._queue.clear()
        self._waiting.clear()

    # order entry ---------------------------------------------------------------------------------

    def new_cl_ord_id(self) -> int:
        return next(self._ids)

    def new_order(self, symbol_id: int, side: int, price: int, qty: int, *,
                  ord_type: int = c.OrdType.LIMIT, tif: int = c.Tif.GTC,
                  cl_ord_id: int | None = None) -> Request:  # fmt: skip
        cl = self.new_cl_ord_id() if cl_ord_id is None else cl_ord_id
        self.orders[cl] = Order(cl, symbol_id, side, price, qty, ord_type, tif)
        return self._submit(c.NewOrder(side, ord_type, tif, symbol_id, cl, price, qty), "new", cl)

    def cancel(self, symbol_id: int, cl_ord_id: int) -> Request:
        return self._submit(c.Cancel(symbol_id, cl_ord_id), "cancel", cl_ord_id)

    def replace(self, symbol_id: int, orig_cl_ord_id: int, price: int, qty: int, *,
                new_cl_ord_id: int | None = None) -> Request:  # fmt: skip
        new = self.new_cl_ord_id() if new_cl_ord_id is None else new_cl_ord_id
        msg = c.Replace(symbol_id, orig_cl_ord_id, new, price, qty)
        return self._submit(msg, "replace", orig_cl_ord_id)

    def mass_cancel(self, symbol_id: int = 0, side: int = 0) -> Request:
        """Answered by the first Cancelled(MASS) it causes (each order's state follows every one),
        or by a Rejected (also when it had nothing to cancel, see docs/protocol.md)."""
        return self._submit(c.MassCancel(side, symbol_id), "mass", 0)

    def order(self, cl_ord_id: int) -> Order:
        return self.orders[cl_ord_id]

    def fills(self, cl_ord_id: int) -> list[c.Fill]:
        o = self.orders.get(cl_ord_id)
        return list(o.fills) if o else []

    def _submit(self, msg: Any, kind: str, ident: int) -> Request:
        if self.closed.done():
            raise SessionLost(f"session {self.session_id}: {self.closed.result()}")
        msg.client_ts = self._ts()
        key = (kind, msg.client_ts if kind == "mass" else ident)
        req = Request(msg, self.next_out, key, self._loop.create_future())
        self.next_out += 1
        self._pending[req.seq] = req
        self._waiting.setdefault(key, []).append(req)
        self._queue.append(req)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)
        return req

    def flush(self) -> None:
        """Sends every queued message now, up to 22 a datagram."""
        self._flush_scheduled = False
        q, self._queue = self._queue, []
        if not q:
            return
        now = time.monotonic()
        for r in q:
            r.sent_at = now
            self._inflight[r.seq] = r
        if self.logged_in:
            self._send_app(q)

    def resend_unanswered(self) -> int:
        """Resends every sent, unanswered message now (same sequence numbers: the gateway skips
        what it already applied), e.g. after a network change. Returns how many."""
        n = len(self._inflight) if self.logged_in else 0
        self._resend(force=True)
        return n

    # sending -------------------------------------------------------------------------------------

    def _ts(self) -> int:
        """Wall clock in ns, strictly increasing, so echo_ts identifies the message it answers."""
        ts = max(time.time_ns(), self._last_ts + 1)
        self._last_ts = ts
        return ts

    def _send(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.sendto(data)
        self._last_sent = time.monotonic()
        self.stats["datagrams_sent"] += 1

    def _send_session(self, msgs: list[c.Message], flags: int = 0) -> None:
        self._send(c.encode_datagram(self.session_id, 0, msgs, flags))

    def _send_app(self, reqs: list[Request]) -> None:
        for i in range(0, len(reqs), c.MAX_MSGS):
            chunk = reqs[i : i + c.MAX_MSGS]
            n = len(chunk)
            hdr = c.Header(self.session_id, chunk[0].seq, n, c.HDR_SIZE + n * c.MSG_SIZE)
            self._send(hdr.encode() + b"".join(r.wire for r in chunk))
            self.stats["messages_sent"] += n

    def _resend_after(self) -> float:
        if self.fixed_resend is not None:
            return self.fixed_resend
        if self.srtt is None:
            return 0.2
        return min(max(4 * self.srtt, 0.05), 1.0)

    def _resend(self, force: bool = False, from_seq: int = 0) -> None:
        """Resends the unanswered messages (all, from from_seq on) once they are overdue."""
        if not self._inflight or not self.logged_in:
            return
        now = time.monotonic()
        oldest = self._inflight[min(self._inflight)]
        if not force and now - oldest.sent_at < self._resend_after():
            return
        due = [r for s, r in sorted(self._inflight.items()) if s >= from_seq]
        expired = [r for r in due if r.resends >= self.max_resends]
        if expired:
            self._give_up(expired[-1].seq)
            due = [r for r in due if r.seq > expired[-1].seq]
        for r in due:
            r.resends += 1
            r.sent_at = now
        self.stats["messages_resent"] += len(due)
        self._send_app(due)

    def _give_up(self, through: int) -> None:
        for s in sorted(self._inflight):
            if s > through:
                break
            r = self._inflight.pop(s)
            what = f"seq {s} ({type(r.msg).__name__}): no answer after {r.resends} resends"
            self._fail(r, AnswerTimeout(what))

    def _fail(self, req: Request, err: Exception) -> None:
        self._forget(req)
        if not req.future.done():
            req.future.set_exception(err)
            req.future.exception()  # retrieved: nobody may be awaiting it

    def _forget(self, req: Request) -> None:
        self._pending.pop(req.seq, None)
        waiting = self._waiting.get(req.key)
        if waiting and req in waiting:
            waiting.remove(req)
            if not waiting:
                del self._waiting[req.key]

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            hb = self.heartbeat_ms / 1000
            if self._failing is not None:
                continue
            if now - self._last_recv > 3 * hb:
                log.warning("session %d: nothing from the gateway for %.3f s", self.session_id,
                            now - self._last_recv)  # fmt: skip
                if len(self.remotes) > 1:
                    self._fail_over("heartbeat timeout")
                    continue
                self.close("heartbeat timeout")
                return
            if now - self._last_sent >= hb:
                self._send_session([c.Heartbeat(self.next_out, 0, self._ts())], c.F_HEARTBEAT)
                self.stats["heartbeats_sent"] += 1
            self._resend()
            if self._early and now >= self._retx_at:
                self._request_retransmit(min(self._early))

    def _request_retransmit(self, upto: int) -> None:
        """Asks for expected_in .. upto - 1 (the gateway may serve fewer; we ask again)."""
        count = min(upto - self.expected_in, (1 << 32) - 1)
        if count <= 0:
            return
        self._send_session([c.RetransmitReq(self.expected_in, count, self._ts())])
        self.stats["retransmit_requests"] += 1
        self._retx_at = time.monotonic() + self._resend_after()

    # receiving -----------------------------------------------------------------------------------

    def _on_datagram(self, data: bytes) -> None:
        try:
            dg = c.decode_datagram(data, c.Direction.FROM_GW)
        except c.ProtocolError as e:
            self.stats["malformed"] += 1
            log.warning("session %d: dropped malformed datagram: %s", self.session_id, e)
            return
        if dg.session_id != self.session_id:
            self.stats["wrong_session"] += 1
            log.warning("session %d: dropped datagram for session %d", self.session_id,
                        dg.session_id)  # fmt: skip
            return
        self._last_recv = time.monotonic()
        self.stats["datagrams_received"] += 1
        if dg.seq == 0:
            for m in dg.messages:
                self._on_session(m)
            return
        for i, m in enumerate(dg.messages):
            s = dg.seq + i
            if s < self.expected_in:
                self.stats["duplicates"] += 1
            elif s > self.expected_in + MAX_EARLY:
                self.stats["too_far_ahead"] += 1  # refuse to buffer without bound
            elif s > self.expected_in:
                self._early.setdefault(s, m)
            else:
                self._apply(m)
        self._drain()
        if self._early:
            self.stats["gaps"] += 1
            if time.monotonic() >= self._retx_at:
                self._request_retransmit(min(self._early))

    def _drain(self) -> None:
        while self.expected_in in self._early:
            self._apply(self._early.pop(self.expected_in))

    def _on_session(self, m: c.Message) -> None:
        if isinstance(m, c.LoginAccepted | c.LoginRejected):
            if self._login is not None and not self._login.done():
                if isinstance(m, c.LoginAccepted):
                    self._on_login_accepted(m)
                self._login.set_result(m)
        elif isinstance(m, c.Heartbeat):
            self.stats["heartbeats_received"] += 1
            if m.next_seq > self.expected_in and not self._early:
                self._request_retransmit(m.next_seq)  # lost tail
        elif isinstance(m, c.SequenceGap):
            self.stats["sequence_gaps"] += 1
            self._applied_through(m.expected - 1)
            self._resend(force=True, from_seq=m.expected)
        elif isinstance(m, c.Logout):
            if self._logout is not None and not self._logout.done():
                self._logout.set_result(m)
            elif len(self.remotes) > 1:
                if self.logged_in:
                    self._fail_over(f"logout by gateway ({_logout_name(m.reason)})")
                else:  # moving already (a late one from the gateway it is leaving)
                    self.stats["logouts_while_moving"] += 1
            else:
                self.close(f"logout by gateway ({_logout_name(m.reason)})")

    def _apply(self, m: c.Message) -> None:
        """One gateway application message, in sequence order, exactly once."""
        self.expected_in += 1
        if isinstance(m, c.Accepted):
            self._answered(self._match("new", m.cl_ord_id), m)
            o = self.orders.get(m.cl_ord_id)
            if o and o.status == "pending":
                o.status, o.order_id, o.leaves = "live", m.order_id, m.qty
        elif isinstance(m, c.Rejected):
            self._answered(self._pending.get(m.ref_seq), m)
            self._applied_through(m.ref_seq)
            o = self.orders.get(m.cl_ord_id)
            if m.ref_type == c.MsgType.NEW_ORDER and o and o.status == "pending":
                o.reason = m.reason
                o._finish("rejected")
        elif isinstance(m, c.Fill):
            o = self.orders.get(m.cl_ord_id)
            if o:
                o.fills.append(m)
                o.filled += m.qty
                o.leaves = m.leaves
                o.order_id = o.order_id or m.order_id
                if o.status == "pending":
                    o.status = "live"
                if m.leaves == 0:
                    o._finish("filled")
        elif isinstance(m, c.Cancelled):
            if m.reason == c.CancelReason.MASS:
                self._answered(self._match("mass", m.echo_ts), m)
            elif m.reason == c.CancelReason.USER:
                self._answered(self._match("cancel", m.cl_ord_id), m)
            o = self.orders.get(m.cl_ord_id)
            if o:
                o.reason, o.leaves = m.reason, 0
                o._finish("cancelled")
        elif isinstance(m, c.Replaced):
            self._answered(self._match("replace", m.orig_cl_ord_id), m)
            o = self.orders.get(m.orig_cl_ord_id)
            if o:
                o.cl_ord_id, o.price, o.qty, o.leaves = m.cl_ord_id, m.price, m.qty, m.leaves
                self.orders[m.cl_ord_id] = o
        if self.on_message is not None:
            try:
                self.on_message(m)
            except Exception:  # a user callback must not break sequencing
                self.stats["callback_errors"] += 1
                log.exception("session %d: on_message callback failed", self.session_id)

    def _match(self, kind: str, ident: int) -> Request | None:
        waiting = self._waiting.get((kind, ident))
        return waiting[0] if waiting else None

    def _answered(self, req: Request | None, answer: c.Message) -> None:
        if req is None:
            return
        self._forget(req)
        if not req.future.done():
            req.future.set_result(answer)
        echo = int(getattr(answer, "echo_ts", 0))
        if echo == req.client_ts and req.resends == 0:
            rtt = max((time.time_ns() - echo) / 1e9, 0.0)
            self.srtt = rtt if self.srtt is None else 0.875 * self.srtt + 0.125 * rtt
        self._applied_through(req.seq)

    def _applied_through(self, seq: int) -> None:
        """The gateway applies in order: an answer to seq means everything up to it is applied."""
        for s in sorted(self._inflight):
            if s > seq:
                break
            self._inflight.pop(s)
