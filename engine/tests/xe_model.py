"""Plain-Python reference model of the matching engine, for the property tests.

It implements the same rules as engine/src/engine.cpp (the order of the checks is listed at the
top of that file) with the simplest data structures that can be obviously right: a dict of price
-> list per side, a dict of live orders, a list per session. It produces the same events, field by
field, as tuples in `xdpex_engine.native.Event` field order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdpex_engine.native import C, Event

BUY, SELL = C["XE_BUY"], C["XE_SELL"]
LIMIT, MARKET, POST_ONLY = C["XE_ORD_LIMIT"], C["XE_ORD_MARKET"], C["XE_ORD_POST_ONLY"]
DAY, GTC, IOC, FOK = C["XE_TIF_DAY"], C["XE_TIF_GTC"], C["XE_TIF_IOC"], C["XE_TIF_FOK"]
EV_ACC, EV_REJ, EV_FILL, EV_CXL, EV_REPL = (C[f"XE_EV_{n}"] for n in
                                            ("ACCEPTED", "REJECTED", "FILL", "CANCELLED",
                                             "REPLACED"))
STP_NONE, STP_NEWEST, STP_OLDEST, STP_BOTH = (C[f"XE_STP_{n}"] for n in
                                              ("NONE", "CANCEL_NEWEST", "CANCEL_OLDEST",
                                               "CANCEL_BOTH"))
R = {k[len("XE_REJ_"):]: v for k, v in C.items() if k.startswith("XE_REJ_")}
X = {k[len("XE_CXL_"):]: v for k, v in C.items() if k.startswith("XE_CXL_")}


def ev(type: int, side: int = 0, liquidity: int = 0, ord_type: int = 0, reason: int = 0,
       tif: int = 0, session_id: int = 0, symbol_id: int = 0, cl_ord_id: int = 0,
       order_id: int = 0, price: int = 0, qty: int = 0, leaves: int = 0, exec_id: int = 0,
       orig_cl_ord_id: int = 0) -> Event:
    return Event(type, side, liquidity, ord_type, reason, tif, session_id, symbol_id, cl_ord_id,
                 order_id, price, qty, leaves, exec_id, orig_cl_ord_id)


@dataclass
class Order:
    session: int
    symbol: int
    cl: int
    order_id: int
    side: int
    ord_type: int
    tif: int
    price: int
    leaves: int
    filled: int = 0
    has_limit: bool = True
    prio: int = 0  # time priority stamp, increasing as orders (re)enter a level

    def event(self, type: int, **kw: int) -> Event:
        base = dict(side=self.side, ord_type=self.ord_type, tif=self.tif,
                    session_id=self.session, symbol_id=self.symbol, cl_ord_id=self.cl,
                    order_id=self.order_id, price=self.price if self.has_limit else 0,
                    leaves=self.leaves)
        base.update(kw)
        return ev(type, **base)


@dataclass
class Symbol:
    tick: int
    lot: int
    low: int
    high: int
    max_qty: int
    halted: bool = False
    sides: dict[int, dict[int, list[Order]]] = field(default_factory=lambda: {BUY: {}, SELL: {}})

    def best(self, side: int) -> int | None:
        lv = self.sides[side]
        if not lv:
            return None
        return max(lv) if side == BUY else min(lv)

    def crosses(self, side: int, price: int) -> bool:
        opp = self.best(SELL if side == BUY else BUY)
        return opp is not None and (opp <= price if side == BUY else opp >= price)

    def levels(self, side: int) -> list[int]:
        return sorted(self.sides[side], reverse=side == BUY)


class Model:
    def __init__(self, max_orders: int, max_symbols: int, max_sessions: int):
        self.max_orders, self.max_symbols, self.max_sessions = max_orders, max_symbols, max_sessions
        self.symbols: dict[int, Symbol] = {}
        self.orders: dict[tuple[int, int], Order] = {}
        self.session_orders: dict[int, list[Order]] = {}
        self.stp: dict[int, int] = {}
        self.next_order_id = 1
        self.next_exec_id = 1
        self.prio = 0

    # configuration (valid arguments only; the tests check the engine's refusals separately)
    def add_symbol(self, sid: int, tick: int, lot: int, low: int, high: int, max_qty: int) -> None:
        self.symbols[sid] = Symbol(tick, lot, low, high, max_qty)

    def set_halted(self, sid: int, halted: bool) -> None:
        self.symbols[sid].halted = halted

    def set_stp(self, session: int, mode: int) -> None:
        self.stp[session] = mode

    # book maintenance
    def _rest(self, o: Order) -> None:
        self.prio += 1
        o.prio = self.prio
        self.symbols[o.symbol].sides[o.side].setdefault(o.price, []).append(o)

    def _unlink_level(self, o: Order) -> None:
        lv = self.symbols[o.symbol].sides[o.side]
        lv[o.price].remove(o)
        if not lv[o.price]:
            del lv[o.price]

    def _remove(self, o: Order) -> None:
        self._unlink_level(o)
        self.session_orders[o.session].remove(o)
        del self.orders[(o.session, o.cl)]

    def _check_qty(self, s: Symbol, qty: int) -> int:
        if qty == 0 or (s.max_qty and qty > s.max_qty):
            return R["BAD_QUANTITY"]
        return R["OFF_LOT"] if qty % s.lot else 0

    def _check_price(self, s: Symbol, price: int) -> int:
        if price <= 0:
            return R["BAD_PRICE"]
        if price % s.tick:
            return R["OFF_TICK"]
        return R["OUTSIDE_BAND"] if price < s.low or price > s.high else 0

    def _fok_fillable(self, s: Symbol, a: Order) -> bool:
        stp = self.stp.get(a.session, STP_NONE)
        opp = SELL if a.side == BUY else BUY
        need, got = a.leaves, 0
        for px in s.levels(opp):
            if a.has_limit and (px > a.price if a.side == BUY else px < a.price):
                return False
            for m in s.sides[opp][px]:
                if stp != STP_NONE and m.session == a.session:
                    if stp != STP_OLDEST:
                        return False
                    continue
                got += m.leaves
                if got >= need:
                    return True
        return False

    def _match(self, s: Symbol, a: Order, out: list[Event]) -> bool:
        """Trades a; returns True when self-trade prevention stopped it."""
        stp = self.stp.get(a.session, STP_NONE)
        opp = SELL if a.side == BUY else BUY
        while a.leaves:
            px = s.best(opp)
            if px is None or (a.has_limit and (px > a.price if a.side == BUY else px < a.price)):
                break
            queue = s.sides[opp][px]
            while a.leaves and queue and s.best(opp) == px:
                m = queue[0]
                if stp != STP_NONE and m.session == a.session:
                    if stp == STP_NEWEST:
                        return True
                    out.append(m.event(EV_CXL, reason=X["SELF_TRADE"], qty=m.leaves, leaves=0))
                    self._remove(m)
                    if stp == STP_BOTH:
                        return True
                    continue
                q = min(a.leaves, m.leaves)
                exec_id = self.next_exec_id
                self.next_exec_id += 1
                a.leaves -= q
                a.filled += q
                m.leaves -= q
                m.filled += q
                out.append(a.event(EV_FILL, liquidity=C["XE_LIQ_REMOVED"], price=px, qty=q,
                                   exec_id=exec_id))
                out.append(m.event(EV_FILL, liquidity=C["XE_LIQ_ADDED"], qty=q, exec_id=exec_id))
                if m.leaves == 0:
                    self._remove(m)
        return False

    # order entry
    def new_order(self, session: int, symbol: int, cl: int, side: int, price: int, qty: int,
                  ord_type: int, tif: int) -> list[Event]:
        market = ord_type == MARKET
        can_rest = not market and tif in (DAY, GTC)
        s = self.symbols.get(symbol)
        rej = 0
        if not 1 <= session <= self.max_sessions:
            rej = R["NOT_LOGGED_IN"]
        elif side not in (BUY, SELL):
            rej = R["BAD_SIDE"]
        elif ord_type not in (LIMIT, MARKET, POST_ONLY):
            rej = R["BAD_ORDER_TYPE"]
        elif tif not in (DAY, GTC, IOC, FOK) or (ord_type == POST_ONLY and not can_rest):
            rej = R["BAD_TIF"]
        elif s is None:
            rej = R["UNKNOWN_SYMBOL"]
        else:
            rej = self._check_qty(s, qty)
            if not rej and not market:
                rej = self._check_price(s, price)
            if not rej and s.halted:
                rej = R["HALTED"]
            if not rej and (session, cl) in self.orders:
                rej = R["DUPLICATE_ID"]
            if not rej and can_rest and len(self.orders) >= self.max_orders:
                rej = R["CAPACITY"]
            if not rej and ord_type == POST_ONLY and s.crosses(side, price):
                rej = R["POST_ONLY_CROSS"]
        a = Order(session, symbol, cl, 0, side, ord_type, tif, price, qty, has_limit=not market)
        if not rej and tif == FOK and s is not None and not self._fok_fillable(s, a):
            rej = R["FOK_UNFILLABLE"]
        if rej:
            return [a.event(EV_REJ, price=price, reason=rej, qty=qty, leaves=0)]
        assert s is not None
        a.order_id = self.next_order_id
        self.next_order_id += 1
        out = [a.event(EV_ACC, qty=qty)]
        stop = False
        if market or s.crosses(side, price):
            stop = self._match(s, a, out)
        if not a.leaves:
            return out
        if not can_rest or stop:
            reason = X["SELF_TRADE"] if stop else X["NO_LIQUIDITY"] if market else X["IOC"]
            out.append(a.event(EV_CXL, reason=reason, qty=a.leaves, leaves=0))
            return out
        self.orders[(session, cl)] = a
        self.session_orders.setdefault(session, []).append(a)
        self._rest(a)
        return out

    def cancel(self, session: int, cl: int) -> list[Event]:
        if not 1 <= session <= self.max_sessions:
            return [ev(EV_REJ, reason=R["NOT_LOGGED_IN"], session_id=session, cl_ord_id=cl)]
        o = self.orders.get((session, cl))
        if o is None:
            return [ev(EV_REJ, reason=R["UNKNOWN_ORDER"], session_id=session, cl_ord_id=cl)]
        out = [o.event(EV_CXL, reason=X["USER"], qty=o.leaves, leaves=0)]
        self._remove(o)
        return out

    def replace(self, session: int, orig: int, cl: int, price: int, qty: int) -> list[Event]:
        o = None
        rej = 0
        if not 1 <= session <= self.max_sessions:
            rej = R["NOT_LOGGED_IN"]
        elif (o := self.orders.get((session, orig))) is None:
            rej = R["UNKNOWN_ORDER"]
        else:
            s = self.symbols[o.symbol]
            rej = R["HALTED"] if s.halted else 0
            rej = rej or self._check_qty(s, qty) or self._check_price(s, price)
            if not rej and cl != orig and (session, cl) in self.orders:
                rej = R["DUPLICATE_ID"]
            if not rej and qty <= o.filled:
                rej = R["REPLACE_QTY"]
            if not rej and price == o.price and qty == o.filled + o.leaves:
                rej = R["NO_CHANGE"]
            if (not rej and o.ord_type == POST_ONLY and price != o.price
                    and s.crosses(o.side, price)):
                rej = R["POST_ONLY_CROSS"]
        if rej:
            kw = dict(reason=rej, session_id=session, cl_ord_id=orig, orig_cl_ord_id=orig,
                      price=price, qty=qty)
            if o is not None:
                kw.update(symbol_id=o.symbol, side=o.side, ord_type=o.ord_type, tif=o.tif,
                          order_id=o.order_id)
            return [ev(EV_REJ, **kw)]
        assert o is not None
        s = self.symbols[o.symbol]
        new_leaves = qty - o.filled
        del self.orders[(session, orig)]
        o.cl = cl
        self.orders[(session, cl)] = o
        if price == o.price and new_leaves <= o.leaves:
            o.leaves = new_leaves
            return [o.event(EV_REPL, qty=qty, orig_cl_ord_id=orig)]
        self._unlink_level(o)
        o.price, o.leaves = price, new_leaves
        out = [o.event(EV_REPL, qty=qty, orig_cl_ord_id=orig)]
        if s.crosses(o.side, price):
            stop = self._match(s, o, out)
            if not o.leaves or stop:
                if o.leaves:
                    out.append(o.event(EV_CXL, reason=X["SELF_TRADE"], qty=o.leaves, leaves=0))
                self.session_orders[session].remove(o)
                del self.orders[(session, cl)]
                return out
        self._rest(o)
        return out

    def mass_cancel(self, session: int, symbol: int, side: int, reason: int) -> list[Event]:
        rej = 0
        if not 1 <= session <= self.max_sessions:
            rej = R["NOT_LOGGED_IN"]
        elif side > SELL:
            rej = R["BAD_SIDE"]
        elif symbol and symbol not in self.symbols:
            rej = R["UNKNOWN_SYMBOL"]
        elif reason > X["HALT"]:
            rej = R["UNKNOWN_MESSAGE"]
        if rej:
            return [ev(EV_REJ, reason=rej, session_id=session, symbol_id=symbol, side=side)]
        out = []
        reason = reason or X["MASS"]
        for o in list(self.session_orders.get(session, [])):
            if (not symbol or o.symbol == symbol) and (not side or o.side == side):
                out.append(o.event(EV_CXL, reason=reason, qty=o.leaves, leaves=0))
                self._remove(o)
        if not out and reason == X["MASS"]:
            out.append(ev(EV_REJ, reason=R["UNKNOWN_ORDER"], session_id=session,
                          symbol_id=symbol, side=side))
        return out

    def expire_day(self) -> list[Event]:
        out = []
        for sid in sorted(self.symbols):
            s = self.symbols[sid]
            for side in (BUY, SELL):
                for px in s.levels(side):
                    for o in list(s.sides[side][px]):
                        if o.tif == DAY:
                            out.append(o.event(EV_CXL, reason=X["EXPIRED"], qty=o.leaves,
                                               leaves=0))
                            self._remove(o)
        return out
