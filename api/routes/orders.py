"""JSON API: orders in (batch upsert) and out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.deps import CurrentAgent, SessionDep, require_scope
from api.offload import OffLoop
from tickets.exceptions import InvalidInput
from tickets.limits import check_batch
from tickets.orders.store import get_order, order_to_read, pick_units, upsert_order
from tickets.refunds.ledger import quote
from tickets.schemas import OrderBatch, OrderRead, OrderUpsertResult, QuoteAsk

router = APIRouter(prefix="/orders", tags=["orders"], route_class=OffLoop)


@router.post("", response_model=OrderUpsertResult, dependencies=[require_scope("orders")])
def upsert_orders(
    batch: OrderBatch, request: Request, session: SessionDep, agent: CurrentAgent
) -> OrderUpsertResult:
    """Create or update a batch of orders by order number (a token with the `orders` scope).
    All or nothing: one bad order and none is written; the errors name each one
    (`orders.3.lines.0.unit_price`). Sending the same batch again changes nothing. Once an
    order has cases its money (currency, prices, discounts, shipping, payments) is frozen: a
    change is a 409 naming each field; status, dates, address and line titles, categories and
    no-reason flags still change."""
    now = request.app.state.clock()
    limits = request.app.state.settings.limits
    check_batch(len(batch.orders), limits)
    result = OrderUpsertResult(created=[], updated=[], unchanged=[])
    errors = []
    seen: set[str] = set()
    for i, data in enumerate(batch.orders):
        if data.order_no in seen:
            errors.append({"loc": f"orders.{i}.order_no", "msg": "order appears twice in batch"})
            continue
        seen.add(data.order_no)
        try:
            _order, outcome = upsert_order(
                session=session,
                data=data,
                now=now,
                loc=f"orders.{i}",
                agent=agent,
                actor=f"agent:{agent.username}",
                limits=limits,
            )
        except InvalidInput as exc:
            errors.extend(exc.errors)
            continue
        getattr(result, outcome).append(data.order_no)
    if errors:
        raise InvalidInput(
            "; ".join(f"{e['loc']}: {e['msg']}" for e in errors) + " (nothing was written)",
            errors,
        )
    return result


@router.get("/{order_no}", response_model=OrderRead)
def read_order(order_no: str, session: SessionDep, agent: CurrentAgent) -> OrderRead:
    """One order with its lines, each unit's stored net, and its payments."""
    return order_to_read(get_order(session=session, order_no=order_no))


@router.post("/{order_no}/refund-quote")
def refund_quote(
    order_no: str, body: QuoteAsk, request: Request, session: SessionDep, agent: CurrentAgent
) -> dict[str, Any]:
    """What a refund of these items would pay, itemised per unit and per payment route, with
    the rule behind each line; nothing is written. More units than bought, an unknown SKU, or
    units already refunded or in another open case: a 422 naming the item."""
    state = request.app.state
    order = get_order(session=session, order_no=order_no)
    picked = pick_units(
        session=session, order=order, items=body.items, limits=state.settings.limits
    )
    now = state.clock()
    q = quote(
        session=session,
        order=order,
        kind=body.kind,
        reason=body.reason,
        unit_ids=[u for _, _, ids in picked for u in ids],
        policy=state.policy,
        now=now,
        return_freight=body.return_freight,
        freight_receipt=body.return_freight_receipt,
        requested_at=now,
        timezone=state.settings.timezone,
    )
    return q.to_json()
