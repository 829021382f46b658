"""Performing an action on a case: the lifecycle table (tickets/workflow.py) says which
actions a status allows and who may take them; this module checks that, then hands
the action to its handler (tickets/cases/actions/).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from tickets.cases.actions.refunds import (
    approve_refund,
    confirm_refund,
    fail_refund,
    issue_refund,
    propose_refund,
    refund_state_of,
    withdraw_refund,
)
from tickets.cases.actions.returns import (
    inspect_goods,
    mark_collected,
    mark_in_transit,
    mark_received,
    refund_anyway,
    send_back,
    ship_exchange,
)
from tickets.cases.actions.review import (
    approve,
    assign,
    cancel,
    close,
    hold_units_again,
    refuse,
    reopen,
    request_info,
    resolve,
)
from tickets.cases.holds import check_confirmed
from tickets.cases.status import check_version, load_ticket, set_status
from tickets.context import Actor, Context
from tickets.customers import speaks_for
from tickets.exceptions import (
    ActionNotAllowed,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from tickets.models import (
    HOLDING_STATUSES,
    CaseKind,
    CaseStatus,
    Message,
    Ticket,
)
from tickets.schemas import ActionRequest
from tickets.workflow import (
    ACTIONS,
    Transition,
    allowed_actions,
    find_transition,
)

# ---------------------------------------------------------------- acting on a case


def perform_action(
    *, session: Session, number: str, request: ActionRequest, actor: Actor, ctx: Context
) -> Ticket:
    """Apply one action to a case, or refuse it with the reason (and the allowed actions)."""
    ticket = load_ticket(session, number, for_update=True)
    if actor.kind == "customer" and not speaks_for(ticket.customer, actor.customer_id):
        # Not "forbidden": a customer must not learn that someone else's case exists.
        raise NotFound(f"no case {number}", number=number)
    check_version(ticket, request.version)
    kind, status = CaseKind(ticket.kind), CaseStatus(ticket.status)
    by = "agent" if actor.agent is not None else actor.kind
    refund_state = refund_state_of(session, ticket)
    transition = find_transition(
        action=request.action, kind=kind, status=status, by=by, refund=refund_state
    )
    if transition is None:
        allowed = allowed_actions(
            kind=kind, status=status, role=actor.role, by=by, refund=refund_state
        )
        known = request.action in ACTIONS
        what = f"'{request.action}'" if known else f"unknown action '{request.action}'"
        refund_note = f" with its refund {refund_state}" if refund_state is not None else ""
        raise ActionNotAllowed(
            f"{what} is not possible on a {kind.value} case in status {status.value}"
            f"{refund_note}; allowed now: {', '.join(allowed) or 'none'}",
            allowed,
        )
    if actor.role is not None and actor.role not in transition.roles:
        raise PermissionDenied(
            f"'{request.action}' needs the role {' or '.join(r.value for r in transition.roles)}"
        )
    _check_needs(transition, request)
    if actor.agent is not None:
        # A person approving a held case says what they checked (the system never approves
        # one: automation holds it).
        check_confirmed(ticket, request)
    if status is CaseStatus.refused and transition.target in HOLDING_STATUSES:
        # A refused case let go of its units (the customer may have asked again for them).
        hold_units_again(session, ticket, request.action)
    handler = _HANDLERS.get(request.action)
    if handler is not None:
        handler(session, ticket, request, actor, ctx, transition)
    elif transition.target is not None:
        set_status(
            session=session,
            ticket=ticket,
            status=transition.target,
            ctx=ctx,
            actor=actor,
            reason=request.reason,
        )
    if request.note:
        session.add(
            Message(
                ticket=ticket,
                author="agent" if actor.agent else "system",
                agent=actor.agent,
                text=request.note,
                internal=True,
                created_at=ctx.now,
            )
        )
    ticket.updated_at = ctx.now
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict(
            f"case {number} was changed by someone else at the same time: reload it",
        ) from exc
    return ticket


def _check_needs(transition: Transition, request: ActionRequest) -> None:
    errors = []
    for need in transition.needs:
        options = need.split("|")
        if not any(getattr(request, o, None) for o in options):
            errors.append(
                {
                    "loc": options[0],
                    "msg": f"'{transition.action}' needs {' or '.join(options)}",
                }
            )
    if errors:
        raise InvalidInput(f"'{transition.action}' is missing a parameter", errors)


Handler = Any


_HANDLERS: dict[str, Handler] = {
    "approve": approve,
    "request_info": request_info,
    "refuse": refuse,
    "assign": assign,
    "mark_in_transit": mark_in_transit,
    "mark_collected": mark_collected,
    "mark_received": mark_received,
    "inspect": inspect_goods,
    "propose_refund": propose_refund,
    "approve_refund": approve_refund,
    "issue_refund": issue_refund,
    "withdraw_refund": withdraw_refund,
    "confirm_refund": confirm_refund,
    "fail_refund": fail_refund,
    "ship_exchange": ship_exchange,
    "resolve": resolve,
    "close": close,
    "reopen": reopen,
    "cancel": cancel,
    "refund_anyway": refund_anyway,
    "send_back": send_back,
}
