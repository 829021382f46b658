"""The outbox: outbound messages written in the same transaction as the change that caused them.

A delivery worker (bot/delivery.py) sends them later; nothing here talks to Telegram. A crash
between "decided" and "sent" therefore resends, never forgets.

No row waits on a channel that nothing delivers. Every message to a customer goes through
`notify_customer`, which looks at the channels delivered in this deployment (`Context.channels`,
from `delivered_channels(settings)`): a message nobody can deliver (a phone case's customer with
no chat, the bot switched off, the web chat switched off) is written as `undeliverable`, with
why, and an event on its case, so the agent sees it on the case and in the API's answer, and no
worker ever picks it up later (weeks late) or leaves it waiting unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from tickets.customers import telegram_of, web_chat_of
from tickets.messages import payloads
from tickets.messages.payloads import AgentCard, CardTaken, CustomerMessage, Reply
from tickets.models import Channel, Event, EventType, OutboxMessage, Ticket

if TYPE_CHECKING:
    from tickets.settings import Settings

# What is delivered, by channel: a channel counts as delivered in a deployment when its
# deliverer runs there, which the settings say (every process of one shop reads the same ones).
# Telegram and the agents' chat: the bot's delivery worker (bot/delivery.py), run wherever a bot
# token is set; the agents' cards need their chat too. The web chat: every process serving HTTP
# pushes `web` rows to the pages that are open (api/chat.py), unless AFTERSALES_WEB_CHAT is off.
DELIVERERS: dict[str, Callable[[Settings], bool]] = {
    Channel.telegram.value: lambda s: bool(s.telegram_token),
    Channel.web.value: lambda s: bool(s.web_chat),
    "agents": lambda s: bool(s.telegram_token) and s.agent_chat_id is not None,
}

# What a bare service call assumes (a test, the bot's own process: its worker runs there).
DEFAULT_CHANNELS = frozenset({Channel.telegram.value, "agents"})

# Why a customer message is not sent, by reason code (machines read the code; people the text).
NO_CHAT = "no_chat"
CHANNEL_OFF = "channel_off"
WHY = {
    NO_CHAT: "not sent: the customer has no chat with us; call them",
    f"{CHANNEL_OFF}:telegram": "not sent: the Telegram bot is off (no AFTERSALES_TELEGRAM_TOKEN)",
    f"{CHANNEL_OFF}:web": "not sent: the web chat is off (AFTERSALES_WEB_CHAT)",
    f"{CHANNEL_OFF}:agents": "not sent: no agents' chat (no bot, or no AFTERSALES_AGENT_CHAT_ID)",
}

# The event on a case when a message to its customer cannot be sent.
UNDELIVERABLE_EVENT = EventType.delivery_undeliverable

DeliveryState = Literal["queued", "sent", "failed", "undeliverable"]
# An outbox row's status, as the case shows its message.
STATE_OF_STATUS: dict[str, DeliveryState] = {
    "pending": "queued",
    "sent": "sent",
    "failed": "failed",
    "undeliverable": "undeliverable",
}


def delivered_channels(settings: Settings) -> frozenset[str]:
    """The channels something delivers with these settings (DELIVERERS)."""
    return frozenset(name for name, on in DELIVERERS.items() if on(settings))


@dataclass(frozen=True)
class Reach:
    """Where a case's customer is reached: a delivered channel and recipient, or why not."""

    channel: str
    recipient: str
    reason: str | None = None

    @property
    def why(self) -> str | None:
        if self.reason is None:
            return None
        return WHY.get(self.reason, f"not sent: {self.reason}")


def customer_chats(ticket: Ticket) -> list[tuple[str, str]]:
    """The chats this case's customer has, best first: the case's own channel (a web case's
    web chat), then Telegram when a Telegram account reaches them (theirs, or the account that
    proved their order: tickets/customers.py), then the web chat, whatever channel opened the
    case. A web chat's recipient is its chat id, as the bot's own answers there name it."""
    customer = ticket.customer
    chats = []
    web = web_chat_of(customer)
    web_chat = (Channel.web.value, str(web)) if web is not None else None
    if web_chat is not None and ticket.channel == Channel.web.value:
        chats.append(web_chat)
    telegram = telegram_of(customer)
    if telegram is not None:
        chats.append((Channel.telegram.value, str(telegram)))
    if web_chat is not None and web_chat not in chats:
        chats.append(web_chat)
    return chats


def reach(ticket: Ticket, channels: Iterable[str]) -> Reach:
    """The first of the customer's chats that something delivers; else why none is."""
    delivered = frozenset(channels)
    chats = customer_chats(ticket)
    for channel, recipient in chats:
        if channel in delivered:
            return Reach(channel, recipient)
    if not chats:
        return Reach("none", "", NO_CHAT)
    channel, recipient = chats[0]
    return Reach(channel, recipient, f"{CHANNEL_OFF}:{channel}")


def notify_customer(
    *,
    session: Session,
    ticket: Ticket,
    kind: str,
    payload: CustomerMessage,
    now: datetime,
    channels: Iterable[str],
    dedupe_key: str | None = None,
) -> OutboxMessage:
    """Queue a message to the case's customer on a channel something delivers (`channels`:
    `Context.channels`). When none does, the row is written `undeliverable` with why (and an
    event on the case), never left pending: the one place every customer message passes."""
    where = reach(ticket, channels)
    message = payload.model_copy()
    if "language" not in message.model_fields_set:
        message.language = ticket.language
    if where.reason is not None:
        message.undeliverable = where.reason
    row = OutboxMessage(
        channel=where.channel,
        recipient=where.recipient,
        ticket_id=ticket.id,
        kind=kind,
        payload=payloads.dump(message),
        next_attempt_at=now,
        created_at=now,
        dedupe_key=dedupe_key,
    )
    if where.reason is not None:
        row.status = "undeliverable"
        row.last_error = where.why
    session.add(row)
    if where.reason is not None:
        session.flush()  # the row's id goes on the event
        event = _undeliverable_event(row, ticket.id, now, where.reason)
        event.ticket = ticket  # on the case's loaded events too (its JSON in this request)
        session.add(event)
    return row


def _undeliverable_event(row: OutboxMessage, ticket_id: int, now: datetime, reason: str) -> Event:
    """The case's record of a message to its customer that will never be sent, and why."""
    message = payloads.readable(row)
    said = message if isinstance(message, CustomerMessage) else None
    return Event(
        ticket_id=ticket_id,
        type=UNDELIVERABLE_EVENT,
        actor="system",
        at=now,
        data={
            "outbox_id": row.id,
            "kind": row.kind,
            "script": said.script if said is not None else None,
            "message_id": message.message_id if isinstance(message, Reply) else None,
            "channel": None if row.channel == "none" else row.channel,
            "reason": reason,
            "why": row.last_error,
        },
    )


def settle_undelivered(
    session: Session, *, channels: Iterable[str], now: datetime, limit: int = 500
) -> int:
    """The net under `notify_customer`: rows still pending on a channel nothing delivers here
    (queued before the bot was switched off, or by an older version) become undeliverable, with
    why, a customer's on their case too, rather than wait unseen and go out weeks late. Run by
    the SLA sweep; returns how many it settled (at most `limit` a call)."""
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.status == "pending",
            OutboxMessage.channel.notin_(set(channels)),
            # The shop's webhooks are no chat: their sender (api/hooks_delivery.py) runs
            # wherever the background work does, and gives up on a row by its own rules.
            OutboxMessage.channel != "webhook",
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # another sweeper's rows: theirs
    rows = session.scalars(query).all()
    for row in rows:
        reason = f"{CHANNEL_OFF}:{row.channel}"
        row.status = "undeliverable"
        row.last_error = WHY.get(reason, f"not sent: nothing delivers {row.channel}")
        message = payloads.readable(row)
        if message is None:  # one this version cannot read: marked all the same
            row.payload = {**row.payload, "undeliverable": reason}
        else:
            message.undeliverable = reason
            row.payload = payloads.dump(message)
        if row.channel != "agents" and row.ticket_id is not None:
            session.add(_undeliverable_event(row, row.ticket_id, now, reason))
    return len(rows)


def notify_agents(
    *,
    session: Session,
    ticket: Ticket | None,
    kind: str,
    payload: AgentCard | CardTaken,
    now: datetime,
    dedupe_key: str | None = None,
    channels: Iterable[str] | None = None,
) -> OutboxMessage | None:
    """Queue a card for the agents' Telegram chat. None, and no row, when no chat of theirs
    is delivered (`channels` without "agents": no bot, or no agents' chat set): the panel
    shows every case anyway. `channels` None: the caller is the deliverer (the worker)."""
    if channels is not None and "agents" not in frozenset(channels):
        return None
    row = OutboxMessage(
        channel="agents",
        recipient="agents",
        ticket_id=ticket.id if ticket is not None else None,
        kind=kind,
        payload=payloads.dump(payload),
        next_attempt_at=now,
        created_at=now,
        dedupe_key=dedupe_key,
    )
    session.add(row)
    return row
