"""Telegram's 30 messages a second for the bot, held by two delivery workers together (two
processes: each its own engine, pacer pool, thread and event loop; one of them stalls now
and then) on PostgreSQL, counted where Telegram would count them: by the fake Bot API over
HTTP, from its arrival times.

PostgreSQL only (SQLite runs one process, its pace in memory): skipped in the SQLite pass."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.delivery import DeliveryConfig, DeliveryWorker
from bot.i18n import Texts
from tests.conftest import PG_URL
from tests.fakes.bot_api import TOKEN, FakeBotApi
from tickets.db import make_engine, make_sessionmaker, unit_of_work
from tickets.models import OutboxMessage, utcnow
from tickets.settings import Settings

pytestmark = pytest.mark.skipif(not PG_URL, reason="several processes need PostgreSQL")

# Enough messages for a few seconds at 30/s, each to a chat of its own (the bot's rate is
# the only limit that binds), so two unpaced workers would show about 60 in a second.
CHATS = 150


def test_two_workers_keep_thirty_a_second_together(fresh_db_url: str, tmp_path: Any) -> None:
    engine = make_engine(fresh_db_url)
    with unit_of_work(make_sessionmaker(engine)) as s:
        s.add_all(
            OutboxMessage(
                channel="telegram",
                recipient=str(9000 + chat),
                kind="notice",
                payload={"text": f"hello {chat}"},
                next_attempt_at=utcnow(),
            )
            for chat in range(CHATS)
        )
    engine.dispose()
    settings = Settings(
        database_url=fresh_db_url, telegram_token=TOKEN, media_dir=tmp_path, _env_file=None
    )
    # Small batches: both workers keep claiming while the other sends.
    config = DeliveryConfig(batch_size=20, idle_seconds=0.05)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def process(api: FakeBotApi, stalls: bool) -> None:
        own = make_engine(fresh_db_url)
        session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
        worker = DeliveryWorker(
            bot=Bot(TOKEN, session=session),
            sessions=make_sessionmaker(own),
            settings=settings,
            config=config,
            texts=Texts.load(),
        )
        barrier.wait()

        async def stall() -> None:
            # A busy loop now and then (a big page rendered, a long GC pause): the sends
            # whose slots pass meanwhile must not go out together when it ends.
            while True:
                await asyncio.sleep(0.4)
                time.sleep(0.25)

        async def drain() -> None:
            staller = asyncio.create_task(stall()) if stalls else None
            try:
                for _ in range(400):
                    await worker.drain()
                    if len(api.applied()) >= CHATS:
                        return
                    await asyncio.sleep(0.05)
            finally:
                if staller is not None:
                    staller.cancel()
                await worker.pacer.close()
                await worker.bot.session.close()

        try:
            asyncio.run(drain())
        except BaseException as exc:  # shown by the assertion below
            errors.append(exc)
        finally:
            own.dispose()

    with FakeBotApi() as api:
        threads = [threading.Thread(target=process, args=(api, n == 0)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert not errors, errors
        pace = api.pace()
    assert pace.sends == CHATS
    # Telegram's limit for the bot, over every window of a second: both workers together.
    assert pace.max_per_second <= 30, pace
