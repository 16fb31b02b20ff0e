"""The persister and the Redis publisher under high availability (docs/ha.md): they follow the
leader's journal, and only as far as what cannot be lost.

`XDPEX_HA_NODES="JOURNAL_DIR=CTL_SOCKET,JOURNAL_DIR=CTL_SOCKET"` names the gateways of one pair
(their journal directories and control sockets, on this host). `Leader` asks each control
socket for `ha` (at most every 0.1 s) and names the primary that holds its lease (not fenced).
Only records a standby has acknowledged are read (`acked_seq`; with `--repl-missing local` and
no standby, the primary's own journal end): those are on the new primary after any failover,
while an old primary's unacknowledged tail is cut when it rejoins. The journals of a pair are
equal record for record, not byte for byte (segments rotate on each host's own), so a reader
moves to another journal by sequence (`reader_at`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdpex_proto.journal import (
    JournalError,
    JournalReader,
    Record,
    list_segments,
    read_segment_header,
    segment_name,
)

from .dataplane import ControlClient
from .errors import ServiceError


def parse_nodes(text: str) -> list[tuple[Path, Path]]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        jdir, sep, ctl = part.partition("=")
        if not sep or not jdir or not ctl:
            raise ValueError(f"XDPEX_HA_NODES: {part!r}: expected JOURNAL_DIR=CTL_SOCKET")
        out.append((Path(jdir), Path(ctl)))
    if len(out) < 2:
        raise ValueError("XDPEX_HA_NODES: name at least two gateways (JOURNAL_DIR=CTL_SOCKET,...)")
    return out


def reader_at(qdir: Path, last_seq: int, stall_s: float = 2.0) -> JournalReader:
    """A reader of `qdir` positioned right after record `last_seq` (a batch end)."""
    pick: tuple[int, int] | None = None
    for seg in list_segments(qdir):
        first = read_segment_header(qdir / segment_name(seg))[2]
        if first <= last_seq + 1:
            pick = (seg, first)
    if pick is None:
        return JournalReader(qdir, stall_s=stall_s)
    r = JournalReader(qdir, pick[0], 0, pick[1] - 1, stall_s=stall_s)
    while r.last_seq < last_seq:
        recs = r.poll(10000)
        if not recs:
            raise JournalError(f"journal {qdir}: ends at {r.last_seq}, before record {last_seq}")
        if recs[-1].seq > last_seq:
            at = next((i for i, x in enumerate(recs) if x.seq == last_seq), None)
            if at is None:
                raise JournalError(f"journal {qdir}: record {last_seq} not found")
            r.rewind_to(recs[at], recs[at + 1])
    return r


def cut(reader: JournalReader, recs: list[Record], limit: int) -> list[Record]:
    """Keep the records up to `limit`; the reader goes back to re-read the rest later."""
    if not recs or recs[-1].seq <= limit:
        return recs
    keep = [x for x in recs if x.seq <= limit]
    reader.rewind_to(keep[-1] if keep else None, recs[len(keep)])
    return keep


@dataclass
class Lead:
    journal_dir: Path
    limits: dict[int, int]  # queue -> the last record that may be read


class Leader:
    def __init__(self, nodes: list[tuple[Path, Path]], every: float = 0.1):
        self.nodes = nodes
        self.clients = [ControlClient(ctl, timeout=0.5) for _, ctl in nodes]
        self.every = every
        self._at = 0.0
        self._lead: Lead | None = None

    def close(self) -> None:
        for c in self.clients:
            c.close()

    @staticmethod
    def limits(ha: dict[str, Any]) -> dict[int, int]:
        out = {}
        replicated = str(ha.get("durability", "")).startswith("replicated")
        for i, q in enumerate(ha.get("queues", [])):
            seq = int(q.get("journal_seq", 0))
            if replicated and (q.get("standbys") or ha.get("repl_missing") != "local"):
                seq = min(seq, int(q.get("acked_seq", 0)))
            out[int(q.get("queue", i))] = seq
        return out

    def current(self) -> Lead | None:
        now = time.monotonic()
        if now - self._at < self.every:
            return self._lead
        self._at = now
        self._lead = None
        for (jdir, _), cl in zip(self.nodes, self.clients, strict=True):
            try:
                ha = cl.request("ha")
            except ServiceError:
                continue
            if ha.get("role") == "primary" and not ha.get("fenced"):
                self._lead = Lead(jdir, self.limits(ha))
                break
        return self._lead
