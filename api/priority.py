"""ASGI middleware: people's requests in flight are counted (tickets/foreground.py), so the
bot's background work gives way to them. Telegram's webhook posts are the bot's own work and
are not counted."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from tickets.foreground import FOREGROUND


class MarkForeground:
    def __init__(self, app: ASGIApp, *, exclude: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.exclude = exclude

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exclude:
            await self.app(scope, receive, send)
            return
        FOREGROUND.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            FOREGROUND.leave()
