"""The fake Bot API of the end-to-end test and the chaos bench (tests/fakes/bot_api.py), checked
with the product's own Bot (bot/runtime.py `build_bot`) over real HTTP: what it answers, its
getUpdates offsets, the faults it injects and the pace it computes. If the fake lied, the
end-to-end test would prove nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiogram.exceptions import (
    TelegramConflictError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.runtime import build_bot
from tests.fakes.bot_api import TOKEN, FakeBotApi, Faults, _max_in_window
from tickets.settings import Settings


@pytest.fixture
def fake() -> Iterator[FakeBotApi]:
    with FakeBotApi() as f:
        yield f


def _run(fake: FakeBotApi, work: Any) -> Any:
    """`work(bot)` with the product's Bot pointed at the fake, on a loop of this thread."""

    async def go() -> Any:
        settings = Settings(
            telegram_token=TOKEN,
            telegram_api_url=fake.url,
            _env_file=None,
        )
        bot = build_bot(settings)
        try:
            return await work(bot)
        finally:
            await bot.session.close()

    return asyncio.run(go())


def test_messages_reach_the_chat_with_their_buttons_and_edits(fake: FakeBotApi) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="📝 New request", callback_data="m:new")]]
    )

    async def work(bot: Any) -> Any:
        me = await bot.get_me()
        sent = await bot.send_message(chat_id=7, text="Hello <b>you</b>", reply_markup=markup)
        await bot.edit_message_reply_markup(chat_id=7, message_id=sent.message_id)
        return me, sent

    me, sent = _run(fake, work)
    assert me.username == "shop_bot"
    [message] = fake.messages(7)
    assert message.message_id == sent.message_id and message.text == "Hello <b>you</b>"
    assert message.markup is None  # the edit took the buttons away
    calls = [(c.method, c.chat_id) for c in fake.snapshot()]
    assert calls == [("getMe", None), ("sendMessage", 7), ("editMessageReplyMarkup", 7)]


def test_get_updates_gives_what_is_not_confirmed_and_forgets_what_is(fake: FakeBotApi) -> None:
    ids = [fake.message(5, "/start"), fake.message(5, "hello"), fake.message(6, "hi")]

    async def work(bot: Any) -> Any:
        first = await bot.get_updates(offset=0, timeout=0)
        again = await bot.get_updates(offset=ids[1], timeout=0)  # confirms the first
        done = await bot.get_updates(offset=ids[2] + 1, timeout=0)
        return first, again, done

    first, again, done = _run(fake, work)
    assert [u.update_id for u in first] == ids
    assert first[0].message.text == "/start" and first[0].message.chat.id == 5
    assert [u.update_id for u in again] == ids[1:]
    assert done == [] and fake.unconfirmed() == 0 and fake.pushed == 3


def test_a_second_poll_ends_the_waiting_one_with_409(fake: FakeBotApi) -> None:
    async def work(bot: Any) -> Any:
        waiting = asyncio.create_task(bot.get_updates(timeout=1))
        await asyncio.sleep(0.3)
        await bot.get_updates(timeout=0)
        return await asyncio.gather(waiting, return_exceptions=True)

    fake.max_poll_seconds = 5
    [outcome] = _run(fake, work)
    assert isinstance(outcome, TelegramConflictError)


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        (Faults(server_error=1.0), TelegramServerError),
        (Faults(retry_after=1.0, retry_after_seconds=3), TelegramRetryAfter),
        (Faults(dropped=1.0), TelegramNetworkError),
    ],
)
def test_a_faulted_call_fails_as_telegrams_would_and_sends_nothing(
    fake: FakeBotApi, faults: Faults, error: type[Exception]
) -> None:
    fake.set_faults(faults)

    async def work(bot: Any) -> Any:
        try:
            await bot.send_message(chat_id=9, text="lost?")
        except error as exc:
            return exc
        return None

    exc = _run(fake, work)
    assert isinstance(exc, error)
    if isinstance(exc, TelegramRetryAfter):
        assert exc.retry_after == 3
    assert fake.messages(9) == [] and fake.applied() == []
    assert [c.outcome for c in fake.snapshot()] != ["ok"]


def test_the_pace_counts_the_busiest_second_chat_and_group_minute() -> None:
    assert _max_in_window([0.0, 0.5, 0.96, 1.5, 2.6], 0.95) == 2
    assert _max_in_window([0.0, 0.5, 0.96, 1.5, 1.6], 0.95) == 3
    assert _max_in_window([], 1.0) == 0


def test_the_pace_of_what_was_applied(fake: FakeBotApi) -> None:
    async def work(bot: Any) -> None:
        for _ in range(3):
            await bot.send_message(chat_id=11, text="fast")
        await bot.send_message(chat_id=-100, text="group")

    _run(fake, work)
    pace = fake.pace()
    assert pace.sends == 4 and pace.max_per_chat_second == 3 and pace.busiest_chat == 11
    assert pace.max_per_group_minute == 1 and not pace.within_limits()
