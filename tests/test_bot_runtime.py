"""Running the bot: the Bot for the settings, the webhook endpoint and its secret."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
from aiogram import Bot
from aiogram.methods import GetUpdates
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.telegram_webhook import SECRET_HEADER, WEBHOOK_PATH, webhook_router
from bot.runtime import BotRuntime, build_bot
from bot.session import BotSession
from tests.fakes.telegram import BOT_TOKEN, FakeSession
from tickets.models import InboundUpdate, OutboxMessage
from tickets.policy.rules import Policy

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")


def test_build_bot_uses_a_self_hosted_api_server(settings: Any) -> None:
    settings = settings.model_copy(
        update={"telegram_token": BOT_TOKEN, "telegram_api_url": "http://127.0.0.1:8081/"}
    )
    bot = build_bot(settings)
    assert bot.session.api.api_url(BOT_TOKEN, "getMe") == (
        f"http://127.0.0.1:8081/bot{BOT_TOKEN}/getMe"
    )
    assert build_bot(settings.model_copy(update={"telegram_api_url": None})).session.api.base
    assert bot.id == 42


def _update(update_id: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1795312800,
            "chat": {"id": 5001, "type": "private"},
            "from": {"id": 5001, "is_bot": False, "first_name": "Li", "language_code": "en"},
            "text": "/start",
        },
    }


def test_webhook_checks_the_secret_and_handles_the_update(
    settings: Any, sessions: sessionmaker[Session], scripts: Any
) -> None:
    settings = settings.model_copy(
        update={
            "telegram_token": BOT_TOKEN,
            "webhook_url": "https://shop.example.com/telegram/webhook",
            "webhook_secret": "s3cret-token",
        }
    )
    fake = FakeSession()
    runtime = BotRuntime(
        settings=settings,
        sessions=sessions,
        scripts=scripts,
        policy=Policy(),
        bot=Bot(BOT_TOKEN, session=fake),
    )
    app = FastAPI()
    app.include_router(webhook_router(runtime.feed_webhook_update, secret="s3cret-token"))
    with TestClient(app) as client:
        assert client.post(WEBHOOK_PATH, json=_update(1)).status_code == 403
        bad = client.post(WEBHOOK_PATH, json=_update(1), headers={SECRET_HEADER: "wrong"})
        assert bad.status_code == 403
        assert fake.requests == []
        good = client.post(WEBHOOK_PATH, json=_update(1), headers={SECRET_HEADER: "s3cret-token"})
        assert good.status_code == 200
        again = client.post(WEBHOOK_PATH, json=_update(1), headers={SECRET_HEADER: "s3cret-token"})
        assert again.status_code == 200
        junk = client.post(WEBHOOK_PATH, json={"nope": 1}, headers={SECRET_HEADER: "s3cret-token"})
        assert junk.status_code == 400
        text = client.post(WEBHOOK_PATH, content=b"{", headers={SECRET_HEADER: "s3cret-token"})
        assert text.status_code == 400
    # The answer was queued (the worker is not running here): once, the redelivery did
    # nothing; the worker then sends it.
    with sessions() as s:
        assert s.scalar(select(func.count(InboundUpdate.id))) == 1
        assert s.scalar(select(func.count(OutboxMessage.id))) == 1
    assert fake.sent() == []
    asyncio.run(runtime.worker.drain())
    assert len(fake.sent()) == 1


def test_a_webhook_without_a_secret_setting_refuses_everything(
    settings: Any, sessions: sessionmaker[Session], scripts: Any
) -> None:
    settings = settings.model_copy(update={"telegram_token": BOT_TOKEN})
    runtime = BotRuntime(
        settings=settings,
        sessions=sessions,
        scripts=scripts,
        policy=Policy(),
        bot=Bot(BOT_TOKEN, session=FakeSession()),
    )
    app = FastAPI()
    app.include_router(webhook_router(runtime.feed_webhook_update, secret=None))
    with TestClient(app) as client:
        response = client.post(WEBHOOK_PATH, json=_update(1), headers={SECRET_HEADER: ""})
        assert response.status_code == 403


async def test_runtime_starts_polling_and_the_worker_and_stops(
    settings: Any, sessions: sessionmaker[Session], scripts: Any
) -> None:
    from aiogram.methods import DeleteWebhook, GetUpdates

    settings = settings.model_copy(update={"telegram_token": BOT_TOKEN})
    fake = FakeSession()
    runtime = BotRuntime(
        settings=settings,
        sessions=sessions,
        scripts=scripts,
        policy=Policy(),
        bot=Bot(BOT_TOKEN, session=fake),
    )
    fake.queue(
        GetUpdates,
        (200, {"ok": True, "result": [_update(77)]}),
    )
    await runtime.start()
    import asyncio

    for _ in range(200):
        if fake.sent():
            break
        await asyncio.sleep(0.01)
    await runtime.stop()
    assert any(isinstance(r, DeleteWebhook) for r in fake.requests)
    assert fake.sent(), "the polled /start was answered"


async def test_serve_runs_the_bot_on_a_loop_of_its_own_and_stops_it(
    settings: Any, sessions: sessionmaker[Session], scripts: Any
) -> None:
    """serve's way (own_loop): the polled update is answered from the bot's own thread, not the
    caller's loop, and the thread is gone after the stop."""
    import asyncio
    import threading

    from aiogram.methods import GetUpdates

    settings = settings.model_copy(update={"telegram_token": BOT_TOKEN})
    fake = FakeSession()
    runtime = BotRuntime(
        settings=settings,
        sessions=sessions,
        scripts=scripts,
        policy=Policy(),
        bot=Bot(BOT_TOKEN, session=fake),
    )
    fake.queue(GetUpdates, (200, {"ok": True, "result": [_update(79)]}))
    await runtime.start(own_loop=True)
    assert "bot-loop" in {t.name for t in threading.enumerate()}
    for _ in range(300):
        if fake.sent():
            break
        await asyncio.sleep(0.01)
    await runtime.stop()
    assert fake.sent(), "the polled /start was answered"
    assert "bot-loop" not in {t.name for t in threading.enumerate()}


async def test_polling_survives_telegram_being_unreachable_at_start(
    settings: Any,
    sessions: sessionmaker[Session],
    scripts: Any,
    monkeypatch: Any,
    caplog: Any,
) -> None:
    import asyncio

    from aiogram.exceptions import TelegramNetworkError
    from aiogram.methods import DeleteWebhook, GetUpdates

    monkeypatch.setattr("bot.runtime.POLL_RETRY_SECONDS", 0.01)
    settings = settings.model_copy(update={"telegram_token": BOT_TOKEN})
    fake = FakeSession()
    runtime = BotRuntime(
        settings=settings,
        sessions=sessions,
        scripts=scripts,
        policy=Policy(),
        bot=Bot(BOT_TOKEN, session=fake),
    )
    down = TelegramNetworkError(method=DeleteWebhook(), message="connection refused")
    fake.queue(DeleteWebhook, down)
    fake.queue(GetUpdates, (200, {"ok": True, "result": [_update(78)]}))
    await runtime.start()
    for _ in range(300):
        if fake.sent():
            break
        await asyncio.sleep(0.01)
    await runtime.stop()
    assert sum(isinstance(r, DeleteWebhook) for r in fake.requests) == 2
    assert fake.sent(), "polling started on the second try and answered"
    assert "Telegram polling failed (HTTP Client says - connection refused)" in caplog.text
    assert "Traceback" not in caplog.text  # unreachable is one line, not a stack


def test_the_app_serves_the_webhook_when_the_settings_ask_for_it(
    settings: Any, engine: Any, sessions: sessionmaker[Session], scripts: Any
) -> None:
    from api.app import create_app

    with_bot = settings.model_copy(
        update={
            "telegram_token": BOT_TOKEN,
            "webhook_url": "https://shop.example.com/telegram/webhook",
            "webhook_secret": "s3cret-token",
        }
    )
    app = create_app(with_bot, engine=engine, sessions=sessions, scripts=scripts)
    assert app.state.bot is not None
    client = TestClient(app)  # no lifespan: nothing is sent to Telegram
    assert client.post(WEBHOOK_PATH, json=_update(1)).status_code == 403
    without = create_app(settings, engine=engine, sessions=sessions, scripts=scripts)
    assert without.state.bot is None
    assert TestClient(without).post(WEBHOOK_PATH, json=_update(1)).status_code == 404


def test_the_bots_reply_models_are_built_once_not_after_every_collection() -> None:
    # aiogram parses each reply with `Response[T]`; pydantic keeps that class only weakly, so
    # after a garbage collection the next reply built it again on the event loop (issue 18).
    session = BotSession()
    bot = Bot(BOT_TOKEN, session=session)
    reply = session.check_response(bot, GetUpdates(), 200, '{"ok": true, "result": []}')
    assert reply.result == []
    model = weakref.ref(type(reply))
    del reply
    gc.collect()
    assert model() is not None  # still there: the next reply does not build it again
    again = session.check_response(bot, GetUpdates(), 200, '{"ok": true, "result": []}')
    assert type(again) is model()


async def test_a_5xx_or_429_at_polling_start_is_one_warning_and_a_short_or_told_wait(
    settings: Any, sessions: sessionmaker[Session], scripts: Any, caplog: Any
) -> None:
    """Telegram failing for a moment at polling start (issue 18's chaos run): each failure
    one warning line with no traceback; after a 5xx a short wait (not the 10 s of a refusal),
    after a 429 the wait Telegram asked for; then polling starts and answers."""
    from aiogram.methods import DeleteWebhook, GetUpdates

    settings = settings.model_copy(update={"telegram_token": BOT_TOKEN})
    fake = FakeSession()
    runtime = BotRuntime(
        settings=settings,
        sessions=sessions,
        scripts=scripts,
        policy=Policy(),
        bot=Bot(BOT_TOKEN, session=fake),
    )
    waits: list[float] = []
    pause = runtime._pause

    async def recorded(seconds: float) -> None:
        waits.append(seconds)
        await pause(0.01)

    runtime._pause = recorded  # type: ignore[method-assign]
    fake.queue_error(DeleteWebhook, 502, "Bad Gateway")
    fake.queue_error(DeleteWebhook, 429, "Too Many Requests: retry after 4", retry_after=4)
    fake.queue(GetUpdates, (200, {"ok": True, "result": [_update(79)]}))
    caplog.set_level("INFO")
    await runtime.start()
    for _ in range(300):
        if fake.sent():
            break
        await asyncio.sleep(0.01)
    await runtime.stop()
    assert fake.sent(), "polling started on the third try and answered"
    assert waits[:2] == [1.0, 4.0]
    failures = [r for r in caplog.records if "Telegram polling failed" in r.getMessage()]
    assert [r.levelname for r in failures] == ["WARNING", "WARNING"]
    assert "Traceback" not in caplog.text
    assert not any(r.exc_info for r in caplog.records)
