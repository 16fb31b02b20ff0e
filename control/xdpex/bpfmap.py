"""The XDP program's pinned counters read with the bpf(2) system call, in process.

A /metrics scrape must not start a process (build/xdp/xdpex-xdp counters) each time: this opens
the pinned `stats_map` (BPF_OBJ_GET) and reads every key of the per-CPU array
(BPF_MAP_LOOKUP_ELEM), summing the CPUs as the tool does. The counter names and their order come
from xdp/xdpex_maps.h (XDPEX_CNT_NAMES), the header both sides of the map are built from.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import struct
from functools import cache
from pathlib import Path

from .config import REPO_ROOT

MAPS_H = REPO_ROOT / "xdp" / "xdpex_maps.h"
_SYS_BPF = {"x86_64": 321, "aarch64": 280}
_BPF_MAP_LOOKUP_ELEM, _BPF_OBJ_GET = 1, 7
_libc = ctypes.CDLL(None, use_errno=True)


class BpfError(OSError):
    """A bpf(2) call failed; the message names the call and the path."""


@cache
def counter_names(header: Path = MAPS_H) -> tuple[str, ...]:
    """XDPEX_CNT_NAMES of xdpex_maps.h, in key order."""
    text = header.read_text()
    m = re.search(r"#define XDPEX_CNT_NAMES(.*?)\n\n", text, re.S)
    if not m:
        raise BpfError(f"{header}: no XDPEX_CNT_NAMES")
    return tuple(re.findall(r'"([a-z_]+)"', m.group(1)))


@cache
def possible_cpus() -> int:
    """CPUs a per-CPU map holds a value for (/sys/devices/system/cpu/possible, e.g. "0-3")."""
    n = 0
    for part in Path("/sys/devices/system/cpu/possible").read_text().strip().split(","):
        a, _, b = part.partition("-")
        n += int(b or a) - int(a) + 1
    return n


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise BpfError(f"bpf(2): no syscall number known for {platform.machine()}")
    rc = _libc.syscall(nr, cmd, attr, len(attr))
    if rc < 0:
        err = ctypes.get_errno()
        raise BpfError(err, f"bpf({what}): {os.strerror(err)}")
    return int(rc)


def read_percpu_counters(pin: Path, names: tuple[str, ...]) -> dict[str, int]:
    """Every key 0..len(names)-1 of the pinned per-CPU __u64 array at `pin`, summed over CPUs."""
    path = ctypes.create_string_buffer(str(pin).encode())
    attr = ctypes.create_string_buffer(struct.pack("=QII", ctypes.addressof(path), 0, 0), 128)
    fd = _bpf(_BPF_OBJ_GET, attr, f"BPF_OBJ_GET {pin}")
    try:
        ncpu = possible_cpus()
        key = ctypes.c_uint32()
        value = (ctypes.c_uint64 * ncpu)()
        out: dict[str, int] = {}
        for i, name in enumerate(names):
            key.value = i
            attr = ctypes.create_string_buffer(
                struct.pack("=IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(value), 0),
                128,
            )
            _bpf(_BPF_MAP_LOOKUP_ELEM, attr, f"BPF_MAP_LOOKUP_ELEM {pin} key {i}")
            out[name] = int(sum(value))
        return out
    finally:
        os.close(fd)
