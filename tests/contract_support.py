"""The binary-contract headers (include/xdpex/*.h) as the C compiler sees them, for the contract
tests (test_proto_contract.py, test_journal_contract.py).

The names come from the header text: every enum and its members, every object-like #define with
an integer or string value, every packed struct and its fields. Every value (enum values, macro
values, field offsets, sizes, signedness and array lengths, struct sizes) comes from a small C
program generated from those names, compiled with gcc against the header and run. A Python module
is then compared with what C code actually gets, not with a second reading of the text.

    h = read_contract("proto.h")
    h.enums["xe_side"] == {"XE_BUY": 1, "XE_SELL": 2}
    h.structs["xe_fill"][2] == Field("liquidity", offset=2, size=1, signed=False, count=0)
"""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
INCLUDE = TOP / "include"


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int  # bytes of the whole field (an array: all of it)
    signed: bool  # of the element type
    count: int = 0  # array length, 0 for a scalar

    @property
    def pad(self) -> bool:
        return self.name.startswith("pad")


@dataclass
class Contract:
    defines: dict[str, int | str] = field(default_factory=dict)
    enums: dict[str, dict[str, int]] = field(default_factory=dict)
    structs: dict[str, list[Field]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # sizeof(struct name)
    extra: list[list[str]] = field(default_factory=list)  # lines printed by the extra C code

    def enum(self, name: str, prefix: str) -> dict[str, int]:
        """An enum's members without `prefix` (XE_REJ_BAD_SIDE -> BAD_SIDE)."""
        members = self.enums[name]
        assert all(m.startswith(prefix) for m in members), (name, prefix, list(members))
        return {m[len(prefix) :]: v for m, v in members.items()}


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", " ", text, flags=re.S))


def _names(text: str) -> tuple[dict[str, list[str]], list[tuple[str, bool]], dict]:
    """(enums: {name: members}, defines: [(name, is_string)], structs: {name: [(field, n)]})
    found in a header's text; n is the declared array length (0 = scalar)."""
    code = _strip_comments(text)
    enums: dict[str, list[str]] = {}
    for name, body in re.findall(r"\benum\s+(\w+)\s*\{(.*?)\}", code, flags=re.S):
        enums[name] = [m.split("=")[0].strip() for m in body.split(",") if m.strip()]
    members = {m for ms in enums.values() for m in ms}
    defines: list[tuple[str, bool]] = []
    known: set[str] = set()
    for name, value in re.findall(r"^[ \t]*#define[ \t]+(\w+)[ \t]+(.+?)[ \t]*$", code, flags=re.M):
        if value.startswith('"'):
            defines.append((name, True))
        elif all(w in known or w in members or re.fullmatch(r"0x[0-9a-fA-F]+|\d+[uUlL]*", w)
                 for w in re.findall(r"\w+", value)):  # fmt: skip
            defines.append((name, False))
        known.add(name)
    undefined = set(re.findall(r"^[ \t]*#undef[ \t]+(\w+)", code, flags=re.M))
    defines = [d for d in defines if d[0] not in undefined]
    structs: dict[str, list[tuple[str, int]]] = {}
    for name, body in re.findall(r"\bstruct\s+(\w+)\s*\{(.*?)\}\s*__attribute__", code, re.S):
        fields = []
        for decl in body.split(";"):
            m = re.fullmatch(r"\s*[\w\s]+?\b(\w+)\s*(?:\[(\w+)\])?\s*", decl)
            if m:
                fields.append((m.group(1), 1 if m.group(2) else 0))
        structs[name] = fields
    return enums, defines, structs


@functools.cache
def read_contract(*headers: str, extra_c: str = "") -> Contract:
    """The contract of include/xdpex/<header>... as compiled by gcc. `extra_c` is C code run
    after the dump (inside main); each line it prints, split on blanks, lands in `.extra`."""
    enums: dict[str, list[str]] = {}
    defines: list[tuple[str, bool]] = []
    structs: dict[str, list[tuple[str, int]]] = {}
    for h in headers:
        e, d, s = _names((INCLUDE / "xdpex" / h).read_text())
        enums.update(e)
        defines += d
        structs.update(s)
    out = ["#include <stdio.h>", "#include <stddef.h>"]
    out += [f'#include "xdpex/{h}"' for h in headers]
    out.append("#define SIGNED(x) ((__typeof__(x))-1 < (__typeof__(x))0)")
    out.append("int main(void)\n{")
    for name, members in enums.items():
        for m in members:
            out.append(f'\tprintf("E {name} {m} %lld\\n", (long long){m});')
    for name, is_str in defines:
        if is_str:
            out.append(f'\tprintf("S {name} %s\\n", {name});')
        else:
            out.append(f'\tprintf("D {name} %lld\\n", (long long)({name}));')
    for s, fields in structs.items():
        out.append(f'\tprintf("Z {s} %zu\\n", sizeof(struct {s}));')
        for f, is_array in fields:
            ref = f"((struct {s} *)0)->{f}"
            elem = f"{ref}[0]" if is_array else ref
            count = f"sizeof({ref}) / sizeof({elem})" if is_array else "(size_t)0"
            out.append(
                f'\tprintf("F {s} {f} %zu %zu %d %zu\\n", offsetof(struct {s}, {f}), '
                f"sizeof({ref}), SIGNED({elem}), {count});"
            )
    out.append(extra_c)
    out.append("\treturn 0;\n}\n")
    with tempfile.TemporaryDirectory(prefix="xtcontract-") as d:
        src, exe = Path(d) / "dump.c", Path(d) / "dump"
        src.write_text("\n".join(out))
        cc = subprocess.run(["gcc", "-std=gnu11", "-Wall", "-Werror", f"-I{INCLUDE}", "-o",
                             str(exe), str(src)], capture_output=True, text=True)  # fmt: skip
        assert cc.returncode == 0, f"the contract dump does not compile:\n{cc.stderr}"
        lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    c = Contract()
    for line in lines.splitlines():
        kind, *rest = line.split(" ")
        if kind == "E":
            c.enums.setdefault(rest[0], {})[rest[1]] = int(rest[2])
        elif kind == "D":
            c.defines[rest[0]] = int(rest[1])
        elif kind == "S":
            c.defines[rest[0]] = " ".join(rest[1:])
        elif kind == "Z":
            c.sizes[rest[0]] = int(rest[1])
            c.structs[rest[0]] = []
        elif kind == "F":
            off, size, signed, count = (int(x) for x in rest[2:])
            c.structs[rest[0]].append(Field(rest[1], off, size, bool(signed), count))
        else:
            c.extra.append(line.split())
    assert c.enums and c.structs, f"nothing read from {headers}"
    return c


def struct_layout(fmt: str, names: list[str]) -> list[Field]:
    """The fields of a Python struct format (little-endian, no alignment) with their names, as
    `Field`s; pad bytes ('x') are skipped, like C's pad fields."""
    import struct

    fields = []
    offset = 0
    it = iter(names)
    for n, ch in re.findall(r"(\d*)([a-zA-Z?])", fmt.lstrip("<=!")):
        count = int(n) if n else 1
        if ch == "x":
            offset += count
            continue
        if ch == "s":
            fields.append(Field(next(it), offset, count, False, count))
            offset += count
            continue
        size = struct.calcsize("<" + ch)
        for _ in range(count):
            fields.append(Field(next(it), offset, size, ch.islower() and ch != "x", 0))
            offset += size
    rest = list(it)
    assert not rest, f"{fmt}: names left over: {rest}"
    return fields
