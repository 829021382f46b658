"""Webhooks to the shop's systems: subscriptions, the events they hear, and what a delivery
attempt's outcome does (the delivery log, retries, switching a failing URL off, the refund
executor's answer). The sending itself (HTTP, signatures, the address checks) is the worker's
(api/hooks_delivery.py); everything that touches the database is here.
Over 500 lines as one file: subscriptions, events and outcomes share the delivery log's rows and
rules.

**One home for the events.** Every case event goes through `record_event` / `append_event`
(tickets/cases/events.py); those call `queue_case_event`, which writes one outbox row (channel
`webhook`) per enabled subscription hearing that event, in the same transaction as the change:
a change rolled back sends nothing, a change committed is sent, at least once.

**Order per case.** A row's recipient is `<subscription id>:<case id>`: the worker sends a row
only when no earlier row of the same recipient is still pending, so a case's next event waits
for the previous one (delivered, or given up on), while other cases go on.

**At least once, never a different id.** A row keeps its `webhook_id` (the `webhook-id`
header) across retries, and a row sent but not recorded (the process killed between the
receiver's answer and the commit) goes again after its lease with the same id: receivers
de-duplicate by it.

**The refund executor.** A subscription of kind `refund_executor` is asked to send the money
of each issued refund (`queue_case_event` on `refund.issued`), with the refund's id as the
idempotency key; its answer confirms or fails the refund through the case's own actions
(maker-checker and the ledger stay in the core's actions: the executor only carries out what
an approved `issue_refund` already decided). A refund no longer `issued` (confirmed or failed
meanwhile, by the executor's earlier answer or by an agent) is never sent again.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from tickets.exceptions import Conflict, DomainError, InvalidInput, NotFound
from tickets.messages import payloads
from tickets.messages.notices import agent_texts
from tickets.messages.outbox import notify_agents
from tickets.messages.payloads import AgentCard, WebhookDelivery
from tickets.models import (
    EventType,
    OutboxMessage,
    Refund,
    RefundStatus,
    Ticket,
    WebhookAttempt,
    WebhookSubscription,
)
from tickets.money import format_amount

if TYPE_CHECKING:
    from tickets.context import Context
    from tickets.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "webhook"
KINDS = ("events", "refund_executor")
# What a subscription may hear, as the `type` of the payload (README, "Webhooks to your
# systems").
EVENT_TYPES = (
    "case.created",
    "case.status_changed",
    "refund.proposed",
    "refund.approved",
    "refund.issued",
    "refund.confirmed",
    "refund.failed",
    "inspection.recorded",
    "case.closed",
    "case.rated",
)
# The executor's row kind (its payload type).
REFUND_EXECUTE = "refund.execute"
# The case events each audit event becomes (status.changed to closed also makes case.closed).
_FROM_AUDIT: dict[str, str] = {
    EventType.case_created.value: "case.created",
    EventType.status_changed.value: "case.status_changed",
    EventType.refund_proposed.value: "refund.proposed",
    EventType.refund_approved.value: "refund.approved",
    EventType.refund_issued.value: "refund.issued",
    EventType.refund_confirmed.value: "refund.confirmed",
    EventType.refund_failed.value: "refund.failed",
    EventType.inspection_recorded.value: "inspection.recorded",
    EventType.satisfaction_recorded.value: "case.rated",
}
# The answer's first characters kept in the delivery log.
EXCERPT = 1000
URL_MAX = 2000
DESCRIPTION_MAX = 200


@dataclass(frozen=True)
class HookRules:
    """The settings the sending and the log follow (AFTERSALES_HOOKS_*)."""

    allow_private: bool = False
    timeout_seconds: float = 10.0
    max_response_bytes: int = 64 * 1024
    max_attempts: int = 15
    backoff_base: float = 5.0
    backoff_cap: float = 3600.0
    disable_after_failures: int = 50
    disable_after_hours: float = 24.0
    max_subscriptions: int = 20

    @classmethod
    def of(cls, settings: Settings) -> HookRules:
        return cls(
            allow_private=settings.hooks_allow_private,
            timeout_seconds=settings.hooks_timeout_seconds,
            max_response_bytes=settings.hooks_max_response_bytes,
            max_attempts=settings.hooks_max_attempts,
            disable_after_failures=settings.hooks_disable_after_failures,
            disable_after_hours=settings.hooks_disable_after_hours,
            max_subscriptions=settings.hooks_max_subscriptions,
        )

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` tries: 5 s, 10 s, 20 s ... one hour."""
        return float(min(self.backoff_base * 2 ** max(attempts - 1, 0), self.backoff_cap))


# ---------------------------------------------------------------- addresses


def new_secret() -> str:
    """A signing secret as the Standard Webhooks specification writes it: whsec_ + base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """Whether a resolved address may be called: public ones always; loopback, private,
    link-local (cloud metadata), reserved and the like only when the development setting
    allows (AFTERSALES_HOOKS_ALLOW_PRIVATE). A webhook must never reach the desk's own
    network on a shop admin's word (SSRF)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_global and not ip.is_multicast:
        return True
    return allow_private and not ip.is_multicast and not ip.is_unspecified


def check_url(url: str, *, allow_private: bool, field: str = "url") -> str:
    """The URL as stored, or InvalidInput saying what is wrong: https (http only when the
    development setting allows), a host, no user:password, and no address literal or name
    that is plainly the desk's own network (the sender checks every resolved address again)."""
    url = url.strip()

    def bad(msg: str) -> InvalidInput:
        return InvalidInput(f"{field}: {msg}", [{"loc": field, "msg": msg}])

    if not url or len(url) > URL_MAX:
        raise bad(f"a URL of 1 to {URL_MAX} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise bad(f"not a URL: {exc}") from exc
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise bad(
            "must start with https://"
            + ("" if allow_private else " (http only with AFTERSALES_HOOKS_ALLOW_PRIVATE)")
        )
    host = parts.hostname
    if not host:
        raise bad("no host")
    if parts.username is not None or parts.password is not None:
        raise bad("no user or password in the URL: the signature proves who sends")
    if port == 0:
        raise bad("port 0")
    if not allow_private:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise bad(f"{host} is a local name; webhooks go to public addresses")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and not address_allowed(str(literal), allow_private=False):
            raise bad(f"{host} is not a public address")
    return url


# ---------------------------------------------------------------- subscriptions


def _check_events(kind: str, events: list[str]) -> list[str]:
    if kind not in KINDS:
        raise InvalidInput(
            f"kind: one of {', '.join(KINDS)}", [{"loc": "kind", "msg": "unknown kind"}]
        )
    if kind == "refund_executor":
        return []
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(
            f"events: unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}",
            [{"loc": "events", "msg": f"unknown event type {unknown[0]}"}],
        )
    if not events:
        raise InvalidInput(
            "events: name at least one event type", [{"loc": "events", "msg": "empty"}]
        )
    return [e for e in EVENT_TYPES if e in set(events)]


def create_subscription(
    *,
    session: Session,
    url: str,
    events: list[str],
    kind: str = "events",
    description: str = "",
    enabled: bool = True,
    rules: HookRules,
    by: str,
    now: datetime,
) -> WebhookSubscription:
    """A new subscription with a fresh secret (the caller shows it once). At most one refund
    executor is enabled: two would each send the same refund's money."""
    events = _check_events(kind, events)
    url = check_url(url, allow_private=rules.allow_private)
    count = len(session.scalars(select(WebhookSubscription.id)).all())
    if count >= rules.max_subscriptions:
        raise InvalidInput(
            f"at most {rules.max_subscriptions} subscriptions (AFTERSALES_HOOKS_MAX_SUBSCRIPTIONS)",
            [{"loc": "url", "msg": "too many subscriptions"}],
        )
    if kind == "refund_executor" and enabled:
        _no_other_executor(session, None)
    sub = WebhookSubscription(
        kind=kind,
        url=url,
        events=events,
        secret=new_secret(),
        description=description.strip()[:DESCRIPTION_MAX],
        enabled=enabled,
        created_at=now,
        created_by=by,
    )
    session.add(sub)
    session.flush()
    return sub


def _no_other_executor(session: Session, but: int | None) -> None:
    other = session.scalar(
        select(WebhookSubscription.id)
        .where(
            WebhookSubscription.kind == "refund_executor",
            WebhookSubscription.enabled.is_(True),
            WebhookSubscription.id != (but or 0),
        )
        .order_by(WebhookSubscription.id)
        .limit(1)
    )
    if other is not None:
        raise InvalidInput(
            f"subscription {other} is already the enabled refund executor: disable it first",
            [{"loc": "kind", "msg": "one refund executor at a time"}],
        )


def get_subscription(session: Session, sub_id: int) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, sub_id)
    if sub is None:
        raise NotFound(f"no webhook subscription {sub_id}", id=sub_id)
    return sub


def list_subscriptions(session: Session) -> list[WebhookSubscription]:
    return list(session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)))


def update_subscription(
    *,
    session: Session,
    sub_id: int,
    rules: HookRules,
    now: datetime,
    url: str | None = None,
    events: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookSubscription:
    """Change a subscription. Enabling one starts a fresh run of failures (an admin who
    switches a disabled URL back on has fixed it, or will see it switched off again)."""
    sub = get_subscription(session, sub_id)
    if url is not None:
        sub.url = check_url(url, allow_private=rules.allow_private)
    if events is not None:
        sub.events = _check_events(sub.kind, events)
    if description is not None:
        sub.description = description.strip()[:DESCRIPTION_MAX]
    if enabled is not None and enabled != sub.enabled:
        if enabled:
            if sub.kind == "refund_executor":
                _no_other_executor(session, sub.id)
            sub.enabled = True
            sub.consecutive_failures = 0
            sub.failing_since = None
            sub.disabled_at = None
            sub.disabled_reason = None
        else:
            _switch_off(session, sub, now, "disabled by an admin")
    session.flush()
    return sub


def delete_subscription(*, session: Session, sub_id: int) -> None:
    """Remove a subscription, its log and its rows not yet sent."""
    sub = get_subscription(session, sub_id)
    session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.channel == CHANNEL,
            OutboxMessage.status == "pending",
            OutboxMessage.recipient.like(f"{sub.id}:%"),
        )
        .values(status="failed", last_error="not sent: the subscription was deleted")
        .execution_options(synchronize_session=False)
    )
    session.delete(sub)
    session.flush()


def deliveries(
    session: Session, sub_id: int, *, limit: int = 100, before: int | None = None
) -> list[tuple[WebhookAttempt, OutboxMessage | None]]:
    """A subscription's delivery log, newest attempt first, with each attempt's outbox row
    (its current status; None once the row is gone)."""
    get_subscription(session, sub_id)
    query = (
        select(WebhookAttempt, OutboxMessage)
        .outerjoin(OutboxMessage, OutboxMessage.id == WebhookAttempt.outbox_id)
        .where(WebhookAttempt.subscription_id == sub_id)
        .order_by(WebhookAttempt.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(WebhookAttempt.id < before)
    return [(a, o) for a, o in session.execute(query).all()]


def pending_count(session: Session, sub_id: int) -> int:
    return len(
        session.scalars(
            select(OutboxMessage.id).where(
                OutboxMessage.channel == CHANNEL,
                OutboxMessage.status == "pending",
                OutboxMessage.recipient.like(f"{sub_id}:%"),
            )
        ).all()
    )


def replay(*, session: Session, outbox_id: int, now: datetime) -> OutboxMessage:
    """Send a delivery again: a new row with the same body and the same `webhook_id` (the
    receiver may have lost it, or wants it again; one that kept it sees a duplicate id),
    behind the case's other rows. Only to an enabled subscription."""
    row = session.get(OutboxMessage, outbox_id)
    if row is None or row.channel != CHANNEL:
        raise NotFound(f"no webhook delivery {outbox_id}", id=outbox_id)
    delivery = payloads.of(row, WebhookDelivery)
    sub = session.get(WebhookSubscription, delivery.subscription_id)
    if sub is None:
        raise NotFound(f"no webhook delivery {outbox_id}", id=outbox_id)
    if not sub.enabled:
        raise Conflict(f"subscription {sub.id} is disabled: enable it before replaying")
    if row.status == "pending":
        raise Conflict(f"delivery {outbox_id} is still being sent")
    again = OutboxMessage(
        channel=CHANNEL,
        recipient=row.recipient,
        ticket_id=row.ticket_id,
        kind=row.kind,
        payload=payloads.dump(delivery.model_copy(update={"replay_of": row.id})),
        next_attempt_at=now,
        created_at=now,
    )
    session.add(again)
    session.flush()
    return again


# ---------------------------------------------------------------- events into the outbox


def _case_facts(ticket: Ticket) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "kind": ticket.kind,
        "status": ticket.status,
        "reason": ticket.reason,
        "priority": ticket.priority,
        "group": ticket.group,
        "channel": ticket.channel,
        "order_no": ticket.order.order_no if ticket.order is not None else None,
        "rating": ticket.satisfaction,
    }


def _refund_facts(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "amount": format_amount(refund.amount, refund.currency),
        "currency": refund.currency,
        "method": refund.method,
        "status": refund.status,
    }


def _latest_refund(session: Session, ticket_id: int) -> Refund | None:
    return session.scalar(
        select(Refund)
        .where(Refund.ticket_id == ticket_id, Refund.status != RefundStatus.cancelled.value)
        .order_by(Refund.id.desc())
        .limit(1)
    )


def _hook_types(audit_type: str, data: dict[str, Any]) -> list[str]:
    hook = _FROM_AUDIT.get(audit_type)
    if hook is None:
        return []
    if hook == "case.status_changed" and data.get("to") == "closed":
        return [hook, "case.closed"]
    return [hook]


def queue_case_event(
    *,
    session: Session,
    ticket: Ticket,
    audit_type: str,
    actor: str,
    now: datetime,
    data: dict[str, Any],
) -> None:
    """The webhook rows an audit event makes (module doc): one per enabled subscription that
    hears it, and the refund executor's order when a refund is issued. Costs one small query
    for the events webhooks carry, none for the others."""
    hooks = _hook_types(audit_type, data)
    if not hooks:
        return
    # Without flushing what the unit of work holds: the subscriptions do not depend on it, and
    # an early flush costs the bot's intake (tickets/cases/events.py append_event).
    with session.no_autoflush:
        subs = session.scalars(
            select(WebhookSubscription)
            .where(WebhookSubscription.enabled.is_(True))
            .order_by(WebhookSubscription.id)
        ).all()
    if not subs:
        return
    if ticket.id is None:
        session.flush()  # the case's id names the rows' order
    refund = _latest_refund(session, ticket.id) if hooks[0].startswith("refund.") else None
    case = _case_facts(ticket)
    for sub in subs:
        if sub.kind == "refund_executor":
            if hooks[0] == "refund.issued" and refund is not None:
                _queue_execution(session, sub, ticket, refund, case, now)
            continue
        for hook in hooks:
            if hook not in sub.events:
                continue
            body_data: dict[str, Any] = {"case": case, "actor": actor, **data}
            if refund is not None:
                body_data["refund"] = _refund_facts(refund)
            _queue(session, sub, ticket, hook, body_data, now, webhook_id=f"msg_{uuid.uuid4().hex}")


def _queue(
    session: Session,
    sub: WebhookSubscription,
    ticket: Ticket,
    hook: str,
    data: dict[str, Any],
    now: datetime,
    *,
    webhook_id: str,
    dedupe_key: str | None = None,
) -> None:
    session.add(
        OutboxMessage(
            channel=CHANNEL,
            recipient=f"{sub.id}:{ticket.id}",
            ticket_id=ticket.id,
            kind=hook,
            payload=payloads.dump(
                WebhookDelivery(
                    subscription_id=sub.id,
                    webhook_id=webhook_id,
                    body={"type": hook, "timestamp": now.isoformat(), "data": data},
                )
            ),
            next_attempt_at=now,
            created_at=now,
            dedupe_key=dedupe_key,
        )
    )


def _queue_execution(
    session: Session,
    sub: WebhookSubscription,
    ticket: Ticket,
    refund: Refund,
    case: dict[str, Any],
    now: datetime,
) -> None:
    """Ask the executor to send this refund's money: once per refund (its id is the row's
    dedupe key, the webhook id and the idempotency key)."""
    routes = [
        {"method": line.method, "amount": format_amount(line.amount, refund.currency)}
        for line in refund.lines
        if line.kind in ("payment", "freight")
    ]
    data = {
        "case": case,
        "refund": {**_refund_facts(refund), "routes": routes},
        "idempotency_key": idempotency_key(refund.id),
    }
    _queue(
        session,
        sub,
        ticket,
        REFUND_EXECUTE,
        data,
        now,
        webhook_id=f"msg_refund_{refund.id}",
        dedupe_key=f"refund.execute:{refund.id}",
    )


def idempotency_key(refund_id: int) -> str:
    return f"refund-{refund_id}"


# ---------------------------------------------------------------- the worker's database side


@dataclass(frozen=True)
class HookClaim:
    """A webhook row taken for sending, with what sending needs (plain values)."""

    id: int
    subscription_id: int
    url: str
    secret: str
    kind: str
    webhook_id: str
    body: dict[str, Any]
    attempts: int
    refund_id: int | None = None


@dataclass(frozen=True)
class HookResult:
    """What one send did: the receiver's status (None: no answer) and what it said."""

    status_code: int | None
    error: str | None
    excerpt: str = ""
    answer: Any = None
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def any_due(session: Session, *, now: datetime) -> bool:
    """Whether any webhook row is due (a read: the sender's idle check before a claim)."""
    return (
        session.scalar(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status == "pending",
                OutboxMessage.next_attempt_at <= now,
                OutboxMessage.channel == CHANNEL,
            )
            .limit(1)
        )
        is not None
    )


def claim(
    session: Session, *, now: datetime, worker_id: str, lease_seconds: float, limit: int
) -> list[HookClaim]:
    """Due webhook rows that are first of their case for their subscription (module doc),
    leased to this worker. Rows whose subscription is gone or disabled fail here, unsent; an
    executor's row whose refund is no longer issued is closed unsent (never twice)."""
    earlier = aliased(OutboxMessage)
    waiting = (
        select(earlier.id)
        .where(
            earlier.channel == CHANNEL,
            earlier.recipient == OutboxMessage.recipient,
            earlier.status == "pending",
            earlier.id < OutboxMessage.id,
        )
        .exists()
    )
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.channel == CHANNEL,
            OutboxMessage.status == "pending",
            OutboxMessage.next_attempt_at <= now,
            ~waiting,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claimed = []
    for row in session.scalars(query).all():
        delivery = payloads.readable(row)
        if not isinstance(delivery, WebhookDelivery):
            row.status = "failed"
            row.last_error = "not sent: the row does not read as a webhook delivery"
            continue
        sub = session.get(WebhookSubscription, delivery.subscription_id)
        if sub is None or not sub.enabled:
            row.status = "failed"
            row.last_error = "not sent: the subscription is disabled or deleted"
            continue
        refund_id = None
        if row.kind == REFUND_EXECUTE:
            refund_id = int(delivery.body["data"]["refund"]["id"])
            refund = session.get(Refund, refund_id)
            if refund is None or refund.status != RefundStatus.issued.value:
                row.status = "sent"
                row.sent_at = now
                row.last_error = (
                    f"not sent: the refund is {refund.status if refund else 'gone'} already"
                )
                continue
        row.attempts += 1
        row.next_attempt_at = now + timedelta(seconds=lease_seconds)
        row.claimed_by = worker_id
        claimed.append(
            HookClaim(
                id=row.id,
                subscription_id=sub.id,
                url=sub.url,
                secret=sub.secret,
                kind=row.kind,
                webhook_id=delivery.webhook_id,
                body=dict(delivery.body),
                attempts=row.attempts,
                refund_id=refund_id,
            )
        )
    return claimed


def release(session: Session, row_ids: list[int], worker_id: str, now: datetime) -> None:
    """Give back rows claimed and never sent (the worker stops): due now, the try not
    counted."""
    for row in session.scalars(
        select(OutboxMessage).where(OutboxMessage.id.in_(row_ids)).order_by(OutboxMessage.id)
    ):
        if row.status == "pending" and row.claimed_by == worker_id:
            row.claimed_by = None
            row.attempts = max(row.attempts - 1, 0)
            row.next_attempt_at = now


def record(
    session: Session, *, hook: HookClaim, result: HookResult, rules: HookRules, ctx: Context
) -> str:
    """Write one attempt's outcome: the delivery log, the row (sent, retried with backoff,
    failed), the subscription's run of failures (switched off past the limits), and the
    executor's answer applied to the refund. Returns what the row became."""
    now = ctx.now
    row = session.get(OutboxMessage, hook.id)
    sub = session.get(WebhookSubscription, hook.subscription_id)
    if sub is None:
        return "gone"  # deleted while the request was on the wire: its log went with it
    session.add(
        WebhookAttempt(
            subscription_id=hook.subscription_id,
            outbox_id=hook.id,
            webhook_id=hook.webhook_id,
            event_type=hook.kind,
            attempt=hook.attempts,
            at=now,
            status_code=result.status_code,
            ok=result.ok,
            error=result.error,
            body_excerpt=result.excerpt[:EXCERPT],
            duration_ms=result.duration_ms,
        )
    )
    if row is None or row.status != "pending":
        return "gone"
    row.claimed_by = None
    error = result.error
    if result.ok and hook.kind == REFUND_EXECUTE:
        error = _apply_execution(session, hook, result.answer, ctx)
    if error is None:
        row.status = "sent"
        row.sent_at = now
        row.last_error = None
        sub.consecutive_failures = 0
        sub.failing_since = None
        sub.last_success_at = now
        return "sent"
    row.last_error = error
    if hook.attempts < rules.max_attempts:
        row.next_attempt_at = now + timedelta(seconds=rules.backoff(hook.attempts))
        outcome = "retry"
    else:
        row.status = "failed"
        row.last_error = f"gave up after {hook.attempts} attempts: {error}"
        outcome = "failed"
    if sub.enabled:
        sub.consecutive_failures += 1
        sub.failing_since = sub.failing_since or now
        why = _over_the_limit(sub, rules, now)
        if why is not None:
            _switch_off(session, sub, now, why)
            _tell_admins(session, sub, ctx)
            outcome = "failed"
    return outcome


def _over_the_limit(sub: WebhookSubscription, rules: HookRules, now: datetime) -> str | None:
    if sub.consecutive_failures >= rules.disable_after_failures:
        return f"{sub.consecutive_failures} failed attempts in a row"
    if sub.failing_since is not None and now - sub.failing_since >= timedelta(
        hours=rules.disable_after_hours
    ):
        return f"failing since {sub.failing_since.isoformat(timespec='seconds')}"
    return None


def _switch_off(session: Session, sub: WebhookSubscription, now: datetime, why: str) -> None:
    """Disable delivery; the rows not yet sent fail with why (an admin replays what matters
    once the receiver works again)."""
    sub.enabled = False
    sub.disabled_at = now
    sub.disabled_reason = why
    session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.channel == CHANNEL,
            OutboxMessage.status == "pending",
            OutboxMessage.recipient.like(f"{sub.id}:%"),
        )
        .values(status="failed", last_error=f"not sent: delivery disabled ({why})", claimed_by=None)
        .execution_options(synchronize_session=False)
    )
    log.warning("webhook subscription %s disabled: %s", sub.id, why)


def _tell_admins(session: Session, sub: WebhookSubscription, ctx: Context) -> None:
    """A notice in the agents' chat (when there is one; the panel shows it anyway)."""
    texts = agent_texts(ctx.policy.agent_language)
    text = str(texts["webhook_disabled"]).format(
        id=sub.id, url=sub.url, reason=sub.disabled_reason or ""
    )
    notify_agents(
        session=session,
        ticket=None,
        kind="webhook.disabled",
        payload=AgentCard.model_validate(
            {"type": "webhook.disabled", "subscription_id": sub.id, "text": text}
        ),
        now=ctx.now,
        dedupe_key=f"webhook.disabled:{sub.id}:{ctx.now.isoformat()}",
        channels=ctx.channels,
    )


def _apply_execution(session: Session, hook: HookClaim, answer: Any, ctx: Context) -> str | None:
    """The executor's 2xx answer: `{"status": "confirmed"}` confirms the refund, `{"status":
    "failed", "reason": ...}` fails it (the case goes back to refund pending), `{"status":
    "pending"}` leaves it issued (the shop confirms later through the API). Anything else is
    an error: the row is tried again with the same idempotency key. Returns the error."""
    from tickets.cases.lifecycle import perform_action
    from tickets.context import Actor
    from tickets.schemas import ActionRequest

    status = answer.get("status") if isinstance(answer, dict) else None
    if status == "pending":
        return None
    if status not in ("confirmed", "failed"):
        return 'the executor\'s answer needs {"status": "confirmed" | "failed" | "pending"}'
    assert hook.refund_id is not None
    refund = session.get(Refund, hook.refund_id)
    if refund is None or refund.status != RefundStatus.issued.value:
        return None  # settled meanwhile (an agent): nothing more to do
    ticket = session.get(Ticket, refund.ticket_id)
    assert ticket is not None
    reason = str(answer.get("reason") or "the payment failed")[:2000]
    request = ActionRequest(
        action="confirm_refund" if status == "confirmed" else "fail_refund",
        reason=None if status == "confirmed" else f"refund executor: {reason}",
    )
    try:
        with session.begin_nested():
            perform_action(
                session=session,
                number=ticket.number,
                request=request,
                actor=Actor(kind="system", rule="refund executor"),
                ctx=ctx,
            )
    except DomainError as exc:
        # The case moved in a way the answer no longer fits: the answer is logged; an agent
        # settles the refund by hand.
        log.warning("refund executor's answer for refund %s not applied: %s", refund.id, exc)
        return None
    return None
