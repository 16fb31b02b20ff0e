"""Request and response bodies of the REST API (pydantic); limits mirror the wire protocol."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

U32 = (1 << 32) - 1
I64 = (1 << 63) - 1
PRICE_MAX = I64  # prices, ticks and band bounds: any the protocol carries (int64)


def json_int(v: Any) -> Any:
    """A JSON integer (1 or 1.0), not a boolean or a string: pydantic's lax mode would take
    `false` as 0 and "5" as 5, which the schema does not allow."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError("must be a JSON integer")
    return v


def json_bool(v: Any) -> Any:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


_INT = (int,)
_OPT_INT = (int | None,)


class Strict(BaseModel):
    """A request body: exactly its fields, each of its JSON type (as the OpenAPI document
    says)."""

    model_config = ConfigDict(extra="forbid")
    _lax: ClassVar[bool] = False  # True: pydantic's lax forms too (order entry takes them)

    @field_validator("*", mode="before")
    @classmethod
    def _json_types(cls, v: Any, info: ValidationInfo) -> Any:
        if cls._lax:
            return v
        ann = cls.model_fields[info.field_name].annotation if info.field_name else None
        if ann in _INT or (v is not None and ann in _OPT_INT):
            return json_int(v)
        if ann is bool or (v is not None and ann == bool | None):
            return json_bool(v)
        return v


TEN_YEARS_S = 10 * 366 * 86400


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Literal["viewer", "trader", "operator"]
    expires_in_s: int | None = Field(
        None,
        ge=1,
        le=TEN_YEARS_S,
        description="lifetime in seconds; absent = XDPEX_TOKEN_DEFAULT_TTL_S (0: never expires)",
    )
    rate: int | None = Field(
        None, ge=0, le=1_000_000, description="requests/s; absent = the default, 0 = unlimited"
    )
    burst: int | None = Field(None, ge=1, le=10_000_000, description="absent = the default")


class TokenInfo(BaseModel):
    id: int
    name: str
    role: str
    created_at: str
    revoked: bool
    expires_at: str | None = Field(description="ISO 8601; null = never")
    expired: bool
    rotated_to: int | None = Field(description="the token that replaced this one")
    rate: int | None
    burst: int | None


class TokenOut(TokenInfo):
    token: str = Field(description="shown once; only its hash is stored")


class TokenRotateIn(Strict):
    grace_s: int = Field(
        60, ge=0, le=86400, description="how long the old secret keeps working (0 = not at all)"
    )


class TokenRotated(TokenOut):
    replaces: TokenInfo = Field(description="the old token, now expiring")


DP_MAX = 1_000_000_000  # xdpexd's bound on rates and bursts


class SymbolIn(Strict):
    """A new symbol. Besides the bounds below: band_low <= band_high, both multiples of tick
    (the dataplane refuses otherwise, 422 naming band_low)."""

    symbol_id: int = Field(ge=1, le=U32, description="1..engine.max_symbols of the dataplane")
    name: str = Field(min_length=1, max_length=31, pattern=r"^[A-Za-z0-9_.-]+$")
    tick: int = Field(ge=1, le=PRICE_MAX)
    lot: int = Field(ge=1, le=U32)
    band_low: int = Field(ge=1, le=PRICE_MAX)
    band_high: int = Field(ge=1, le=PRICE_MAX)
    max_qty: int = Field(0, ge=0, le=U32)
    queue: int = Field(0, ge=0, le=63)
    halted: bool = False


class SymbolOut(BaseModel):
    symbol_id: int
    name: str
    tick: int
    lot: int
    band_low: int
    band_high: int
    max_qty: int
    queue: int
    halted: bool


class HaltOut(BaseModel):
    symbol_id: int
    halted: bool


class SessionIn(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    stp: Literal["none", "cancel_newest", "cancel_oldest", "cancel_both"] = "none"
    cancel_on_disconnect: bool = True
    queue: int = Field(0, ge=0, le=63)
    rate: int = Field(0, ge=0, le=DP_MAX, description="application messages/s, 0 = unlimited")
    burst: int = Field(0, ge=0, le=DP_MAX)


class SessionCreated(BaseModel):
    session_id: int
    name: str
    queue: int
    secret: str = Field(description="HMAC key (hex); shown once, never stored by the control plane")


class SessionOut(BaseModel):
    session_id: int
    name: str | None
    internal: bool
    disabled: bool
    state: str
    bound: str | None
    next_in: int | None
    next_out: int | None
    queue: int | None


class SessionAction(BaseModel):
    session_id: int
    disconnected: bool | None = None
    enabled: bool | None = None


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
PREFIX_PATTERN = rf"^{_OCTET}(\.{_OCTET}){{3}}(/(3[0-2]|[12]?[0-9]))?$"


def ipv4_prefix(v: str) -> str:
    """Canonical form of an IPv4 prefix, host bits cleared: 10.11.0.7/24 -> 10.11.0.0/24."""
    try:
        net = ipaddress.IPv4Network(v, strict=False)
    except ValueError as e:
        raise ValueError(f"not an IPv4 prefix: {e}") from None
    return str(net)


Prefix = Annotated[
    str, StringConstraints(max_length=18, pattern=PREFIX_PATTERN), AfterValidator(ipv4_prefix)
]


class AllowIn(Strict):
    prefix: Prefix = Field(
        description="IPv4 prefix, e.g. 10.11.0.0/24 (host bits are cleared; no length = /32)",
    )


class RateIn(Strict):
    pps: int = Field(ge=0, le=DP_MAX, description="per-source datagrams/s, 0 = unlimited")
    burst: int = Field(ge=0, le=DP_MAX, description="0 with pps set = pps (one second's worth)")


class RateOut(BaseModel):
    pps: int
    burst: int


class Level(BaseModel):
    price: int
    qty: int
    orders: int


class BookOut(BaseModel):
    symbol_id: int
    bids: list[Level]
    asks: list[Level]


class OrderIn(Strict):
    # price > 0 unless the type is market: said in the schema too, so a generated request that
    # the schema allows is one the API takes
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"type": {"const": "market"}}, "required": ["type"]},
                {"properties": {"price": {"minimum": 1}}, "required": ["price"]},
            ]
        },
    )
    _lax: ClassVar[bool] = True
    symbol_id: int = Field(ge=1, le=U32)
    side: Literal["buy", "sell"]
    type: Literal["limit", "market", "post_only"] = "limit"
    tif: Literal["day", "gtc", "ioc", "fok"] = "gtc"
    qty: int = Field(ge=1, le=U32)
    price: int = Field(0, ge=0, le=PRICE_MAX, description="ticks; required (> 0) except for market")


class OrderBatchIn(Strict):
    orders: list[OrderIn] = Field(min_length=1, max_length=1000)


class FillOut(BaseModel):
    exec_id: int
    price: int
    qty: int
    liquidity: int


class _OrderState(BaseModel):
    """The fields an acknowledgement and a persisted order share."""

    order_id: int | None
    session_id: int
    cl_ord_id: int
    symbol_id: int
    side: str
    type: str
    tif: str
    price: int
    qty: int
    filled: int
    leaves: int
    status: str
    reason: str | None


class OrderAck(_OrderState):
    field: str | None = Field(None, description="the order field an engine reject is about")
    fills: list[FillOut] = []


class OrderOut(_OrderState):
    journal_seq: int | None
    ts_ns: int | None
    queue: int | None
    cursor: int | None = None


class CancelOut(BaseModel):
    order_id: int
    status: str
    cancelled_qty: int


class ExecutionOut(BaseModel):
    exec_id: int
    order_id: int
    session_id: int
    cl_ord_id: int
    symbol_id: int
    side: str
    liquidity: str
    price: int
    qty: int
    leaves: int
    journal_seq: int
    ts_ns: int
    queue: int
    cursor: int


class AuditOut(BaseModel):
    id: int
    at: str
    actor: str
    role: str
    action: str
    target: str
    detail: str
    result: str
