"""cffi (ABI mode) binding of the engine's C ABI, libxdpex_engine.so.

The declarations are read from the C headers themselves (engine/include/xdpex/engine.h and the
enumerations of include/xdpex/proto.h), so the binding cannot drift from the ABI. The library is
build/engine/libxdpex_engine.so of this checkout, or the file named by $XDPEX_ENGINE_LIB.
`Engine` wraps one engine instance; every entry call returns the events as `Event` tuples.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import cffi

REPO = Path(__file__).resolve().parents[3]
ENGINE_H = REPO / "engine" / "include" / "xdpex" / "engine.h"
PROTO_H = REPO / "include" / "xdpex" / "proto.h"
BUILD_DIR = REPO / "build" / "engine"


class EngineError(RuntimeError):
    """A configuration call failed (the message names the call and the errno)."""


def _cdef_source() -> str:
    proto = PROTO_H.read_text()
    enums = re.findall(r"^enum\s+\w+\s*\{.*?\};", proto, flags=re.S | re.M)
    engine = ENGINE_H.read_text()
    engine = re.sub(r"#ifdef __cplusplus.*?#endif", "", engine, flags=re.S)
    engine = "\n".join(ln for ln in engine.splitlines() if not ln.lstrip().startswith("#"))
    return "\n".join(enums) + "\n" + engine


def _enum_values() -> dict[str, int]:
    out: dict[str, int] = {}
    for body in re.findall(r"enum\s+\w+\s*\{(.*?)\};", PROTO_H.read_text() + ENGINE_H.read_text(),
                           flags=re.S):
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        for name, value in re.findall(r"(XE_\w+)\s*=\s*(0x[0-9a-fA-F]+|\d+)", body):
            out[name] = int(value, 0)
    return out


ffi = cffi.FFI()
ffi.cdef(_cdef_source())
C: dict[str, int] = _enum_values()
_lib: Any = None


def library_path() -> Path:
    env = os.environ.get("XDPEX_ENGINE_LIB")
    return Path(env) if env else BUILD_DIR / "libxdpex_engine.so"


def lib() -> Any:
    global _lib
    if _lib is None:
        path = library_path()
        if not path.exists():
            raise EngineError(f"{path} not found: build the engine first (make build)")
        _lib = ffi.dlopen(str(path))
    return _lib


class Event(NamedTuple):
    type: int
    side: int
    liquidity: int
    ord_type: int
    reason: int
    tif: int
    session_id: int
    symbol_id: int
    cl_ord_id: int
    order_id: int
    price: int
    qty: int
    leaves: int
    exec_id: int
    orig_cl_ord_id: int


class OrderInfo(NamedTuple):
    session_id: int
    symbol_id: int
    cl_ord_id: int
    order_id: int
    price: int
    qty: int
    leaves: int
    filled: int
    side: int
    ord_type: int
    tif: int


_EV_FIELDS = Event._fields
_INFO_FIELDS = OrderInfo._fields


def _check_range(name: str, value: int, bits: int, signed: bool = False) -> None:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} does not fit the C field ({lo}..{hi})")


class Engine:
    """One engine instance. Not thread-safe, like the C engine it wraps."""

    def __init__(self, max_orders: int = 4096, max_symbols: int = 16, max_sessions: int = 16):
        self._lib = lib()
        cfg = ffi.new("struct xe_engine_config *", (max_orders, max_symbols, max_sessions))
        ptr = self._lib.xe_engine_create(cfg)
        if ptr == ffi.NULL:
            raise EngineError(
                f"xe_engine_create(max_orders={max_orders}, max_symbols={max_symbols}, "
                f"max_sessions={max_sessions}) failed"
            )
        self._e = ffi.gc(ptr, self._lib.xe_engine_destroy)
        self._buf = ffi.new("struct xe_event[]", self._lib.xe_engine_max_events(ptr))
        self._order = ffi.new("struct xe_order *")
        self._lv = ffi.new("struct xe_level[]", 64)  # query buffers, grown on demand
        self._oi = ffi.new("struct xe_order_info[]", 64)

    def _call(self, name: str, rc: int) -> None:
        if rc != 0:
            raise EngineError(f"{name} failed: {os.strerror(-rc)} ({rc})")

    def _events(self, n: int) -> list[Event]:
        buf = self._buf
        return [Event(*(getattr(buf[i], f) for f in _EV_FIELDS)) for i in range(n)]

    # configuration
    def add_symbol(self, symbol_id: int, tick_size: int = 1, lot_size: int = 1,
                   band_low: int = 1, band_high: int = 1_000_000, max_qty: int = 0) -> None:
        cfg = ffi.new("struct xe_symbol_config *")
        cfg.symbol_id, cfg.tick_size, cfg.lot_size = symbol_id, tick_size, lot_size
        cfg.band_low, cfg.band_high, cfg.max_qty = band_low, band_high, max_qty
        rc = self._lib.xe_engine_add_symbol(self._e, cfg)
        self._call(f"xe_engine_add_symbol({symbol_id})", rc)

    def set_halted(self, symbol_id: int, halted: bool) -> None:
        rc = self._lib.xe_engine_set_halted(self._e, symbol_id, int(halted))
        self._call(f"xe_engine_set_halted({symbol_id})", rc)

    def set_stp(self, session_id: int, mode: int) -> None:
        rc = self._lib.xe_engine_set_stp(self._e, session_id, mode)
        self._call(f"xe_engine_set_stp({session_id})", rc)

    # order entry
    def new_order(self, session_id: int, symbol_id: int, cl_ord_id: int, side: int, price: int,
                  qty: int, ord_type: int = 1, tif: int = 2) -> list[Event]:
        for name, v, bits, signed in (("session_id", session_id, 32, False),
                                      ("symbol_id", symbol_id, 32, False),
                                      ("cl_ord_id", cl_ord_id, 64, False),
                                      ("price", price, 64, True), ("qty", qty, 32, False),
                                      ("side", side, 8, False), ("ord_type", ord_type, 8, False),
                                      ("tif", tif, 8, False)):
            _check_range(name, v, bits, signed)
        o = self._order
        o.session_id, o.symbol_id, o.cl_ord_id, o.price, o.qty = (
            session_id, symbol_id, cl_ord_id, price, qty)
        o.side, o.ord_type, o.tif = side, ord_type, tif
        return self._events(self._lib.xe_engine_new_order(self._e, o, self._buf))

    def cancel(self, session_id: int, cl_ord_id: int) -> list[Event]:
        return self._events(self._lib.xe_engine_cancel(self._e, session_id, cl_ord_id, self._buf))

    def replace(self, session_id: int, orig_cl_ord_id: int, new_cl_ord_id: int, price: int,
                qty: int) -> list[Event]:
        _check_range("price", price, 64, True)
        _check_range("qty", qty, 32)
        n = self._lib.xe_engine_replace(self._e, session_id, orig_cl_ord_id, new_cl_ord_id,
                                        price, qty, self._buf)
        return self._events(n)

    def mass_cancel(self, session_id: int, symbol_id: int = 0, side: int = 0,
                    reason: int = 0) -> list[Event]:
        n = self._lib.xe_engine_mass_cancel(self._e, session_id, symbol_id, side, reason, self._buf)
        return self._events(n)

    def expire_day(self) -> list[Event]:
        return self._events(self._lib.xe_engine_expire_day(self._e, self._buf))

    # queries
    def book(self, symbol_id: int, side: int, depth: int = 10) -> list[tuple[int, int, int]]:
        if len(self._lv) < depth:
            self._lv = ffi.new("struct xe_level[]", depth)
        out = self._lv
        n = self._lib.xe_engine_book(self._e, symbol_id, side, depth, out)
        return [(out[i].price, out[i].qty, out[i].orders) for i in range(n)]

    def level_orders(self, symbol_id: int, side: int, price: int,
                     max_orders: int = 4096) -> list[OrderInfo]:
        if len(self._oi) < max_orders:
            self._oi = ffi.new("struct xe_order_info[]", max_orders)
        out = self._oi
        n = self._lib.xe_engine_level_orders(self._e, symbol_id, side, price, max_orders, out)
        return [OrderInfo(*(getattr(out[i], f) for f in _INFO_FIELDS)) for i in range(n)]

    def get_order(self, session_id: int, cl_ord_id: int) -> OrderInfo | None:
        out = ffi.new("struct xe_order_info *")
        if self._lib.xe_engine_get_order(self._e, session_id, cl_ord_id, out) != 0:
            return None
        return OrderInfo(*(getattr(out, f) for f in _INFO_FIELDS))

    def stats(self) -> dict[str, int]:
        st = ffi.new("struct xe_engine_stats *")
        self._lib.xe_engine_get_stats(self._e, st)
        return {f: getattr(st, f) for f in ("resting_orders", "levels", "orders_in", "fills",
                                            "rejects", "next_order_id", "next_exec_id")}

    def state_hash(self) -> int:
        return int(self._lib.xe_engine_state_hash(self._e))
