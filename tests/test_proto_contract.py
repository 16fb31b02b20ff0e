"""The wire codec (xdpex_proto.codec) and the Wireshark dissector (traffic/wireshark/xdpex.lua)
against include/xdpex/proto.h and parse.h as gcc compiles them (tests/contract_support.py).

Any difference fails: a constant, an enum member or value (in either direction: a member the
header has and Python or Lua lacks, or the other way round), a message or header field's name,
offset, size or signedness, which types are session messages and which travel both ways, the
parse errors. The dissector's tables are read from its source, so it needs no tshark here
(tests/test_dissector_lua.py runs it in tshark against the golden vectors).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from contract_support import Contract, Field, read_contract, struct_layout
from xdpex_proto import codec as c

TOP = Path(__file__).resolve().parents[1]
LUA = TOP / "traffic" / "wireshark" / "xdpex.lua"

# proto.h / parse.h enum -> (codec enum, member prefix)
ENUMS = {
    "xe_msg_type": (c.MsgType, "XE_"),
    "xe_side": (c.Side, "XE_"),
    "xe_ord_type": (c.OrdType, "XE_ORD_"),
    "xe_tif": (c.Tif, "XE_TIF_"),
    "xe_liquidity": (c.Liquidity, "XE_LIQ_"),
    "xe_reject_reason": (c.RejectReason, "XE_REJ_"),
    "xe_login_reason": (c.LoginReason, "XE_LOGIN_"),
    "xe_cancel_reason": (c.CancelReason, "XE_CXL_"),
    "xe_logout_reason": (c.LogoutReason, "XE_LOGOUT_"),
    "xe_dir": (c.Direction, "XE_DIR_"),
}
FLAGS = {"RETRANSMIT": c.F_RETRANSMIT, "HEARTBEAT": c.F_HEARTBEAT, "FROM_GW": c.F_FROM_GW}
# parse.h's enums that are its own business (how it reports an error), not the wire's
PARSER_ONLY = {"xe_perr_detail", "xe_msg_kind"}
# Every message type as xe_msg_kind(), xe_msg_dirs() and xe_msg_type_name() of parse.h say.
CLASSIFY = """
	for (unsigned t = 0; t < 256; t++)
		if (xe_msg_kind(t) != XE_KIND_UNKNOWN)
			printf("K %u %d %d %s\\n", t, xe_msg_kind(t), xe_msg_dirs(t), xe_msg_type_name(t));
"""


@pytest.fixture(scope="module")
def h() -> Contract:
    return read_contract("proto.h", "parse.h", extra_c=CLASSIFY)


def comparable(fields: list[Field]) -> list[tuple[str, int, int, bool | None]]:
    """Name, offset, size and (for scalars) signedness of the non-pad fields."""
    return [(f.name, f.offset, f.size, None if f.count else f.signed) for f in fields if not f.pad]


def test_constants(h: Contract) -> None:
    assert h.defines == {
        "XE_MAGIC": c.MAGIC,
        "XE_VERSION": c.VERSION,
        "XE_DEFAULT_PORT": c.DEFAULT_PORT,
        "XE_MAX_PAYLOAD": c.MAX_PAYLOAD,
        "XE_HDR_SIZE": c.HDR_SIZE,
        "XE_MSG_SIZE": c.MSG_SIZE,
        "XE_MAX_MSGS": c.MAX_MSGS,
        "XE_HMAC_SIZE": c.HMAC_SIZE,
        "XE_F_KNOWN": c.F_KNOWN,
        "XE_PERR_MIN": min(c.ParseError),
        "XE_MSG_TO_GW": 1,  # xe_msg_dirs() bits, compared through CLASSIFY below
        "XE_MSG_FROM_GW": 2,
    }
    assert h.enum("xe_flags", "XE_F_") == FLAGS


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enum(h: Contract, name: str) -> None:
    py, prefix = ENUMS[name]
    assert h.enum(name, prefix) == {m.name: m.value for m in py}


def test_parse_errors(h: Contract) -> None:
    want = h.enum("xe_parse_error", "XE_PERR_")
    assert want.pop("OK") == 0  # success, not an error: the codec returns instead of raising
    assert want == {m.name: m.value for m in c.ParseError}


def test_every_enum_of_the_headers_is_checked(h: Contract) -> None:
    assert set(h.enums) == set(ENUMS) | {"xe_flags", "xe_parse_error"} | PARSER_ONLY


def test_header_layout(h: Contract) -> None:
    assert c.HDR_SIZE == h.sizes["xe_hdr"] == c._HDR.size
    assert comparable(struct_layout(c._HDR.format, list(c.HDR_FIELDS))) == comparable(
        h.structs["xe_hdr"]
    )


def _struct_of(cls: type[c.Message]) -> str:
    return "xe_" + cls.TYPE.name.lower()


def test_every_message_struct_has_a_codec_class(h: Contract) -> None:
    messages = {s for s, size in h.sizes.items() if s != "xe_hdr"}
    assert all(h.sizes[s] == c.MSG_SIZE for s in messages)
    assert messages == {_struct_of(cls) for cls in c.MESSAGE_TYPES.values()}
    assert set(c.MESSAGE_TYPES) == {int(t) for t in c.MsgType}


@pytest.mark.parametrize("t", sorted(c.MESSAGE_TYPES), ids=lambda t: c.MsgType(t).name)
def test_message_layout(h: Contract, t: int) -> None:
    cls = c.MESSAGE_TYPES[t]
    py = struct_layout(cls.STRUCT.format, ["type", *cls.FIELDS])
    assert comparable(py) == comparable(h.structs[_struct_of(cls)])


def test_message_kinds_and_directions(h: Contract) -> None:
    rows = [(int(t), int(k), int(d), n) for _, t, k, d, n in h.extra]
    assert {t: n for t, _, _, n in rows} == {int(m): m.name for m in c.MsgType}
    assert {t for t, k, _, _ in rows if k == 1} == set(c.SESSION_TYPES)  # XE_KIND_SESSION
    assert {t for t, _, d, _ in rows if d == 3} == set(c.BOTH_WAYS)
    for t, _, d, _ in rows:  # the codec's rule for the others: below 0x80 = to the gateway
        if t not in c.BOTH_WAYS:
            assert d == (1 if t < 0x80 else 2), hex(t)


# -- the Lua dissector ----------------------------------------------------------------------------

# Lua value-string table -> (header enum, prefix, entries the dissector adds on purpose)
LUA_TABLES = {
    "msg_types": ("xe_msg_type", "XE_", {}),
    "sides": ("xe_side", "XE_", {0: "BOTH"}),  # MassCancel.side 0 = both sides (proto.h)
    "ord_types": ("xe_ord_type", "XE_ORD_", {}),
    "tifs": ("xe_tif", "XE_TIF_", {}),
    "liquidity": ("xe_liquidity", "XE_LIQ_", {}),
    "reject_reasons": ("xe_reject_reason", "XE_REJ_", {}),
    "login_reasons": ("xe_login_reason", "XE_LOGIN_", {}),
    "cancel_reasons": ("xe_cancel_reason", "XE_CXL_", {}),
    "logout_reasons": ("xe_logout_reason", "XE_LOGOUT_", {}),
}
# The dissector's field names where proto.h reuses one name for different things (see its head).
LUA_RENAMES = {
    ("xe_login_rejected", "reason"): "login_reason",
    ("xe_cancelled", "reason"): "cancel_reason",
    ("xe_logout", "reason"): "logout_reason",
    ("xe_rejected", "reason"): "reject_reason",
    ("xe_retransmit_req", "count"): "retransmit_count",
}
LUA_HDR = {"hdr_session": "session_id", "hdr_seq": "seq", "hdr_count": "count",
           "hdr_length": "length"}  # fmt: skip


def _num(s: str) -> int:
    return int(s, 0)


@pytest.fixture(scope="module")
def lua() -> str:
    return LUA.read_text()


def _block(src: str, name: str) -> str:
    """The text between the braces of `local <name> = { ... }` (nested braces included)."""
    m = re.search(rf"^local {name} = \{{", src, flags=re.M)
    assert m, f"{LUA}: no table {name}"
    depth, i = 1, m.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(src[i], 0)
        i += 1
    return src[m.end() : i - 1]


def test_lua_constants(h: Contract, lua: str) -> None:
    got: dict[str, int] = {}
    for names, values in re.findall(r"^local ([A-Z_, ]+) = ([0-9x, ]+)$", lua, flags=re.M):
        got.update(zip(names.split(", "), map(_num, values.split(", ")), strict=True))
    flags = h.enum("xe_flags", "XE_F_")
    assert got == {
        "HDR_SIZE": h.defines["XE_HDR_SIZE"],
        "MSG_SIZE": h.defines["XE_MSG_SIZE"],
        "MAGIC": h.defines["XE_MAGIC"],
        "VERSION": h.defines["XE_VERSION"],
        "MAX_MSGS": h.defines["XE_MAX_MSGS"],
        "DEFAULT_PORT": h.defines["XE_DEFAULT_PORT"],
        "F_RETRANSMIT": flags["RETRANSMIT"],
        "F_HEARTBEAT": flags["HEARTBEAT"],
        "F_FROM_GW": flags["FROM_GW"],
        "F_KNOWN": h.defines["XE_F_KNOWN"],
        "T_HEARTBEAT": h.enums["xe_msg_type"]["XE_HEARTBEAT"],
    }
    # the flag bits of the header's flag sub-fields
    bits = dict(re.findall(r'"xdpex\.hdr\.flags\.(\w+)", "[^"]*", 8, nil, (0x[0-9a-f]+)\)', lua))
    assert {k.upper(): _num(v) for k, v in bits.items()} == flags


@pytest.mark.parametrize("table", sorted(LUA_TABLES))
def test_lua_value_strings(h: Contract, lua: str, table: str) -> None:
    enum, prefix, extra = LUA_TABLES[table]
    got = {_num(k): v for k, v in re.findall(r'\[(0x[0-9a-fA-F]+|\d+)\] = "(\w+)"',
                                               _block(lua, table))}  # fmt: skip
    assert got == {v: k for k, v in h.enum(enum, prefix).items()} | extra


def _lua_layouts(lua: str) -> dict[int, list[tuple[str, int, int]]]:
    body = _block(lua, "layouts")
    out = {}
    parts = re.split(r"\[(0x[0-9a-fA-F]+)\] = ", body)  # [before, type, entries, type, ...]
    for t, entries in zip(parts[1::2], parts[2::2], strict=True):
        out[_num(t)] = [
            (k, int(o), int(n)) for k, o, n in re.findall(r'\{ "(\w+)", (\d+), (\d+) \}', entries)
        ]
    return out


def test_lua_message_layouts(h: Contract, lua: str) -> None:
    got = _lua_layouts(lua)
    want = {}
    for name, t in h.enums["xe_msg_type"].items():
        s = "xe_" + name.removeprefix("XE_").lower()
        want[t] = [(LUA_RENAMES.get((s, f.name), f.name), f.offset, f.size)
                   for f in h.structs[s] if not f.pad and f.name != "type"]  # fmt: skip
    assert got == want


def test_lua_field_types_match_the_header(h: Contract, lua: str) -> None:
    """Each message field's ProtoField: uintN/intN of the C field's width and signedness,
    bytes for an array."""
    types = dict(re.findall(r'^\t(\w+) = ProtoField\.(\w+)\("xdpex\.', lua, flags=re.M))
    seen = {}
    for name in h.enums["xe_msg_type"]:
        s = "xe_" + name.removeprefix("XE_").lower()
        for f in h.structs[s]:
            if f.pad:
                continue
            key = LUA_RENAMES.get((s, f.name), f.name)
            want = "bytes" if f.count else f"{'int' if f.signed else 'uint'}{8 * f.size}"
            assert seen.setdefault(key, want) == want, f"{key}: one Lua field, two C types"
            assert types.get(key) == want, f"{s}.{f.name}: Lua {key} is {types.get(key)}"
    hdr = {f.name: f for f in h.structs["xe_hdr"]}
    for key, field in [("magic", "magic"), ("version", "version"), ("flags", "flags"),
                       ("reserved", "reserved"), *LUA_HDR.items()]:  # fmt: skip
        assert types[key] == f"uint{8 * hdr[field].size}", key


def test_lua_header_offsets(h: Contract, lua: str) -> None:
    got = {LUA_HDR.get(k, k): (int(o), int(n))
           for k, o, n in re.findall(r"h:add(?:_le)?\(F\.(\w+), buf\((\d+), (\d+)\)\)", lua)}
    assert got == {f.name: (f.offset, f.size) for f in h.structs["xe_hdr"]}


def test_lua_message_kinds_and_parse_errors(h: Contract, lua: str) -> None:
    rows = [(int(t), int(k), int(d)) for _, t, k, d, _ in h.extra]
    for table, want in (
        ("session_types", {t for t, k, _ in rows if k == 1}),
        ("both_ways", {t for t, _, d in rows if d == 3}),
    ):
        got = {_num(k) for k in re.findall(r"\[(0x[0-9a-fA-F]+)\] = true", _block(lua, table))}
        assert got == want, table
    names = re.search(r"local perr_names = \{(.*?)\}", lua, flags=re.S)
    assert names
    order = re.findall(r'"(\w+)"', names.group(1))  # ipairs: index i is error code -i
    errors = h.enum("xe_parse_error", "XE_PERR_")
    assert {n.upper(): -(i + 1) for i, n in enumerate(order)} == {
        k: v for k, v in errors.items() if k != "OK"
    }
