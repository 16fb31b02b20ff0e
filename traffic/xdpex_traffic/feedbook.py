"""A book builder for the market-data feed (docs/marketdata.md), the Python twin of feed/book.c.

`Book.apply(msg)` applies one decoded feed message (xdpex_proto.feed) to the books of every
symbol: orders by order_id, each price level a FIFO in time priority (a dict keeps insertion order,
so a replace that loses priority is a delete and a re-insert, a reduce keeps its place). A message
that does not fit the book (an unknown order, quantities that do not add up, a duplicate add)
raises BookError and changes nothing. `dump()` is the canonical text of feed/book.c's
xf_book_dump(), so books built by the C and Python subscribers and the engine's own books compare
as strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdpex_proto import feed as f


class BookError(ValueError):
    """A feed message that does not fit the book."""


@dataclass(slots=True)
class Order:
    symbol_id: int
    side: int
    price: int
    qty: int


@dataclass
class SymbolBook:
    state: int = f.SymbolStateCode.TRADING
    # side -> price -> {order_id: None} in time priority
    levels: dict[int, dict[int, dict[int, None]]] = field(
        default_factory=lambda: {f.Side.BUY: {}, f.Side.SELL: {}}
    )
    last_trade: tuple[int, int, int] | None = None  # price, qty, match_id
    orders: int = 0


class Book:
    def __init__(self) -> None:
        self.orders: dict[int, Order] = {}
        self.symbols: dict[int, SymbolBook] = {}
        self.applied = 0

    def _sym(self, symbol_id: int) -> SymbolBook:
        if symbol_id <= 0:
            raise BookError(f"symbol id {symbol_id}")
        y = self.symbols.get(symbol_id)
        if y is None:
            y = self.symbols[symbol_id] = SymbolBook()
        return y

    def _named(self, what: str, order_id: int, symbol_id: int, side: int) -> Order:
        o = self.orders.get(order_id)
        if o is None:
            raise BookError(f"{what} order {order_id}: not in the book")
        if o.symbol_id != symbol_id or o.side != side:
            raise BookError(
                f"{what} order {order_id}: symbol {symbol_id} side {side}, the book has "
                f"symbol {o.symbol_id} side {o.side}"
            )
        return o

    def _link(self, order_id: int, o: Order) -> None:
        y = self.symbols[o.symbol_id]
        y.levels[o.side].setdefault(o.price, {})[order_id] = None

    def _unlink(self, order_id: int, o: Order) -> None:
        lv = self.symbols[o.symbol_id].levels[o.side]
        q = lv[o.price]
        del q[order_id]
        if not q:
            del lv[o.price]

    def _remove(self, order_id: int, o: Order) -> None:
        self._unlink(order_id, o)
        del self.orders[order_id]
        self.symbols[o.symbol_id].orders -= 1

    def apply(self, m: f.Message) -> None:
        if isinstance(m, f.AddOrder):
            if m.side not in (f.Side.BUY, f.Side.SELL):
                raise BookError(f"ADD_ORDER order {m.order_id}: side {m.side}")
            if not m.qty:
                raise BookError(f"ADD_ORDER order {m.order_id}: quantity 0")
            if m.order_id in self.orders:
                raise BookError(f"ADD_ORDER order {m.order_id}: already in the book")
            y = self._sym(m.symbol_id)
            o = Order(m.symbol_id, m.side, m.price, m.qty)
            self.orders[m.order_id] = o
            self._link(m.order_id, o)
            y.orders += 1
        elif isinstance(m, f.Executed):
            o = self._named("EXECUTED", m.order_id, m.symbol_id, m.side)
            if not m.qty or m.qty > o.qty or o.qty - m.qty != m.leaves:
                raise BookError(f"EXECUTED order {m.order_id}: {m.qty} executed leaving "
                                f"{m.leaves}, {o.qty} open")  # fmt: skip
            if m.price != o.price:
                raise BookError(f"EXECUTED order {m.order_id}: at {m.price}, the order rests at "
                                f"{o.price}")  # fmt: skip
            if m.leaves:
                o.qty = m.leaves
            else:
                self._remove(m.order_id, o)
        elif isinstance(m, f.Reduced):
            o = self._named("REDUCED", m.order_id, m.symbol_id, m.side)
            if not m.qty or not m.leaves or o.qty != m.qty + m.leaves:
                raise BookError(f"REDUCED order {m.order_id}: by {m.qty} to {m.leaves}, "
                                f"{o.qty} open")  # fmt: skip
            o.qty = m.leaves
        elif isinstance(m, f.Deleted):
            o = self._named("DELETED", m.order_id, m.symbol_id, m.side)
            if o.qty != m.qty:
                raise BookError(f"DELETED order {m.order_id}: {m.qty} removed, {o.qty} open")
            self._remove(m.order_id, o)
        elif isinstance(m, f.Replaced):
            o = self._named("REPLACED", m.order_id, m.symbol_id, m.side)
            if not m.qty:
                raise BookError(f"REPLACED order {m.order_id}: quantity 0")
            self._unlink(m.order_id, o)
            o.price, o.qty = m.price, m.qty
            self._link(m.order_id, o)
        elif isinstance(m, f.Trade):
            self._sym(m.symbol_id).last_trade = (m.price, m.qty, m.match_id)
        elif isinstance(m, f.SymbolState):
            if m.state not in (f.SymbolStateCode.TRADING, f.SymbolStateCode.HALTED):
                raise BookError(f"SYMBOL_STATE symbol {m.symbol_id}: state {m.state}")
            self._sym(m.symbol_id).state = m.state
        elif isinstance(m, f.SnapshotBegin):
            for sid in [m.symbol_id] if m.symbol_id else list(self.symbols):
                if sid in self.symbols:
                    self._clear(sid)
        elif isinstance(m, f.SystemEvent | f.SnapshotEnd):
            pass
        else:
            raise BookError(f"unknown message {m!r}")
        self.applied += 1

    def _clear(self, symbol_id: int) -> None:
        for oid in [k for k, o in self.orders.items() if o.symbol_id == symbol_id]:
            del self.orders[oid]
        self.symbols[symbol_id] = SymbolBook()

    # ---- queries ----

    def side_orders(self, symbol_id: int, side: int) -> list[tuple[int, int, int]]:
        """(price, order_id, qty) of a side, best price first, each level in time priority."""
        y = self.symbols.get(symbol_id)
        if y is None:
            return []
        lv = y.levels[side]
        prices = sorted(lv, reverse=side == f.Side.BUY)
        return [(p, oid, self.orders[oid].qty) for p in prices for oid in lv[p]]

    def levels(self, symbol_id: int, side: int, depth: int = 10) -> list[tuple[int, int, int]]:
        """(price, open quantity, orders) of the best `depth` levels."""
        y = self.symbols.get(symbol_id)
        if y is None:
            return []
        lv = y.levels[side]
        prices = sorted(lv, reverse=side == f.Side.BUY)[:depth]
        return [(p, sum(self.orders[o].qty for o in lv[p]), len(lv[p])) for p in prices]

    def dump(self) -> str:
        """feed/book.c xf_book_dump(): symbols with orders or a halt, in id order."""
        out: list[str] = []
        for sid in sorted(self.symbols):
            y = self.symbols[sid]
            if not y.orders and y.state != f.SymbolStateCode.HALTED:
                continue
            out.append(f"symbol {sid} {'H' if y.state == f.SymbolStateCode.HALTED else 'T'}")
            for side, letter in ((f.Side.BUY, "B"), (f.Side.SELL, "S")):
                rows = self.side_orders(sid, side)
                out += [f"{sid} {letter} {p} {oid} {q}" for p, oid, q in rows]
        return "".join(line + "\n" for line in out)

    def top(self) -> list[str]:
        """One line of top of book per symbol, as xdpex-feedsub --top prints it."""
        lines = []
        for sid in sorted(self.symbols):
            y = self.symbols[sid]
            bid, ask = self.levels(sid, f.Side.BUY, 1), self.levels(sid, f.Side.SELL, 1)
            state = "halted" if y.state == f.SymbolStateCode.HALTED else "trading"
            b = f"{bid[0][1]}@{bid[0][0]} ({bid[0][2]})" if bid else "-"
            a = f"{ask[0][1]}@{ask[0][0]} ({ask[0][2]})" if ask else "-"
            last = f" last {y.last_trade[1]}@{y.last_trade[0]}" if y.last_trade else ""
            lines.append(f"top {sid} {state} bid {b} ask {a}{last}")
        return lines
