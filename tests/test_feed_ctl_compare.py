"""The Python subscriber's comparison with the engine's own books (xdpex_traffic.feedsub
compare_ctl), against a real xdpexd: a book built from the feed messages its Accepted answers imply
agrees with the control socket's `book` levels; a book that lost an order, or missed a halt, is
reported, naming the symbol and the side."""

from __future__ import annotations

from pathlib import Path

from dataplane_support import Env, base_config, need_root_and_binary, new_order
from xdpex_proto import feed as f
from xdpex_traffic import codec as c
from xdpex_traffic.feedbook import Book
from xdpex_traffic.feedsub import compare_ctl


def test_compare_ctl_agrees_and_reports_differences(tmp_path: Path) -> None:
    need_root_and_binary()
    env = Env("udp", tmp_path, None, config=base_config())
    env.daemon.start()
    try:
        cl = env.client(1)
        assert isinstance(cl.login(), c.LoginAccepted)
        cl.send_app([new_order(1, c.Side.BUY, 100, 10), new_order(2, c.Side.BUY, 100, 4),
                     new_order(3, c.Side.BUY, 99, 5), new_order(4, c.Side.SELL, 105, 7)])
        accs = cl.wait_count(lambda m: isinstance(m, c.Accepted), 4)
        book = Book()
        for a in accs:
            book.apply(f.AddOrder(a.side, a.symbol_id, 0, a.order_id, a.price, a.qty))
        ctl = env.daemon.ctl_path
        assert compare_ctl(book, ctl, [1, 2]) == []
        book.apply(f.Deleted(c.Side.BUY, 1, 0, accs[2].order_id, 5))
        diffs = compare_ctl(book, ctl, [1, 2])
        assert len(diffs) == 1 and diffs[0].startswith("symbol 1 bids")
        book.apply(f.AddOrder(c.Side.BUY, 1, 0, accs[2].order_id, 99, 5))
        assert env.daemon.ctl({"cmd": "halt", "symbol": 1})["ok"]
        assert compare_ctl(book, ctl, [1]) == ["symbol 1: halted True in xdpexd, False here"]
        book.apply(f.SymbolState(f.SymbolStateCode.HALTED, 1, 0))
        assert compare_ctl(book, ctl, [1, 2]) == []
    finally:
        env.close()
