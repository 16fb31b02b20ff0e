"""The subscribers' comparison with the engine's own books, against a real xdpexd: a book built
from the feed messages its Accepted answers imply agrees with the control socket's `book` levels;
a book that lost an order, or missed a halt, is reported, naming the symbol and the side. The
Python subscriber's compare_ctl is called directly; the C subscriber (--compare-ctl) gets the same
messages as real MoldUDP64 packets over UDP and must exit 0, or 1 with the difference said."""

from __future__ import annotations

import socket
from pathlib import Path

from dataplane_support import Env, base_config, need_root_and_binary, new_order
from feed_support import c_sub, free_port, need_tools
from xdpex_proto import codec as c
from xdpex_proto import feed as f
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


def run_c_sub(ctl: Path, msgs: list[f.Message]) -> tuple[int, str]:
    """The C subscriber fed `msgs` as one session, then told the session ended."""
    port = free_port()
    p = c_sub("--listen", f"127.0.0.1:{port}", "--compare-ctl", str(ctl), "--symbols", "2",
              "--max-seconds", "20")  # fmt: skip
    s0 = f.session_name(0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(f.encode_datagram(s0, 1, msgs), ("127.0.0.1", port))
        s.sendto(f.end_of_session(s0, 1 + len(msgs)), ("127.0.0.1", port))
    rc = p.finish(timeout=30)
    return rc, p.err


def test_c_subscriber_compares_with_xdpexd(tmp_path: Path) -> None:
    need_root_and_binary()
    need_tools()
    env = Env("udp", tmp_path, None, config=base_config())
    env.daemon.start()
    try:
        cl = env.client(2)
        assert isinstance(cl.login(), c.LoginAccepted)
        cl.send_app([new_order(1, c.Side.SELL, 120, 3), new_order(2, c.Side.SELL, 121, 6),
                     new_order(3, c.Side.BUY, 90, 2)])
        accs = cl.wait_count(lambda m: isinstance(m, c.Accepted), 3)
        adds: list[f.Message] = [f.SystemEvent(f.SysEvent.START_OF_SESSION, 0, 1)]
        adds += [f.AddOrder(a.side, a.symbol_id, 1, a.order_id, a.price, a.qty) for a in accs]
        ctl = env.daemon.ctl_path
        rc, err = run_c_sub(ctl, adds)
        assert rc == 0, err
        rc, err = run_c_sub(ctl, adds[:-1])
        assert rc == 1 and "symbol 1 bids differ" in err, err
        assert env.daemon.ctl({"cmd": "halt", "symbol": 2})["ok"]
        rc, err = run_c_sub(ctl, adds)
        assert rc == 1 and "symbol 2: halted differs" in err, err
        rc, err = run_c_sub(ctl, [*adds, f.SymbolState(f.SymbolStateCode.HALTED, 2, 1)])
        assert rc == 0, err
    finally:
        env.close()
