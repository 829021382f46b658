"""Who acts and with what: the Actor, the SYSTEM actor and the Context every core call
takes beside the session (the rules, the clock, the shop's zone, its channels and limits,
how each channel cuts a reply). A module of its own so that cases, messages and clocks can
all name it without importing one another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from tickets.limits import DEFAULTS, Limits
from tickets.messages.outbox import DEFAULT_CHANNELS
from tickets.messages.parts import PartsRule
from tickets.messages.scripts import ScriptLibrary
from tickets.models import (
    Agent,
    Role,
)
from tickets.policy.rules import Policy


@dataclass(frozen=True)
class Actor:
    """Who is acting: an agent (with their row), the customer, or the system (a rule, the
    scheduler). `label` is what the event log shows."""

    kind: str  # agent | customer | system
    agent: Agent | None = None
    customer_id: int | None = None
    rule: str | None = None

    @property
    def label(self) -> str:
        if self.agent is not None:
            return f"agent:{self.agent.username}"
        if self.kind == "customer":
            return "customer"
        return f"system:{self.rule}" if self.rule else "system"

    @property
    def role(self) -> Role | None:
        return Role(self.agent.role) if self.agent is not None else None


SYSTEM = Actor(kind="system")


@dataclass
class Context:
    """What a service call needs beyond the session: the rules, the clock, the shop's zone."""

    policy: Policy
    now: datetime
    tz: ZoneInfo
    case_prefix: str = "AS"
    scripts: ScriptLibrary | None = None
    shop_name: str = "Demo Shop"
    # The channels something delivers in this deployment (tickets/messages/outbox.py): a message to
    # a customer none of whose chats is among them is written undeliverable, never left waiting.
    channels: frozenset[str] = DEFAULT_CHANNELS
    # Sizes checked before any work (the shop's AFTERSALES_LIMIT_* settings).
    limits: Limits = DEFAULTS
    # How each channel cuts a reply into its messages (tickets/messages/parts.py), given by the
    # front ends that know the channel (bot/render.py for Telegram); `together` for the rest.
    parts: Mapping[str, PartsRule] = field(default_factory=dict)
