"""Opening a case: checks on the request, the order and its units, duplicates, the
policy's eligibility, risk guards, and the refund proposed at once where the policy
allows it.
Over 500 lines as one file: opening is one transaction read top to bottom, each check feeding
the next (the units picked feed the duplicate check, the policy, the guards, the proposal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Row,
    and_,
    bindparam,
    or_,
    select,
)
from sqlalchemy.orm import Session

from tickets.cases.actions.refunds import propose_refund
from tickets.cases.actions.review import approve
from tickets.cases.events import (
    append_event,
    case_notice,
    next_case_number,
    record_event,
    system_message,
)
from tickets.cases.routing import route
from tickets.cases.status import set_status
from tickets.context import SYSTEM, Actor, Context
from tickets.customers import speaks_for
from tickets.exceptions import (
    DuplicateCase,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from tickets.messages.notices import (
    agent_card,
    agent_texts,
)
from tickets.messages.outbox import notify_agents
from tickets.models import (
    HOLDING_STATUSES,
    Attachment,
    CaseKind,
    CaseStatus,
    Customer,
    EventType,
    Order,
    OrderLine,
    Priority,
    Ticket,
    TicketItem,
    TicketUnit,
    UnitStatus,
)
from tickets.orders.store import (
    find_or_make_customer,
    get_order,
    pick_units,
)
from tickets.policy.eligibility import check_request, evidence_needed, order_facts
from tickets.policy.risk import RiskAssessment, assess, collect_risk_facts, decide_auto_approval
from tickets.reasons import Reason
from tickets.refunds.ledger import ticket_quote
from tickets.schemas import ActionRequest, TicketCreate
from tickets.sla import clocks as sla
from tickets.workflow import (
    TALK_KINDS,
    find_transition,
    require,
)

# ---------------------------------------------------------------- opening a case


# The duplicate rule: a new request of a kind duplicates an order's case that is open and of
# that kind, or recent (within the policy's window) and not cancelled. A refused case is
# neither: its notice invites the customer to ask again. `_DUPLICATE` asks it for one kind,
# `_IN_THE_WAY` and `_stands_in_the_way` for all of them at once.
_HOLDING = tuple(s.value for s in HOLDING_STATUSES)
_NOT_IN_THE_WAY = (CaseStatus.cancelled.value, CaseStatus.refused.value)
_RECENT = and_(Ticket.created_at >= bindparam("since"), Ticket.status.notin_(_NOT_IN_THE_WAY))

# Built once (building a statement costs more than running it): the latest case of an order
# that a new one of `kind` would duplicate.
_DUPLICATE = (
    select(Ticket.number, Ticket.kind, Ticket.status)
    .where(
        Ticket.order_id == bindparam("order_id"),
        or_(and_(Ticket.kind == bindparam("kind"), Ticket.status.in_(_HOLDING)), _RECENT),
    )
    .order_by(Ticket.id.desc())
    .limit(1)
)


def _duplicate_of(
    *, session: Session, order: Order, kind: CaseKind, ctx: Context
) -> Row[str, str, str] | None:
    """The number, kind and status of a case this request would duplicate, if any (columns,
    not the case: only they are shown)."""
    window = ctx.now - timedelta(minutes=ctx.policy.duplicate_window_minutes)
    params = {"order_id": order.id, "kind": kind.value, "since": window}
    return session.execute(_DUPLICATE, params).first()


@dataclass(frozen=True)
class CaseInTheWay:
    """The order's case a new request would duplicate (`open_case` refuses it): its number,
    kind and status, and the kinds it blocks (all of them within the duplicate window)."""

    number: str
    kind: str
    status: str
    blocks: frozenset[str]


# The cases of an order that may stand in the way of some kind (`case_in_the_way`): open ones
# of any kind, and recent ones not cancelled; newest first, as `_DUPLICATE` reads them.
_IN_THE_WAY = (
    select(Ticket.number, Ticket.kind, Ticket.status, Ticket.created_at)
    .where(Ticket.order_id == bindparam("order_id"), or_(Ticket.status.in_(_HOLDING), _RECENT))
    .order_by(Ticket.id.desc())
)


def _stands_in_the_way(row: Row[str, str, str, datetime], kind: str, since: datetime) -> bool:
    """`_DUPLICATE`'s condition, for one of `_IN_THE_WAY`'s rows and a kind."""
    same_and_open = row.kind == kind and row.status in _HOLDING
    recent = row.created_at >= since and row.status not in _NOT_IN_THE_WAY
    return same_and_open or recent


def case_in_the_way(*, session: Session, order: Order, ctx: Context) -> CaseInTheWay | None:
    """Before the customer chooses anything: the case that would make a new request on this
    order a duplicate (`_DUPLICATE`'s rule, which `open_case` applies, asked for every kind),
    so they can be sent to it at once instead of at Submit. One statement for all the kinds:
    this runs on every /start with an order."""
    window = ctx.now - timedelta(minutes=ctx.policy.duplicate_window_minutes)
    rows = session.execute(_IN_THE_WAY, {"order_id": order.id, "since": window}).all()
    # Each kind's newest case in the way (rows come newest first).
    found: dict[CaseKind, Row[str, str, str, datetime]] = {}
    for kind in CaseKind:
        row = next((r for r in rows if _stands_in_the_way(r, kind.value, window)), None)
        if row is not None:
            found[kind] = row
    if not found:
        return None
    first = next(iter(found.values()))
    blocks = frozenset(k.value for k in found)
    return CaseInTheWay(number=first.number, kind=first.kind, status=first.status, blocks=blocks)


def open_case(
    *,
    session: Session,
    request: TicketCreate,
    actor: Actor,
    ctx: Context,
    photos: int = 0,
    attachments: Sequence[Attachment] = (),
) -> Ticket:
    """Open a case from a complete request (any channel) and queue its first notices.

    `photos` is how many photo attachments came with the request (the bot stores them, then
    attaches them to the case); `attachments` are stored files to put on the case as its
    evidence (an agent's, from the phone-call form), their photos counted too. The guards of
    the lifecycle apply at once: a quality claim without a photo waits in needs_info; a
    refund-only on an unshipped order goes straight to refund_pending. With `take`, the agent
    opening it is its assignee from the start.
    """
    kind = CaseKind(request.kind)
    if request.take and actor.agent is None:
        raise InvalidInput(
            "only an agent takes the case they open", [{"loc": "take", "msg": "not an agent"}]
        )
    if request.override_policy:
        # Before anything is read: the same answer whether or not the policy would refuse.
        require(actor.role, "override_policy")
    order: Order | None = None
    if request.order_no:
        # Held before it is read: two requests for the same units at once, the second waits,
        # then sees them taken; an order re-sent meanwhile is read as re-sent.
        order = get_order(session=session, order_no=request.order_no, lock=True)
        customer = order.customer
    elif kind in TALK_KINDS and actor.kind == "customer" and actor.customer_id is not None:
        # A customer talking without an order is themself, from whichever chat: a web chat's
        # customer has no Telegram id or phone to be found by (tickets/customers.py).
        found = session.get(Customer, actor.customer_id)
        if found is None:
            raise NotFound("no such customer")
        customer = found
    elif kind in TALK_KINDS and request.customer is not None:
        customer = find_or_make_customer(session, request.customer, now=ctx.now)
        session.flush()
    else:
        raise InvalidInput(
            "an order number is needed for this request",
            [
                {
                    "loc": "order_no",
                    "msg": f"{kind.value} needs order_no"
                    + ("" if kind not in TALK_KINDS else " (or a customer)"),
                }
            ],
        )
    if actor.kind == "customer" and not speaks_for(customer, actor.customer_id):
        raise PermissionDenied("this order belongs to someone else")
    # A question claims nothing: no policy on claims applies to it, and it is never a
    # duplicate (the customer may ask about any order, a cancelled one too).
    question = request.reason == Reason.question.value
    if question and (kind is not CaseKind.complaint or request.items):
        raise InvalidInput(
            "a question is a conversation: kind complaint, no items",
            [{"loc": "reason", "msg": "question goes with kind complaint and no items"}],
        )
    picked: list[tuple[OrderLine, int, list[int]]] = []
    overridden: list[dict[str, str]] = []
    if order is not None and not question:
        problems = check_request(
            order_facts=order_facts(order),
            kind=kind.value,
            reason=request.reason,
            items=request.items,
            rules=ctx.policy.eligibility,
            now=ctx.now,
            tz=ctx.tz,
            language=request.language or customer.language,
        )
        if problems and request.override_policy:
            # A lead may make an exception (goodwill, checked above); it is on the record.
            overridden = [p.to_error() for p in problems]
        elif problems:
            raise InvalidInput(
                " ".join(p.message for p in problems), [p.to_error() for p in problems]
            )
        if kind not in TALK_KINDS and not request.items:
            raise InvalidInput(
                "say which items and how many",
                [{"loc": "items", "msg": f"{kind.value} needs at least one item"}],
            )
        duplicate = _duplicate_of(session=session, order=order, kind=kind, ctx=ctx)
        if duplicate is not None:
            raise DuplicateCase(
                f"order {order.order_no} already has case {duplicate.number} "
                f"({duplicate.kind}, {duplicate.status}): add to that one instead",
                existing=duplicate.number,
            )
        picked = pick_units(session=session, order=order, items=request.items, limits=ctx.limits)
    risk = (
        assess(
            collect_risk_facts(
                session=session,
                order=order,
                customer=customer,
                now=ctx.now,
                kind=kind.value,
                note=request.description,
                rules=ctx.policy.risk,
            ),
            ctx.policy.risk,
            ctx.policy.agent_language,
        )
        if order is not None and not question
        else None
    )
    group, rule = route(
        policy=ctx.policy,
        kind=kind.value,
        reason=request.reason,
        status=CaseStatus.submitted.value,
    )
    ticket = Ticket(
        number=next_case_number(session=session, prefix=ctx.case_prefix, now=ctx.now, tz=ctx.tz),
        kind=kind.value,
        status=CaseStatus.submitted.value,
        priority=request.priority.value,
        group=group,
        order=order,
        customer=customer,
        opened_by_id=actor.agent.id if actor.agent is not None else None,
        reason=request.reason,
        description=request.description,
        channel=request.channel.value,
        language=request.language or customer.language,
        risk_level=risk.level if risk else "low",
        risk_signals=risk.signals_json() if risk else [],
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    session.add(ticket)
    for line, quantity, unit_ids in picked:
        ticket.items.append(TicketItem(line=line, sku=line.sku, quantity=quantity))
        for unit_id in unit_ids:
            ticket.units.append(TicketUnit(unit_id=unit_id, status=UnitStatus.requested.value))
    session.flush()
    append_event(
        session=session,
        ticket=ticket,
        type=EventType.case_created,
        actor=actor,
        now=ctx.now,
        limits=ctx.limits,
        kind=kind.value,
        channel=ticket.channel,
        order_no=request.order_no,
    )
    append_event(
        session=session,
        ticket=ticket,
        type=EventType.case_routed,
        actor=SYSTEM,
        now=ctx.now,
        group=group,
        rule=rule,
    )
    sla.on_case_opened(session=session, ticket=ticket, ctx=ctx)
    if overridden:
        record_event(
            session=session,
            ticket=ticket,
            type=EventType.policy_overridden,
            actor=actor,
            now=ctx.now,
            problems=overridden,
        )
    if risk is not None and risk.signals:
        record_event(
            session=session,
            ticket=ticket,
            type=EventType.risk_assessed,
            actor=SYSTEM,
            now=ctx.now,
            **risk.to_json(),
        )
    case_notice(session=session, ticket=ticket, script="notice_received", ctx=ctx)
    notify_agents(
        session=session,
        ticket=ticket,
        kind="case.created",
        payload=agent_card(ticket, "case.created", ctx, data={"kind": ticket.kind}),
        now=ctx.now,
        channels=ctx.channels,
    )
    if attachments:
        for row in attachments:
            row.ticket = ticket
            session.add(row)
        photos += sum(1 for a in attachments if a.kind == "photo")
        record_event(
            session=session,
            ticket=ticket,
            type=EventType.evidence_added,
            actor=actor,
            now=ctx.now,
            count=len(attachments),
            photos=photos,
        )
    if request.take and actor.agent is not None:
        ticket.assignee = actor.agent
        record_event(
            session=session,
            ticket=ticket,
            type=EventType.case_assigned,
            actor=actor,
            now=ctx.now,
            limits=ctx.limits,
            assignee=actor.agent.username,
        )
    _apply_guards(session=session, ticket=ticket, ctx=ctx, photos=photos, risk=risk)
    session.flush()
    return ticket


def _apply_guards(
    *, session: Session, ticket: Ticket, ctx: Context, photos: int, risk: RiskAssessment | None
) -> None:
    """What happens to a new case at once: wait for missing evidence, or go through without a
    human where the auto-approval rules allow (never a risky case: it waits, reasons shown)."""
    rule_actor = Actor(kind="system", rule="lifecycle")
    need = evidence_needed(
        kind=ticket.kind,
        reason=ticket.reason,
        categories=[i.line.category for i in ticket.items],
        rules=ctx.policy.eligibility,
    )
    if not need.satisfied_by(photos):
        set_status(
            session=session,
            ticket=ticket,
            status=CaseStatus.needs_info,
            ctx=ctx,
            actor=rule_actor,
            rule="the claim needs evidence first",
            reason=need.text(ctx.policy.agent_language),
        )
        system_message(session, ticket, ctx, need.text(ctx.policy.agent_language))
        case_notice(
            session=session,
            ticket=ticket,
            script="notice_needs_info",
            ctx=ctx,
            missing=[need.text(ticket.language)],
        )
        return
    if ticket.order is None or risk is None:
        return
    if risk.needs_human:
        # A person decides: the case moves up the queue with the signals written on it.
        ticket.priority = Priority.high.value
        system_message(session, ticket, ctx, "; ".join(sig.text for sig in risk.signals))
    rules = ctx.policy.auto_approval
    if not rules.enabled or not any(
        ticket.kind in r.kinds and ticket.order.status in r.order_statuses for r in rules.rules
    ):
        return  # no rule could approve it: no quote needed to decide
    try:
        q = ticket_quote(
            session=session, ticket=ticket, policy=ctx.policy, now=ctx.now, timezone=str(ctx.tz)
        )
    except InvalidInput as exc:
        # An order the calculator cannot read: a person looks at it; the case is still opened.
        record_event(
            session=session,
            ticket=ticket,
            type=EventType.automation_held,
            actor=rule_actor,
            now=ctx.now,
            reason=exc.message,
        )
        return
    decision = decide_auto_approval(
        kind=ticket.kind,
        order_status=ticket.order.status,
        amount_minor=q.amount if q is not None else 0,
        currency=ticket.order.currency,
        risk=risk,
        rules=ctx.policy.auto_approval,
    )
    if not decision.approve:
        if decision.held_because:
            record_event(
                session=session,
                ticket=ticket,
                type=EventType.automation_held,
                actor=rule_actor,
                now=ctx.now,
                reason=decision.held_because,
                signals=list(risk.codes),
            )
            _say_held(session=session, ticket=ticket, ctx=ctx, risk=risk)
        return
    auto = Actor(kind="system", rule=f"auto-approval: {decision.rule}")
    record_event(
        session=session,
        ticket=ticket,
        type=EventType.case_auto_approved,
        actor=auto,
        now=ctx.now,
        rule=decision.rule,
    )
    transition = find_transition(
        action="approve", kind=CaseKind(ticket.kind), status=CaseStatus(ticket.status), by="system"
    )
    if transition is None:
        return
    approve(session, ticket, ActionRequest(action="approve"), auto, ctx, transition)
    if ticket.status == CaseStatus.refund_pending.value:
        _auto_propose(session=session, ticket=ticket, ctx=ctx, actor=auto)


def _say_held(*, session: Session, ticket: Ticket, ctx: Context, risk: RiskAssessment) -> None:
    """A request an auto-approval rule would have taken, held by risk: the agents read which
    signals held it on the case, and the customer is told a person checks it, and by when
    (the review clock), instead of waiting for an approval that is not coming by itself."""
    if not risk.needs_human:
        # High risk has its note already (the signals, with the priority raised).
        texts = agent_texts(ctx.policy.agent_language)
        system_message(
            session,
            ticket,
            ctx,
            texts["automation_held"].format(
                level=risk.level,
                signals="; ".join(f"{s.code}: {s.text}" for s in risk.signals),
            ),
        )
    # The shop's script for it, with the review clock's due time (`review_by`, from the case's
    # facts: the same source as every date the customer is told, business hours included).
    case_notice(session=session, ticket=ticket, script="refusal_held_for_review", ctx=ctx)


def _auto_propose(*, session: Session, ticket: Ticket, ctx: Context, actor: Actor) -> None:
    """Propose the refund without a human where the rules allow; when the quote refuses, the
    case simply waits for an agent, with the reason in its events."""
    session.flush()
    try:
        with session.begin_nested():
            propose_refund(
                session,
                ticket,
                ActionRequest(action="propose_refund"),
                actor,
                ctx,
                find_transition(
                    action="propose_refund",
                    kind=CaseKind(ticket.kind),
                    status=CaseStatus(ticket.status),
                    by="system",
                ),  # type: ignore[arg-type]
            )
    except InvalidInput as exc:
        record_event(
            session=session,
            ticket=ticket,
            type=EventType.automation_held,
            actor=actor,
            now=ctx.now,
            reason=exc.message,
        )
