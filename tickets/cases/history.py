"""The customer's history beside a case: their other cases and orders, and the ones a risk
signal counted.

"The customer" is wider than one row: the same customer, the customers linked to the same
Telegram account (`customers.linked_to_id`: one person with two phones), anyone with the same
phone, and orders to the same address. Each entry says why it is listed (`why`), the most
direct reason first.

A risk signal ("3rd request in 30 days") is a count the core made when the case was opened
(tickets/policy/risk.py); `signal_history` lists exactly what it counted, read again with the
same rules and the same window (the case's opening time as "now"), so an agent can check it.

Everything is bounded: each query reads at most `cap + 1` rows through an index (the count
says "more than cap" past it), and at most `limit` entries are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from tickets.models import CaseStatus, Customer, Order, OrderStatus, Ticket
from tickets.policy.risk import RiskRules

# Why an entry is listed, most direct first (the panel names each).
SAME_CUSTOMER = "same_customer"
LINKED = "linked_customer"
SAME_PHONE = "same_phone"
SAME_ADDRESS = "same_address"
WHY_ORDER = (SAME_CUSTOMER, LINKED, SAME_PHONE, SAME_ADDRESS)
# The risk signals whose count can be listed (the others are about one fact: a keyword, a
# phone's shape, the time since paying).
LISTED_SIGNALS = (
    "repeat_claims",
    "duplicate_request",
    "same_phone",
    "same_address",
    "cancel_reorder",
)


@dataclass(frozen=True)
class HistoryCase:
    number: str
    kind: str
    status: str
    created_at: datetime
    order_no: str | None
    why: tuple[str, ...]
    current: bool = False


@dataclass(frozen=True)
class HistoryOrder:
    order_no: str
    status: str
    placed_at: datetime
    why: tuple[str, ...]
    current: bool = False


@dataclass(frozen=True)
class CustomerHistory:
    """At most `limit` cases and orders, newest first, and how many there are in all (up to
    `cap`; `more` when there are more than that)."""

    cases: list[HistoryCase] = field(default_factory=list)
    case_count: int = 0
    cases_more: bool = False
    orders: list[HistoryOrder] = field(default_factory=list)
    order_count: int = 0
    orders_more: bool = False
    signal: str | None = None


def _related_customers(session: Session, customer: Customer, cap: int) -> dict[int, str]:
    """The customers who are this one (id -> why): itself, those linked to the same account,
    the same phone. Bounded by `cap` per kind."""
    out: dict[int, str] = {customer.id: SAME_CUSTOMER}
    account = customer.linked_to_id or customer.id
    linked = select(Customer.id).where(
        or_(Customer.id == account, Customer.linked_to_id == account)
    )
    for cid in session.scalars(linked.order_by(Customer.id).limit(cap)):
        out.setdefault(cid, LINKED)
    if customer.phone:
        same = select(Customer.id).where(Customer.phone == customer.phone)
        for cid in session.scalars(same.order_by(Customer.id).limit(cap)):
            out.setdefault(cid, SAME_PHONE)
    return out


def _address(ticket: Ticket) -> str | None:
    order = ticket.order
    return order.address if order is not None and order.address.strip() else None


def _case_rows(
    session: Session,
    parts: list[tuple[Select[Any], str | None]],
    who: dict[int, str],
    cap: int,
) -> tuple[list[tuple[Any, tuple[str, ...]]], bool]:
    """The cases the queries find (each capped), merged, newest first, each with why it is
    listed (`parts`' fixed reason, or its customer's in `who`)."""
    found: dict[int, tuple[Any, set[str]]] = {}
    more = False
    for query, reason in parts:
        rows = session.execute(
            query.with_only_columns(
                Ticket.id, Ticket.created_at, Ticket.customer_id, Ticket.order_id
            )
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(cap + 1)
        ).all()
        more = more or len(rows) > cap
        for row in rows[:cap]:
            why = reason or who.get(row.customer_id, SAME_CUSTOMER)
            found.setdefault(row.id, (row, set()))[1].add(why)
    ordered = sorted(found.values(), key=lambda f: (f[0].created_at, f[0].id), reverse=True)
    return [(row, tuple(w for w in WHY_ORDER if w in why)) for row, why in ordered], more


def _order_rows(
    session: Session,
    parts: list[tuple[Select[Any], str | None]],
    who: dict[int, str],
    cap: int,
) -> tuple[list[tuple[Any, tuple[str, ...]]], bool]:
    """The orders the queries find (each capped), merged, newest first, with why."""
    found: dict[int, tuple[Any, set[str]]] = {}
    more = False
    for query, reason in parts:
        rows = session.execute(
            query.with_only_columns(Order.id, Order.placed_at, Order.customer_id)
            .order_by(Order.placed_at.desc(), Order.id.desc())
            .limit(cap + 1)
        ).all()
        more = more or len(rows) > cap
        for row in rows[:cap]:
            why = reason or who.get(row.customer_id, SAME_CUSTOMER)
            found.setdefault(row.id, (row, set()))[1].add(why)
    ordered = sorted(found.values(), key=lambda f: (f[0].placed_at, f[0].id), reverse=True)
    return [(row, tuple(w for w in WHY_ORDER if w in why)) for row, why in ordered], more


def _load(
    session: Session,
    ticket: Ticket,
    case_rows: list[tuple[Any, tuple[str, ...]]],
    cases_more: bool,
    order_rows: list[tuple[Any, tuple[str, ...]]],
    orders_more: bool,
    limit: int,
    signal: str | None,
) -> CustomerHistory:
    """The first `limit` entries of each list, loaded (two queries), in the lists' order."""
    shown_cases = case_rows[:limit]
    shown_orders = order_rows[:limit]
    tickets = {
        t.id: t
        for t in session.execute(
            select(Ticket.id, Ticket.number, Ticket.kind, Ticket.status, Ticket.created_at)
            .where(Ticket.id.in_([r.id for r, _w in shown_cases]))
            .order_by(Ticket.id)
        ).all()
    }
    order_ids = {r.order_id for r, _w in shown_cases if r.order_id} | {
        r.id for r, _w in shown_orders
    }
    orders = {
        o.id: o
        for o in session.execute(
            select(Order.id, Order.order_no, Order.status, Order.placed_at)
            .where(Order.id.in_(order_ids))
            .order_by(Order.id)
        ).all()
    }
    cases = []
    for row, why in shown_cases:
        t = tickets[row.id]
        cases.append(
            HistoryCase(
                number=t.number,
                kind=t.kind,
                status=t.status,
                created_at=t.created_at,
                order_no=orders[row.order_id].order_no if row.order_id in orders else None,
                why=why,
                current=row.id == ticket.id,
            )
        )
    return CustomerHistory(
        cases=cases,
        case_count=len(case_rows),
        cases_more=cases_more,
        orders=[
            HistoryOrder(
                order_no=orders[row.id].order_no,
                status=orders[row.id].status,
                placed_at=orders[row.id].placed_at,
                why=why,
                current=row.id == ticket.order_id,
            )
            for row, why in shown_orders
        ],
        order_count=len(order_rows),
        orders_more=orders_more,
        signal=signal,
    )


def customer_history(*, session: Session, ticket: Ticket, limit: int, cap: int) -> CustomerHistory:
    """The customer's other cases and orders (same customer, linked customers, same phone,
    same address), newest first: at most `limit` of each, counted up to `cap`."""
    who = _related_customers(session, ticket.customer, cap)
    ids = list(who)
    address = _address(ticket)
    base = select(Ticket).where(Ticket.id != ticket.id)
    case_parts: list[tuple[Select[Any], str | None]] = [
        (base.where(Ticket.customer_id.in_(ids)), None)
    ]
    order_base = select(Order)
    if ticket.order_id is not None:
        order_base = order_base.where(Order.id != ticket.order_id)
    order_parts: list[tuple[Select[Any], str | None]] = [
        (order_base.where(Order.customer_id.in_(ids)), None)
    ]
    if address is not None:
        same_address = select(Order.id).where(Order.address == address).limit(cap)
        case_parts.append((base.where(Ticket.order_id.in_(same_address)), SAME_ADDRESS))
        order_parts.append((order_base.where(Order.address == address), SAME_ADDRESS))
    cases, cases_more = _case_rows(session, case_parts, who, cap)
    orders, orders_more = _order_rows(session, order_parts, who, cap)
    return _load(session, ticket, cases, cases_more, orders, orders_more, limit, None)


def signal_history(
    *, session: Session, ticket: Ticket, signal: str, rules: RiskRules, limit: int, cap: int
) -> CustomerHistory:
    """What the risk signal `signal` counted when the case was opened: the same rule's window
    around the case's opening (this case included where the signal counts it)."""
    if signal not in LISTED_SIGNALS:
        raise ValueError(f"signal {signal!r} has no list")
    at = ticket.created_at
    customer = ticket.customer
    order = ticket.order
    not_draft = Ticket.status != CaseStatus.draft.value
    case_parts: list[tuple[Select[Any], str | None]] = []
    order_parts: list[tuple[Select[Any], str | None]] = []
    if signal == "repeat_claims":
        since = at - timedelta(days=rules.repeat_claims.period_days)
        case_parts.append(
            (
                select(Ticket).where(
                    Ticket.customer_id == customer.id,
                    Ticket.created_at >= since,
                    Ticket.created_at <= at,
                    not_draft,
                ),
                SAME_CUSTOMER,
            )
        )
    elif signal == "duplicate_request" and order is not None:
        since = at - timedelta(minutes=rules.duplicate_request.minutes)
        case_parts.append(
            (
                select(Ticket).where(
                    Ticket.order_id == order.id,
                    Ticket.created_at >= since,
                    Ticket.created_at <= at,
                    not_draft,
                ),
                SAME_CUSTOMER,
            )
        )
    elif signal == "cancel_reorder":
        since = at - timedelta(days=rules.cancel_reorder.period_days)
        order_parts.append(
            (
                select(Order).where(
                    Order.customer_id == customer.id,
                    Order.status == OrderStatus.cancelled.value,
                    Order.placed_at >= since,
                    Order.placed_at <= at,
                ),
                SAME_CUSTOMER,
            )
        )
    elif signal in ("same_phone", "same_address") and order is not None:
        rule = rules.same_phone if signal == "same_phone" else rules.same_address
        period = timedelta(days=rule.period_days)
        low, high = order.placed_at - period, min(order.placed_at + period, at)
        window = (Order.placed_at >= low, Order.placed_at <= high)
        if signal == "same_phone" and customer.phone:
            phones = select(Customer.id).where(Customer.phone == customer.phone)
            order_parts.append(
                (select(Order).where(Order.customer_id.in_(phones), *window), SAME_PHONE)
            )
        elif signal == "same_address" and order.address.strip():
            order_parts.append(
                (select(Order).where(Order.address == order.address, *window), SAME_ADDRESS)
            )
    cases, cases_more = _case_rows(session, case_parts, {}, cap)
    orders, orders_more = _order_rows(session, order_parts, {}, cap)
    return _load(session, ticket, cases, cases_more, orders, orders_more, limit, signal)
