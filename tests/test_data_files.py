"""The data files the tests and benchmarks read are in the repository, byte for byte the ones
data/SHA256SUMS names (a clean clone needs nothing beside it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"


def test_data_files_match_their_digests() -> None:
    lines = (DATA / "SHA256SUMS").read_text().split("\n")
    pinned = dict(reversed(line.split(None, 1)) for line in lines if line.strip())
    assert pinned, "data/SHA256SUMS lists no file"
    for name, digest in pinned.items():
        path = DATA / name.strip()
        assert path.is_file(), f"{path}: missing (data/README.md says what it is)"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path}: digest differs"
