"""gRPC DropCopy service (control/xdpex/proto/dropcopy.proto): a firm's execution reports from the
journal.

Each stream reads every queue's journal (control/xdpex/journal.py) from its start and hands out
the XJ_OUT messages of the firm's sessions: Accepted, Rejected, Fill, Cancelled and Replaced, each
exactly once (the journal holds what each session was sent once, retransmissions are not
journaled again), with the session's outbound sequence, from the requested sequence on; with
`follow` it then stays on the journal's tail. The firm's sessions and the caller's right to read
them are looked up when the stream opens (xdpex.firms): a firm changed later takes effect on the
next stream. An operator token reads every firm; another token only firms listing its name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import grpc
from xdpex_proto import codec as c
from xdpex_proto.journal import REC_OUTBOUND, JournalReader, Record, queue_dirs

from . import firms
from .auth import AuthError, PermissionDenied, Principal
from .errors import InvalidArgument, ServiceError, grpc_code_of
from .orders import cancel_name, reject_name
from .pb import load
from .service import ControlPlane

log = logging.getLogger("xdpex.dropcopy")
_mods: tuple[Any, Any] = load("dropcopy")
pb, pbg = _mods
DropCopyBase: Any = pbg.DropCopyServicer

TYPES = {
    c.MsgType.ACCEPTED: pb.ACCEPTED,
    c.MsgType.REJECTED: pb.REJECTED,
    c.MsgType.FILL: pb.FILL,
    c.MsgType.CANCELLED: pb.CANCELLED,
    c.MsgType.REPLACED: pb.REPLACED,
}


def report(rec: Record, i: int, queue: int) -> Any:
    """The ExecReport of message i of an outbound journal record."""
    raw = rec.payload[i * c.MSG_SIZE : (i + 1) * c.MSG_SIZE]
    m = c.decode_message(raw)
    r = pb.ExecReport(session_id=rec.session_id, seq=rec.msg_seq + i, type=TYPES.get(m.TYPE, 0),
                      queue=queue, journal_seq=rec.seq, ts_ns=rec.ts, raw=bytes(raw))  # fmt: skip
    if isinstance(m, c.Accepted):
        r.symbol_id, r.cl_ord_id, r.order_id, r.side = m.symbol_id, m.cl_ord_id, m.order_id, m.side
        r.price, r.qty, r.ord_type, r.tif = m.price, m.qty, m.ord_type, m.tif
    elif isinstance(m, c.Rejected):
        r.symbol_id, r.cl_ord_id, r.ref_seq = m.symbol_id, m.cl_ord_id, m.ref_seq
        r.reason, r.reason_name = m.reason, reject_name(m.reason)
    elif isinstance(m, c.Fill):
        r.symbol_id, r.cl_ord_id, r.order_id, r.side = m.symbol_id, m.cl_ord_id, m.order_id, m.side
        r.price, r.qty, r.leaves = m.price, m.qty, m.leaves
        r.exec_id, r.liquidity = m.exec_id, m.liquidity
    elif isinstance(m, c.Cancelled):
        r.symbol_id, r.cl_ord_id, r.order_id, r.side = m.symbol_id, m.cl_ord_id, m.order_id, m.side
        r.price, r.qty = m.price, m.qty
        r.reason, r.reason_name = m.reason, cancel_name(m.reason)
    elif isinstance(m, c.Replaced):
        r.symbol_id, r.cl_ord_id, r.order_id, r.side = m.symbol_id, m.cl_ord_id, m.order_id, m.side
        r.price, r.qty, r.leaves, r.orig_cl_ord_id = m.price, m.qty, m.leaves, m.orig_cl_ord_id
    return r


class DropCopyServicer(DropCopyBase):  # type: ignore[misc]
    def __init__(self, cp: ControlPlane, idle_s: float = 0.02):
        self.cp = cp
        self.idle_s = idle_s

    def _who(self, context: grpc.ServicerContext) -> Principal:
        md = dict(context.invocation_metadata())
        auth = str(md.get("authorization", ""))
        return self.cp.authenticate(auth[7:] if auth.lower().startswith("bearer ") else None)

    def Stream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        try:
            who = self._who(context)
            if not request.firm:
                raise InvalidArgument("firm", "is required")
            sessions = firms.sessions_to_read(self.cp, who, request.firm)
            for sid in request.session_from:
                if sid not in sessions:
                    raise InvalidArgument("session_from", f"session {sid} is not a session of "
                                          f"firm {request.firm!r}")  # fmt: skip
        except (ServiceError, AuthError, PermissionDenied) as e:
            context.abort(getattr(grpc.StatusCode, grpc_code_of(e)), str(e))
            return
        start = {s: request.session_from.get(s, request.from_seq or 1) for s in sessions}
        yield from self._follow(context, start, request.follow)

    def _follow(self, context: grpc.ServicerContext, start: dict[int, int],
                follow: bool) -> Iterator[Any]:  # fmt: skip
        readers: dict[int, JournalReader] = {}
        try:
            while context.is_active():
                got = 0
                for q, qdir in queue_dirs(self.cp.settings.journal_dir).items():
                    r = readers.get(q)
                    if r is None:
                        r = readers[q] = JournalReader(qdir, stall_s=0.5)
                    recs = r.poll(2000)
                    got += len(recs)
                    for rec in recs:
                        first = start.get(rec.session_id)
                        if rec.type != REC_OUTBOUND or first is None:
                            continue
                        for i in range(max(0, first - rec.msg_seq), rec.count):
                            yield report(rec, i, q)
                if not got:
                    if not follow:
                        return
                    time.sleep(self.idle_s)
        finally:
            for r in readers.values():
                r.close()


def add_to_server(cp: ControlPlane, server: grpc.Server) -> None:
    """Registers the DropCopy service on the control plane's gRPC server."""
    pbg.add_DropCopyServicer_to_server(DropCopyServicer(cp), server)
