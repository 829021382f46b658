"""The one place the bot asks "what may this customer request on this order, and for how much".

Every answer comes from the core, so the bot's menus, the API's 422 and the panel agree: the
kinds open now and the reasons each allows (tickets.policy.eligibility.eligible_kinds, in the
customer's language), per item the reasons it may get and why not the others
(tickets.policy.eligibility.line_verdicts), the evidence a claim needs
(tickets.policy.eligibility.evidence_needed), the units still free
(tickets.orders.store.free_units) and the refund estimate
(tickets.refunds.ledger.preview_refund: the units `open_case` will name, quoted as the case will
be). The bot calls nothing else for these decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, tzinfo

from sqlalchemy.orm import Session

from tickets.models import CaseKind, Order
from tickets.orders.store import get_order
from tickets.policy.eligibility import (
    ITEM_KINDS,
    EvidenceNeed,
    KindVerdict,
    LineVerdict,
    eligible_kinds,
    evidence_needed,
    line_verdicts,
    order_facts,
    reasons_for,
)
from tickets.policy.rules import Policy

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


def line_offers(
    order: Order, *, policy: Policy, kind: str, now: datetime, tz: tzinfo, language: str
) -> list[LineVerdict]:
    """For each line of the order, the reasons it may be claimed for with `kind` now, and why
    not the others, in the customer's words (tickets.policy.eligibility.line_verdicts)."""
    return line_verdicts(
        order_facts=order_facts(order),
        kind=kind,
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
    """The order (tickets.orders.store.get_order), loaded once per unit of work: several steps of
    one update ask for it, and each load is five queries."""
    cache: dict[str, Order] = session.info.setdefault(_ORDERS, {})
    order = cache.get(order_no)
    if order is None:
        order = cache[order_no] = get_order(session=session, order_no=order_no)
    return order
