"""How a router's handlers are declared: at import, on a module's `Handlers` list, and put on a
fresh Router by the module's `make_router()` (a router can belong to one Dispatcher only, and
nothing is built at import: a restart, a test, a second bot). The order of declaration is the
order aiogram tries them. The one idiom of every router (customer/ and agents.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiogram import Router
from aiogram.filters import StateFilter
from aiogram.fsm.state import State

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
