"""Reading many cases: the filters of the queue and the API, keyset cursors, and the
listing itself.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    func,
    select,
    tuple_,
)
from sqlalchemy.orm import Session, defer, joinedload

from tickets.exceptions import (
    InvalidInput,
)
from tickets.models import (
    Agent,
    Customer,
    Order,
    Ticket,
)
from tickets.schemas import INT32_MAX
from tickets.sla import clocks as sla

# ---------------------------------------------------------------- the queue


@dataclass(frozen=True)
class TicketFilters:
    status: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    group: str | None = None
    assignee: str | None = None  # a username, or "none" for unassigned
    order_no: str | None = None
    customer_id: int | None = None
    priority: str | None = None
    channel: str | None = None
    # Only cases with a shop clock past due at this time.
    overdue_at: datetime | None = None
    # Further conditions of a caller's own (the panel's narrowing: risk, dates, breaching).
    extra: tuple[ColumnElement[bool], ...] = ()


def encode_cursor(created_at: datetime, ticket_id: int) -> str:
    raw = f"{created_at.isoformat()}|{ticket_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, _, ident = base64.urlsafe_b64decode(padded).decode().partition("|")
        when = datetime.fromisoformat(created)
        number = int(ident)
        # A case id is an INTEGER: a larger one is no cursor of ours (and would overflow it).
        if when.tzinfo is None or not 1 <= number <= INT32_MAX:
            raise ValueError
        return when, number
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "bad cursor: pass next_cursor from the previous page as it is",
            [{"loc": "cursor", "msg": "not a cursor from this API"}],
        ) from exc


def _filtered(query: Select[Any], f: TicketFilters, session: Session) -> Select[Any]:
    if f.status:
        query = query.where(Ticket.status.in_(f.status))
    if f.kind:
        query = query.where(Ticket.kind.in_(f.kind))
    if f.group:
        query = query.where(Ticket.group == f.group)
    if f.priority:
        query = query.where(Ticket.priority == f.priority)
    if f.channel:
        query = query.where(Ticket.channel == f.channel)
    if f.assignee == "none":
        query = query.where(Ticket.assignee_id.is_(None))
    elif f.assignee:
        agent_id = session.scalar(select(Agent.id).where(Agent.username == f.assignee))
        query = query.where(Ticket.assignee_id == (agent_id if agent_id is not None else -1))
    if f.order_no:
        order_id = session.scalar(select(Order.id).where(Order.order_no == f.order_no))
        query = query.where(Ticket.order_id == (order_id if order_id is not None else -1))
    if f.customer_id is not None:
        query = query.where(Ticket.customer_id == f.customer_id)
    if f.overdue_at is not None:
        query = query.where(sla.overdue_condition(f.overdue_at))
    if f.extra:
        query = query.where(*f.extra)
    return query


def list_tickets(
    *,
    session: Session,
    filters: TicketFilters,
    limit: int,
    cursor: str | None = None,
    count_cap: int = 10_000,
) -> tuple[list[Ticket], int, str | None]:
    """A page of the queue, newest first, keyset-paginated (stable while cases arrive), with
    the count of matching cases (at most `count_cap` + 1: more means "over the cap") and the
    cursor of the next page."""
    query = _filtered(select(Ticket), filters, session)
    if cursor:
        created, ident = decode_cursor(cursor)
        # A row-value comparison: the index seeks straight to the page (no growing filter).
        query = query.where(tuple_(Ticket.created_at, Ticket.id) < tuple_(created, ident))
    query = (
        query.order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit + 1)
        .options(
            # A queue row names the customer, the order and the assignee: joined in the same
            # statement, only the columns the rows show (full rows, with the order's JSON and
            # every date converted, were half of the queue's time).
            joinedload(Ticket.customer, innerjoin=True).load_only(Customer.name),
            joinedload(Ticket.order).load_only(Order.order_no, Order.currency),
            joinedload(Ticket.assignee).load_only(Agent.username, Agent.display_name),
            defer(Ticket.description),
            defer(Ticket.risk_signals),
            defer(Ticket.pickup),
        )
    )
    rows = list(session.scalars(query))
    # Counted up to a cap, so a queue over a million cases costs what a full page costs: an
    # agent needs "10 000+" there, not the exact figure (the caller shows count_capped).
    capped = _filtered(select(Ticket.id), filters, session).limit(count_cap + 1).subquery()
    count = session.scalar(select(func.count()).select_from(capped)) or 0
    next_cursor = None
    if len(rows) > limit and rows[:limit]:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, count, next_cursor
