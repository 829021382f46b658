"""One case of a bulk action (the panel's ticked rows): what it would do, shown before it runs,
and doing it. A case the policy holds for a person (tickets/cases/holds.py) is left out, with
why; anything else is the action as one agent would take it on that case alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from tickets.cases.holds import check_bulk
from tickets.cases.lifecycle import perform_action
from tickets.cases.status import load_ticket
from tickets.context import Actor, Context
from tickets.models import Ticket
from tickets.schemas import ActionRequest


@dataclass(frozen=True)
class Foreseen:
    """What a bulk action would leave the case as: its status, and who has it."""

    status: str
    assignee: str | None


def perform_in_bulk(
    *, session: Session, number: str, request: ActionRequest, actor: Actor, ctx: Context
) -> Ticket:
    """Take the action on one case of a bulk action; HeldForPerson when the case is left out."""
    # Locked before it is judged: what holds it is read as it stands, not as it stood.
    check_bulk(load_ticket(session, number, for_update=True), request.action)
    return perform_action(session=session, number=number, request=request, actor=actor, ctx=ctx)


def foresee_in_bulk(
    *, session: Session, number: str, request: ActionRequest, actor: Actor, ctx: Context
) -> Foreseen:
    """What `perform_in_bulk` would do to the case, found by doing it in a savepoint rolled
    back at once (so the answer is the real rules', not a copy of them); nothing is kept, and a
    refusal is raised as the action would raise it."""
    savepoint = session.begin_nested()
    try:
        ticket = perform_in_bulk(
            session=session, number=number, request=request, actor=actor, ctx=ctx
        )
        session.flush()
        assignee = ticket.assignee
        return Foreseen(
            ticket.status, (assignee.display_name or assignee.username) if assignee else None
        )
    finally:
        savepoint.rollback()
