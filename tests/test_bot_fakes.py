"""The fake Telegram session of tests/fakes/telegram.py, checked against aiogram itself."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.methods import SendMessage

from tests.fakes.telegram import BOT_TOKEN, FakeSession


async def test_fake_session_answers_through_aiogram_check_response() -> None:
    from aiogram.exceptions import TelegramRetryAfter

    session = FakeSession()
    bot = Bot(BOT_TOKEN, session=session)
    message = await bot.send_message(chat_id=7, text="hi")
    assert message.text == "hi"
    session.queue_error(SendMessage, 429, "Too Many Requests", retry_after=3)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(chat_id=7, text="again")
    assert caught.value.retry_after == 3
    assert [r.text for r in session.sent()] == ["hi", "again"]
