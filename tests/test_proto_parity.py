"""Differential test of the two parsers: include/xdpex/parse.h (through `test_golden --parse`) and
xdpex_proto.codec.decode_datagram must give the same verdict, code and text for thousands of
datagrams mutated from the golden vectors (flipped bytes, header fields set to edge values,
truncation, extension, message types swapped), in every direction mode."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from xdpex_proto import codec as c
from xdpex_proto.golden import load_vectors

TOP = Path(__file__).resolve().parents[1]
BIN = TOP / "build" / "tests" / "test_golden"
TYPES = [int(t) for t in c.MsgType] + [0x00, 0x09, 0x7F, 0x80, 0x89, 0xFF]


@pytest.fixture(scope="module")
def c_parser() -> Path:
    # Built by `make build`; rebuilt here (a no-op when up to date) so the test runs on its own.
    subprocess.run(["make", "-s", "-C", str(TOP), "proto-build"], check=True)
    assert BIN.is_file(), f"{BIN} was not built"
    return BIN


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    op = rng.randrange(9)
    if op == 0 and b:  # flip a header byte
        b[rng.randrange(min(len(b), c.HDR_SIZE))] ^= 1 << rng.randrange(8)
    elif op == 1 and b:  # any byte anywhere
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 2:  # truncate
        del b[rng.randrange(len(b) + 1) :]
    elif op == 3:  # extend
        b += rng.randbytes(rng.choice([1, 4, 63, 64, 128]))
    elif op == 4 and len(b) >= c.HDR_SIZE:  # count to an edge value
        b[16:18] = rng.choice([0, 1, 2, 21, 22, 23, 0xFFFF]).to_bytes(2, "little")
    elif op == 5 and len(b) >= c.HDR_SIZE:  # length to an edge value
        n = int.from_bytes(b[16:18], "little")
        b[18:20] = (rng.choice([0, 24, 24 + 64 * n, 88 + 64 * n, 0xFFFF]) & 0xFFFF).to_bytes(
            2, "little"
        )
    elif op == 6 and len(b) > c.HDR_SIZE:  # a message type
        i = rng.randrange((len(b) - c.HDR_SIZE + 63) // 64)
        if c.HDR_SIZE + 64 * i < len(b):
            b[c.HDR_SIZE + 64 * i] = rng.choice(TYPES)
    elif op == 7 and len(b) >= c.HDR_SIZE:  # flags
        b[3] = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 0x84, 0xFF])
    elif op == 8 and len(b) >= c.HDR_SIZE:  # seq and session edges
        b[8:16] = rng.choice([0, 1, (1 << 64) - 1, (1 << 64) - 21]).to_bytes(8, "little")
        if rng.random() < 0.2:
            b[4:8] = bytes(4)
    return bytes(b)


def py_verdict(data: bytes, d: int) -> str:
    try:
        dg = c.decode_datagram(data, c.Direction(d))
    except c.ProtocolError as e:
        return f"{e.code.c_name} {e.text}"
    return f"XE_PERR_OK {len(dg.messages)}"


def test_c_and_python_parsers_agree(c_parser: Path) -> None:
    rng = random.Random(20240601)
    seeds = [v.data for v in load_vectors()]
    cases: list[tuple[int, bytes]] = []
    for _ in range(6000):
        data = rng.choice(seeds)
        for _ in range(rng.choice([1, 1, 2, 3])):
            data = mutate(rng, data)
        cases.append((rng.randrange(3), data))
    stdin = "".join(f"{d} {data.hex()}\n" for d, data in cases)
    out = subprocess.run([str(c_parser), "--parse"], input=stdin, capture_output=True, text=True,
                         check=True, timeout=60).stdout.splitlines()  # fmt: skip
    assert len(out) == len(cases)
    mismatches = []
    verdicts = set()
    for (d, data), c_line in zip(cases, out, strict=True):
        py_line = py_verdict(data, d)
        verdicts.add(py_line.split()[0])
        if py_line != c_line:
            mismatches.append(f"dir={d} {data.hex()}\n  C:  {c_line}\n  Py: {py_line}")
    assert not mismatches, f"{len(mismatches)} disagreements, first:\n" + "\n".join(mismatches[:5])
    # The mutations reach every verdict, so the comparison covers every check.
    assert verdicts == {"XE_PERR_OK"} | {e.c_name for e in c.ParseError}
