"""POST /telegram/webhook: where Telegram delivers updates when AFTERSALES_WEBHOOK_URL is set.

The HTTP side only: Telegram's secret-token header is checked, the body read, and handed to the
bot's runtime (`BotRuntime.feed_webhook_update`, bot/runtime.py), which parses it and handles it
on the bot's own loop before the answer (it is stored and deduplicated by the bot's
middleware, so a redelivery after a crash is safe). The body's size limit and an early check
of the same header, before any of the body is read, are BodyGuard's (api/app.py, api/guard.py).

Nothing here imports aiogram: the server without a bot token never loads it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response, status

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)

# Handles one update (the request's body); False when it is not a Telegram update.
FeedUpdate = Callable[[bytes], Awaitable[bool]]


def secret_matches(given: str, secret: str | None) -> bool:
    """Whether a request's header is the webhook's secret (none set: nothing matches)."""
    return bool(secret) and hmac.compare_digest(given.encode(), (secret or "").encode())


def webhook_router(feed: FeedUpdate, *, secret: str | None) -> APIRouter:
    """The webhook's route: 403 without the secret, 400 for a body that is not an update, else
    200 once `feed` has handled it (Telegram redelivers anything else)."""
    router = APIRouter(tags=["telegram"])

    @router.post(WEBHOOK_PATH, include_in_schema=False)
    async def telegram_webhook(request: Request) -> Response:
        if not secret_matches(request.headers.get(SECRET_HEADER, ""), secret):
            return Response(status_code=status.HTTP_403_FORBIDDEN)
        if not await feed(await request.body()):
            return Response(status_code=status.HTTP_400_BAD_REQUEST)
        return Response(status_code=status.HTTP_200_OK)

    return router
