"""JSON API: orders in (batch upsert) and out."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentAgent, SessionDep
from tickets.exceptions import InvalidInput
from tickets.models import utcnow
from tickets.orders import get_order, order_to_read, upsert_order
from tickets.schemas import OrderBatch, OrderRead, OrderUpsertResult

router = APIRouter(prefix="/orders", tags=["orders"])


@router.post("", response_model=OrderUpsertResult)
def upsert_orders(batch: OrderBatch, session: SessionDep, agent: CurrentAgent) -> OrderUpsertResult:
    """Create or update a batch of orders by order number. All or nothing: one bad order and
    none is written; the errors name each one (`orders.3.lines.0.unit_price`). Sending the
    same batch again changes nothing."""
    now = utcnow()
    result = OrderUpsertResult(created=[], updated=[], unchanged=[])
    errors = []
    seen: set[str] = set()
    for i, data in enumerate(batch.orders):
        if data.order_no in seen:
            errors.append({"loc": f"orders.{i}.order_no", "msg": "order appears twice in batch"})
            continue
        seen.add(data.order_no)
        try:
            _order, outcome = upsert_order(session=session, data=data, now=now, loc=f"orders.{i}")
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
