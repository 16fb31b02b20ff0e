"""gRPC OrderEntry without a dataplane: status codes for a missing or bad token, a role below
trader, a field out of range (named in the message) and the dataplane being down. (Order flow
through a real xdpexd: test_control_e2e.py.)"""

from __future__ import annotations

import grpc
import pytest
from control_support import cleanup_dir, short_tmpdir
from xdpex.config import Settings
from xdpex.grpc_api import serve
from xdpex.pb import orderentry_pb2 as pb
from xdpex.pb import orderentry_pb2_grpc as pbg
from xdpex.service import ControlPlane

OP = "xt_test_operator"


@pytest.fixture
def stub():
    d = short_tmpdir("grpc")
    s = Settings(
        state_dir=d / "state",
        database_url=f"sqlite:///{d / 'x.db'}",
        grpc_port=0,
        control_socket=d / "none.sock",
        order_socket=d / "none-e.sock",
        journal_dir=d / "j",
        operator_token=OP,
        audit_order_entry=True,
    )
    cp = ControlPlane(s)
    cp.start()
    server = serve(cp, "127.0.0.1", 0)
    ch = grpc.insecure_channel(f"127.0.0.1:{cp.grpc_port}")
    try:
        yield cp, pbg.OrderEntryStub(ch)
    finally:
        ch.close()
        server.stop(0).wait()
        cp.close()
        cleanup_dir(d)


def md(tok: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {tok}")]


def order(**kw) -> pb.NewOrder:
    base = dict(symbol_id=1, side=pb.BUY, type=pb.LIMIT, tif=pb.GTC, qty=10, price=100)
    base.update(kw)
    return pb.NewOrder(**base)


def code_of(fn, *a, **kw) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as ei:
        fn(*a, **kw)
    return ei.value.code(), ei.value.details()


def test_grpc_status_codes(stub):
    cp, s = stub
    req = pb.SubmitOrderRequest(order=order())
    assert code_of(s.SubmitOrder, req)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert (
        code_of(s.SubmitOrder, req, metadata=md("xt_bogus"))[0] == grpc.StatusCode.UNAUTHENTICATED
    )
    viewer = cp.create_token(cp.authenticate(OP), "v", "viewer")["token"]
    assert code_of(s.SubmitOrder, req, metadata=md(viewer))[0] == grpc.StatusCode.PERMISSION_DENIED
    batch = pb.SubmitOrdersRequest(orders=[order(), order(qty=0)])
    code, msg = code_of(s.SubmitOrders, batch, metadata=md(OP))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("orders[1].qty:")
    code, msg = code_of(s.SubmitOrder, pb.SubmitOrderRequest(order=order(side=0)), metadata=md(OP))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("order.side:")
    code, msg = code_of(
        s.SubmitOrder, pb.SubmitOrderRequest(order=order(type=pb.LIMIT, price=0)), metadata=md(OP)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "price" in msg
    code, msg = code_of(s.SubmitOrder, req, metadata=md(OP))
    assert code == grpc.StatusCode.UNAVAILABLE and "none.sock" in msg
    code, _ = code_of(s.CancelOrder, pb.CancelOrderRequest(order_id=0), metadata=md(OP))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(s.CancelOrder, pb.CancelOrderRequest(order_id=77), metadata=md(OP))
    assert code == grpc.StatusCode.NOT_FOUND
    it = s.StreamExecutions(pb.StreamExecutionsRequest(), metadata=md(OP))
    code, _ = code_of(next, it)
    assert code == grpc.StatusCode.UNAVAILABLE
    actions = [a["action"] for a in cp.list_audit(cp.authenticate(OP), 50)]
    assert actions.count("gRPC SubmitOrder") >= 5 and "gRPC SubmitOrders" in actions
