"""xdpex._fastwire (control/xdpex/ext/fastwire.c) against the Python code it replaces, and on a
real xdpexd.

- apply: random answer streams (Accepted, Rejected, Fill, Cancelled, refused Cancels, answers to
  other sessions' or given-up orders, duplicates) leave the same columns, window and wake-ups as
  the Python receiver;
- json_acks / pb_acks: byte for byte orjson.dumps(ack_dicts(e)), and the same message as the
  generated protobuf code, for random entries (statuses, reasons past the tables, fills);
- pb_orders: the orders protobuf decodes (random valid requests, unknown fields, last value
  wins), None for anything it leaves to protobuf (random bytes, refused orders), never a crash;
- json_orders: exactly what the Python path (orjson + wire_order) takes, None otherwise;
- pack_new: the codec's NewOrder bytes;
- the decoders under libFuzzer with ASan and UBSan for a bounded run (tests/fuzz);
- served: REST batch and gRPC SubmitOrders / StreamOrders through the extension answer one ack
  per order in order, with fills; refused orders and undecodable requests get the field named.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess

import grpc
import httpx
import orjson
import pytest
from control_support import Dataplane, cleanup_dir, short_tmpdir
from hypothesis import given, settings
from hypothesis import strategies as st
from xdpex import fastwire
from xdpex.config import REPO_ROOT
from xdpex.entrybatch import CHUNK, PENDING, Entry
from xdpex.grpc_api import _acks, _msg
from xdpex.orderentry import OrderEntrySession
from xdpex.orderentry_rx import _ANS
from xdpex.orders import ack_dicts
from xdpex.pb import orderentry_pb2 as pb
from xdpex.pb import orderentry_pb2_grpc as pbg
from xdpex_proto import codec as c

FW = fastwire.get()
TOKEN = "xt_test_operator"
MD = [("authorization", f"Bearer {TOKEN}")]


def test_extension_is_built_and_configured():
    assert FW is not None, "xdpex._fastwire did not load (see the warning logged by xdpex.fastwire)"


def _orders(rng: random.Random, n: int) -> list[tuple[int, int, int, int, int, int]]:
    return [
        (
            rng.choice((1, 2)),
            rng.choice((1, 2, 3)),
            rng.choice((1, 2, 3, 4)),
            rng.randint(1, 2**32 - 1),
            rng.randint(-(2**63), 2**63 - 1),
            rng.randint(1, 2**32 - 1),
        )
        for _ in range(n)
    ]


def _answers(rng: random.Random, e: Entry, n_msgs: int) -> bytes:
    out = []
    for _ in range(n_msgs):
        i = rng.randrange(e.n + 3)  # past the end: not this entry's order
        cl = e.cl_ord_id(i) if rng.random() > 0.05 else rng.randrange(2**64)
        k = rng.random()
        if k < 0.35:
            m: c.Message = c.Accepted(
                side=1, symbol_id=1, cl_ord_id=cl, order_id=rng.randrange(1, 2**64),
                qty=rng.randrange(2**32),
            )  # fmt: skip
        elif k < 0.5:
            m = c.Rejected(
                ref_type=rng.choice((int(c.MsgType.NEW_ORDER), int(c.MsgType.CANCEL))),
                reason=rng.choice((1, 4, 16, 300, 65535)),
                cl_ord_id=cl,
            )
        elif k < 0.85:
            m = c.Fill(
                cl_ord_id=cl, exec_id=rng.randrange(2**64), price=rng.randint(-(2**63), 2**63 - 1),
                qty=rng.randrange(2**32), leaves=rng.choice((0, rng.randrange(2**32))),
                liquidity=rng.choice((1, 2)),
            )  # fmt: skip
        else:
            m = c.Cancelled(cl_ord_id=cl, reason=rng.choice((1, 2, 3, 200)), qty=5)
        out.append(m.encode())
    return b"".join(out)


def _session() -> OrderEntrySession:
    s = OrderEntrySession("/nonexistent-entry", "/nonexistent-local", 7, b"k" * 32)
    s.logged_in = True
    return s


def _columns(e: Entry) -> tuple:
    return (e.status, e.order_id, e.reason, e.leaves, e.filled, e.fills, e.remaining)


@pytest.mark.parametrize("seed", range(40))
def test_apply_matches_the_python_receiver(seed):
    rng = random.Random(seed)
    n = rng.choice((1, 5, CHUNK - 1, CHUNK + 7, 2500))
    orders = _orders(rng, n)
    first = rng.randrange(1, 2**40)
    sessions, entries, dones = [], [], []
    for _ in range(2):
        s = _session()
        e = Entry(7, orders, first, callback=lambda: None)
        for ch in e.chunks:
            s._chunks[ch] = e
        s._inflight = n
        sessions.append(s)
        entries.append(e)
        dones.append([])
    data = _answers(rng, entries[0], rng.randrange(1, 3 * n + 2))
    sessions[0]._apply_msgs(list(_ANS.iter_unpack(data)), dones[0])  # Python
    sessions[1]._apply(data, dones[1])  # C, with Python for what it leaves
    assert _columns(entries[1]) == _columns(entries[0])
    assert sessions[1]._inflight == sessions[0]._inflight
    assert sessions[1].logged_in == sessions[0].logged_in
    assert len(dones[1]) == len(dones[0])
    assert sessions[1].expected_out == 1 + len(data) // c.MSG_SIZE


def _random_entry(rng: random.Random) -> Entry:
    n = rng.choice((1, 2, 17, CHUNK + 3))
    e = Entry(rng.randrange(1, 2**32), _orders(rng, n), rng.randrange(1, 2**40), lambda: None)
    statuses = [PENDING, "new", "rejected", "filled", "partially_filled", "cancelled", "unknown"]
    for i in range(n):
        e.status[i] = rng.choice(statuses)
        e.order_id[i] = rng.choice((0, rng.randrange(1, 2**64)))
        e.reason[i] = rng.choice((0, 1, 2, 4, 16, 19, 255, 256, 65535))
        e.leaves[i] = rng.randrange(2**32)
        e.filled[i] = rng.choice((0, rng.randrange(2**40)))
        if rng.random() < 0.3:
            e.fills = e.fills or {}
            e.fills[i] = [
                (rng.randrange(2**64), rng.randint(-(2**63), 2**63 - 1), rng.randrange(2**32),
                 rng.choice((0, 1, 2)))
                for _ in range(rng.randrange(1, 4))
            ]  # fmt: skip
    return e


@pytest.mark.parametrize("seed", range(60))
def test_answers_encode_as_the_python_code_does(seed):
    assert FW is not None
    e = _random_entry(random.Random(seed))
    assert FW.json_acks(e, False) == orjson.dumps(ack_dicts(e))
    assert FW.json_acks(e, True) == orjson.dumps(ack_dicts(e)[0])
    want = _acks(e, pb.SubmitOrdersResponse())
    assert pb.SubmitOrdersResponse.FromString(FW.pb_acks(e, 1)) == want
    assert FW.pb_acks(e, 1) == want.SerializeToString()
    stream = pb.OrderStreamResponse.FromString(FW.pb_acks(e, 2))
    assert list(stream.acks) == list(want.acks)


def _python_orders(data: bytes, field: int) -> tuple[int, list] | None:
    """What the generated code makes of a request: (ref, wire orders), None when it cannot
    decode it or refuses an order."""
    cls = pb.SubmitOrdersRequest if field == 1 else pb.OrderStreamRequest
    try:
        req = cls.FromString(data)
        return (req.ref if field == 2 else 0), [_msg(o, i) for i, o in enumerate(req.orders)]
    except Exception:  # noqa: BLE001 - DecodeError or InvalidArgument: refused
        return None


new_orders = st.builds(
    pb.NewOrder,
    symbol_id=st.integers(0, 2**32 - 1),
    side=st.integers(0, 3),
    type=st.integers(0, 4),
    tif=st.integers(0, 5),
    qty=st.integers(0, 2**32 - 1),
    price=st.integers(-(2**63), 2**63 - 1),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(new_orders, max_size=30), st.integers(0, 2**64 - 1), st.binary(max_size=12))
def test_pb_orders_decode_what_protobuf_decodes(orders, ref, junk):
    assert FW is not None
    for field, data in (
        (1, pb.SubmitOrdersRequest(orders=orders).SerializeToString()),
        (2, pb.OrderStreamRequest(ref=ref, orders=orders).SerializeToString()),
    ):
        got = FW.pb_orders(data, field)
        want = _python_orders(data, field)
        if got is None:  # left to protobuf: only when protobuf refuses it too
            assert want is None
        else:
            assert got == want
        # an unknown field appended (varint 99) and a repeated scalar: still protobuf's reading
        extra = data + b"\x98\x06\x01"
        assert FW.pb_orders(extra, field) == _python_orders(extra, field) or (
            FW.pb_orders(extra, field) is None
        )
        noisy = data + junk
        got2 = FW.pb_orders(noisy, field)
        if got2 is not None:
            assert got2 == _python_orders(noisy, field)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.sampled_from((1, 2)))
def test_pb_orders_on_random_bytes_agrees_or_defers(data, field):
    assert FW is not None
    got = FW.pb_orders(data, field)
    if got is not None:
        assert got == _python_orders(data, field)


def test_pack_new_is_the_codec_layout():
    assert FW is not None
    rng = random.Random(5)
    orders = _orders(rng, 50)
    packed = FW.pack_new(orders, 3, 40, 1 << 20, 123456789)
    want = b"".join(
        c.NewOrder(side=s, ord_type=t, tif=f, symbol_id=sym, cl_ord_id=(1 << 20) + j, price=px,
                   qty=q, client_ts=123456789).encode()
        for j, (s, t, f, sym, px, q) in enumerate(orders[3:40], 3)
    )  # fmt: skip
    assert packed == want
    with pytest.raises(OverflowError):
        FW.pack_new([(1, 1, 1, 2**32, 1, 1)], 0, 1, 0, 0)
    with pytest.raises(TypeError):
        FW.pack_new([(1, 1, 1)], 0, 1, 0, 0)
    with pytest.raises(IndexError):
        FW.pack_new(orders, 0, 51, 0, 0)


# -- served ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served():
    d = short_tmpdir("fastwire")
    dp = Dataplane(d).start()
    cp = dp.control_plane(TOKEN, env={"XDPEX_DATAPLANE_TIMEOUT_S": "5", "XDPEX_FASTWIRE": "1"})
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()
        dp.stop()
        cleanup_dir(d)


def _pairs(n: int) -> list[pb.NewOrder]:
    """Sells then buys at one price: every second order trades with the one before."""
    return [
        pb.NewOrder(symbol_id=2, side=pb.SELL if i % 2 == 0 else pb.BUY, type=pb.LIMIT,
                    tif=pb.GTC, qty=3, price=950)
        for i in range(n)
    ]  # fmt: skip


def _check_acks(acks: list, n: int) -> None:
    assert len(acks) == n
    cls = [a.cl_ord_id for a in acks]
    assert cls == sorted(cls) and len(set(cls)) == n  # one answer per order, in order
    for i, a in enumerate(acks):
        if i % 2:  # the buy took the sell before it
            assert a.status == "filled" and a.filled == 3 and a.leaves == 0
            assert len(a.fills) == 1 and a.fills[0].qty == 3 and a.fills[0].price == 950
            assert a.fills[0].liquidity == 2
        assert a.order_id and a.symbol_id == 2


def test_served_grpc_batch_and_stream_through_the_extension(served):
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as ch:
        stub = pbg.OrderEntryStub(ch)
        r = stub.SubmitOrders(pb.SubmitOrdersRequest(orders=_pairs(1200)), metadata=MD, timeout=30)
        _check_acks(list(r.acks), 1200)
        reqs = [pb.OrderStreamRequest(ref=50 + k, orders=_pairs(300)) for k in range(6)]
        bad = pb.OrderStreamRequest(ref=99, orders=_pairs(4))
        bad.orders[3].qty = 0
        reqs.insert(3, bad)
        out = list(stub.StreamOrders(iter(reqs), metadata=MD, timeout=60))
        assert [x.ref for x in out] == [q.ref for q in reqs]
        for req, resp in zip(reqs, out, strict=True):
            if req.ref == 99:
                assert resp.error == "orders[3].qty: must be at least 1" and not resp.acks
            else:
                assert not resp.error and resp.credit > 0
                _check_acks(list(resp.acks), 300)
        # a refused order is named by the generated path
        req = pb.SubmitOrdersRequest(orders=_pairs(3))
        req.orders[2].side = 7
        with pytest.raises(grpc.RpcError) as ei:
            stub.SubmitOrders(req, metadata=MD, timeout=10)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "orders[2].side" in ei.value.details()
        # bytes that are no SubmitOrdersRequest
        raw = ch.unary_unary("/xdpex.v1.OrderEntry/SubmitOrders")
        with pytest.raises(grpc.RpcError) as ei:
            raw(b"\x0a\xff\xff\xff\x0f", metadata=MD, timeout=10)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "SubmitOrdersRequest" in ei.value.details()


def test_served_rest_through_the_extension(served):
    orders = [
        {"symbol_id": 3, "side": "sell" if i % 2 == 0 else "buy", "qty": 2, "price": 960}
        for i in range(800)
    ]
    r = httpx.post(
        f"{served.url}/api/v1/orders/batch",
        content=orjson.dumps({"orders": orders}),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    acks = r.json()
    assert len(acks) == 800
    assert [a["cl_ord_id"] for a in acks] == sorted(a["cl_ord_id"] for a in acks)
    for i, a in enumerate(acks):
        assert a["side"] == orders[i]["side"] and a["price"] == 960 and a["type"] == "limit"
        if i % 2:
            assert a["status"] == "filled"
            assert a["fills"] == [
                {"exec_id": a["fills"][0]["exec_id"], "price": 960, "qty": 2, "liquidity": 2}
            ]
    one = httpx.post(
        f"{served.url}/api/v1/orders",
        json={"symbol_id": 3, "side": "buy", "qty": 1, "price": 2_000_000},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert one.status_code == 200, one.text  # a reject is answered 200
    assert one.json()["status"] == "rejected" and one.json()["field"] == "price"


def test_struct_of_the_receiver_matches_the_extension_offsets():
    """The answer struct the Python receiver uses and the C offsets read the same fields."""
    m = c.Fill(cl_ord_id=11, exec_id=22, price=-33, qty=44, leaves=55, liquidity=2).encode()
    v = _ANS.unpack(m)
    assert (v[5], v[6], v[7], v[8], v[9], v[2]) == (11, 22, -33, 44, 55, 2)
    assert struct.unpack_from("<Q", m, 8)[0] == 11


def test_order_entry_is_left_to_the_journal_changes_are_audited(served):
    """By default (audit_order_entry off) order entry leaves no audit record, REST or gRPC; a
    configuration change does, with its result."""
    h = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(
        f"{served.url}/api/v1/orders",
        json={"symbol_id": 4, "side": "buy", "qty": 1, "price": 900},
        headers=h,
    )
    assert r.status_code == 201, r.text
    lax = httpx.post(  # a lax body: the FastAPI route's answer, not audited either
        f"{served.url}/api/v1/orders",
        json={"symbol_id": "4", "side": "buy", "qty": 1, "price": 900},
        headers=h,
    )
    assert lax.status_code == 201, lax.text
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as ch:
        req = pb.SubmitOrdersRequest(orders=_pairs(4))
        assert len(pbg.OrderEntryStub(ch).SubmitOrders(req, metadata=MD, timeout=10).acks) == 4
    s = httpx.post(
        f"{served.url}/api/v1/sessions", json={"name": "audited", "cancel_on_disconnect": False},
        headers=h,
    )  # fmt: skip
    assert s.status_code in (200, 201), s.text
    audit = httpx.get(f"{served.url}/api/v1/audit?limit=1000", headers=h).json()
    actions = [a["action"] for a in audit]
    assert "POST /api/v1/sessions" in actions
    assert not [a for a in actions if "orders" in a.lower() or "Submit" in a], actions


json_values = st.one_of(
    st.integers(-(2**64), 2**64),
    st.sampled_from(["buy", "sell", "limit", "market", "post_only", "gtc", "ioc", "day", "fok",
                     "BUY", "", "b\\u0075y"]),
    st.booleans(), st.none(), st.floats(allow_nan=False, allow_infinity=False),
)  # fmt: skip
json_orders = st.dictionaries(
    st.sampled_from(["symbol_id", "side", "type", "tif", "qty", "price", "extra"]),
    json_values,
    max_size=7,
)
canonical_orders = st.fixed_dictionaries(
    {
        "symbol_id": st.integers(1, 2**32 - 1),
        "side": st.sampled_from(["buy", "sell"]),
        "qty": st.integers(1, 2**32 - 1),
        "price": st.integers(1, 2**63 - 1),
    },
    optional={
        "type": st.sampled_from(["limit", "post_only"]),
        "tif": st.sampled_from(["gtc", "ioc", "day", "fok"]),
    },
)


def _spaced(raw: bytes, rng: random.Random) -> bytes:
    """The same JSON with JSON whitespace around its structural characters."""
    out = bytearray()
    in_str = False
    for b in raw:
        ch = bytes([b])
        if ch == b'"':
            in_str = not in_str
        out += ch
        if not in_str and ch in b"{}[],:":
            out += rng.choice([b"", b" ", b"\n\t", b"\r\n  "])
    return bytes(out)


@settings(max_examples=400, deadline=None)
@given(st.lists(json_orders, max_size=4), st.booleans(), st.integers(0, 2**31))
def test_json_orders_take_only_what_the_python_path_takes(orders, batch, seed):
    from xdpex.api.fastentry import MAX_BATCH, OrderEntryFastPath

    assert FW is not None
    doc = {"orders": orders} if batch else (orders[0] if orders else {})
    raw = json.dumps(doc, separators=(",", ":")).encode()
    esc = raw.replace(b'"buy"', b'"b\\u0075y"')  # an escape: the general path's
    bodies = (raw, _spaced(raw, random.Random(seed)), raw + b"x", raw[:-1], b" " + raw, esc)
    for body in bodies:
        got = FW.json_orders(body, batch, MAX_BATCH)
        if got is not None:
            assert got == OrderEntryFastPath._orders(body, batch)


@settings(max_examples=200, deadline=None)
@given(st.lists(canonical_orders, min_size=1, max_size=20), st.integers(0, 2**31))
def test_json_orders_decode_the_canonical_form(orders, seed):
    from xdpex.api.fastentry import OrderEntryFastPath

    assert FW is not None
    raw = orjson.dumps({"orders": orders})
    for body in (raw, _spaced(raw, random.Random(seed))):
        got = FW.json_orders(body, True, 1000)
        assert got is not None and got == OrderEntryFastPath._orders(body, True)
    assert FW.json_orders(orjson.dumps(orders[0]), False, 1000) == OrderEntryFastPath._orders(
        orjson.dumps(orders[0]), False
    )
    assert FW.json_orders(raw, True, len(orders) - 1 or 1) is None or len(orders) == 1
    dup = orjson.dumps(orders[0])[:-1] + b',"qty":1}'  # qty twice: the general path's
    assert FW.json_orders(dup, False, 1000) is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_json_orders_on_random_bytes_agree_or_defer(data, batch):
    from xdpex.api.fastentry import OrderEntryFastPath

    assert FW is not None
    got = FW.json_orders(data, batch, 1000)
    if got is not None:
        assert got == OrderEntryFastPath._orders(data, batch)


def test_decoders_under_libfuzzer(tmp_path):
    """The C decoders under libFuzzer with ASan and UBSan (tests/fuzz/fastwire_fuzz.c, built by
    make build), seeded with real requests of each kind, for a bounded run: no memory error,
    no undefined behaviour, and what they decode encodes back to the same orders."""
    exe = REPO_ROOT / "build/control/fastwire_fuzz"
    assert exe.exists(), f"{exe} missing: make build makes it (control/build.mk)"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    reqs = _pairs(5)
    reqs[1].type = pb.MARKET
    reqs[1].price = 0
    seeds = [
        b"\x00" + pb.SubmitOrdersRequest(orders=reqs).SerializeToString(),
        b"\x01" + pb.OrderStreamRequest(ref=9, orders=reqs[:2]).SerializeToString(),
        b"\x02" + orjson.dumps({"orders": [
            {"symbol_id": 1, "side": "buy", "type": "market", "tif": "ioc", "qty": 5},
            {"symbol_id": 2, "side": "sell", "qty": 1, "price": 900, "tif": "day"}]}),
        b"\x03" + b'{ "symbol_id": 3, "side": "sell", "qty": 7, "price": 12 }',
    ]  # fmt: skip
    for i, s in enumerate(seeds):
        (corpus / f"seed{i}").write_bytes(s)
    out = subprocess.run(
        [str(exe), "-max_total_time=8", "-runs=3000000", "-max_len=2048", str(corpus)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done" in out.stderr
