"""Which queue and priority a case goes to (the policy's routing table), and the
re-routing of a case whose kind or reason changed.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from tickets.cases.events import record_event
from tickets.context import Actor, Context
from tickets.models import (
    EventType,
    Ticket,
)
from tickets.policy.rules import Policy


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


def reroute(*, session: Session, ticket: Ticket, ctx: Context, actor: Actor) -> None:
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
