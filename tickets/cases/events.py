"""A case's number and its audit trail: case numbering per prefix and day, the event
log (one insert per event), and the small system notices and messages written on a
case.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Table,
    bindparam,
    insert,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tickets.context import Actor, Context
from tickets.limits import DEFAULTS, Limits
from tickets.logcontext import about_case
from tickets.messages.notices import (
    queue_notice,
)
from tickets.models import (
    CaseCounter,
    Event,
    EventType,
    Message,
    Ticket,
)
from tickets.notifications import NOTIFYING, on_event
from tickets.webhooks import queue_case_event

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


def case_number_in(text: str, prefix: str) -> str | None:
    """The first case number a person wrote in `text`, as `next_case_number` makes it: in
    any letter case, with spaces or other marks between its parts, in full-width characters
    (a Chinese keyboard's), e.g. "as 20261122 0001" -> "AS-20261122-0001"."""
    plain = unicodedata.normalize("NFKC", text)
    found = re.search(
        rf"(?<![A-Za-z0-9]){re.escape(prefix)}[^A-Za-z0-9]{{0,3}}([0-9]{{8}})"
        rf"[^A-Za-z0-9]{{0,3}}([0-9]{{4,}})(?![0-9])",
        plain,
        re.IGNORECASE,
    )
    return f"{prefix.upper()}-{found[1]}-{found[2]}" if found else None


def record_event(
    *,
    session: Session,
    ticket: Ticket,
    type: EventType,
    actor: Actor,
    now: datetime,
    limits: Limits = DEFAULTS,
    **data: Any,
) -> Event:
    """Append to the case's audit log; the shop's webhooks that hear this event are queued
    in the same transaction (tickets/webhooks.py), and the agents who should hear of it are
    notified (tickets/notifications.py; `limits`: the shop's, for how many each agent keeps:
    callers recording a notifying event pass their context's)."""
    about_case(ticket.number)  # the lines logged from here on name the case
    event = Event(ticket=ticket, type=type, actor=actor.label, at=now, data=data)
    session.add(event)
    queue_case_event(
        session=session, ticket=ticket, audit_type=type, actor=actor.label, now=now, data=data
    )
    _notify(session, ticket, type, actor, now, data, limits)
    return event


def _notify(
    session: Session,
    ticket: Ticket,
    type: EventType,
    actor: Actor,
    now: datetime,
    data: Any,
    limits: Limits,
) -> None:
    if type in NOTIFYING:
        on_event(
            session,
            ticket=ticket,
            type=type,
            actor_label=actor.label,
            actor_agent_id=actor.agent.id if actor.agent is not None else None,
            now=now,
            data=data,
            keep=limits.notifications_per_agent,
        )


# Built once: the audit row as a plain INSERT (see `append_event`).
_INSERT_EVENT = insert(cast(Table, Event.__table__))


def append_event(
    *,
    session: Session,
    ticket: Ticket,
    type: EventType,
    actor: Actor,
    now: datetime,
    limits: Limits = DEFAULTS,
    **data: Any,
) -> None:
    """`record_event` for a case already stored, written at once as a plain INSERT (the same
    row, in the same order as the ORM would write it). Through the ORM, an event added after
    the unit of work's last flush costs a flush of its own at the commit (a customer's message
    on the bot), and an event on a stored case leaves the case dirty, which makes the next
    flush walk all its relationships (a new case's final flush cost 2.6 times as much). While
    the case's events are loaded in the session, the ORM way, so that list stays whole."""
    about_case(ticket.number)
    if ticket.id is None or "events" in ticket.__dict__:
        record_event(
            session=session, ticket=ticket, type=type, actor=actor, now=now, limits=limits, **data
        )
        return
    session.connection().execute(
        _INSERT_EVENT,
        {"ticket_id": ticket.id, "type": type, "actor": actor.label, "at": now, "data": data},
    )
    queue_case_event(
        session=session, ticket=ticket, audit_type=type, actor=actor.label, now=now, data=data
    )
    _notify(session, ticket, type, actor, now, data, limits)


def case_notice(
    *, session: Session, ticket: Ticket, script: str, ctx: Context, **variables: Any
) -> None:
    """Queue a lifecycle notice for the customer; the text comes from the named script."""
    queue_notice(session=session, ticket=ticket, script=script, ctx=ctx, variables=variables)


def system_message(session: Session, ticket: Ticket, ctx: Context, text: str) -> Message:
    msg = Message(ticket=ticket, author="system", text=text, internal=True, created_at=ctx.now)
    session.add(msg)
    return msg
