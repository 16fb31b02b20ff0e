"""xdpexd sessions and order entry over real packets, in both modes: kernel UDP over loopback and
AF_XDP over the veth lab (XDP program attached by xdpexd). Login (good, bad proof, stale, replayed
nonce, unknown, bound elsewhere), orders, fills, cancels, replaces, rejects with their reasons,
duplicates skipped, gaps answered, retransmission, malformed datagrams dropped and counted while
valid traffic goes on, heartbeats, logout and cancel-on-disconnect, the local entry socket.
"""

from __future__ import annotations

import time

import pytest
from dataplane_support import SECRET, Env, new_order, now_ns
from xdpex_proto import codec as c

LR = c.LoginReason
RR = c.RejectReason


def logged_in(env: Env, sid: int) -> object:
    cl = env.client(sid)
    acc = cl.login()
    assert isinstance(acc, c.LoginAccepted), acc
    return cl


def test_login_accepted_with_sequences_and_heartbeat(dp_env: Env) -> None:
    cl = dp_env.client(1)
    ts = now_ns()
    acc = cl.login(ts=ts)
    assert isinstance(acc, c.LoginAccepted)
    assert (acc.session_id, acc.next_in_seq, acc.next_out_seq) == (1, 1, 1)
    assert acc.heartbeat_ms == 1000 and acc.echo_ts == ts and acc.recv_ts > 0
    sess = {s["id"]: s for s in dp_env.daemon.ctl({"cmd": "sessions"})["sessions"]}
    assert sess[1]["state"] == "logged_in" and sess[2]["state"] == "logged_out"


def test_login_refusals_name_the_reason(dp_env: Env) -> None:
    cl = dp_env.client(2)
    assert cl.login(secret=b"\x01" * 32).reason == LR.BAD_PROOF
    assert cl.login(ts=now_ns() - 10_000_000_000).reason == LR.STALE
    assert cl.login(ts=now_ns() + 10_000_000_000).reason == LR.STALE
    # An unknown session is not told apart from a bad proof (test_dataplane_security.py).
    unknown = dp_env.client(33)
    assert unknown.login().reason == LR.BAD_PROOF
    assert cl.login(next_seq=5).reason == LR.BAD_SEQUENCE
    ok = cl.login(nonce=424242)
    assert isinstance(ok, c.LoginAccepted)
    # The same proof again (a replay of the captured Login) is refused.
    assert cl.login(nonce=424242).reason == LR.REPLAYED
    # A fresh Login from the bound address is accepted again (its LoginAccepted may be lost).
    assert isinstance(cl.login(), c.LoginAccepted)
    r = dp_env.daemon.ctl({"cmd": "apply", "config": {"sessions": [{"id": 3, "enabled": False}]}})
    assert r["ok"], r
    assert dp_env.client(3).login().reason == LR.DISABLED
    assert dp_env.daemon.q0()["login_rejects"] == 7


def test_login_from_second_address_refused(dp_env: Env) -> None:
    logged_in(dp_env, 1)
    other = dp_env.client(1)
    if dp_env.mode == "udp":
        assert other.login().reason == LR.BOUND_ELSEWHERE
    else:
        # The XDP program drops a bound session's datagrams from any other address.
        other.send_session([other.login_msg()])
        assert other.recv(0.5) == []
        assert dp_env.daemon.stats()["xdp_counters"]["spoofed_cnt"] >= 1


def test_orders_fills_cancel_replace(dp_env: Env) -> None:
    a, b = logged_in(dp_env, 1), logged_in(dp_env, 2)
    a.send_app([new_order(11, c.Side.BUY, 100, 10), new_order(12, c.Side.BUY, 101, 5)])
    acks = a.wait_count(lambda m: isinstance(m, c.Accepted), 2)
    assert [m.cl_ord_id for m in acks] == [11, 12]
    assert acks[0].order_id != acks[1].order_id
    b.send_app([new_order(21, c.Side.SELL, 100, 12)])
    b.wait_count(lambda m: isinstance(m, c.Fill), 2)
    fills_b = [m for m in b.messages() if isinstance(m, c.Fill)]
    # Price-time priority, trades at the resting price: 5 @ 101 first, then 7 @ 100.
    assert [(f.price, f.qty, f.leaves, f.liquidity) for f in fills_b] == [
        (101, 5, 7, c.Liquidity.REMOVED), (100, 7, 0, c.Liquidity.REMOVED)]
    fills_a = a.wait_count(lambda m: isinstance(m, c.Fill), 2)
    assert {(f.cl_ord_id, f.qty, f.leaves) for f in fills_a} == {(12, 5, 0), (11, 7, 3)}
    assert {f.exec_id for f in fills_a} == {f.exec_id for f in fills_b}
    assert all(f.echo_ts == 0 for f in fills_a)  # caused by someone else
    book = dp_env.daemon.ctl({"cmd": "book", "symbol": 1})
    assert book["bids"] == [[100, 3, 1]] and book["asks"] == []
    # Replace: quantity down keeps the order (and its id), new client id.
    a.send_app([c.Replace(symbol_id=1, orig_cl_ord_id=11, new_cl_ord_id=13, price=100, qty=9,
                          client_ts=now_ns())])
    rep = a.wait_for(lambda m: isinstance(m, c.Replaced))
    assert (rep.cl_ord_id, rep.orig_cl_ord_id, rep.qty, rep.leaves) == (13, 11, 9, 2)
    a.send_app([c.Cancel(symbol_id=1, orig_cl_ord_id=13, client_ts=now_ns())])
    cx = a.wait_for(lambda m: isinstance(m, c.Cancelled))
    assert (cx.cl_ord_id, cx.qty, cx.reason) == (13, 2, c.CancelReason.USER)
    assert dp_env.daemon.ctl({"cmd": "book", "symbol": 1})["bids"] == []
    # Outbound sequences are contiguous from 1 for each session.
    for cl in (a, b):
        seqs = [s for s, _ in cl.app_messages()]
        assert seqs == list(range(1, len(seqs) + 1))


def test_rejects_carry_their_reason(dp_env: Env) -> None:
    a = logged_in(dp_env, 1)
    bad = [
        (new_order(1, price=101, qty=10, symbol=2), RR.OFF_TICK),
        (new_order(2, price=100, qty=15, symbol=2), RR.OFF_LOT),
        (new_order(3, price=6000, qty=10, symbol=2), RR.OUTSIDE_BAND),
        (new_order(4, price=100, qty=10, symbol=9), RR.UNKNOWN_SYMBOL),
        (new_order(5, price=100, qty=0), RR.BAD_QUANTITY),
        (new_order(6, price=100, qty=10, side=7), RR.BAD_SIDE),
        (c.Cancel(symbol_id=1, orig_cl_ord_id=999, client_ts=1), RR.UNKNOWN_ORDER),
        (c.MassCancel(side=0, symbol_id=0, client_ts=2), RR.UNKNOWN_ORDER),
    ]
    seq = a.send_app([m for m, _ in bad])
    rej = a.wait_count(lambda m: isinstance(m, c.Rejected), len(bad))
    assert [r.reason for r in rej] == [want for _, want in bad]
    assert [r.ref_seq for r in rej] == list(range(seq, seq + len(bad)))
    assert [r.ref_type for r in rej] == [int(m.TYPE) for m, _ in bad]
    # Duplicate client order id among live orders.
    a.send_app([new_order(50), new_order(50)])
    dup = a.wait_for(lambda m: isinstance(m, c.Rejected) and m.cl_ord_id == 50)
    assert dup.reason == RR.DUPLICATE_ID


def test_not_logged_in_and_rate_limit(dp_mode: str, dp_workdir, request) -> None:
    from dataplane_support import base_config, need_root_and_binary

    need_root_and_binary()
    cfg = base_config()
    cfg["sessions"][1]["limits"] = {"rate": 10, "burst": 2}
    env = Env(dp_mode, dp_workdir, request.getfixturevalue("dp_lab") if dp_mode != "udp"
              else None, config=cfg)
    try:
        env.daemon.start()
        a = env.client(1)
        a.send_app([new_order(1)])
        r = a.wait_for(lambda m: isinstance(m, c.Rejected))
        assert (r.reason, r.ref_seq) == (RR.NOT_LOGGED_IN, 1)
        assert isinstance(a.login(), c.LoginAccepted)
        assert a.login().next_in_seq == 1  # nothing was applied
        b = env.client(2)
        assert isinstance(b.login(), c.LoginAccepted)
        b.send_app([new_order(i, price=100 + i) for i in range(1, 6)])
        got = b.wait_count(lambda m: isinstance(m, c.Accepted | c.Rejected), 5)
        kinds = [type(m).__name__ if isinstance(m, c.Accepted) else m.reason for m in got]
        assert kinds == ["Accepted", "Accepted", RR.RATE_LIMITED, RR.RATE_LIMITED,
                         RR.RATE_LIMITED]
        q = env.daemon.q0()
        assert q["rate_limited"] == 3 and q["not_logged_in"] == 1
    finally:
        env.close()


def test_duplicates_skipped_and_gaps_answered(dp_env: Env) -> None:
    a = logged_in(dp_env, 1)
    a.send_app([new_order(1), new_order(2)])
    a.wait_count(lambda m: isinstance(m, c.Accepted), 2)
    # The same datagram again: skipped silently.
    a.send_app([new_order(1), new_order(2)], seq=1)
    assert a.recv(0.3) == []
    # Overlapping resend: only the new tail (seq 3) is applied.
    a.send_app([new_order(2), new_order(3)], seq=2)
    acc = a.wait_for(lambda m: isinstance(m, c.Accepted) and m.cl_ord_id == 3)
    assert acc.qty == 10
    # Skipping ahead: SequenceGap naming what the gateway expects, nothing applied.
    a.send_app([new_order(9)], seq=7)
    gap = a.wait_for(lambda m: isinstance(m, c.SequenceGap))
    assert (gap.expected, gap.received) == (4, 7)
    a.send_app([new_order(4)], seq=4)
    a.wait_for(lambda m: isinstance(m, c.Accepted) and m.cl_ord_id == 4)
    q = dp_env.daemon.q0()
    assert (q["duplicates"], q["gaps"], q["applied"]) == (3, 1, 4)
    assert not any(isinstance(m, c.Accepted) and m.cl_ord_id == 9 for m in a.messages())


def test_retransmission_and_login_replay(dp_env: Env) -> None:
    a = logged_in(dp_env, 2)  # no cancel-on-disconnect: the logout adds no messages
    a.send_app([new_order(i, price=100 + i) for i in range(1, 16)])
    a.send_app([new_order(i, price=100 + i) for i in range(16, 31)])
    a.wait_count(lambda m: isinstance(m, c.Accepted), 30)
    live = dict(a.app_messages())
    a.received.clear()
    a.send_session([c.RetransmitReq(from_seq=5, count=20, client_ts=now_ns())])
    got = []
    while len(got) < 20:
        ds = a.recv(1.0)
        assert ds, f"retransmission stopped after {len(got)} messages"
        for d in ds:
            assert d.flags & 0x01 and d.seq  # XE_F_RETRANSMIT, application datagram
            got += [(d.seq + i, m) for i, m in enumerate(d.messages)]
    assert [s for s, _ in got] == list(range(5, 25))
    assert all(live[s] == m for s, m in got)
    # Log out, log in again asking for everything from 28: replayed after LoginAccepted.
    a.send_session([c.Logout(reason=c.LogoutReason.USER, client_ts=now_ns())])
    a.wait_for(lambda m: isinstance(m, c.Logout))
    a.received.clear()
    acc = a.login(next_seq=28)
    assert (acc.next_in_seq, acc.next_out_seq) == (31, 31)
    a.recv(0.3)
    assert [s for s, _ in a.app_messages()] == [28, 29, 30]
    assert dp_env.daemon.q0()["retransmitted"] == 23


def test_malformed_dropped_and_counted_valid_traffic_continues(dp_env: Env) -> None:
    a = logged_in(dp_env, 1)
    good = c.encode_datagram(1, 1, [new_order(1)])
    unknown_type = bytearray(good)
    unknown_type[24] = 0x99  # passes the XDP program (bodies are not looked at), fails parse.h
    mixed = c.encode_datagram(1, 0, [c.Heartbeat(next_seq=1, client_ts=1)]) + b""
    mixed = bytearray(mixed)
    mixed[8] = 5  # a session message in an application datagram
    bad_magic = b"\x00\x00" + good[2:]
    short = good[:40]
    for raw in (bytes(unknown_type), bytes(mixed), bad_magic, short, b"\x00" * 7):
        a.send_raw(raw)
    a.send_raw(good)
    acc = a.wait_for(lambda m: isinstance(m, c.Accepted))
    assert acc.cl_ord_id == 1
    time.sleep(0.1)
    st = dp_env.daemon.stats()
    if dp_env.mode == "udp":
        assert st["queues"][0]["malformed"] == 5
    else:
        # The XDP program drops what it can see is broken; the rest reaches xdpexd.
        x = st["xdp_counters"]
        assert x["bad_magic_cnt"] == 1 and x["truncated_cnt"] + x["bad_length_cnt"] == 2
        assert st["queues"][0]["malformed"] == 2
    assert "dropped malformed datagram" in dp_env.daemon.run_log()


def test_logout_cancel_on_disconnect_and_heartbeats(dp_mode: str, dp_workdir, request) -> None:
    from dataplane_support import base_config, need_root_and_binary

    need_root_and_binary()
    env = Env(dp_mode, dp_workdir, request.getfixturevalue("dp_lab") if dp_mode != "udp"
              else None, config=base_config(heartbeat_ms=100))
    try:
        env.daemon.start()
        a, b = env.client(1), env.client(2)  # session 1 has cancel_on_disconnect, 2 not
        assert isinstance(a.login(), c.LoginAccepted) and isinstance(b.login(), c.LoginAccepted)
        a.send_app([new_order(1, price=90)])
        b.send_app([new_order(2, price=91)])
        a.wait_for(lambda m: isinstance(m, c.Accepted))
        b.wait_for(lambda m: isinstance(m, c.Accepted))
        # The gateway heartbeats an idle session and times out one that stays silent.
        hb = a.wait_for(lambda m: isinstance(m, c.Heartbeat), timeout=1.0)
        assert hb.next_seq == 2
        lo = a.wait_for(lambda m: isinstance(m, c.Logout), timeout=2.0)
        assert lo.reason == c.LogoutReason.TIMEOUT
        b.wait_for(lambda m: isinstance(m, c.Logout), timeout=2.0)
        book = env.daemon.ctl({"cmd": "book", "symbol": 1})
        assert book["bids"] == [[91, 10, 1]]  # session 1's order cancelled, session 2's rests
        # The Cancelled (XE_CXL_DISCONNECT) is journaled and delivered on the next login.
        acc = a.login(next_seq=2)
        assert acc.next_out_seq == 3
        a.recv(0.2)
        cx = next(m for m in a.messages() if isinstance(m, c.Cancelled))
        assert (cx.cl_ord_id, cx.reason) == (1, c.CancelReason.DISCONNECT)
        assert env.daemon.q0()["timeouts"] >= 2
    finally:
        env.close()


def test_entry_socket_same_sessions_and_matching(dp_env: Env) -> None:
    local = dp_env.entry_client(3)
    assert isinstance(local.login(), c.LoginAccepted)
    net = logged_in(dp_env, 1)
    local.send_app([new_order(7, c.Side.SELL, 100, 4)])
    local.wait_for(lambda m: isinstance(m, c.Accepted))
    net.send_app([new_order(8, c.Side.BUY, 100, 4)])
    f = net.wait_for(lambda m: isinstance(m, c.Fill))
    lf = local.wait_for(lambda m: isinstance(m, c.Fill))
    assert f.exec_id == lf.exec_id and lf.liquidity == c.Liquidity.ADDED
    # A session bound to a unix path cannot be taken over from the network.
    other = dp_env.client(3)
    assert other.login().reason == LR.BOUND_ELSEWHERE
    sess = {s["id"]: s for s in dp_env.daemon.ctl({"cmd": "sessions"})["sessions"]}
    assert sess[3]["bound"].startswith("unix:")


def test_a_logout_on_the_entry_socket_is_recovered_after_a_restart(dp_env: Env) -> None:
    """The journal's session event of a logout of a session bound to a unix path carries no
    path (only a login does): a restart replays it (it once stopped the recovery with "unix
    path not NUL-terminated", and with it a standby that had received the failover of the
    control plane's session)."""
    local = dp_env.entry_client(3)
    assert isinstance(local.login(), c.LoginAccepted)
    local.send_app([new_order(7, c.Side.SELL, 100, 4)])
    local.wait_for(lambda m: isinstance(m, c.Accepted))
    local.send_session([c.Logout(reason=c.LogoutReason.USER)])
    local.wait_for(lambda m: isinstance(m, c.Logout))
    before = dp_env.daemon.state_hash()
    dp_env.daemon.stop()
    dp_env.daemon.start()
    assert dp_env.daemon.state_hash() == before
    again = dp_env.entry_client(3, name="cl2")
    assert isinstance(again.login(), c.LoginAccepted)


def test_login_proof_uses_the_configured_secret(dp_env: Env) -> None:
    cl = dp_env.client(4, secret=SECRET[::-1])
    assert cl.login().reason == LR.BAD_PROOF


@pytest.mark.parametrize("poll", ["spin", "busy"])
def test_spin_and_busy_poll_answer(dp_mode: str, dp_workdir, request, poll: str) -> None:
    """The two polling modes meant for a dedicated core (bounded: a few orders, then stop); DPDK
    has no kernel to busy-poll and says so."""
    from dataplane_support import need_root_and_binary

    need_root_and_binary()
    env = Env(dp_mode, dp_workdir, request.getfixturevalue("dp_lab") if dp_mode != "udp"
              else None, poll=poll)
    try:
        if dp_mode == "dpdk" and poll == "busy":
            with pytest.raises(AssertionError, match="busy polling is a kernel socket feature"):
                env.daemon.start()
            assert env.daemon.proc is not None and env.daemon.proc.returncode == 2
            return
        env.daemon.start()
        a = env.client(1)
        assert isinstance(a.login(), c.LoginAccepted)
        for k in range(5):
            a.send_app([new_order(k + 1, price=100 + k)])
            a.wait_for(lambda m, k=k: isinstance(m, c.Accepted) and m.cl_ord_id == k + 1)
        assert env.daemon.stats()["poll"] == poll
        assert f"poll={poll}" in env.daemon.run_log()
    finally:
        env.close()


def test_one_order_sweeping_thousands_is_answered_in_full(dp_env: Env) -> None:
    """12,000 fills from one engine call: more answers than a batch's transmit slots and journal
    buffer start with; everything is journaled and delivered in sequence."""
    maker, taker = logged_in(dp_env, 2), logged_in(dp_env, 3)
    n = 6000
    for k in range(0, n, 20):
        maker.send_app([new_order(k + i + 1, c.Side.SELL, 100 + (k + i) % 500, 1)
                        for i in range(20)])
        if k % 2000 == 1980:
            maker.wait_count(lambda m: isinstance(m, c.Accepted), k + 20, timeout=10)
    maker.wait_count(lambda m: isinstance(m, c.Accepted), n, timeout=10)
    taker.send_app([new_order(1, c.Side.BUY, 1000, n, tif=c.Tif.IOC)])
    fills = taker.wait_count(lambda m: isinstance(m, c.Fill), n, timeout=20)
    assert sum(f.qty for f in fills) == n and fills[-1].leaves == 0
    assert [f.price for f in fills] == sorted(f.price for f in fills)  # best price first
    maker.wait_count(lambda m: isinstance(m, c.Fill), n, timeout=20)
    for cl in (maker, taker):
        seqs = [s for s, _ in cl.app_messages()]
        assert seqs == list(range(1, len(seqs) + 1))
    assert dp_env.daemon.ctl({"cmd": "book", "symbol": 1})["asks"] == []


def test_replayed_login_refused_after_many_logins(dp_env: Env) -> None:
    """The gateway remembers a bounded number of nonces per session; a Login captured before the
    oldest remembered one is still refused."""
    cl = dp_env.client(2)
    first = cl.login_msg()
    cl.send_session([first])
    assert isinstance(cl.wait_for(lambda m: isinstance(m, c.LoginAccepted | c.LoginRejected)),
                      c.LoginAccepted)
    for _ in range(70):
        assert isinstance(cl.login(), c.LoginAccepted)
    cl.send_session([first])
    r = cl.wait_for(lambda m: isinstance(m, c.LoginAccepted | c.LoginRejected))
    assert isinstance(r, c.LoginRejected) and r.reason == LR.REPLAYED


def test_not_logged_in_answers_are_bounded(dp_env: Env) -> None:
    """Anyone can send datagrams naming a session: at most one answer (and journal record) per
    100 ms for a session that is not logged in; the rest are dropped and counted."""
    a = dp_env.client(4)
    t0 = time.monotonic()
    for k in range(10):
        a.send_app([new_order(k + 1)], seq=1)
    sent_in = time.monotonic() - t0
    a.recv(0.3)
    rej = [m for m in a.messages() if isinstance(m, c.Rejected)]
    assert rej and all(r.reason == RR.NOT_LOGGED_IN for r in rej)
    assert len(rej) <= 1 + int(sent_in / 0.1) + 1  # one per 100 ms (+1 for a batch boundary)
    assert len(rej) < 10
    assert dp_env.daemon.q0()["not_logged_in"] == 10
    time.sleep(0.15)
    a.send_app([new_order(9)], seq=1)
    a.wait_count(lambda m: isinstance(m, c.Rejected), 2)
