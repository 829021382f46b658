"""What a customer does to their own cases, from any channel (the bot today, the web chat next),
with plain values in and out (no Telegram objects, no HTTP).

Everything a customer does to a case goes through here: open one from a finished
intake, add a message (with its files) to the open one, list theirs, send a tracking number,
withdraw. Each call runs in the update's session and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from tickets.cases.conversation import add_customer_message, record_satisfaction
from tickets.cases.events import record_event
from tickets.cases.lifecycle import perform_action
from tickets.cases.opening import open_case
from tickets.cases.queries import TicketFilters, list_tickets
from tickets.context import Actor, Context
from tickets.exceptions import PermissionDenied
from tickets.models import (
    OPEN_STATUSES,
    Attachment,
    CaseStatus,
    Channel,
    Customer,
    EventType,
    Ticket,
)
from tickets.schemas import ActionRequest, CustomerIn, ItemIn, TicketCreate
from tickets.sla import clocks as sla
from tickets.sla.calendar import calendar_for, is_working
from tickets.storage import StoredFile

# Cases the customer is still talking about (a draft is the bot's own, not yet submitted).
LIVE_STATUSES = [s.value for s in OPEN_STATUSES if s is not CaseStatus.draft]
# Cases a customer may rate (tickets.cases.conversation.record_satisfaction accepts these).
FINISHED_STATUSES = [CaseStatus.closed.value, CaseStatus.resolved.value, CaseStatus.refunded.value]
# A bare "1".."5" typed this long after a case finished still rates it (the closing notice
# asks for a number); later it is just a message.
RATING_WINDOW = timedelta(days=7)


def actor_for(customer: Customer) -> Actor:
    """The customer as the actor of a service call."""
    return Actor(kind="customer", customer_id=customer.id)


def attachments_from(files: Iterable[dict[str, Any]], ctx: Context) -> list[Attachment]:
    """Attachment rows for stored files kept in a conversation's state, in the order the
    customer sent them (Telegram message ids grow; album updates may arrive out of order)."""
    ordered = sorted(files, key=lambda f: f.get("message_id") or 0)
    rows = []
    for f in ordered:
        stored = StoredFile.from_dict(f)
        rows.append(
            Attachment(
                kind=stored.kind,
                mime=stored.mime,
                size=stored.size,
                sha256=stored.sha256,
                storage_key=stored.storage_key,
                original_name=stored.original_name,
                created_at=ctx.now,
            )
        )
    return rows


# Built once: every free message of a customer runs it.
_LATEST_OPEN = (
    select(Ticket)
    .where(Ticket.customer_id == bindparam("customer_id"), Ticket.status.in_(LIVE_STATUSES))
    .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
    .limit(1)
)


def latest_open_case(session: Session, customer: Customer) -> Ticket | None:
    """The customer's most recently active open case, which their free messages go to."""
    return session.scalar(_LATEST_OPEN, {"customer_id": customer.id})


def open_cases(session: Session, customer: Customer, limit: int = 10) -> list[Ticket]:
    """The customer's open cases, newest first."""
    rows, _, _ = list_tickets(
        session=session,
        filters=TicketFilters(customer_id=customer.id, status=LIVE_STATUSES),
        limit=limit,
    )
    return rows


def submit_intake(
    session: Session,
    *,
    customer: Customer,
    ctx: Context,
    order_no: str | None,
    kind: str,
    reason: str,
    items: dict[str, int],
    description: str,
    evidence: Sequence[dict[str, Any]],
) -> Ticket:
    """Open the case the customer described, with their files attached in order."""
    request = TicketCreate(
        kind=kind,
        reason=reason,
        order_no=order_no,
        items=[ItemIn(sku=sku, quantity=q) for sku, q in items.items() if q > 0],
        description=description[:5000],
        channel=Channel.telegram,
        language=customer.language if customer.language in ("zh-CN", "en") else None,
        customer=(
            None
            if order_no
            else CustomerIn(name=customer.name, telegram_user_id=customer.telegram_user_id)
        ),
    )
    photos = sum(1 for f in evidence if f.get("kind") == "photo")
    ticket = open_case(
        session=session, request=request, actor=actor_for(customer), ctx=ctx, photos=photos
    )
    files = attachments_from(evidence, ctx)
    for row in files:
        row.ticket = ticket
        session.add(row)
    if files:
        record_event(
            session=session,
            ticket=ticket,
            type=EventType.evidence_added,
            actor=actor_for(customer),
            now=ctx.now,
            count=len(files),
            photos=photos,
        )
    session.flush()
    return ticket


def add_intake_to_case(
    session: Session,
    *,
    customer: Customer,
    number: str,
    text: str,
    evidence: Sequence[dict[str, Any]],
    ctx: Context,
) -> Ticket:
    """What the customer typed and sent while filling in a request that turned out to be for
    their existing case: added to that case as their message (with the files), so agents see
    it and nothing they wrote is lost."""
    ticket = own_case(session, customer, number)
    rows = attachments_from(evidence, ctx)
    for row in rows:
        # In the session before the service links them to the message (see add_to_case).
        row.ticket = ticket
        session.add(row)
    add_customer_message(session=session, ticket=ticket, text=text, ctx=ctx, attachments=rows)
    return ticket


def add_to_case(
    session: Session,
    *,
    ticket: Ticket,
    text: str,
    files: Sequence[StoredFile],
    message_id: int,
    ctx: Context,
) -> None:
    """A customer's message (and its files) on their case."""
    rows = attachments_from(
        [{**f.to_dict(), "message_id": message_id} for f in files],
        ctx,
    )
    for row in rows:
        # In the session before the service links them to the message (SQLAlchemy refuses to
        # cascade a new object along Message.attachments otherwise).
        row.ticket = ticket
        session.add(row)
    add_customer_message(session=session, ticket=ticket, text=text, ctx=ctx, attachments=rows)


def own_case(session: Session, customer: Customer, number: str) -> Ticket:
    """The customer's case with this number; someone else's is refused."""
    ticket = session.scalar(select(Ticket).where(Ticket.number == number))
    if ticket is None or ticket.customer_id != customer.id:
        raise PermissionDenied(f"case {number} is not this customer's")
    return ticket


def customer_action(
    session: Session, *, customer: Customer, number: str, request: ActionRequest, ctx: Context
) -> Ticket:
    """An action the customer takes on their own case (tracking number, withdraw)."""
    own_case(session, customer, number)
    return perform_action(
        session=session, number=number, request=request, actor=actor_for(customer), ctx=ctx
    )


def unrated_case(session: Session, customer: Customer, now: datetime) -> Ticket | None:
    """The customer's most recently finished case not yet rated, if it finished lately."""
    return session.scalar(
        select(Ticket)
        .where(
            Ticket.customer_id == customer.id,
            Ticket.status.in_(FINISHED_STATUSES),
            Ticket.satisfaction.is_(None),
            Ticket.updated_at >= now - RATING_WINDOW,
        )
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
        .limit(1)
    )


def rate(
    session: Session,
    *,
    customer: Customer,
    ticket_id: int,
    score: int,
    ctx: Context,
    comment: str = "",
) -> Ticket:
    """The customer's rating (and comment) of their own finished case."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or ticket.customer_id != customer.id:
        raise PermissionDenied(f"case {ticket_id} is not this customer's")
    record_satisfaction(session=session, ticket=ticket, score=score, ctx=ctx, comment=comment)
    return ticket


@dataclass(frozen=True)
class Slot:
    """A pickup time slot: its day (local), its part (am, pm) and its hours."""

    day: date
    part: str
    start: time
    end: time

    @property
    def key(self) -> str:
        return self.day.strftime("%Y%m%d")

    @property
    def value(self) -> str:
        """As the case records it (Pickup.time): language-neutral, the shop's local time."""
        return f"{self.day.isoformat()} {self.start:%H:%M}-{self.end:%H:%M}"


def pickup_slots(ticket: Ticket, ctx: Context) -> list[Slot]:
    """The slots of the policy's next working days (`pickup.days`) from tomorrow, on the
    calendar of the case's group (holidays and make-up days included); a slot counts when the
    desk works at its middle."""
    days = ctx.policy.pickup.days
    tz: ZoneInfo = ctx.tz
    calendar = calendar_for(ctx.policy.sla.calendars_for(str(tz)), ticket.group)
    today = ctx.now.astimezone(tz).date()
    out: list[Slot] = []
    found = 0
    for ahead in range(1, 31):
        day = today + timedelta(days=ahead)
        open_parts = []
        for part, (start, end) in ctx.policy.pickup.slots().items():
            middle = (
                datetime.combine(day, start, tz)
                + (datetime.combine(day, end, tz) - datetime.combine(day, start, tz)) / 2
            )
            if is_working(calendar, middle):
                open_parts.append(Slot(day=day, part=part, start=start, end=end))
        if open_parts:
            out += open_parts
            found += 1
            if found == days:
                break
    return out


@dataclass(frozen=True)
class Deadline:
    """The nearest promise on a case: the clock's name, whose it is, and when."""

    clock: str
    customers: bool
    due_at: datetime


def nearest_deadline(session: Session, ticket: Ticket, now: datetime) -> Deadline | None:
    """The running clock due soonest (tickets.sla.clocks.view), or None."""
    running = [c for c in sla.view(session, ticket, now) if c.state == sla.RUNNING and c.due_at]
    if not running:
        return None
    first = min(running, key=lambda c: c.due_at)  # type: ignore[arg-type, return-value]
    assert first.due_at is not None
    return Deadline(
        clock=first.clock, customers=sla.is_customer_clock(first.clock), due_at=first.due_at
    )
