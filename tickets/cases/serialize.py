"""Read models: a case and a queue row as the JSON contracts of DESIGN.md show them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets.cases.actions.refunds import approval_blocker, current_refund
from tickets.cases.links import linked_cases, merged_into_number
from tickets.cases.tags import tags_of
from tickets.customers import telegram_of
from tickets.exceptions import InvalidInput
from tickets.messages import payloads
from tickets.messages.outbox import STATE_OF_STATUS
from tickets.messages.payloads import REPLY, Reply
from tickets.models import (
    Agent,
    CaseKind,
    CaseStatus,
    Event,
    OutboxMessage,
    Refund,
    RefundStatus,
    Role,
    Ticket,
)
from tickets.money import format_amount
from tickets.policy.rules import Policy
from tickets.refunds.ledger import ticket_quote
from tickets.schemas import (
    AttachmentRead,
    DeliveryRead,
    EventRead,
    ItemRead,
    LinkRead,
    MessageRead,
    SlaRead,
    TicketRead,
    TicketSummary,
)
from tickets.workflow import REFUND_KINDS, TERMINAL, allowed_actions


def refund_view(
    session: Session,
    ticket: Ticket,
    *,
    policy: Policy | None,
    now: datetime,
    timezone: str = "Asia/Shanghai",
) -> dict[str, Any] | None:
    """The case's refund: the one in the ledger (its frozen quote and where it stands), or,
    before one is proposed, the quote as it stands now (status "quote"). None for cases that
    move no money."""
    refund = session.scalar(
        select(Refund)
        .where(Refund.ticket_id == ticket.id, Refund.status != RefundStatus.cancelled.value)
        .order_by(Refund.id.desc())
        .limit(1)
    )
    if refund is not None:
        return {
            **refund.breakdown,
            "amount": format_amount(refund.amount, refund.currency),
            "currency": refund.currency,
            "method": refund.method,
            "status": refund.status,
            "needs_second_approval": refund.needs_second_approval,
            "breakdown": refund.breakdown.get("lines", []),
        }
    if policy is None or ticket.status in TERMINAL:
        return None
    try:
        q = ticket_quote(session=session, ticket=ticket, policy=policy, now=now, timezone=timezone)
    except InvalidInput as exc:
        # The order no longer reads as a quote (changed under the case, a ledger the calculator
        # refuses): the case stays readable, with why no amount can be shown.
        return {
            "status": "unavailable",
            "amount": None,
            "currency": ticket.order.currency if ticket.order else None,
            "method": None,
            "eligible": False,
            "reasons": [exc.message],
            "breakdown": [],
        }
    if q is None:
        return None
    body = q.to_json()
    main = next((r for r in q.routes if r.payment_id is not None), None)
    return {
        **body,
        "method": main.method if main else (ticket.order.payment_method if ticket.order else None),
        "status": "quote",
        "breakdown": body.get("lines", []),
    }


# When one reply went as several Telegram messages (text, then files), it reads as its worst.
_WORST_FIRST = ("undeliverable", "failed", "queued", "sent")


def message_deliveries(session: Session, ticket_id: int) -> dict[int, DeliveryRead]:
    """How each reply of the case stands, by message id, from its outbox rows (one per
    Telegram message it became): its worst state, and why."""
    rows = session.execute(
        select(
            OutboxMessage.payload,
            OutboxMessage.status,
            OutboxMessage.channel,
            OutboxMessage.last_error,
        )
        .where(OutboxMessage.ticket_id == ticket_id, OutboxMessage.kind == REPLY)
        .order_by(OutboxMessage.id)
    ).all()
    out: dict[int, DeliveryRead] = {}
    for payload, status, channel, last_error in rows:
        try:
            reply = payloads.load(channel=channel, kind=REPLY, data=payload)
        except ValueError:
            continue  # a damaged row: the case shows the rest
        message_id = reply.message_id if isinstance(reply, Reply) else None
        if message_id is None:
            continue
        state = STATE_OF_STATUS.get(status, "queued")
        seen = out.get(message_id)
        if seen is not None and _WORST_FIRST.index(seen.state) <= _WORST_FIRST.index(state):
            continue
        out[message_id] = DeliveryRead(
            state=state,
            channel=None if channel == "none" else channel,
            reason=reply.undeliverable,
            # A pace or a retry's note on a queued row is no reason the agent needs.
            why=last_error if state in ("failed", "undeliverable") else None,
        )
    return out


def _refund_state(session: Session, ticket: Ticket) -> str | None:
    if ticket.kind not in REFUND_KINDS:
        return None
    status = session.scalar(
        select(Refund.status)
        .where(Refund.ticket_id == ticket.id, Refund.status != RefundStatus.cancelled.value)
        .order_by(Refund.id.desc())
        .limit(1)
    )
    return status or "none"


def _allowed_for(
    session: Session, ticket: Ticket, role: Role | None, viewer: Agent | None
) -> list[str]:
    """The actions the status and the role allow; for a viewer, less the refund approval the
    two-person rule would refuse them (tickets/cases/actions/refunds.py, one rule)."""
    allowed = allowed_actions(
        kind=CaseKind(ticket.kind),
        status=CaseStatus(ticket.status),
        role=role,
        refund=_refund_state(session, ticket),
    )
    if viewer is not None and "approve_refund" in allowed:
        refund = current_refund(session, ticket)
        if refund is not None and approval_blocker(ticket, refund, viewer) is not None:
            allowed = [a for a in allowed if a != "approve_refund"]
    return allowed


def actions_for(session: Session, ticket: Ticket, viewer: Agent) -> list[str]:
    """The actions `viewer` may take on the case now (the Ticket JSON's `allowed_actions`)."""
    return _allowed_for(session, ticket, Role(viewer.role), viewer)


def ticket_to_read(
    session: Session,
    ticket: Ticket,
    *,
    role: Role | None = None,
    now: datetime,
    policy: Policy | None = None,
    timezone: str = "Asia/Shanghai",
    attachment_url: str = "/api/v1/attachments/{id}",
    sla: list[SlaRead] | None = None,
    viewer: Agent | None = None,
) -> TicketRead:
    """The Ticket JSON of a case (load it with cases.status.get_ticket first). With `viewer`,
    `allowed_actions` are theirs: no `approve_refund` for someone the two-person rule keeps
    from approving this refund (its proposer, whoever opened the case or pushed its order)."""
    deliveries = message_deliveries(session, ticket.id)
    units_by_line: dict[int, list[Any]] = {}
    for u in ticket.units:
        units_by_line.setdefault(u.unit.line_id, []).append(u.status)
    return TicketRead(
        number=ticket.number,
        kind=CaseKind(ticket.kind),
        status=CaseStatus(ticket.status),
        priority=ticket.priority,
        group=ticket.group,
        assignee=ticket.assignee.username if ticket.assignee else None,
        order_no=ticket.order.order_no if ticket.order else None,
        customer={
            "name": ticket.customer.name,
            "phone": ticket.customer.phone,
            # The account that reaches them: theirs, or the one that proved their order.
            "telegram_user_id": telegram_of(ticket.customer),
            "language": ticket.customer.language,
        },
        reason=ticket.reason,
        description=ticket.description,
        items=[
            ItemRead(
                sku=i.sku,
                quantity=i.quantity,
                title=i.line.title,
                units=units_by_line.get(i.line_id, []),
            )
            for i in ticket.items
        ],
        channel=ticket.channel,
        language=ticket.language,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        version=ticket.version,
        rma_no=ticket.rma_no,
        tracking_no=ticket.tracking_no,
        carrier=ticket.carrier,
        allowed_actions=_allowed_for(session, ticket, role, viewer),
        refund=refund_view(session, ticket, policy=policy, now=now, timezone=timezone),
        sla=sla or [],
        risk={"level": ticket.risk_level, "signals": ticket.risk_signals},
        tags=tags_of(session, ticket.id),
        messages=[
            MessageRead(
                id=m.id,
                author=m.author,
                agent=m.agent.username if m.agent else None,
                text=m.text,
                internal=m.internal,
                at=m.created_at,
                attachments=[a.id for a in m.attachments],
                delivery=deliveries.get(m.id),
            )
            for m in ticket.messages
        ],
        attachments=[
            AttachmentRead(
                id=a.id,
                kind=a.kind,
                mime=a.mime,
                size=a.size,
                sha256=a.sha256,
                url=attachment_url.format(id=a.id),
            )
            for a in ticket.attachments
        ],
        events=_events_with_merged(session, ticket),
        links=[
            LinkRead(number=link.number, status=link.status, kind=link.kind)
            for link in linked_cases(session, ticket.id)
        ],
        merged_into=merged_into_number(session, ticket),
    )


def _events_with_merged(session: Session, ticket: Ticket) -> list[EventRead]:
    """The case's events, and those of the duplicates merged into it (each naming its case as
    `merged_from`), in time order: the history of everything the case took in."""
    own = [EventRead(type=e.type, actor=e.actor, at=e.at, data=e.data) for e in ticket.events]
    merged = session.execute(
        select(Event, Ticket.number)
        .join(Ticket, Ticket.id == Event.ticket_id)
        .where(Ticket.merged_into_id == ticket.id)
        .order_by(Event.at, Event.id)
    ).all()
    if not merged:
        return own
    taken = [
        EventRead(type=e.type, actor=e.actor, at=e.at, data={**e.data, "merged_from": number})
        for e, number in merged
    ]
    return sorted([*own, *taken], key=lambda e: e.at)


def summary_of_row(row: Any, tags: list[str]) -> TicketSummary:
    """A queue row from its columns (tickets.cases.queries.list_summaries): the same fields,
    in the same order, as the JSON contract of DESIGN.md shows."""
    return TicketSummary(
        number=row.number,
        kind=row.kind,
        status=row.status,
        priority=row.priority,
        group=row.group,
        assignee=row.assignee,
        order_no=row.order_no,
        customer_name=row.customer_name,
        reason=row.reason,
        channel=row.channel,
        created_at=row.created_at,
        updated_at=row.updated_at,
        risk_level=row.risk_level,
        tags=tags,
    )
