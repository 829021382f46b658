"""The one place the bot asks "what may this customer request on this order, and for how much".

Every answer comes from the core, so the bot's menus, the API's 422 and the panel agree: the
kinds open now and the reasons each allows (tickets.policy.eligible_kinds, in the customer's
language), the evidence a claim needs (tickets.policy.evidence_needed), the units still free
(tickets.orders.units_taken) and the refund estimate (tickets.quotes.quote, the calculator
on the units the case will name). The bot calls nothing else for these decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy.orm import Session

from tickets.config import Policy
from tickets.exceptions import InvalidInput
from tickets.models import CaseKind, Order
from tickets.orders import get_order, units_taken
from tickets.policy import (
    ITEM_KINDS,
    EvidenceNeed,
    KindVerdict,
    eligible_kinds,
    evidence_needed,
    order_facts,
    reasons_for,
)
from tickets.quotes import quote

log = logging.getLogger(__name__)


def kind_verdicts(
    order: Order, *, policy: Policy, now: datetime, tz: tzinfo, language: str
) -> list[KindVerdict]:
    """For every kind, whether the order is open to it now, why not, and its open reasons."""
    return eligible_kinds(
        order_facts=order_facts(order),
        rules=policy.eligibility,
        now=now,
        tz=tz,
        language=language,
    )


def verdict_for(verdicts: list[KindVerdict], kind: str) -> KindVerdict | None:
    """The verdict on one kind, if there is one."""
    return next((v for v in verdicts if v.kind == kind), None)


def reasons_of(verdict: KindVerdict, policy: Policy) -> tuple[str, ...]:
    """The reasons offered for an allowed kind: those open now (all of the kind's otherwise)."""
    return verdict.reasons or reasons_for(verdict.kind, policy.eligibility)


def needs_items(kind: CaseKind) -> bool:
    """Whether the request names goods (complaints and delivery problems do not)."""
    return kind in ITEM_KINDS


def line_categories(order: Order) -> dict[str, str]:
    """Each line's category by SKU: what the evidence rules look at, small enough to keep in
    the conversation's state (so later steps need not load the order again)."""
    return {ln.sku: ln.category for ln in order.lines}


def evidence_need(
    categories: Mapping[str, str], *, policy: Policy, kind: str, reason: str, skus: list[str]
) -> EvidenceNeed:
    """What the claim must bring (photos, a food's production date) for the claimed lines
    (all the order's lines when none are named); `categories` from `line_categories`."""
    claimed = [c for sku, c in categories.items() if sku in skus] or list(categories.values())
    return evidence_needed(kind=kind, reason=reason, categories=claimed, rules=policy.eligibility)


_ORDERS = "aftersales.orders"


def order_of(session: Session, order_no: str) -> Order:
    """The order (tickets.orders.get_order), loaded once per unit of work: several steps of one
    update ask for it, and each load is five queries."""
    cache: dict[str, Order] = session.info.setdefault(_ORDERS, {})
    order = cache.get(order_no)
    if order is None:
        order = cache[order_no] = get_order(session=session, order_no=order_no)
    return order


def free_units(session: Session, order: Order) -> dict[str, int]:
    """Per SKU, how many units can still be claimed (not refunded, not in another open case)."""
    taken = units_taken(session, order)
    return {ln.sku: sum(1 for u in ln.units if u.id not in taken) for ln in order.lines}


@dataclass(frozen=True)
class Preview:
    """The refund estimate, in minor units of the order's currency."""

    amount: int
    currency: str


def refund_preview(
    session: Session,
    order: Order,
    *,
    kind: CaseKind,
    reason: str,
    items: dict[str, int],
    policy: Policy,
    now: datetime,
    timezone: str,
) -> Preview | None:
    """What the request would refund (the calculator on the lowest-index free units, as the
    case will name them), or None when the kind refunds nothing or no estimate can be made."""
    if kind not in (CaseKind.refund_only, CaseKind.return_refund):
        return None
    taken = units_taken(session, order)
    unit_ids: list[int] = []
    for line in order.lines:
        wanted = items.get(line.sku, 0)
        unit_ids += [u.id for u in line.units if u.id not in taken][:wanted]
    if not unit_ids:
        return None
    try:
        estimate = quote(
            session=session,
            order=order,
            kind=kind.value,
            reason=reason,
            unit_ids=unit_ids,
            policy=policy,
            now=now,
            timezone=timezone,
        )
    except InvalidInput as exc:
        # The request itself is checked again when it is submitted; the preview just says less.
        log.warning("no refund estimate for order %s: %s", order.order_no, exc.message)
        return None
    if not estimate.eligible:
        return None
    return Preview(amount=estimate.amount, currency=estimate.currency)
