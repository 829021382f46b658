"""The refund the customer confirmed is the refund the case proposes.

The bot shows a refund estimate before the customer confirms a request; the case it opens is
then quoted by the core. Both choose the units (`pick_units`), ask the one eligibility home
(tickets/policy/eligibility.py) and quote them (`tickets.refunds.ledger`) the same way, so for any
request on any order (a mixed one: clothes and fresh food), with units already taken by earlier
cases, the two agree: no estimate for what the case would refuse, and the same amount for the
rest.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import order_json
from tickets.cases.opening import open_case
from tickets.context import SYSTEM, Context
from tickets.exceptions import DomainError, DuplicateCase
from tickets.models import utcnow
from tickets.orders.store import get_order, upsert_order
from tickets.policy.rules import Policy
from tickets.reasons import CUSTOMER_CHOICE_REASONS, SELLER_FAULT_REASONS
from tickets.refunds.ledger import preview_refund, ticket_quote
from tickets.schemas import OrderIn, TicketCreate

SKUS = {"JACKET-M": 1, "SOCKS": 2, "TEA": 3, "CAKE": 1}  # what order_json bought, and a cake
_numbers = count(1)

quantities = st.fixed_dictionaries({sku: st.integers(0, n) for sku, n in SKUS.items()})
requests = st.tuples(
    st.sampled_from(["refund_only", "return_refund"]),
    st.sampled_from(sorted(SELLER_FAULT_REASONS + CUSTOMER_CHOICE_REASONS)),
    quantities,
)


def _order(order_no: str, status: str, now: Any) -> dict[str, Any]:
    day = timedelta(days=1)
    data = order_json(
        order_no,
        placed_at=(now - 5 * day).isoformat(),
        paid_at=(now - 5 * day).isoformat(),
        shipped_at=(now - 4 * day).isoformat(),
        delivered_at=(now - 2 * day).isoformat(),
    )
    # A mixed order: fresh food beside the clothes, never a no-reason return (the one
    # eligibility home decides per line, for the preview and the case alike).
    data["lines"].append(
        {
            "sku": "CAKE",
            "title": "Birthday cake",
            "category": "fresh_food",
            "quantity": 1,
            "unit_price": "59.00",
        }
    )
    if status == "paid":
        data.update(status="paid", shipped_at=None, delivered_at=None)
    return data


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    status=st.sampled_from(["delivered", "paid"]),
    earlier=st.none() | requests,
    request=requests,
)
def test_the_preview_is_the_cases_quote(
    sessions: sessionmaker[Session],
    scripts: Any,
    status: str,
    earlier: tuple[str, str, dict[str, int]] | None,
    request: tuple[str, str, dict[str, int]],
) -> None:
    ctx = Context(policy=Policy(), now=utcnow(), tz=ZoneInfo("Asia/Shanghai"), scripts=scripts)
    order_no = f"PV{next(_numbers)}"

    def submit(s: Session, kind: str, reason: str, items: dict[str, int]) -> Any:
        return open_case(
            session=s,
            request=TicketCreate.model_validate(
                {
                    "order_no": order_no,
                    "kind": kind,
                    "reason": reason,
                    "items": [{"sku": k, "quantity": q} for k, q in items.items() if q],
                    "channel": "telegram",
                    "description": "as the customer wrote it",
                }
            ),
            actor=SYSTEM,
            ctx=ctx,
            photos=1,
        )

    with sessions() as s:
        upsert_order(
            session=s, data=OrderIn.model_validate(_order(order_no, status, ctx.now)), now=ctx.now
        )
        s.commit()
    if earlier is not None and any(earlier[2].values()):
        # Units an earlier case already holds: the preview and the case both skip them.
        with sessions() as s:
            try:
                submit(s, *earlier)
                s.commit()
            except DomainError:
                s.rollback()

    kind, reason, items = request
    with sessions() as s:
        order = get_order(session=s, order_no=order_no)
        preview = preview_refund(
            session=s,
            order=order,
            kind=kind,
            reason=reason,
            items=items,
            policy=ctx.policy,
            now=ctx.now,
            timezone=str(ctx.tz),
        )
    with sessions() as s:
        try:
            ticket = submit(s, kind, reason, items)
        except DuplicateCase:
            # The earlier case already asks for this: the customer is sent to it at submit,
            # and no refund is opened to compare (the preview is only an estimate).
            assume(False)
        except DomainError:
            # Refused at submit (the policy, the units): the preview promised nothing either.
            assert preview is None, "an estimate was shown for a request the case refuses"
            return
        assert preview is not None, "the case opened: the preview must have shown its refund"
        s.flush()
        quoted = ticket_quote(
            session=s, ticket=ticket, policy=ctx.policy, now=ctx.now, timezone=str(ctx.tz)
        )
        s.rollback()
    assert quoted is not None and quoted.eligible, quoted
    assert (quoted.amount, quoted.currency) == (preview.amount, preview.currency)
