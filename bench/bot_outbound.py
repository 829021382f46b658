"""Outbound speed: the delivery worker against a fake Bot API that enforces Telegram's limits
(it answers 429 with retry_after when the bot goes above 30 messages in any second, or above
one message a second to one chat), with a network latency per call.

    python -m bench.bot_outbound [--messages 300] [--chats 120] [--latency 0.05]

Goal (issue 6): at least 95 % of 30 messages/s sustained, zero 429s provoked, never more than
one message a second to one chat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import deque
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import SendMessage, TelegramMethod

from bot.delivery import DeliveryConfig, DeliveryWorker
from tickets.db import make_engine, make_sessionmaker, unit_of_work, upgrade
from tickets.models import OutboxMessage
from tickets.settings import Settings

BOT_TOKEN = "42:BENCH"
GLOBAL_LIMIT = 30  # messages in any one-second window
CHAT_WINDOW = 1.0  # seconds between two messages to one chat


class LimitedBotApi(BaseSession):
    """Telegram as far as limits go: a sliding one-second window for the bot, one message per
    second per chat; above them a 429 with retry_after, as Telegram answers."""

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency
        self.window: deque[float] = deque()
        self.last_to_chat: dict[int, float] = {}
        self.accepted: list[tuple[float, int]] = []
        self.refused = 0
        self.closest_same_chat = float("inf")

    async def close(self) -> None:
        """Nothing to close."""

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        await asyncio.sleep(self.latency)
        assert isinstance(method, SendMessage)
        now = time.monotonic()
        chat = int(method.chat_id)
        while self.window and now - self.window[0] >= 1.0:
            self.window.popleft()
        last = self.last_to_chat.get(chat)
        if len(self.window) >= GLOBAL_LIMIT or (last is not None and now - last < CHAT_WINDOW):
            self.refused += 1
            body = {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1},
            }
            return self.check_response(bot, method, 429, json.dumps(body)).result
        if last is not None:
            self.closest_same_chat = min(self.closest_same_chat, now - last)
        self.window.append(now)
        self.last_to_chat[chat] = now
        self.accepted.append((now, chat))
        body = {
            "ok": True,
            "result": {
                "message_id": len(self.accepted),
                "date": 0,
                "chat": {"id": chat, "type": "private"},
                "text": method.text,
            },
        }
        return self.check_response(bot, method, 200, json.dumps(body)).result

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""


async def main_async(messages: int, chats: int, latency: float) -> None:
    tmp = tempfile.TemporaryDirectory()
    url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    with unit_of_work(sessions) as s:
        for i in range(messages):
            s.add(
                OutboxMessage(
                    channel="telegram",
                    recipient=str(1_000 + i % chats),
                    kind="notice",
                    payload={"text": f"notice {i}", "parse_mode": "HTML"},
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    api = LimitedBotApi(latency)
    bot = Bot(BOT_TOKEN, session=api)
    settings = Settings(database_url=url, _env_file=None)
    worker = DeliveryWorker(
        bot=bot, sessions=sessions, settings=settings, config=DeliveryConfig(idle_seconds=0.05)
    )
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(worker.run(stop))
    while len(api.accepted) < messages:
        await asyncio.sleep(0.05)
        if time.monotonic() - started > messages:  # a second per message: hopelessly stuck
            break
    stop.set()
    await task
    elapsed = api.accepted[-1][0] - api.accepted[0][0] if len(api.accepted) > 1 else 0.0
    with sessions() as s:
        sent = s.query(OutboxMessage).filter(OutboxMessage.status == "sent").count()
    # The sustained rate: messages after the first over the time they took.
    rate = (len(api.accepted) - 1) / elapsed if elapsed else 0.0
    print(f"messages:                 {messages} to {chats} chats, latency {latency * 1000:.0f} ms")
    print(f"delivered (rows sent):    {sent} ({len(api.accepted)} accepted by the API)")
    print(f"sustained rate:           {rate:6.1f} messages/s ({rate / 30:.1%} of 30/s)")
    print(f"429s provoked:            {api.refused}")
    closest = api.closest_same_chat
    print(f"closest same-chat gap:    {closest if closest != float('inf') else 0:.3f} s")
    print(f"goal: >= 95 % of 30/s:    {'met' if rate >= 28.5 else 'NOT met'}")
    print(f"goal: zero 429s:          {'met' if api.refused == 0 else 'NOT met'}")
    print(f"goal: <= 1/s per chat:    {'met' if closest >= CHAT_WINDOW else 'NOT met'}")
    engine.dispose()
    tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--chats", type=int, default=120)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per API call")
    args = parser.parse_args()
    asyncio.run(main_async(args.messages, args.chats, args.latency))


if __name__ == "__main__":
    main()
