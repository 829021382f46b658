"""The review actions on a case: approve, ask for information, refuse, assign, cancel,
resolve, close and reopen.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from tickets.cases.actions.refunds import current_refund, withdraw, withdraw_live_refund
from tickets.cases.events import case_notice, record_event
from tickets.cases.status import set_status
from tickets.context import Actor, Context
from tickets.exceptions import (
    ActionNotAllowed,
    Conflict,
    InvalidInput,
)
from tickets.messages.outbox import notify_agents
from tickets.messages.payloads import CARD_TAKEN, CardTaken
from tickets.models import (
    Agent,
    CaseKind,
    CaseStatus,
    EventType,
    Ticket,
    TicketUnit,
)
from tickets.orders.store import (
    lock_order,
    units_taken,
)
from tickets.refunds.ledger import ledger_overdraw
from tickets.schemas import ActionRequest
from tickets.workflow import (
    LIVE_REFUND,
    Transition,
    require,
)


def approve(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    if t.kind in (CaseKind.return_refund.value, CaseKind.exchange.value):
        t.rma_no = "RMA-" + t.number.split("-", 1)[-1]
        set_status(
            session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, rma_no=t.rma_no
        )
        case_notice(
            session=session,
            ticket=t,
            script="notice_approved",
            ctx=ctx,
            **req.variables,
        )
    else:
        # Refund-only: the customer hears when the money is issued (notice_refund_issued).
        set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor)


def _taken(ctx: Context, t: Ticket, script: str, own: dict[str, Any]) -> dict[str, Any]:
    """The action's own variables (the reason, what is missing ...) that `script` takes: a
    script the agent chose (a macro's, tickets/macros.py) may word the step without them."""
    if ctx.scripts is None:
        return own
    accepts = ctx.scripts.get(script, t.language).accepts
    return {k: v for k, v in own.items() if k in accepts}


def request_info(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, reason=req.reason)
    script = req.script or "notice_needs_info"
    case_notice(
        session=session,
        ticket=t,
        script=script,
        ctx=ctx,
        **(_taken(ctx, t, script, {"missing": [req.reason]}) | req.variables),
    )


def refuse(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, reason=req.reason)
    alternative = req.alternative or ctx.policy.refusal_alternative.get(
        t.language, next(iter(ctx.policy.refusal_alternative.values()))
    )
    script = req.script or "notice_refused"
    given = {"reason": req.reason, "alternative": alternative}
    case_notice(
        session=session,
        ticket=t,
        script=script,
        ctx=ctx,
        **(_taken(ctx, t, script, given) | req.variables),
    )


def assign(
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
                payload=CardTaken(number=t.number, agent=agent.display_name or agent.username),
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
        session=session,
        ticket=t,
        type=EventType.case_assigned,
        actor=actor,
        now=ctx.now,
        limits=ctx.limits,
        **changes,
    )


def resolve(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    t.resolution = req.reason or req.note
    set_status(
        session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, resolution=t.resolution
    )


def close(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    if t.status == CaseStatus.exchange_shipping.value and not t.exchange_tracking_no:
        raise ActionNotAllowed(
            "the replacement has not shipped yet: record ship_exchange first", ["ship_exchange"]
        )
    withdraw_live_refund(session, t, actor, ctx, req.reason or "the case was closed")
    set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, reason=req.reason)
    case_notice(
        session=session, ticket=t, script=req.script or "notice_closed", ctx=ctx, **req.variables
    )


def hold_units_again(session: Session, t: Ticket, what: str) -> None:
    """A case that let go of its units (closed, or refused: tickets.models.HOLDING_STATUSES)
    takes them back as it comes to life again; another case may hold them now, or have
    refunded them, and then it cannot (Conflict naming that case)."""
    if t.order is None or not t.units:
        return
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
            f"case {t.number} cannot {what}: its units are now held or refunded by case "
            f"{', '.join(sorted(holders))}",
            cases=sorted(holders),
        )


def reopen(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    if t.order is not None and t.units:
        hold_units_again(session, t, "reopen")
        refund = current_refund(session, t)
        # A refund left live by a close before the rule: the ledger decides if it stands.
        if (
            refund is not None
            and refund.status in LIVE_REFUND
            and ledger_overdraw(session, t.order, refund)
        ):
            withdraw(session, t, refund, actor, ctx, "its units were refunded meanwhile")
    set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, reason=req.reason)


def cancel(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    assert tr.target is not None
    withdraw_live_refund(session, t, actor, ctx, req.reason or "the request was cancelled")
    set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor, reason=req.reason)
    cause = "customer" if actor.kind == "customer" else (req.variables.get("cause") or "customer")
    case_notice(session=session, ticket=t, script="notice_cancelled", ctx=ctx, cause=cause)
