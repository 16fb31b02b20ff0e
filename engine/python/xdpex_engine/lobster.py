"""Replay of a LOBSTER message file through the engine, checking which resting order each
execution hits.

LOBSTER (lobsterdata.com) message files list, per event: time (seconds after midnight), type,
order id, size, price (dollars x 10000) and direction (1 buy, -1 sell; for an execution, the side
of the resting order executed). They are mapped as:

  1 submit          -> new GTC limit order (session 1, cl_ord_id = the order id)
  2 partial cancel  -> replace to the smaller quantity at the same price (keeps priority), or a
                       cancel when nothing would be left
  3 delete          -> cancel
  4 visible exec.   -> IOC from the opposite side (session 2) at the execution's price and size;
                       agreement when every fill is against exactly the order LOBSTER names
  5, 6, 7           -> skipped (hidden executions, crosses, halts) and counted

Orders resting from before the file starts are unknown to the engine: events that name one are
counted separately and not applied. Prices are kept in the file's units (tick 100 = one cent).

A LOBSTER file of N levels only holds the events inside the N best levels, so an order that was
already resting deeper appears as a submission when its level moves into view, with its
exchange order id from when it really entered (NASDAQ order ids grow with entry time). Its time
priority is older than that of the in-file orders at its price with larger ids: the replay
restores that order by re-queuing those younger orders behind it through the engine's own
cancel/replace rules (quantity up then back down loses, then keeps, priority), and counts it.

For the same reason, an order whose price fell outside the 10 best levels at some point may have
been cancelled there without a message ("window-stale"). A submission in LOBSTER never trades
(the part of an order that trades on arrival shows as executions of the resting orders), so
engine orders a submission would cross are stale too: they are removed and counted before it.

An execution is checked before its IOC is sent: if the engine holds orders ahead of the executed
one (at a better price, or earlier at its price), the exchange did not. Those orders are
removed (window-stale ones) or re-queued behind (younger ids at the price), so that one
difference does not cascade into the following executions. The IOC then runs and must fill
exactly the executed order for the quantity LOBSTER reports. The report gives the strict share
(nothing ahead, exact fill) and the share once window-stale orders, which the file cannot
describe, are set aside; anything else is a disagreement listed with its cause.
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from xdpex_engine.native import C, Engine

TICK = 100  # one cent in LOBSTER's price units (dollars x 10000)
BUY, SELL = C["XE_BUY"], C["XE_SELL"]
IOC_BASE = 1 << 62  # cl_ord_ids of the execution IOCs, apart from LOBSTER's order ids


@dataclass
class Disagreement:
    line: int
    time: float
    order_id: int
    size: int
    price: int
    cause: str


@dataclass
class LobsterReport:
    events: int = 0
    by_type: Counter = field(default_factory=Counter)
    applied: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # types 5, 6, 7
    prefile: Counter = field(default_factory=Counter)  # events naming an order from before
    executions: int = 0  # type 4 on orders submitted inside the file
    agreed: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    crossed_on_entry: int = 0  # type-1 submissions that traded in the engine
    stale_removed: int = 0  # orders ahead of an executed one that the exchange did not have
    window_stale: int = 0  # of which had been outside the 10 best levels
    cross_stale: int = 0  # orders removed because a submission would have crossed them
    window_explained: int = 0  # executions that agreed once window-stale orders were removed
    stale_events: int = 0  # later events naming an order removed as stale
    late_entries: int = 0  # submissions older (by exchange id) than orders queued at the price
    requeued: int = 0  # younger orders moved behind a late entry
    rejects: Counter = field(default_factory=Counter)
    bids: list[tuple[int, int, int]] = field(default_factory=list)
    asks: list[tuple[int, int, int]] = field(default_factory=list)
    state_hash: int = 0

    @property
    def strict_share(self) -> float:
        return self.agreed / self.executions if self.executions else 0.0

    @property
    def share(self) -> float:
        ok = self.agreed + self.window_explained
        return ok / self.executions if self.executions else 0.0


def _open(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def read_messages(path: Path) -> list[tuple[int, float, int, int, int, int, int]]:
    """(line, time, type, order id, size, price, direction) for every row; ValueError names
    the line and field of a malformed one."""
    rows = []
    with _open(path) as f:
        for line, rec in enumerate(csv.reader(f), start=1):
            if len(rec) < 6:
                raise ValueError(f"{path}:{line}: expected 6 fields, got {len(rec)}")
            try:
                t = float(rec[0])
                typ, oid, size, price, direction = (int(x) for x in rec[1:6])
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: bad field: {exc}") from None
            if direction not in (1, -1):
                raise ValueError(f"{path}:{line}: direction must be 1 or -1, got {direction}")
            rows.append((line, t, typ, oid, size, price, direction))
    return rows


def _requeue_younger(e: Engine, side: int, price: int, oid: int) -> int:
    """Moves every order at (side, price) with an id above `oid` behind it, keeping their order."""
    moved = 0
    for o in e.level_orders(1, side, price):
        if o.session_id == 1 and o.cl_ord_id > oid:
            e.replace(1, o.cl_ord_id, o.cl_ord_id, price, o.qty + 1)  # loses priority
            e.replace(1, o.cl_ord_id, o.cl_ord_id, price, o.qty)  # keeps it
            moved += 1
    return moved


class Window:
    """History of the price of the 10th best level on each side, to tell whether an order was
    ever outside the window a 10-level LOBSTER file reports on."""

    def __init__(self, levels: int = 10):
        self.levels = levels
        self.hist: dict[int, list[int | None]] = {BUY: [], SELL: []}

    def record(self, e: Engine) -> None:
        for side in (BUY, SELL):
            book = e.book(1, side, self.levels)
            self.hist[side].append(book[-1][0] if len(book) == self.levels else None)

    def was_outside(self, side: int, price: int, since: int) -> bool:
        for p10 in self.hist[side][since:]:
            if p10 is not None and (price < p10 if side == BUY else price > p10):
                return True
        return False


def _levels(e: Engine, side: int):
    """Price levels of one side, best first, fetched in growing batches."""
    depth = 16
    while True:
        book = e.book(1, side, depth)
        yield from book[depth // 2 if depth > 16 else 0:]
        if len(book) < depth:
            return
        depth *= 2


def _crossed_by(e: Engine, side: int, price: int) -> list:
    """Resting orders a limit order on `side` at `price` would trade with."""
    opp = SELL if side == BUY else BUY
    out: list = []
    for p, _qty, _n in _levels(e, opp):
        if p > price if side == BUY else p < price:
            break
        out.extend(e.level_orders(1, opp, p))
    return out


def _ahead_of(e: Engine, x) -> list:
    """Orders the engine would trade before order x (same side, better price or earlier)."""
    ahead: list = []
    for price, _qty, _n in _levels(e, x.side):
        if price < x.price if x.side == BUY else price > x.price:
            break
        for o in e.level_orders(1, x.side, price):
            if o.cl_ord_id == x.cl_ord_id and o.session_id == x.session_id:
                return ahead
            ahead.append(o)
    return ahead


def replay(path: Path, top: int = 10) -> LobsterReport:
    rows = read_messages(path)
    priced = [r[5] for r in rows if r[2] in (1, 4) and r[5] > 0]
    if not priced:
        raise ValueError(f"{path}: no submissions or executions")
    low = max(TICK, (min(priced) // 2) // TICK * TICK)
    high = (max(priced) * 2) // TICK * TICK
    max_orders = max(1024, sum(1 for r in rows if r[2] == 1) + 16)
    e = Engine(max_orders=max_orders, max_symbols=1, max_sessions=2)
    e.add_symbol(1, tick_size=TICK, lot_size=1, band_low=low, band_high=high)
    rep = LobsterReport()
    known: set[int] = set()  # orders submitted inside the file (live or not)
    newest = 0  # largest order id submitted so far
    stale: set[int] = set()
    window = Window()
    entered: dict[int, int] = {}  # order id -> index in the window history at submission
    ioc_id = IOC_BASE
    for line, t, typ, oid, size, price, direction in rows:
        rep.events += 1
        rep.by_type[typ] += 1
        side = BUY if direction == 1 else SELL
        if typ in (5, 6, 7):
            rep.skipped[typ] += 1
            continue
        window.record(e)
        if typ == 1:
            known.add(oid)
            entered[oid] = len(window.hist[BUY])
            for o in _crossed_by(e, side, price):
                e.cancel(o.session_id, o.cl_ord_id)
                stale.add(o.cl_ord_id)
                rep.cross_stale += 1
            evs = e.new_order(1, 1, oid, side, price, size)
            if evs[0].type == C["XE_EV_REJECTED"]:
                rep.rejects[evs[0].reason] += 1
            elif any(ev.type == C["XE_EV_FILL"] for ev in evs):
                rep.crossed_on_entry += 1
            elif oid < newest:
                rep.late_entries += 1
                rep.requeued += _requeue_younger(e, side, price, oid)
            newest = max(newest, oid)
            rep.applied[typ] += 1
            continue
        if oid not in known:
            rep.prefile[typ] += 1
            continue
        if oid in stale:
            rep.stale_events += 1
            continue
        info = e.get_order(1, oid)
        if typ in (2, 3):
            if info is None:
                # Known order already gone in the engine (it traded away earlier than on the
                # exchange): the cancel has nothing to act on.
                rep.rejects[C["XE_REJ_UNKNOWN_ORDER"]] += 1
                continue
            if typ == 3 or size >= info.leaves:
                e.cancel(1, oid)
            else:
                e.replace(1, oid, oid, info.price, info.qty - size)
            rep.applied[typ] += 1
            continue
        if typ != 4:
            rep.skipped[typ] += 1
            continue
        rep.executions += 1
        rep.applied[typ] += 1
        cause = ""
        explained = False
        if info is None:
            cause = "order no longer live in the engine (traded away earlier)"
        else:
            ahead = _ahead_of(e, info)
            younger = [o for o in ahead if o.price == info.price and o.cl_ord_id > oid]
            ws = [o for o in ahead if o not in younger and window.was_outside(
                o.side, o.price, entered.get(o.cl_ord_id, 0))]
            rest = [o for o in ahead if o not in younger and o not in ws]
            if younger or rest:
                cause = (f"engine held order(s) ahead of it the exchange did not: "
                         f"{len(younger)} younger at its price, {len(rest)} never outside the "
                         f"10-level window, {len(ws)} window-stale, e.g. "
                         f"{[o.cl_ord_id for o in (younger + rest)[:3]]}")
            elif ws:
                explained = True
            for o in younger:
                e.replace(1, o.cl_ord_id, o.cl_ord_id, o.price, o.qty + 1)
                e.replace(1, o.cl_ord_id, o.cl_ord_id, o.price, o.qty)
                rep.requeued += 1
            for o in ws + rest:
                e.cancel(1, o.cl_ord_id)
                stale.add(o.cl_ord_id)
                rep.stale_removed += 1
            rep.window_stale += len(ws)
        ioc_id += 1
        evs = e.new_order(2, 1, ioc_id, SELL if side == BUY else BUY, price, size,
                          tif=C["XE_TIF_IOC"])
        makers = [ev for ev in evs if ev.type == C["XE_EV_FILL"]
                  and ev.liquidity == C["XE_LIQ_ADDED"]]
        hit = {ev.cl_ord_id for ev in makers}
        filled = sum(ev.qty for ev in makers)
        if not cause and hit == {oid} and filled == size:
            if explained:
                rep.window_explained += 1
            else:
                rep.agreed += 1
            continue
        if not cause:
            if not makers:
                cause = "no fill: nothing in the engine's book at or through the price"
            elif hit - {oid}:
                cause = f"hit order(s) {sorted(hit - {oid})[:3]} first"
            else:
                cause = f"filled {filled} of {size}: the engine had less open"
        rep.disagreements.append(Disagreement(line, t, oid, size, price, cause))
    rep.bids = e.book(1, BUY, top)
    rep.asks = e.book(1, SELL, top)
    rep.state_hash = e.state_hash()
    return rep


def format_report(rep: LobsterReport, path: Path, show: int = 20) -> str:
    out = [f"LOBSTER replay of {path}: {rep.events} events"]
    out.append("  by type: " + ", ".join(f"{k}: {v}" for k, v in sorted(rep.by_type.items())))
    out.append("  applied: " + ", ".join(f"{k}: {v}" for k, v in sorted(rep.applied.items())))
    out.append("  skipped (5 hidden exec, 6 cross, 7 halt): "
               + (", ".join(f"{k}: {v}" for k, v in sorted(rep.skipped.items())) or "none"))
    out.append("  on orders from before the file (not applied): "
               + (", ".join(f"{k}: {v}" for k, v in sorted(rep.prefile.items())) or "none"))
    if rep.rejects:
        out.append("  engine refusals: " + ", ".join(f"reason {k}: {v}"
                                                     for k, v in sorted(rep.rejects.items())))
    out.append(f"  stale orders a submission would have crossed (removed first): "
               f"{rep.cross_stale}; submissions that still traded on entry: "
               f"{rep.crossed_on_entry}")
    out.append(f"  late entries (older exchange id than orders queued at the price): "
               f"{rep.late_entries}, {rep.requeued} younger orders re-queued behind them")
    out.append(f"  orders removed as stale: {rep.stale_removed} ({rep.window_stale} had been "
               f"outside the 10-level window), later events naming them: {rep.stale_events}")
    out.append(f"  executions of in-file orders: {rep.executions}")
    out.append(f"    engine hit exactly the executed order, nothing ahead: {rep.agreed} "
               f"({100 * rep.strict_share:.2f}%)")
    out.append(f"    ... after removing window-stale orders ahead: +{rep.window_explained} "
               f"= {100 * rep.share:.2f}%")
    if rep.disagreements:
        causes = Counter(d.cause.split(":")[0] for d in rep.disagreements)
        out.append("  disagreements by cause: " + "; ".join(f"{c}: {n}" for c, n in
                                                            causes.most_common()))
        for d in rep.disagreements[:show]:
            out.append(f"    line {d.line} t={d.time:.6f} order {d.order_id} size {d.size} "
                       f"price {d.price / 10000:.2f}: {d.cause}")
        if len(rep.disagreements) > show:
            out.append(f"    ... {len(rep.disagreements) - show} more")
    out.append(f"  final book (top {max(len(rep.bids), len(rep.asks))} levels), state hash "
               f"{rep.state_hash:016x}:")
    out.append(f"    {'bid qty':>10} {'orders':>6} {'bid':>9} | {'ask':<9} {'orders':>6} "
               f"{'ask qty':>10}")
    for i in range(max(len(rep.bids), len(rep.asks))):
        b = rep.bids[i] if i < len(rep.bids) else None
        a = rep.asks[i] if i < len(rep.asks) else None
        left = f"{b[1]:>10} {b[2]:>6} {b[0] / 10000:>9.2f}" if b else " " * 27
        right = f"{a[0] / 10000:<9.2f} {a[2]:>6} {a[1]:>10}" if a else ""
        out.append(f"    {left} | {right}")
    return "\n".join(out)
