"""Cases: open one, act on it, reply on it, list and read them.

Every function here is keyword-only, takes the session and `now`, adds and flushes, and never
commits: the edge (an HTTP request, a Telegram update, a job run) owns the transaction.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, defer, joinedload, selectinload
from sqlalchemy.orm.exc import StaleDataError

from tickets import sla
from tickets.config import Policy
from tickets.exceptions import (
    ActionNotAllowed,
    Conflict,
    DuplicateCase,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from tickets.limits import DEFAULTS, Limits
from tickets.models import (
    OPEN_STATUSES,
    Agent,
    Attachment,
    CaseCounter,
    CaseKind,
    CaseStatus,
    Customer,
    Event,
    EventType,
    Message,
    Order,
    OrderLine,
    Priority,
    Refund,
    RefundStatus,
    Role,
    Ticket,
    TicketItem,
    TicketUnit,
    UnitStatus,
)
from tickets.money import format_amount
from tickets.notices import agent_card, arrival_days, queue_notice, refund_route, render_for_case
from tickets.orders import find_or_make_customer, get_order, lock_order, pick_units, units_taken
from tickets.outbox import CARD_TAKEN, DEFAULT_CHANNELS, notify_agents, notify_customer
from tickets.policy import check_request, evidence_needed, order_facts
from tickets.quotes import ledger_overdraw, refund_from_quote, ticket_quote, unit_passes
from tickets.risk import RiskAssessment, assess, collect_risk_facts, decide_auto_approval
from tickets.schemas import INT32_MAX, ActionRequest, ReplyCreate, TicketCreate
from tickets.scripts import Money, ScriptLibrary, telegram_length
from tickets.workflow import (
    ACTIONS,
    LIVE_REFUND,
    REFUND_KINDS,
    TALK_KINDS,
    Transition,
    allowed_actions,
    find_transition,
    require,
)


@dataclass(frozen=True)
class Actor:
    """Who is acting: an agent (with their row), the customer, or the system (a rule, the
    scheduler). `label` is what the event log shows."""

    kind: str  # agent | customer | system
    agent: Agent | None = None
    customer_id: int | None = None
    rule: str | None = None

    @property
    def label(self) -> str:
        if self.agent is not None:
            return f"agent:{self.agent.username}"
        if self.kind == "customer":
            return "customer"
        return f"system:{self.rule}" if self.rule else "system"

    @property
    def role(self) -> Role | None:
        return Role(self.agent.role) if self.agent is not None else None


SYSTEM = Actor(kind="system")


@dataclass
class Context:
    """What a service call needs beyond the session: the rules, the clock, the shop's zone."""

    policy: Policy
    now: datetime
    tz: ZoneInfo
    case_prefix: str = "AS"
    scripts: ScriptLibrary | None = None
    shop_name: str = "Demo Shop"
    # The channels something delivers in this deployment (tickets/outbox.py): a message to a
    # customer none of whose chats is among them is written undeliverable, never left waiting.
    channels: frozenset[str] = DEFAULT_CHANNELS
    # Sizes checked before any work (the shop's AFTERSALES_LIMIT_* settings).
    limits: Limits = DEFAULTS


# ---------------------------------------------------------------- small pieces


def _count_case(insert: Any) -> Any:
    counters = CaseCounter.__table__
    return (
        insert(counters)
        .values(day=bindparam("day"), last=1)
        .on_conflict_do_update(index_elements=["day"], set_={"last": counters.c.last + 1})
        .returning(counters.c.last)
    )


# Built once, and run as Core on the session's connection (the ORM's execution path costs more
# than the statement): the counter is never an object in the session.
_COUNT_CASE = {"postgresql": _count_case(postgresql.insert), "sqlite": _count_case(sqlite.insert)}


def next_case_number(*, session: Session, prefix: str, now: datetime, tz: ZoneInfo) -> str:
    """AS-20261122-0001: per shop-day counter, safe under concurrent writers (one upsert)."""
    day = now.astimezone(tz).strftime("%Y%m%d")
    conn = session.connection()
    stmt = _COUNT_CASE["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    last = conn.execute(stmt, {"day": day}).scalar_one()
    return f"{prefix}-{day}-{last:04d}"


def record_event(
    *, session: Session, ticket: Ticket, type: EventType, actor: Actor, now: datetime, **data: Any
) -> Event:
    """Append to the case's audit log."""
    event = Event(ticket=ticket, type=type, actor=actor.label, at=now, data=data)
    session.add(event)
    return event


# Built once: the audit row as a plain INSERT (see `_append_event`).
_INSERT_EVENT = insert(cast(Table, Event.__table__))


def _append_event(
    *, session: Session, ticket: Ticket, type: EventType, actor: Actor, now: datetime, **data: Any
) -> None:
    """`record_event` for a case already stored, written at once as a plain INSERT (the same
    row, in the same order as the ORM would write it). Through the ORM, an event added after
    the unit of work's last flush costs a flush of its own at the commit (a customer's message
    on the bot), and an event on a stored case leaves the case dirty, which makes the next
    flush walk all its relationships (a new case's final flush cost 2.6 times as much). While
    the case's events are loaded in the session, the ORM way, so that list stays whole."""
    if ticket.id is None or "events" in ticket.__dict__:
        record_event(session=session, ticket=ticket, type=type, actor=actor, now=now, **data)
        return
    session.connection().execute(
        _INSERT_EVENT,
        {"ticket_id": ticket.id, "type": type, "actor": actor.label, "at": now, "data": data},
    )


def route(*, policy: Policy, kind: str, reason: str, status: str) -> tuple[str, str]:
    """The group a case belongs to now, and the name of the rule that decided it."""
    for rule in policy.routing:
        if rule.kinds and kind not in rule.kinds:
            continue
        if rule.reasons and reason not in rule.reasons:
            continue
        if rule.statuses and status not in rule.statuses:
            continue
        return rule.group, rule.name
    return policy.default_group, "default group"


def _reroute(*, session: Session, ticket: Ticket, ctx: Context, actor: Actor) -> None:
    group, rule = route(
        policy=ctx.policy, kind=ticket.kind, reason=ticket.reason, status=ticket.status
    )
    if group != ticket.group:
        old = ticket.group
        ticket.group = group
        record_event(
            session=session,
            ticket=ticket,
            type=EventType.case_routed,
            actor=actor,
            now=ctx.now,
            group=group,
            previous_group=old,
            rule=rule,
        )


def _set_status(
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
    _reroute(session=session, ticket=ticket, ctx=ctx, actor=actor)
    sla.on_status_change(
        session=session,
        ticket=ticket,
        old=old,
        new=status.value,
        ctx=ctx,
        by_agent=actor.agent is not None,
    )


def _notice(
    *, session: Session, ticket: Ticket, script: str, ctx: Context, **variables: Any
) -> None:
    """Queue a lifecycle notice for the customer; the text comes from the named script."""
    queue_notice(session=session, ticket=ticket, script=script, ctx=ctx, variables=variables)


def _load(session: Session, number: str, *, for_update: bool = False) -> Ticket:
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


# ---------------------------------------------------------------- opening a case


# Built once (building a statement costs more than running it): the latest case of an order
# that a new one of `kind` would duplicate, open and of that kind, or recent and not cancelled.
_DUPLICATE = (
    select(Ticket.number, Ticket.kind, Ticket.status)
    .where(
        Ticket.order_id == bindparam("order_id"),
        or_(
            and_(
                Ticket.kind == bindparam("kind"),
                Ticket.status.in_([s.value for s in OPEN_STATUSES]),
            ),
            and_(
                Ticket.created_at >= bindparam("since"),
                Ticket.status != CaseStatus.cancelled.value,
            ),
        ),
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


def open_case(
    *,
    session: Session,
    request: TicketCreate,
    actor: Actor,
    ctx: Context,
    photos: int = 0,
) -> Ticket:
    """Open a case from a complete request (any channel) and queue its first notices.

    `photos` is how many photo attachments came with the request (the bot stores them, then
    attaches them to the case). The guards of the lifecycle apply at once: a quality claim
    without a photo waits in needs_info; a refund-only on an unshipped order goes straight to
    refund_pending.
    """
    kind = CaseKind(request.kind)
    if request.override_policy:
        # Before anything is read: the same answer whether or not the policy would refuse.
        require(actor.role, "override_policy")
    order: Order | None = None
    if request.order_no:
        # Held before it is read: two requests for the same units at once, the second waits,
        # then sees them taken; an order re-sent meanwhile is read as re-sent.
        order = get_order(session=session, order_no=request.order_no, lock=True)
        customer = order.customer
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
    if actor.kind == "customer" and actor.customer_id != customer.id:
        raise PermissionDenied("this order belongs to someone else")
    picked: list[tuple[OrderLine, int, list[int]]] = []
    overridden: list[dict[str, str]] = []
    if order is not None:
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
        if order is not None
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
    _append_event(
        session=session,
        ticket=ticket,
        type=EventType.case_created,
        actor=actor,
        now=ctx.now,
        kind=kind.value,
        channel=ticket.channel,
        order_no=request.order_no,
    )
    _append_event(
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
    _notice(session=session, ticket=ticket, script="notice_received", ctx=ctx)
    notify_agents(
        session=session,
        ticket=ticket,
        kind="case.created",
        payload=agent_card(ticket, "case.created", ctx, data={"kind": ticket.kind}),
        now=ctx.now,
        channels=ctx.channels,
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
        _set_status(
            session=session,
            ticket=ticket,
            status=CaseStatus.needs_info,
            ctx=ctx,
            actor=rule_actor,
            rule="the claim needs evidence first",
            reason=need.text(ctx.policy.agent_language),
        )
        _system_message(session, ticket, ctx, need.text(ctx.policy.agent_language))
        _notice(
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
        _system_message(session, ticket, ctx, "; ".join(sig.text for sig in risk.signals))
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
            )
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
    _approve(session, ticket, ActionRequest(action="approve"), auto, ctx, transition)
    if ticket.status == CaseStatus.refund_pending.value:
        _auto_propose(session=session, ticket=ticket, ctx=ctx, actor=auto)


def _auto_propose(*, session: Session, ticket: Ticket, ctx: Context, actor: Actor) -> None:
    """Propose the refund without a human where the rules allow; when the quote refuses, the
    case simply waits for an agent, with the reason in its events."""
    session.flush()
    try:
        with session.begin_nested():
            _propose_refund(
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


def _system_message(session: Session, ticket: Ticket, ctx: Context, text: str) -> Message:
    msg = Message(ticket=ticket, author="system", text=text, internal=True, created_at=ctx.now)
    session.add(msg)
    return msg


# ---------------------------------------------------------------- acting on a case


def perform_action(
    *, session: Session, number: str, request: ActionRequest, actor: Actor, ctx: Context
) -> Ticket:
    """Apply one action to a case, or refuse it with the reason (and the allowed actions)."""
    ticket = _load(session, number, for_update=True)
    if actor.kind == "customer" and actor.customer_id != ticket.customer_id:
        # Not "forbidden": a customer must not learn that someone else's case exists.
        raise NotFound(f"no case {number}", number=number)
    if request.version is not None and request.version != ticket.version:
        raise Conflict(
            f"case {number} changed since you looked at it (version {request.version}, now "
            f"{ticket.version}): reload it and try again",
            version=ticket.version,
        )
    kind, status = CaseKind(ticket.kind), CaseStatus(ticket.status)
    by = "agent" if actor.agent is not None else actor.kind
    refund_state = refund_state_of(session, ticket)
    transition = find_transition(
        action=request.action, kind=kind, status=status, by=by, refund=refund_state
    )
    if transition is None:
        allowed = allowed_actions(
            kind=kind, status=status, role=actor.role, by=by, refund=refund_state
        )
        known = request.action in ACTIONS
        what = f"'{request.action}'" if known else f"unknown action '{request.action}'"
        refund_note = f" with its refund {refund_state}" if refund_state is not None else ""
        raise ActionNotAllowed(
            f"{what} is not possible on a {kind.value} case in status {status.value}"
            f"{refund_note}; allowed now: {', '.join(allowed) or 'none'}",
            allowed,
        )
    if actor.role is not None and actor.role not in transition.roles:
        raise PermissionDenied(
            f"'{request.action}' needs the role {' or '.join(r.value for r in transition.roles)}"
        )
    _check_needs(transition, request)
    handler = _HANDLERS.get(request.action)
    if handler is not None:
        handler(session, ticket, request, actor, ctx, transition)
    elif transition.target is not None:
        _set_status(
            session=session,
            ticket=ticket,
            status=transition.target,
            ctx=ctx,
            actor=actor,
            reason=request.reason,
        )
    if request.note:
        session.add(
            Message(
                ticket=ticket,
                author="agent" if actor.agent else "system",
                agent=actor.agent,
                text=request.note,
                internal=True,
                created_at=ctx.now,
            )
        )
    ticket.updated_at = ctx.now
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict(
            f"case {number} was changed by someone else at the same time: reload it",
        ) from exc
    return ticket


def _check_needs(transition: Transition, request: ActionRequest) -> None:
    errors = []
    for need in transition.needs:
        options = need.split("|")
        if not any(getattr(request, o, None) for o in options):
            errors.append(
                {
                    "loc": options[0],
                    "msg": f"'{transition.action}' needs {' or '.join(options)}",
                }
            )
    if errors:
        raise InvalidInput(f"'{transition.action}' is missing a parameter", errors)


Handler = Any


def _approve(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    if t.kind in (CaseKind.return_refund.value, CaseKind.exchange.value):
        t.rma_no = "RMA-" + t.number.split("-", 1)[-1]
        _set_status(
            session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, rma_no=t.rma_no
        )
        _notice(
            session=session,
            ticket=t,
            script="notice_approved",
            ctx=ctx,
            **req.variables,
        )
    else:
        # Refund-only: the customer hears when the money is issued (notice_refund_issued).
        _set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor)


def _request_info(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    _set_status(
        session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, reason=req.reason
    )
    _notice(
        session=session,
        ticket=t,
        script=req.script or "notice_needs_info",
        ctx=ctx,
        **({"missing": [req.reason]} | req.variables),
    )


def _refuse(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    _set_status(
        session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, reason=req.reason
    )
    alternative = req.alternative or ctx.policy.refusal_alternative.get(
        t.language, next(iter(ctx.policy.refusal_alternative.values()))
    )
    _notice(
        session=session,
        ticket=t,
        script=req.script or "notice_refused",
        ctx=ctx,
        **({"reason": req.reason, "alternative": alternative} | req.variables),
    )


def _assign(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    if not req.assignee and not req.group and not req.priority:
        raise InvalidInput(
            "'assign' needs an assignee, a group or a priority",
            [{"loc": "assignee", "msg": "give assignee, group or priority"}],
        )
    changes: dict[str, Any] = {}
    if req.assignee:
        agent = session.scalar(
            select(Agent).where(Agent.username == req.assignee, Agent.active.is_(True))
        )
        if agent is None:
            raise InvalidInput(
                f"no active agent {req.assignee}", [{"loc": "assignee", "msg": "unknown agent"}]
            )
        if (
            actor.agent is not None
            and t.assignee_id is not None
            and t.assignee_id not in (agent.id, actor.agent.id)
        ):
            require(actor.role, "reassign")
        if t.assignee_id != agent.id:
            # The cards in the agents' chat say who has it now (and offer it no more).
            notify_agents(
                session=session,
                ticket=t,
                kind=CARD_TAKEN,
                payload={"number": t.number, "agent": agent.display_name or agent.username},
                now=ctx.now,
                channels=ctx.channels,
            )
        t.assignee = agent
        changes["assignee"] = agent.username
    if req.group:
        if req.group not in ctx.policy.groups:
            raise InvalidInput(
                f"unknown group {req.group}; groups: {', '.join(ctx.policy.groups)}",
                [{"loc": "group", "msg": "unknown group"}],
            )
        t.group = req.group
        changes["group"] = req.group
    if req.priority:
        t.priority = req.priority.value
        changes["priority"] = req.priority.value
    record_event(
        session=session, ticket=t, type=EventType.case_assigned, actor=actor, now=ctx.now, **changes
    )


def _mark_in_transit(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    t.tracking_no, t.carrier = req.tracking_no, req.carrier
    t.pickup = req.pickup.model_dump() if req.pickup else None
    _set_status(
        session=session,
        ticket=t,
        status=tr.target,
        ctx=ctx,
        actor=actor,
        tracking_no=req.tracking_no,
        carrier=req.carrier,
        pickup=t.pickup,
    )


def _mark_received(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    for u in t.units:
        if u.status == UnitStatus.requested.value:
            u.status = UnitStatus.received.value
    _set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor)
    _notice(session=session, ticket=t, script="notice_parcel_received", ctx=ctx)


def _inspect(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    if req.results is not None and len(req.results) > ctx.limits.results_per_inspect:
        limit = ctx.limits.results_per_inspect
        raise InvalidInput(
            f"results: more than {limit} results in one inspection",
            [{"loc": "results", "msg": f"more than {limit} results (the shop's limit)"}],
        )
    units_by_sku: dict[str, list[TicketUnit]] = {}
    for u in t.units:
        units_by_sku.setdefault(u.unit.line.sku, []).append(u)
    outcomes: dict[int, str] = {}
    if req.results is None:
        outcomes = {u.id: UnitStatus.resalable.value for u in t.units}
    else:
        errors = []
        cursor: dict[str, int] = {}
        for i, r in enumerate(req.results):
            pool = units_by_sku.get(r.sku)
            if pool is None:
                errors.append(
                    {
                        "loc": f"results.{i}.sku",
                        "msg": f"SKU {r.sku} is not in this case; it has {', '.join(units_by_sku)}",
                    }
                )
                continue
            start = cursor.get(r.sku, 0)
            if start + r.quantity > len(pool):
                errors.append(
                    {
                        "loc": f"results.{i}.quantity",
                        "msg": f"the case has {len(pool)} unit(s) of {r.sku}; "
                        f"results name {start + r.quantity}",
                    }
                )
                continue
            for u in pool[start : start + r.quantity]:
                outcomes[u.id] = r.outcome
            cursor[r.sku] = start + r.quantity
        missing = [u for u in t.units if u.id not in outcomes]
        if not errors and missing:
            skus = sorted({u.unit.line.sku for u in missing})
            errors.append(
                {
                    "loc": "results",
                    "msg": f"every unit needs an outcome; missing for {', '.join(skus)}",
                }
            )
        if errors:
            raise InvalidInput("the inspection results do not match the case", errors)
    for u in t.units:
        u.status = outcomes[u.id]
    passed = [u for u in t.units if unit_passes(u.status, t.reason)]
    summary = {
        "results": [
            {"sku": u.unit.line.sku, "unit": u.unit.unit_index, "outcome": u.status}
            for u in t.units
        ],
        "passed": len(passed),
        "failed": len(t.units) - len(passed),
    }
    record_event(
        session=session,
        ticket=t,
        type=EventType.inspection_recorded,
        actor=actor,
        now=ctx.now,
        **summary,
    )
    if not passed:
        _set_status(
            session=session,
            ticket=t,
            status=CaseStatus.refused,
            ctx=ctx,
            actor=actor,
            reason="inspection failed",
        )
        findings = sorted({u.status for u in t.units})
        _notice(
            session=session,
            ticket=t,
            script="notice_inspection_failed",
            ctx=ctx,
            **({"finding": req.reason or ", ".join(findings)} | req.variables),
        )
        return
    if t.kind == CaseKind.exchange.value:
        target = CaseStatus.exchange_shipping
    else:
        target = CaseStatus.refund_pending
    _set_status(
        session=session,
        ticket=t,
        status=target,
        ctx=ctx,
        actor=actor,
        partial=len(passed) < len(t.units),
    )
    _notice(
        session=session,
        ticket=t,
        script="notice_inspection_passed",
        ctx=ctx,
        outcome="exchange" if t.kind == CaseKind.exchange.value else "refund",
    )


# ---------------------------------------------------------------- refunds on a case


def _current_refund(session: Session, ticket: Ticket) -> Refund | None:
    return session.scalar(
        select(Refund)
        .where(Refund.ticket_id == ticket.id, Refund.status.notin_([RefundStatus.cancelled.value]))
        .order_by(Refund.id.desc())
        .limit(1)
    )


def refund_state_of(session: Session, ticket: Ticket) -> str | None:
    """Where the case's refund stands ("none": there is none), for the lifecycle table; None
    for cases that move no money."""
    if ticket.kind not in REFUND_KINDS:
        return None
    refund = _current_refund(session, ticket)
    return refund.status if refund is not None else "none"


def _withdraw(
    session: Session, t: Ticket, refund: Refund, actor: Actor, ctx: Context, reason: str | None
) -> None:
    """Withdraw a proposed or approved refund: its units are free again, on the record."""
    was = refund.status
    refund.status = RefundStatus.cancelled.value
    record_event(
        session=session,
        ticket=t,
        type=EventType.refund_withdrawn,
        actor=actor,
        now=ctx.now,
        amount=format_amount(refund.amount, refund.currency),
        currency=refund.currency,
        was=was,
        reason=reason,
    )


def _withdraw_live_refund(
    session: Session, t: Ticket, actor: Actor, ctx: Context, reason: str | None
) -> None:
    """A case that closes or is cancelled keeps no refund that holds units (MONEY.md rule 10):
    a proposed or approved one is withdrawn, and the events say so."""
    refund = _current_refund(session, t)
    if refund is not None and refund.status in LIVE_REFUND:
        _withdraw(session, t, refund, actor, ctx, reason or f"case {t.status} -> closed")


def _touchers(t: Ticket, refund: Refund) -> dict[int, str]:
    """The agents who had a hand in this refund, each with what they did: proposed it, opened
    the case, pushed or changed the order it pays back."""
    out: dict[int, str] = {}
    if t.order is not None:
        for agent_id in t.order.touched_by or []:
            out[int(agent_id)] = "pushed or changed its order"
    if t.opened_by_id is not None:
        out[t.opened_by_id] = "opened the case"
    if refund.proposed_by_id is not None:
        out[refund.proposed_by_id] = "proposed it"
    return out


def _check_second_approver(t: Ticket, refund: Refund, approver: Agent | None) -> None:
    """Maker-checker (MONEY.md rule 16): a refund above the large-refund threshold is approved
    by a person who had no hand in it. The system (auto-approval) may propose it, never approve
    it; whoever opened the case or pushed its order is a maker too."""
    if not refund.needs_second_approval:
        return
    amount = f"{format_amount(refund.amount, refund.currency)} {refund.currency}"
    if approver is None:
        raise PermissionDenied(
            f"a refund of {amount} is above the large-refund threshold: an agent who had no "
            "hand in it must approve it"
        )
    did = _touchers(t, refund).get(approver.id)
    if did is not None:
        raise PermissionDenied(
            f"a refund of {amount} is above the large-refund threshold and you {did}: another "
            "agent must approve it"
        )


def _check_ledger(session: Session, t: Ticket, refund: Refund) -> None:
    """The refund still fits the ledger, every other refund that holds units counted: no unit,
    payment or shipping fee paid back twice (the order row locked, so two cases on the same
    units cannot both pass)."""
    assert t.order is not None
    lock_order(session, t.order)
    problems = ledger_overdraw(session, t.order, refund)
    if problems:
        raise Conflict(
            f"the refund of case {t.number} no longer fits the order's ledger: "
            + "; ".join(problems)
            + " (withdraw it and propose again)",
            problems=problems,
        )


def _propose_refund(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    if t.order is not None:
        # The order's other live refunds decide whether this one needs a second approver
        # (their sum against the threshold): two proposals on one order go one at a time.
        lock_order(session, t.order)
    existing = _current_refund(session, t)
    if existing is not None and existing.status in LIVE_REFUND:
        _withdraw(session, t, existing, actor, ctx, "replaced by a new proposal")
    elif existing is not None and existing.status != RefundStatus.failed.value:
        raise Conflict(f"case {t.number} already has a refund {existing.status}")
    q = ticket_quote(
        session=session,
        ticket=t,
        policy=ctx.policy,
        now=ctx.now,
        timezone=str(ctx.tz),
        return_freight=req.return_freight,
        freight_receipt=req.return_freight_receipt,
    )
    if q is None:
        raise InvalidInput(
            f"case {t.number} has nothing left to refund", [{"loc": "action", "msg": "nothing"}]
        )
    if not q.eligible:
        raise InvalidInput(
            "the refund cannot be proposed: " + "; ".join(q.reasons),
            [{"loc": "refund", "msg": r} for r in q.reasons],
        )
    refund = refund_from_quote(
        ticket=t, q=q, proposed_by=actor.agent.id if actor.agent else None, now=ctx.now
    )
    session.add(refund)
    record_event(
        session=session,
        ticket=t,
        type=EventType.refund_proposed,
        actor=actor,
        now=ctx.now,
        amount=format_amount(refund.amount, refund.currency),
        currency=refund.currency,
        needs_second_approval=refund.needs_second_approval,
    )


def _need_refund(session: Session, t: Ticket, *statuses: RefundStatus) -> Refund:
    refund = _current_refund(session, t)
    if refund is None or refund.status not in [s.value for s in statuses]:
        now_status = refund.status if refund is not None else "none"
        raise ActionNotAllowed(
            f"the case's refund is {now_status}; this needs one that is "
            f"{' or '.join(s.value for s in statuses)}",
            ["propose_refund"] if refund is None else [],
        )
    return refund


def _approve_refund(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    refund = _need_refund(session, t, RefundStatus.proposed)
    _check_second_approver(t, refund, actor.agent)
    # Approving reserves the units (the ledger counts approved refunds): they must be free.
    _check_ledger(session, t, refund)
    refund.status = RefundStatus.approved.value
    refund.approved_by_id = actor.agent.id if actor.agent else None
    record_event(
        session=session,
        ticket=t,
        type=EventType.refund_approved,
        actor=actor,
        now=ctx.now,
        amount=format_amount(refund.amount, refund.currency),
    )


def _issue_refund(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    refund = _need_refund(session, t, RefundStatus.approved)
    # Only an approval that satisfied maker-checker lets the money go, checked again now (an
    # approval recorded before the rule, or by someone who has since pushed the order).
    approver = session.get(Agent, refund.approved_by_id) if refund.approved_by_id else None
    if refund.needs_second_approval and approver is None:
        raise PermissionDenied(
            "this refund is above the large-refund threshold and no agent approved it: "
            "withdraw it and have it approved"
        )
    _check_second_approver(t, refund, approver)
    _check_ledger(session, t, refund)
    refund.status = RefundStatus.issued.value
    refund.issued_at = ctx.now
    refund.attempts += 1
    refund.issued_by_id = actor.agent.id if actor.agent else None
    refunded_units = {line.unit_id for line in refund.lines if line.unit_id is not None}
    for u in t.units:
        if u.unit_id in refunded_units:
            u.status = UnitStatus.refunded.value
    record_event(
        session=session,
        ticket=t,
        type=EventType.refund_issued,
        actor=actor,
        now=ctx.now,
        amount=format_amount(refund.amount, refund.currency),
        method=refund.method,
    )
    assert tr.target is not None
    _set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor)
    _notice(
        session=session,
        ticket=t,
        script="notice_refund_issued",
        ctx=ctx,
        amount=Money(refund.amount, refund.currency),
        route=refund_route(refund.method),
        expected_by=(ctx.now + timedelta(days=arrival_days(refund.method)))
        .astimezone(ctx.tz)
        .date(),
    )


def _withdraw_refund(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    refund = _need_refund(session, t, RefundStatus.proposed, RefundStatus.approved)
    _withdraw(session, t, refund, actor, ctx, req.reason)


def _confirm_refund(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    refund = _need_refund(session, t, RefundStatus.issued)
    refund.status = RefundStatus.confirmed.value
    refund.confirmed_at = ctx.now
    record_event(
        session=session, ticket=t, type=EventType.refund_confirmed, actor=actor, now=ctx.now
    )


def _fail_refund(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    refund = _need_refund(session, t, RefundStatus.issued)
    refund.status = RefundStatus.failed.value
    refund.failed_reason = req.reason
    for u in t.units:
        if u.status == UnitStatus.refunded.value:
            u.status = (
                UnitStatus.resalable.value
                if t.kind != CaseKind.refund_only.value
                else (UnitStatus.requested.value)
            )
    record_event(
        session=session,
        ticket=t,
        type=EventType.refund_failed,
        actor=actor,
        now=ctx.now,
        reason=req.reason,
    )
    assert tr.target is not None
    _set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor)


def _ship_exchange(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    t.exchange_tracking_no = req.tracking_no
    record_event(
        session=session,
        ticket=t,
        type=EventType.exchange_shipped,
        actor=actor,
        now=ctx.now,
        tracking_no=req.tracking_no,
        carrier=req.carrier,
    )
    _notice(
        session=session,
        ticket=t,
        script="notice_exchange_shipped",
        ctx=ctx,
        tracking_no=req.tracking_no,
        carrier=req.carrier or "",
        item_name=", ".join(i.line.title or i.sku for i in t.items) or t.number,
    )


def _resolve(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    t.resolution = req.reason or req.note
    _set_status(
        session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, resolution=t.resolution
    )


def _close(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    if t.status == CaseStatus.exchange_shipping.value and not t.exchange_tracking_no:
        raise ActionNotAllowed(
            "the replacement has not shipped yet: record ship_exchange first", ["ship_exchange"]
        )
    _withdraw_live_refund(session, t, actor, ctx, req.reason or "the case was closed")
    _set_status(
        session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, reason=req.reason
    )
    _notice(
        session=session, ticket=t, script=req.script or "notice_closed", ctx=ctx, **req.variables
    )


def _reopen(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    if t.order is not None and t.units:
        # While the case was closed its units were free: another case may hold them now, or have
        # refunded them. Then this one cannot take them back.
        lock_order(session, t.order)
        mine = {u.unit_id for u in t.units}
        elsewhere = mine & units_taken(session, t.order, exclude_ticket=t.id)
        if elsewhere:
            holders = session.scalars(
                select(Ticket.number)
                .join(TicketUnit, TicketUnit.ticket_id == Ticket.id)
                .where(TicketUnit.unit_id.in_(elsewhere), Ticket.id != t.id)
                .distinct()
            ).all()
            raise Conflict(
                f"case {t.number} cannot reopen: its units are now held or refunded by case "
                f"{', '.join(sorted(holders))}",
                cases=sorted(holders),
            )
        refund = _current_refund(session, t)
        # A refund left live by a close before the rule: the ledger decides if it stands.
        if (
            refund is not None
            and refund.status in LIVE_REFUND
            and ledger_overdraw(session, t.order, refund)
        ):
            _withdraw(session, t, refund, actor, ctx, "its units were refunded meanwhile")
    _set_status(
        session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, reason=req.reason
    )


def _cancel(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    _withdraw_live_refund(session, t, actor, ctx, req.reason or "the request was cancelled")
    _set_status(
        session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, reason=req.reason
    )
    cause = "customer" if actor.kind == "customer" else (req.variables.get("cause") or "customer")
    _notice(session=session, ticket=t, script="notice_cancelled", ctx=ctx, cause=cause)


_HANDLERS: dict[str, Handler] = {
    "approve": _approve,
    "request_info": _request_info,
    "refuse": _refuse,
    "assign": _assign,
    "mark_in_transit": _mark_in_transit,
    "mark_received": _mark_received,
    "inspect": _inspect,
    "propose_refund": _propose_refund,
    "approve_refund": _approve_refund,
    "issue_refund": _issue_refund,
    "withdraw_refund": _withdraw_refund,
    "confirm_refund": _confirm_refund,
    "fail_refund": _fail_refund,
    "ship_exchange": _ship_exchange,
    "resolve": _resolve,
    "close": _close,
    "reopen": _reopen,
    "cancel": _cancel,
}


# ---------------------------------------------------------------- conversation


def add_reply(
    *,
    session: Session,
    number: str,
    reply: ReplyCreate,
    actor: Actor,
    ctx: Context,
    attachments: Sequence[Attachment] = (),
) -> Message:
    """An agent's reply to the customer (queued for delivery), or an internal note. With
    `script`, the text is that script filled from the case and `variables`. `attachments`
    (stored files: a photo sent from the agents' chat) go with it, the text as their caption
    when it fits."""
    ticket = _load(session, number, for_update=True)
    parse_mode = None
    if reply.script is not None:
        if reply.text is not None:
            raise InvalidInput(
                "send either text or a script, not both", [{"loc": "text", "msg": "both given"}]
            )
        if ctx.scripts is None:
            raise InvalidInput("reply scripts are not loaded", [{"loc": "script", "msg": "none"}])
        body = render_for_case(
            ticket=ticket,
            script=reply.script,
            ctx=ctx,
            variables=reply.variables,
            language=reply.language,
        )
        parse_mode = "HTML"
    else:
        body = reply.text or ""
    if not body.strip() and not attachments:
        raise InvalidInput(
            "a reply needs text (or a script)", [{"loc": "text", "msg": "empty reply"}]
        )
    msg = Message(
        ticket=ticket,
        author="agent" if actor.agent else "system",
        agent=actor.agent,
        text=body,
        internal=reply.internal,
        created_at=ctx.now,
    )
    session.add(msg)
    for a in attachments:
        # In the session before it joins the message, so the cascade has somewhere to go.
        a.ticket = ticket
        session.add(a)
        a.message = msg
    ticket.updated_at = ctx.now
    session.flush()
    record_event(
        session=session,
        ticket=ticket,
        type=EventType.note_added if reply.internal else EventType.reply_sent,
        actor=actor,
        now=ctx.now,
        message_id=msg.id,
        script=reply.script,
    )
    if not reply.internal:
        if actor.agent is not None:
            sla.on_agent_response(session=session, ticket=ticket, ctx=ctx)
        for payload in _reply_payloads(body, parse_mode, msg.id, attachments):
            notify_customer(
                session=session,
                ticket=ticket,
                kind="reply",
                payload=payload,
                now=ctx.now,
                channels=ctx.channels,
            )
    session.flush()
    return msg


# Telegram's longest caption under a photo or file.
CAPTION_MAX = 1024


def _reply_payloads(
    body: str, parse_mode: str | None, message_id: int, attachments: Sequence[Attachment]
) -> list[dict[str, Any]]:
    """The outbox payloads of one reply, one per Telegram message: the text; each file after
    it (one file and a short text: the file with the text as its caption)."""
    base = {"message_id": message_id, "parse_mode": parse_mode}
    files = [
        {"kind": a.kind, "storage_key": a.storage_key, "name": a.original_name} for a in attachments
    ]
    # As Telegram counts: visible characters (tags aside) in UTF-16 units, plain text as is.
    length = (
        telegram_length(body)[0] if parse_mode == "HTML" else len(body.encode("utf-16-le")) // 2
    )
    if len(files) == 1 and length <= CAPTION_MAX:
        return [{**base, "text": body, "attachment": files[0]}]
    texts = [{**base, "text": body}] if body.strip() else []
    return texts + [{**base, "text": "", "attachment": f} for f in files]


def add_customer_message(
    *,
    session: Session,
    ticket: Ticket,
    text: str,
    ctx: Context,
    attachments: Sequence[Attachment] = (),
) -> Message:
    """A customer's message on their case; an answer to a request for information puts the case
    back in the queue."""
    msg = Message(ticket=ticket, author="customer", text=text, created_at=ctx.now)
    session.add(msg)
    for a in attachments:
        # In the session before it joins the message, so the cascade has somewhere to go.
        a.ticket = ticket
        session.add(a)
        a.message = msg
    ticket.updated_at = ctx.now
    session.flush()
    _append_event(
        session=session,
        ticket=ticket,
        type=EventType.customer_message,
        actor=Actor(kind="customer", customer_id=ticket.customer_id),
        now=ctx.now,
        message_id=msg.id,
        attachments=len(attachments),
    )
    if ticket.status == CaseStatus.needs_info.value:
        _set_status(
            session=session,
            ticket=ticket,
            status=CaseStatus.submitted,
            ctx=ctx,
            actor=Actor(kind="customer", customer_id=ticket.customer_id),
            rule="the customer answered",
        )
    return msg


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


def record_satisfaction(
    *, session: Session, ticket: Ticket, score: int, ctx: Context, comment: str = ""
) -> None:
    """The customer's rating of a finished case (1-5) and an optional comment; a later answer
    replaces an earlier one, and each is in the events."""
    if not 1 <= score <= 5:
        raise InvalidInput("a rating is 1 to 5", [{"loc": "score", "msg": "out of range"}])
    if ticket.status not in (
        CaseStatus.closed.value,
        CaseStatus.resolved.value,
        CaseStatus.refunded.value,
    ):
        raise ActionNotAllowed("only a finished case can be rated", [])
    ticket.satisfaction = score
    ticket.updated_at = ctx.now
    record_event(
        session=session,
        ticket=ticket,
        type=EventType.satisfaction_recorded,
        actor=Actor(kind="customer", customer_id=ticket.customer_id),
        now=ctx.now,
        score=score,
        comment=comment[:1000],
    )
