"""Reader and writer of the golden vector file format (tests/golden/vectors.txt).

The file is a list of entries separated by blank lines; `#` starts a comment line. Each entry is
`key: value` lines:

    name: new_order_single          unique name
    dir: TO_GW | FROM_GW | AUTO     direction the datagram is parsed in (parse.h enum xe_dir)
    hex: 58450100...                the datagram, lower-case hex, no spaces
    secret: 00112233...             (Login entries only) the session secret the hmac was made with
    hdr: magic=0x4558 version=1 flags=0x04 session_id=7 seq=1 count=1 length=88 reserved=0
    msg: type=NEW_ORDER side=1 ... (one line per message, every non-pad field of the proto.h
                                     struct, in struct order)
    error: XE_PERR_MAGIC            (malformed entries, instead of hdr/msg) the parse error
    text: hdr.magic: 0x5845, ...    the exact error text of parse.h / codec.py

Values in `hdr:`/`msg:` are decimal integers (`-` for negative), `0x` hex integers, a message type
name for `type=` and `ref_type=`, or plain lower-case hex for byte arrays (`hmac=`). Anyone can
use the malformed entries as a table of bad datagrams (the XDP verdict tests, fuzz seeds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import codec

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "tests" / "golden" / "vectors.txt"

Fields = dict[str, "int | bytes | str"]


@dataclass
class Vector:
    name: str
    dir: str
    data: bytes
    hdr: Fields | None = None
    msgs: list[Fields] = field(default_factory=list)
    error: str | None = None
    text: str | None = None
    secret: bytes | None = None

    @property
    def direction(self) -> codec.Direction:
        return codec.Direction[self.dir]

    @property
    def malformed(self) -> bool:
        return self.error is not None


def _parse_value(key: str, raw: str) -> int | bytes | str:
    if key in ("type", "ref_type"):
        return raw
    if key == "hmac":
        return bytes.fromhex(raw)
    return int(raw, 0)


def _parse_fields(text: str) -> Fields:
    out: Fields = {}
    for item in text.split():
        key, sep, raw = item.partition("=")
        if not sep or key in out:
            raise ValueError(f"bad or repeated field {item!r}")
        out[key] = _parse_value(key, raw)
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
        v = Vector(
            name=str(cur.pop("name")),
            dir=str(cur.pop("dir")),
            data=bytes.fromhex(str(cur.pop("hex"))),
        )
    except KeyError as e:
        raise ValueError(f"{path}: entry ending at line {n} lacks {e}") from None
    if "hdr" in cur:
        v.hdr = _parse_fields(str(cur.pop("hdr")))
    v.msgs = cur.pop("msgs", [])
    if "secret" in cur:
        v.secret = bytes.fromhex(str(cur.pop("secret")))
    if "error" in cur:
        v.error = str(cur.pop("error"))
        v.text = str(cur.pop("text"))
    if cur:
        raise ValueError(f"{path}: entry {v.name}: unknown keys {sorted(cur)}")
    if (v.hdr is None) == (v.error is None):
        raise ValueError(f"{path}: entry {v.name}: needs either hdr/msg or error/text")
    return v


def _fmt_value(key: str, v: object) -> str:
    if key in ("type", "ref_type"):
        return v if isinstance(v, str) else codec.msg_type_name(int(v))  # type: ignore[call-overload]
    if isinstance(v, bytes | bytearray):
        return v.hex()
    if key in ("magic", "flags"):
        return f"0x{int(v):0{4 if key == 'magic' else 2}x}"  # type: ignore[call-overload]
    return str(int(v))  # type: ignore[call-overload]


def message_fields(m: codec.Message) -> Fields:
    """A message as the `msg:` line's fields: type first, then proto.h's non-pad fields."""
    out: Fields = {"type": m.TYPE.name}
    for k, v in m.to_dict().items():
        out[k] = codec.msg_type_name(v) if k == "ref_type" else v  # type: ignore[arg-type]
    return out


def header_fields(h: codec.Header) -> Fields:
    return {
        "magic": h.magic, "version": h.version, "flags": h.flags, "session_id": h.session_id,
        "seq": h.seq, "count": h.count, "length": h.length, "reserved": h.reserved,
    }  # fmt: skip


def format_vector(v: Vector) -> str:
    lines = [f"name: {v.name}", f"dir: {v.dir}", f"hex: {v.data.hex()}"]
    if v.secret is not None:
        lines.append(f"secret: {v.secret.hex()}")
    if v.hdr is not None:
        lines.append("hdr: " + " ".join(f"{k}={_fmt_value(k, x)}" for k, x in v.hdr.items()))
        for m in v.msgs:
            lines.append("msg: " + " ".join(f"{k}={_fmt_value(k, x)}" for k, x in m.items()))
    else:
        lines += [f"error: {v.error}", f"text: {v.text}"]
    return "\n".join(lines) + "\n"


def build_message(fields: Fields) -> codec.Message:
    """The codec message a `msg:` line describes."""
    f = dict(fields)
    cls = codec.MESSAGE_TYPES[codec.MsgType[str(f.pop("type"))]]
    if "ref_type" in f:
        ref = str(f["ref_type"])
        f["ref_type"] = int(ref, 16) if ref.startswith("0x") else int(codec.MsgType[ref])
    return cls(**f)
