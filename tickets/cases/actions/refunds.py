"""The refund actions on a case: propose, approve (with the second approver and the
ledger checks), issue, confirm, fail and withdraw a refund.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from tickets.cases.events import case_notice, record_event
from tickets.cases.status import set_status
from tickets.context import Actor, Context
from tickets.exceptions import (
    ActionNotAllowed,
    Conflict,
    InvalidInput,
    PermissionDenied,
    SecondApproverRequired,
)
from tickets.messages.notices import (
    arrival_days,
    refund_route,
)
from tickets.messages.scripts import Money
from tickets.models import (
    Agent,
    CaseKind,
    CaseStatus,
    EventType,
    Refund,
    RefundStatus,
    Ticket,
    UnitStatus,
)
from tickets.money import format_amount, to_minor
from tickets.orders.store import (
    lock_order,
)
from tickets.policy.rules import Policy
from tickets.refunds.ledger import ledger_overdraw, refund_from_quote, ticket_quote
from tickets.schemas import ActionRequest
from tickets.workflow import (
    LIVE_REFUND,
    REFUND_KINDS,
    Transition,
)

# ---------------------------------------------------------------- refunds on a case


def current_refund(session: Session, ticket: Ticket) -> Refund | None:
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
    refund = current_refund(session, ticket)
    return refund.status if refund is not None else "none"


def withdraw(
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


def withdraw_live_refund(
    session: Session, t: Ticket, actor: Actor, ctx: Context, reason: str | None
) -> None:
    """A case that closes or is cancelled keeps no refund that holds units (MONEY.md rule 10):
    a proposed or approved one is withdrawn, and the events say so."""
    refund = current_refund(session, t)
    if refund is not None and refund.status in LIVE_REFUND:
        withdraw(session, t, refund, actor, ctx, reason or f"case {t.status} -> closed")


# What a maker did, in the words the refusal uses ("... and you proposed this one").
MAKER_DID = {
    "proposed": "you proposed this one",
    "opened": "you opened the case",
    "order": "you pushed or changed its order",
    "system": "the system may propose it, never approve it",
}


def _touchers(t: Ticket, refund: Refund) -> dict[int, str]:
    """The agents who had a hand in this refund, each with what they did (MAKER_DID): proposed
    it, opened the case, pushed or changed the order it pays back."""
    out: dict[int, str] = {}
    if t.order is not None:
        for agent_id in t.order.touched_by or []:
            out[int(agent_id)] = "order"
    if t.opened_by_id is not None:
        out[t.opened_by_id] = "opened"
    if refund.proposed_by_id is not None:
        out[refund.proposed_by_id] = "proposed"
    return out


def approval_blocker(t: Ticket, refund: Refund, approver: Agent | None) -> str | None:
    """Why this approver may not approve this refund under maker-checker (a MAKER_DID code),
    or None when they may (a refund under the threshold: anyone)."""
    if not refund.needs_second_approval:
        return None
    if approver is None:
        return "system"
    return _touchers(t, refund).get(approver.id)


def large_refund_threshold(policy: Policy, currency: str) -> int:
    """Above this (minor units of `currency`) a refund needs a second person."""
    return to_minor(policy.refunds.large_refund_threshold, currency)


def _check_second_approver(
    t: Ticket, refund: Refund, approver: Agent | None, policy: Policy
) -> None:
    """Maker-checker (MONEY.md rule 16): a refund above the large-refund threshold is approved
    by a person who had no hand in it. The system (auto-approval) may propose it, never approve
    it; whoever opened the case or pushed its order is a maker too. The refusal says so, with
    the threshold, not "your role may not": no role may approve its own refund."""
    did = approval_blocker(t, refund, approver)
    if did is None:
        return
    threshold = large_refund_threshold(policy, refund.currency)
    raise SecondApproverRequired(
        f"a second person must approve refunds over "
        f"{format_amount(threshold, refund.currency)} {refund.currency}; {MAKER_DID[did]}",
        did=did,
        threshold=format_amount(threshold, refund.currency),
        currency=refund.currency,
    )


def awaiting_second_approval(
    session: Session, agent: Agent, *, limit: int = 200
) -> list[tuple[Ticket, Refund]]:
    """Proposed refunds that need a second person and that this agent may approve (someone
    else made them), oldest first: the approvals a lead works through."""
    rows = session.execute(
        select(Ticket, Refund)
        .join(Refund, Refund.ticket_id == Ticket.id)
        .where(
            Refund.status == RefundStatus.proposed.value,
            Refund.needs_second_approval.is_(True),
            Ticket.status == CaseStatus.refund_pending.value,
        )
        .order_by(Refund.created_at, Refund.id)
        .limit(limit)
    ).all()
    return [(t, r) for t, r in rows if approval_blocker(t, r, agent) is None]


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


def propose_refund(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    if t.order is not None:
        # The order's other live refunds decide whether this one needs a second approver
        # (their sum against the threshold): two proposals on one order go one at a time.
        lock_order(session, t.order)
    existing = current_refund(session, t)
    if existing is not None and existing.status in LIVE_REFUND:
        withdraw(session, t, existing, actor, ctx, "replaced by a new proposal")
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
    refund = current_refund(session, t)
    if refund is None or refund.status not in [s.value for s in statuses]:
        now_status = refund.status if refund is not None else "none"
        raise ActionNotAllowed(
            f"the case's refund is {now_status}; this needs one that is "
            f"{' or '.join(s.value for s in statuses)}",
            ["propose_refund"] if refund is None else [],
        )
    return refund


def approve_refund(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    refund = _need_refund(session, t, RefundStatus.proposed)
    _check_second_approver(t, refund, actor.agent, ctx.policy)
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


def issue_refund(
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
    _check_second_approver(t, refund, approver, ctx.policy)
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
    set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor)
    case_notice(
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


def withdraw_refund(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    refund = _need_refund(session, t, RefundStatus.proposed, RefundStatus.approved)
    withdraw(session, t, refund, actor, ctx, req.reason)


def confirm_refund(
    session: Session, t: Ticket, req: ActionRequest, actor: Actor, ctx: Context, tr: Transition
) -> None:
    refund = _need_refund(session, t, RefundStatus.issued)
    refund.status = RefundStatus.confirmed.value
    refund.confirmed_at = ctx.now
    record_event(
        session=session, ticket=t, type=EventType.refund_confirmed, actor=actor, now=ctx.now
    )


def fail_refund(
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
    set_status(session=session, ticket=t, status=tr.target, ctx=ctx, actor=actor)
