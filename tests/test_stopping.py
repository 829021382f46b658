"""Stopping a process cleanly, and the ways of running several that cannot work: a stopping
delivery worker finishes what is on the wire and gives back what it claimed but never sent
(another process sends it at once, not after its lease); `serve` refuses several processes
on SQLite with the reason."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiogram import Bot
from sqlalchemy.orm import Session, sessionmaker

from api.cli import main
from api.processes import Refused, check_workers, hold_sqlite_lock
from bot.delivery import DeliveryConfig, DeliveryWorker
from bot.i18n import Texts
from tests.factories import NOW, outbox_row, queue
from tests.fakes.clock import Clock
from tests.fakes.telegram import BOT_TOKEN, FakeSession

# Two messages a second for the bot: the second and third chats wait for their slot.
SLOW = DeliveryConfig(rate_per_second=2, per_chat_interval=0.0, group_interval=0.0)


async def test_a_stopping_worker_gives_back_the_rows_it_has_not_sent(
    sessions: sessionmaker[Session], settings: Any
) -> None:
    fake = FakeSession()
    clock = Clock(NOW)
    gate = asyncio.Event()
    waiting: list[float] = []

    async def sleep(seconds: float) -> None:
        waiting.append(seconds)
        await gate.wait()

    first, second, third = (
        queue(sessions, text, recipient=chat)[0]
        for text, chat in (("one", "5001"), ("two", "5002"), ("three", "5003"))
    )
    worker = DeliveryWorker(
        bot=Bot(BOT_TOKEN, session=fake),
        sessions=sessions,
        settings=settings,
        config=SLOW,
        texts=Texts.load(),
        clock=clock,
        sleep=sleep,
    )
    run = asyncio.create_task(worker.run_once())
    for _ in range(200):
        if len(fake.sent()) == 1 and len(waiting) == 2:
            break
        await asyncio.sleep(0.01)
    assert [m.text for m in fake.sent()] == ["one"]  # the others wait for their slot

    worker.stop_claiming()
    # The waits for their slots end at once (the gate never opens): a stop does not wait
    # out the pace of rows it gives back.
    report = await asyncio.wait_for(run, timeout=10)
    assert report.sent == 1 and [m.text for m in fake.sent()] == ["one"]
    assert worker.release_unsent() == 2
    assert outbox_row(sessions, first).status == "sent"
    for ident in (second, third):
        back = outbox_row(sessions, ident)
        # Due now, its claim undone: not left to its 300 s lease.
        assert (back.status, back.next_attempt_at, back.attempts) == ("pending", NOW, 0)
    assert (await worker.run_once()).claimed == 0  # a stopping worker claims nothing

    # Another process sends them at once.
    other = FakeSession()
    await DeliveryWorker(
        bot=Bot(BOT_TOKEN, session=other),
        sessions=sessions,
        settings=settings,
        config=DeliveryConfig(rate_per_second=1000, per_chat_interval=0.0),
        texts=Texts.load(),
        clock=clock,
    ).drain()
    assert sorted(m.text for m in other.sent()) == ["three", "two"]


async def test_a_row_on_the_wire_when_the_worker_stops_is_finished_and_recorded(
    sessions: sessionmaker[Session], settings: Any
) -> None:
    """The send under way is not given back (Telegram may have it): it completes and is
    recorded as sent, so no other process sends it again."""
    [ident] = queue(sessions, "on the wire")
    answered = asyncio.Event()
    on_the_wire = asyncio.Event()

    class SlowSession(FakeSession):
        async def make_request(self, bot: Bot, method: Any, timeout: int | None = None) -> Any:
            on_the_wire.set()
            await answered.wait()
            return await super().make_request(bot, method, timeout)

    fake = SlowSession()
    worker = DeliveryWorker(
        bot=Bot(BOT_TOKEN, session=fake),
        sessions=sessions,
        settings=settings,
        config=SLOW,
        texts=Texts.load(),
        clock=Clock(NOW),
    )
    run = asyncio.create_task(worker.run_once())
    # The claim runs in a thread: wait for the request itself, not for a guessed time.
    await asyncio.wait_for(on_the_wire.wait(), timeout=30)
    worker.stop_claiming()
    answered.set()
    assert (await run).sent == 1
    assert worker.release_unsent() == 0
    assert outbox_row(sessions, ident).status == "sent"


def test_serve_refuses_several_processes_on_sqlite(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    monkeypatch.setenv("AFTERSALES_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--workers", "2"]) == 2
    assert "--workers needs PostgreSQL" in capsys.readouterr().err
    assert main(["serve", "--workers", "1000"]) == 2
    assert "--workers must be between 1 and 32" in capsys.readouterr().err

    held = hold_sqlite_lock(url)  # a `serve` already running on this file
    assert held is not None
    try:
        assert main(["serve"]) == 2
        err = capsys.readouterr().err
        assert "already serves the SQLite database" in err and "need PostgreSQL" in err
    finally:
        held.close()
    assert not (tmp_path / "shop.db").exists()  # refused before touching the database


def test_several_webhook_processes_need_no_redis_on_postgresql() -> None:
    # One conversation's updates keep their order across the processes in PostgreSQL itself
    # (bot/middlewares.py; tests/test_multiproc.py runs two such processes): no Redis needed.
    # SQLite still serves from one process.
    check_workers("postgresql+psycopg://postgres@127.0.0.1:5432/shop", 2)
    with pytest.raises(Refused, match="needs PostgreSQL"):
        check_workers("sqlite:///shop.db", 2)
