"""xdpex_traffic.client end to end against the real gateway (xdpexd in kernel-UDP mode on
loopback, started through tests/dataplane_support.py): login and a refused proof, orders that
cross between two sessions with fills on both sides, a 25-order batch (two datagrams), cancel,
replace, reject reasons, mass cancel (also with nothing to cancel), logout, and every batch sent
three times before its answers come: the gateway skips the copies, each order applied once."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dataplane_support import SECRET, Daemon, base_config, need_root_and_binary
from xdpex_proto import codec as c
from xdpex_traffic.client import LoginError, XeClient


@pytest.fixture
def gateway() -> Iterator[Daemon]:
    need_root_and_binary()
    with tempfile.TemporaryDirectory(prefix="xdpex-client-") as d:
        port = 20000 + (os.getpid() + 7919) % 20000
        daemon = Daemon(Path(d), "udp", config=base_config(), port=port)
        daemon.start()
        try:
            yield daemon
        finally:
            daemon.stop()


def remote(gw: Daemon) -> tuple[str, int]:
    return (gw.addr, gw.port)


def test_client_trades_against_the_gateway(gateway: Daemon) -> None:
    async def main() -> None:
        with pytest.raises(LoginError) as exc:
            await XeClient.connect(remote(gateway), 3, b"\x00" * 32)
        assert exc.value.reason == c.LoginReason.BAD_PROOF

        a = await XeClient.connect(remote(gateway), 2, SECRET)
        b = await XeClient.connect(remote(gateway), 3, SECRET)
        try:
            buy = await a.new_order(1, c.Side.BUY, 100, 10)
            assert isinstance(buy, c.Accepted) and buy.qty == 10 and buy.order_id
            sell = await b.new_order(1, c.Side.SELL, 100, 4)
            assert isinstance(sell, c.Accepted)
            b_order = b.order(sell.cl_ord_id)
            await asyncio.wait_for(b_order.done, 2)
            assert b_order.status == "filled" and b_order.filled == 4
            a_order = a.order(buy.cl_ord_id)
            for _ in range(200):
                if a_order.fills:
                    break
                await asyncio.sleep(0.01)
            (fill,) = a.fills(buy.cl_ord_id)
            assert (fill.qty, fill.leaves, fill.price) == (4, 6, 100)
            assert fill.liquidity == c.Liquidity.ADDED
            assert b_order.fills[0].exec_id == fill.exec_id

            # 25 orders in one go: two datagrams (22 + 3), all accepted.
            reqs = [a.new_order(1, c.Side.BUY, 50 + i, 1) for i in range(25)]
            answers = await asyncio.gather(*reqs)
            assert all(isinstance(x, c.Accepted) for x in answers)
            assert len({x.order_id for x in answers}) == 25

            cxl = await a.cancel(1, answers[0].cl_ord_id)
            assert isinstance(cxl, c.Cancelled) and cxl.reason == c.CancelReason.USER
            assert a.order(answers[0].cl_ord_id).status == "cancelled"
            rep = await a.replace(1, answers[1].cl_ord_id, 40, 3)
            assert isinstance(rep, c.Replaced) and (rep.price, rep.qty) == (40, 3)
            assert a.order(rep.cl_ord_id).price == 40

            rej = await a.new_order(99, c.Side.BUY, 100, 1)
            assert isinstance(rej, c.Rejected) and rej.reason == c.RejectReason.UNKNOWN_SYMBOL
            assert a.order(rej.cl_ord_id).status == "rejected"
            rej = await a.cancel(1, 123456789)
            assert isinstance(rej, c.Rejected) and rej.reason == c.RejectReason.UNKNOWN_ORDER

            mass = await a.mass_cancel(symbol_id=1, side=c.Side.BUY)
            assert isinstance(mass, c.Cancelled) and mass.reason == c.CancelReason.MASS
            for _ in range(200):
                if all(o.status != "live" for o in a.orders.values()):
                    break
                await asyncio.sleep(0.01)
            assert all(o.status != "live" for o in a.orders.values())
            assert a.stats["malformed"] == 0 and a.stats["gaps"] == 0
            # Nothing left to cancel: still answered (protocol.md, MassCancel).
            empty = await a.mass_cancel(symbol_id=1, side=c.Side.SELL)
            assert isinstance(empty, c.Rejected) and empty.reason == c.RejectReason.UNKNOWN_ORDER
            assert empty.ref_type == c.MsgType.MASS_CANCEL and empty.cl_ord_id == 0

            await a.logout()
            assert a.closed.result() == "logout"
            sessions = {s["id"]: s for s in gateway.ctl({"cmd": "sessions"})["sessions"]}
            assert sessions[2]["state"] == "logged_out" and sessions[3]["state"] == "logged_in"
        finally:
            a.close()
            b.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_resends_are_applied_exactly_once(gateway: Daemon) -> None:
    """Every batch goes out three times (resend_unanswered() before any answer can arrive); the
    gateway applies each sequence once and skips the copies."""

    async def main() -> None:
        cl = await XeClient.connect(remote(gateway), 4, SECRET)
        try:
            before = gateway.q0()
            reqs = []
            for batch in range(10):
                reqs += [cl.new_order(1, c.Side.SELL, 5000 + batch * 10 + i, 1) for i in range(5)]
                cl.flush()
                assert cl.resend_unanswered() >= 5
                assert cl.resend_unanswered() >= 5
                await asyncio.sleep(0.003)
            answers = await asyncio.gather(*reqs)
            assert all(isinstance(x, c.Accepted) for x in answers)
            await asyncio.sleep(0.1)
            after = gateway.q0()
            assert after["applied"] - before["applied"] == 50
            assert after["duplicates"] - before["duplicates"] >= 100
            book = gateway.ctl({"cmd": "book", "symbol": 1, "depth": 64})
            assert book.get("ok"), book
            mine = [lvl for lvl in book["asks"] if 5000 <= lvl[0] < 5100]
            assert len(mine) == 50 and all(lvl[1] == 1 and lvl[2] == 1 for lvl in mine)
            assert cl.stats["duplicates"] == 0, "and the gateway answered each order once"
        finally:
            cl.close()

    asyncio.run(asyncio.wait_for(main(), 30))
