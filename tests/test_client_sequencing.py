"""xdpex_traffic.client against a scripted protocol peer on loopback UDP (and a unix datagram
socket): the peer, written with the codec, plays the gateway's side of each exchange step by step:
login with HMAC, batching, a dropped answer recovered through the gateway's sequence, a dropped
request resent with the same sequence, a gap in the gateway's sequence, SequenceGap, heartbeats,
timeout and logout. Everything crosses real sockets; the gateway itself is not involved."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from xdpex_proto import codec as c
from xdpex_traffic.client import LoginError, SessionLost, XeClient

SID = 77
SECRET = bytes(range(32))
SKEW_NS = 5_000_000_000


class Peer(asyncio.DatagramProtocol):
    """The gateway's side of the protocol, driven by the test: receives client datagrams into a
    queue, keeps the gateway's outbound sequence and journal, sends what the script says."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[c.Datagram, Any]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.next_out = 1
        self.journal: dict[int, c.Message] = {}
        self.client_addr: Any = None
        self.nonces: set[int] = set()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        # Every datagram a client sends must pass the gateway's validation.
        self.inbox.put_nowait((c.decode_datagram(data, c.Direction.TO_GW), addr))

    async def recv(self, timeout: float = 2.0, skip_heartbeats: bool = True) -> c.Datagram:
        while True:
            dg, addr = await asyncio.wait_for(self.inbox.get(), timeout)
            self.client_addr = addr
            if skip_heartbeats and dg.flags & c.F_HEARTBEAT:
                continue
            return dg

    def send(self, seq: int, msgs: list[c.Message], flags: int = 0) -> None:
        assert self.transport is not None
        data = c.encode_datagram(SID, seq, msgs, flags | c.F_FROM_GW)
        self.transport.sendto(data, self.client_addr)

    def out(self, msgs: list[c.Message], drop: bool = False) -> int:
        """Journals msgs under the next outbound sequences and sends them unless drop."""
        first = self.next_out
        for m in msgs:
            self.journal[self.next_out] = m
            self.next_out += 1
        if not drop:
            self.send(first, msgs)
        return first

    def replay(self, from_seq: int, count: int) -> None:
        seqs = [s for s in range(from_seq, from_seq + count) if s in self.journal]
        self.send(seqs[0], [self.journal[s] for s in seqs], c.F_RETRANSMIT)

    async def serve_login(self, secret: bytes = SECRET, heartbeat_ms: int = 1000,
                          next_in: int = 1) -> c.Login:  # fmt: skip
        dg = await self.recv()
        assert dg.seq == 0 and dg.session_id == SID and len(dg.messages) == 1
        login = dg.messages[0]
        assert isinstance(login, c.Login) and login.session_id == SID
        assert abs(login.client_ts - time.time_ns()) < SKEW_NS
        assert login.nonce not in self.nonces, "nonce reused"
        self.nonces.add(login.nonce)
        if not c.verify_login(secret, login):
            self.send(0, [c.LoginRejected(c.LoginReason.BAD_PROOF, SID, login.client_ts, 1)])
            return login
        self.send(0, [c.LoginAccepted(SID, next_in, self.next_out, heartbeat_ms,
                                      login.client_ts, time.time_ns())])  # fmt: skip
        if 0 < login.next_seq < self.next_out:  # replay what the client asks for
            self.replay(login.next_seq, self.next_out - login.next_seq)
        return login


def accepted(o: c.NewOrder, order_id: int) -> c.Accepted:
    return c.Accepted(o.side, o.ord_type, o.tif, o.symbol_id, o.cl_ord_id, order_id, o.price,
                      o.qty, o.client_ts, time.time_ns())  # fmt: skip


Scenario = Callable[[Peer, XeClient], Awaitable[None]]


def run(scenario: Scenario, heartbeat_ms: int = 1000, **client_kw: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, peer = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            login = asyncio.create_task(peer.serve_login(heartbeat_ms=heartbeat_ms))
            client = await XeClient.connect(("127.0.0.1", port), SID, SECRET, **client_kw)
            await login
            try:
                await scenario(peer, client)
            finally:
                client.close()
        finally:
            transport.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_login_proof_and_rejection() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, peer = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            serve = asyncio.create_task(peer.serve_login())
            with pytest.raises(LoginError) as exc:
                await XeClient.connect(("127.0.0.1", port), SID, b"wrong secret")
            assert exc.value.reason == c.LoginReason.BAD_PROOF
            assert "BAD_PROOF" in str(exc.value)
            await serve
            # A second attempt uses a fresh nonce (Peer asserts it) and the right secret works.
            serve = asyncio.create_task(peer.serve_login())
            client = await XeClient.connect(("127.0.0.1", port), SID, SECRET)
            await serve
            assert client.logged_in and client.expected_in == 1 and client.next_out == 1
            client.close()
        finally:
            transport.close()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_batch_lost_answer_recovered_by_retransmit() -> None:
    async def scenario(peer: Peer, cl: XeClient) -> None:
        reqs = [cl.new_order(1, c.Side.BUY, 100 + i, 10) for i in range(3)]
        dg = await peer.recv()
        assert (dg.seq, len(dg.messages)) == (1, 3), "three calls, one datagram"
        first_wire = dg.encode()
        orders = [m for m in dg.messages if isinstance(m, c.NewOrder)]
        assert [o.price for o in orders] == [100, 101, 102]
        # Gateway applies all three; the answer to the third is lost on the way back.
        peer.out([accepted(orders[0], 1000), accepted(orders[1], 1001)])
        peer.out([accepted(orders[2], 1002)], drop=True)
        a0, a1 = await reqs[0], await reqs[1]
        assert isinstance(a0, c.Accepted) and a0.order_id == 1000 and a1.order_id == 1001
        assert not reqs[2].future.done()
        # The client resends the unanswered order with the same sequence and bytes.
        again = await peer.recv()
        assert (again.seq, len(again.messages)) == (3, 1)
        assert again.messages[0] == dg.messages[2]
        assert again.encode()[24:] == first_wire[24 + 128 :]
        # A duplicate for the gateway: skipped. Its heartbeat reveals the lost tail.
        peer.send(0, [c.Heartbeat(peer.next_out, 0, time.time_ns())], c.F_HEARTBEAT)
        rr = await peer.recv()
        (req,) = rr.messages
        assert isinstance(req, c.RetransmitReq) and rr.seq == 0
        assert (req.from_seq, req.count) == (3, 1)
        peer.replay(3, 1)
        a2 = await reqs[2]
        assert isinstance(a2, c.Accepted) and a2.order_id == 1002
        assert [cl.order(o.cl_ord_id).status for o in orders] == ["live"] * 3
        assert cl.expected_in == 4 and not cl._inflight
        # Answered: nothing is resent any more.
        with pytest.raises(asyncio.TimeoutError):
            await peer.recv(timeout=0.4)
        assert cl.stats["messages_resent"] >= 1 and cl.stats["retransmit_requests"] == 1

    run(scenario, resend_after=0.1)


def test_lost_request_resent_and_applied_once() -> None:
    async def scenario(peer: Peer, cl: XeClient) -> None:
        req = cl.new_order(2, c.Side.SELL, 50, 4, tif=c.Tif.DAY)
        dg = await peer.recv()
        assert dg.seq == 1
        # The gateway never saw it (lost on the way in): no answer. The client resends.
        t0 = time.monotonic()
        dg2 = await peer.recv()
        assert time.monotonic() - t0 >= 0.05
        assert dg2.seq == 1 and dg2.messages == dg.messages
        (o,) = dg2.messages
        assert isinstance(o, c.NewOrder)
        peer.out([accepted(o, 7)])
        assert isinstance(await req, c.Accepted)
        cxl = cl.cancel(2, o.cl_ord_id)
        dg3 = await peer.recv()
        assert dg3.seq == 2 and isinstance(dg3.messages[0], c.Cancel)
        assert dg3.messages[0].orig_cl_ord_id == o.cl_ord_id
        peer.out([c.Cancelled(o.side, c.CancelReason.USER, 2, o.cl_ord_id, 7, 50, 4,
                              dg3.messages[0].client_ts, time.time_ns())])  # fmt: skip
        ans = await cxl
        assert isinstance(ans, c.Cancelled)
        order = cl.order(o.cl_ord_id)
        await asyncio.wait_for(order.done, 1)
        assert order.status == "cancelled" and order.leaves == 0

    run(scenario, resend_after=0.1)


def test_gap_in_gateway_sequence_filled_in_order() -> None:
    seen: list[tuple[str, int]] = []

    async def scenario(peer: Peer, cl: XeClient) -> None:
        req = cl.new_order(3, c.Side.BUY, 500, 30)
        (o,) = (await peer.recv()).messages
        assert isinstance(o, c.NewOrder)
        peer.out([accepted(o, 9)])
        await req

        def fill(exec_id: int, qty: int, leaves: int) -> c.Fill:
            return c.Fill(o.side, c.Liquidity.ADDED, 3, o.cl_ord_id, exec_id, 500, qty, leaves, 9,
                          0, time.time_ns())  # fmt: skip

        peer.out([fill(1, 10, 20)], drop=True)  # seq 2 lost
        peer.out([fill(2, 5, 15)])  # seq 3 arrives first: a gap
        rr = await peer.recv()
        (m,) = rr.messages
        assert isinstance(m, c.RetransmitReq) and (m.from_seq, m.count) == (2, 1)
        assert cl.fills(o.cl_ord_id) == [], "nothing applied past the gap"
        peer.replay(2, 1)
        peer.send(3, [peer.journal[3]])  # a duplicate of seq 3 as well
        peer.out([fill(3, 15, 0)])
        order = cl.order(o.cl_ord_id)
        await asyncio.wait_for(order.done, 2)
        assert [f.exec_id for f in cl.fills(o.cl_ord_id)] == [1, 2, 3]
        assert order.status == "filled" and order.filled == 30 and order.leaves == 0
        assert cl.expected_in == 5 and cl.stats["duplicates"] == 1
        assert seen == [("ACCEPTED", 0), ("FILL", 1), ("FILL", 2), ("FILL", 3)]

    def on_message(m: c.Message) -> None:
        seen.append((m.TYPE.name, int(getattr(m, "exec_id", 0))))

    run(scenario, resend_after=0.1, on_message=on_message)


def test_sequence_gap_triggers_immediate_resend() -> None:
    async def scenario(peer: Peer, cl: XeClient) -> None:
        r1 = cl.new_order(4, c.Side.BUY, 10, 1)
        await peer.recv()  # seq 1: lost on the way in, the gateway never applies it
        cl.flush()
        await asyncio.sleep(0)
        r2 = cl.mass_cancel(symbol_id=4)
        dg2 = await peer.recv()
        assert dg2.seq == 2
        peer.send(0, [c.SequenceGap(1, 2, dg2.messages[0].client_ts, time.time_ns())])
        t0 = time.monotonic()
        dg3 = await peer.recv(timeout=1.0)  # well before the 5 s resend timer
        assert time.monotonic() - t0 < 1.0
        assert (dg3.seq, len(dg3.messages)) == (1, 2)
        o, mc = dg3.messages
        assert isinstance(o, c.NewOrder) and isinstance(mc, c.MassCancel)
        peer.out([accepted(o, 11),
                  c.Cancelled(o.side, c.CancelReason.MASS, 4, o.cl_ord_id, 11, 10, 1,
                              mc.client_ts, time.time_ns())])  # fmt: skip
        assert isinstance(await r1, c.Accepted)
        ans = await r2
        assert isinstance(ans, c.Cancelled) and ans.reason == c.CancelReason.MASS
        assert cl.order(o.cl_ord_id).status == "cancelled"
        assert cl.stats["sequence_gaps"] == 1

    run(scenario, resend_after=5.0)


def test_batches_split_at_22_and_replace() -> None:
    async def scenario(peer: Peer, cl: XeClient) -> None:
        reqs = [cl.new_order(5, c.Side.SELL, 1000 + i, 1) for i in range(30)]
        d1, d2 = await peer.recv(), await peer.recv()
        assert (d1.seq, len(d1.messages), d2.seq, len(d2.messages)) == (1, 22, 23, 8)
        orders = [m for m in d1.messages + d2.messages if isinstance(m, c.NewOrder)]
        peer.out([accepted(o, 100 + i) for i, o in enumerate(orders[:22])])
        peer.out([accepted(o, 122 + i) for i, o in enumerate(orders[22:])])
        assert [(await r).order_id for r in reqs] == list(range(100, 130))  # type: ignore[attr-defined]
        old = orders[0].cl_ord_id
        rep = cl.replace(5, old, 999, 2)
        (m,) = (await peer.recv()).messages
        assert isinstance(m, c.Replace) and (m.orig_cl_ord_id, m.price, m.qty) == (old, 999, 2)
        peer.out([c.Rejected(c.MsgType.REPLACE, c.RejectReason.NO_CHANGE, 5, old, 31, m.client_ts,
                             time.time_ns())])  # fmt: skip
        rej = await rep
        assert isinstance(rej, c.Rejected) and rej.reason == c.RejectReason.NO_CHANGE
        rep = cl.replace(5, old, 998, 1)
        (m,) = (await peer.recv()).messages
        assert isinstance(m, c.Replace)
        peer.out([c.Replaced(c.Side.SELL, 5, m.new_cl_ord_id, 100, 998, 1, 1, old, m.client_ts,
                             time.time_ns())])  # fmt: skip
        assert isinstance(await rep, c.Replaced)
        assert cl.order(m.new_cl_ord_id) is cl.order(old)
        assert cl.order(m.new_cl_ord_id).price == 998

    run(scenario)


def test_heartbeats_both_ways_and_timeout() -> None:
    async def scenario(peer: Peer, cl: XeClient) -> None:
        assert cl.heartbeat_ms == 100
        dg = await peer.recv(timeout=1.0, skip_heartbeats=False)
        assert dg.seq == 0 and dg.flags == c.F_HEARTBEAT
        (hb,) = dg.messages
        assert isinstance(hb, c.Heartbeat) and hb.next_seq == cl.next_out == 1
        # The peer keeps the session alive for a while with its own heartbeats...
        for _ in range(5):
            peer.send(0, [c.Heartbeat(1, 0, time.time_ns())], c.F_HEARTBEAT)
            await asyncio.sleep(0.08)
        assert not cl.closed.done()
        # ...then goes silent: within 3 heartbeat intervals the session is declared lost.
        req = cl.new_order(6, c.Side.BUY, 1, 1)
        t0 = time.monotonic()
        assert await asyncio.wait_for(cl.closed, 2) == "heartbeat timeout"
        assert 0.2 <= time.monotonic() - t0 <= 1.0
        with pytest.raises(SessionLost):
            await req
        with pytest.raises(SessionLost):
            cl.new_order(6, c.Side.BUY, 1, 1)

    run(scenario, heartbeat_ms=100)


def test_logout_and_malformed_input() -> None:
    async def scenario(peer: Peer, cl: XeClient) -> None:
        assert peer.transport is not None
        peer.transport.sendto(b"XE\x01garbage", peer.client_addr)
        peer.send(0, [c.Heartbeat(1, 0, 1)], c.F_HEARTBEAT)
        await asyncio.sleep(0.1)
        assert cl.stats["malformed"] == 1 and cl.stats["heartbeats_received"] == 1
        task = asyncio.create_task(cl.logout())
        dg = await peer.recv()
        (lo,) = dg.messages
        assert isinstance(lo, c.Logout) and lo.reason == c.LogoutReason.USER and dg.seq == 0
        peer.send(0, [c.Logout(c.LogoutReason.USER, lo.client_ts, time.time_ns())])
        await asyncio.wait_for(task, 1)
        assert cl.closed.result() == "logout" and not cl.logged_in

    run(scenario)


def test_unix_datagram_transport(tmp_path: Path) -> None:
    """The same client over a unix datagram socket (the dataplane's local entry socket)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        gw_path, cl_path = str(tmp_path / "gw.sock"), str(tmp_path / "cl.sock")
        transport, peer = await loop.create_datagram_endpoint(
            Peer, local_addr=gw_path, family=socket.AF_UNIX
        )
        try:
            serve = asyncio.create_task(peer.serve_login())
            client = await XeClient.connect(gw_path, SID, SECRET, local=cl_path)
            await serve
            assert peer.client_addr == cl_path
            req = client.new_order(1, c.Side.BUY, 1, 1)
            (o,) = (await peer.recv()).messages
            assert isinstance(o, c.NewOrder)
            peer.out([accepted(o, 5)])
            assert isinstance(await req, c.Accepted)
            client.close()
        finally:
            transport.close()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_resume_after_session_loss_replays_missed_messages() -> None:
    """A new client resuming the session gets the gateway messages the old one missed (replayed
    from Login.next_seq) and continues the inbound sequence from LoginAccepted.next_in_seq."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, peer = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
        remote = ("127.0.0.1", transport.get_extra_info("sockname")[1])
        try:
            serve = asyncio.create_task(peer.serve_login())
            old = await XeClient.connect(remote, SID, SECRET)
            await serve
            req = old.new_order(8, c.Side.BUY, 70, 3)
            (o,) = (await peer.recv()).messages
            assert isinstance(o, c.NewOrder)
            peer.out([accepted(o, 21)])
            await req
            fill = c.Fill(o.side, c.Liquidity.ADDED, 8, o.cl_ord_id, 5, 70, 3, 0, 21, 0, 1)
            peer.out([fill], drop=True)  # lost, and then the old client goes away
            old.close("test")
            assert old.expected_in == 2

            seen: list[c.Message] = []
            serve = asyncio.create_task(peer.serve_login(next_in=2))
            new = await XeClient.connect(remote, SID, SECRET, next_seq=old.expected_in,
                                         on_message=seen.append)  # fmt: skip
            login = await serve
            assert login.next_seq == 2
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            assert seen == [fill] and new.expected_in == 3
            assert new.next_out == 2, "continues the inbound sequence"
            req = new.new_order(8, c.Side.SELL, 71, 1)
            dg = await peer.recv()
            assert dg.seq == 2
            new.close()
            with pytest.raises(SessionLost):
                await req
        finally:
            transport.close()

    asyncio.run(asyncio.wait_for(main(), 10))
