"""Telegram faked at the HTTP-session boundary (as aiogram's own tests do), and a customer who
talks to the real Dispatcher through it, for the tests of the bot (tests/test_bot_fakes.py
checks the fake itself).

`FakeSession` is an aiogram `BaseSession`: every Bot API call is recorded, and answered either
by a queued response (an error status with its JSON, or a network error) or by a plausible
default result, always through aiogram's own `check_response`, so errors are the exceptions
aiogram raises for real answers. Files are served from a dict by their `file_path`.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections import defaultdict, deque
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    GetFile,
    GetMe,
    GetUpdates,
    SendDocument,
    SendMessage,
    SendPhoto,
    SendVideo,
    TelegramMethod,
)
from aiogram.types import (
    CallbackQuery,
    Chat,
    Contact,
    Document,
    InlineKeyboardMarkup,
    Message,
    PhotoSize,
    Sticker,
    Update,
    User,
)
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import DeliveryConfig, DeliveryWorker
from bot.fsm_storage import DatabaseStorage
from bot.runtime import build_dispatcher
from tests.factories import NOW
from tickets.policy.rules import Policy

BOT_TOKEN = "42:TEST"


class FakeSession(BaseSession):
    """Records requests; answers from per-method queues, else with a default result."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        # What `times` reads: a test of pacing passes the worker's virtual clock.
        self.clock = clock
        self.requests: list[TelegramMethod[Any]] = []
        self.queued: dict[type, deque[Any]] = defaultdict(deque)
        self.files: dict[str, bytes] = {}
        # When each request was made (seconds on `clock`), for pacing checks.
        self.times: list[float] = []
        self._message_id = 10_000

    # -- test controls

    def queue(self, method: type, answer: Any) -> None:
        """The next call of `method` gets `answer`: (status, json dict) or an exception."""
        self.queued[method].append(answer)

    def queue_error(self, method: type, status: int, description: str, **params: Any) -> None:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if params:
            body["parameters"] = params
        self.queue(method, (status, body))

    def sent(self, method: type = SendMessage) -> list[Any]:
        return [r for r in self.requests if isinstance(r, method)]

    # -- BaseSession

    async def close(self) -> None:
        """Nothing to close."""

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        self.requests.append(method)
        self.times.append(self.clock())
        if isinstance(method, GetUpdates):
            # Long polling waits on the server; without a pause the loop would spin.
            await asyncio.sleep(0.01)
        queue = self.queued.get(type(method))
        if queue:
            answer = queue.popleft()
            if isinstance(answer, BaseException):
                raise answer
            status, body = answer
        else:
            status, body = 200, {"ok": True, "result": self._default(bot, method)}
        response = self.check_response(
            bot=bot, method=method, status_code=status, content=json.dumps(body)
        )
        return response.result

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        for path, data in self.files.items():
            if url.endswith("/" + path):
                yield data
                return
        raise TelegramNetworkError(method=GetFile(file_id="?"), message=f"no file at {url}")

    def _default(self, bot: Bot, method: TelegramMethod[Any]) -> Any:
        if isinstance(method, SendMessage | SendPhoto | SendDocument | SendVideo):
            self._message_id += 1
            sent: dict[str, Any] = {
                "message_id": self._message_id,
                "date": 0,
                "chat": {"id": method.chat_id, "type": "private"},
                "from": {"id": bot.id, "is_bot": True, "first_name": "Bot"},
            }
            if isinstance(method, SendMessage):
                return {**sent, "text": method.text}
            return {**sent, "caption": method.caption}
        if isinstance(method, GetMe):
            return {"id": bot.id, "is_bot": True, "first_name": "Bot", "username": "tbot"}
        if isinstance(method, GetUpdates):
            return []
        if isinstance(method, GetFile):
            path = f"files/{method.file_id}"
            return {
                "file_id": method.file_id,
                "file_unique_id": "u" + method.file_id,
                "file_size": len(self.files.get(path, b"")),
                "file_path": path,
            }
        return True


def jpeg(color: str = "red", size: tuple[int, int] = (64, 48), *, gps: bool = True) -> bytes:
    """A real JPEG, with a GPS position in its EXIF when `gps`."""
    img = Image.new("RGB", size, color)
    out = io.BytesIO()
    exif = img.getexif()
    if gps:
        exif[0x0110] = "PhoneCam"
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[1] = "N"
        gps_ifd[2] = (31.0, 14.0, 0.0)
    img.save(out, "JPEG", exif=exif)
    return out.getvalue()


def colour_of(img: Image.Image) -> tuple[int, int, int]:
    """The colour of a one-colour picture (`jpeg`): its pixel at (5, 5), as RGB."""
    pixel = img.convert("RGB").getpixel((5, 5))
    assert isinstance(pixel, tuple) and len(pixel) == 3, pixel
    return pixel[0], pixel[1], pixel[2]


def colour_name(img: Image.Image) -> str:
    """ "red", "green" or "blue": the strongest channel of `colour_of`."""
    r, g, b = colour_of(img)
    return max((r, "red"), (g, "green"), (b, "blue"))[1]


# The delivery worker in tests: Telegram's pace is tested in test_bot_delivery, not waited for.
FAST = DeliveryConfig(rate_per_second=1000, per_chat_interval=0.0, group_interval=0.0)


def dispatcher(
    sessions: sessionmaker[Session],
    settings: Any,
    scripts: Any,
    clock: Callable[[], datetime] = lambda: NOW,
) -> Dispatcher:
    """The bot's Dispatcher as the runtime builds it, its state in the test database."""
    return build_dispatcher(
        sessions,
        settings,
        scripts,
        Policy(),
        storage=DatabaseStorage(sessions),
        events_isolation=SimpleEventIsolation(),
        clock=clock,
    )


def with_delivery(
    dp: Dispatcher,
    bot: Bot,
    sessions: sessionmaker[Session],
    settings: Any,
    clock: Callable[[], datetime],
) -> Dispatcher:
    """`dp` with its delivery worker (as `BotRuntime` sets it), which `feed_and_deliver` runs."""
    dp["delivery"] = DeliveryWorker(
        bot=bot, sessions=sessions, settings=settings, config=FAST, clock=clock
    )
    return dp


async def feed_and_deliver(dp: Dispatcher, bot: Bot, update: Update) -> list[Any]:
    """Feed one update through the real Dispatcher and deliver the outbox (the worker the
    runtime would wake), as Telegram would see it: the Bot API calls the update caused, in
    order (what was queued before it is delivered first and left out)."""
    session = bot.session
    assert isinstance(session, FakeSession)
    worker = dp.workflow_data.get("delivery")
    if worker is not None:
        await worker.drain()  # what was queued before (a case opened elsewhere) is not ours
    before = len(session.requests)
    await dp.feed_update(bot, update)
    if worker is not None:
        await worker.drain()
    return session.requests[before:]


STICKER = Sticker(
    file_id="st",
    file_unique_id="ust",
    type="regular",
    width=512,
    height=512,
    is_animated=False,
    is_video=False,
)


def photo_sizes(session: FakeSession, n: str, data: bytes) -> list[PhotoSize]:
    """The sizes Telegram lists for a photo (smallest first), their files served by `session`:
    a thumbnail and the original, which holds `data`."""
    session.files[f"files/small{n}"] = jpeg("gray", (8, 6), gps=False)
    session.files[f"files/big{n}"] = data
    return [
        PhotoSize(file_id=f"small{n}", file_unique_id=f"us{n}", width=8, height=6),
        PhotoSize(
            file_id=f"big{n}", file_unique_id=f"ub{n}", width=64, height=48, file_size=len(data)
        ),
    ]


class Customer:
    """One Telegram user in a private chat with the bot, feeding updates to a Dispatcher."""

    def __init__(
        self,
        dp: Dispatcher,
        bot: Bot,
        *,
        user_id: int = 5001,
        language: str = "zh-CN",
        name: str = "Li Lei",
        first_update: int = 1,
    ) -> None:
        self.dp = dp
        self.bot = bot
        self.user = User(
            id=user_id, is_bot=False, first_name=name, language_code=language.split("-")[0]
        )
        self.chat = Chat(id=user_id, type="private")
        self.update_id = first_update
        self.message_id = 100

    @property
    def session(self) -> FakeSession:
        session = self.bot.session
        assert isinstance(session, FakeSession)
        return session

    def _next_message(self, **fields: Any) -> Message:
        self.message_id += 1
        return Message(
            message_id=self.message_id,
            date=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
            chat=self.chat,
            from_user=self.user,
            **fields,
        )

    async def feed(self, update: Update) -> list[Any]:
        """Feed one update through the real Dispatcher, then let its delivery worker send what
        was queued; the Bot API calls it caused."""
        return await feed_and_deliver(self.dp, self.bot, update)

    def _update(self, **fields: Any) -> Update:
        self.update_id += 1
        return Update(update_id=self.update_id, **fields)

    async def send(self, **fields: Any) -> list[Any]:
        return await self.feed(self._update(message=self._next_message(**fields)))

    async def text(self, text: str) -> list[Any]:
        return await self.send(text=text)

    async def press(self, data: CallbackData | str) -> list[Any]:
        packed = data.pack() if isinstance(data, CallbackData) else data
        query = CallbackQuery(
            id=f"cq{self.update_id + 1}",
            from_user=self.user,
            chat_instance="ci",
            message=Message(
                message_id=9_999,
                date=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
                chat=self.chat,
                from_user=User(id=self.bot.id, is_bot=True, first_name="Bot"),
                text="…",
            ),
            data=packed,
        )
        return await self.feed(self._update(callback_query=query))

    def file(self, file_id: str, data: bytes) -> None:
        self.session.files[f"files/{file_id}"] = data

    def photo_message(
        self, data: bytes, *, media_group_id: str | None = None, caption: str | None = None
    ) -> Message:
        """A photo message: a thumbnail size and the original; only the original holds `data`."""
        sizes = photo_sizes(self.session, f"{self.user.id}-{self.message_id + 1}", data)
        return self._next_message(photo=sizes, media_group_id=media_group_id, caption=caption)

    async def photo(
        self, data: bytes, *, media_group_id: str | None = None, caption: str | None = None
    ) -> list[Any]:
        return await self.feed(
            self._update(
                message=self.photo_message(data, media_group_id=media_group_id, caption=caption)
            )
        )

    async def document(self, data: bytes, *, name: str, mime: str) -> list[Any]:
        n = self.message_id + 1
        self.file(f"doc{n}", data)
        doc = Document(
            file_id=f"doc{n}",
            file_unique_id=f"ud{n}",
            file_name=name,
            mime_type=mime,
            file_size=len(data),
        )
        return await self.send(document=doc)

    async def contact(self, phone: str, *, own: bool = True) -> list[Any]:
        contact = Contact(
            phone_number=phone,
            first_name=self.user.first_name,
            user_id=self.user.id if own else self.user.id + 1,
        )
        return await self.send(contact=contact)

    async def sticker(self) -> list[Any]:
        return await self.send(sticker=STICKER)


class GroupMember:
    """Someone in the agents' group chat, feeding updates to a Dispatcher: replies to the
    bot's messages and presses on their buttons."""

    def __init__(
        self,
        dp: Dispatcher,
        bot: Bot,
        *,
        chat_id: int,
        user_id: int = 777,
        name: str = "Wang",
        first_update: int = 50_000,
    ) -> None:
        self.dp = dp
        self.bot = bot
        self.user = User(id=user_id, is_bot=False, first_name=name, language_code="zh")
        self.chat = Chat(id=chat_id, type="supergroup", title="Agents")
        self.update_id = first_update
        self.message_id = 500

    @property
    def session(self) -> FakeSession:
        session = self.bot.session
        assert isinstance(session, FakeSession)
        return session

    def bots_message(
        self, text: str, markup: InlineKeyboardMarkup | None = None, message_id: int = 9_000
    ) -> Message:
        """A message the bot posted in the group (a card), as Telegram shows it back."""
        return Message(
            message_id=message_id,
            date=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
            chat=self.chat,
            from_user=User(id=self.bot.id, is_bot=True, first_name="Bot"),
            text=text,
            reply_markup=markup,
        )

    async def feed(self, update: Update) -> list[Any]:
        return await feed_and_deliver(self.dp, self.bot, update)

    def _update(self, **fields: Any) -> Update:
        self.update_id += 1
        return Update(update_id=self.update_id, **fields)

    async def say(self, text: str, *, reply_to: Message | None = None) -> list[Any]:
        return await self.send(text=text, reply_to_message=reply_to)

    async def photo(
        self, data: bytes, *, caption: str | None = None, reply_to: Message | None = None
    ) -> list[Any]:
        """A photo posted in the group (with a caption, as a reply to `reply_to` if given)."""
        sizes = photo_sizes(self.session, f"{self.user.id}-{self.message_id + 1}", data)
        return await self.send(photo=sizes, caption=caption, reply_to_message=reply_to)

    async def send(self, **fields: Any) -> list[Any]:
        self.message_id += 1
        message = Message(
            message_id=self.message_id,
            date=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
            chat=self.chat,
            from_user=self.user,
            **fields,
        )
        return await self.feed(self._update(message=message))

    async def press(self, data: CallbackData | str, on: Message) -> list[Any]:
        packed = data.pack() if isinstance(data, CallbackData) else data
        query = CallbackQuery(
            id=f"gq{self.update_id + 1}",
            from_user=self.user,
            chat_instance="agents",
            message=on,
            data=packed,
        )
        return await self.feed(self._update(callback_query=query))


def texts_of(requests: list[Any]) -> list[str]:
    """The texts of the messages sent among `requests`."""
    return [r.text for r in requests if isinstance(r, SendMessage)]


def buttons_of(requests: list[Any]) -> list[str]:
    """The callback data of every inline button sent (messages and edited keyboards)."""
    out: list[str] = []
    for r in requests:
        if isinstance(r, SendMessage | EditMessageReplyMarkup) and isinstance(
            r.reply_markup, InlineKeyboardMarkup
        ):
            out.extend(b.callback_data or "" for row in r.reply_markup.inline_keyboard for b in row)
    return out


def answered_callbacks(requests: list[Any]) -> int:
    return sum(1 for r in requests if isinstance(r, AnswerCallbackQuery))
