"""Two delivery workers (two processes: each its own engine, thread and event loop) draining
one outbox at the same moment, on SQLite and on PostgreSQL: every row is sent by exactly one
of them, and each chat's rows still arrive in order."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

from aiogram import Bot
from sqlalchemy import func, select

from bot.delivery import DeliveryConfig, DeliveryWorker
from bot.i18n import Texts
from tests.fakes.telegram import BOT_TOKEN, FakeSession
from tickets.db import make_engine, make_sessionmaker, unit_of_work
from tickets.models import OutboxMessage, utcnow
from tickets.settings import Settings

CHATS, PER_CHAT = 40, 5
# Small batches: 200 rows take many passes, so the two workers' claims interleave (a worker
# that claimed them all in one pass would leave the test nothing to prove).
FAST = DeliveryConfig(
    rate_per_second=1000, per_chat_interval=0.0, group_interval=0.0, batch_size=10
)


def test_two_workers_send_each_row_once(fresh_db_url: str, tmp_path: Any) -> None:
    engine = make_engine(fresh_db_url)
    with unit_of_work(make_sessionmaker(engine)) as s:
        s.add_all(
            OutboxMessage(
                channel="telegram",
                recipient=str(7000 + chat),
                kind="notice",
                payload={"text": f"{chat}:{n}"},
                next_attempt_at=utcnow(),
            )
            for n in range(PER_CHAT)
            for chat in range(CHATS)
        )
    settings = Settings(database_url=fresh_db_url, media_dir=tmp_path, _env_file=None)
    fakes = [FakeSession(), FakeSession()]
    barrier = threading.Barrier(2)
    engines: list[Any] = []

    def process(fake: FakeSession) -> None:
        own = make_engine(fresh_db_url)
        engines.append(own)
        worker = DeliveryWorker(
            bot=Bot(BOT_TOKEN, session=fake),
            sessions=make_sessionmaker(own),
            settings=settings,
            config=FAST,
            texts=Texts.load(),
        )
        barrier.wait()

        async def drain() -> None:
            # Passes until nothing is left: the other worker may hold rows for a while.
            try:
                for _ in range(50):
                    await worker.drain()
                    await asyncio.sleep(0.02)
            finally:
                await worker.pacer.close()  # on PostgreSQL: its own pool

        asyncio.run(drain())

    threads = [threading.Thread(target=process, args=(f,)) for f in fakes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        sent = [(m.chat_id, m.text) for f in fakes for m in f.sent()]
        counts = Counter(text for _, text in sent)
        assert len(counts) == CHATS * PER_CHAT
        assert set(counts.values()) == {1}, [t for t, n in counts.items() if n > 1]
        assert all(f.sent() for f in fakes), "both workers took a share"
        # Per chat, across both workers' logs: in order (a chat's rows go to one worker at
        # a time, never overtaking each other).
        for fake in fakes:
            by_chat: dict[int, list[int]] = {}
            for chat_id, text in ((m.chat_id, m.text) for m in fake.sent()):
                by_chat.setdefault(chat_id, []).append(int(text.split(":")[1]))
            assert all(ns == sorted(ns) for ns in by_chat.values())
        with make_sessionmaker(engine)() as s:
            left = s.scalar(select(func.count()).where(OutboxMessage.status != "sent"))
        assert left == 0
    finally:
        for e in [engine, *engines]:
            e.dispose()
