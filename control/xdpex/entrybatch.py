"""One submission of NewOrders on the control plane's order-entry session, as columns.

An `Entry` holds the orders of one REST request or gRPC call and what the gateway answered to
each: status, order id, leaves, filled, reject or cancel reason, fills. It is split into chunks
of up to CHUNK orders; the client order id of order j of a chunk is `chunk_no << CHUNK_BITS | j`,
so the receiver finds an answer's order from its client order id with a shift and a mask (one
dictionary lookup per answer, none per order sent), and the ids keep growing across restarts
(chunk numbers start at the clock in microseconds). Columns rather than an object per order: a
1,000-order gRPC batch costs 1,000 list slots, not 1,000 objects with fifteen fields each.

`OrderResult` is the per-order view (`Entry.result(i)`) for the callers that want one: cancel
by order id, the REST single-order answer, tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

CHUNK_BITS = 10
CHUNK = 1 << CHUNK_BITS  # orders a chunk (one client-order-id prefix)
CHUNK_MASK = CHUNK - 1
PENDING = "pending"

# An order as the session sends it: (side, ord_type, tif, symbol_id, price, qty), wire codes.
WireOrder = tuple[int, int, int, int, int, int]


@dataclass(slots=True)
class OrderResult:
    """What the gateway answered to one NewOrder or Cancel."""

    session_id: int
    cl_ord_id: int
    symbol_id: int
    status: str = PENDING  # new partially_filled filled cancelled rejected
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


class Entry:
    """Orders sent together and their answers; `remaining` counts orders not yet acknowledged.
    The receiver calls `wake` once they all are (from whichever thread reads the socket)."""

    __slots__ = (
        "session_id",
        "orders",
        "n",
        "chunks",
        "status",
        "order_id",
        "reason",
        "leaves",
        "filled",
        "fills",
        "remaining",
        "event",
        "callback",
        "error",
    )

    def __init__(
        self,
        session_id: int,
        orders: Sequence[WireOrder],
        first_chunk: int,
        callback: Callable[[], None] | None = None,
    ):
        n = len(orders)
        self.session_id = session_id
        self.orders = orders
        self.n = n
        self.chunks = range(first_chunk, first_chunk + (n + CHUNK_MASK) // CHUNK)
        self.status = [PENDING] * n
        self.order_id = [0] * n
        self.reason = [0] * n
        self.leaves = [0] * n
        self.filled = [0] * n
        self.fills: dict[int, list[tuple[int, int, int, int]]] | None = None  # index -> fills
        self.remaining = n
        # a blocking caller waits on the event, an asyncio one is called back (no event: fewer
        # objects for the garbage collector, which the REST tail latency is sensitive to)
        self.event = threading.Event() if callback is None else None
        self.callback = callback
        self.error: Exception | None = None  # why the orders could not all be entered

    def cl_ord_id(self, i: int) -> int:
        return (self.chunks.start + (i >> CHUNK_BITS)) << CHUNK_BITS | (i & CHUNK_MASK)

    def index(self, cl_ord_id: int) -> int:
        """The index of an order of this entry from its client order id."""
        return ((cl_ord_id >> CHUNK_BITS) - self.chunks.start) << CHUNK_BITS | (
            cl_ord_id & CHUNK_MASK
        )

    def acked(self, i: int) -> bool:
        return self.status[i] is not PENDING

    def missing(self) -> list[int]:
        """Client order ids of the orders not acknowledged (yet)."""
        return [self.cl_ord_id(i) for i, s in enumerate(self.status) if s is PENDING]

    def result(self, i: int) -> OrderResult:
        side, typ, tif, sym, px, qty = self.orders[i]
        st = self.status[i]
        return OrderResult(
            self.session_id,
            self.cl_ord_id(i),
            sym,
            st,
            self.order_id[i],
            self.reason[i],
            side,
            typ,
            tif,
            px,
            qty,
            self.filled[i],
            self.leaves[i],
            list(self.fills.get(i, ())) if self.fills else [],
            st is not PENDING,
        )

    def results(self) -> list[OrderResult]:
        return [self.result(i) for i in range(self.n)]

    def wait(self, timeout: float) -> bool:
        """For a blocking caller: True once every order is acknowledged (or the session ended)."""
        assert self.event is not None, "an entry with a callback is not waited for"
        return self.event.wait(timeout)

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()
        if self.callback is not None:
            try:
                self.callback()
            except RuntimeError:  # the caller's event loop is closed: nobody waits any more
                pass
