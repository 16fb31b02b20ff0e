"""Reader and writer of the feed's golden vector file (tests/golden/feed_vectors.txt).

The file is a list of entries separated by blank lines; `#` starts a comment line. Each entry is
`key: value` lines:

    name: add_order                 unique name
    kind: PACKET                    PACKET (MoldUDP64 downstream packet), REQUEST (MoldUDP64
                                    request), SNAP_REQUEST (snapshot request) or BLOCKS (message
                                    blocks without a header: a snapshot stream, a journal payload)
    hex: 58445045...                the bytes, lower-case hex, no spaces
    hdr: session=XDPEXQ0 seq=1 count=2      PACKET and REQUEST: the MoldUDP64 header (session
                                    space-padded to 10 bytes); SNAP_REQUEST: session version
                                    symbol_id
    msg: type=ADD_ORDER side=1 ...  PACKET and BLOCKS: one line per message, every non-pad field of
                                    the feed.h struct, in struct order
    error: XF_PERR_SHORT            (malformed PACKET entries, instead of hdr/msg) the parse error
    text: datagram: 3 bytes, ...    the exact error text of feed.h / feed.py

Values are decimal integers (`-` for negative), `0x` hex integers, a message type name for `type=`
and the ASCII name for `session=`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import feed

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "tests" / "golden" / "feed_vectors.txt"
KINDS = ("PACKET", "REQUEST", "SNAP_REQUEST", "BLOCKS")

Fields = dict[str, "int | str"]


@dataclass
class Vector:
    name: str
    kind: str
    data: bytes
    hdr: Fields | None = None
    msgs: list[Fields] = field(default_factory=list)
    error: str | None = None
    text: str | None = None

    @property
    def malformed(self) -> bool:
        return self.error is not None


def _parse_fields(text: str) -> Fields:
    out: Fields = {}
    for item in text.split():
        key, sep, raw = item.partition("=")
        if not sep or key in out:
            raise ValueError(f"bad or repeated field {item!r}")
        out[key] = raw if key in ("type", "session") else int(raw, 0)
    return out


def load_vectors(path: Path | str = DEFAULT_PATH) -> list[Vector]:
    vectors: list[Vector] = []
    cur: dict[str, Any] = {}
    lines = Path(path).read_text().splitlines() + [""]
    for n, line in enumerate(lines, 1):
        if line.startswith("#"):
            continue
        if not line.strip():
            if cur:
                vectors.append(_finish(cur, path, n))
                cur = {}
            continue
        key, sep, val = line.partition(": ")
        if not sep:
            raise ValueError(f"{path}:{n}: expected 'key: value', got {line!r}")
        if key == "msg":
            cur.setdefault("msgs", []).append(_parse_fields(val))
        elif key in cur:
            raise ValueError(f"{path}:{n}: repeated key {key!r}")
        else:
            cur[key] = val
    names = [v.name for v in vectors]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate vector names")
    return vectors


def _finish(cur: dict[str, Any], path: Path | str, n: int) -> Vector:
    try:
        v = Vector(str(cur.pop("name")), str(cur.pop("kind")), bytes.fromhex(str(cur.pop("hex"))))
    except KeyError as e:
        raise ValueError(f"{path}: entry ending at line {n} lacks {e}") from None
    if v.kind not in KINDS:
        raise ValueError(f"{path}: entry {v.name}: kind {v.kind!r} is not one of {KINDS}")
    if "hdr" in cur:
        v.hdr = _parse_fields(str(cur.pop("hdr")))
    v.msgs = cur.pop("msgs", [])
    if "error" in cur:
        v.error = str(cur.pop("error"))
        v.text = str(cur.pop("text"))
    if cur:
        raise ValueError(f"{path}: entry {v.name}: unknown keys {sorted(cur)}")
    if v.kind == "BLOCKS":
        if v.hdr is not None or v.error is not None or not v.msgs:
            raise ValueError(f"{path}: entry {v.name}: BLOCKS entries have msg lines only")
    elif (v.hdr is None) == (v.error is None):
        raise ValueError(f"{path}: entry {v.name}: needs either hdr/msg or error/text")
    return v


def message_fields(m: feed.Message) -> Fields:
    """A message as the `msg:` line's fields: type first, then feed.h's non-pad fields."""
    out: Fields = {"type": m.TYPE.name}
    out.update(m.to_dict())
    return out


def build_message(fields: Fields) -> feed.Message:
    f = dict(fields)
    cls = feed.MESSAGE_TYPES[feed.MsgType[str(f.pop("type"))]]
    return cls(**f)  # type: ignore[arg-type]


def format_vector(v: Vector) -> str:
    lines = [f"name: {v.name}", f"kind: {v.kind}", f"hex: {v.data.hex()}"]
    if v.hdr is not None:
        lines.append("hdr: " + " ".join(f"{k}={x}" for k, x in v.hdr.items()))
    for m in v.msgs:
        lines.append("msg: " + " ".join(f"{k}={x}" for k, x in m.items()))
    if v.error is not None:
        lines += [f"error: {v.error}", f"text: {v.text}"]
    return "\n".join(lines) + "\n"
