"""Who is at work: the away switch, and who automatic assignment may give a case to.

An away agent gets no case by automatic assignment (the leads' round robin) and shows as away
wherever agents are listed; they keep the cases they hold. Anyone may mark themselves away or
back; a lead may mark the agents of their own group; an admin anyone. Every change by someone
other than the agent goes into the desk's audit trail with who made it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets.auth import audit
from tickets.exceptions import PermissionDenied
from tickets.models import Agent, Role


def may_mark_away(actor: Agent, target: Agent) -> bool:
    """Whether `actor` may mark `target` away or back (the rule the panel and the API share)."""
    if actor.id == target.id or actor.role == Role.admin.value:
        return True
    return actor.role == Role.lead.value and actor.group is not None and target.group == actor.group


def mark_away(*, session: Session, actor: Agent, target: Agent, away: bool, now: datetime) -> bool:
    """Mark `target` away (True) or back (False); PermissionDenied unless `actor` may. Returns
    whether anything changed."""
    if not may_mark_away(actor, target):
        raise PermissionDenied(
            f"a lead marks only the agents of their own group away; {target.username} is in "
            f"{target.group or 'no group'}",
            permission="mark_away",
        )
    if target.away == away:
        return False
    target.away = away
    audit(
        session=session,
        actor=f"agent:{actor.username}",
        action="agent.away" if away else "agent.back",
        target=target.username,
        now=now,
    )
    return True


def available_members(session: Session, group: str) -> list[Agent]:
    """The group's agents automatic assignment may give cases to: active and not away, by
    username."""
    return list(
        session.scalars(
            select(Agent)
            .where(Agent.group == group, Agent.active.is_(True), Agent.away.is_(False))
            .order_by(Agent.username)
        )
    )
