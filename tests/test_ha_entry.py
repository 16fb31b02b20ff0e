"""REST and gRPC order entry across a failover (docs/ha.md "Control-plane order entry across a
failover"): `xdpex up --ha` (a private etcd, two xdpexd --ha with their agents, the served
control plane following the leader, the persister), orders entered through REST (single and
batch) and gRPC (SubmitOrders and StreamOrders) from threads of their own before, during and
after a kill -9 of the primary's xdpexd and then a planned switchover. Every request is answered,
within a bound (never a hang): with its acknowledgements, or with a retryable error that says
why (HTTP 503 / UNAVAILABLE with a reason) for orders that were never applied. Afterwards the
final leader's journal holds exactly the orders that were acknowledged, each once (nothing lost,
nothing doubled), and the database the persister wrote equals that journal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from control_support import cleanup_dir, free_tcp_port, free_udp_port, short_tmpdir
from test_control_lifecycle import _logs, _pids_of, xdpex
from test_ha_ops import roles, two_free_tcp_ports, wait_for
from xdpex.pb import orderentry_pb2 as pb
from xdpex.pb import orderentry_pb2_grpc as pbg
from xdpex_proto import codec as c
from xdpex_proto.journal import REC_INBOUND, REC_OUTBOUND, JournalReader, queue_dirs

REPO = Path(__file__).resolve().parents[1]
CALL_BOUND = 15.0  # s: no request may take longer (a hang)


@dataclass
class Seen:
    """What the clients saw: every acknowledgement by (session, cl_ord_id), every error."""

    acks: list[tuple[str, int, int, str, str]] = field(default_factory=list)
    errors: list[tuple[str, int, str]] = field(default_factory=list)  # (api, code, reason)
    requests: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, api: str, a: dict[str, Any]) -> None:
        with self.lock:
            self.acks.append((api, int(a["session_id"]), int(a["cl_ord_id"]), a["status"],
                              a.get("reason") or ""))

    def error(self, api: str, code: int, reason: str) -> None:
        with self.lock:
            self.errors.append((api, code, reason))


def order(k: int) -> dict[str, Any]:
    # resting, never crossing: buys 40..69, sells 120..149
    side = "buy" if k % 2 else "sell"
    return {"symbol_id": 1, "side": side, "qty": 1,
            "price": 40 + k % 30 if side == "buy" else 120 + k % 30}


def pb_order(k: int) -> pb.NewOrder:
    o = order(k)
    return pb.NewOrder(symbol_id=1, side=pb.BUY if o["side"] == "buy" else pb.SELL, qty=1,
                       price=o["price"])


def pb_ack(a: pb.OrderAck) -> dict[str, Any]:
    return {"session_id": a.session_id, "cl_ord_id": a.cl_ord_id, "status": a.status,
            "reason": a.reason}


def rest_loop(base: str, token: str, seen: Seen, stop: threading.Event, batch: bool) -> None:
    api = "rest-batch" if batch else "rest"
    h = {"Authorization": f"Bearer {token}"}
    k = 0
    with httpx.Client(base_url=base, headers=h, timeout=CALL_BOUND) as cl:
        while not stop.is_set():
            k += 1
            seen.requests[api] += 1
            t0 = time.monotonic()
            if batch:
                r = cl.post("/api/v1/orders/batch", json={"orders": [order(k * 8 + i)
                                                                     for i in range(8)]})
            else:
                r = cl.post("/api/v1/orders", json=order(k))
            if time.monotonic() - t0 > CALL_BOUND:
                seen.error(api, -1, "took too long")
            if r.status_code in (200, 201):
                for a in (r.json() if batch else [r.json()]):
                    seen.ack(api, a)
            else:
                seen.error(api, r.status_code, str(r.json().get("detail", r.text)))
                time.sleep(0.02)  # a client backs off before it retries
            time.sleep(0.005)


def grpc_loop(addr: str, token: str, seen: Seen, stop: threading.Event) -> None:
    md = [("authorization", f"Bearer {token}")]
    k = 0
    with grpc.insecure_channel(addr) as ch:
        stub = pbg.OrderEntryStub(ch)
        while not stop.is_set():
            k += 1
            seen.requests["grpc"] += 1
            try:
                r = stub.SubmitOrders(pb.SubmitOrdersRequest(
                    orders=[pb_order(k * 4 + i) for i in range(4)]), metadata=md,
                    timeout=CALL_BOUND)
                for a in r.acks:
                    seen.ack("grpc", pb_ack(a))
            except grpc.RpcError as e:
                seen.error("grpc", int(e.code().value[0]), f"{e.code().name}: {e.details()}")
                time.sleep(0.02)
            time.sleep(0.005)


def grpc_stream_loop(addr: str, token: str, seen: Seen, stop: threading.Event) -> None:
    """One stream after the other: batches of 4 tagged with ref; a stream that ends with an
    error is opened again (what a client does)."""
    md = [("authorization", f"Bearer {token}")]
    k = 0
    with grpc.insecure_channel(addr) as ch:
        stub = pbg.OrderEntryStub(ch)
        while not stop.is_set():
            sent: dict[int, int] = {}

            def reqs(sent: dict[int, int] = sent) -> Any:
                nonlocal k
                while not stop.is_set():
                    k += 1
                    sent[k] = 4
                    seen.requests["grpc-stream"] += 1
                    yield pb.OrderStreamRequest(ref=k, orders=[pb_order(k * 4 + i)
                                                               for i in range(4)])
                    time.sleep(0.01)

            try:
                for resp in stub.StreamOrders(reqs(), metadata=md, timeout=60):
                    sent.pop(resp.ref, None)
                    if resp.error:
                        seen.error("grpc-stream", 0, resp.error)
                    for a in resp.acks:
                        seen.ack("grpc-stream", pb_ack(a))
            except grpc.RpcError as e:
                # batches the stream had not answered when it ended: each one error
                for _ in sent:
                    seen.error("grpc-stream", int(e.code().value[0]),
                               f"{e.code().name}: {e.details()}")
                time.sleep(0.02)


def journal_orders(jdir: Path) -> tuple[Counter[tuple[int, int]], dict[tuple[int, int], str]]:
    """NewOrders the journal applied, by (session, cl_ord_id), counted; and each one's answer
    (accepted or the reject reason)."""
    applied: Counter[tuple[int, int]] = Counter()
    answer: dict[tuple[int, int], str] = {}
    for _, qdir in queue_dirs(jdir).items():
        r = JournalReader(qdir, stall_s=0)
        while recs := r.poll(100000):
            for rec in recs:
                for i in range(rec.count):
                    m = c.decode_message(rec.payload, i * 64)
                    if rec.type == REC_INBOUND and isinstance(m, c.NewOrder):
                        applied[(rec.session_id, m.cl_ord_id)] += 1
                    elif rec.type == REC_OUTBOUND and isinstance(m, c.Accepted):
                        answer[(rec.session_id, m.cl_ord_id)] = "accepted"
                    elif (rec.type == REC_OUTBOUND and isinstance(m, c.Rejected)
                          and m.ref_type == c.MsgType.NEW_ORDER):
                        answer.setdefault((rec.session_id, m.cl_ord_id),
                                          c.RejectReason(m.reason).name)
        r.close()
    return applied, answer


def leader_name(state: Path) -> str:
    found: list[str] = []

    def one() -> bool:
        found[:] = [n for n, r in roles(state).items() if r == "primary"]
        return len(found) == 1

    wait_for(one, f"one primary: {roles(state)}")
    return found[0]


def kill_xdpexd(state: Path, node: str) -> None:
    pids = [p for p in _pids_of(state)
            if f"{node}.ctl.sock" in Path(f"/proc/{p}/cmdline").read_bytes().decode(
                errors="replace") and b"xdpexd" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)


def test_rest_and_grpc_order_entry_across_a_kill_and_a_switchover() -> None:
    state = short_tmpdir("hae")
    http, grpc_port, etcd = free_tcp_port(), free_tcp_port(), two_free_tcp_ports()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    seen = Seen()
    try:
        r = xdpex("up", "--ha", "--state-dir", str(state), "--http", f"127.0.0.1:{http}",
                  "--grpc", f"127.0.0.1:{grpc_port}", "--port", str(free_udp_port()),
                  "--etcd-port", str(etcd), "--repl-port", str(free_tcp_port()), "--timeout",
                  "60", timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr + _logs(state)
        token = (state / "operator.token").read_text().strip()
        base = f"http://127.0.0.1:{http}"
        wait_for(lambda: sorted(roles(state).values()) == ["primary", "standby streaming"],
                 f"a primary and a streaming standby: {roles(state)}")
        h = {"Authorization": f"Bearer {token}"}
        r2 = httpx.post(f"{base}/api/v1/symbols", headers=h, json={
            "symbol_id": 1, "name": "ACME", "tick": 1, "lot": 1, "band_low": 1,
            "band_high": 100000})
        assert r2.status_code == 201, r2.text
        gaddr = f"127.0.0.1:{grpc_port}"
        for target, args in ((rest_loop, (base, token, seen, stop, False)),
                             (rest_loop, (base, token, seen, stop, True)),
                             (grpc_loop, (gaddr, token, seen, stop)),
                             (grpc_stream_loop, (gaddr, token, seen, stop))):
            t = threading.Thread(target=target, args=args, daemon=True)
            t.start()
            threads.append(t)

        def acked() -> int:
            return sum(1 for a in seen.acks if a[3] != "rejected")

        wait_for(lambda: acked() > 200, f"orders acknowledged ({seen.requests})")
        # 1. the primary's xdpexd killed (-9): the standby takes over, the control plane follows
        lead = leader_name(state)
        other = "b" if lead == "a" else "a"
        kill_xdpexd(state, lead)
        wait_for(lambda: roles(state)[other] == "primary", f"{other} took over")
        n = acked()
        wait_for(lambda: acked() > n + 200, "orders acknowledged by the new primary")
        wait_for(lambda: roles(state)[lead] == "standby streaming", f"{lead} rejoined")
        # 2. a planned switchover back
        sw = subprocess.run([sys.executable, "-m", "xdpex.cli", "ha", "switchover", "--etcd",
                             f"http://127.0.0.1:{etcd}", "--cluster", "xdpex"],
                            capture_output=True, text=True, timeout=30)
        assert sw.returncode == 0, sw.stdout + sw.stderr
        wait_for(lambda: roles(state)[lead] == "primary", f"{lead} leads again")
        n = acked()
        wait_for(lambda: acked() > n + 200, "orders acknowledged after the switchover")
        stop.set()
        for t in threads:
            t.join(CALL_BOUND + 5)
            assert not t.is_alive(), "a client hangs"
        # What the clients saw: answers, or a 503 / UNAVAILABLE that says why.
        bad = [e for e in seen.errors if e[1] not in (503, grpc.StatusCode.UNAVAILABLE.value[0])
               or not e[2]]
        assert not bad, f"errors that are not a retryable 503 with a reason: {bad[:10]}"
        not_logged_in = [a for a in seen.acks if a[4] == "NOT_LOGGED_IN"]
        assert not not_logged_in, f"orders refused as not logged in: {not_logged_in[:5]}"
        keys = Counter((a[1], a[2]) for a in seen.acks)
        doubled = [k for k, v in keys.items() if v > 1]
        assert not doubled, f"orders acknowledged twice: {doubled[:10]}"
        # The final leader's journal: each acknowledged order applied once, and nothing else.
        leader = leader_name(state)
        applied, answer = journal_orders(state / leader / "journal")
        twice = [k for k, v in applied.items() if v > 1]
        assert not twice, f"orders applied twice: {twice[:10]}"
        cp_sessions = {a[1] for a in seen.acks}
        in_journal = {k for k in applied if k[0] in cp_sessions}
        assert in_journal == set(keys), (
            f"applied but never acknowledged: {sorted(in_journal - set(keys))[:10]}; "
            f"acknowledged but not applied: {sorted(set(keys) - in_journal)[:10]}")
        for a in seen.acks:
            want = "accepted" if a[3] != "rejected" else a[4]
            assert answer[(a[1], a[2])] == want, (a, answer[(a[1], a[2])])
        print(f"reasons {Counter(e[2][:90] for e in seen.errors).most_common(6)}")
        print("\n".join(x for x in _logs(state).splitlines() if "xdpex.orderentry" in x))
        print(f"requests {dict(seen.requests)}, orders acknowledged {len(keys)}, "
              f"errors {Counter((e[0], e[1]) for e in seen.errors)}")
        # The persister's database equals the journal (through the API).
        want_rows = sum(1 for v in answer.values() if v == "accepted")

        def rows() -> int:
            got, after = 0, 0
            while True:
                page = httpx.get(f"{base}/api/v1/orders", headers=h,
                                 params={"limit": 10000, "after": after}, timeout=10).json()
                got += len(page)
                if len(page) < 10000:
                    return got
                after = page[-1]["cursor"]

        wait_for(lambda: rows() == want_rows, f"the database has the journal's {want_rows} "
                 "orders", 30)
    except AssertionError as e:
        raise AssertionError(f"{e}\nroles {roles(state)}\nerrors seen "
                             f"{Counter(seen.errors).most_common(8)}\n{_logs(state)}") from None
    finally:
        stop.set()
        for t in threads:
            t.join(CALL_BOUND + 5)
        with contextlib.suppress(Exception):
            xdpex("down", "--state-dir", str(state))
        for p in _pids_of(state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        cleanup_dir(state)
