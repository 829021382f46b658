"""The bot's calls on the case service, with plain values in and out (no Telegram objects).

Everything a customer does to a case from Telegram goes through here: open one from a finished
intake, add a message (with its files) to the open one, list theirs, send a tracking number,
withdraw. Each call runs in the update's session and never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets.exceptions import PermissionDenied
from tickets.models import OPEN_STATUSES, Attachment, CaseStatus, Channel, Customer, Ticket
from tickets.schemas import ActionRequest, CustomerIn, ItemIn, TicketCreate
from tickets.service import (
    Actor,
    Context,
    TicketFilters,
    add_customer_message,
    list_tickets,
    open_case,
    perform_action,
    record_event,
)
from tickets.storage import StoredFile

# Cases the customer is still talking about (a draft is the bot's own, not yet submitted).
LIVE_STATUSES = [s.value for s in OPEN_STATUSES if s is not CaseStatus.draft]


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


def latest_open_case(session: Session, customer: Customer) -> Ticket | None:
    """The customer's most recently active open case, which their free messages go to."""
    return session.scalar(
        select(Ticket)
        .where(Ticket.customer_id == customer.id, Ticket.status.in_(LIVE_STATUSES))
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
        .limit(1)
    )


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
            type="evidence.added",
            actor=actor_for(customer),
            now=ctx.now,
            count=len(files),
            photos=photos,
        )
    session.flush()
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
