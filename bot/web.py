"""The web chat's bot: the page's messages become Telegram updates for the same Dispatcher, and
the bot's calls never reach Telegram.

One implementation of the conversation (issue 15): every handler, filter, state and fallback of
bot/routers/customer/ serves the web chat unchanged. What differs is only at the edges:

- In: a text, a button press or a file from the page (api/chat.py) becomes an `Update` from a
  private chat whose id is the browser session's web chat id (tickets/customers.py: a range
  Telegram's ids never reach). Its update id is derived from the page's own id for the message,
  so a message the page sends again (a retry after a network drop) is handled once. Its message
  id grows with the time it came, as Telegram's do: the files of an album are kept in the order
  they were sent by their message ids (tickets/self_service.py `attachments_from`).
- Out: the handlers' answers go to the outbox as for Telegram (bot/replies.py), on the `web`
  channel; the page's event stream delivers them. The few calls a bot makes directly land on
  `WebSession`, which never calls Telegram: a button's answer is done, a file is read from the
  upload the page just made.

The web bot has id 0, which no Telegram bot has: its updates' dedupe keys and its conversations'
state keys never meet the Telegram bot's.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import AnswerCallbackQuery, GetFile, GetMe, TelegramMethod
from aiogram.types import (
    CallbackQuery,
    Chat,
    Document,
    File,
    Message,
    PhotoSize,
    Update,
    User,
    Video,
)

log = logging.getLogger(__name__)

WEB_BOT_ID = 0
# No secret: it is never sent anywhere.
WEB_BOT_TOKEN = f"{WEB_BOT_ID}:web-chat"
# The name a web customer has until an order names them (Telegram gives its users' names).
WEB_NAME = "Web chat"
# Update ids derived from the page's ids: 62 bits. Message ids (31 bits, within Telegram's
# own) count milliseconds, wrapping every 24.8 days (an album spanning the wrap would sort its
# last files first: once in millions).
_UPDATE_BITS = 62
_MESSAGE_SPAN = 1 << 31
# How far behind the last message id a new one may fall and still be taken for "the same
# moment" (a clock that stands still, as in tests, or several messages in one millisecond)
# rather than a wrap.
_BEHIND_MS = 60_000
_last_message_id = 0


def _message_id(now: datetime) -> int:
    """A message id for a message that came at `now` (module doc): later than the last one
    this process gave, when the clock did not move on."""
    global _last_message_id
    found = int(now.timestamp() * 1000) % _MESSAGE_SPAN
    if 0 <= _last_message_id - found < _BEHIND_MS:
        found = (_last_message_id + 1) % _MESSAGE_SPAN
    _last_message_id = found
    return found


class WebSession(BaseSession):
    """The web bot's session: nothing goes to Telegram. Files come from `files` (the page's
    uploads, put there for the one update that reads them)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, bytes] = {}

    async def close(self) -> None:
        """Nothing to close."""

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        if isinstance(method, GetMe):
            return User(id=WEB_BOT_ID, is_bot=True, first_name=WEB_NAME)
        if isinstance(method, GetFile):
            data = self.files.get(method.file_id)
            return File(
                file_id=method.file_id,
                file_unique_id=method.file_id,
                file_size=None if data is None else len(data),
                file_path=method.file_id,
            )
        if isinstance(method, AnswerCallbackQuery):
            # The page stops its own spinner when the press is answered (api/chat.py).
            return True
        # Only when the database could not queue an answer (bot/replies.py, `flush`): the page
        # cannot be reached but through the outbox; the customer sees the apology on return.
        log.warning("web chat: %s not delivered (no outbox row)", type(method).__name__)
        raise TelegramNetworkError(method=method, message="the web chat has no direct line")

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        file_id = url.rsplit("/", 1)[-1]
        data = self.files.get(file_id)
        if data is None:
            raise TelegramNetworkError(method=GetFile(file_id=file_id), message="no such upload")
        yield data


def build_web_bot() -> Bot:
    """The web chat's Bot (module doc)."""
    return Bot(WEB_BOT_TOKEN, session=WebSession(), default=DefaultBotProperties())


def _number(*parts: object, bits: int) -> int:
    digest = hashlib.blake2b("\x00".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - bits)


class WebUpdates:
    """Updates of one web chat, as Telegram would send them from a private chat."""

    def __init__(self, bot: Bot, chat_id: int, language: str) -> None:
        self.bot = bot
        self.chat = Chat(id=chat_id, type="private")
        self.user = User(
            id=chat_id, is_bot=False, first_name=WEB_NAME, language_code=language.split("-")[0]
        )

    def _ids(self, client_id: str, now: datetime) -> tuple[int, int]:
        """The update's id, from the page's id for the message, and its message's id (module
        doc)."""
        return _number(self.chat.id, client_id, bits=_UPDATE_BITS), _message_id(now)

    def _message(self, message_id: int, now: datetime, **fields: Any) -> Message:
        return Message(
            message_id=message_id, date=now, chat=self.chat, from_user=self.user, **fields
        )

    def text(self, client_id: str, text: str, now: datetime) -> Update:
        update_id, message_id = self._ids(client_id, now)
        return Update(update_id=update_id, message=self._message(message_id, now, text=text))

    def press(self, client_id: str, data: str, on_message: int, now: datetime) -> Update:
        """A press on a button under the bot's message `on_message` (its outbox row's id, which
        is the message's id on the page)."""
        update_id = _number(self.chat.id, client_id, bits=_UPDATE_BITS)
        shown = Message(
            message_id=on_message,
            date=now,
            chat=self.chat,
            from_user=User(id=WEB_BOT_ID, is_bot=True, first_name=WEB_NAME),
            text="…",
        )
        query = CallbackQuery(
            id=str(update_id),
            from_user=self.user,
            chat_instance=f"web{self.chat.id}",
            message=shown,
            data=data,
        )
        return Update(update_id=update_id, callback_query=query)

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
    ) -> tuple[Update, str]:
        """A photo, video or document message (several sent at once share `group`, as a
        Telegram album does); and the file id the session must serve its bytes under."""
        update_id, message_id = self._ids(client_id, now)
        file_id = f"web{update_id}"
        fields: dict[str, Any] = {"media_group_id": group}
        if kind == "photo":
            fields["photo"] = [
                PhotoSize(
                    file_id=file_id, file_unique_id=file_id, width=1, height=1, file_size=size
                )
            ]
        elif kind == "video":
            fields["video"] = Video(
                file_id=file_id,
                file_unique_id=file_id,
                width=1,
                height=1,
                duration=0,
                file_size=size,
                mime_type=mime,
                file_name=name,
            )
        else:
            fields["document"] = Document(
                file_id=file_id,
                file_unique_id=file_id,
                file_size=size,
                mime_type=mime,
                file_name=name,
            )
        message = self._message(message_id, now, **fields)
        return Update(update_id=update_id, message=message), file_id
