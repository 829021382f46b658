"""Admin pages: the shop's webhooks (tickets/webhooks.py) — the subscriptions (made, switched on
and off, deleted), each one's delivery log, and replaying a delivery.

Admins change them; leads read them. A new subscription's signing secret is shown once, on the
page that made it. A subscription switched off for failing says so at the top of the page, with
why (the admins also got a notice in the agents' chat).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import StringConstraints
from sqlalchemy.orm import Session

from api.deps import SessionDep
from api.panel.auth import CurrentPanelAgent, require_role
from api.panel.intake import _errors_by_field
from api.panel.pages import render
from tickets.exceptions import DomainError, InvalidInput
from tickets.messages import payloads
from tickets.messages.payloads import WebhookDelivery
from tickets.models import Agent, Role
from tickets.schemas import DbId
from tickets.webhooks import (
    DESCRIPTION_MAX,
    EVENT_TYPES,
    KINDS,
    URL_MAX,
    HookRules,
    create_subscription,
    delete_subscription,
    deliveries,
    get_subscription,
    list_subscriptions,
    pending_count,
    replay,
    update_subscription,
)

router = APIRouter(prefix="/admin/webhooks")

EventName = Annotated[str, StringConstraints(max_length=40)]

READERS = (Role.lead, Role.admin)
WRITERS = (Role.admin,)
# The longest delivery log a page shows (newest first).
LOG_ROWS = 200


def _rules(request: Request) -> HookRules:
    return HookRules.of(request.app.state.settings)


def _list(
    request: Request,
    session: Session,
    agent: Agent,
    *,
    form: dict[str, Any] | None = None,
    errors: list[dict[str, Any]] | None = None,
    new_secret: tuple[int, str] | None = None,
    status_code: int = 200,
) -> Response:
    subs = list_subscriptions(session)
    return render(
        request,
        "admin_webhooks.html",
        {
            "subs": subs,
            "pending": {s.id: pending_count(session, s.id) for s in subs},
            "event_types": EVENT_TYPES,
            "kinds": KINDS,
            "can_edit": agent.role == Role.admin.value,
            "values": form or {},
            "field_errors": _errors_by_field(errors or []),
            "new_secret": new_secret,
            "saved": request.query_params.get("saved"),
            "allow_private": _rules(request).allow_private,
        },
        status_code=status_code,
        headers={"Cache-Control": "no-store"} if new_secret else None,
    )


@router.get("")
def webhooks(request: Request, session: SessionDep, agent: CurrentPanelAgent) -> Response:
    """The subscriptions (admins edit; leads read)."""
    require_role(agent, READERS)
    return _list(request, session, agent)


@router.post("")
def add_webhook(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    url: Annotated[str, Form(max_length=URL_MAX)] = "",
    kind: Annotated[str, Form(max_length=20)] = "events",
    description: Annotated[str, Form(max_length=DESCRIPTION_MAX)] = "",
    # The boxes ticked: at most one per event type (an unknown name is refused, named).
    events: Annotated[list[EventName], Form(max_length=len(EVENT_TYPES))] = [],  # noqa: B006
) -> Response:
    """Subscribe a URL (admins); the page shows its secret once."""
    require_role(agent, WRITERS)
    form = {"url": url, "kind": kind, "description": description, "events": events}
    try:
        with session.begin_nested():
            sub = create_subscription(
                session=session,
                url=url,
                events=events,
                kind=kind,
                description=description,
                rules=_rules(request),
                by=f"agent:{agent.username}",
                now=request.app.state.clock(),
            )
    except InvalidInput as exc:
        errors = exc.errors or [{"loc": "url", "msg": exc.message}]
        return _list(request, session, agent, form=form, errors=errors, status_code=422)
    return _list(request, session, agent, new_secret=(sub.id, sub.secret), status_code=201)


@router.post("/{sub_id}")
def change_webhook(
    sub_id: DbId,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    enabled: Annotated[str, Form(max_length=1)] = "",
) -> Response:
    """Switch delivery on ("1") or off (admins)."""
    require_role(agent, WRITERS)
    try:
        with session.begin_nested():
            update_subscription(
                session=session,
                sub_id=sub_id,
                rules=_rules(request),
                now=request.app.state.clock(),
                enabled=enabled == "1",
            )
    except InvalidInput as exc:
        return _list(request, session, agent, errors=exc.errors, status_code=422)
    return RedirectResponse(
        "/panel/admin/webhooks?saved=webhook", status_code=status.HTTP_303_SEE_OTHER
    )


@router.post("/{sub_id}/delete")
def remove_webhook(
    sub_id: DbId, request: Request, session: SessionDep, agent: CurrentPanelAgent
) -> Response:
    """Delete a subscription with its log (admins)."""
    require_role(agent, WRITERS)
    delete_subscription(session=session, sub_id=sub_id)
    return RedirectResponse(
        "/panel/admin/webhooks?saved=deleted", status_code=status.HTTP_303_SEE_OTHER
    )


def _log(
    request: Request,
    session: Session,
    agent: Agent,
    sub_id: int,
    *,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    sub = get_subscription(session, sub_id)
    rows = deliveries(session, sub_id, limit=LOG_ROWS)
    return render(
        request,
        "admin_webhook_log.html",
        {
            "sub": sub,
            "rows": [(a, o, _case_of(o)) for a, o in rows],
            "pending": pending_count(session, sub_id),
            "can_edit": agent.role == Role.admin.value,
            "problem": problem,
            "replayed": request.query_params.get("replayed"),
        },
        status_code=status_code,
    )


def _case_of(row: Any) -> str | None:
    if row is None:
        return None
    delivery = payloads.readable(row)
    return delivery.case_number if isinstance(delivery, WebhookDelivery) else None


@router.get("/{sub_id}")
def webhook_log(
    sub_id: DbId, request: Request, session: SessionDep, agent: CurrentPanelAgent
) -> Response:
    """One subscription's delivery log: each attempt, newest first."""
    require_role(agent, READERS)
    return _log(request, session, agent, sub_id)


@router.post("/{sub_id}/replay/{outbox_id}")
def replay_delivery(
    sub_id: DbId,
    outbox_id: DbId,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
) -> Response:
    """Send a delivery again (admins): same body, same webhook-id."""
    require_role(agent, WRITERS)
    try:
        with session.begin_nested():
            row = replay(session=session, outbox_id=outbox_id, now=request.app.state.clock())
    except DomainError as exc:
        return _log(request, session, agent, sub_id, problem=exc.message, status_code=409)
    return RedirectResponse(
        f"/panel/admin/webhooks/{sub_id}?replayed={row.id}",
        status_code=status.HTTP_303_SEE_OTHER,
    )
