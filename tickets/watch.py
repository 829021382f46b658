"""The desk as it stands, read for /metrics at scrape time (api/metrics.py): open cases by
status and group, the SLA clocks still counting on them, the sweep's backlog, and the outbox's
depth and oldest row per channel.

Four grouped counts, each reading what is open or pending through an index (cases by status,
clocks by case, clocks by next check, the outbox by status), never the closed history: a desk
with a million closed cases scrapes as fast as a new one. Zero counts are reported too (every
working status for every group of the policy, every clock and state, every channel), so a
queue that empties shows 0 rather than a series that stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tickets.models import OutboxMessage, SlaClock, Ticket
from tickets.policy.rules import Policy
from tickets.sla.clocks import BREACHED, PAUSED, RUNNING
from tickets.workflow import WORKING

# The outbox's channels (tickets/messages/outbox.py): customers on Telegram, on the web chat,
# and the agents' group.
OUTBOX_CHANNELS = ("telegram", "web", "agents")
# How a clock still counting stands: on time, warned (due soon), breached (due time passed,
# swept or not yet), paused (waiting on the customer).
CLOCK_STATES = ("running", "warned", "breached", "paused")


@dataclass(frozen=True)
class DeskState:
    """Counts as of `now` (module doc)."""

    # (status, group) -> open cases
    cases: dict[tuple[str, str], int]
    # (clock, state) -> clocks still counting on open cases
    clocks: dict[tuple[str, str], int]
    # Clocks whose next check is due: what the sweep has yet to do (a backlog that grows means
    # the sweep is not keeping up, or not running).
    clocks_due: int
    # channel -> (pending rows, age in seconds of the oldest, 0 when none)
    outbox: dict[str, tuple[int, float]]


def desk_state(*, session: Session, policy: Policy, now: datetime) -> DeskState:
    """The desk's counts as of `now` (module doc), in one read transaction."""
    working = sorted(s.value for s in WORKING)
    cases = {(status, group): 0 for status in working for group in policy.groups}
    for status, group, count in session.execute(
        select(Ticket.status, Ticket.group, func.count())
        .where(Ticket.status.in_(working))
        .group_by(Ticket.status, Ticket.group)
        .order_by(Ticket.status, Ticket.group)
    ):
        cases[(status, group)] = count

    clocks = {(name, state): 0 for name in policy.sla.clocks for state in CLOCK_STATES}
    counting = (
        select(SlaClock.clock)
        .join(Ticket, Ticket.id == SlaClock.ticket_id)
        .where(
            Ticket.status.in_(working),
            SlaClock.met_at.is_(None),
            SlaClock.state.in_((RUNNING, PAUSED, BREACHED)),
        )
    )
    warned = SlaClock.warned_at.is_not(None)
    for name, state, was_warned, count in session.execute(
        counting.add_columns(SlaClock.state, warned, func.count())
        .group_by(SlaClock.clock, SlaClock.state, warned)
        .order_by(SlaClock.clock, SlaClock.state, warned)
    ):
        if state == RUNNING:
            state = "warned" if was_warned else "running"
        _add(clocks, (name, state), count)
    # A running clock past its due time is breached already, though the sweep has not yet
    # marked it (as the case's own view says: tickets/sla/clocks.py `view`).
    for name, was_warned, count in session.execute(
        counting.add_columns(warned, func.count())
        .where(SlaClock.state == RUNNING, SlaClock.due_at <= now)
        .group_by(SlaClock.clock, warned)
        .order_by(SlaClock.clock, warned)
    ):
        _add(clocks, (name, "warned" if was_warned else "running"), -count)
        _add(clocks, (name, "breached"), count)

    due = session.scalar(
        select(func.count()).select_from(SlaClock).where(SlaClock.next_check_at <= now)
    )

    outbox = {channel: (0, 0.0) for channel in OUTBOX_CHANNELS}
    for channel, count, oldest in session.execute(
        select(OutboxMessage.channel, func.count(), func.min(OutboxMessage.created_at))
        .where(OutboxMessage.status == "pending")
        .group_by(OutboxMessage.channel)
        .order_by(OutboxMessage.channel)
    ):
        age = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
        outbox[channel] = (count, age)
    return DeskState(cases=cases, clocks=clocks, clocks_due=due or 0, outbox=outbox)


def _add(counts: dict[tuple[str, str], int], key: tuple[str, str], n: int) -> None:
    counts[key] = counts.get(key, 0) + n
