"""docs/protocol.md against the codec: every layout table (header and the 16 messages) must list
the codec's fields at the same offsets, sizes and types, tile the 24 or 64 bytes without holes, and
the enumeration tables must hold the codec's values. The codec is tied to proto.h by the golden
vectors, so the prose cannot drift from the header silently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from xdpex_proto import codec as c

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
TYPES = {"B": ("u8", 1), "H": ("u16", 2), "I": ("u32", 4), "Q": ("u64", 8), "q": ("i64", 8)}


def tables() -> dict[str, list[list[str]]]:
    """Markdown tables keyed by the heading above them."""
    out: dict[str, list[list[str]]] = {}
    heading = ""
    for line in DOC.read_text().splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and not line.startswith("| ---"):
            cells = [x.strip() for x in line.strip().strip("|").split("|")]
            out.setdefault(heading, []).append(cells)
    return out


def codec_layout(
    layout: str, names: tuple[str, ...], off: int = 0
) -> list[tuple[int, int, str, str]]:
    """(offset, size, type, name) of the non-pad fields of a struct format from `off` on."""
    out, i = [], 0
    for tok in re.findall(r"\d*[a-zA-Z]", layout):
        n = int(tok[:-1] or 1)
        ch = tok[-1]
        if ch == "x":
            off += n
        elif ch == "s":
            out.append((off, n, "bytes", names[i]))
            off, i = off + n, i + 1
        else:
            t, size = TYPES[ch]
            for _ in range(n):
                out.append((off, size, t, names[i]))
                off, i = off + size, i + 1
    return out


def doc_layout(rows: list[list[str]], total: int) -> list[tuple[int, int, str, str]]:
    assert rows[0][:4] == ["offset", "size", "type", "field"]
    fields, expect_off = [], 0
    for r in rows[1:]:
        off, size, typ, name = int(r[0]), int(r[1]), r[2], r[3]
        assert off == expect_off, f"hole or overlap before {name} at {off}"
        expect_off = off + size
        if typ != "-":
            fields.append((off, size, typ, name))
        else:
            assert name.startswith("pad")
    assert expect_off == total
    return fields


TABLES = tables()


def test_header_table() -> None:
    rows = TABLES["Datagram header (24 bytes, `struct xe_hdr`)"]
    names = ("magic", "version", "flags", "session_id", "seq", "count", "length", "reserved")
    assert doc_layout(rows, c.HDR_SIZE) == codec_layout("HBBIQHHI", names)


@pytest.mark.parametrize("cls", list(c.MESSAGE_TYPES.values()), ids=lambda k: k.__name__)
def test_message_table(cls: type[c.Message]) -> None:
    (heading,) = [h for h in TABLES if re.search(rf"\(0x{int(cls.TYPE):02x}, ", h)]
    want = [(0, 1, "u8", "type")] + codec_layout(cls.LAYOUT, cls.FIELDS, 1)
    assert doc_layout(TABLES[heading], c.MSG_SIZE) == want


def test_message_type_table() -> None:
    rows = TABLES["Message types (`enum xe_msg_type`)"][1:]
    assert {(int(r[0], 16), r[1]) for r in rows} == {(int(t), "XE_" + t.name) for t in c.MsgType}
    for r in rows:
        t = c.MsgType(int(r[0], 16))
        assert (r[3] == "session") == (t in c.SESSION_TYPES)


@pytest.mark.parametrize(
    "heading,enum,prefix",
    [
        ("Reject reasons (`enum xe_reject_reason`, Rejected.reason)", c.RejectReason, "XE_REJ_"),
        ("Login reject reasons (`enum xe_login_reason`, LoginRejected.reason)", c.LoginReason,
         "XE_LOGIN_"),
        ("Cancel reasons (`enum xe_cancel_reason`, Cancelled.reason)", c.CancelReason, "XE_CXL_"),
    ],
)  # fmt: skip
def test_reason_tables(heading: str, enum: type, prefix: str) -> None:
    rows = TABLES[heading][1:]
    assert {(int(r[0]), r[1]) for r in rows} == {(int(e), prefix + e.name) for e in enum}


def test_small_enum_and_error_tables() -> None:
    rows = TABLES["Enumerations"][1:]
    got = {(r[0], int(r[1]), r[2]) for r in rows}
    want = set()
    enums = [
        (c.Side, "xe_side", "XE_"),
        (c.OrdType, "xe_ord_type", "XE_ORD_"),
        (c.Tif, "xe_tif", "XE_TIF_"),
        (c.Liquidity, "xe_liquidity", "XE_LIQ_"),
        (c.LogoutReason, "xe_logout_reason", "XE_LOGOUT_"),
    ]
    for enum, name, prefix in enums:
        want |= {(name, int(e), prefix + e.name) for e in enum}
    assert got == want
    errs = TABLES["Parsers (parse.h, codec.py)"][1:]
    assert {(int(r[0]), r[1]) for r in errs} == {(int(e), e.c_name) for e in c.ParseError}
