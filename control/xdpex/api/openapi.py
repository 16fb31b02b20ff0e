"""The OpenAPI document, made to tell the truth (issue 13 part 5; checked by schemathesis).

FastAPI documents each route's success answer and its 422; this adds what else a route answers,
with one error model: every error body is `{"detail": "<reason>"}` (`Error`), except 422, whose
body is always the validation form `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`
(`HTTPValidationError`), whether FastAPI, the service layer or xdpexd refused the value.

- every /api/v1 operation: 401 (no, unknown, revoked or expired token), 403 (role too low),
  429 (the token's request rate, with Retry-After), 503 (database or dataplane unreachable);
- with parameters or a body: 422; with a body: 400 (not JSON);
- with path parameters: 404; changes (POST, PUT, DELETE): 409 (conflicts with current state,
  including the dataplane's state and limits); routes that reach xdpexd: 504 (no answer in time).

The limits that depend on the running xdpexd (symbol ids 1..engine.max_symbols, the queues it
serves) are written into the document from its `symbols` and `stats` answers when it is
reachable (cached for a few seconds), so a request the schema allows is one the gateway can take.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from fastapi.openapi.utils import get_openapi

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..service import ControlPlane

ERROR = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
    "description": "Why the request was refused.",
}
_ERR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_VALIDATION = {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}
DESCRIPTIONS = {
    "400": "The body is not JSON",
    "401": "No bearer token, or an unknown, revoked or expired one (`detail` says which)",
    "403": "The token's role may not do this",
    "404": "What the path names does not exist",
    "409": "Conflicts with the current state (of the control plane or of the dataplane: an "
    "existing entry, a limit reached, the engine out of memory); `detail` has the reason",
    "422": "A value cannot be accepted; `detail[0].loc` names the field, `msg` why",
    "429": "The token's request rate is exceeded; retry after `Retry-After` seconds",
    "503": "The database or the dataplane cannot be reached",
    "504": "The dataplane took the request but did not answer in time",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds until the token may send again",
        "schema": {"type": "integer", "minimum": 1},
    }
}
DATAPLANE_PATHS = (
    "orders",
    "symbols",
    "sessions",
    "books",
    "dataplane",
    "allowlist",
    "rate-limits",
)
NOT_FOUND = {("delete", "/api/v1/allowlist")}  # 404 without a path parameter
LIVE_TTL_S = 5.0


def _declare(op: dict[str, Any], status: str) -> None:
    resp = op.setdefault("responses", {})
    if status in resp:
        if status == "422":
            resp[status]["content"] = copy.deepcopy(_VALIDATION)
        return
    resp[status] = {
        "description": DESCRIPTIONS[status],
        "content": copy.deepcopy(_VALIDATION if status == "422" else _ERR),
    }
    if status == "429":
        resp[status]["headers"] = copy.deepcopy(RETRY_AFTER)


def add_error_responses(doc: dict[str, Any]) -> dict[str, Any]:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR
    if "HTTPValidationError" not in schemas:  # a document without any validated input
        schemas["ValidationError"] = {
            "title": "ValidationError",
            "type": "object",
            "properties": {
                "loc": {
                    "type": "array",
                    "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                },
                "msg": {"type": "string"},
                "type": {"type": "string"},
            },
            "required": ["loc", "msg", "type"],
        }
        schemas["HTTPValidationError"] = {
            "title": "HTTPValidationError",
            "type": "object",
            "properties": {
                "detail": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/ValidationError"},
                }
            },
        }
    for path, ops in doc.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        first = path.split("/")[3]
        for method, op in ops.items():
            params = op.get("parameters") or []
            body = "requestBody" in op
            for st in ("401", "403", "429", "503"):
                _declare(op, st)
            if params or body:
                _declare(op, "422")
            if body:
                _declare(op, "400")
            if any(p.get("in") == "path" for p in params) or (method, path) in NOT_FOUND:
                _declare(op, "404")
            if method in ("post", "put", "patch", "delete"):
                _declare(op, "409")
            if first in DATAPLANE_PATHS:
                _declare(op, "504")
    return doc


def _live_limits(cp: ControlPlane) -> dict[str, Any] | None:
    """The running dataplane's limits: max symbol id and the queues it serves (None if down)."""
    try:
        sym = cp.ctl.symbols()
        st = cp.ctl.stats()
    except Exception:  # noqa: BLE001 - dataplane down: the static document
        return None
    queues = sorted({int(q.get("queue", 0)) for q in st.get("queues", []) or []})
    return {"max_symbols": int(sym.get("max_symbols") or 0), "queues": queues}


def _apply_limits(doc: dict[str, Any], lim: dict[str, Any]) -> None:
    schemas = doc.get("components", {}).get("schemas", {})
    # Bulk entries keep the static bounds: an entry beyond the live limits is not a malformed
    # request there but a refused entry named in the 200 answer (xdpex.bulkconfig).
    for bulk, item, key in (
        ("SymbolsBulkIn", "SymbolIn", "symbols"),
        ("SessionsBulkIn", "SessionIn", "sessions"),
    ):
        arr = schemas.get(bulk, {}).get("properties", {}).get(key)
        if arr is not None and item in schemas:
            schemas[f"{item}BulkEntry"] = copy.deepcopy(schemas[item]) | {
                "title": f"{item}BulkEntry"
            }
            arr["items"] = {"$ref": f"#/components/schemas/{item}BulkEntry"}
    if lim["max_symbols"]:
        p = schemas.get("SymbolIn", {}).get("properties", {}).get("symbol_id")
        if p is not None:
            p["maximum"] = lim["max_symbols"]
            p["description"] = "1..engine.max_symbols of the running xdpexd"
    if lim["queues"]:
        for name in ("SymbolIn", "SessionIn"):
            p = schemas.get(name, {}).get("properties", {}).get("queue")
            if p is not None:
                p.pop("minimum", None)
                p.pop("maximum", None)
                p["enum"] = lim["queues"]
                p["default"] = lim["queues"][0]
                p["description"] = "one of the queues the running xdpexd serves (--queues)"


def install(app: FastAPI, cp: ControlPlane) -> None:
    """Replace `app.openapi` with the document above."""
    base: dict[str, Any] = {}
    cache: list[Any] = [None, 0.0]  # document, when made

    def openapi() -> dict[str, Any]:
        now = time.monotonic()
        if cache[0] is not None and now - cache[1] < LIVE_TTL_S:
            return cache[0]  # type: ignore[no-any-return]
        if not base:
            base.update(
                add_error_responses(
                    get_openapi(
                        title=app.title,
                        version=app.version,
                        description=app.description,
                        routes=app.routes,
                    )
                )
            )
        doc = copy.deepcopy(base)
        lim = _live_limits(cp)
        if lim:
            _apply_limits(doc, lim)
        cache[0], cache[1] = doc, now
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
