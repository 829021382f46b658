"""Linked and merged cases. Two cases may be linked as related (either way, once). A duplicate
(a request opened by phone for what the bot already has) is merged into another case of the same
customer (the same person, phone) or order: its messages and files move to that case, its events
show in that case's history (tickets/cases/serialize.py), and it is closed as merged, pointing
at it. A case with a refund in motion is never merged: the money belongs to that case until the
refund is finished or withdrawn.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from tickets.cases.actions.refunds import current_refund
from tickets.cases.events import record_event
from tickets.cases.status import load_ticket, set_status
from tickets.context import Actor, Context
from tickets.exceptions import Conflict, InvalidInput, NotFound, PermissionDenied
from tickets.models import (
    OPEN_STATUSES,
    Attachment,
    CaseLink,
    CaseStatus,
    EventType,
    Message,
    Ticket,
)
from tickets.money import format_amount
from tickets.workflow import LIVE_REFUND

# A refund in these states is money on its way: the case keeps it, and is not merged.
MOVING_REFUND = LIVE_REFUND | {"issued"}


@dataclass(frozen=True)
class Linked:
    """A case linked to another, as the other's page lists it."""

    number: str
    status: str
    kind: str


def _agent(actor: Actor) -> None:
    if actor.agent is None:
        raise PermissionDenied("only agents link and merge cases")


def _pair(session: Session, number: str, other: str) -> tuple[Ticket, Ticket]:
    """Both cases, locked in id order (two agents linking the same pair from either end
    cannot deadlock)."""
    if number.strip().upper() == other.strip().upper():
        raise InvalidInput(
            "a case cannot be linked to or merged into itself",
            [{"loc": "number", "msg": "the same case"}],
        )
    ids = dict(
        session.execute(
            select(Ticket.number, Ticket.id).where(Ticket.number.in_([number, other.upper()]))
        ).all()
    )
    for n in (number, other.upper()):
        if n not in ids:
            raise NotFound(f"no case {n}", number=n)
    first, second = sorted([number, other.upper()], key=lambda n: ids[n])
    loaded = {first: load_ticket(session, first, for_update=True)}
    loaded[second] = load_ticket(session, second, for_update=True)
    return loaded[number], loaded[other.upper()]


def linked_cases(session: Session, ticket_id: int) -> list[Linked]:
    """The cases linked to this one, by number."""
    rows = session.execute(
        select(Ticket.number, Ticket.status, Ticket.kind)
        .join(
            CaseLink,
            or_(
                and_(CaseLink.ticket_id == ticket_id, CaseLink.other_id == Ticket.id),
                and_(CaseLink.other_id == ticket_id, CaseLink.ticket_id == Ticket.id),
            ),
        )
        .order_by(Ticket.number)
    ).all()
    return [Linked(n, s, k) for n, s, k in rows]


def link_cases(
    *, session: Session, number: str, other: str, actor: Actor, ctx: Context
) -> list[Linked]:
    """Link the two cases as related (once: linking again changes nothing); the cases linked
    to `number` after."""
    _agent(actor)
    one, two = _pair(session, number, other)
    low, high = sorted([one.id, two.id])
    exists = session.scalar(
        select(CaseLink.id).where(CaseLink.ticket_id == low, CaseLink.other_id == high)
    )
    if exists is None:
        # Links one case carries at most (AFTERSALES_LIMIT_LINKS_PER_CASE), on both cases: a
        # case with more is a tangle no one reads.
        most = ctx.limits.links_per_case
        for case in (one, two):
            if len(linked_cases(session, case.id)) >= most:
                raise InvalidInput(
                    f"case {case.number} has {most} links already (the shop's limit): unlink "
                    "one first",
                    [{"loc": "number", "msg": f"more than {most} links on case {case.number}"}],
                )
        assert actor.agent is not None
        session.add(
            CaseLink(ticket_id=low, other_id=high, created_by_id=actor.agent.id, created_at=ctx.now)
        )
        for a, b in ((one, two), (two, one)):
            record_event(
                session=session,
                ticket=a,
                type=EventType.case_linked,
                actor=actor,
                now=ctx.now,
                case=b.number,
            )
        session.flush()
    return linked_cases(session, one.id)


def unlink_cases(
    *, session: Session, number: str, other: str, actor: Actor, ctx: Context
) -> list[Linked]:
    """Undo a link (nothing happens when there is none); the cases linked to `number` after."""
    _agent(actor)
    one, two = _pair(session, number, other)
    low, high = sorted([one.id, two.id])
    gone = session.scalar(
        delete(CaseLink)
        .where(CaseLink.ticket_id == low, CaseLink.other_id == high)
        .returning(CaseLink.id)
    )
    if gone is not None:
        for a, b in ((one, two), (two, one)):
            record_event(
                session=session,
                ticket=a,
                type=EventType.case_unlinked,
                actor=actor,
                now=ctx.now,
                case=b.number,
            )
        session.flush()
    return linked_cases(session, one.id)


def _same_customer(a: Ticket, b: Ticket) -> bool:
    """The same person: one customer row (or one linked to the other), the same phone, or the
    same order."""
    if a.order_id is not None and a.order_id == b.order_id:
        return True
    ca, cb = a.customer, b.customer
    if ca.id == cb.id or ca.id == cb.linked_to_id or cb.id == ca.linked_to_id:
        return True
    return bool(ca.phone) and ca.phone == cb.phone


def merge_case(
    *,
    session: Session,
    number: str,
    into: str,
    actor: Actor,
    ctx: Context,
    version: int | None = None,
) -> Ticket:
    """Merge the duplicate `number` into the case `into`; the target. Refused, nothing
    changed, when either is closed or merged already, they belong to different customers and
    orders, or the duplicate has a refund in motion."""
    _agent(actor)
    dup, target = _pair(session, number, into)
    if version is not None and version != dup.version:
        raise Conflict(
            f"case {dup.number} changed since you looked at it (version {version}, now "
            f"{dup.version}): reload it and try again",
            version=dup.version,
        )
    for t in (dup, target):
        if t.merged_into_id is not None:
            raise Conflict(f"case {t.number} was merged into another case already")
        if CaseStatus(t.status) not in OPEN_STATUSES:
            raise Conflict(f"case {t.number} is {t.status}: only open cases are merged")
    if not _same_customer(dup, target):
        raise InvalidInput(
            f"case {dup.number} and case {target.number} are not the same customer's or order's",
            [{"loc": "into", "msg": "another customer's case"}],
        )
    refund = current_refund(session, dup)
    if refund is not None and refund.status in MOVING_REFUND:
        raise Conflict(
            f"case {dup.number} has a refund of {format_amount(refund.amount, refund.currency)} "
            f"{refund.currency} {refund.status}: issue it or withdraw it before merging",
            refund_status=refund.status,
        )
    # Its conversation and files move to the target (its events stay, shown there too).
    session.execute(
        update(Message).where(Message.ticket_id == dup.id).values(ticket_id=target.id),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        update(Attachment).where(Attachment.ticket_id == dup.id).values(ticket_id=target.id),
        execution_options={"synchronize_session": False},
    )
    if dup.description.strip():
        # The duplicate's request in its own words (a phone call's notes): in the target's
        # conversation where it happened, saying where it came from.
        session.add(
            Message(
                ticket_id=target.id,
                author="system",
                text=f"{dup.number}: {dup.description}",
                internal=True,
                created_at=dup.created_at,
            )
        )
    session.expire(dup, ["messages", "attachments"])
    session.expire(target, ["messages", "attachments"])
    dup.merged_into_id = target.id
    dup.resolution = f"merged into {target.number}"
    set_status(
        session=session,
        ticket=dup,
        status=CaseStatus.closed,
        ctx=ctx,
        actor=actor,
        reason=f"merged into {target.number}",
    )
    record_event(
        session=session,
        ticket=dup,
        type=EventType.case_merged,
        actor=actor,
        now=ctx.now,
        into=target.number,
    )
    record_event(
        session=session,
        ticket=target,
        type=EventType.case_merged_in,
        actor=actor,
        now=ctx.now,
        case=dup.number,
    )
    dup.updated_at = target.updated_at = ctx.now
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict(f"case {dup.number} was changed by someone else at the same time") from exc
    return target


def merged_into_number(session: Session, ticket: Ticket) -> str | None:
    """The number of the case this one was merged into, if it was."""
    if ticket.merged_into_id is None:
        return None
    return session.scalar(select(Ticket.number).where(Ticket.id == ticket.merged_into_id))
