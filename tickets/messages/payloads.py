"""The outbox's payloads as typed values: one model per kind of row, read from a row's stored
JSON by `load` and written to it by `dump`, the only two places that see the dict.

Which model a row holds follows from its channel and kind (a discriminated union whose
discriminator lives on the row, not in the JSON: `model_for`):

- to a customer (Telegram, the web chat): a `Notice` (kind "notice", tickets/messages/notices.py),
  an agent's `Reply` (kind "reply", tickets/cases/conversation.py), the bot's own `BotAnswer`
  (kind "bot_answer", bot/replies.py), and on the web chat the customer's `WebEcho` (kind
  "web_echo", api/chat);
- to the agents' chat: an `AgentCard`, or `CardTaken` (kind "card.taken": the case's earlier
  cards say who took it);
- to the shop's webhooks: a `WebhookDelivery` (tickets/webhooks.py).

The stored JSON keeps its shape: `dump` writes exactly the keys a writer set (`exclude_unset`),
as the dicts did before, and every model keeps keys it does not know (`extra="allow"`): a row
written by an older or newer version loads, and is written back with them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, overload

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)

# Kinds of rows (OutboxMessage.kind) whose payload is known by kind.
NOTICE = "notice"
REPLY = "reply"
BOT_ANSWER = "bot_answer"
WEB_ECHO = "web_echo"
# The kind of an agents' row that does not post a card but updates the case's earlier cards in
# the agents' chat: taken, by whom (payload: number, agent), no "take it" any more.
CARD_TAKEN = "card.taken"

# Channels whose rows are known by channel (any kind).
AGENTS = "agents"
WEBHOOK = "webhook"


class Payload(BaseModel):
    """What every payload shares: unknown keys kept (module doc), assignments checked, and
    why the row is never sent, when no channel of its recipient is delivered (a reason code:
    tickets/messages/outbox.py's WHY)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    undeliverable: str | None = None


class FileRef(Payload):
    """A file in the attachment store that a reply carries (tickets/storage.py's key)."""

    kind: str = "document"  # photo | video | document
    storage_key: str
    name: str | None = None


class CustomerMessage(Payload):
    """A message rendered for a customer: its text (Telegram HTML when `parse_mode` says so),
    in their language, and the script it came from (what they type next is read against its
    words). A row of a kind this version does not know, to a customer, loads as this."""

    language: str | None = None
    text: str | None = None
    parse_mode: str | None = None
    script: str | None = None


class Notice(CustomerMessage):
    """A notice from a script. `keyboard` names the buttons under it (bot/keyboards.py's
    customer_markup), for the case `case_no`. Without a script library (a bare service call)
    it carries the script's `variables` instead of a text."""

    keyboard: str | None = None  # satisfaction | return_shipping | refused_goods
    case_no: str | None = None
    variables: dict[str, str] | None = None


class Reply(CustomerMessage):
    """One Telegram message of an agent's reply (the case's message `message_id`): its text,
    or one of its files, with the text as caption when short."""

    message_id: int | None = None
    attachment: FileRef | None = None


class BotAnswer(Payload):
    """The bot's answer in a conversation: a Bot API method and its parameters, rebuilt by the
    delivery worker (bot/delivery.py) or drawn by the web chat's page (api/chat)."""

    method: str
    params: dict[str, Any] = {}


class EchoFile(Payload):
    kind: str = "document"
    name: str = ""


class KeptFile(Payload):
    """Where the bot kept a web chat customer's file (the page shows a photo's thumbnail)."""

    key: str
    thumb: str | None = None
    mime: str | None = None


class WebEcho(Payload):
    """The web chat customer's own message, shown back in their conversation: a text, or a
    file's kind and name, with where the bot kept it once it has (`stored`, api/chat)."""

    text: str = ""
    file: EchoFile | None = None
    stored: KeptFile | None = None


class AgentCard(Payload):
    """A card in the agents' chat: its text and, for a case, the case's number (its buttons:
    take it, open in the panel). Cards carry more facts for machines (group, priority ...),
    kept as they are. `telegram_message_id`: the message it became (its later edits)."""

    type: str | None = None
    number: str | None = None
    case_no: str | None = None  # the number's key on cards of older versions
    text: str | None = None
    parse_mode: str | None = None
    telegram_message_id: int | None = None

    @property
    def case_number(self) -> str | None:
        return self.number or self.case_no or None


class CardTaken(Payload):
    """The case `number` was taken by `agent`: its cards say so (see CARD_TAKEN)."""

    number: str = ""
    agent: str | None = None


class WebhookDelivery(Payload):
    """One request to a shop's webhook subscription: `body` is sent as it is (it is what the
    signature covers), `webhook_id` its id (kept by a replay, whose row names the original)."""

    subscription_id: int = 0
    webhook_id: str
    body: dict[str, Any]
    replay_of: int | None = None

    @property
    def case_number(self) -> str | None:
        """The number of the case the delivery is about, if any."""
        data = self.body.get("data")
        case = data.get("case") if isinstance(data, dict) else None
        number = case.get("number") if isinstance(case, dict) else None
        return str(number) if number else None


OutboxPayload = (
    Notice | Reply | CustomerMessage | BotAnswer | WebEcho | AgentCard | CardTaken | WebhookDelivery
)

CUSTOMER_KINDS: dict[str, type[OutboxPayload]] = {
    NOTICE: Notice,
    REPLY: Reply,
    BOT_ANSWER: BotAnswer,
    WEB_ECHO: WebEcho,
}


def model_for(channel: str, kind: str) -> type[OutboxPayload]:
    """The model of a row on `channel` of `kind` (a customer's row of a kind this version does
    not know: the text every customer message has, as the worker always sent it)."""
    if channel == WEBHOOK:
        return WebhookDelivery
    if channel == AGENTS:
        return CardTaken if kind == CARD_TAKEN else AgentCard
    return CUSTOMER_KINDS.get(kind, CustomerMessage)


def load(*, channel: str, kind: str, data: Mapping[str, Any] | None) -> OutboxPayload:
    """A row's payload from its stored JSON. Raises ValueError (pydantic's ValidationError
    is one) for a payload that is not its kind's."""
    return model_for(channel, kind).model_validate(dict(data or {}))


class Stored(Protocol):
    """An outbox row, or a copy of one's values (the delivery worker's claim)."""

    @property
    def channel(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...


P = TypeVar("P", bound=Payload)


@overload
def of(row: Stored) -> OutboxPayload: ...
@overload
def of(row: Stored, model: type[P]) -> P: ...
def of(row: Stored, model: type[Payload] | None = None) -> Payload:
    """`load` for a row; with `model`, the payload the caller knows the row holds (its query
    chose the channel or kind), or ValueError."""
    message = load(channel=row.channel, kind=row.kind, data=row.payload)
    if model is not None and not isinstance(message, model):
        raise ValueError(f"outbox {row.channel}/{row.kind} row holds no {model.__name__}")
    return message


def readable(row: Stored) -> OutboxPayload | None:
    """`of`, or None (logged) for a row whose payload does not read as its kind: for readers
    that show, summarise or settle many rows, where one damaged row must not stop the rest."""
    try:
        return of(row)
    except ValueError:
        log.warning("an outbox %s/%s row does not read as its kind", row.channel, row.kind)
        return None


def dump(payload: Payload) -> dict[str, Any]:
    """The stored JSON of a payload: the keys set on it (module doc), as JSON values."""
    return payload.model_dump(mode="json", exclude_unset=True)
