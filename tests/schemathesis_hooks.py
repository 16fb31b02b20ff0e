"""Schemathesis hooks for the xdpex control plane (SCHEMATHESIS_HOOKS=schemathesis_hooks, with
tests/ on PYTHONPATH; used by tests/test_control_openapi.py).

One hook, on *positive* cases only (negative ones are not touched), for two things:

- the only rules of the API that JSON Schema cannot state: a new symbol's band must have
  band_low <= band_high, both multiples of tick (SymbolIn's description says so; the dataplane
  refuses otherwise, 422 naming band_low). A case for POST /api/v1/symbols gets its band moved
  onto the tick grid and ordered, staying inside every bound of the schema;
- schemathesis (4.32) compares integers near 2^63 as doubles, so it takes 9223372036854775999
  for a valid value of a field whose maximum is 2^63 - 1 (a double cannot tell them apart):
  such a value is brought back to 2^63 - 1, the maximum the schema states.
"""

from __future__ import annotations

from typing import Any

import schemathesis


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


I64 = (1 << 63) - 1


def _clamp(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clamp(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clamp(x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool) and v > I64:
        return I64
    return v


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    for part in ("body", "query", "path_parameters"):
        v = getattr(case, part, None)
        if isinstance(v, dict | list):
            setattr(case, part, _clamp(v))
    op = case.operation
    if op.method.upper() != "POST" or not op.path.endswith("/api/v1/symbols"):
        return
    if not isinstance(case.body, dict):
        return
    tick, low, high = (_int(case.body.get(k)) for k in ("tick", "band_low", "band_high"))
    if tick is None or low is None or high is None or tick < 1 or low < 1 or high < 1:
        return
    low = max(low // tick, 1) * tick  # <= the original low, or tick: within the bounds
    high = max(low, high // tick * tick)
    case.body["tick"], case.body["band_low"], case.body["band_high"] = tick, low, high
