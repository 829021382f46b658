"""The SLA sweep: warnings before a breach, the breach, escalation after it, and the
customer's reminders and auto-close. Run every N seconds by `aftersales serve` (APScheduler)
or once by `aftersales sla-sweep [--now ISO]`.

Due work is found through the `next_check_at` index, so a sweep costs what is due, not what is
stored. Each clock is handled in its own transaction: its marker (warned_at, breached_at, ...),
its events and its outbox rows commit together, so a crash or a second sweep running at the same
time never sends a notice twice and never skips one (on PostgreSQL the row is claimed with
FOR UPDATE SKIP LOCKED and re-checked). One bad clock is logged and the rest go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from tickets.cases.events import record_event
from tickets.cases.lifecycle import perform_action
from tickets.context import Actor, Context
from tickets.logcontext import about_case, case_scope
from tickets.messages.notices import agent_card, agent_texts, queue_notice
from tickets.messages.outbox import notify_agents, settle_undelivered
from tickets.messages.payloads import AgentCard
from tickets.models import Agent, Event, EventType, Priority, Role, SlaClock, Ticket
from tickets.schemas import ActionRequest
from tickets.sla import clocks as sla

log = logging.getLogger(__name__)

SWEEPER = Actor(kind="system", rule="sla")
PRIORITY_UP = {
    Priority.low.value: Priority.normal.value,
    Priority.normal.value: Priority.high.value,
    Priority.high.value: Priority.urgent.value,
    Priority.urgent.value: Priority.urgent.value,
}
# Retry a clock whose handling failed after this long, not on every sweep.
RETRY_FAILED = timedelta(minutes=5)


@dataclass
class SweepReport:
    """What one sweep did, for logs and the `sla-sweep` command."""

    warned: int = 0
    breached: int = 0
    escalated: int = 0
    offered: int = 0
    reminded: int = 0
    closed: int = 0
    failed: int = 0
    skipped: int = 0
    # Outbox rows found waiting on a channel nothing delivers, settled as undeliverable.
    undeliverable: int = 0
    clocks: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{len(self.clocks)} clock(s) due: {self.warned} warned, {self.breached} breached, "
            f"{self.escalated} escalated, {self.offered} offered back, "
            f"{self.reminded} customer reminder(s), "
            f"{self.closed} closed for silence, {self.failed} failed"
        )


def _card(ticket: Ticket, clock: SlaClock, what: str, ctx: Context, **extra: Any) -> AgentCard:
    """An SLA card for the agents: the case's card with its clock."""
    texts = agent_texts(ctx.policy.agent_language)
    return agent_card(
        ticket,
        what,
        ctx,
        clock=texts["clocks"].get(clock.clock, clock.clock),
        due=clock.due_at.astimezone(ctx.tz).strftime("%m-%d %H:%M"),
        data={"clock": clock.clock, "due_at": clock.due_at.isoformat()},
        **extra,
    )


def _leads(session: Session, group: str) -> list[str]:
    return list(
        session.scalars(
            select(Agent.username).where(
                Agent.active.is_(True),
                Agent.role.in_([Role.lead.value, Role.admin.value]),
                (Agent.group == group) | (Agent.role == Role.admin.value),
            )
        )
    )


def _tell_agents(
    session: Session,
    clock: SlaClock,
    t: Ticket,
    ctx: Context,
    what: EventType,
    *,
    event: dict[str, Any],
    card: dict[str, Any] | None = None,
) -> None:
    """One notice of the sweep: an event on the case and a card for the agents, keyed so the
    same notice can never be queued twice for this clock."""
    record_event(session=session, ticket=t, type=what, actor=SWEEPER, now=ctx.now, **event)
    notify_agents(
        session=session,
        ticket=t,
        kind=what,
        now=ctx.now,
        payload=_card(t, clock, what, ctx, **(card or {})),
        dedupe_key=f"sla:{clock.id}:{what}",
        channels=ctx.channels,
    )


def _warn(session: Session, clock: SlaClock, t: Ticket, ctx: Context, report: SweepReport) -> None:
    clock.warned_at = ctx.now
    left = int((clock.due_at - ctx.now).total_seconds() // 60)
    _tell_agents(
        session,
        clock,
        t,
        ctx,
        EventType.sla_warning,
        event={"clock": clock.clock, "due_at": clock.due_at.isoformat(), "minutes_left": left},
        card={"minutes_left": left},
    )
    report.warned += 1


def _breach(
    session: Session, clock: SlaClock, t: Ticket, ctx: Context, report: SweepReport
) -> None:
    clock.state = sla.BREACHED
    clock.breached_at = clock.due_at
    _tell_agents(
        session,
        clock,
        t,
        ctx,
        EventType.sla_breached,
        event={"clock": clock.clock, "due_at": clock.due_at.isoformat()},
    )
    report.breached += 1


def _escalate(
    session: Session, clock: SlaClock, t: Ticket, ctx: Context, report: SweepReport
) -> None:
    clock.escalated_at = ctx.now
    old_priority = t.priority
    t.priority = PRIORITY_UP[t.priority]
    t.updated_at = ctx.now
    leads = _leads(session, t.group)
    _tell_agents(
        session,
        clock,
        t,
        ctx,
        EventType.sla_escalated,
        event={"clock": clock.clock, "priority": [old_priority, t.priority], "leads": leads},
        card={"leads": leads},
    )
    report.escalated += 1


def _offer(session: Session, clock: SlaClock, t: Ticket, ctx: Context, report: SweepReport) -> None:
    """Nobody answered the customer in time: the case goes back to its group, for whoever is
    free (the assignee may be away or swamped)."""
    clock.offered_at = ctx.now
    answered = session.scalar(
        select(Event.id).where(Event.ticket_id == t.id, Event.type == EventType.reply_sent).limit(1)
    )
    if t.assignee is None or answered is not None:
        return
    offered_from = t.assignee.username
    t.assignee = None
    t.updated_at = ctx.now
    _tell_agents(
        session,
        clock,
        t,
        ctx,
        EventType.case_offered,
        event={"offered_from": offered_from, "group": t.group},
        card={"offered_from": offered_from},
    )
    report.offered += 1


def _last_missing(session: Session, t: Ticket) -> list[str]:
    """What the agent asked for when the case went to needs info."""
    events = session.scalars(
        select(Event)
        .where(Event.ticket_id == t.id, Event.type == EventType.status_changed)
        .order_by(Event.id.desc())
    )
    for e in events:
        if e.data.get("to") == "needs_info":
            reason = e.data.get("reason") or e.data.get("rule")
            return [str(reason)] if reason else []
    return []


def _customer_clock(
    session: Session, clock: SlaClock, t: Ticket, ctx: Context, report: SweepReport
) -> None:
    rule = ctx.policy.sla.clocks[clock.clock]
    reminders = sorted(rule.remind_after_hours)
    if ctx.now < clock.due_at:
        due_reminders = sum(
            1 for h in reminders if clock.started_at + timedelta(hours=h) <= ctx.now
        )
        if due_reminders > clock.reminders_sent:
            # After a pause in sweeping, one reminder for all that were missed, not a burst.
            clock.reminders_sent = due_reminders
            clock.last_reminder_at = ctx.now
            record_event(
                session=session,
                ticket=t,
                type=EventType.customer_reminded,
                actor=SWEEPER,
                now=ctx.now,
                clock=clock.clock,
                reminder=due_reminders,
            )
            if clock.clock == "customer_shipping":
                queue_notice(
                    session=session,
                    ticket=t,
                    script="notice_ship_reminder",
                    ctx=ctx,
                    variables={"ship_by": clock.due_at.astimezone(ctx.tz).date()},
                )
            else:
                missing = _last_missing(session, t) or ["—"]
                queue_notice(
                    session=session,
                    ticket=t,
                    script="notice_needs_info",
                    ctx=ctx,
                    variables={"missing": missing, "reply_by": clock.due_at},
                )
            report.reminded += 1
        return
    # The customer's window has closed: the case closes, and the customer is told why.
    clock.state = sla.BREACHED
    clock.breached_at = clock.due_at
    cause = "not_shipped" if clock.clock == "customer_shipping" else "no_reply"
    record_event(
        session=session,
        ticket=t,
        type=EventType.sla_breached,
        actor=SWEEPER,
        now=ctx.now,
        clock=clock.clock,
        due_at=clock.due_at.isoformat(),
    )
    perform_action(
        session=session,
        number=t.number,
        request=ActionRequest(
            action="close",
            reason=f"{clock.clock}: no answer from the customer by {clock.due_at.isoformat()}",
            script="notice_cancelled",
            variables={"cause": cause},
        ),
        actor=SWEEPER,
        ctx=ctx,
    )
    report.closed += 1


def handle_clock(session: Session, clock: SlaClock, ctx: Context, report: SweepReport) -> None:
    """Do what is due on one clock at ctx.now, and say when to look next."""
    t = session.scalar(
        select(Ticket)
        .where(Ticket.id == clock.ticket_id)
        .options(
            selectinload(Ticket.customer),
            selectinload(Ticket.order),
            selectinload(Ticket.assignee),
            selectinload(Ticket.items),
        )
    )
    assert t is not None
    about_case(t.number)
    if clock.met_at is None and sla.is_customer_clock(clock.clock):
        if clock.state == sla.RUNNING:
            _customer_clock(session, clock, t, ctx, report)
    elif clock.met_at is None and clock.state == sla.RUNNING:
        if ctx.now >= clock.due_at:
            _breach(session, clock, t, ctx, report)
        elif clock.warned_at is None and ctx.now >= sla.warn_at(clock, ctx.policy):
            _warn(session, clock, t, ctx, report)
    if (
        clock.met_at is None
        and clock.state == sla.BREACHED
        and clock.escalated_at is None
        and not sla.is_customer_clock(clock.clock)
        and ctx.now >= clock.due_at + timedelta(minutes=ctx.policy.sla.escalate_after_minutes)
    ):
        _escalate(session, clock, t, ctx, report)
    if (
        clock.clock == "first_response"
        and clock.met_at is None
        and clock.state == sla.BREACHED
        and clock.offered_at is None
        and ctx.now
        >= clock.due_at + timedelta(minutes=ctx.policy.sla.offer_unanswered_after_minutes)
    ):
        _offer(session, clock, t, ctx, report)
    clock.next_check_at = sla.next_check(clock, ctx.policy)


def _claim(session: Session, clock_id: int, now: datetime) -> SlaClock | None:
    query = select(SlaClock).where(SlaClock.id == clock_id, SlaClock.next_check_at <= now)
    if session.get_bind().dialect.name == "postgresql":
        # Another sweeper holding this row is handling it: skip rather than wait.
        query = query.with_for_update(skip_locked=True)
    return session.scalar(query)


def run_sweep(
    *,
    sessions: sessionmaker[Session],
    ctx: Context,
    batch: int = 500,
    on_clock: Callable[[int], None] | None = None,
) -> SweepReport:
    """One sweep as of ctx.now: first any outbox row left waiting on a channel nothing
    delivers (tickets/messages/outbox.py), then every clock whose next check is due, each in its own
    transaction."""
    report = SweepReport()
    with sessions() as s:
        report.undeliverable = settle_undelivered(s, channels=ctx.channels, now=ctx.now)
        s.commit()
    seen: set[int] = set()
    while True:
        with sessions() as s:
            ids = list(
                s.scalars(
                    select(SlaClock.id)
                    .where(SlaClock.next_check_at <= ctx.now)
                    .order_by(SlaClock.next_check_at, SlaClock.id)
                    .limit(batch)
                )
            )
        fresh = [i for i in ids if i not in seen]
        if not fresh:
            break
        for clock_id in fresh:
            seen.add(clock_id)
            if on_clock is not None:
                on_clock(clock_id)
            # The case's number on this clock's log lines only (tickets/logcontext.py).
            with sessions() as s, case_scope():
                try:
                    clock = _claim(s, clock_id, ctx.now)
                    if clock is None:
                        report.skipped += 1
                        continue
                    handle_clock(s, clock, replace(ctx), report)
                    s.commit()
                    report.clocks.append(clock_id)
                except Exception:
                    # One bad case never stops the sweep: log it with its id, look again later.
                    s.rollback()
                    log.exception("SLA sweep failed on clock %s", clock_id)
                    report.failed += 1
                    s.execute(
                        update(SlaClock)
                        .where(SlaClock.id == clock_id)
                        .values(next_check_at=ctx.now + RETRY_FAILED)
                    )
                    s.commit()
    return report
