"""JSON API: orders in (batch upsert) and out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.deps import CurrentAgent, SessionDep, require_scope
from api.offload import OffLoop
from tickets.chat_links import link_for_order
from tickets.exceptions import Conflict, InvalidInput
from tickets.limits import check_batch
from tickets.orders.store import get_order, order_to_read, pick_units, upsert_order
from tickets.refunds.ledger import quote
from tickets.schemas import ChatLinkRead, OrderBatch, OrderRead, OrderUpsertResult, QuoteAsk

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


@router.get(
    "/{order_no}/chat-link",
    response_model=ChatLinkRead,
    dependencies=[require_scope("orders")],
)
def order_chat_link(
    order_no: str, request: Request, session: SessionDep, agent: CurrentAgent
) -> ChatLinkRead:
    """A signed link to the web chat for this order (a token with the `orders` scope: the
    shop's integration puts it on the order page): it opens /chat already proved for the order,
    until `expires_at` (AFTERSALES_WEB_CHAT_LINK_HOURS). 409 when the web chat is off."""
    settings = request.app.state.settings
    if not settings.web_chat:
        raise Conflict("the web chat is off (AFTERSALES_WEB_CHAT=false)")
    link = link_for_order(
        session,
        secret=settings.secret_key,
        public_url=settings.public_url,
        order_no=order_no,
        now=request.app.state.clock(),
        hours=settings.web_chat_link_hours,
    )
    return ChatLinkRead(order_no=link.order_no, url=link.url, expires_at=link.expires_at)


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
