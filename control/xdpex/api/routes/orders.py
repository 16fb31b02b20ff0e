"""Orders: submit (one or a batch) and cancel through the control plane's own session, get, query.

The two submit routes are served by xdpex.api.fastentry for canonical requests; these handlers
answer what it passes on (lax JSON, errors) and define the routes' schemas."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import JSONResponse

from ...service import OrderSpec
from ..deps import CP, Trader, Viewer
from ..schemas import I64, U32, CancelOut, OrderAck, OrderBatchIn, OrderIn, OrderOut

router = APIRouter(prefix="/orders", tags=["orders"])
Status = Literal["new", "partially_filled", "filled", "cancelled", "rejected"]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderAck,
    responses={200: {"model": OrderAck, "description": "rejected by the engine"}},
)
async def submit_order(cp: CP, who: Trader, body: OrderIn) -> JSONResponse:
    """Enter an order; answers with the gateway's acknowledgement (201, or 200 if rejected)."""
    res = (await cp.submit_orders_async(who, [OrderSpec(**body.model_dump())]))[0]
    # The service builds exactly the OrderAck fields; returned as is, without a second
    # validation against the response model (the hot path of REST order entry).
    code = status.HTTP_200_OK if res["status"] == "rejected" else status.HTTP_201_CREATED
    return JSONResponse(res, status_code=code)


@router.post("/batch", response_model=list[OrderAck])
async def submit_orders(cp: CP, who: Trader, body: OrderBatchIn) -> JSONResponse:
    """Enter up to 1,000 orders; one acknowledgement per order, in order (rejections included)."""
    res = await cp.submit_orders_async(who, [OrderSpec(**o.model_dump()) for o in body.orders])
    return JSONResponse(res)


@router.get("", response_model=list[OrderOut])
def query_orders(
    cp: CP,
    who: Viewer,
    session_id: int | None = Query(None, ge=1, le=U32),
    symbol_id: int | None = Query(None, ge=1, le=U32),
    status_: Annotated[Status | None, Query(alias="status")] = None,
    since_ns: int | None = Query(None, ge=0, le=I64),
    until_ns: int | None = Query(None, ge=0, le=I64),
    limit: int = Query(100, ge=1, le=10000),
    after: int = Query(0, ge=0, le=I64, description="cursor of the last row of the previous page"),
) -> list[dict]:
    """Persisted orders by session, symbol, status and gateway time, oldest first."""
    return cp.query_orders(
        who,
        session_id=session_id,
        symbol_id=symbol_id,
        status=status_,
        since_ns=since_ns,
        until_ns=until_ns,
        limit=limit,
        after_id=after,
    )


@router.get("/{order_id:int}", response_model=OrderOut)  # :int: /orders/batch is not an id
def get_order(cp: CP, who: Viewer, order_id: int = Path(ge=1, le=I64)) -> dict:
    """One order by its gateway order id."""
    return cp.get_order(who, order_id)


@router.delete("/{order_id:int}", response_model=CancelOut)
def cancel_order(cp: CP, who: Trader, order_id: int = Path(ge=1, le=I64)) -> dict:
    """Cancel an order entered through the control plane."""
    return cp.cancel_order(who, order_id)
