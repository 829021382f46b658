"""The bot's side of the web chat, built by the composition root (api/app.py) and handed to
api/chat/ as its `Conversation` (api/chat/port.py): the Dispatcher built by the bot's own
factory with the web bot that never calls Telegram (bot/web.py), the bot's texts, and the
customers' keyboards. api/chat/ never imports bot/ (DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiogram.types import Update
from sqlalchemy.orm import Session, sessionmaker

from bot.i18n import Texts
from bot.keyboards import customer_markup
from bot.middlewares import KEPT_FILES
from bot.runtime import build_dispatcher
from bot.web import WEB_NAME, WebSession, WebUpdates, build_web_bot
from tickets.messages.payloads import OutboxPayload
from tickets.messages.scripts import ScriptLibrary
from tickets.policy.rules import Policy
from tickets.settings import Settings
from tickets.storage import StoredFile


class WebConversation:
    """The web chat's conversation (api/chat/port.py `Conversation`)."""

    name = WEB_NAME

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        scripts: ScriptLibrary | None,
        policy: Policy,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.texts = Texts.load()
        self.bot = build_web_bot()
        session = self.bot.session
        assert isinstance(session, WebSession)
        # Where the web bot's getFile finds an upload's bytes, for the one update reading them.
        self._files = session.files
        self.dispatcher = build_dispatcher(
            sessions, settings, scripts, policy, texts=self.texts, clock=clock
        )

    def plain(self, language: str, key: str, **values: Any) -> str:
        return self.texts.plain(language, key, **values)

    def updates(self, chat_id: int, language: str) -> WebUpdates:
        return WebUpdates(self.bot, chat_id, language)

    async def feed(self, update: object, files: dict[str, bytes] | None = None) -> list[StoredFile]:
        assert isinstance(update, Update)
        offered = dict(files or {})
        self._files.update(offered)
        kept: list[StoredFile] = []
        try:
            await self.dispatcher.feed_update(self.bot, update, **{KEPT_FILES: kept})
            return kept
        finally:
            for file_id in offered:
                self._files.pop(file_id, None)

    def markup(self, message: OutboxPayload, ticket_id: int | None) -> dict[str, Any] | None:
        found = customer_markup(self.texts, message, ticket_id)
        return found.model_dump(mode="json", exclude_none=True) if found else None


def build_web_conversation(
    sessions: sessionmaker[Session],
    settings: Settings,
    scripts: ScriptLibrary | None,
    policy: Policy,
    *,
    clock: Callable[[], datetime],
) -> WebConversation:
    """The web chat's conversation (module doc)."""
    return WebConversation(sessions, settings, scripts, policy, clock=clock)
