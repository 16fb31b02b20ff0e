#!/usr/bin/env python3
"""A trading client against the xdpex gateway, written with the asyncio client library
(traffic/xdpex_traffic/client.py): two sessions, a maker and a taker, trade on one symbol.

The maker logs in and rests three bids and two offers around --price; the taker logs in and sells
into the bids (two fills on each side), the maker cancels its last bid, replaces an offer (the
quantity down, which keeps its place in the queue, then the price up, which loses it), the taker
lifts the replaced offer, one order with quantity 0 is rejected, the maker mass-cancels what is
left and both sessions log out. Every answer and every fill is printed as it arrives, one line
each, prefixed with the session; the last lines sum up the fills per session. The exit status is
0 when the script ran through, 1 when the gateway refused or did not answer (the line says which
step), 2 for bad arguments.

Against the one-machine lab (docs/lab.md), as root from the repository root:

    make build
    .venv/bin/xdpex lab up
    .venv/bin/python provisioning/lab/gateway-config.py -o /tmp/xdpex-lab
    build/dataplane/xdpexd --netns xdpex-gw --mode afxdp --iface xe-gw0 \\
        --config /tmp/xdpex-lab/gateway.json --journal-dir /tmp/xdpex-lab/journal &
    ip netns exec xdpex-tg .venv/bin/python examples/trade.py \\
        --gateway 10.77.0.1:9000 --credentials /tmp/xdpex-lab/secrets.txt --price 10000

`--gateway A:9000,B:9000` names a primary and its standby (docs/ha.md): the sessions log in at
whichever leads and follow it through a failover or a switchover.

(`--credentials` takes the first two sessions of the file, `--ids 3,4` others.) Against a gateway
started with `xdpex up` (kernel UDP on 127.0.0.1:9000, no symbols or sessions yet), create a
symbol and two sessions with the operator token `up` printed, then pass the secrets it returns:

    TOKEN=$(cat /var/lib/xdpex/operator.token); API=http://127.0.0.1:8080/api/v1
    curl -sH "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' $API/symbols \\
        -d '{"symbol_id":1,"name":"ACME","tick":1,"lot":1,"band_low":1,"band_high":100000}'
    curl -sH "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' $API/sessions \\
        -d '{"name":"maker"}'     # -> {"session_id": N, ..., "secret": "HEX"}; again for "taker"
    .venv/bin/python examples/trade.py --gateway 127.0.0.1:9000 \\
        --session MAKER_ID:MAKER_SECRET --session TAKER_ID:TAKER_SECRET

The executions then show up in the control plane too: `curl -sH "Authorization: Bearer $TOKEN"
$API/executions`.

`--entry-socket PATH` talks to xdpexd's local order-entry socket instead of UDP.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    from xdpex_proto import codec as c
    from xdpex_traffic.client import ClientError, LoginError, XeClient
except ImportError:  # run from a checkout without the project installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traffic"))
    from xdpex_proto import codec as c
    from xdpex_traffic.client import ClientError, LoginError, XeClient


class Failed(Exception):
    """A step did not get the answer it needs; the message names the step."""


def describe(m: c.Message) -> str:
    """One gateway application message as a line."""
    if isinstance(m, c.Accepted):
        return (f"accepted   cl_ord_id={m.cl_ord_id} order_id={m.order_id} "
                f"{c.Side(m.side).name} {m.qty} @ {m.price} {c.Tif(m.tif).name}")  # fmt: skip
    if isinstance(m, c.Rejected):
        return (f"rejected   cl_ord_id={m.cl_ord_id} {c.MsgType(m.ref_type).name}: "
                f"{c.RejectReason(m.reason).name}")  # fmt: skip
    if isinstance(m, c.Fill):
        return (f"fill       cl_ord_id={m.cl_ord_id} exec_id={m.exec_id} "
                f"{c.Side(m.side).name} {m.qty} @ {m.price}, leaves {m.leaves} "
                f"({c.Liquidity(m.liquidity).name})")  # fmt: skip
    if isinstance(m, c.Cancelled):
        return (f"cancelled  cl_ord_id={m.cl_ord_id} order_id={m.order_id} "
                f"{c.CancelReason(m.reason).name}")  # fmt: skip
    if isinstance(m, c.Replaced):
        return (f"replaced   cl_ord_id={m.orig_cl_ord_id} -> {m.cl_ord_id} {m.qty} @ {m.price}, "
                f"leaves {m.leaves}")  # fmt: skip
    return f"{type(m).__name__.lower():10s} {m}"


class Trader:
    """One session: prints every gateway message it applies, in sequence order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.client: XeClient | None = None
        self.fills: list[c.Fill] = []

    def on_message(self, m: c.Message) -> None:
        if isinstance(m, c.Fill):
            self.fills.append(m)
        print(f"[{self.name}] {describe(m)}", flush=True)

    def on_failover(self, why: str, to: Any) -> None:
        print(f"[{self.name}] {why}: moving to {to[0]}:{to[1]}", flush=True)

    async def connect(self, remote: Any, sid: int, secret: bytes, local: Any) -> XeClient:
        try:
            self.client = await XeClient.connect(
                remote, sid, secret, local=local, on_message=self.on_message,
                on_failover=self.on_failover
            )
        except LoginError as e:
            raise Failed(f"{self.name}: login of session {sid}: {e}") from e
        except TimeoutError as e:
            raise Failed(f"{self.name}: login of session {sid}: no answer from {remote}") from e
        print(f"[{self.name}] logged in as session {sid} (heartbeat "
              f"{self.client.heartbeat_ms} ms)", flush=True)  # fmt: skip
        return self.client

    async def filled(self, cl_ord_id: int, qty: int, timeout: float = 3.0) -> None:
        """Waits until order `cl_ord_id` has `qty` filled (a maker's fills may trail the taker's
        answer by a datagram)."""
        assert self.client is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.client.order(cl_ord_id).filled < qty:
            if loop.time() > end:
                got = self.client.order(cl_ord_id).filled
                raise Failed(f"{self.name}: order {cl_ord_id}: {got} of {qty} filled after "
                             f"{timeout:g} s")  # fmt: skip
            await asyncio.sleep(0.01)


async def expect(what: str, req: Any, kind: type) -> Any:
    try:
        ans = await req
    except ClientError as e:
        raise Failed(f"{what}: {e}") from e
    if not isinstance(ans, kind):
        raise Failed(f"{what}: expected {kind.__name__}, got {describe(ans)}")
    return ans


async def trade(a: argparse.Namespace) -> None:
    (maker_id, maker_key), (taker_id, taker_key) = a.sessions[:2]
    sym, px = a.symbol, a.price
    maker, taker = Trader("maker"), Trader("taker")
    with tempfile.TemporaryDirectory(prefix="xdpex-trade-") as tmp:
        local_m = f"{tmp}/maker.sock" if a.entry_socket else None
        local_t = f"{tmp}/taker.sock" if a.entry_socket else None
        remote: Any = (str(a.entry_socket) if a.entry_socket
                       else a.gateway[0] if len(a.gateway) == 1 else a.gateway)
        m = await maker.connect(remote, maker_id, maker_key, local_m)
        try:
            t = await taker.connect(remote, taker_id, taker_key, local_t)
        except BaseException:
            await m.logout()
            raise
        try:
            print(f"-- maker rests 3 bids and 2 offers on symbol {sym} around {px}", flush=True)
            bid_reqs = [m.new_order(sym, c.Side.BUY, px - i, 10) for i in (1, 2, 3)]
            ask_reqs = [m.new_order(sym, c.Side.SELL, px + i, 10) for i in (1, 2)]
            bids = [await expect("rest bid", r, c.Accepted) for r in bid_reqs]
            asks = [await expect("rest offer", r, c.Accepted) for r in ask_reqs]

            print(f"-- taker sells 15 at {px - 2}: crosses the two best bids", flush=True)
            sell = await expect("cross", t.new_order(sym, c.Side.SELL, px - 2, 15), c.Accepted)
            await taker.filled(sell.cl_ord_id, 15)
            await maker.filled(bids[0].cl_ord_id, 10)
            await maker.filled(bids[1].cl_ord_id, 5)

            print(f"-- maker cancels its bid at {px - 3}", flush=True)
            await expect("cancel", m.cancel(sym, bids[2].cl_ord_id), c.Cancelled)

            print(f"-- maker replaces its offer at {px + 1}: 10 -> 6 (keeps priority), then "
                  f"to {px + 3} (loses it)", flush=True)  # fmt: skip
            r1 = await expect("replace qty", m.replace(sym, asks[0].cl_ord_id, px + 1, 6),
                              c.Replaced)  # fmt: skip
            r2 = await expect("replace price", m.replace(sym, r1.cl_ord_id, px + 3, 6), c.Replaced)

            print(f"-- taker buys 16 at {px + 3}: lifts {px + 2} then the replaced offer",
                  flush=True)  # fmt: skip
            buy = await expect("lift", t.new_order(sym, c.Side.BUY, px + 3, 16), c.Accepted)
            await taker.filled(buy.cl_ord_id, 16)
            await maker.filled(r2.cl_ord_id, 6)

            print("-- an order for 0 is refused", flush=True)
            await expect("bad order", t.new_order(sym, c.Side.BUY, px, 0), c.Rejected)

            print("-- maker mass-cancels what is left", flush=True)
            await expect("mass cancel", m.mass_cancel(sym), c.Cancelled)
        finally:
            await t.logout()
            await m.logout()
    for who in (maker, taker):
        qty = sum(f.qty for f in who.fills)
        bought = sum(f.qty for f in who.fills if f.side == c.Side.BUY)
        print(f"[{who.name}] {len(who.fills)} fills, {qty} lots traded, net position "
              f"{2 * bought - qty:+d}; logged out")  # fmt: skip


def _session(text: str) -> tuple[int, bytes]:
    sid, _, key = text.partition(":")
    try:
        return int(sid), bytes.fromhex(key)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ID:HEXSECRET") from None


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        return host or text, int(port) if host else 9000
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST[:PORT]") from None


def _addrs(text: str) -> list[tuple[str, int]]:
    return [_addr(x) for x in text.split(",")]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--gateway", type=_addrs,
                       help="gateway HOST[:PORT] (UDP, port 9000); a primary and its standbys "
                            "as HOST:PORT,HOST:PORT,...: the client follows the leader")
    where.add_argument("--entry-socket", type=Path, help="xdpexd's local order-entry socket")
    p.add_argument("--session", type=_session, action="append", default=[],
                   help="ID:HEXSECRET, twice: maker then taker")  # fmt: skip
    p.add_argument("--credentials", type=Path, help="file of 'ID HEXSECRET' lines")
    p.add_argument("--ids", help="with --credentials: the two session ids (default: first two)")
    p.add_argument("--symbol", type=int, default=1)
    p.add_argument("--price", type=int, default=10_000, help="mid price in ticks (default 10000)")
    a = p.parse_args(argv)
    if a.credentials:
        try:
            lines = [ln.split() for ln in a.credentials.read_text().splitlines() if ln.strip()]
            creds = {int(f[0]): bytes.fromhex(f[1]) for f in lines}
        except (OSError, ValueError, IndexError) as e:
            p.error(f"--credentials {a.credentials}: {e}")
        ids = [int(x) for x in a.ids.split(",")] if a.ids else list(creds)[:2]
        missing = [i for i in ids if i not in creds]
        if missing:
            p.error(f"--ids: session {missing[0]} is not in {a.credentials}")
        a.session += [(i, creds[i]) for i in ids]
    if len(a.session) != 2 or a.session[0][0] == a.session[1][0]:
        p.error("give two different sessions: --session ID:HEX twice, or --credentials FILE")
    if a.price < 4:
        p.error(f"--price: {a.price} is too low (the script trades from price - 3)")
    a.sessions = a.session
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    try:
        asyncio.run(trade(a))
    except Failed as e:
        print(f"trade.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
