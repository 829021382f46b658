"""What the web chat needs of the bot, as a port: the composition root (api/app.py) builds the
bot's side (bot/web_chat.py) and hands it to `install_chat`, so api/chat/ never imports bot/
(DESIGN.md: api/ and bot/ meet only in the composition root). Tests may hand in their own.

The values that pass through (updates) are the bot's own: the chat only carries them from
`updates` to `feed`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from tickets.messages.payloads import OutboxPayload
from tickets.storage import StoredFile


class Updates(Protocol):
    """The updates of one web chat (a browser session's chat id, in the page's language)."""

    def text(self, client_id: str, text: str, now: datetime) -> object:
        """A text the customer sent; `client_id` is the page's own id for it (a retry with
        the same id is handled once)."""
        ...

    def press(self, client_id: str, data: str, on_message: int, now: datetime) -> object:
        """A press on a button under the bot's message `on_message` (its outbox row's id)."""
        ...

    def file(
        self,
        client_id: str,
        *,
        kind: str,
        size: int,
        name: str,
        mime: str,
        group: str | None,
        now: datetime,
    ) -> tuple[object, str]:
        """A photo, video or document message; and the file id its bytes are offered under
        (`Conversation.feed`'s `files`)."""
        ...


class Conversation(Protocol):
    """The bot's conversation, for the web chat (module doc)."""

    # The name a web customer has until an order names them.
    name: str

    def plain(self, language: str, key: str, **values: Any) -> str:
        """One of the bot's texts (bot/messages.py and its catalogs), filled in without escaping."""
        ...

    def updates(self, chat_id: int, language: str) -> Updates: ...

    async def feed(self, update: object, files: dict[str, bytes] | None = None) -> list[StoredFile]:
        """Handle one update as the bot handles Telegram's; `files`: the bytes of the files
        it carries, by file id, read by the bot while it handles it. Returns the files the bot
        kept of them (none: refused, or the update was handled before)."""
        ...

    def markup(self, message: OutboxPayload, ticket_id: int | None) -> dict[str, Any] | None:
        """The buttons a notice to a customer carries (the bot's, as Telegram JSON), or None."""
        ...
