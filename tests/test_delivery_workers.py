"""Two delivery workers (two processes: each its own engine, thread and event loop) draining
one outbox at the same moment, on SQLite and on PostgreSQL: every row is sent by exactly one
of them, and each chat's rows still arrive in order."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot
from sqlalchemy import func, select

from bot.delivery import DeliveryConfig, DeliveryWorker, Outcome
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


def _queue(engine: Any, rows: list[tuple[int, str]], at: datetime) -> None:
    """Notices (chat, text) due at `at`."""
    with unit_of_work(make_sessionmaker(engine)) as s:
        s.add_all(
            OutboxMessage(
                channel="telegram",
                recipient=str(chat),
                kind="notice",
                payload={"text": text},
                next_attempt_at=at,
            )
            for chat, text in rows
        )


def _worker(
    url: str, tmp_path: Any, fake: FakeSession, clock: Callable[[], datetime] = utcnow
) -> tuple[DeliveryWorker, Any]:
    """A worker as one process has it: its own engine (returned, to dispose of)."""
    own = make_engine(url)
    settings = Settings(database_url=url, media_dir=tmp_path, _env_file=None)
    worker = DeliveryWorker(
        bot=Bot(BOT_TOKEN, session=fake),
        sessions=make_sessionmaker(own),
        settings=settings,
        config=FAST,
        texts=Texts.load(),
        clock=clock,
    )
    return worker, own


def test_two_workers_send_each_row_once(fresh_db_url: str, tmp_path: Any) -> None:
    engine = make_engine(fresh_db_url)
    rows = [(7000 + chat, f"{chat}:{n}") for n in range(PER_CHAT) for chat in range(CHATS)]
    _queue(engine, rows, utcnow())
    fakes = [FakeSession(), FakeSession()]
    barrier = threading.Barrier(2)
    engines: list[Any] = []

    def process(fake: FakeSession) -> None:
        worker, own = _worker(fresh_db_url, tmp_path, fake)
        engines.append(own)
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


def test_a_killed_workers_claims_go_out_once_after_its_heartbeat_stops(
    fresh_db_url: str, tmp_path: Any
) -> None:
    """A worker claims rows and dies before sending them (a SIGKILL: nothing given back).
    Another worker takes them back once the dead one has not been seen for `owner_timeout`
    (20 s), not after the 300 s lease, and sends each once; while the claimer is still seen,
    nothing is taken from it; a row put to wait by a retry keeps its wait though its worker
    dies."""
    engine = make_engine(fresh_db_url)
    t0 = utcnow()
    now = [t0]
    _queue(engine, [(8000 + i, f"k{i}") for i in range(6)], t0)
    dead_fake, live_fake = FakeSession(), FakeSession()
    dead, dead_engine = _worker(fresh_db_url, tmp_path, dead_fake, lambda: now[0])
    live, live_engine = _worker(fresh_db_url, tmp_path, live_fake, lambda: now[0])
    try:
        claimed = dead._claim()  # claimed (stamped, leased 300 s), then the process is killed
        assert len(claimed) == 6
        # A retry put to wait 10 minutes by the dead worker before it died: its own wait.
        with unit_of_work(dead.sessions) as s:
            waiting = s.get(OutboxMessage, claimed[0].id)
            assert waiting is not None and waiting.claimed_by == dead.worker_id
        dead._record(claimed[0], Outcome("retry", error="5xx", delay=600))

        async def pass_at(seconds: float) -> int:
            now[0] = t0 + timedelta(seconds=seconds)
            freed = await asyncio.to_thread(live.beat)
            await live.drain()
            return freed

        async def scenario() -> tuple[int, int, int]:
            try:
                early = await pass_at(10)  # the claimer was seen 10 s ago: still its rows
                sent_early = len(live_fake.sent())
                late = await pass_at(25)  # 25 s of silence: taken back and sent
                return early, sent_early, late
            finally:
                await live.pacer.close()
                await dead.pacer.close()

        early, sent_early, late = asyncio.run(scenario())
        assert early == 0 and sent_early == 0
        assert late == 5
        counts = Counter(m.text for m in live_fake.sent())
        assert counts == Counter({f"k{i}": 1 for i in range(1, 6)})
        with make_sessionmaker(engine)() as s:
            rows = {r.payload["text"]: r for r in s.scalars(select(OutboxMessage))}
        assert all(rows[f"k{i}"].status == "sent" for i in range(1, 6))
        # The retry waits out its own 10 minutes, not cut short by its worker's death.
        assert rows["k0"].status == "pending" and rows["k0"].claimed_by is None
        assert rows["k0"].next_attempt_at > t0 + timedelta(seconds=500)
    finally:
        for e in (engine, dead_engine, live_engine):
            e.dispose()
