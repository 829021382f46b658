"""Loading a case (with or without its row lock) and moving its status, with the event,
the clocks and the notices every status change brings.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session, selectinload

from tickets.cases.events import record_event
from tickets.cases.routing import reroute
from tickets.context import Actor, Context
from tickets.exceptions import (
    NotFound,
)
from tickets.logcontext import about_case
from tickets.models import (
    CaseStatus,
    EventType,
    Message,
    Ticket,
    TicketItem,
    TicketUnit,
)
from tickets.sla import clocks as sla


def set_status(
    *,
    session: Session,
    ticket: Ticket,
    status: CaseStatus,
    ctx: Context,
    actor: Actor,
    **data: Any,
) -> None:
    old = ticket.status
    if old == status.value:
        return
    ticket.status = status.value
    if status in (CaseStatus.closed, CaseStatus.cancelled):
        ticket.closed_at = ctx.now
    elif old in (CaseStatus.closed.value, CaseStatus.cancelled.value):
        ticket.closed_at = None
    record_event(
        session=session,
        ticket=ticket,
        type=EventType.status_changed,
        actor=actor,
        now=ctx.now,
        **{"from": old, "to": status.value, **data},
    )
    reroute(session=session, ticket=ticket, ctx=ctx, actor=actor)
    sla.on_status_change(
        session=session,
        ticket=ticket,
        old=old,
        new=status.value,
        ctx=ctx,
        by_agent=actor.agent is not None,
    )


def load_ticket(session: Session, number: str, *, for_update: bool = False) -> Ticket:
    query = (
        select(Ticket)
        .where(Ticket.number == number)
        .options(
            selectinload(Ticket.items).selectinload(TicketItem.line),
            selectinload(Ticket.units).selectinload(TicketUnit.unit),
            selectinload(Ticket.customer),
            selectinload(Ticket.order),
            selectinload(Ticket.assignee),
        )
    )
    if for_update:
        query = query.with_for_update()
    ticket = session.scalar(query)
    if ticket is None:
        raise NotFound(f"no case {number}", number=number)
    about_case(ticket.number)
    return ticket


def get_ticket(*, session: Session, number: str) -> Ticket:
    """The case with this number, with what its JSON shows loaded, or NotFound."""
    ticket = session.scalar(
        select(Ticket)
        .where(Ticket.number == number)
        .options(
            selectinload(Ticket.items).selectinload(TicketItem.line),
            selectinload(Ticket.units).selectinload(TicketUnit.unit),
            selectinload(Ticket.customer),
            selectinload(Ticket.order),
            selectinload(Ticket.assignee),
            selectinload(Ticket.messages).selectinload(Message.attachments),
            selectinload(Ticket.messages).selectinload(Message.agent),
            selectinload(Ticket.attachments),
            selectinload(Ticket.events),
        )
    )
    if ticket is None:
        raise NotFound(f"no case {number}", number=number)
    return ticket
