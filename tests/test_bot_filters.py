"""The routers' async filters accept exactly what the magic filters they replace accepted
(`F.text`, `F.chat.type == "private"` ...): aiogram would run those in a worker thread."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Bot, F, Router
from aiogram.types import (
    CallbackQuery,
    Chat,
    Contact,
    Document,
    InaccessibleMessage,
    Message,
    PhotoSize,
    User,
    Video,
)

from bot.routers import agents, customer
from bot.routers.agents import InChat, RepliesToBot
from bot.routers.customer.filters import Has, PrivateChat, TextMatches

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
USER = User(id=7, is_bot=False, first_name="C")
BOT_ID = 42
PRIVATE = Chat(id=7, type="private")
GROUP = Chat(id=-100, type="supergroup")


def message(chat: Chat = PRIVATE, **fields: Any) -> Message:
    return Message(message_id=1, date=NOW, chat=chat, from_user=USER, **fields)


PHOTO = [PhotoSize(file_id="p", file_unique_id="p", width=1, height=1)]
VIDEO = Video(file_id="v", file_unique_id="v", width=1, height=1, duration=1)
DOCUMENT = Document(file_id="d", file_unique_id="d")
CONTACT = Contact(phone_number="138", first_name="C", user_id=7)

MESSAGES = [
    message(text="hello"),
    message(text=" 1234 "),
    message(text="12345"),
    message(text="x1234"),
    message(text=""),
    message(),
    message(photo=PHOTO),
    message(photo=[]),
    message(video=VIDEO),
    message(document=DOCUMENT),
    message(photo=PHOTO, caption="look"),
    message(contact=CONTACT),
    message(GROUP, text="hi"),
    message(Chat(id=-100, type="group"), text="hi"),
    message(Chat(id=5, type="channel"), text="hi"),
    message(GROUP, text="re", reply_to_message=message(GROUP, text="card")),
    message(
        GROUP,
        text="re",
        reply_to_message=Message(
            message_id=2,
            date=NOW,
            chat=GROUP,
            from_user=User(id=BOT_ID, is_bot=True, first_name="B"),
            text="card",
        ),
    ),
]


def query(message: Message | InaccessibleMessage | None) -> CallbackQuery:
    return CallbackQuery(
        id="1", from_user=USER, chat_instance="c", message=message, data="nav:done"
    )


QUERIES = [
    query(message(text="…")),
    query(message(GROUP, text="…")),
    query(InaccessibleMessage(chat=PRIVATE, message_id=1)),
    query(InaccessibleMessage(chat=GROUP, message_id=1)),
    query(None),
]


@pytest.mark.parametrize(
    ("ours", "magic"),
    [
        (Has("text"), F.text),
        (Has("contact"), F.contact),
        (Has("photo", "video", "document"), F.photo | F.video | F.document),
        (TextMatches(r"^\s*\d{4}\s*$"), F.text.regexp(r"^\s*\d{4}\s*$")),
        (PrivateChat(), F.chat.type == "private"),
        (InChat(GROUP.id), F.chat.id == GROUP.id),
    ],
)
async def test_message_filters_accept_what_the_magic_filter_did(ours: Any, magic: Any) -> None:
    for m in MESSAGES:
        assert await ours(m) == bool(magic.resolve(m)), m


@pytest.mark.parametrize(
    ("ours", "magic"),
    [
        (PrivateChat(), F.message.chat.type == "private"),
        (InChat(GROUP.id), F.message.chat.id == GROUP.id),
    ],
)
async def test_button_filters_accept_what_the_magic_filter_did(ours: Any, magic: Any) -> None:
    for q in QUERIES:
        assert await ours(q) == bool(magic.resolve(q)), q


async def test_replies_to_bot_is_a_reply_to_one_of_the_bots_own_messages() -> None:
    bot = Bot(f"{BOT_ID}:TEST")
    found = [await RepliesToBot()(m, bot) for m in MESSAGES]
    assert found == [False] * (len(MESSAGES) - 1) + [True]


@pytest.mark.parametrize(
    "router",
    [customer.make_router(), agents.make_router(chat_id=GROUP.id)],
    ids=["customer", "agents"],
)
def test_no_filter_of_the_routers_leaves_the_event_loop(router: Router) -> None:
    """aiogram runs a synchronous filter (a magic F, a bare State, a plain function) in a worker
    thread on every update that reaches it: every filter here is async."""
    for observer in (router.message, router.callback_query):
        checks = list(observer._handler.filters or [])
        checks += [f for handler in observer.handlers for f in handler.filters or []]
        assert checks
        for check in checks:
            assert check.awaitable, f"{router.name}: {check.callback!r} is synchronous"
