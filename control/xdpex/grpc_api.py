"""gRPC OrderEntry service (xdpex/proto/orderentry.proto) over the same service layer as REST.

SubmitOrder / SubmitOrders / StreamOrders / CancelOrder call `ControlPlane.enter` /
`cancel_order`, so they use the control plane's own session on the dataplane's order-entry
socket, exactly like the REST routes. StreamExecutions tails the journal (every session's fills,
or filtered by symbol and session) from a journal sequence or from now on. The token comes from
the `authorization` metadata (`Bearer <token>`); service errors map to status codes with
xdpex.errors.grpc_code_of.
Cancels leave an audit record committed to the database before they are applied
(xdpex.auditlog); submissions are recorded by the journal, and with `audit_order_entry` set
each call also leaves one record (who, how many orders, result) in the order-entry spool
(xdpex.auditspool) before its orders are entered. With xdpex.fastwire, SubmitOrders and
StreamOrders read and write serialized messages that the C extension decodes and encodes.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from xdpex_proto import codec as c
from xdpex_proto.journal import REC_OUTBOUND, JournalReader, queue_dirs

from . import fastwire as _fw
from .auth import AuthError, PermissionDenied, Principal
from .dropcopy import add_to_server as add_dropcopy
from .entrybatch import Entry, OrderResult, WireOrder
from .errors import InvalidArgument, ServiceError, grpc_code_of
from .pb import orderentry_pb2 as pb
from .pb import orderentry_pb2_grpc as pbg
from .service import (
    ORD_TYPES,
    REJECT_FIELD,
    TIFS,
    ControlPlane,
    cancel_name,
    reject_name,
)

log = logging.getLogger("xdpex.grpc")

SIDE = {pb.BUY: "buy", pb.SELL: "sell"}
TYPE = {
    pb.ORDER_TYPE_UNSPECIFIED: "limit",
    pb.LIMIT: "limit",
    pb.MARKET: "market",
    pb.POST_ONLY: "post_only",
}
TIF = {pb.TIF_UNSPECIFIED: "gtc", pb.DAY: "day", pb.GTC: "gtc", pb.IOC: "ioc", pb.FOK: "fok"}
FILL_T = 0x85
STREAM_WINDOW = 4096  # orders of one StreamOrders call unanswered at most (flow control)


SIDE_V = {pb.BUY: int(c.Side.BUY), pb.SELL: int(c.Side.SELL)}
TYPE_V = {k: ORD_TYPES[v] for k, v in TYPE.items()}
TIF_V = {k: TIFS[v] for k, v in TIF.items()}
MARKET = int(c.OrdType.MARKET)


def _msg(o: Any, where: str | int) -> WireOrder:
    """A validated wire NewOrder from a proto NewOrder (proto types bound the integer ranges);
    `where` is the field prefix for errors ("order.") or the index in a batch."""
    side, typ, tif = SIDE_V.get(o.side), TYPE_V.get(o.type), TIF_V.get(o.tif)
    if (
        side is None
        or typ is None
        or tif is None
        or not o.qty
        or not o.symbol_id
        or (typ != MARKET and o.price <= 0)
    ):
        w = f"orders[{where}]." if isinstance(where, int) else where
        if side is None:
            raise InvalidArgument(f"{w}side", f"{o.side} is not BUY (1) or SELL (2)")
        if typ is None:
            raise InvalidArgument(f"{w}type", f"{o.type} is not a known order type")
        if tif is None:
            raise InvalidArgument(f"{w}tif", f"{o.tif} is not a known time in force")
        if o.qty == 0:
            raise InvalidArgument(f"{w}qty", "must be at least 1")
        if o.symbol_id == 0:
            raise InvalidArgument(f"{w}symbol_id", "must be at least 1")
        raise InvalidArgument(f"{w}price", "must be a positive number of ticks for this type")
    return side, typ, tif, o.symbol_id, o.price, o.qty


def _fill_ack(a: Any, r: OrderResult) -> None:
    """Set the fields of a proto OrderAck from a result (field by field: the fastest way)."""
    a.order_id = r.order_id
    a.session_id = r.session_id
    a.cl_ord_id = r.cl_ord_id
    a.symbol_id = r.symbol_id
    a.status = r.status
    a.filled = r.filled
    a.leaves = r.leaves
    if r.status == "rejected":
        a.reason = reject_name(r.reason)
        a.field = REJECT_FIELD.get(r.reason, "")  # type: ignore[call-overload]
    elif r.status == "cancelled":
        a.reason = cancel_name(r.reason)
    if r.fills:
        add = a.fills.add
        for e, px, q, liq in r.fills:
            add(exec_id=e, price=px, qty=q, liquidity=liq)


def _ack(r: OrderResult) -> Any:
    a = pb.OrderAck()
    _fill_ack(a, r)
    return a


def _acks(e: Entry, resp: Any) -> Any:
    """The acknowledgements of an entry into a SubmitOrdersResponse, from its columns."""
    add = resp.acks.add
    sid, st, oid, rsn, filled, leaves, fills = (
        e.session_id,
        e.status,
        e.order_id,
        e.reason,
        e.filled,
        e.leaves,
        e.fills or {},
    )
    for i, o in enumerate(e.orders):
        status = st[i]
        a = add()
        a.order_id = oid[i]
        a.session_id = sid
        a.cl_ord_id = e.cl_ord_id(i)
        a.symbol_id = o[3]
        a.status = status
        if filled[i]:  # proto3 zero is the default: no call for it
            a.filled = filled[i]
        if leaves[i]:
            a.leaves = leaves[i]
        if status == "rejected":
            a.reason = reject_name(rsn[i])
            a.field = REJECT_FIELD.get(rsn[i], "")  # type: ignore[call-overload]
        elif status == "cancelled":
            a.reason = cancel_name(rsn[i])
        fl = fills.get(i)
        if fl:
            fadd = a.fills.add
            for x, px, q, liq in fl:
                fadd(exec_id=x, price=px, qty=q, liquidity=liq)
    return resp


class OrderEntryServicer(pbg.OrderEntryServicer):
    def __init__(self, cp: ControlPlane):
        self.cp = cp

    def _who(self, context: grpc.ServicerContext) -> Principal:
        md = dict(context.invocation_metadata())
        auth = str(md.get("authorization", ""))
        tok = auth[7:] if auth.lower().startswith("bearer ") else None
        who = self.cp.authenticate(tok)
        self.cp.check_rate(who)  # per-token request rate (xdpex.ratelimit)
        return who

    def _fail(self, context: grpc.ServicerContext, e: Exception) -> None:
        code = getattr(grpc.StatusCode, grpc_code_of(e))
        if code == grpc.StatusCode.INTERNAL:
            log.exception("internal error")
        context.abort(code, str(e))

    def _call(self, context: grpc.ServicerContext, action: str, n: int, fn, spool: bool = True):  # type: ignore[no-untyped-def]
        """Authenticate, record the call in the audit log before anything is applied (order
        calls in the spool, see xdpex.auditspool; others committed first, xdpex.auditlog), run
        `fn`, then record its result."""
        who, rec = None, 0
        act, detail = f"gRPC {action}", {"orders": n}
        log_ = self.cp.auditlog
        if spool and not self.cp.settings.audit_order_entry:  # the journal records orders
            try:
                return fn(self._who(context))
            except (ServiceError, AuthError, PermissionDenied) as e:
                self._fail(context, e)
            except Exception as e:  # noqa: BLE001 - reported as INTERNAL, never a crash
                self._fail(context, e)
            return None
        try:
            who = self._who(context)
            if spool:
                rec = log_.spool_begin(who, act, "", json.dumps(detail))
            else:
                rec = self.cp.audit_begin(who, act, "", detail)
            out = fn(who)
            if spool:
                log_.spool_finish(rec, "ok")
            else:
                log_.finish(rec, "ok")
            return out
        except (ServiceError, AuthError, PermissionDenied) as e:
            self._result(who, rec, act, detail, f"{grpc_code_of(e)}: {e}", spool)
            self._fail(context, e)
        except Exception as e:  # noqa: BLE001 - reported as INTERNAL, never a crash
            self._result(who, rec, act, detail, f"INTERNAL: {e}", spool)
            self._fail(context, e)

    def _result(
        self, who: Principal | None, rec: int, act: str, detail: dict, res: str, spool: bool
    ) -> None:
        if rec and spool:
            self.cp.auditlog.spool_finish(rec, res)
        elif rec:
            self.cp.audit_finish(rec, res)
        else:  # refused before anything was applied (no token, audit log not writable)
            self.cp.audit(who, act, "", detail, res)

    def SubmitOrder(self, request, context):  # noqa: N802 - gRPC method name
        def run(who: Principal) -> Any:
            if not request.HasField("order"):
                raise InvalidArgument("order", "is required")
            e = self.cp.enter(who, [_msg(request.order, "order.")], "grpc")
            return _ack(e.result(0))

        return self._call(context, "SubmitOrder", 1, run)

    def SubmitOrders(self, request, context):  # noqa: N802
        def run(who: Principal) -> Any:
            who.require("trader")
            msgs = [_msg(o, i) for i, o in enumerate(request.orders)]
            return _acks(self.cp.enter(who, msgs, "grpc"), pb.SubmitOrdersResponse())

        return self._call(context, "SubmitOrders", len(request.orders), run)

    def SubmitOrdersRaw(self, data: bytes, context: grpc.ServicerContext) -> bytes:  # noqa: N802
        """SubmitOrders on the serialized request and answer (with xdpex.fastwire): decoded
        into wire orders and the acks encoded in C. A request the C decoder leaves to
        protobuf (an order it refuses, anything it could read differently) takes the
        generated path, which names the field."""
        fw = _fw.get()
        assert fw is not None
        parsed = fw.pb_orders(data, 1)
        if parsed is None:
            req = self._parse(pb.SubmitOrdersRequest, data, context)
            return self.SubmitOrders(req, context).SerializeToString()  # type: ignore[no-any-return]
        msgs = parsed[1]

        def run(who: Principal) -> Any:
            who.require("trader")
            return fw.pb_acks(self.cp.enter(who, msgs, "grpc"), 1)

        return self._call(context, "SubmitOrders", len(msgs), run)  # type: ignore[no-any-return]

    def _parse(self, cls: Any, data: bytes, context: grpc.ServicerContext) -> Any:
        try:
            return cls.FromString(data)
        except DecodeError as e:
            self._fail(context, InvalidArgument("request", f"not a {cls.DESCRIPTOR.name}: {e}"))

    def StreamOrdersRaw(self, request_iterator, context):  # noqa: N802
        """StreamOrders on serialized requests and answers (with xdpex.fastwire)."""
        return self.StreamOrders(request_iterator, context, raw=True)

    def StreamOrders(self, request_iterator, context, raw: bool = False):  # noqa: N802
        """Batches in, answers out in the order sent, at most STREAM_WINDOW orders unanswered
        (see the .proto). A reader thread takes requests and sends their orders while this one
        waits for the answers of the earliest and writes them: the dataplane, the reader and the
        writer overlap. One audit record for the stream (its orders counted at the end).
        raw: requests and answers serialized (xdpex.fastwire decodes and encodes them)."""
        fw = _fw.get() if raw else None
        audited = self.cp.settings.audit_order_entry
        try:
            who = self._who(context)
            who.require("trader")
        except (AuthError, PermissionDenied) as e:
            if audited:
                self.cp.audit(None, "gRPC StreamOrders", "", {}, f"{grpc_code_of(e)}: {e}")
            self._fail(context, e)
            return
        context.send_initial_metadata((("xdpex-window", str(STREAM_WINDOW)),))
        alog = self.cp.auditlog
        rec = alog.spool_begin(who, "gRPC StreamOrders", "", '{"stream": true}') if audited else 0
        todo: queue.SimpleQueue[Any] = queue.SimpleQueue()
        cv = threading.Condition()
        unanswered = [0]
        stop = threading.Event()

        def read() -> None:
            try:
                for req in request_iterator:
                    msgs: list[WireOrder] | None = None
                    if fw is not None:
                        parsed = fw.pb_orders(req, 2)
                        if parsed is not None:
                            ref, msgs = parsed
                        else:
                            try:
                                req = pb.OrderStreamRequest.FromString(req)
                            except DecodeError as e:
                                todo.put((0, 0, None, InvalidArgument("request", str(e))))
                                continue
                    if msgs is None:
                        ref, n = req.ref, len(req.orders)
                    else:
                        n = len(msgs)
                    with cv:
                        while unanswered[0] + n > STREAM_WINDOW and unanswered[0]:
                            if stop.is_set():
                                return
                            cv.wait(0.2)
                        unanswered[0] += n
                    try:
                        if not n:
                            raise InvalidArgument("orders", "at least one order is required")
                        if msgs is None:
                            msgs = [_msg(o, i) for i, o in enumerate(req.orders)]
                        todo.put((ref, n, self.cp.enter_send(who, msgs, "grpc"), None))
                    except ServiceError as e:
                        todo.put((ref, n, None, e))
                        if not isinstance(e, InvalidArgument):
                            return  # the session is gone: the stream ends with the error
                    if stop.is_set():
                        return
            except Exception:  # noqa: BLE001 - the call ended (cancelled, deadline): stop
                log.debug("StreamOrders: request stream ended", exc_info=True)
            finally:
                todo.put(None)

        reader = threading.Thread(target=read, name="grpc-stream-reader", daemon=True)
        reader.start()
        total, result, aborted = 0, "ok", False
        try:
            while True:
                item = todo.get()
                if item is None:
                    break
                ref, n, sent, err = item
                resp = pb.OrderStreamResponse(ref=ref)
                acks = b""
                if err is None:
                    try:
                        got = self.cp.enter_wait(sent, "grpc")
                        if fw is not None:
                            acks = fw.pb_acks(got, 2)  # field 2 of OrderStreamResponse
                        else:
                            _acks(got, resp)
                        total += n
                    except ServiceError as e:
                        err = e
                if err is not None and not isinstance(err, InvalidArgument):
                    result = f"{grpc_code_of(err)}: {err}"
                    aborted = True  # (context.abort raises: the stream ends with this code)
                    self._fail(context, err)
                if err is not None:
                    resp.error = str(err)
                with cv:
                    unanswered[0] -= n
                    resp.credit = max(0, STREAM_WINDOW - unanswered[0])
                    cv.notify_all()
                # protobuf fields may come in any order: ref, credit, error, then the acks
                yield resp.SerializeToString() + acks if raw else resp
        except grpc.RpcError:
            raise
        except Exception as e:  # noqa: BLE001 - INTERNAL, never a crash
            if aborted:
                raise  # the abort of the error above, not a second failure
            result = f"INTERNAL: {e}"
            self._fail(context, e)
        finally:
            stop.set()
            with cv:
                cv.notify_all()
            self._drain_stream(todo)
            if rec:
                alog.spool_finish(rec, f"{result} ({total} orders)")

    def _drain_stream(self, todo: queue.SimpleQueue[Any]) -> None:
        """Wait for what the reader sent after the stream stopped being answered, so the
        session's in-flight window gets its places back (bounded by the dataplane timeout)."""
        while True:
            try:
                item = todo.get(timeout=0.5)
            except queue.Empty:
                return
            if item is None:
                return
            if item[2] is not None:
                try:
                    self.cp.enter_wait(item[2], "grpc")
                except ServiceError:
                    pass

    def CancelOrder(self, request, context):  # noqa: N802
        def run(who: Principal) -> Any:
            if request.order_id == 0:
                raise InvalidArgument("order_id", "must be at least 1")
            r = self.cp.cancel_order(who, request.order_id)
            return pb.CancelOrderResponse(
                order_id=r["order_id"], status=r["status"], cancelled_qty=r["cancelled_qty"]
            )

        return self._call(context, "CancelOrder", 1, run, spool=False)

    def StreamExecutions(self, request, context):  # noqa: N802
        try:
            who = self._who(context)
            who.require("viewer")
        except (AuthError, PermissionDenied) as e:
            self._fail(context, e)
            return
        readers: dict[int, JournalReader] = {}
        live_from: dict[int, int] = {}
        try:
            if request.from_seq == 0:
                try:
                    st = self.cp.ctl.stats()
                    live_from = {
                        int(q["queue"]): int(q.get("journal_seq", 0)) for q in st.get("queues", [])
                    }
                except ServiceError as e:
                    self._fail(context, e)
                    return
            while context.is_active():
                sent = 0
                for q, qdir in queue_dirs(self.cp.settings.journal_dir).items():
                    r = readers.get(q)
                    if r is None:
                        r = readers[q] = JournalReader(qdir, stall_s=0.5)
                    floor = live_from.get(q, 0) if request.from_seq == 0 else request.from_seq - 1
                    for rec in r.poll(2000):
                        if rec.type != REC_OUTBOUND or rec.seq <= floor:
                            continue
                        if request.session_id and rec.session_id != request.session_id:
                            continue
                        for ex in self._fills(rec, q, request.symbol_id):
                            yield ex
                            sent += 1
                if not sent:
                    time.sleep(0.02)
        finally:
            for r in readers.values():
                r.close()

    @staticmethod
    def _fills(rec: Any, q: int, symbol_id: int):  # type: ignore[no-untyped-def]
        p = rec.payload
        for i in range(rec.count):
            if p[i * 64] != FILL_T:
                continue
            f = c.Fill.decode(p, i * 64)
            assert isinstance(f, c.Fill)
            if symbol_id and f.symbol_id != symbol_id:
                continue
            yield pb.Execution(
                journal_seq=rec.seq,
                queue=q,
                exec_id=f.exec_id,
                order_id=f.order_id,
                session_id=rec.session_id,
                cl_ord_id=f.cl_ord_id,
                symbol_id=f.symbol_id,
                side=f.side,
                liquidity=f.liquidity,
                price=f.price,
                qty=f.qty,
                leaves=f.leaves,
                ts_ns=rec.ts,
            )


def add_to_server(servicer: OrderEntryServicer, server: grpc.Server) -> None:
    """The OrderEntry service; with xdpex.fastwire, SubmitOrders and StreamOrders take and give
    serialized messages (no deserializer or serializer: the C extension decodes and encodes)."""
    if _fw.get() is None:
        pbg.add_OrderEntryServicer_to_server(servicer, server)
        return
    h = {
        "SubmitOrder": grpc.unary_unary_rpc_method_handler(
            servicer.SubmitOrder,
            request_deserializer=pb.SubmitOrderRequest.FromString,
            response_serializer=pb.OrderAck.SerializeToString,
        ),
        "SubmitOrders": grpc.unary_unary_rpc_method_handler(servicer.SubmitOrdersRaw),
        "StreamOrders": grpc.stream_stream_rpc_method_handler(servicer.StreamOrdersRaw),
        "CancelOrder": grpc.unary_unary_rpc_method_handler(
            servicer.CancelOrder,
            request_deserializer=pb.CancelOrderRequest.FromString,
            response_serializer=pb.CancelOrderResponse.SerializeToString,
        ),
        "StreamExecutions": grpc.unary_stream_rpc_method_handler(
            servicer.StreamExecutions,
            request_deserializer=pb.StreamExecutionsRequest.FromString,
            response_serializer=pb.Execution.SerializeToString,
        ),
    }
    name = "xdpex.v1.OrderEntry"
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, h),))
    server.add_registered_method_handlers(name, h)


def serve(cp: ControlPlane, host: str, port: int, workers: int = 8) -> grpc.Server:
    """Start the gRPC server (non-blocking); returns it for `stop()`."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[("grpc.max_receive_message_length", 64 << 20)],
    )
    add_to_server(OrderEntryServicer(cp), server)
    add_dropcopy(cp, server)
    st = cp.settings
    if st.tls_certfile is not None and st.tls_keyfile is not None:
        ca = st.tls_client_ca.read_bytes() if st.tls_client_ca is not None else None
        creds = grpc.ssl_server_credentials(
            [(st.tls_keyfile.read_bytes(), st.tls_certfile.read_bytes())],
            root_certificates=ca,
            require_client_auth=ca is not None,
        )
        bound = server.add_secure_port(f"{host}:{port}", creds)
    else:
        bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise RuntimeError(f"gRPC: cannot listen on {host}:{port}")
    server.start()
    log.info("gRPC order entry on %s:%d%s", host, bound, " (TLS)" if st.tls_certfile else "")
    cp.grpc_port = bound
    return server
