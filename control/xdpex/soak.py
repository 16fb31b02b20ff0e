"""`make soak`: the reliability scenarios of docs/RELIABILITY.md, each with its pass criterion.

Every scenario runs the real xdpexd in the veth lab (AF_XDP or kernel-UDP mode) with the real
load generator (traffic/loadgen, which logs in, resends on SequenceGap and asks for
retransmission of lost answers) and returns one `Row`: scenario, mode, orders, answered, lost,
duplicates (orders applied twice, answers delivered twice), faults_injected, ok, and every check
by name with what it compared. The wire faults come from the lab's injector (xdpex_traffic.faults);
the gateway's own counters, the journal and the injector's counters are checked against each
other exactly:

- loss: random loss both ways; every order answered exactly once, the journal holds each client
  sequence of each session once and in order, the datagrams the gateway counted are the ones the
  injector let through, gaps and duplicates only where the injector caused them;
- dup: random duplication with bursts of copies, then every client datagram of the run captured
  (tcpdump) and replayed as frames after the sessions logged out: nothing applied twice, the
  gateway's duplicate counter equals the messages in the injected copies, the replay changes no
  state (same state hash) and every replayed login is refused;
- reorder: datagrams held back by the relay; per-session order as sent;
- kill: xdpexd killed -9 at random moments of a lossy load and restarted on its journal; every
  crashed journal replays to the hash its restart logged, sessions resume one past the journal;
- journal: a torn record in an earlier segment, a missing segment, a first_seq discontinuity and
  a disk filling up during rotation, each refused or stopped with a message naming it;
- storage: PostgreSQL stopped under load, the persister/publisher and redis-server killed;
  afterwards database = Redis stream = journal, row for row;
- flood: 10x the legitimate rate from random and spoofed sources; spoofed drops exact, the
  per-source GCRA exact on the offender's send times, legitimate p99 against its baseline.

Each scenario function takes (lab, mode, size, seed) and returns its Row; SCALES gives the sizes.
`python -m xdpex.soak --scale short|full [--only NAME,...] [--modes afxdp,udp]
[--out FILE] [--merge] [--doc docs/RELIABILITY.md]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xdpex_traffic.pcap as pcap
from xdpex_proto.codec import LoginReason, MsgType
from xdpex_proto.journal import (
    JournalReader,
    RecType,
    SessKind,
    decode_session_event,
    queue_dirs,
)
from xdpex_traffic.faults import FaultSpec, Injector
from xdpex_traffic.lab import Lab, build_dir, socket_in
from xdpex_traffic.wire import Gateway, WireError, run_loadgen, session_queue

MAX_MSGS = 22  # XE_MAX_MSGS
# answers that may reach the generator after it stopped reading, beyond held ones and copies
# (a retransmission or SequenceGap in flight at its end)
LATE_SLACK = 16
CAPTURE_RATE = 5000  # orders/s while tcpdump records the run (it dropped frames at 8000 here)

# Orders per scenario and mode; `short` is what `make test` runs.
SCALES: dict[str, dict[str, int]] = {
    # (kill: the number of kill points; storage: seconds PostgreSQL is down; flood: seconds)
    "short": {
        "loss": 20_000,
        "dup": 10_000,
        "reorder": 10_000,
        "kill": 6,
        "journal": 20_000,
        "storage": 6,
        "flood": 3,
    },
    "full": {
        "loss": 1_000_000,
        "dup": 100_000,
        "reorder": 200_000,
        "kill": 100,
        "journal": 40_000,
        "storage": 60,
        "flood": 20,
    },
}


@dataclass
class Row:
    scenario: str
    mode: str
    orders: int = 0
    answered: int = 0
    lost: int = 0
    duplicates: int = 0
    faults_injected: int = 0
    ok: bool = False
    seconds: float = 0.0
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)

    def check(self, name: str, passed: bool, **what: Any) -> bool:
        self.checks[name] = {"ok": bool(passed), **what}
        return bool(passed)

    def eq(self, name: str, got: Any, want: Any) -> bool:
        return self.check(name, got == want, got=got, want=want)

    def failed(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.checks.items() if not v["ok"]}

    def summary(self) -> dict[str, Any]:
        keys = ("scenario", "mode", "orders", "answered", "lost", "duplicates", "faults_injected")
        return {k: getattr(self, k) for k in keys} | {"ok": self.ok}


# -- what the journal says ----------------------------------------------------------------------


def journal_inbound(journal_dir: Path) -> dict[int, list[tuple[int, int]]]:
    """{session: [(first client sequence, count), ...]} of every inbound record journaled while
    its session was logged in, in journal order (per queue; a session lives on one queue). The
    gateway also journals what it refuses from a session that is not logged in (so a replay
    answers the same); those records are not orders and are left out."""
    out: dict[int, list[tuple[int, int]]] = {}
    logged_in: dict[int, bool] = {}
    for qdir in queue_dirs(journal_dir).values():
        r = JournalReader(qdir, stall_s=0.2)
        try:
            idle = 0
            while idle < 3:
                recs = r.poll()
                idle = 0 if recs else idle + 1
                for rec in recs:
                    if rec.type == RecType.SESSION:
                        ev = decode_session_event(rec.payload)
                        logged_in[rec.session_id] = ev is not None and ev.kind == SessKind.LOGIN
                    elif rec.type == RecType.IN and logged_in.get(rec.session_id):
                        out.setdefault(rec.session_id, []).append((rec.msg_seq, rec.count))
                if not recs:
                    time.sleep(0.1)
        finally:
            r.close()
    return out


def check_journal_order(row: Row, inbound: dict[int, list[tuple[int, int]]], orders: int) -> None:
    """Each session's client sequences journaled once each, 1, 2, ... in the order sent."""
    doubled = out_of_order = total = 0
    for recs in inbound.values():
        expect = 1
        for first, count in recs:
            if first < expect:
                doubled += min(count, expect - first)
            elif first > expect:
                out_of_order += 1
            expect = max(expect, first + count)
            total += count
    row.duplicates += doubled
    row.eq("journal: no client sequence applied twice", doubled, 0)
    row.eq("journal: per-session order as sent", out_of_order, 0)
    row.eq("journal: inbound messages", total - doubled, orders)


# -- the wire scenarios ---------------------------------------------------------------------------


def _loadgen_args(count: int, seed: int, rate: int = 0) -> list[str]:
    pace = ["--rate", str(rate)] if rate else ["--window", "256"]
    return [
        "--count",
        str(count),
        "--batch",
        "4",
        *pace,
        "--seed",
        str(seed),
        "--duration",
        str(max(30, 2 * count // (rate or 2000))),
        "--drain",
        "10",
    ]


def _counters_agree(row: Row, st: dict[str, Any], r: dict[str, Any], c: dict[str, Any]) -> None:
    """The gateway's and the generator's datagram counts are what the injector let through."""
    q = st["queues"]
    i, o = c["in"], c["out"]
    row.eq(
        "injector: every held datagram released",
        (i["released"], o["released"]),
        (i["held"], o["held"]),
    )
    row.eq("injector: no clone or redirect refused", i["errors"] + o["errors"], 0)
    arrived_in = i["seen"] - i["dropped"] + i["copies"] + i["session"]
    row.eq(
        "gateway rx datagrams = injector's in, less drops, plus copies",
        sum(x["rx_datagrams"] for x in q),
        arrived_in,
    )
    row.eq(
        "gateway tx datagrams = injector's out seen",
        sum(x["tx_datagrams"] for x in q),
        o["seen"] + o["session"],
    )
    # (the generator counts from its first order on: each session's LoginAccepted before and
    # its logout answer after are not in its count)
    # its logout answer after are not in its count; nor what came after it stopped reading:
    # held answers released, or copies, late)
    got = r["rx_datagrams"]["socket"] + r["rx_datagrams"]["xsk"] + 2 * r["sessions"]
    want = o["seen"] - o["dropped"] + o["copies"] + o["session"]
    row.check(
        "generator rx datagrams = injector's out, less drops, plus copies (late ones aside)",
        0 <= want - got <= o["held"] + o["copies"] + LATE_SLACK,
        got=got,
        want=want,
        late_at_most=o["held"] + o["copies"] + LATE_SLACK,
    )
    row.eq(
        "every message the generator sent (orders and resends) passed the injector",
        r["sent"] + r["recovery"]["resent"],
        i["msgs"],
    )
    row.eq(
        "gateway SequenceGaps = the generator's",
        sum(x["gaps"] for x in q),
        r["recovery"]["seq_gaps"],
    )
    # Every application message that reached the gateway was applied, skipped as a duplicate or
    # refused with its datagram as beyond a gap (SequenceGap): the last share, from the counts.
    applied = sum(x["applied"] for x in q)
    dups = sum(x["duplicates"] for x in q)
    gaps = sum(x["gaps"] for x in q)
    beyond_gap = i["msgs"] - i["drop_msgs"] + i["copy_msgs"] - applied - dups
    row.detail["gateway"] = {
        "applied": applied,
        "duplicates": dups,
        "gaps": gaps,
        "beyond_gap_msgs": beyond_gap,
        "retransmitted": sum(x["retransmitted"] for x in q),
    }
    row.check(
        "gateway: messages beyond a gap fit its SequenceGap count",
        0 <= beyond_gap <= MAX_MSGS * gaps and (beyond_gap > 0) == (gaps > 0),
        beyond_gap_msgs=beyond_gap,
        gaps=gaps,
    )
    row.check(
        "gateway: duplicates at least the injected copies' messages",
        dups >= i["copy_msgs"] - beyond_gap,
        duplicates=dups,
        copy_msgs=i["copy_msgs"],
    )


def _answered_once(row: Row, r: dict[str, Any], st: dict[str, Any], count: int) -> None:
    row.orders, row.answered = r["sent"], r["answered"]
    row.lost = count - r["answered"]
    row.duplicates += r["unmatched"]
    row.eq("generator: sent", r["sent"], count)
    row.eq("generator: every order answered", r["answered"], count)
    row.eq("generator: no answer without an order, none twice", r["unmatched"], 0)
    rec = r["recovery"]
    row.eq("generator: nothing unrecoverable", (rec["unrecoverable"], rec["out_lost"]), (0, 0))
    row.eq("generator: no bad datagrams", r["bad_datagrams"], 0)
    row.eq("gateway: every order applied once", sum(x["applied"] for x in st["queues"]), count)


def quiesce(gw: Gateway, inj: Injector, timeout: float = 15.0) -> tuple[dict[str, Any], Any]:
    """The injector's counters and the gateway's stats once neither moves any more (held
    datagrams released, the answers to them sent) for 0.3 s."""
    deadline = time.monotonic() + timeout
    last: tuple[Any, ...] | None = None
    while True:
        c = inj.settle(timeout)
        st = gw.stats()
        now = (c, [(q["rx_datagrams"], q["tx_datagrams"]) for q in st["queues"]])
        if now == last or time.monotonic() > deadline:
            return c, st
        last = now
        time.sleep(0.3)


def wire_run(
    name: str,
    lab: Lab,
    mode: str,
    spec: FaultSpec,
    count: int,
    extra: Callable[[Row, Gateway, dict[str, Any], dict[str, Any]], None] | None = None,
    capture: Path | None = None,
    rate: int = 0,
) -> Row:
    row = Row(name, mode)
    t0 = time.monotonic()
    inj = Injector(lab)
    stop = threading.Event()
    try:
        inj.apply(spec)
        with Gateway(lab, mode, nsessions=4) as gw:
            cap_thread, captured = None, []
            if capture is not None:
                ready = threading.Event()
                cap_thread = threading.Thread(
                    target=lambda: captured.append(
                        pcap.capture(
                            capture,
                            lab.tg_ns,
                            lab.tg_if,
                            count=10**7,
                            seconds=3600,
                            ready=ready.set,
                            stop=stop,
                            buffer_kib=131072,
                            to_port_only=True,  # the clients' datagrams: what is replayed
                        )
                    ),
                    daemon=True,
                )
                cap_thread.start()
                if not ready.wait(20):
                    raise RuntimeError("tcpdump did not start")
            r = run_loadgen(
                lab,
                gw,
                gw.sessions,
                _loadgen_args(count, spec.seed, rate),
                timeout=max(120, count / 1000),
            )
            stop.set()
            if cap_thread is not None:
                cap_thread.join(30)
                row.check(
                    "capture complete",
                    bool(captured) and captured[0].dropped == 0,
                    captured=[asdict(x) for x in captured],
                )
            c, st = quiesce(gw, inj)
            row.detail["injector"] = c
            row.detail["generator"] = {k: r[k] for k in ("recovery", "duplicates", "rtt_us")}
            row.faults_injected = sum(c[d][k] for d in c for k in ("dropped", "copies", "held"))
            _answered_once(row, r, st, count)
            _counters_agree(row, st, r, c)
            check_journal_order(row, journal_inbound(gw.workdir / "journal"), count)
            if extra is not None:
                extra(row, gw, r, c)
    except Exception as e:  # a scenario that breaks is a failed row, with the reason
        row.check("ran to the end", False, error=f"{type(e).__name__}: {e}")
    finally:
        stop.set()
        inj.remove()
    row.seconds = round(time.monotonic() - t0, 1)
    row.ok = not row.failed() and bool(row.checks)
    return row


def scenario_loss(lab: Lab, mode: str, count: int, seed: int) -> Row:
    def extra(row: Row, gw: Gateway, r: dict[str, Any], c: dict[str, Any]) -> None:
        g, rec = row.detail["gateway"], r["recovery"]
        row.check(
            "loss in: SequenceGap and resend",
            g["gaps"] > 0 and rec["resent"] > 0,
            gaps=g["gaps"],
            resent=rec["resent"],
            dropped=c["in"]["dropped"],
        )
        row.check(
            "loss out: retransmission asked and served",
            rec["rtx_requests"] > 0 and g["retransmitted"] > 0,
            rtx_requests=rec["rtx_requests"],
            retransmitted=g["retransmitted"],
        )

    return wire_run("loss", lab, mode, FaultSpec(loss=0.10, seed=seed), count, extra)


def scenario_reorder(lab: Lab, mode: str, count: int, seed: int) -> Row:
    return wire_run("reorder", lab, mode, FaultSpec(reorder=0.02, depth=4, seed=seed), count)


# -- duplication and pcap replay ------------------------------------------------------------------


def read_pcap(path: Path) -> list[bytes]:
    """The frames of a classic pcap file (tcpdump -w), in order."""
    data = path.read_bytes()
    if len(data) < 24:
        raise ValueError(f"{path}: not a pcap file ({len(data)} bytes)")
    magic = struct.unpack_from("<I", data)[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    if struct.unpack_from(end + "I", data)[0] not in (0xA1B2C3D4, 0xA1B23C4D):
        raise ValueError(f"{path}: not a pcap file (magic {magic:#x})")
    frames, pos = [], 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from(end + "IIII", data, pos)[2]
        frames.append(data[pos + 16 : pos + 16 + incl])
        pos += 16 + incl
    return frames


def to_gateway(frame: bytes, port: int = 9000) -> tuple[int, int] | None:
    """(seq, count) of an xdpex datagram to the gateway in an Ethernet frame, else None."""
    if len(frame) < 14 + 20 + 8 + 24 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    if int.from_bytes(frame[36:38], "big") != port:
        return None
    _, _, _, _, seq, count = struct.unpack_from("<HBBIQH", frame, 42)
    return seq, count


def replay(lab: Lab, frames: list[bytes], received: Callable[[], int], window: int = 512) -> None:
    """Sends `frames` as they are on the traffic side's interface, at most `window` ahead of what
    the gateway says it `received` (the capture is replayed as fast as it is taken in, not
    faster: a ring overrun would be the replay's loss, not the gateway's)."""
    s = socket_in(lab.tg_ns, socket.AF_PACKET, socket.SOCK_RAW)
    try:
        s.bind((lab.tg_if, 0))
        base = received()
        for k, f in enumerate(frames):
            if k % 64 == 0:
                deadline = time.monotonic() + 10
                while received() - base < k - window:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"replay: the gateway took no frames after {k}")
                    time.sleep(0.002)
            s.send(f)
    finally:
        s.close()


def scenario_dup(lab: Lab, mode: str, count: int, seed: int) -> Row:
    cap = Path(f"/tmp/xdpex-soak-{lab.prefix}-{mode}.pcap")

    def extra(row: Row, gw: Gateway, r: dict[str, Any], c: dict[str, Any]) -> None:
        g = row.detail["gateway"]
        # No loss, so no gap and no retransmission; duplicates are the copies, and resends the
        # generator made when an answer was slow (it counts them).
        row.eq(
            "gateway duplicates = messages in the injected copies and in resends",
            g["duplicates"],
            c["in"]["copy_msgs"] + r["recovery"]["resent"],
        )
        row.eq(
            "generator duplicates = messages in the injected copies",
            r["duplicates"],
            c["out"]["copy_msgs"],
        )
        row.eq("no gap, no retransmission", (g["gaps"], g["retransmitted"]), (0, 0))
        # Replay of the whole capture (logins, orders, heartbeats, logouts) after logout.
        frames = read_pcap(cap)
        mine = [(f, h) for f in frames if (h := to_gateway(f)) is not None]
        app_msgs = sum(n for _, (seq, n) in mine if seq != 0)
        session = [f[66 + i * 64] for f, (seq, n) in mine if seq == 0 for i in range(n)]
        logins = sum(1 for t in session if t == MsgType.LOGIN)
        row.detail["replay"] = {"frames": len(mine), "app_msgs": app_msgs}
        row.check("capture holds the run", app_msgs >= count, app_msgs=app_msgs, orders=count)
        Injector(lab).remove()  # the replay goes through as captured
        before, h0 = gw.stats(), gw.ctl({"cmd": "hash"})["state_hash"]
        q = before["queues"]

        def received() -> int:
            return sum(x["rx_datagrams"] for x in gw.stats()["queues"])

        replay(lab, [f for f, _ in mine], received)
        want_rx = sum(x["rx_datagrams"] for x in q) + len(mine)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            after = gw.stats()
            if sum(x["rx_datagrams"] for x in after["queues"]) >= want_rx:
                break
            time.sleep(0.1)
        a = after["queues"]

        def delta(k: str) -> int:
            return sum(x[k] for x in a) - sum(x[k] for x in q)

        row.eq("replay: every frame reached the gateway", delta("rx_datagrams"), len(mine))
        row.eq("replay: nothing applied", delta("applied"), 0)
        row.eq("replay: same state hash", gw.ctl({"cmd": "hash"})["state_hash"], h0)
        row.eq("replay: no login accepted", delta("logins"), 0)
        row.detail["replay"] |= {
            k: delta(k) for k in ("not_logged_in", "login_rejects", "duplicates", "gaps")
        }
        # Every replayed login refused (a replayed proof); every other message counted once
        # as arriving for a session that is not logged in.
        row.eq("replay: each replayed login refused", delta("login_rejects"), logins)
        row.eq(
            "replay: each other replayed message counted as not logged in",
            delta("not_logged_in"),
            app_msgs + len(session) - logins,
        )
        cap.unlink(missing_ok=True)

    return wire_run(
        "dup",
        lab,
        mode,
        FaultSpec(dup=0.05, burst=3, seed=seed),
        count,
        extra,
        capture=cap,
        rate=CAPTURE_RATE,
    )


# -- kill -9 at random points --------------------------------------------------------------------


def kill9(gw: Gateway) -> None:
    assert gw.proc is not None
    os.killpg(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait()
    gw.proc = None


def session_next_in(gw: Gateway) -> dict[int, int]:
    return {s["id"]: s["next_in"] for s in gw.ctl({"cmd": "sessions"})["sessions"]}


def recovered_hashes(gw: Gateway) -> list[str]:
    """The state hash of each queue as recovery logged it at the last start (before any new
    traffic was applied)."""
    return re.findall(r"recovered q\d+: state_hash=(0x[0-9a-f]+)", gw.log_path.read_text())


KILL_PHASES = ("login", "rotation", "reservation", "retransmission", "steady")
KILL_SEGMENT_MB = 1  # small segments: rotations every second or so
RESERVE_STEP = 256 << 10  # what the queue thread reserves at a time (no preparer thread)


def kill_plan(kills: int, rnd: random.Random) -> list[str]:
    """The phase each kill point aims at: every phase once and login once more first (so a
    short run covers them all), then login 20 %, rotation 20 %, reservation 15 %,
    retransmission 20 %, steady 25 %."""
    first = (*KILL_PHASES, "login")
    head = list(first[: min(kills, len(first))])
    weights = (20, 20, 15, 20, 25)
    rest = rnd.choices(KILL_PHASES, weights=weights, k=max(0, kills - len(head)))
    return head + rest


def segment_data_len(path: Path) -> int:
    """Bytes of records a segment holds (up to its first zero `len` word or a record that
    does not fit; after the 32-byte header)."""
    data = path.read_bytes()
    off = 32
    while off + 4 <= len(data):
        n = struct.unpack_from("<I", data, off)[0]
        if n == 0 or off + n > len(data):
            break
        off += n
    return off - 32


def rotation_evidence(journal_dir: Path) -> dict[str, Any] | None:
    """A queue of the crashed journal that had just rotated: its newest segment holds under
    64 KiB, or the one before it still has its full size (the kill came between the two steps
    of a rotation: new segment made, old one not cut yet)."""
    for q, qdir in queue_dirs(journal_dir).items():
        segs = sorted(qdir.glob("*.xjl"))
        if len(segs) < 2:
            continue
        prev_full = segs[-2].stat().st_size == KILL_SEGMENT_MB << 20
        new_len = segment_data_len(segs[-1])
        if prev_full or new_len < 64 << 10:
            return {"queue": q, "segment": segs[-1].name, "bytes": new_len,
                    "previous_uncut": prev_full}  # fmt: skip
    return None


def login_at_kill(attempts: list[list[int]], kill_ns: int) -> str | None:
    """Where a login of the generator stood at `kill_ns`, if one was under way (started and
    not answered: until its answer, or the session's next attempt when none came): "announced"
    (its Login not sent yet: it reaches a dead or restarting gateway) or "in_flight" (sent,
    answer not received). Attempts are the report's [session, started, sent, answered,
    result]."""
    by_sid: dict[int, list[tuple[int, int, int]]] = {}
    for sid, started, sent, done, _result in attempts:
        by_sid.setdefault(sid, []).append((started, sent, done))
    for tries in by_sid.values():
        for i, (started, sent, done) in enumerate(tries):
            until = done or (tries[i + 1][0] if i + 1 < len(tries) else 1 << 63)
            if started <= kill_ns < until:
                return "in_flight" if sent and sent <= kill_ns else "announced"
    return None


class KillDriver:
    """Kills xdpexd at the moment a phase asks for: `login` from the generator's stderr line at
    each Login it sends (the kill is made on that thread, at once), the others by polling the
    control socket every 2 ms: `rotation` when a queue's segment count grows, `reservation`
    when a queue's reserved room ahead of its tail is nearly used up (its next batch reserves
    the next 256 KiB), `retransmission` when the gateway's retransmitted count moves; `steady`
    at a random time."""

    def __init__(self, gw: Gateway):
        self.gw = gw
        self.lock = threading.Lock()
        self.armed_login = False
        self.killed = threading.Event()
        self.kill_ns = 0
        self.logins_seen = 0

    def _kill_now(self) -> None:
        assert self.gw.proc is not None
        self.kill_ns = time.time_ns()
        os.killpg(self.gw.proc.pid, signal.SIGKILL)
        self.killed.set()

    def on_line(self, line: str) -> None:
        if not line.startswith("login "):
            return
        with self.lock:
            self.logins_seen += 1
            if self.armed_login and not self.killed.is_set():
                self.armed_login = False
                self._kill_now()

    def _poll(self) -> tuple[list[int], list[int], int]:
        j = self.gw.ctl({"cmd": "journal"})["queues"]
        st = self.gw.stats()["queues"]
        return (
            [len(q["segments"]) for q in j],
            [q["journal_reserved_ahead"] for q in st],
            sum(q["retransmitted"] for q in st),
        )

    def kill(self, phase: str, wait_s: float, timeout: float = 8.0) -> dict[str, Any]:
        """Waits `wait_s`, then for the phase's moment (at most `timeout`), and kills."""
        self.killed.clear()
        time.sleep(wait_s)
        what: dict[str, Any] = {"phase": phase, "triggered": True}
        deadline = time.monotonic() + timeout
        if phase == "login":
            with self.lock:
                self.armed_login = True
            if not self.killed.wait(timeout):
                with self.lock:
                    self.armed_login = False
                    if not self.killed.is_set():
                        what["triggered"] = False
                        self._kill_now()
        elif phase == "steady":
            self._kill_now()
        else:
            segs0, _, rtx0 = self._poll()
            while True:
                segs, ahead, rtx = self._poll()
                hit = (
                    (phase == "rotation" and segs != segs0)
                    or (phase == "reservation" and min(ahead) < 16 << 10)
                    or (phase == "retransmission" and rtx != rtx0)
                )
                if hit or time.monotonic() > deadline:
                    what["triggered"] = hit
                    # (retransmitted: in the last poll interval, 2 ms and the polls' time)
                    what["seen"] = {"segments": segs, "reserved_ahead": ahead,
                                    "retransmitted": rtx - rtx0}  # fmt: skip
                    self._kill_now()
                    break
                rtx0 = rtx
                time.sleep(0.002)
        assert self.gw.proc is not None
        self.gw.proc.wait()
        self.gw.proc = None
        what["kill_ns"] = self.kill_ns
        return what


def scenario_kill(lab: Lab, mode: str, kills: int, seed: int) -> Row:
    """xdpexd serving two queues (a two-queue veth lab of its own; kernel-UDP mode: a
    SO_REUSEPORT socket per queue) and six sessions, three a queue, each trading its queue's
    symbols, killed with SIGKILL at `kills` points of a lossy load (2 % loss both ways, so
    resends and retransmissions are going on; 1 MiB journal segments, so rotations are) and
    restarted at once on the same journal while the generator carries on. The generator logs
    the sessions in one after another (150 ms apart) and each in again every 400 ms, taking a
    new source port whenever a Login lands on the queue that does not own its session. Each
    kill point aims at a phase (KillDriver: login, rotation, reservation, retransmission,
    steady) and is confirmed afterwards from what was found: a Login outstanding at the kill
    (the generator's attempts), a segment just begun in the crashed journal, the reserved room
    nearly used up, the retransmitted count moving. Each crashed journal is kept: replayed
    afterwards by a fresh xdpexd it must give the state hash the restart reported, and the
    sessions' next inbound sequence must be one past what the journal holds. At the end every
    order was answered exactly once, the journal holds each client sequence once, in order,
    and both queues carried orders."""
    row = Row("kill", mode)
    t0 = time.monotonic()
    rnd = random.Random(seed)
    plan = kill_plan(kills, rnd)
    lab2 = Lab(f"{lab.prefix}q2"[:40], queues=2)
    inj = Injector(lab2)
    snaps = Path(tempfile.mkdtemp(prefix=f"xdpex-soak-kill-{mode}-"))
    gw: Gateway | None = None
    points: list[dict[str, Any]] = []
    res: dict[str, Any] = {}
    try:
        lab2.up()
        gw = Gateway(lab2, mode, nsessions=6, queues=2,
                     extra_args=["--segment-mb", str(KILL_SEGMENT_MB)])  # fmt: skip
        inj.apply(FaultSpec(loss=0.02, seed=seed))
        gw.start()
        rate = 4000
        args = _loadgen_args(10**9, seed, rate)
        args[args.index("--duration") + 1] = "3600"
        args[args.index("--drain") + 1] = "20"
        args += ["--login-stagger", "150", "--relogin-ms", "400", "--log-logins"]
        drv = KillDriver(gw)
        procs: list[subprocess.Popen[str]] = []

        def load() -> None:
            try:
                res["r"] = run_loadgen(lab2, gw, gw.sessions, args, timeout=3600,
                                       own_symbols=True, stderr_line=drv.on_line,
                                       started=procs.append)  # fmt: skip
            except Exception as e:  # reported as a failed check below
                res["error"] = f"{type(e).__name__}: {e}"

        t = threading.Thread(target=load, daemon=True)
        t.start()
        for k, phase in enumerate(plan):
            if "error" in res:
                break
            # the first kill inside the staggered first logins, the others 0.2..1.2 s after
            # the restart before
            what = drv.kill(phase, 0.05 if k == 0 else rnd.uniform(0.2, 1.2))
            snap = snaps / f"k{k:03d}"
            shutil.copytree(gw.workdir / "journal", snap / "journal")
            t1 = time.monotonic()
            gw.start()
            what |= {
                "restart_s": round(time.monotonic() - t1, 3),
                "hash": recovered_hashes(gw),
                "snap": str(snap),
                "rotation": rotation_evidence(snap / "journal"),
            }
            points.append(what)
        time.sleep(2)
        if procs:
            procs[0].send_signal(signal.SIGINT)  # stop sending, drain, report
        t.join(150)
        row.check("generator finished", "r" in res, error=res.get("error"))
        if "r" not in res:
            return row
        r = res["r"]
        c, st = quiesce(gw, inj)
        row.detail["injector"] = c
        row.faults_injected = len(points) + sum(c[d]["dropped"] for d in c)
        row.detail["kills"] = len(points)
        row.detail["restart_s_max"] = max((p["restart_s"] for p in points), default=0)
        sent = r["sent"]
        row.orders, row.answered = sent, r["answered"]
        row.lost = sent - r["answered"]
        row.duplicates += r["unmatched"]
        row.eq("kill points", len(points), kills)
        row.eq("generator: every order answered", r["answered"], sent)
        row.eq("generator: no answer without an order, none twice", r["unmatched"], 0)
        rec = r["recovery"]
        row.eq("generator: nothing unrecoverable", (rec["unrecoverable"], rec["out_lost"]), (0, 0))
        inbound = journal_inbound(gw.workdir / "journal")
        check_journal_order(row, inbound, sent)
        # Both queues carried orders (the journal of each, all runs together) and each
        # session's orders went to its own queue's symbols only.
        per_queue = {q: sum(n for sid, recs in inbound.items() if session_queue(sid, 2) == q
                            for _, n in recs) for q in (0, 1)}  # fmt: skip
        row.detail["orders_per_queue"] = per_queue
        row.check("both queues carried orders", min(per_queue.values()) > 0, **{
            f"q{q}": n for q, n in per_queue.items()})  # fmt: skip
        row.eq("no order for another queue's symbol", r["rejects"].get("UNKNOWN_SYMBOL", 0), 0)
        # and the gateway's own per-queue counters since the last restart say the same
        qs = {q["queue"]: {k: q[k] for k in ("applied", "rx_datagrams", "logins", "login_rejects")}
              for q in st["queues"]}  # fmt: skip
        row.detail["last_run_queues"] = qs
        row.check("gateway counters: both queues applied orders since the last restart",
                  sorted(qs) == [0, 1] and all(q["applied"] > 0 for q in qs.values()),
                  queues=qs)  # fmt: skip
        logins = r["logins"]
        row.detail["logins"] = {k: v for k, v in logins.items() if k != "attempts"}
        # (whether any first Login lands on the other queue is chance: 1 in 64 that none does)
        elsewhere = sum(1 for a in logins["attempts"] if a[4] == LoginReason.BOUND_ELSEWHERE)
        row.eq("every Login refused BOUND_ELSEWHERE moved to a new source port",
               logins["rebinds"], elsewhere)  # fmt: skip
        # What each kill point hit, confirmed from what was found.
        phases: dict[str, dict[str, int]] = {p: {"aimed": 0, "confirmed": 0} for p in KILL_PHASES}
        for p in points:
            ev = []
            p["login"] = login_at_kill(logins["attempts"], p["kill_ns"])
            if p["login"] is not None:
                ev.append("login")
            if p["rotation"] is not None:
                ev.append("rotation")
            seen = p.get("seen", {})
            if seen and min(seen["reserved_ahead"]) < 16 << 10:
                ev.append("reservation")
            if seen.get("retransmitted", 0) > 0:
                ev.append("retransmission")
            if not ev:
                ev.append("steady")
            p["evidence"] = ev
            phases[p["phase"]]["aimed"] += 1
            for e in ev:
                phases[e]["confirmed"] += 1
        row.detail["kill_phases"] = phases
        row.detail["login_kills"] = {
            w: sum(1 for p in points if p["login"] == w) for w in ("announced", "in_flight")
        }
        row.detail["points"] = [{k: v for k, v in p.items() if k != "snap"} for p in points]
        for ph in ("login", "rotation", "retransmission"):
            if phases[ph]["aimed"]:
                row.check(f"kill points confirmed during {ph}", phases[ph]["confirmed"] > 0,
                          **phases[ph])  # fmt: skip
        # The final state survives one more kill when idle.
        before = gw.ctl({"cmd": "hash"})["state_hash"]
        drv.kill("steady", 0)
        gw.start()
        row.eq("idle kill: same state hash", gw.ctl({"cmd": "hash"})["state_hash"], before)
        gw.stop()
        # Every crashed journal replays to the hash its restart reported, with the sessions at
        # the sequences the journal holds.
        bad_hash, bad_seq = [], []
        for p in points:
            inbound = journal_inbound(Path(p["snap"]) / "journal")
            want = {sid: 1 + sum(n for _, n in recs) for sid, recs in inbound.items()}
            g = Gateway(lab2, mode, workdir=Path(p["snap"]), queues=2,
                        extra_args=["--segment-mb", str(KILL_SEGMENT_MB)])  # fmt: skip
            g.sessions = gw.sessions
            try:
                g.start()
                h = recovered_hashes(g)
                got = {sid: n for sid, n in session_next_in(g).items() if n > 1 or sid in want}
            finally:
                g.stop()
            if got != want:
                bad_seq.append({"phase": p["phase"], "got": got, "want": want})
            if not h or h != p["hash"]:
                bad_hash.append({"phase": p["phase"], "restart": p["hash"], "replay": h})
            p["same_hash"] = bool(h) and h == p["hash"]
        recovered = {ph: sum(1 for p in points if p["same_hash"] and ph in p["evidence"])
                     for ph in KILL_PHASES}  # fmt: skip
        for ph in KILL_PHASES:
            phases[ph]["same_hash"] = recovered[ph]
        row.detail["recovered_same_hash"] = sum(p["same_hash"] for p in points)
        row.check(
            "every crashed journal replays to its restart's hash",
            not bad_hash,
            mismatches=bad_hash[:5],
            points=len(points),
        )
        row.check(
            "sessions resumed one past the journaled sequence", not bad_seq, mismatches=bad_seq[:5]
        )
    except Exception as e:
        row.check("ran to the end", False, error=f"{type(e).__name__}: {e}")
    finally:
        if gw is not None:
            gw.cleanup()
        inj.remove()
        lab2.down()
        shutil.rmtree(snaps, ignore_errors=True)
        row.seconds = round(time.monotonic() - t0, 1)
        row.ok = not row.failed() and bool(row.checks)
    return row


# -- journal damage ------------------------------------------------------------------------------


def _start_fails(lab: Lab, mode: str, workdir: Path, sessions: Any, extra: list[str]) -> str:
    """Starts xdpexd on `workdir`'s journal; returns its log if it refused to start, else ''."""
    g = Gateway(lab, mode, workdir=workdir, extra_args=extra)
    g.sessions = sessions
    try:
        g.start(timeout=30)
    except WireError:
        return g.log_path.read_text(errors="replace")
    finally:
        g.stop()
    return ""


def scenario_journal(lab: Lab, mode: str, count: int, seed: int) -> Row:
    """A journal of several segments written under load, then damaged four ways, each copy
    offered to a fresh xdpexd: a torn record in an earlier segment, a missing segment, a
    sequence discontinuity in a segment header (each: refused at start, the message naming the
    file and what is wrong), and a disk that fills up while the journal rotates (the daemon
    stops with the file named; restarted with room, it cuts the torn batch and keeps every
    answered order)."""
    row = Row("journal", mode)
    t0 = time.monotonic()
    seg = ["--segment-mb", "1"]
    gw = Gateway(lab, mode, nsessions=4, extra_args=seg)
    work = Path(tempfile.mkdtemp(prefix=f"xdpex-soak-journal-{mode}-"))
    small = work / "small"
    try:
        gw.start()
        r = run_loadgen(lab, gw, gw.sessions, _loadgen_args(count, seed), timeout=300)
        row.orders, row.answered = r["sent"], r["answered"]
        h0 = gw.ctl({"cmd": "hash"})["state_hash"]
        gw.stop()
        q0 = gw.workdir / "journal" / "q0"
        segs = sorted(p.name for p in q0.glob("*.xjl"))
        row.detail["segments"] = len(segs)
        row.check("journal has at least 3 segments", len(segs) >= 3, segments=segs)
        row.eq("intact copy: same hash", recovered_hashes_of(lab, mode, gw, work / "intact"), [h0])

        def damaged(name: str, damage: Callable[[Path], None], want: list[str]) -> None:
            d = work / name
            shutil.copytree(gw.workdir / "journal", d / "journal")
            damage(d / "journal" / "q0")
            log = _start_fails(lab, mode, d, gw.sessions, seg)
            lines = [ln for ln in log.splitlines() if "refusing to start" in ln]
            row.check(
                f"{name}: refused at start, naming it",
                bool(log) and all(w in (lines[0] if lines else "") for w in want),
                line=lines[:1],
                want=want,
                log_tail=log.splitlines()[-3:],
            )
            row.faults_injected += 1

        def tear(q: Path) -> None:
            f = q / segs[0]
            b = bytearray(f.read_bytes())
            b[32 + 40 * 3 + 13] ^= 0xFF  # inside an early record (header + a few records in)
            f.write_bytes(bytes(b))

        def drop(q: Path) -> None:
            (q / segs[1]).unlink()

        def skip_seq(q: Path) -> None:
            f = q / segs[2]
            b = bytearray(f.read_bytes())
            first = struct.unpack_from("<Q", b, 24)[0]
            struct.pack_into("<Q", b, 24, first + 7)
            f.write_bytes(bytes(b))

        damaged(
            "torn record in an earlier segment", tear, [segs[0], "CRC mismatch", "not at the tail"]
        )
        damaged("missing segment", drop, [segs[1], "is missing"])
        damaged(
            "sequence discontinuity in a segment header",
            skip_seq,
            [segs[2], "first_seq", "records missing between them"],
        )
        # A disk that fills while the journal rotates: 1 MiB segments on a 2.2 MiB tmpfs.
        small.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2250k", "tmpfs", str(small)],
            check=True,
            capture_output=True,
        )
        full = Gateway(lab, mode, nsessions=4, workdir=small, extra_args=seg)
        try:
            full.start()
            rf = run_loadgen(
                lab,
                full,
                full.sessions,
                [
                    "--count",
                    str(count),
                    "--batch",
                    "4",
                    "--window",
                    "256",
                    "--duration",
                    "4",
                    "--drain",
                    "1",
                ],
                timeout=120,
            )
            assert full.proc is not None
            rc = full.proc.wait(20)
            log = full.log_path.read_text(errors="replace")
        finally:
            full.stop()
        fail = [ln for ln in log.splitlines() if "No space left on device" in ln]
        row.faults_injected += 1
        row.check(
            "full disk: stopped with status 1, naming the file",
            rc == 1 and bool(fail) and ".xjl" in fail[0] and segs[0] not in fail[0],
            rc=rc,
            line=fail[:1],
        )
        big = work / "roomy"
        big.mkdir()
        shutil.copytree(small / "journal", big / "journal")
        g = Gateway(lab, mode, workdir=big, extra_args=seg)
        g.sessions = full.sessions
        try:
            g.start()
            restart_log = g.log_path.read_text(errors="replace")
        finally:
            g.stop()
        kept = sum(n for recs in journal_inbound(big / "journal").values() for _, n in recs)
        row.check(
            "full disk: restart with room keeps every answered order",
            kept >= rf["answered"] > 0,
            journaled=kept,
            answered=rf["answered"],
            cut=[ln for ln in restart_log.splitlines() if "torn tail" in ln][:2],
        )
    except Exception as e:
        row.check("ran to the end", False, error=f"{type(e).__name__}: {e}")
    finally:
        gw.cleanup()
        subprocess.run(["umount", "-l", str(small)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        row.seconds = round(time.monotonic() - t0, 1)
        row.ok = not row.failed() and bool(row.checks)
    return row


def recovered_hashes_of(lab: Lab, mode: str, gw: Gateway, where: Path) -> list[str]:
    shutil.copytree(gw.workdir / "journal", where / "journal")
    g = Gateway(lab, mode, workdir=where, extra_args=["--segment-mb", "1"])
    g.sessions = gw.sessions
    try:
        g.start()
        return recovered_hashes(g)
    finally:
        g.stop()


# -- storage outages ------------------------------------------------------------------------------


def scenario_storage(lab: Lab, mode: str, outage_s: int, seed: int) -> Row:
    """PostgreSQL (a private cluster, xdpex.services) stopped for `outage_s` seconds under load,
    the persister (which also runs the Redis publisher) killed with SIGKILL and restarted, the
    Redis server killed and started again empty: the gateway answers every order throughout,
    and afterwards the database and the Redis stream hold exactly what the journal says, row
    for row (orders' final states, rejected orders, executions)."""
    import redis as redis_lib
    from sqlalchemy import create_engine, func, select

    from xdpex.models import PersisterPosition
    from xdpex.persister import database_orders, journal_orders
    from xdpex.services import PostgresInstance, RedisInstance

    row = Row("storage", mode)
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"xdpex-soak-storage-{mode}-"))
    pg, rd = PostgresInstance(), RedisInstance()
    gw = Gateway(lab, mode, nsessions=4, extra_args=["--segment-mb", "1"])
    procs: list[subprocess.Popen[bytes]] = []
    res: dict[str, Any] = {}
    prefix = f"soak{os.getpid()}"
    try:
        pg.start()
        rd.start()
        gw.start()
        env = dict(
            os.environ,
            XDPEX_DATABASE_URL=pg.url,
            XDPEX_DB_SCHEMA="",
            XDPEX_JOURNAL_DIR=str(gw.workdir / "journal"),
            XDPEX_STATE_DIR=str(work),
            XDPEX_REDIS_URL=rd.url,
            XDPEX_REDIS_STREAM_PREFIX=prefix,
            XDPEX_PERSIST_BATCH="2000",
        )
        log = open(work / "persister.log", "ab")  # noqa: SIM115 - the children's

        def persister() -> subprocess.Popen[bytes]:
            p = subprocess.Popen(
                [sys.executable, "-m", "xdpex.persister"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            procs.append(p)
            return p

        per = persister()
        rate = 3000
        load_s = outage_s + 8
        count = rate * load_s
        args = _loadgen_args(count, seed, rate)

        def load() -> None:
            try:
                res["r"] = run_loadgen(lab, gw, gw.sessions, args, timeout=load_s * 3 + 120)
            except Exception as e:
                res["error"] = f"{type(e).__name__}: {e}"

        t = threading.Thread(target=load, daemon=True)
        t.start()
        events: list[tuple[float, str]] = []

        def at(sec: float, what: str) -> None:
            time.sleep(max(0.0, start + sec - time.monotonic()))
            events.append((round(time.monotonic() - start, 2), what))

        eng = create_engine(pg.url)

        def db_pos() -> int:
            try:
                with eng.connect() as db:
                    return int(db.scalar(select(func.max(PersisterPosition.journal_seq))) or 0)
            except Exception:
                return -1

        start = time.monotonic()
        at(2, "postgres stopped")
        pos_before = db_pos()
        eng.dispose()
        pg._run("pg_ctl", "stop", "-D", str(pg.data), "-m", "fast", "-w", "-s", log=pg.log)
        answered_during = gw.stats()["queues"][0]["applied"]
        at(2.5, "persister killed (SIGKILL) while postgres is down, restarted")
        per.kill()
        per.wait()
        per = persister()
        at(2 + outage_s, "postgres started again")
        pg.start()
        row.check(
            "matching went on while postgres was down",
            gw.stats()["queues"][0]["applied"] > answered_during,
            applied_at_stop=answered_during,
        )
        at(4 + outage_s, "redis-server killed (SIGKILL)")
        rd.kill()
        at(5 + outage_s, "redis-server started again, empty")
        rd.start()
        at(6 + outage_s, "persister and publisher killed (SIGKILL) and restarted")
        # The persister started while the database was down waited for it and went on.
        deadline = time.monotonic() + 30
        while db_pos() <= max(pos_before, 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        row.check(
            "persister started during the outage waited, then wrote",
            per.poll() is None and db_pos() > max(pos_before, 0),
            alive=per.poll() is None,
            position_before_outage=pos_before,
            position_now=db_pos(),
        )
        per.kill()
        per.wait()
        per = persister()
        t.join(load_s * 3 + 150)
        row.detail["events"] = events
        row.check("generator finished", "r" in res, error=res.get("error"))
        if "r" not in res:
            return row
        r = res["r"]
        row.orders, row.answered = r["sent"], r["answered"]
        row.lost = count - r["answered"]
        row.duplicates += r["unmatched"]
        row.faults_injected = len(events)
        row.eq("generator: every order answered", r["answered"], count)
        row.eq("generator: no answer without an order, none twice", r["unmatched"], 0)
        check_journal_order(row, journal_inbound(gw.workdir / "journal"), count)
        # Caught up: the persister's position at the journal's end and quiet.
        jseq = gw.ctl({"cmd": "stats"})["queues"][0]["journal_seq"]
        deadline = time.monotonic() + 120
        pos = 0
        while time.monotonic() < deadline:
            try:
                with eng.connect() as db:
                    pos = db.scalar(select(func.max(PersisterPosition.journal_seq))) or 0
            except Exception:
                pos = 0
            if pos >= jseq:
                break
            time.sleep(0.2)
        row.eq("persister caught up with the journal", pos, jseq)
        per.terminate()
        per.wait(30)
        want = journal_orders(gw.workdir / "journal")
        with eng.connect() as db:
            got = database_orders(db)
        eng.dispose()
        execs = want.executions
        row.detail["rows"] = {
            "orders": len(want.orders),
            "rejected": len(want.rejected),
            "executions": len(execs),
        }
        row.eq("database orders = journal", len(got.orders), len(want.orders))
        row.eq("database order rows doubled", got.doubled_rows, 0)
        row.check(
            "database order states = journal",
            got.orders == want.orders,
            differing=sum(1 for k, v in want.orders.items() if got.orders.get(k) != v),
        )
        row.eq("database rejected orders = journal", got.rejected, want.rejected)
        row.eq("database executions = journal (count)", len(got.executions), len(execs))
        row.check("database executions = journal", got.executions == execs)
        rc = redis_lib.Redis.from_url(rd.url)
        entries: Any = rc.xrange(f"{prefix}:q0:executions")
        keys = (b"exec_id", b"order_id", b"price", b"qty", b"leaves")
        stream = [(0, *(int(f[k]) for k in keys)) for _, f in entries]
        row.eq("redis stream executions = journal (count)", len(stream), len(execs))
        row.check("redis stream executions = journal, each once", sorted(stream) == execs)
    except Exception as e:
        row.check("ran to the end", False, error=f"{type(e).__name__}: {e}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        gw.cleanup()
        rd.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
        row.seconds = round(time.monotonic() - t0, 1)
        row.ok = not row.failed() and bool(row.checks)
    return row


# -- flood ---------------------------------------------------------------------------------------


def _csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF


def flood_frame(lab: Lab, src: int, sport: int, session: int, seq: int) -> bytes:
    """An Ethernet frame with one NewOrder datagram for `session` from IPv4 `src`:`sport`."""
    from xdpex_proto import codec as xc

    body = xc.NewOrder(
        side=1, ord_type=1, tif=1, symbol_id=1, cl_ord_id=seq, price=10000, qty=1, client_ts=0
    ).encode()
    xe = struct.pack("<HBBIQHHI", 0x4558, 1, 0, session, seq, 1, 24 + len(body), 0) + body
    udp = struct.pack("!HHHH", sport, 9000, 8 + len(xe), 0) + xe  # checksum 0: none (IPv4)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0x4000,
        64,
        17,
        0,
        src.to_bytes(4, "big"),
        socket.inet_aton(lab.gw_ip),
    )
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    mac = bytes.fromhex(lab.gw_mac.replace(":", "")) + bytes.fromhex(lab.tg_mac.replace(":", ""))
    return mac + b"\x08\x00" + ip + udp


@dataclass
class FloodPlan:
    """What the flood sends, per kind, and when."""

    seconds: float
    spoof_rnd: int  # from random sources, with a logged-in session's id: spoofed
    spoof_tg: int  # from the logged-in sessions' own address, other ports: spoofed
    heavy: int  # one source, a session not logged in, at `heavy` datagrams/s (over its rate)
    scatter: int  # random sources (more than the LRU rate table holds), not-logged-in session
    sent: dict[str, int] = field(default_factory=dict)
    heavy_span_s: float = 0.0
    heavy_ns: list[int] = field(default_factory=list)  # when each heavy datagram left


def flood_frames(lab: Lab, plan: FloodPlan, seed: int) -> list[tuple[str, bytes]]:
    """The flood's frames, each tagged with its kind, in a seeded random order."""
    rnd = random.Random(seed)
    tg = int.from_bytes(socket.inet_aton(lab.tg_ip), "big")
    base = int.from_bytes(socket.inet_aton("10.200.0.0"), "big")
    heavy_src = int.from_bytes(socket.inet_aton("10.199.0.1"), "big")
    n = {
        k: int(getattr(plan, k) * plan.seconds)
        for k in ("spoof_rnd", "spoof_tg", "heavy", "scatter")
    }
    frames: list[tuple[str, bytes]] = []
    frames += [
        ("spoof_rnd", flood_frame(lab, base + rnd.randrange(1 << 17), 40000, 1 + i % 4, 1 + i))
        for i in range(n["spoof_rnd"])
    ]
    frames += [
        # (ports below the kernel's ephemeral range, 32768.., where the generator's sockets
        # are: a spoof on a session's own port would be that session's datagram)
        ("spoof_tg", flood_frame(lab, tg, 1024 + rnd.randrange(31000), 1 + i % 4, 1 + i))
        for i in range(n["spoof_tg"])
    ]
    frames += [("heavy", flood_frame(lab, heavy_src, 40001, 7, 1 + i)) for i in range(n["heavy"])]
    frames += [
        ("scatter", flood_frame(lab, base + (1 << 17) + i, 40002, 8, 1 + i))
        for i in range(n["scatter"])
    ]  # every one a new source
    rnd.shuffle(frames)
    return frames


def run_flood(
    lab: Lab, plan: FloodPlan, frames: list[tuple[str, bytes]], stop: threading.Event
) -> None:
    """Sends `frames` evenly over plan.seconds (or until `stop`), counting what was sent."""
    n = {k: 0 for k, _ in frames}
    plan.sent = dict.fromkeys(n, 0)
    sock = socket_in(lab.tg_ns, socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((lab.tg_if, 0))
    t0 = time.monotonic()
    first_heavy = last_heavy = 0.0
    try:
        per_ms = len(frames) / (plan.seconds * 1000)
        for k, (kind, f) in enumerate(frames):
            if stop.is_set():
                break
            if k % 32 == 0:
                ahead = t0 + k / per_ms / 1000 - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            try:
                sock.send(f)
            except OSError:
                continue  # (ENOBUFS: the sender itself is over; not sent, not counted)
            plan.sent[kind] += 1
            if kind == "heavy":
                last_heavy = time.monotonic()
                first_heavy = first_heavy or last_heavy
                plan.heavy_ns.append(time.monotonic_ns())
    finally:
        sock.close()
    plan.heavy_span_s = last_heavy - first_heavy


def gcra_allowed(times_ns: list[int], pps: int, burst: int) -> int:
    """How many of datagrams arriving at `times_ns` the XDP program's GCRA admits (xdpex_gcra in
    xdp/xdpex_maps.h: pass when tat - now <= (burst - 1) * interval, then tat += interval)."""
    interval = 1_000_000_000 // pps
    tol = (burst - 1) * interval
    tat, n = 0, 0
    for now in times_ns:
        if tat == 0:  # a new source: admitted, tat = now + interval
            tat, n = now + interval, 1
            continue
        t = max(tat, now)
        if t - now <= tol:
            tat, n = t + interval, n + 1
    return n


def veth_drops(lab: Lab) -> int:
    """Frames the lab's veth pair dropped (its tx on the traffic side, rx on the gateway's)."""
    total = 0
    for ns, ifn, what in (
        (lab.tg_ns, lab.tg_if, "tx_dropped"),
        (lab.gw_ns, lab.gw_if, "rx_dropped"),
    ):
        out = subprocess.run(
            lab.netns_cmd(ns, ["cat", f"/sys/class/net/{ifn}/statistics/{what}"]),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        total += int(out.strip())
    return total


def udp_rcvbuf_errors(lab: Lab) -> int:
    """Udp RcvbufErrors of the gateway's namespace (/proc/net/snmp there)."""
    out = subprocess.run(
        lab.netns_cmd(lab.gw_ns, ["cat", "/proc/net/snmp"]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    head, vals = [ln.split() for ln in out.splitlines() if ln.startswith("Udp:")][:2]
    return int(vals[head.index("RcvbufErrors")])


def scenario_flood(
    lab: Lab, mode: str, seconds: int, seed: int, xdp_filter: bool | None = None
) -> Row:
    """A flood at 10x the legitimate rate while four sessions trade at 1,000 orders/s (one a
    datagram): from random sources with logged-in sessions' ids, from the sessions' own address
    on other ports (spoofed), one source far over the per-source rate, and more distinct sources
    than the XDP program's LRU rate table holds (65,536). Legitimate p99 within 2x of the same
    run's baseline; in AF_XDP mode the spoofed datagrams are dropped by the XDP program exactly
    and the heavy source gets what the GCRA arithmetic allows (burst + rate x time), no more
    however many sources the table evicts meanwhile. Kernel-UDP mode runs with the same program
    in front of its socket (--xdp-filter, the lab's default) and is checked alike, plus: no
    spoofed datagram reached the shard. (Without the filter, `xdp_filter=False`, the shard
    refuses the spoofed datagrams, counted exactly, and the rest are answered as not logged
    in.)"""
    row = Row("flood", mode)
    t0 = time.monotonic()
    pps, burst = 5000, 256  # per source: the legitimate one sends 1,000/s with jitter
    legit = 1000
    gw = Gateway(
        lab,
        mode,
        nsessions=8,
        config_extra={"rate": {"pps": pps, "burst": burst}},
        xdp_filter=xdp_filter,
    )
    plan = FloodPlan(
        seconds=seconds,
        spoof_rnd=2500,
        spoof_tg=2500,
        heavy=8000,
        scatter=max(2000, 70000 // seconds),
    )
    try:
        gw.start()
        legit_args = [
            "--count",
            str(legit * seconds),
            "--batch",
            "1",
            "--rate",
            str(legit),
            "--duration",
            str(seconds * 2 + 10),
            "--drain",
            "5",
        ]
        base = run_loadgen(lab, gw, gw.sessions[:4], legit_args, timeout=seconds * 4 + 60)
        st0 = gw.stats()
        rcvbuf0, veth0 = udp_rcvbuf_errors(lab), veth_drops(lab)
        stop = threading.Event()
        frames = flood_frames(lab, plan, seed)
        # The flood starts once the four sessions are logged in (so their bindings exist) and
        # ends before they log out: the generator runs 2 s longer than the flood.
        flood_args = list(legit_args)
        flood_args[1] = str(legit * (seconds + 2))
        res: dict[str, Any] = {}

        def load() -> None:
            try:
                res["r"] = run_loadgen(
                    lab, gw, gw.sessions[:4], flood_args, timeout=seconds * 4 + 60
                )
            except Exception as e:
                res["error"] = f"{type(e).__name__}: {e}"

        lt = threading.Thread(target=load, daemon=True)
        lt.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            up = [x for x in gw.ctl({"cmd": "sessions"})["sessions"] if x["id"] <= 4]
            if len(up) == 4 and all(x["state"] == "logged_in" for x in up):
                break
            time.sleep(0.01)
        time.sleep(0.2)  # (and the generator's first orders are on their way)
        run_flood(lab, plan, frames, stop)
        lt.join(seconds * 4 + 90)
        if "r" not in res:
            raise RuntimeError(f"legitimate load under flood: {res.get('error', 'no result')}")
        under = res["r"]
        time.sleep(0.5)
        st1 = gw.stats()
        row.orders = base["sent"] + under["sent"]
        row.answered = base["answered"] + under["answered"]
        row.lost = row.orders - row.answered
        row.duplicates = base["unmatched"] + under["unmatched"]
        row.faults_injected = sum(plan.sent.values())
        p50b, p99b = base["rtt_us"]["p50"], base["rtt_us"]["p99"]
        p99f = under["rtt_us"]["p99"]
        row.detail |= {
            "plan": asdict(plan),
            "rtt_us": {"baseline": base["rtt_us"], "flood": under["rtt_us"]},
            "uptime": os.getloadavg(),
        }
        legit_dgrams = under["datagrams"]
        row.check(
            "flood at >= 10x the legitimate rate",
            row.faults_injected >= 10 * legit_dgrams * 0.95,
            flood=row.faults_injected,
            legit_datagrams=legit_dgrams,
        )
        row.eq(
            "legitimate orders answered (baseline, flood)",
            (base["answered"], under["answered"]),
            (base["sent"], under["sent"]),
        )
        row.check(
            "legitimate p99 within 2x of the baseline",
            p99f <= 2 * p99b,
            baseline_p99_us=p99b,
            flood_p99_us=p99f,
            baseline_p50_us=p50b,
        )

        def d(k: str) -> int:
            return sum(q[k] for q in st1["queues"]) - sum(q[k] for q in st0["queues"])

        spoofed = plan.sent["spoof_rnd"] + plan.sent["spoof_tg"]
        row.detail["xdp_filter"] = gw.xdp_filter
        if mode == "afxdp" or gw.xdp_filter:
            x0, x1 = st0["xdp_counters"], st1["xdp_counters"]

            def dx(k: str) -> int:
                return int(x1[k] - x0[k])

            # (the veth drops what its peer's XDP ring cannot take in a burst: those frames
            # never reached the program; the kernel counts them, not by kind)
            vd = veth_drops(lab) - veth0
            row.detail["veth_dropped"] = vd
            row.check(
                "XDP: spoofed datagrams dropped, exactly (less what the veth dropped)",
                spoofed - vd <= dx("spoofed_cnt") <= spoofed,
                dropped=dx("spoofed_cnt"),
                spoofed_sent=spoofed,
                veth_dropped=vd,
            )
            allowed = plan.sent["heavy"] - dx("rate_limit_cnt")
            want = gcra_allowed(plan.heavy_ns, pps, burst)
            row.detail["gcra"] = {
                "heavy_sent": plan.sent["heavy"],
                "allowed": allowed,
                "expected": want,
                "span_s": plan.heavy_span_s,
                "burst_plus_rate_x_time": round(burst + pps * plan.heavy_span_s),
                "rate_limited": dx("rate_limit_cnt"),
            }
            row.check(
                "XDP: the heavy source got what GCRA allows on its send times, evictions or not",
                abs(allowed - want) <= vd + 2 + 0.01 * want,
                allowed=allowed,
                expected=want,
            )
            # (rate_limit_cnt counts every source: the legitimate one lost nothing, so the
            # count is the heavy source's)
            row.eq(
                "legitimate source: nothing lost (no SequenceGap, no resend)",
                (under["recovery"]["seq_gaps"], under["recovery"]["resent"]),
                (0, 0),
            )
            if mode == "udp":
                # (the filter dropped them: the socket and the shard never saw one)
                row.eq("udp: no spoofed datagram reached the shard", d("spoofed"), 0)
        else:
            # What the kernel socket could not take (its receive buffer full) or the veth
            # dropped never reached the shard: counted by the kernel (Udp RcvbufErrors of the
            # gateway's namespace, the veth's drop counters).
            lost_k = udp_rcvbuf_errors(lab) - rcvbuf0 + veth_drops(lab) - veth0
            row.detail["kernel_rcvbuf_errors"] = lost_k
            row.check(
                "shard: spoofed datagrams refused, exactly (less what the kernel dropped)",
                spoofed - lost_k <= d("spoofed") <= spoofed,
                refused=d("spoofed"),
                spoofed_sent=spoofed,
                kernel_dropped=lost_k,
            )
    except Exception as e:
        row.check("ran to the end", False, error=f"{type(e).__name__}: {e}")
    finally:
        gw.cleanup()
        row.seconds = round(time.monotonic() - t0, 1)
        row.ok = not row.failed() and bool(row.checks)
    return row


SCENARIOS: dict[str, Callable[[Lab, str, int, int], Row]] = {
    "loss": scenario_loss,
    "dup": scenario_dup,
    "reorder": scenario_reorder,
    "kill": scenario_kill,
    "journal": scenario_journal,
    "storage": scenario_storage,
    "flood": scenario_flood,
}


def run_all(scale: str, only: list[str], modes: list[str], seed: int, prefix: str) -> list[Row]:
    rows: list[Row] = []
    lab = Lab(prefix)
    lab.up()
    try:
        for name, fn in SCENARIOS.items():
            if only and name not in only:
                continue
            for mode in modes:
                row = fn(lab, mode, SCALES[scale][name], seed)
                print(
                    json.dumps(row.summary() | {"seconds": row.seconds, "failed": row.failed()}),
                    flush=True,
                )
                rows.append(row)
    finally:
        lab.down()
    return rows


def figures_md(rows: list[dict[str, Any]], command: str, load: str) -> str:
    """The "Latest figures" section of docs/RELIABILITY.md for the rows of a run."""
    out = [
        "## Latest figures",
        "",
        f"`{command}` on this 2-core machine shared with other sessions ({load}). One row per",
        "scenario and mode, as in build/soak/summary.json; seconds are the scenario's wall time;",
        "the last column names the checks that failed.",
        "",
        "| scenario | mode | orders | answered | lost | duplicates | faults injected | ok | s "
        "| failed checks |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for r in rows:
        failed = ", ".join(k for k, v in r["checks"].items() if not v["ok"]) or "-"
        out.append(
            f"| {r['scenario']} | {r['mode']} | {r['orders']:,} | {r['answered']:,} | "
            f"{r['lost']:,} | {r['duplicates']:,} | {r['faults_injected']:,} | "
            f"{'yes' if r['ok'] else 'NO'} | {r['seconds']} | {failed} |"
        )
    extra = []
    for r in rows:
        d = r["detail"]
        if r["scenario"] == "flood" and "rtt_us" in d:
            b, f = d["rtt_us"]["baseline"], d["rtt_us"]["flood"]
            g = d.get("gcra", {})
            extra.append(
                f"- flood {r['mode']}: legitimate RTT p50/p99 {b['p50']:.0f}/{b['p99']:.0f} "
                f"µs alone, {f['p50']:.0f}/{f['p99']:.0f} µs under the flood "
                f"(p99 ratio {f['p99'] / max(b['p99'], 1e-9):.2f}); flood datagrams "
                f"{r['faults_injected']:,}"
                + (
                    f"; heavy source admitted {g['allowed']:,} of {g['heavy_sent']:,}, "
                    f"GCRA on its send times {g['expected']:,}"
                    if g
                    else ""
                )
            )
        if r["scenario"] == "kill" and "kills" in d:
            same = d.get("recovered_same_hash", "?")
            ph = d.get("kill_phases", {})
            per = "; ".join(
                f"{name} {v['aimed']} aimed, {v['confirmed']} confirmed, "
                f"{v.get('same_hash', '?')} same hash"
                for name, v in ph.items()
            )
            q = d.get("orders_per_queue", {})
            lg = d.get("logins", {})
            extra.append(
                f"- kill {r['mode']}: {d['kills']} kill points, {same} of {d['kills']} "
                f"recovered to the same hash as a fresh replay of the crashed journal; slowest "
                f"restart {d['restart_s_max']} s; orders per queue "
                f"{', '.join(f'q{k} {v:,}' for k, v in q.items())}; logins "
                f"{lg.get('accepted', 0):,} accepted of {lg.get('sent', 0):,} sent, "
                f"{lg.get('rebinds', 0)} moved to a new source port (BOUND_ELSEWHERE). Kill "
                f"points by phase (a point confirmed in several phases counts in each): {per}"
                + (
                    f"; of the login kills {d['login_kills']['announced']} came before the "
                    f"Login left, {d['login_kills']['in_flight']} with it on its way"
                    if "login_kills" in d
                    else ""
                )
            )
    if extra:
        out += ["", *extra]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="xdpex-soak", description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="full")
    p.add_argument("--only", default="", help="comma-separated scenarios (default all)")
    p.add_argument("--modes", default="afxdp,udp")
    p.add_argument("--seed", type=int, default=20261203)
    p.add_argument("--prefix", default=f"soak{os.getpid() % 100000}")
    p.add_argument("--out", type=Path, default=build_dir() / "soak" / "summary.json")
    p.add_argument("--doc", type=Path, help='rewrite this file\'s "## Latest figures" section')
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of --out for the scenarios and modes not run now",
    )
    a = p.parse_args(argv)
    only = [s for s in a.only.split(",") if s]
    bad = [s for s in only if s not in SCENARIOS]
    if bad:
        p.error(f"unknown scenario {', '.join(bad)}; known: {', '.join(SCENARIOS)}")
    t0 = time.monotonic()
    rows = run_all(a.scale, only, a.modes.split(","), a.seed, a.prefix)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    detail = a.out.with_name(a.out.stem + "-detail.json")
    out_rows = [asdict(r) for r in rows]
    if a.merge and detail.exists():  # rows of this run replace the same scenario and mode
        mine = {(r["scenario"], r["mode"]) for r in out_rows}
        kept = [r for r in json.loads(detail.read_text()) if (r["scenario"], r["mode"]) not in mine]
        order = list(SCENARIOS)
        out_rows = sorted(kept + out_rows, key=lambda r: (order.index(r["scenario"]), r["mode"]))
    keys = ("scenario", "mode", "orders", "answered", "lost", "duplicates", "faults_injected")
    summary = [{k: r[k] for k in keys} | {"ok": r["ok"]} for r in out_rows]
    a.out.write_text(json.dumps(summary, indent=1) + "\n")
    detail.write_text(json.dumps(out_rows, indent=1) + "\n")
    if a.doc is not None:
        text = a.doc.read_text()
        head = text.split("## Latest figures")[0]
        load = "load average {:.1f} {:.1f} {:.1f} at the end".format(*os.getloadavg())
        if not only:
            cmd = "make soak"
        elif a.merge:
            cmd = f'make soak, then SOAK_ARGS="--only {",".join(only)} --merge" make soak'
        else:
            cmd = f'SOAK_ARGS="--only {",".join(only)}" make soak'
        a.doc.write_text(head + figures_md(out_rows, cmd, load))
    print(
        f"soak: {sum(r.ok for r in rows)} of {len(rows)} rows ok in "
        f"{time.monotonic() - t0:.0f} s; {a.out}",
        file=sys.stderr,
    )
    return 0 if rows and all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
