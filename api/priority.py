"""ASGI middleware: people's requests in flight are counted (tickets/foreground.py), so the
bot's background work gives way to them. Telegram's webhook posts are the bot's own work and
are not counted. A request counts until its answer starts: a stream that stays open (the web
chat's events, a long export) is not a person waiting, and counting it would slow the bot for
as long as a customer keeps the chat open."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tickets.foreground import FOREGROUND


class MarkForeground:
    def __init__(self, app: ASGIApp, *, exclude: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.exclude = exclude

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exclude:
            await self.app(scope, receive, send)
            return
        counted = True
        FOREGROUND.enter()

        async def answering(message: Message) -> None:
            nonlocal counted
            if counted and message["type"] == "http.response.start":
                counted = False
                FOREGROUND.leave()
            await send(message)

        try:
            await self.app(scope, receive, answering)
        finally:
            if counted:
                FOREGROUND.leave()
