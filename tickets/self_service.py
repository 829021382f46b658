"""What a customer does to their own cases, from any channel (the bot today, the web chat next),
with plain values in and out (no Telegram objects, no HTTP).
Over 500 lines as one file: the customer's whole surface on the core, each function short, all
sharing the one rule of what a customer may see and do (their own cases only).

Everything a customer does to a case goes through here: open one from a finished
intake, add a message (with its files) to the open one, list theirs, send a tracking number,
withdraw. Each call runs in the update's session and never commits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, bindparam, select
from sqlalchemy.orm import Session

from tickets.cases.conversation import add_customer_message, record_satisfaction
from tickets.cases.events import case_number_in, record_event
from tickets.cases.lifecycle import perform_action
from tickets.cases.opening import open_case
from tickets.cases.queries import TicketFilters, list_tickets
from tickets.context import Actor, Context
from tickets.customers import account_ids, speaks_for
from tickets.exceptions import PermissionDenied
from tickets.messages import payloads
from tickets.messages.payloads import NOTICE, REPLY, CustomerMessage
from tickets.messages.scripts import ReplyChoice, ScriptLibrary, UnknownScript
from tickets.models import (
    OPEN_STATUSES,
    Attachment,
    CaseKind,
    CaseStatus,
    Channel,
    Customer,
    EventType,
    Order,
    OutboxMessage,
    Ticket,
    TicketUnit,
    UnitStatus,
)
from tickets.reasons import Reason
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


def _theirs(customer: Customer) -> ColumnElement[bool]:
    """Cases of this customer's Telegram account: theirs and those of the customers (other
    phones) whose orders the account proved (tickets/customers.py)."""
    return Ticket.customer_id.in_(account_ids(customer.id))


# Built once: every free message of a customer runs it.
_LATEST_OPEN = (
    select(Ticket)
    .where(
        Ticket.customer_id.in_(account_ids(bindparam("customer_id"))),
        Ticket.status.in_(LIVE_STATUSES),
    )
    .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
    .limit(1)
)


def latest_open_case(session: Session, customer: Customer) -> Ticket | None:
    """The customer's most recently active open case, which their free messages go to."""
    return session.scalar(_LATEST_OPEN, {"customer_id": customer.id})


def open_cases(session: Session, customer: Customer, limit: int = 10) -> list[Ticket]:
    """The customer's open cases (every phone's of their account), newest first."""
    rows, _, _ = list_tickets(
        session=session,
        filters=TicketFilters(status=LIVE_STATUSES, extra=(_theirs(customer),)),
        limit=limit,
    )
    return rows


@dataclass(frozen=True)
class NamedCase:
    """A case number in a customer's message, and the case when it is one of their account's
    (none when it is unknown or someone else's: the customer cannot tell the two apart)."""

    number: str
    ticket: Ticket | None

    @property
    def live(self) -> bool:
        """Whether someone still follows the case (a message on it is read)."""
        return self.ticket is not None and self.ticket.status in LIVE_STATUSES


def named_case(session: Session, customer: Customer, text: str, *, prefix: str) -> NamedCase | None:
    """The case a customer's message names ("any news on AS-20261122-0001?"), whichever of
    their account's cases it is (not only the latest); None when it names none."""
    number = case_number_in(text, prefix)
    if number is None:
        return None
    ticket = session.scalar(
        select(Ticket).where(
            Ticket.number == number, _theirs(customer), Ticket.status != CaseStatus.draft.value
        )
    )
    return NamedCase(number=number, ticket=ticket)


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
    channel: Channel = Channel.telegram,
) -> Ticket:
    """Open the case the customer described, with their files attached in order; `channel`
    is the chat it was described in (the case's notices go there first)."""
    request = TicketCreate(
        kind=kind,
        reason=reason,
        order_no=order_no,
        items=[ItemIn(sku=sku, quantity=q) for sku, q in items.items() if q > 0],
        description=description[:5000],
        channel=channel,
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


def ask_a_person(
    session: Session,
    *,
    customer: Customer,
    ctx: Context,
    text: str,
    message_id: int,
    order_no: str | None = None,
    evidence: Sequence[dict[str, Any]] = (),
    channel: Channel = Channel.telegram,
) -> tuple[Ticket, bool]:
    """The customer's words for a person: on their open case (of `order_no` when one is
    named), else on a new conversation an agent answers from the queue (a complaint of reason
    `question`, about that order if named, whatever its state). The case, and whether it is
    new (its notice then says it is a conversation, and when we answer)."""
    if order_no is None:
        case = latest_open_case(session, customer)
    else:
        case = session.scalar(
            select(Ticket)
            .join(Ticket.order)
            .where(
                Ticket.customer_id == customer.id,
                Ticket.status.in_(LIVE_STATUSES),
                Order.order_no == order_no,
            )
            .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
            .limit(1)
        )
    if case is not None:
        add_to_case(session, ticket=case, text=text, files=[], message_id=message_id, ctx=ctx)
        return case, False
    opened = submit_intake(
        session,
        customer=customer,
        ctx=ctx,
        order_no=order_no,
        kind=CaseKind.complaint.value,
        reason=Reason.question.value,
        items={},
        description=text,
        evidence=evidence,
        channel=channel,
    )
    return opened, True


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


# What the notices asking the customer to ship (tickets.messages.notices.SHIPPING_NOTICES) tell
# them to reply for a pickup, casefolded (and the label of the button beside it, typed).
PICKUP_WORDS = frozenset(
    {"pickup", "pick up", "pick-up", "book a pickup"}
    | {"上门取件", "预约上门取件", "预约取件", "取件"}
)
# A typed tracking number: 8 to 40 letters, digits or dashes, at least 6 of them digits (so a
# word, a "thanks" or an order's short reference is not taken for one).
TRACKING_LIKE = re.compile(r"^(?=(?:\D*\d){6})[A-Za-z0-9-]{8,40}$")
# Quotes and end punctuation a customer may type around the word the notice quotes.
_AROUND = " \t\n\"'“”‘’「」『』.,!?。，！？"


# What the notice of a failed inspection (notice_inspection_failed; also the refusal script
# refusal_not_resalable) tells the customer to reply, casefolded, by the action it takes (the
# lifecycle's refund_anyway and send_back), with the labels of the notice's buttons, typed.
CHOICE_WORDS: dict[str, frozenset[str]] = {
    "refund_anyway": frozenset({"refund", "退款", "仍然退款", "refund anyway"}),
    "send_back": frozenset({"return", "send it back", "寄回", "退回", "寄回给我"}),
}


@dataclass(frozen=True)
class ChoiceReply:
    """A customer's words that answer the choice a refusal of their returned goods offers:
    the case, and the action they chose."""

    case: Ticket
    action: str


def choice_reply(session: Session, customer: Customer, text: str) -> ChoiceReply | None:
    """What the customer's free words mean for their case refused with its goods back (the
    most recently active one): the refund anyway or the item back; None when they mean neither,
    or no such case is theirs."""
    words = text.strip(_AROUND).casefold()
    action = next((a for a, said in CHOICE_WORDS.items() if words in said), None)
    if action is None:
        return None
    case = session.scalar(
        select(Ticket)
        .where(
            _theirs(customer),
            Ticket.status == CaseStatus.refused.value,
            Ticket.units.any(TicketUnit.status != UnitStatus.requested.value),
        )
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
        .limit(1)
    )
    if case is None:
        return None
    return ChoiceReply(case=case, action=action)


@dataclass(frozen=True)
class ScriptAnswer:
    """A customer's words that answer the last message sent to them, a script asking them to
    type one of a few words ("reply 1 or 2"): its case and script, and the choice made."""

    case: Ticket
    script: str
    choice: ReplyChoice


# Built once: every short free message of a customer runs it. Columns, not the row and its
# case as objects: most messages answer no script, and then only the last payload is read.
_LAST_SAID = (
    select(
        OutboxMessage.channel,
        OutboxMessage.kind,
        OutboxMessage.payload,
        OutboxMessage.ticket_id,
        Ticket.language,
    )
    .join(Ticket, OutboxMessage.ticket_id == Ticket.id)
    .where(
        Ticket.customer_id.in_(account_ids(bindparam("customer_id"))),
        OutboxMessage.kind.in_((NOTICE, REPLY)),
        OutboxMessage.channel != "agents",
    )
    .order_by(OutboxMessage.id.desc())
    .limit(1)
)


def script_answer(
    session: Session, customer: Customer, text: str, scripts: ScriptLibrary | None
) -> ScriptAnswer | None:
    """What the customer's free words mean when the last thing sent to them (a notice, or an
    agent's reply from a script) asked them to type one of its words (the script's
    `[replies]`); None when it did not, or the words are none of them. Only the last message
    counts: an older question is answered by a later one (a closing notice asking for a
    rating, another reply)."""
    words = text.strip(_AROUND).casefold()
    if scripts is None or not words or len(words) > 40:
        return None
    last = session.execute(_LAST_SAID, {"customer_id": customer.id}).first()
    if last is None:
        return None
    said = payloads.readable(last)
    name = said.script if isinstance(said, CustomerMessage) else None
    if name is None:
        return None
    # The customer may answer in either language, whichever the script was sent in.
    for language in dict.fromkeys((last.language, "zh-CN", "en")):
        try:
            choice = scripts.get(name, language).choice_for(words)
        except UnknownScript:
            continue
        if choice is not None:
            case = session.get_one(Ticket, last.ticket_id)
            return ScriptAnswer(case=case, script=name, choice=choice)
    return None


@dataclass(frozen=True)
class ReturnReply:
    """A customer's words that answer a notice asking them to ship the return: the case that
    awaits it, and the tracking number given (None: they want a pickup)."""

    case: Ticket
    tracking_no: str | None


def return_reply(session: Session, customer: Customer, text: str) -> ReturnReply | None:
    """What the customer's free words mean for their case awaiting a return (the most recently
    active one): a tracking number, or a pickup wanted; None when they mean neither, or no case
    awaits a return."""
    words = text.strip(_AROUND).casefold()
    compact = text.strip(_AROUND).replace(" ", "")
    pickup = words in PICKUP_WORDS
    if not pickup and not TRACKING_LIKE.match(compact):
        return None
    case = session.scalar(
        select(Ticket)
        .where(
            _theirs(customer),
            Ticket.status == CaseStatus.awaiting_return.value,
        )
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
        .limit(1)
    )
    if case is None:
        return None
    return ReturnReply(case=case, tracking_no=None if pickup else compact)


def own_case(session: Session, customer: Customer, number: str) -> Ticket:
    """The customer's case with this number; someone else's is refused."""
    ticket = session.scalar(select(Ticket).where(Ticket.number == number))
    if ticket is None or not speaks_for(ticket.customer, customer.id):
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
            _theirs(customer),
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
    if ticket is None or not speaks_for(ticket.customer, customer.id):
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
