"""How the customer's handlers are declared, and the filters they use.

Handlers are declared at import on a module's `Handlers` list and registered on a fresh Router by
`make_router()` (bot/routers/customer/__init__.py): a router can belong to one Dispatcher only, and
nothing is built at import (a restart, a test, a second bot). The order of declaration is the
order aiogram tries them, module by module in the order `make_router` names.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiogram import Router
from aiogram.filters import Filter, StateFilter
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


class Handlers:
    """The handlers one module declares, in order, for `register` to put on a router."""

    def __init__(self) -> None:
        self.declared: list[tuple[str, tuple[Any, ...], Callable[..., Any]]] = []

    def _on(self, event: str, *filters: Any) -> Callable[[Handler], Handler]:
        # A bare state (`Intake.order`) is a synchronous filter, which aiogram runs in a worker
        # thread; StateFilter tests the same thing without leaving the event loop.
        checks = tuple(StateFilter(f) if isinstance(f, State) else f for f in filters)

        def declare(handler: Handler) -> Handler:
            self.declared.append((event, checks, handler))
            return handler

        return declare

    def message(self, *filters: Any) -> Callable[[Handler], Handler]:
        """Declare a message handler."""
        return self._on("message", *filters)

    def callback(self, *filters: Any) -> Callable[[Handler], Handler]:
        """Declare a button handler."""
        return self._on("callback_query", *filters)

    def register(self, router: Router) -> None:
        for event, filters, handler in self.declared:
            getattr(router, event).register(handler, *filters)


# Filters are async on purpose: aiogram runs a synchronous filter (a magic `F.text`, a plain
# function) in a worker thread, one thread hop per check on every update.


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
