"""The HTTP session the bot talks to Telegram with: aiogram's aiohttp one, with the reply
models kept alive.

aiogram parses every reply with the generic model `Response[T]` (T: what the method returns),
written out on each call. pydantic caches a parametrized generic only weakly, so once a garbage
collection has taken the last reply the next one built the model class again: milliseconds of
schema building on the event loop, on every getUpdates and sendMessage of a flood, while
HTTP requests waited. Here each `Response[T]` is made once and kept for the process.
"""

from __future__ import annotations

import threading
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

# One entry per kind of reply (a method's return type): a bounded set.
_RESPONSE_TYPES: dict[Any, Any] = {}
_lock = threading.Lock()


def keep_response_type(returning: Any) -> None:
    """Make `Response[returning]` once and keep it, so pydantic's weak cache always has it."""
    if returning in _RESPONSE_TYPES:
        return
    with _lock:
        if returning not in _RESPONSE_TYPES:
            _RESPONSE_TYPES[returning] = Response[returning]


class BotSession(AiohttpSession):
    """aiogram's aiohttp session, whose reply models are built once (module doc)."""

    def check_response(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        status_code: int,
        content: str,
    ) -> Response[TelegramType]:
        keep_response_type(method.__returning__)
        return super().check_response(bot, method, status_code, content)
