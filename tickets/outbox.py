"""The outbox: outbound messages written in the same transaction as the change that caused them.

A delivery worker (bot/delivery.py) sends them later; nothing here talks to Telegram. A crash
between "decided" and "sent" therefore resends, never forgets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tickets.models import Channel, OutboxMessage, Ticket

# The kind of an agents' row that does not post a card but updates the case's earlier cards in
# the agents' chat: taken, by whom (payload: number, agent), no "take it" any more.
CARD_TAKEN = "card.taken"


def customer_address(ticket: Ticket) -> tuple[str, str] | None:
    """Where this case's customer can be reached: (channel, recipient), or None (phone cases)."""
    customer = ticket.customer
    if customer.telegram_user_id is not None and ticket.channel in (
        Channel.telegram.value,
        Channel.api.value,
        Channel.platform.value,
        Channel.phone.value,
        Channel.email.value,
    ):
        return ("telegram", str(customer.telegram_user_id))
    if ticket.channel == Channel.web.value:
        return ("web", str(customer.id))
    return None


def notify_customer(
    *,
    session: Session,
    ticket: Ticket,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    dedupe_key: str | None = None,
) -> OutboxMessage | None:
    """Queue a message to the case's customer; None when they have no reachable channel."""
    address = customer_address(ticket)
    if address is None:
        return None
    channel, recipient = address
    row = OutboxMessage(
        channel=channel,
        recipient=recipient,
        ticket_id=ticket.id,
        kind=kind,
        payload={"language": ticket.language, **payload},
        next_attempt_at=now,
        created_at=now,
        dedupe_key=dedupe_key,
    )
    session.add(row)
    return row


def notify_agents(
    *,
    session: Session,
    ticket: Ticket | None,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    dedupe_key: str | None = None,
) -> OutboxMessage:
    """Queue a card for the agents (their Telegram chat when configured, and the panel)."""
    row = OutboxMessage(
        channel="agents",
        recipient="agents",
        ticket_id=ticket.id if ticket is not None else None,
        kind=kind,
        payload=payload,
        next_attempt_at=now,
        created_at=now,
        dedupe_key=dedupe_key,
    )
    session.add(row)
    return row
