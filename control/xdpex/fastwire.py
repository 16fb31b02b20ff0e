"""The C half of order entry (control/xdpex/ext/fastwire.c): the per-order work in C.

`fw` is the configured extension module, or None when it is switched off (XDPEX_FASTWIRE=0) or
cannot be had; the callers then run their Python code, which gives the same answers byte for
byte (tests/test_control_fastwire.py compares them). What it does, called once per datagram or
request: NewOrder messages packed (`pack_new`), the gateway's Accepted / Rejected / Fill
answers applied to the waiting entries' columns (`apply`), the REST bodies decoded
(`json_orders`) and answered (`json_acks`), the gRPC requests decoded (`pb_orders`) and their
acks serialized (`pb_acks`).

`make build` compiles it into build/control/ext (control/build.mk, with the layout checked
against include/xdpex/proto.h); a bare checkout or an installed wheel compiles it here on first
import with the C compiler Python was built with, into $XDPEX_EXT_DIR or ~/.cache/xdpex/ext.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sysconfig
from pathlib import Path
from types import ModuleType

from xdpex_proto import codec as c

from .config import REPO_ROOT

log = logging.getLogger("xdpex.fastwire")

SRC = Path(__file__).resolve().parent / "ext" / "fastwire.c"
NAME = "_fastwire"
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"


def out_dir() -> Path:
    if os.environ.get("XDPEX_EXT_DIR"):
        return Path(os.environ["XDPEX_EXT_DIR"])
    if (REPO_ROOT / "control" / "build.mk").exists():  # a checkout
        return REPO_ROOT / "build/control/ext"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "xdpex" / "ext"


def _compile(so: Path) -> None:
    so.parent.mkdir(parents=True, exist_ok=True)
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    tmp = so.with_suffix(f".{os.getpid()}.tmp")
    cmd = [*cc, "-O2", "-fPIC", "-shared", f"-I{sysconfig.get_paths()['include']}"]
    cmd += [f"-I{SRC.parent}", str(SRC), "-o", str(tmp)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"compiling {SRC} failed: {out.stderr.strip()[:2000]}")
    tmp.replace(so)


def _stale(so: Path) -> bool:
    if not so.exists():
        return True
    newest = max(p.stat().st_mtime for p in SRC.parent.iterdir() if p.suffix in (".c", ".h"))
    return so.stat().st_mtime < newest


def _load() -> ModuleType:
    so = out_dir() / f"{NAME}{SUFFIX}"
    if _stale(so):
        _compile(so)
    spec = importlib.util.spec_from_file_location(NAME, so)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _names(table: dict[int, str]) -> list[str]:
    return [table.get(i, str(i)) for i in range(256)]


def _configure(mod: ModuleType) -> None:
    # imported here: xdpex.orders and xdpex.grpc_api import this module
    from .entrybatch import PENDING
    from .grpc_api import SIDE_V, TIF_V, TYPE_V
    from .orders import (
        ORD_TYPE_NAMES,
        ORD_TYPES,
        REJECT_FIELD,
        SIDE_NAMES,
        SIDES,
        TIF_NAMES,
        TIFS,
        cancel_name,
        reject_name,
    )

    def proto_map(m: dict[int, int]) -> list[int]:
        return [m.get(i, -1) for i in range(8)]

    mod.configure(
        PENDING,
        "new",
        "rejected",
        "filled",
        "partially_filled",
        "cancelled",
        _names(SIDE_NAMES),
        _names(ORD_TYPE_NAMES),
        _names(TIF_NAMES),
        [reject_name(i) for i in range(256)],
        [REJECT_FIELD.get(i) for i in range(256)],  # type: ignore[call-overload]
        [cancel_name(i) for i in range(256)],
        proto_map(SIDE_V),
        proto_map(TYPE_V),
        proto_map(TIF_V),
        int(c.OrdType.MARKET),
        int(c.RejectReason.NOT_LOGGED_IN),
        int(c.MsgType.CANCEL),
    )
    # REST bodies: the names wire_order (xdpex.api.fastentry) accepts, and its defaults
    mod.configure_json(SIDES, ORD_TYPES, TIFS, ORD_TYPES["limit"], TIFS["gtc"])


def get() -> ModuleType | None:
    """The configured extension, or None (switched off, or it could not be built: logged)."""
    global _fw, _tried
    if _tried:
        return _fw
    _tried = True
    if os.environ.get("XDPEX_FASTWIRE", "1") == "0":
        return None
    try:
        mod = _load()
        _configure(mod)
    except Exception as e:  # noqa: BLE001 - the Python paths give the same answers, slower
        log.warning("order entry without its C extension (%s): %s", SRC.name, e)
        return None
    _fw = mod
    return mod


_fw: ModuleType | None = None
_tried = False
