"""The customer router's filters (async on purpose: aiogram runs a synchronous filter, a magic
`F.text` or a plain function, in a worker thread, one thread hop per check on every update)."""

from __future__ import annotations

import re

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message


class PrivateChat(Filter):
    """The update comes from a private chat: the message's chat, or the chat of the message a
    button was pressed under (as `F.chat.type == "private"` / `F.message.chat.type == ...`)."""

    async def __call__(self, event: Message | CallbackQuery) -> bool:
        message = event if isinstance(event, Message) else event.message
        return message is not None and message.chat.type == "private"


class Has(Filter):
    """The message carries at least one of these fields, non-empty (as `F.text`, or
    `F.photo | F.video | F.document`)."""

    def __init__(self, *fields: str) -> None:
        self.fields = fields

    async def __call__(self, message: Message) -> bool:
        return any(getattr(message, name) for name in self.fields)


class TextMatches(Filter):
    """The message's text matches `pattern` from its start (as `F.text.regexp(pattern)`)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)

    async def __call__(self, message: Message) -> bool:
        return message.text is not None and self.pattern.match(message.text) is not None
