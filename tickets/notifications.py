"""Agents' notifications: what each agent should hear about, stored per agent (bounded), read
by the panel's badge, list and live stream (api/panel/notifications.py).

One home for who hears what, fed by the case's audit log (tickets/cases/events.py calls
`on_event` for every event it records), so every front end that changes a case notifies alike:
- a new case in my group (`case.created`): every active agent of the case's group;
- a case assigned to me (`case.assigned` naming me);
- a customer's reply on my case (`customer.message`): the assignee;
- an @mention in an internal note (`note.added`): each active colleague whose username is
  mentioned (`@tom`), a real username, not a word that looks like one.
Nobody is notified of what they did themselves. Rows are written as plain INSERTs: the bot's
hot path (a customer's message) pays one statement, not a flush of the case. Each agent keeps
the newest AFTERSALES_LIMIT_NOTIFICATIONS_PER_AGENT (the `keep` the caller passes, from its
context's limits).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from tickets.limits import DEFAULTS
from tickets.models import Agent, EventType, Message, Notification, Ticket

NEW_CASE = "new_case"
CUSTOMER_REPLY = "customer_reply"
MENTION = "mention"
ASSIGNED = "assigned"
KINDS = (NEW_CASE, CUSTOMER_REPLY, MENTION, ASSIGNED)
# The events anyone may be notified of (the rest cost nothing more than before).
NOTIFYING = frozenset(
    {
        EventType.case_created,
        EventType.case_assigned,
        EventType.customer_message,
        EventType.note_added,
    }
)
# A note's words quoted with a mention.
EXCERPT = 200
# `@name` where a username may be: letters, digits, `_`, `.`, `-` (create-agent's names).
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_.\-]{1,80})")


def mentioned(text: str) -> list[str]:
    """The usernames a note mentions, in order, once each (trailing dots left off)."""
    return list(dict.fromkeys(m.rstrip(".-") for m in _MENTION.findall(text)))


def _add(
    session: Session,
    agent_ids: Iterable[int],
    *,
    kind: str,
    ticket: Ticket,
    by: str,
    now: datetime,
    keep: int,
    excerpt: str = "",
) -> None:
    rows = [
        {
            "agent_id": agent_id,
            "kind": kind,
            "ticket_id": ticket.id,
            "number": ticket.number,
            "by": by[:120],
            "excerpt": excerpt[:EXCERPT],
            "created_at": now,
        }
        for agent_id in dict.fromkeys(agent_ids)
    ]
    if not rows:
        return
    conn = session.connection()
    conn.execute(insert(Notification), rows)
    for row in rows:
        # The agent's newest `keep` stay; the older ones go.
        oldest_kept = (
            select(Notification.id)
            .where(Notification.agent_id == row["agent_id"])
            .order_by(Notification.id.desc())
            .offset(keep - 1)
            .limit(1)
            .scalar_subquery()
        )
        conn.execute(
            delete(Notification).where(
                Notification.agent_id == row["agent_id"], Notification.id < oldest_kept
            )
        )


def on_event(
    session: Session,
    *,
    ticket: Ticket,
    type: EventType,
    actor_label: str,
    actor_agent_id: int | None,
    now: datetime,
    data: dict[str, Any],
    keep: int = DEFAULTS.notifications_per_agent,
) -> None:
    """Notify whoever should hear of this event on the case (module doc); each agent keeps
    their newest `keep`."""
    if ticket.id is None:
        return

    def others(ids: Iterable[int | None]) -> list[int]:
        return [i for i in ids if i is not None and i != actor_agent_id]

    if type == EventType.case_created:
        group = session.scalars(
            select(Agent.id)
            .where(Agent.group == ticket.group, Agent.active.is_(True))
            .order_by(Agent.id)
        )
        _add(
            session, others(group), kind=NEW_CASE, ticket=ticket, by=actor_label, now=now, keep=keep
        )
    elif type == EventType.case_assigned and data.get("assignee"):
        who = session.scalar(
            select(Agent.id).where(Agent.username == data["assignee"], Agent.active.is_(True))
        )
        _add(
            session, others([who]), kind=ASSIGNED, ticket=ticket, by=actor_label, now=now, keep=keep
        )
    elif type == EventType.customer_message:
        _add(
            session,
            others([ticket.assignee_id]),
            kind=CUSTOMER_REPLY,
            ticket=ticket,
            by=actor_label,
            now=now,
            keep=keep,
        )
    elif type == EventType.note_added and data.get("message_id"):
        text = session.scalar(select(Message.text).where(Message.id == data["message_id"])) or ""
        names = mentioned(text)
        if names:
            found = session.scalars(
                select(Agent.id)
                .where(Agent.username.in_(names), Agent.active.is_(True))
                .order_by(Agent.id)
            )
            _add(
                session,
                others(found),
                kind=MENTION,
                ticket=ticket,
                by=actor_label,
                now=now,
                keep=keep,
                excerpt=" ".join(text.split()),
            )


# ---------------------------------------------------------------- reading them


def unread_count(session: Session, agent_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.agent_id == agent_id, Notification.read_at.is_(None))
        )
        or 0
    )


def latest(session: Session, agent_id: int, limit: int = 50) -> list[Notification]:
    """The agent's newest notifications, newest first."""
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.agent_id == agent_id)
            .order_by(Notification.id.desc())
            .limit(limit)
        )
    )


def since(session: Session, agent_id: int, after: int, limit: int = 50) -> list[Notification]:
    """The agent's notifications after id `after`, oldest first (the live stream)."""
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.agent_id == agent_id, Notification.id > after)
            .order_by(Notification.id)
            .limit(limit)
        )
    )


def mark_read(
    session: Session, agent_id: int, now: datetime, notification_id: int | None = None
) -> Notification | None:
    """Mark one of the agent's notifications read (all of them without an id); the one marked.
    Another agent's notification is not theirs to read: None."""
    query = update(Notification).where(
        Notification.agent_id == agent_id, Notification.read_at.is_(None)
    )
    if notification_id is None:
        session.execute(query.values(read_at=now))
        return None
    found = session.get(Notification, notification_id)
    if found is None or found.agent_id != agent_id:
        return None
    if found.read_at is None:
        found.read_at = now
    session.flush()
    return found
