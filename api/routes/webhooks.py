"""JSON API: the shop's webhook subscriptions (tickets/webhooks.py) — list, create (the secret
shown once), change, delete, the delivery log, and replaying a delivery. For admins (any
token) and tokens with the `webhooks` scope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from api.deps import CurrentAgent, SessionDep
from api.offload import OffLoop
from tickets.messages import payloads
from tickets.messages.payloads import WebhookDelivery
from tickets.models import OutboxMessage, Role, WebhookAttempt, WebhookSubscription
from tickets.schemas import DbId, _In
from tickets.webhooks import (
    DESCRIPTION_MAX,
    EVENT_TYPES,
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

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


def may_manage(request: Request, agent: CurrentAgent) -> None:
    """403 unless an admin's token, or a token with the `webhooks` scope."""
    if agent.role == Role.admin.value:
        return
    if "webhooks" in getattr(request.state, "token_scopes", frozenset()):
        return
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        "webhooks are managed by admins, or with a token that has the scope 'webhooks' "
        f"(aftersales create-token {agent.username} --scope webhooks)",
    )


router = APIRouter(
    prefix="/webhooks", tags=["webhooks"], route_class=OffLoop, dependencies=[Depends(may_manage)]
)


class WebhookCreate(_In):
    url: str = Field(max_length=URL_MAX)
    events: list[EventType] = Field(default_factory=list, max_length=len(EVENT_TYPES))
    kind: Literal["events", "refund_executor"] = "events"
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    enabled: bool = True


class WebhookUpdate(_In):
    url: str | None = Field(default=None, max_length=URL_MAX)
    events: list[EventType] | None = Field(default=None, max_length=len(EVENT_TYPES))
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    enabled: bool | None = None


class WebhookRead(BaseModel):
    id: int
    kind: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    created_at: datetime
    created_by: str
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None
    pending: int


class WebhookCreated(WebhookRead):
    # Shown once: only this answer carries it.
    secret: str


class WebhookList(BaseModel):
    data: list[WebhookRead]
    count: int


class DeliveryRead(BaseModel):
    id: int
    outbox_id: int | None
    webhook_id: str
    event_type: str
    attempt: int
    at: datetime
    status_code: int | None
    ok: bool
    error: str | None
    body_excerpt: str
    duration_ms: int
    # The delivery's state now: pending (retrying), sent, failed.
    delivery_status: str | None
    case_number: str | None = None


class DeliveryList(BaseModel):
    data: list[DeliveryRead]
    count: int


def _read(session: Any, sub: WebhookSubscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "kind": sub.kind,
        "url": sub.url,
        "events": list(sub.events or []),
        "description": sub.description,
        "enabled": sub.enabled,
        "created_at": sub.created_at,
        "created_by": sub.created_by,
        "consecutive_failures": sub.consecutive_failures,
        "failing_since": sub.failing_since,
        "last_success_at": sub.last_success_at,
        "disabled_at": sub.disabled_at,
        "disabled_reason": sub.disabled_reason,
        "pending": pending_count(session, sub.id),
    }


def delivery_json(attempt: WebhookAttempt, row: OutboxMessage | None) -> DeliveryRead:
    delivery = payloads.readable(row) if row is not None else None
    return DeliveryRead(
        id=attempt.id,
        outbox_id=attempt.outbox_id,
        webhook_id=attempt.webhook_id,
        event_type=attempt.event_type,
        attempt=attempt.attempt,
        at=attempt.at,
        status_code=attempt.status_code,
        ok=attempt.ok,
        error=attempt.error,
        body_excerpt=attempt.body_excerpt,
        duration_ms=attempt.duration_ms,
        delivery_status=row.status if row is not None else None,
        case_number=delivery.case_number if isinstance(delivery, WebhookDelivery) else None,
    )


def _rules(request: Request) -> HookRules:
    return HookRules.of(request.app.state.settings)


@router.get("", response_model=WebhookList)
def list_webhooks(session: SessionDep) -> WebhookList:
    """Every subscription, oldest first (secrets are never shown again)."""
    subs = list_subscriptions(session)
    return WebhookList(data=[WebhookRead(**_read(session, s)) for s in subs], count=len(subs))


@router.post("", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED)
def create_webhook(
    body: WebhookCreate, request: Request, session: SessionDep, agent: CurrentAgent
) -> WebhookCreated:
    """Subscribe a URL to case events (`kind` "events"), or name the refund executor (`kind`
    "refund_executor"). The answer carries the signing secret, once."""
    sub = create_subscription(
        session=session,
        url=body.url,
        events=list(body.events),
        kind=body.kind,
        description=body.description,
        enabled=body.enabled,
        rules=_rules(request),
        by=f"agent:{agent.username}",
        now=request.app.state.clock(),
    )
    return WebhookCreated(**_read(session, sub), secret=sub.secret)


@router.get("/{sub_id}", response_model=WebhookRead)
def read_webhook(sub_id: DbId, session: SessionDep) -> WebhookRead:
    return WebhookRead(**_read(session, get_subscription(session, sub_id)))


@router.patch("/{sub_id}", response_model=WebhookRead)
def change_webhook(
    sub_id: DbId, body: WebhookUpdate, request: Request, session: SessionDep
) -> WebhookRead:
    """Change the URL, the events, the description, or switch delivery on or off (on again
    after it was switched off for failing: a fresh start)."""
    changes = body.model_dump(exclude_unset=True)
    sub = update_subscription(
        session=session,
        sub_id=sub_id,
        rules=_rules(request),
        now=request.app.state.clock(),
        **changes,
    )
    return WebhookRead(**_read(session, sub))


@router.delete("/{sub_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(sub_id: DbId, session: SessionDep) -> None:
    delete_subscription(session=session, sub_id=sub_id)


@router.get("/{sub_id}/deliveries", response_model=DeliveryList)
def list_deliveries(
    sub_id: DbId,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> DeliveryList:
    """The delivery log: each attempt, newest first (`before`: an attempt id, for older)."""
    rows = deliveries(session, sub_id, limit=limit, before=before)
    return DeliveryList(data=[delivery_json(a, o) for a, o in rows], count=len(rows))


@router.post(
    "/deliveries/{outbox_id}/replay",
    response_model=dict[str, Any],
    status_code=status.HTTP_202_ACCEPTED,
)
def replay_delivery(outbox_id: DbId, request: Request, session: SessionDep) -> dict[str, Any]:
    """Send a delivery again (same body, same `webhook-id`), after the case's other rows."""
    row = replay(session=session, outbox_id=outbox_id, now=request.app.state.clock())
    webhook_id = payloads.of(row, WebhookDelivery).webhook_id
    return {"outbox_id": row.id, "status": row.status, "webhook_id": webhook_id}
