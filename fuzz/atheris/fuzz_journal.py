"""atheris harness of the Python journal reader (proto/xdpex_proto/journal.py, what the
persister, the publisher and the gRPC stream tail): the input becomes a queue directory's segment
files, then JournalReader.poll() reads it to the end. It either returns records or raises
JournalError naming the file; any other exception, or a record that is not what the bytes hold,
is a finding. Session-event payloads go through decode_session_event too.

Input: byte 0 = flags (bit 0 prepend a valid segment header, bit 1 fix CRCs, bit 2 fix seqs), then
segments separated by the 8 bytes "XJSEGEND" (at most 3), as in fuzz/fuzz_journal.c.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import struct
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "proto"))
with atheris.instrument_imports():
    from crc32c import crc32c
    from xdpex_proto import journal as j

SEP = b"XJSEGEND"
# The reader warns about a batch it hands out without its closing record: noise here.
logging.disable(logging.WARNING)
SHM = Path("/dev/shm")
# libFuzzer ends the process from C, past Python's atexit: directories of runs whose process is
# gone are removed here, at the next start.
for old in SHM.glob("xdpex-atheris-journal-*"):
    pid = old.name.rsplit("-", 1)[-1]
    if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
        shutil.rmtree(old, ignore_errors=True)
TMP = SHM / f"xdpex-atheris-journal-{os.getpid()}"
TMP.mkdir(exist_ok=True)
atexit.register(shutil.rmtree, TMP, ignore_errors=True)


def fix(seg: bytearray, flags: int, seq: int) -> int:
    off = j.SEG_HDR_SIZE
    while off + j.REC_HDR_SIZE <= len(seg):
        ln = struct.unpack_from("<I", seg, off)[0]
        if ln < j.REC_HDR_SIZE or ln % 8 or ln > len(seg) - off:
            break
        if flags & 4:
            struct.pack_into("<Q", seg, off + 8, seq)
        if flags & 2:
            struct.pack_into("<I", seg, off + 4, crc32c(bytes(seg[off + 8 : off + ln])))
        seq = (struct.unpack_from("<Q", seg, off + 8)[0] + 1) % 2**64
        off += ln
    return seq


def one(data: bytes) -> None:
    if not data:
        return
    flags = data[0]
    q = TMP / "q0"
    q.mkdir(parents=True, exist_ok=True)
    for f in q.iterdir():
        f.unlink()
    seq = 1
    for no, raw in enumerate(data[1:].split(SEP)[:3], 1):
        seg = bytearray(raw)
        if flags & 1:
            seg[0:0] = j.SEG_HDR.pack(j.SEG_MAGIC, j.VERSION, 0, no, seq)
        seq = fix(seg, flags, seq)
        (q / j.segment_name(no)).write_bytes(bytes(seg))
    r = j.JournalReader(q, stall_s=0.0)
    try:
        for _ in range(8):
            recs = r.poll(1000)
            if not recs:
                break
            for rec in recs:
                assert rec.segment >= 1 and rec.end > 0
                if rec.type == j.RecType.SESSION:
                    j.decode_session_event(rec.payload)
    except j.JournalError as e:
        assert str(e)
    finally:
        r.close()


def main() -> None:
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
