"""SLA clocks on cases: which promise starts, pauses, resumes and stops at each step.

Every promise of DOMAIN.md's service-targets table is a row in `sla_clocks` with its target,
calendar and pauses; its due time comes from tickets/sla/calendar.py (business time on the group's
calendar, or elapsed time; a legal limit wins when earlier). `next_check_at` says when the sweep
(tickets/sla/sweep.py) must look at it next, so the sweep reads only the clocks that are due.

All functions take `now` through the service Context; none reads the time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Exists, and_, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from tickets.models import CaseKind, CaseStatus, SlaClock, Ticket, UTCDateTime
from tickets.policy.rules import CUSTOMER_CLOCKS, ClockRule, Policy
from tickets.schemas import LATEST, SlaRead
from tickets.sla.calendar import BusinessCalendar, calendar_for, due_at
from tickets.workflow import TERMINAL

if TYPE_CHECKING:
    from tickets.context import Context

RUNNING = "running"
PAUSED = "paused"
MET = "met"
BREACHED = "breached"

S = CaseStatus
K = CaseKind

# A clock that runs while the case is in a status: started on entering it, stopped (met, or
# breached if late) on leaving it.
CLOCK_WHILE = {
    S.awaiting_return.value: "customer_shipping",
    S.in_transit.value: "transit",
    S.inspecting.value: "inspection",
    S.escalated.value: "platform_evidence",
    # The courier has to come: from the booked slot (tickets.self_service.Slot.value) on.
    S.pickup_booked.value: "pickup_collection",
}
# A pickup's time as the bot books it, in the shop's local time: "2026-11-23 09:00-12:00".
PICKUP_SLOT = re.compile(r"^\s*(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2})-\d{2}:\d{2}\s*$")

# The shop's clocks that wait while the customer owes an answer (needs info): DOMAIN.md says
# needs info pauses the shop's clocks, all of them. First response included: a case the policy
# sends straight to needs info (missing evidence) has only had an automatic request, not a
# person's answer, so its first response pauses and runs again when the customer answers (an
# agent's own request for information stops it first, as any answer does).
PAUSED_WHILE_WAITING = (
    "first_response",
    "review",
    "complaint_resolution",
    "inspection",
    "platform_evidence",
    "refused_delivery_contact",
)


@dataclass(frozen=True)
class Resolved:
    """A clock's rule for one case, and the calendar its business time is counted on."""

    rule: ClockRule
    calendar: BusinessCalendar


def _calendar(policy: Policy, rule: ClockRule, group: str, tz: str) -> BusinessCalendar:
    if rule.calendar == "calendar":
        return policy.sla.calendars_for(tz)["24/7"]
    return calendar_for(policy.sla.calendars_for(tz), group)


def resolve(policy: Policy, clock: str, ticket: Ticket, tz: str) -> Resolved:
    """The rule and calendar of `clock` for this case (kind, priority and group overrides)."""
    rule = policy.sla.target(clock, kind=ticket.kind, priority=ticket.priority, group=ticket.group)
    return Resolved(rule=rule, calendar=_calendar(policy, rule, ticket.group, tz))


def _pauses(clock: SlaClock) -> list[tuple[datetime, datetime | None]]:
    return [
        (datetime.fromisoformat(a), datetime.fromisoformat(b) if b else None)
        for a, b in clock.pauses
    ]


def _due(clock: SlaClock, resolved: Resolved, now: datetime) -> datetime:
    legal = (
        clock.started_at + timedelta(hours=resolved.rule.legal_hours)
        if resolved.rule.legal_hours
        else None
    )
    return due_at(
        resolved.calendar,
        clock.started_at,
        timedelta(seconds=clock.target_seconds),
        _pauses(clock),
        legal,
        now=now,
    )


def is_customer_clock(name: str) -> bool:
    return name in CUSTOMER_CLOCKS


def next_check(clock: SlaClock, policy: Policy) -> datetime | None:
    """When the sweep must look at this clock next, or None when nothing more can happen."""
    if clock.met_at is not None or clock.state == PAUSED:
        return None
    if is_customer_clock(clock.clock):
        rule = policy.sla.clocks[clock.clock]
        reminders = sorted(rule.remind_after_hours)
        if clock.reminders_sent < len(reminders):
            at = clock.started_at + timedelta(hours=reminders[clock.reminders_sent])
            return min(at, clock.due_at)
        return clock.due_at if clock.state == RUNNING else None
    if clock.state == BREACHED:
        pending = []
        if clock.escalated_at is None:
            pending.append(clock.due_at + timedelta(minutes=policy.sla.escalate_after_minutes))
        if clock.clock == "first_response" and clock.offered_at is None:
            pending.append(
                clock.due_at + timedelta(minutes=policy.sla.offer_unanswered_after_minutes)
            )
        return min(pending, default=None)
    if clock.warned_at is None:
        return warn_at(clock, policy)
    return clock.due_at


def warn_at(clock: SlaClock, policy: Policy) -> datetime:
    """When to warn: at `warn_fraction` of the way to the due time, or `warn_minutes_left`
    before it, whichever comes first."""
    span = clock.due_at - clock.started_at
    by_fraction = clock.started_at + span * policy.sla.warn_fraction
    by_minutes = clock.due_at - timedelta(minutes=policy.sla.warn_minutes_left)
    return max(clock.started_at, min(by_fraction, by_minutes))


def _live(session: Session, ticket: Ticket, name: str) -> SlaClock | None:
    """The clock still counting (running, paused, or breached but not yet done)."""
    return session.scalar(
        select(SlaClock).where(
            SlaClock.ticket_id == ticket.id, SlaClock.clock == name, SlaClock.met_at.is_(None)
        )
    )


def start(
    *,
    session: Session,
    ticket: Ticket,
    name: str,
    ctx: Context,
    fresh: bool = False,
    counts_from: datetime | None = None,
) -> SlaClock:
    """Start `name` on the case (a no-op when it already runs); a restart is a new round.
    `fresh`: the case was just opened, so it has no clocks to look up. `counts_from`: the
    clock counts from then when it is later than now (a booked pickup's slot)."""
    rounds: list[int] = []
    if not fresh:
        live = _live(session, ticket, name)
        if live is not None:
            return live
        rounds = list(
            session.scalars(
                select(SlaClock.round).where(
                    SlaClock.ticket_id == ticket.id, SlaClock.clock == name
                )
            )
        )
    resolved = resolve(ctx.policy, name, ticket, str(ctx.tz))
    clock = SlaClock(
        ticket_id=ticket.id,
        clock=name,
        round=max(rounds, default=0) + 1,
        calendar=ticket.group if resolved.rule.calendar == "business" else "24/7",
        target_seconds=int(resolved.rule.hours * 3600),
        started_at=max(ctx.now, counts_from) if counts_from is not None else ctx.now,
        state=RUNNING,
        pauses=[],
        reminders_sent=0,
    )
    clock.due_at = _due(clock, resolved, ctx.now)
    clock.legal_due_at = (
        ctx.now + timedelta(hours=resolved.rule.legal_hours) if resolved.rule.legal_hours else None
    )
    clock.next_check_at = next_check(clock, ctx.policy)
    session.add(clock)
    return clock


def stop(*, session: Session, ticket: Ticket, name: str, ctx: Context) -> SlaClock | None:
    """The step is done: met when on time, breached when late."""
    clock = _live(session, ticket, name)
    if clock is None:
        return None
    if clock.state == PAUSED:
        _close_pause(clock, ctx.now)
        clock.due_at = _due(clock, resolve(ctx.policy, name, ticket, str(ctx.tz)), ctx.now)
    clock.met_at = ctx.now
    if ctx.now <= clock.due_at and clock.state != BREACHED:
        clock.state = MET
    else:
        clock.state = BREACHED
        clock.breached_at = clock.breached_at or clock.due_at
    clock.next_check_at = next_check(clock, ctx.policy)
    return clock


def _close_pause(clock: SlaClock, now: datetime) -> None:
    pauses = list(clock.pauses)
    if pauses and pauses[-1][1] is None:
        pauses[-1] = [pauses[-1][0], now.isoformat()]
    clock.pauses = pauses


def pause(*, session: Session, ticket: Ticket, names: Iterable[str], ctx: Context) -> None:
    """Waiting on the customer: these running clocks stop counting."""
    for name in names:
        clock = _live(session, ticket, name)
        if clock is None or clock.state != RUNNING:
            continue
        clock.pauses = [*clock.pauses, [ctx.now.isoformat(), None]]
        clock.state = PAUSED
        clock.next_check_at = None


def resume(*, session: Session, ticket: Ticket, names: Iterable[str], ctx: Context) -> None:
    """The customer answered: paused clocks run again, due later by the working time paused."""
    for name in names:
        clock = _live(session, ticket, name)
        if clock is None or clock.state != PAUSED:
            continue
        _close_pause(clock, ctx.now)
        clock.state = RUNNING
        clock.due_at = _due(clock, resolve(ctx.policy, name, ticket, str(ctx.tz)), ctx.now)
        clock.next_check_at = next_check(clock, ctx.policy)


def stop_all(*, session: Session, ticket: Ticket, ctx: Context) -> None:
    for clock in session.scalars(
        select(SlaClock).where(SlaClock.ticket_id == ticket.id, SlaClock.met_at.is_(None))
    ).all():
        stop(session=session, ticket=ticket, name=clock.clock, ctx=ctx)


def on_case_opened(*, session: Session, ticket: Ticket, ctx: Context, fresh: bool = True) -> None:
    """A new case (or a reopened one, `fresh` False): first response for all; review for
    money requests; resolution for talk."""
    start(session=session, ticket=ticket, name="first_response", ctx=ctx, fresh=fresh)
    if ticket.kind in (K.complaint.value, K.delivery.value):
        start(session=session, ticket=ticket, name="complaint_resolution", ctx=ctx, fresh=fresh)
    else:
        start(session=session, ticket=ticket, name="review", ctx=ctx, fresh=fresh)
    if ticket.order is not None and ticket.order.status == "refused":
        start(session=session, ticket=ticket, name="refused_delivery_contact", ctx=ctx, fresh=fresh)


def on_agent_response(*, session: Session, ticket: Ticket, ctx: Context) -> None:
    """An agent answered the customer (a reply or a decision)."""
    stop(session=session, ticket=ticket, name="first_response", ctx=ctx)
    stop(session=session, ticket=ticket, name="refused_delivery_contact", ctx=ctx)


def on_status_change(
    *, session: Session, ticket: Ticket, old: str, new: str, ctx: Context, by_agent: bool
) -> None:
    """Move the clocks for a change of status (DOMAIN.md, the case lifecycle)."""
    session.flush()
    if by_agent:
        on_agent_response(session=session, ticket=ticket, ctx=ctx)
    if new in TERMINAL or new == S.cancelled.value:
        stop_all(session=session, ticket=ticket, ctx=ctx)
        return
    if old == S.submitted.value and new != S.needs_info.value:
        stop(session=session, ticket=ticket, name="review", ctx=ctx)
    if new == S.needs_info.value:
        pause(session=session, ticket=ticket, names=PAUSED_WHILE_WAITING, ctx=ctx)
        start(session=session, ticket=ticket, name="customer_reply", ctx=ctx)
    if old == S.needs_info.value:
        stop(session=session, ticket=ticket, name="customer_reply", ctx=ctx)
        resume(session=session, ticket=ticket, names=PAUSED_WHILE_WAITING, ctx=ctx)
        if new == S.submitted.value:
            # The review restarts where it stopped (resumed above); a case first reviewed
            # and refused, then amended, gets a new review round.
            start(session=session, ticket=ticket, name="review", ctx=ctx)
    if old == S.refused.value and new == S.submitted.value:
        start(session=session, ticket=ticket, name="review", ctx=ctx)
    if old in TERMINAL and new == S.submitted.value:
        on_case_opened(session=session, ticket=ticket, ctx=ctx, fresh=False)  # a lead reopened
    if old in CLOCK_WHILE:
        stop(session=session, ticket=ticket, name=CLOCK_WHILE[old], ctx=ctx)
    if new in CLOCK_WHILE:
        start(
            session=session,
            ticket=ticket,
            name=CLOCK_WHILE[new],
            ctx=ctx,
            counts_from=pickup_slot_start(ticket, ctx) if new == S.pickup_booked.value else None,
        )
    if new == S.refund_pending.value:
        start(session=session, ticket=ticket, name="refund_arrival", ctx=ctx)


def pickup_slot_start(ticket: Ticket, ctx: Context) -> datetime | None:
    """When the case's booked pickup slot begins (the courier cannot be late before), or None
    when its time is not a slot the bot books (an agent's free text: counted from now)."""
    slot = PICKUP_SLOT.match(str((ticket.pickup or {}).get("time") or ""))
    if slot is None:
        return None
    try:
        local = datetime.fromisoformat(f"{slot.group(1)}T{slot.group(2)}")
    except ValueError:
        return None
    return local.replace(tzinfo=ctx.tz)


def on_pickup_rebooked(*, session: Session, ticket: Ticket, ctx: Context) -> None:
    """Another slot or address: the courier's time counts from the new slot. The old round
    ends (breached if the courier was already late for it, on the record; met otherwise)."""
    stop(session=session, ticket=ticket, name="pickup_collection", ctx=ctx)
    session.flush()
    start(
        session=session,
        ticket=ticket,
        name="pickup_collection",
        ctx=ctx,
        counts_from=pickup_slot_start(ticket, ctx),
    )


def view(session: Session, ticket: Ticket, now: datetime) -> list[SlaRead]:
    """The case's clocks as the Ticket JSON shows them: a running clock past its due time
    reads breached even before the sweep has run."""
    rows = session.scalars(
        select(SlaClock)
        .where(SlaClock.ticket_id == ticket.id)
        .order_by(SlaClock.started_at, SlaClock.id)
    )
    out = []
    for c in rows:
        state = c.state
        if state == RUNNING and now > c.due_at:
            state = BREACHED
        out.append(SlaRead(clock=c.clock, due_at=c.due_at, state=state))
    return out


def overdue_condition(now: datetime) -> Exists:
    """A filter on tickets: an open case with a shop clock past due."""
    return exists().where(
        SlaClock.ticket_id == Ticket.id,
        SlaClock.clock.notin_(CUSTOMER_CLOCKS),
        or_(
            and_(SlaClock.state == RUNNING, SlaClock.due_at < now),
            and_(SlaClock.state == BREACHED, SlaClock.met_at.is_(None)),
        ),
    )


# A clock still counting against someone: running, or breached and not yet done (a breached
# clock is done when its step is, `met_at` set). Paused clocks wait on the customer: no due.
_COUNTING = and_(SlaClock.met_at.is_(None), SlaClock.state.in_((RUNNING, BREACHED)))


def nearest_due() -> ColumnElement[datetime]:
    """Per case (correlated on Ticket), the earliest due time of its counting shop clocks, or
    LATEST when none counts: the queue's "nearest due first" order. A missed clock has the
    earliest due of all, so the latest cases come first."""
    earliest = (
        select(func.min(SlaClock.due_at))
        .where(SlaClock.ticket_id == Ticket.id, SlaClock.clock.notin_(CUSTOMER_CLOCKS), _COUNTING)
        .correlate(Ticket)
        .scalar_subquery()
    )
    return func.coalesce(earliest, literal(LATEST, UTCDateTime()), type_=UTCDateTime())


LATE = "late"
SOON = "soon"
ON_TIME = "ok"
# The customer's own clock (shipping the return, answering): shown, never the shop's lateness.
CUSTOMERS = "customer"


@dataclass(frozen=True)
class Urgency:
    """What a queue row says about a case's time: which clock, when due, and how near."""

    clock: str
    due_at: datetime
    level: str  # LATE, SOON, ON_TIME or CUSTOMERS


def urgencies(
    session: Session, ticket_ids: list[int], now: datetime, soon: timedelta
) -> dict[int, Urgency]:
    """Per case, its most urgent counting clock, in one query: the shop's clock due first (a
    missed one is late, one due within `soon` is soon, as the breaching-soon queue counts it),
    else the customer's. Cases with no counting clock are left out."""
    if not ticket_ids:
        return {}
    best: dict[int, tuple[str, datetime, str]] = {}
    for ticket_id, name, due, state in session.execute(
        select(SlaClock.ticket_id, SlaClock.clock, SlaClock.due_at, SlaClock.state)
        .where(SlaClock.ticket_id.in_(ticket_ids), _COUNTING)
        .order_by(SlaClock.ticket_id, SlaClock.due_at, SlaClock.id)
    ):
        held = best.get(ticket_id)
        # The shop's clocks before the customer's; within each, the earliest due (the order).
        if held is None or (is_customer_clock(held[0]) and not is_customer_clock(name)):
            best[ticket_id] = (name, due, state)
    out: dict[int, Urgency] = {}
    for ticket_id, (name, due, state) in best.items():
        if is_customer_clock(name):
            level = CUSTOMERS
        elif state == BREACHED or due < now:
            level = LATE
        elif due < now + soon:
            level = SOON
        else:
            level = ON_TIME
        out[ticket_id] = Urgency(clock=name, due_at=due, level=level)
    return out
