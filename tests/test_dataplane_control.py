"""xdpexd control socket (JSON lines over a unix stream socket): configuration applied live and
journaled (it survives a restart with the same state hash), halt/resume, operator logout,
end-of-day expiry, the allowlist, and errors that name the field or the command.
"""

from __future__ import annotations

import json
import socket

from dataplane_support import SECRET, Env, new_order
from xdpex_proto import codec as c


def test_apply_halt_resume_survive_restart(dp_env: Env) -> None:
    d = dp_env.daemon
    r = d.ctl({"cmd": "apply", "config": {
        "symbols": [{"id": 5, "tick": 2, "lot": 1, "band": [2, 1000], "max_qty": 50}],
        "sessions": [{"id": 9, "secret": SECRET.hex(), "stp": "cancel_newest"}]}})
    assert r == {"ok": True, "applied": {"symbols": 1, "sessions": 1, "allowlist": False,
                                         "rate": False}}
    s9 = dp_env.client(9)
    assert isinstance(s9.login(), c.LoginAccepted)
    s9.send_app([new_order(1, price=10, qty=5, symbol=5), new_order(2, price=10, qty=51, symbol=5)])
    got = s9.wait_count(lambda m: isinstance(m, c.Accepted | c.Rejected), 2)
    assert isinstance(got[0], c.Accepted) and got[1].reason == c.RejectReason.BAD_QUANTITY
    assert d.ctl({"cmd": "halt", "symbol": 5}) == {"ok": True, "found": 1}
    s9.send_app([new_order(3, price=12, qty=5, symbol=5)])
    rej = s9.wait_for(lambda m: isinstance(m, c.Rejected) and m.cl_ord_id == 3)
    assert rej.reason == c.RejectReason.HALTED
    assert d.ctl({"cmd": "book", "symbol": 5})["halted"] is True
    before = d.state_hash()
    d.kill9()
    d.start()
    assert d.state_hash() == before
    assert d.ctl({"cmd": "book", "symbol": 5})["halted"] is True
    assert d.ctl({"cmd": "resume", "symbol": 5})["ok"]
    s9.send_app([new_order(4, price=12, qty=5, symbol=5)])
    acc = s9.wait_for(lambda m: isinstance(m, c.Accepted) and m.cl_ord_id == 4)
    assert acc.symbol_id == 5
    assert d.ctl({"cmd": "book", "symbol": 5})["bids"] == [[12, 5, 1], [10, 5, 1]]


def test_operator_logout_and_expire_day(dp_env: Env) -> None:
    d = dp_env.daemon
    a = dp_env.client(1)  # cancel_on_disconnect
    b = dp_env.client(2)
    assert isinstance(a.login(), c.LoginAccepted) and isinstance(b.login(), c.LoginAccepted)
    a.send_app([new_order(1, price=50, tif=c.Tif.GTC)])
    b.send_app([new_order(2, price=51, tif=c.Tif.DAY), new_order(3, price=52, tif=c.Tif.GTC)])
    b.wait_count(lambda m: isinstance(m, c.Accepted), 2)
    assert d.ctl({"cmd": "logout", "session": 1}) == {"ok": True, "found": 1}
    lo = a.wait_for(lambda m: isinstance(m, c.Logout))
    assert lo.reason == c.LogoutReason.ADMIN
    assert d.ctl({"cmd": "logout", "session": 1}) == {"ok": False, "code": "not_logged_in",
                                                      "error": "session 1: not logged in"}
    assert d.ctl({"cmd": "expire_day"}) == {"ok": True, "found": 1}
    cx = b.wait_for(lambda m: isinstance(m, c.Cancelled))
    assert (cx.cl_ord_id, cx.reason) == (2, c.CancelReason.EXPIRED)
    assert d.ctl({"cmd": "book", "symbol": 1})["bids"] == [[52, 10, 1]]


def test_allowlist_drops_other_sources(dp_env: Env) -> None:
    d = dp_env.daemon
    assert d.ctl({"cmd": "apply", "config": {"allowlist": ["192.0.2.0/24"]}})["ok"]
    a = dp_env.client(1)
    a.send_session([a.login_msg()])
    assert a.recv(0.4) == []
    st = d.stats()
    if dp_env.mode == "udp":
        assert st["queues"][0]["not_allowed"] == 1
    else:
        assert st["xdp_counters"]["not_allowed_cnt"] == 1
    assert d.ctl({"cmd": "apply", "config": {"allowlist": []}})["ok"]
    assert isinstance(a.login(), c.LoginAccepted)


def test_errors_name_the_field_or_command(dp_env: Env) -> None:
    """Every refusal carries a machine-readable code (docs/dataplane.md, Refusals) beside a text
    naming the field or the command."""
    d = dp_env.daemon
    cases = [
        ({"cmd": "apply", "config": {"symbols": [{"id": 1, "tick": 3, "lot": 1,
                                                   "band": [3, 30]}]}},
         "symbols[0]: symbol 1 exists with other tick, lot, band or max_qty", "symbol_conflict"),
        ({"cmd": "apply", "config": {"symbols": [{"id": 7}]}},
         "symbols[0]: symbol 7 does not exist; tick, lot and band are required",
         "unknown_symbol"),
        ({"cmd": "apply", "config": {"symbols": [{"id": 17, "tick": 1, "lot": 1,
                                                   "band": [1, 9]}]}},
         "config.symbols[0].id: 17 is above engine.max_symbols 16", "id_over_limit"),
        ({"cmd": "apply", "config": {"symbols": [{"id": 7, "tick": 0, "lot": 1,
                                                   "band": [1, 9]}]}},
         "config.symbols[0].tick: must be an integer in 1..", "bad_tick"),
        ({"cmd": "apply", "config": {"symbols": [{"id": 7, "tick": 1, "lot": 0,
                                                   "band": [1, 9]}]}},
         "config.symbols[0].lot: must be an integer in 1..", "bad_lot"),
        ({"cmd": "apply", "config": {"symbols": [{"id": 7, "tick": 1, "lot": 1,
                                                   "band": [9, 1]}]}},
         "config.symbols[0].band: [9, 1]: need 0 < low <= high", "bad_band"),
        ({"cmd": "apply", "config": {"symbols": [{"id": 7, "tick": 4, "lot": 1,
                                                   "band": [4, 10]}]}},
         "config.symbols[0].band: bounds must be multiples of tick 4", "band_off_tick"),
        ({"cmd": "apply", "config": {"symbols": [{"id": 7, "tick": 1, "lot": 1, "band": [1, 9]},
                                                  {"id": 7, "tick": 1, "lot": 1,
                                                   "band": [1, 9]}]}},
         "config.symbols[1].id: 7 given twice", "duplicate_in_request"),
        ({"cmd": "apply", "config": {"sessions": [{"id": 30}]}},
         "sessions[0].secret: required to create session 30", "secret_required"),
        ({"cmd": "apply", "config": {"sessions": [{"id": 65, "secret": SECRET.hex()}]}},
         "config.sessions[0].id: 65 is above engine.max_sessions 64", "id_over_limit"),
        ({"cmd": "apply", "config": {"sessions": [{"id": 30, "secret": "abc"}]}},
         "config.sessions[0].secret: must be 16..64 bytes in hex", "bad_secret"),
        ({"cmd": "apply", "config": {"sessions": [{"id": 1, "stp": "sometimes"}]}},
         "config.sessions[0].stp: must be none, cancel_newest, cancel_oldest or cancel_both",
         "bad_stp"),
        ({"cmd": "apply", "config": {"heartbeat_ms": 5}}, "config.heartbeat_ms: unknown field",
         "invalid_field"),
        ({"cmd": "apply", "config": {"sessions": [{"id": 31, "secret": SECRET.hex(),
                                                    "queue": 3}]}},
         "config.sessions[0].queue: 3 is not served (--queues)", "queue_not_served"),
        ({"cmd": "apply", "config": {"allowlist": ["10.0.0.0/33"]}},
         "config.allowlist[0]: must be an IPv4 prefix", "invalid_field"),
        ({"cmd": "book", "symbol": 12}, "symbol 12: unknown", "unknown_symbol"),
        ({"cmd": "book"}, "symbol: required", "invalid_field"),
        ({"cmd": "halt", "symbol": 12}, "symbol 12: unknown", "unknown_symbol"),
        ({"cmd": "halt"}, "symbol: required", "invalid_field"),
        ({"cmd": "fly"}, "cmd: unknown command fly", "unknown_command"),
        ({"nocmd": 1}, "cmd: required", "bad_request"),
    ]
    before = d.state_hash()
    for req, want, code in cases:
        r = d.ctl(req)
        assert r["ok"] is False and r["error"].startswith(want), (req, r)
        assert r["code"] == code, (req, r)
    assert d.state_hash() == before  # nothing refused changed anything
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.ctl_path))
        s.sendall(b'not json\n{"cmd":"hash"}\n')
        buf = b""
        while buf.count(b"\n") < 2:
            buf += s.recv(4096)
    first, second = (json.loads(x) for x in buf.splitlines())
    assert first["ok"] is False and first["error"].startswith("request: not JSON")
    assert first["code"] == "bad_request"
    assert second["ok"] is True and second["state_hash"].startswith("0x")


def test_stats_and_journal_report(dp_env: Env) -> None:
    d = dp_env.daemon
    a = dp_env.client(1)
    assert isinstance(a.login(), c.LoginAccepted)
    a.send_app([new_order(1)])
    a.wait_for(lambda m: isinstance(m, c.Accepted))
    st = d.stats()
    assert st["mode"] == dp_env.mode and st["durability"] == "none" and st["poll"] == "sleep"
    if dp_env.mode == "afxdp":
        assert st["attach_mode"] in ("native", "generic") and st["bind_mode"] == "copy"
        assert {"rx_dropped", "rx_ring_full", "rx_fill_ring_empty_descs"} <= set(
            st["queues"][0]["xdp"])
        assert st["xdp_counters"]["redirect_cnt"] >= 2
    q = st["queues"][0]
    assert (q["rx_msgs"], q["applied"], q["logins"], q["tx_msgs"]) == (2, 1, 1, 2)
    assert q["journal_writes"] >= 2 and st["engine"]["resting_orders"] == 1
    j = d.ctl({"cmd": "journal"})
    assert j["queues"][0]["segments"] == ["00000001.xjl"]
    assert j["queues"][0]["last_seq"] == q["journal_seq"] == 3  # login, inbound, outbound


def test_gateway_latency_histograms_per_stage(dp_env: Env) -> None:
    """Every datagram answered is one observation in each stage's histogram (receipt to the end
    of its answers' transmit, and the engine, journal and transmit shares), exported to
    Prometheus as xdpex_gateway_latency_seconds{queue,stage}."""
    from xdpex.metrics import _DataplaneCollector

    a = dp_env.client(1)
    assert isinstance(a.login(), c.LoginAccepted)
    for k in range(10):
        a.send_app([new_order(k + 1, price=100 + k)])
    a.wait_count(lambda m: isinstance(m, c.Accepted), 10)
    st = dp_env.daemon.stats()
    lat = st["queues"][0]["latency"]
    assert len(lat["bounds_ns"]) == 20 and lat["bounds_ns"] == sorted(lat["bounds_ns"])
    stages = ("total", "engine", "journal", "transmit")
    for stage in stages:
        h = lat[stage]
        assert len(h["buckets"]) == 21 and sum(h["buckets"]) == h["count"], stage
    assert lat["total"]["count"] >= 11  # the login and ten orders, at least
    assert {lat[s]["count"] for s in stages} == {lat["total"]["count"]}
    parts = sum(lat[s]["sum_ns"] for s in ("engine", "journal", "transmit"))
    assert 0 < parts <= lat["total"]["sum_ns"]
    fam = _DataplaneCollector._latency(st)
    assert fam.name == "xdpex_gateway_latency_seconds"
    samples = {(s.name, s.labels.get("stage"), s.labels.get("le")): s.value for s in fam.samples}
    assert samples[("xdpex_gateway_latency_seconds_bucket", "total", "+Inf")] == \
        lat["total"]["count"]
    assert samples[("xdpex_gateway_latency_seconds_count", "journal", None)] == \
        lat["journal"]["count"]
    le_1ms = [v for (n, stg, le), v in samples.items() if stg == "total" and le == "0.001"]
    assert le_1ms and le_1ms[0] <= lat["total"]["count"]
