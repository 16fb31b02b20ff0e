"""gRPC StreamOrders against a real xdpexd: batches answered in the order sent with one ack per
order; a refused batch answered with the field's error while the stream goes on; the window
holding a client that sends everything at once (every credit positive); one audit record for
the stream with its orders counted."""

from __future__ import annotations

import grpc
import httpx
from control_support import Dataplane, cleanup_dir, short_tmpdir
from xdpex.grpc_api import STREAM_WINDOW
from xdpex.pb import orderentry_pb2 as pb
from xdpex.pb import orderentry_pb2_grpc as pbg

TOKEN = "xt_test_operator"
MD = [("authorization", f"Bearer {TOKEN}")]


def _batch(ref: int, n: int, qty: int = 1) -> pb.OrderStreamRequest:
    orders = [
        pb.NewOrder(
            symbol_id=1 + i % 4,
            side=pb.BUY if i % 2 else pb.SELL,
            type=pb.LIMIT,
            tif=pb.GTC,
            qty=qty,
            price=1000 + i % 3,
        )
        for i in range(n)
    ]
    return pb.OrderStreamRequest(ref=ref, orders=orders)


def test_stream_orders_in_order_with_flow_control():
    d = short_tmpdir("gstream")
    dp = Dataplane(d).start()
    cp = dp.control_plane(
        TOKEN, env={"XDPEX_DATAPLANE_TIMEOUT_S": "10", "XDPEX_AUDIT_ORDER_ENTRY": "1"}
    )
    try:
        cp.start()
        reqs = [_batch(100 + k, 500) for k in range(20)]
        reqs[7] = _batch(107, 500, qty=0)  # refused whole: qty 0
        with grpc.insecure_channel(f"127.0.0.1:{cp.grpc_port}") as ch:
            stub = pbg.OrderEntryStub(ch)
            call = stub.StreamOrders(iter(reqs), metadata=MD, timeout=60)  # all at once
            window = dict(call.initial_metadata())["xdpex-window"]
            resps = list(call)
        assert int(window) == STREAM_WINDOW
        assert [r.ref for r in resps] == [100 + k for k in range(20)]
        assert resps[7].error.startswith("orders[0].qty") and not resps[7].acks
        good = [r for k, r in enumerate(resps) if k != 7]
        assert all(not r.error and len(r.acks) == 500 for r in good)
        ids = [a.order_id for r in good for a in r.acks]
        assert len(set(ids)) == 19 * 500 and 0 not in ids
        assert [a.symbol_id for a in good[0].acks] == [1 + i % 4 for i in range(500)]
        # never more than the window unanswered: with 500-order batches at most 4,000
        assert min(r.credit for r in resps) >= STREAM_WINDOW - 4000, [r.credit for r in resps]
        audit = httpx.get(
            f"{cp.url}/api/v1/audit?limit=50", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()
        recs = [a for a in audit if a["action"] == "gRPC StreamOrders"]
        assert [a["result"] for a in recs] == ["ok (9500 orders)"], recs
        # a viewer may not stream orders
        tok = cp.request("POST", "/api/v1/tokens", json={"name": "v", "role": "viewer"}).json()
        with grpc.insecure_channel(f"127.0.0.1:{cp.grpc_port}") as ch:
            stub = pbg.OrderEntryStub(ch)
            call = stub.StreamOrders(
                iter([_batch(1, 2)]), metadata=[("authorization", f"Bearer {tok['token']}")]
            )
            try:
                list(call)
                raise AssertionError("a viewer's stream was accepted")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        cp.stop()
        dp.stop()
        cleanup_dir(d)
