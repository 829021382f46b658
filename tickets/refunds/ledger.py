"""Refund quotes from the database: an order's rows and its refund ledger turned into the
calculator's input (tickets/refunds/calculator.py), and a quote turned back into ledger rows.
Over 500 lines as one file: reading the ledger into the calculator and writing a quote back are
the two halves of one mapping, which change together.

The calculator is pure; this module is the only place that knows how the ledger is stored:
refund lines of kind `unit` (what each unit got back), `payment` (what each payment paid back)
and `freight` (return freight reimbursed), counted once their refund is issued or confirmed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from tickets.exceptions import InvalidInput
from tickets.models import (
    CaseKind,
    Event,
    EventType,
    Order,
    OrderStatus,
    Refund,
    RefundLine,
    RefundStatus,
    Ticket,
    UnitStatus,
)
from tickets.money import format_amount, to_minor
from tickets.orders.store import pick_units
from tickets.policy.eligibility import check_request, order_facts
from tickets.policy.rules import Policy
from tickets.reasons import CUSTOMER_CHOICE_REASONS, REASONS, SELLER_FAULT_REASONS
from tickets.refunds.calculator import (
    KINDS as QUOTED_KINDS,
)
from tickets.refunds.calculator import (
    Adjustment,
    Quote,
    QuoteError,
    QuoteLine,
    QuoteOrder,
    QuotePayment,
    QuoteRequest,
    QuoteUnit,
    ReturnFreight,
    Route,
    quote_refund,
)
from tickets.schemas import ItemIn

# A refund counts in the ledger once approved: an approved refund has not gone out yet but
# holds its units, so no other case can refund them meanwhile (a proposal holds nothing: it
# is checked against the ledger again when approved and when issued, see ledger_overdraw).
COUNTED = (RefundStatus.approved.value, RefundStatus.issued.value, RefundStatus.confirmed.value)
INSPECTED = {
    UnitStatus.resalable.value,
    UnitStatus.damaged.value,
    UnitStatus.missing.value,
    UnitStatus.wrong_item.value,
}


def unit_passes(outcome: str, reason: str) -> bool:
    """Whether an inspected unit is still refunded (or exchanged): resalable always; damaged
    when the claim was the seller's fault (the damage is what was claimed)."""
    if outcome == UnitStatus.resalable.value:
        return True
    return outcome == UnitStatus.damaged.value and reason in SELLER_FAULT_REASONS


# Built once (building a statement costs more than running it): the order's counted refunds,
# each with its ledger lines (or one row of NULLs when it has none).
_LEDGER = (
    select(
        Refund.id,
        Refund.shipping_refunded,
        Refund.promotion_clawback,
        Refund.shipping_clawback,
        RefundLine.kind,
        RefundLine.unit_id,
        RefundLine.payment_id,
        RefundLine.amount,
    )
    .outerjoin(RefundLine, RefundLine.refund_id == Refund.id)
    .where(Refund.order_id == bindparam("order_id"), Refund.status.in_(COUNTED))
)


# What the order's live refunds pay back (the large-refund threshold applies to their sum with
# a new one): every refund but the withdrawn or refused (cancelled) and the failed, and but the
# case's own (a new proposal replaces the case's live one).
_LIVE_TOTAL = select(func.coalesce(func.sum(Refund.amount), 0)).where(
    Refund.order_id == bindparam("order_id"),
    Refund.status.notin_([RefundStatus.cancelled.value, RefundStatus.failed.value]),
    Refund.ticket_id != bindparam("ticket_id"),
)


def quote_order(session: Session, order: Order, ticket_id: int | None = None) -> QuoteOrder:
    """The order and its ledger as the calculator sees them; `ticket_id`: the case the quote
    is for (its own refund is not one of the order's other refunds)."""
    per_unit: dict[int, int] = defaultdict(int)
    per_payment: dict[int, int] = defaultdict(int)
    # Per refund (counted once, however many lines it has): shipping refunded, promotion and
    # shipping clawed back.
    totals: dict[int, tuple[int, int, int]] = {}
    for (
        refund_id,
        shipping,
        promotion,
        clawback,
        kind,
        unit_id,
        payment_id,
        amount,
    ) in session.execute(_LEDGER, {"order_id": order.id}):
        totals[refund_id] = (shipping or 0, promotion or 0, clawback or 0)
        if kind == "unit" and unit_id is not None:
            per_unit[unit_id] += amount
        elif kind == "payment" and payment_id is not None:
            per_payment[payment_id] += amount
    return QuoteOrder(
        currency=order.currency,
        status=order.status,
        lines=tuple(
            QuoteLine(
                sku=ln.sku,
                quantity=ln.quantity,
                unit_price=ln.unit_price,
                discount=ln.discount,
                gift_value=ln.gift_value,
                gift_for=ln.gift_for,
                category=ln.category,
                no_reason_return=ln.no_reason_return,
                units=tuple(
                    QuoteUnit(
                        unit_id=u.id,
                        net=u.net,
                        refunded_so_far=per_unit.get(u.id, 0),
                        returned=u.id in per_unit,
                    )
                    for u in ln.units
                ),
            )
            for ln in order.lines
        ),
        payments=tuple(
            QuotePayment(
                payment_id=p.id,
                method=p.method,
                amount=p.amount,
                kind=p.kind,
                refunded_so_far=per_payment.get(p.id, 0),
            )
            for p in order.payments
        ),
        shipping_fee=order.shipping_fee,
        free_shipping_threshold=order.free_shipping_threshold,
        promotion_threshold=order.promotion_threshold,
        order_discount=order.order_discount,
        exchange_rate=Decimal(order.exchange_rate) if order.exchange_rate else None,
        presale=order.presale,
        shipping_refunded_so_far=sum(t[0] for t in totals.values()),
        promotion_clawed_back=sum(t[1] for t in totals.values()),
        shipping_clawed_back=sum(t[2] for t in totals.values()),
        other_refunds=int(
            session.scalar(_LIVE_TOTAL, {"order_id": order.id, "ticket_id": ticket_id or 0}) or 0
        ),
    )


def _refused_on_delivery(order: Order, reason: str) -> bool:
    """A parcel the customer refused for personal reasons (MONEY.md rule 7)."""
    return order.status == OrderStatus.refused.value and reason in CUSTOMER_CHOICE_REASONS


def policy_refusals(
    *,
    order: Order,
    kind: str,
    reason: str,
    unit_ids: list[int],
    policy: Policy,
    at: datetime,
    timezone: str,
) -> tuple[str, ...]:
    """What the eligibility rules (tickets/policy/eligibility.py, their one home) refuse in a
    claim of these units, judged `at` the time it was asked, in words: the same check
    `open_case` makes, so a quote never allows what a case could not ask, nor the reverse."""
    sku_of = {u.id: ln.sku for ln in order.lines for u in ln.units}
    # Units the order does not have are the calculator's to name (a 422), not a refusal.
    per_sku = Counter(sku_of[u] for u in unit_ids if u in sku_of)
    problems = check_request(
        order_facts=order_facts(order),
        kind=kind,
        reason=reason,
        items=[ItemIn(sku=sku, quantity=q) for sku, q in per_sku.items()],
        rules=policy.eligibility,
        now=at,
        tz=ZoneInfo(timezone),
    )
    return tuple(p.message for p in problems)


def quote(
    *,
    session: Session,
    order: Order,
    kind: str,
    reason: str,
    unit_ids: list[int],
    policy: Policy,
    now: datetime,
    outcomes: dict[int, str] | None = None,
    return_freight: Decimal | None = None,
    freight_receipt: bool = False,
    requested_at: datetime | None = None,
    timezone: str = "Asia/Shanghai",
    ticket_id: int | None = None,
    policy_waived: bool = False,
    override_refusal: bool = False,
) -> Quote:
    """The refund of these units of `order` (for case `ticket_id`, if any), itemised, with the
    ledger taken into account, refused where the eligibility rules refuse the claim as asked
    at `requested_at` (`now` if None; the no-reason window is judged then, not at refund
    time), unless a lead waived them (`policy_waived`). Raises InvalidInput naming the field
    when the calculator cannot read the request."""
    freight = None
    if return_freight:
        # The schema cannot know the order's currency: "0.001" fits no CNY amount.
        try:
            amount = to_minor(return_freight, order.currency)
        except ValueError as exc:
            raise InvalidInput(
                f"return_freight: {exc}", [{"loc": "return_freight", "msg": str(exc)}]
            ) from None
        freight = ReturnFreight(amount=amount, receipt=freight_receipt)
    refused: tuple[str, ...] = ()
    if not policy_waived and kind in QUOTED_KINDS and reason in REASONS:
        # An unknown kind or reason is the calculator's to name (a 422), not a refusal.
        refused = policy_refusals(
            order=order,
            kind=kind,
            reason=reason,
            unit_ids=unit_ids,
            policy=policy,
            at=requested_at or now,
            timezone=timezone,
        )
    request = QuoteRequest(
        kind=kind,
        reason=reason,
        unit_ids=tuple(unit_ids),
        outcomes=outcomes or {},
        return_freight=freight,
        refused_on_delivery=_refused_on_delivery(order, reason),
        refused_by_policy=refused,
        override_refusal=override_refusal,
    )
    rules = policy.refunds.for_currency(order.currency)
    try:
        return quote_refund(quote_order(session, order, ticket_id), request, rules, now=now)
    except QuoteError as exc:
        raise InvalidInput(str(exc), [{"loc": exc.loc, "msg": str(exc)}]) from exc


@dataclass(frozen=True)
class PreviewItem:
    """One SKU of a preview: how many units, and what was paid for them (their nets)."""

    sku: str
    quantity: int
    net: int


@dataclass(frozen=True)
class Preview:
    """What a request would refund, before it is a case: minor units of the order's currency,
    with the short breakdown a customer reads before submitting (MONEY.md: the customer sees
    the number before submitting): what was paid per item, the deductions and additions by
    rule (units' and the order's together), and the routes the money takes back."""

    amount: int
    currency: str
    items: tuple[PreviewItem, ...] = ()
    deductions: tuple[Adjustment, ...] = ()
    additions: tuple[Adjustment, ...] = ()
    routes: tuple[Route, ...] = ()


def _by_rule(adjustments: list[Adjustment]) -> tuple[Adjustment, ...]:
    """Adjustments summed per rule, in the order each rule first appears."""
    sums: dict[str, int] = {}
    for a in adjustments:
        sums[a.rule] = sums.get(a.rule, 0) + a.amount
    return tuple(Adjustment(amount=v, rule=k) for k, v in sums.items() if v)


def preview_of(estimate: Quote) -> Preview:
    """A quote's short breakdown (`Preview`)."""
    items: dict[str, tuple[int, int]] = {}
    for u in estimate.lines:
        qty, net = items.get(u.sku, (0, 0))
        items[u.sku] = (qty + 1, net + u.net)
    return Preview(
        amount=estimate.amount,
        currency=estimate.currency,
        items=tuple(PreviewItem(sku=k, quantity=q, net=n) for k, (q, n) in items.items()),
        deductions=_by_rule(
            [d for u in estimate.lines for d in u.deductions] + list(estimate.deductions)
        ),
        additions=_by_rule(
            [a for u in estimate.lines for a in u.additions] + list(estimate.additions)
        ),
        routes=estimate.routes,
    )


def preview_refund(
    *,
    session: Session,
    order: Order,
    kind: str,
    reason: str,
    items: Mapping[str, int],
    policy: Policy,
    now: datetime,
    timezone: str = "Asia/Shanghai",
) -> Preview | None:
    """The refund a request for `items` (quantity per SKU) would pay if it were opened now: the
    units the case would name (`pick_units`, the same choice as `open_case`) quoted as
    `ticket_quote` will quote the case, the eligibility rules included (`quote`). None when
    the kind refunds nothing, the items cannot be claimed, or the policy refuses the request
    (as `open_case` would: the same rules, asked the same way)."""
    if kind not in (CaseKind.refund_only.value, CaseKind.return_refund.value):
        return None
    wanted = [ItemIn(sku=sku, quantity=q) for sku, q in items.items() if q > 0]
    if not wanted:
        return None
    try:
        picked = pick_units(session=session, order=order, items=wanted)
        estimate = quote(
            session=session,
            order=order,
            kind=kind,
            reason=reason,
            unit_ids=[unit for _line, _qty, units in picked for unit in units],
            policy=policy,
            now=now,
            requested_at=now,
            timezone=timezone,
        )
    except InvalidInput:
        return None
    if not estimate.eligible:
        return None
    return preview_of(estimate)


# Built once: whether a case was opened against the policy by a lead (its override event).
_WAIVED = (
    select(Event.id)
    .where(
        Event.ticket_id == bindparam("ticket_id"),
        Event.type == EventType.policy_overridden.value,
    )
    .limit(1)
)


# Built once: whether the customer took the refund a failed inspection refused, shipping both
# ways theirs (tickets.cases.actions.returns.refund_anyway).
_OVERRIDDEN = (
    select(Event.id)
    .where(
        Event.ticket_id == bindparam("ticket_id"),
        Event.type == EventType.refusal_overridden.value,
    )
    .limit(1)
)


def ticket_quote(
    *,
    session: Session,
    ticket: Ticket,
    policy: Policy,
    now: datetime,
    timezone: str = "Asia/Shanghai",
    return_freight: Decimal | None = None,
    freight_receipt: bool = False,
) -> Quote | None:
    """The refund a case would pay now: its units not yet refunded, with their inspection
    outcomes once inspected. None for cases that move no money (complaints, deliveries)."""
    if ticket.order is None or ticket.kind not in (
        CaseKind.refund_only.value,
        CaseKind.return_refund.value,
    ):
        return None
    # Units that failed inspection (damaged after a change of mind, missing, wrong item) are
    # not refunded; their proof stays on the case and the refusal offers the alternative. A
    # customer who took that alternative (the refund anyway, shipping both ways theirs) has
    # the damaged ones refunded under the calculator's override rule.
    overridden = session.scalar(_OVERRIDDEN, {"ticket_id": ticket.id}) is not None
    units = [
        u
        for u in ticket.units
        if u.status != UnitStatus.refunded.value
        and (
            u.status not in INSPECTED
            or unit_passes(u.status, ticket.reason)
            or (overridden and u.status == UnitStatus.damaged.value)
        )
    ]
    if not units:
        return None
    outcomes = {u.unit_id: u.status for u in units if u.status in INSPECTED}
    # A lead who opened the case against the policy waived it for the case's refund too.
    waived = session.scalar(_WAIVED, {"ticket_id": ticket.id}) is not None
    return quote(
        session=session,
        order=ticket.order,
        kind=ticket.kind,
        reason=ticket.reason,
        unit_ids=[u.unit_id for u in units],
        outcomes=outcomes,
        policy=policy,
        now=now,
        return_freight=return_freight,
        freight_receipt=freight_receipt,
        requested_at=ticket.created_at,
        timezone=timezone,
        ticket_id=ticket.id,
        policy_waived=waived,
        override_refusal=overridden,
    )


def refund_from_quote(
    *, ticket: Ticket, q: Quote, proposed_by: int | None, now: datetime
) -> Refund:
    """A proposed refund with its ledger rows, frozen from the quote."""
    assert ticket.order is not None
    main = next((r for r in q.routes if r.payment_id is not None), None)
    refund = Refund(
        ticket=ticket,
        order_id=ticket.order.id,
        amount=q.amount,
        currency=q.currency,
        method=main.method if main else ticket.order.payment_method,
        breakdown=q.to_json(),
        proposed_by_id=proposed_by,
        created_at=now,
        needs_second_approval=q.needs_second_approval,
        shipping_refunded=q.shipping_refunded,
        freight_reimbursed=q.freight_reimbursed,
        promotion_clawback=q.promotion_clawback,
        shipping_clawback=q.shipping_clawback,
    )
    for u in q.lines:
        refund.lines.append(
            RefundLine(kind="unit", unit_id=u.unit_id, amount=u.refund, rule="unit refund")
        )
    for r in q.routes:
        refund.lines.append(
            RefundLine(
                kind="payment" if r.payment_id is not None else "freight",
                payment_id=r.payment_id,
                method=r.method,
                amount=r.amount,
                rule="route",
            )
        )
    return refund


# The order's other counted refunds, summed per ledger key: what each unit, payment and the
# shipping fee has already given back or holds.
_OTHERS = (
    select(RefundLine.kind, RefundLine.unit_id, RefundLine.payment_id, func.sum(RefundLine.amount))
    .join(Refund, RefundLine.refund_id == Refund.id)
    .where(
        Refund.order_id == bindparam("order_id"),
        Refund.status.in_(COUNTED),
        Refund.id != bindparam("refund_id"),
    )
    .group_by(RefundLine.kind, RefundLine.unit_id, RefundLine.payment_id)
)
_OTHERS_SHIPPING = select(func.coalesce(func.sum(Refund.shipping_refunded), 0)).where(
    Refund.order_id == bindparam("order_id"),
    Refund.status.in_(COUNTED),
    Refund.id != bindparam("refund_id"),
)


def ledger_overdraw(session: Session, order: Order, refund: Refund) -> list[str]:
    """What `refund` would pay back beyond what is left once every other approved, issued or
    confirmed refund of the order is counted (MONEY.md rules 10 and 12): one line per unit,
    payment or shipping fee overdrawn; empty when it fits."""
    params = {"order_id": order.id, "refund_id": refund.id}
    units: dict[int, int] = {}
    payments: dict[int, int] = {}
    for kind, unit_id, payment_id, amount in session.execute(_OTHERS, params):
        if kind == "unit" and unit_id is not None:
            units[unit_id] = int(amount or 0)
        elif kind == "payment" and payment_id is not None:
            payments[payment_id] = int(amount or 0)
    cur = order.currency
    nets = {u.id: (ln.sku, u.unit_index, u.net) for ln in order.lines for u in ln.units}
    paid = {p.id: (p.method, p.amount) for p in order.payments}
    problems: list[str] = []
    for line in refund.lines:
        if line.kind == "unit" and line.unit_id is not None:
            sku, index, net = nets.get(line.unit_id, ("?", 0, 0))
            before = units.get(line.unit_id, 0)
            if before + line.amount > net:
                problems.append(
                    f"unit {index} of {sku} has {format_amount(max(net - before, 0), cur)} "
                    f"left to refund, not {format_amount(line.amount, cur)}"
                )
        elif line.kind == "payment" and line.payment_id is not None:
            method, amount = paid.get(line.payment_id, ("?", 0))
            before = payments.get(line.payment_id, 0)
            if before + line.amount > amount:
                problems.append(
                    f"the {method} payment has {format_amount(max(amount - before, 0), cur)} "
                    f"left to refund, not {format_amount(line.amount, cur)}"
                )
    if refund.shipping_refunded:
        before = int(session.scalar(_OTHERS_SHIPPING, params) or 0)
        if before + refund.shipping_refunded > order.shipping_fee:
            problems.append(
                f"the shipping fee has {format_amount(max(order.shipping_fee - before, 0), cur)} "
                "left to refund"
            )
    return problems
