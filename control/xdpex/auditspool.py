"""The audit spool: order-entry audit records written ahead to a local file, off the database.

Every order a REST request or gRPC call enters leaves an audit record (who, what, the request,
the result) like any other change, but a database commit per request would be most of the
request's cost (it was: docs/BENCHMARKS.md, "Control plane"). So order entry appends its record
to a spool file instead, with one `write` (the kernel's page cache: it survives a crash of this
process, like the journal with durability `none`), before the orders are sent; the result
follows as a second line once the dataplane answered, before the caller is. The audit writer
thread (xdpex.auditlog) takes what was appended every FLUSH_S or when someone reads the log,
and commits it to the database in its shared transactions.

A file is rotated once it holds ROTATE_BYTES and is removed once everything in it is committed.
At start, `recover` hands back every record of spool files left by an earlier run of the same
process (same `name`), marked so the writer inserts only those not in the database yet (matched
by time, actor, action and target): a crash loses no record and doubles none. A record whose
result line is missing stays `pending` ("attempted, result not recorded"), as with the
database-first audit of configuration changes.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from .errors import Unavailable

ROTATE_BYTES = 4 << 20
FLUSH_S = 0.05  # the writer takes new spool lines at least this often


@dataclass(slots=True)
class SpoolRecord:
    """One line: a begin (values: the row, result `pending`) or a result (values: result)."""

    key: int
    values: dict[str, Any]
    begin: bool
    recovered: bool = False


class AuditSpool:
    """Appends from any thread; `recover`, `take` and `committed` from the writer thread only."""

    def __init__(self, directory: Path, name: str = "audit-spool"):
        self.dir = Path(directory)
        self.name = name
        self._lock = threading.Lock()
        self._gen = 0
        self._fd = -1
        self._cur: Path | None = None
        self._size = 0
        # keys grow across restarts (the clock in microseconds at start, then one a record), so
        # a recovered result line never meets a record of this run
        self._key = time.time_ns() // 1000
        self.appended = 0  # lines appended by this process
        self.taken = 0  # ... of which `take` returned
        self._reading: list[list[Any]] = []  # [path, offset] of files not removed yet
        self._finished: list[list[Any]] = []  # read to their end by the last take
        self._buf: list[bytes] = []  # lines not written yet

    def _path(self, gen: int) -> Path:
        return self.dir / f"{self.name}.{gen:06d}.log"

    # -- recovery (before the first append) ---------------------------------------------------
    def recover(self) -> list[SpoolRecord]:
        """Every record of the spool files an earlier run left, oldest first; the files are
        removed at the first `committed`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        out: list[SpoolRecord] = []
        files = sorted(self.dir.glob(f"{self.name}.[0-9][0-9][0-9][0-9][0-9][0-9].log"))
        for p in files:
            data = p.read_bytes()
            out.extend(_parse(data, recovered=True))
            ent = [p, len(data)]
            self._reading.append(ent)
            self._finished.append(ent)
        if files:
            self._gen = int(files[-1].name.rsplit(".", 2)[-2]) + 1
        return out

    # -- appending (request path) -------------------------------------------------------------
    def _append(self, line: bytes, now: bool = True) -> None:
        """Queue a line; written at once (now) or by the next `flush`."""
        with self._lock:
            self._buf.append(line)
            if now:
                self._write()

    def flush(self) -> None:
        """Write the queued lines (one write): before the orders they record are sent."""
        if self._buf:
            with self._lock:
                self._write()

    def _write(self) -> None:
        if not self._buf:
            return
        if self._fd < 0 or self._size >= ROTATE_BYTES:
            self._rotate()
        data = b"".join(self._buf)
        try:
            n = os.write(self._fd, data)
        except OSError as e:
            raise Unavailable(f"audit spool {self.dir} not writable: {e.strerror}") from e
        self._size += n
        if n != len(data):  # a short write to a regular file: the disk is full
            raise Unavailable(f"audit spool {self.dir}: short write (disk full?)")
        self.appended += len(self._buf)
        self._buf.clear()

    def _rotate(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._gen += 1
        self.dir.mkdir(parents=True, exist_ok=True)
        p = self._path(self._gen)
        self._fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size
        self._cur = p
        self._reading.append([p, self._size])

    def begin(self, row: dict[str, Any], now: bool = True) -> int:
        """Append a record (a row of audit_log, `at` a datetime); returns its key. With
        now=False it is written by the next `flush` (the caller's order-entry session calls it
        before it sends anything)."""
        with self._lock:
            self._key += 1
            key = self._key
        self._append(orjson.dumps({"k": key, **row}) + b"\n", now)
        return key

    def finish(self, key: int, result: str) -> None:
        """Append a record's result, before the caller is answered (with what else is queued:
        one write)."""
        self._append(orjson.dumps({"k": key, "result": result[:256]}) + b"\n")

    # -- taking (writer thread) ---------------------------------------------------------------
    def pending(self) -> bool:
        return bool(self._buf) or self.appended != self.taken or bool(self._finished)

    def take(self) -> list[SpoolRecord]:
        """The complete lines appended since the last take, in order."""
        with self._lock:
            try:
                self._write()
            except Unavailable:
                pass  # the lines stay queued; what is in the files is taken
            entries = list(self._reading)
            current = self._cur
            mark = self.appended
        out: list[SpoolRecord] = []
        for ent in entries:
            p, off = ent
            if p == current or ent not in self._finished:
                with open(p, "rb") as f:
                    f.seek(off)
                    data = f.read()
                end = data.rfind(b"\n") + 1  # a line being appended now waits for next time
                out.extend(_parse(data[:end], recovered=False))
                ent[1] = off + end
            if p != current and ent not in self._finished:
                self._finished.append(ent)  # rotated away: nothing more comes
        self.taken = mark
        return out

    def committed(self) -> None:
        """What `take` (and `recover`) returned is in the database: remove the files done."""
        done, self._finished = self._finished, []
        with self._lock:
            self._reading = [e for e in self._reading if e not in done]
        for p, _ in done:
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        with self._lock:
            try:
                self._write()
            except Unavailable:
                pass
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
                self._cur = None


def _parse(data: bytes, recovered: bool) -> list[SpoolRecord]:
    out = []
    for line in data.splitlines():
        if not line:
            continue
        try:
            d = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a line cut short by a crash: its record was never acted on
        key = d.pop("k")
        if "at" in d:
            d["at"] = datetime.fromisoformat(d["at"])
            out.append(SpoolRecord(key, d, True, recovered))
        else:
            out.append(SpoolRecord(key, d, False, recovered))
    return out
