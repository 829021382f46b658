"""Polling with a durable intake (bot/polling.py), against the fake Bot API over HTTP and a real
database: each fetched batch is stored, then confirmed to Telegram, then handled from the store;
one chat's updates in order, different chats at once, so one slow chat never holds up the
others; a cap on the stored backlog pauses fetching; a new poller resumes what an earlier one
left stored, each update once; a clean stop lets the running update finish."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import GetUpdates
from aiogram.types import Message
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.intake import IntakeStore
from bot.polling import Poller
from bot.session import BotSession
from tests.conftest import PG_URL, _fresh_pg_database
from tests.fakes.bot_api import TOKEN, FakeBotApi
from tests.fakes.checks import count, pending_outbox
from tests.fakes.customers import photo_bytes
from tests.fakes.serve import Serve
from tests.fakes.telegram import BOT_TOKEN, FakeSession
from tickets.db import upgrade

# No database call on the event loop (tickets/db.py): the store is written in threads.
pytestmark = pytest.mark.usefixtures("db_guard")


@pytest.fixture
def fake() -> Iterator[FakeBotApi]:
    with FakeBotApi(max_poll_seconds=0.5) as api:
        yield api


class World:
    """A poller on the fake Bot API whose handler records each text (its chat's, in order) and
    holds the texts named in `gates` until the test opens their gate."""

    def __init__(self, fake: FakeBotApi, sessions: sessionmaker[Session], **poller: Any) -> None:
        self.fake = fake
        self.bot = Bot(TOKEN, session=BotSession(api=TelegramAPIServer.from_base(fake.url)))
        self.started: list[str] = []
        self.done: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        # How many updates were stored and unhandled each time one started.
        self.backlogs: list[int] = []
        router = Router()

        @router.message()
        async def handle(msg: Message) -> None:
            text = msg.text or ""
            self.started.append(text)
            self.backlogs.append(len(self.poller.backlog))
            if text in self.gates:
                await self.gates[text].wait()
            self.done.append(text)

        self.dp = Dispatcher()
        self.dp.include_router(router)
        self.poller = Poller(self.bot, self.dp, sessions, long_poll=1, **poller)
        self.store = IntakeStore(sessions, self.bot)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.poller.run(self.stop))

    async def halt(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task
        await self.bot.session.close()

    def polls(self) -> list[dict[str, Any]]:
        return [c.params for c in self.fake.snapshot() if c.method == "getUpdates"]

    async def stored(self) -> int:
        return await asyncio.to_thread(self.store.count)

    async def until_stored(self, count: int) -> None:
        for _ in range(500):
            if await self.stored() == count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{await self.stored()} stored, never {count}")

    async def until(self, check: Any, seconds: float = 20) -> None:
        for _ in range(int(seconds / 0.02)):
            if check():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the condition never held")


async def test_a_chat_with_60_slow_updates_does_not_hold_up_another_chat(
    fake: FakeBotApi, sessions: sessionmaker[Session]
) -> None:
    # Issue 18: one chat floods 60 slow updates; another chat writes after them. Telegram
    # sends at most 100 a call, so a poller whose window stays at the oldest unfinished update
    # fetches nothing past the flood until it is done: the other customer waits for it.
    w = World(fake, sessions)
    flood = [f"a{i}" for i in range(1, 61)]
    opened = asyncio.Event()
    for text in flood:
        w.gates[text] = opened
    for text in flood:
        fake.message(6001, text)
    w.start()
    await w.until(lambda: w.started == ["a1"])
    fake.message(6002, "other")
    await w.until(lambda: "other" in w.done)
    # The flood is still under way, one at a time, yet stored and confirmed: Telegram holds
    # nothing back, and a kill now would lose none of it.
    assert w.started == ["a1", "other"] and w.done == ["other"]
    await w.until(lambda: fake.unconfirmed() == 0)
    assert await w.stored() == 60

    opened.set()
    await w.until(lambda: len(w.done) == 61)
    assert [t for t in w.done if t != "other"] == flood  # the chat's order kept
    await w.until_stored(0)  # handled ones leave the store
    await w.halt()


async def test_the_backlog_cap_pauses_fetching_until_there_is_room(
    fake: FakeBotApi, sessions: sessionmaker[Session]
) -> None:
    w = World(fake, sessions, max_backlog=5)
    texts = [f"c{i}" for i in range(1, 13)]
    for text in texts:
        w.gates[text] = asyncio.Event()
    for i, text in enumerate(texts):
        fake.message(7000 + i, text)  # twelve chats: nothing waits for its chat
    w.start()
    await w.until(lambda: len(w.started) == 5)
    await asyncio.sleep(1.0)  # two of the fake's long polls
    # Five stored and under way: no more asked for; Telegram keeps the other seven.
    assert len(w.polls()) == 1 and int(w.polls()[0]["limit"]) == 5
    assert len(w.started) == 5 and await w.stored() == 5
    assert fake.unconfirmed() == 12  # the five are confirmed by the next call, once there is room

    # One done: still paused (fetching resumes with two places free, not one by one).
    w.gates["c1"].set()
    await w.until(lambda: w.done == ["c1"])
    await asyncio.sleep(0.3)
    assert len(w.polls()) == 1
    w.gates["c2"].set()
    await w.until(lambda: len(w.polls()) >= 2)
    # Two places asked for, and the five stored are confirmed by this call's offset.
    assert int(w.polls()[1]["limit"]) == 2 and int(w.polls()[1]["offset"]) == 6
    for text in texts:
        w.gates[text].set()
    await w.until(lambda: sorted(w.done) == sorted(texts))
    # Never more than the cap stored and unhandled; every call asked only for the room left.
    assert max(w.backlogs) <= 5
    assert all(int(p["limit"]) <= 5 for p in w.polls())
    await w.until(lambda: fake.unconfirmed() == 0)
    await w.halt()


async def test_a_new_poller_resumes_what_a_killed_one_left_stored_each_once(
    fake: FakeBotApi, sessions: sessionmaker[Session]
) -> None:
    first = World(fake, sessions)
    first.gates["a1"] = asyncio.Event()
    for text in ("a1", "a2", "a3"):
        fake.message(6001, text)
    fake.message(6002, "b1")
    first.start()
    await first.until(lambda: first.done == ["b1"] and first.started == ["a1", "b1"])
    await first.until(lambda: fake.unconfirmed() == 0)  # Telegram has let go of all four
    await first.until_stored(3)  # b1, handled, has left the store
    # Killed: its tasks end where they are, nothing more is written, nothing confirmed.
    tasks: list[asyncio.Task[None]] = []
    for task in (first.task, *first.poller._drains.values()):
        assert task is not None
        task.cancel()
        tasks.append(task)
    await asyncio.gather(*tasks, return_exceptions=True)
    await first.bot.session.close()
    assert await first.stored() == 3  # a1 cut short, a2 and a3 never started

    second = World(fake, sessions)
    second.start()
    await second.until(lambda: second.done == ["a1", "a2", "a3"])
    await asyncio.sleep(0.3)
    assert second.started == ["a1", "a2", "a3"]  # each once, in order; b1 not again
    await second.until_stored(0)
    await second.halt()


async def test_a_batch_the_database_could_not_store_is_not_confirmed_and_comes_again(
    fake: FakeBotApi, sessions: sessionmaker[Session], monkeypatch: Any, caplog: Any
) -> None:
    import bot.polling

    async def no_wait(stop: asyncio.Event, seconds: float) -> None:
        await asyncio.sleep(0)

    monkeypatch.setattr(bot.polling, "_wait", no_wait)
    w = World(fake, sessions)
    real = w.poller.store.store
    failures = [OperationalError("INSERT", {}, Exception("disk I/O error"))]

    def store(updates: Any) -> None:
        if failures:
            raise failures.pop()
        real(updates)

    monkeypatch.setattr(w.poller.store, "store", store)
    fake.message(5001, "hello")
    w.start()
    await w.until(lambda: w.done == ["hello"])
    # The first call's batch was not stored: the second call did not confirm it (same offset:
    # none yet), so Telegram sent it again; handled once.
    offsets = [p.get("offset") for p in w.polls()]
    assert offsets[:2] == [None, None]
    assert w.started == ["hello"]
    assert "could not store 1 polled update(s)" in caplog.text
    await w.halt()


async def test_a_clean_stop_lets_the_running_update_finish_and_keeps_the_rest_stored(
    fake: FakeBotApi, sessions: sessionmaker[Session]
) -> None:
    w = World(fake, sessions)
    w.gates["slow"] = asyncio.Event()
    fake.message(5001, "slow")
    fake.message(5001, "next")
    w.start()
    await w.until(lambda: w.started == ["slow"])
    w.stop.set()
    assert w.task is not None
    await w.task  # fetching has stopped; the update still runs
    assert w.done == []
    asyncio.get_running_loop().call_later(0.05, w.gates["slow"].set)
    # The running one finishes; the chat's next one is not started, left for the next poller.
    assert await w.poller.finish(grace=5) == 1
    assert w.done == ["slow"] and w.started == ["slow"]
    assert await w.stored() == 1
    assert fake.unconfirmed() == 0  # both confirmed: Telegram does not send them again
    await w.bot.session.close()

    after = World(fake, sessions)
    after.start()
    await after.until(lambda: after.done == ["next"])
    await after.halt()


async def test_a_5xx_or_429_while_polling_is_one_warning_and_the_told_wait(
    monkeypatch: Any, caplog: Any, sessions: sessionmaker[Session]
) -> None:
    """getUpdates answered 502, then 429 with retry_after: one warning line each (no
    traceback), a short wait after the 5xx, Telegram's own wait after the 429; then the
    update comes and is handled."""
    import bot.polling

    waits: list[float] = []

    async def recorded(stop: asyncio.Event, seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(bot.polling, "_wait", recorded)
    session = FakeSession()
    done: list[str] = []
    router = Router()

    @router.message()
    async def handle(msg: Message) -> None:
        done.append(msg.text or "")

    dp = Dispatcher()
    dp.include_router(router)
    poller = Poller(Bot(BOT_TOKEN, session=session), dp, sessions, long_poll=0)
    session.queue_error(GetUpdates, 502, "Bad Gateway")
    session.queue_error(GetUpdates, 429, "Too Many Requests: retry after 6", retry_after=6)
    hello = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 1795312800,
            "chat": {"id": 100, "type": "private"},
            "from": {"id": 100, "is_bot": False, "first_name": "Li"},
            "text": "hi",
        },
    }
    session.queue(GetUpdates, (200, {"ok": True, "result": [hello]}))
    caplog.set_level("INFO")
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    for _ in range(500):
        if done == ["hi"]:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    await poller.finish(grace=5)
    assert done == ["hi"]
    assert waits == [1.0, 6.0]
    warned = [r for r in caplog.records if r.name == "bot.polling"]
    assert [r.levelname for r in warned] == ["WARNING", "WARNING"]
    assert not any(r.exc_info for r in caplog.records)


# ---------------------------------------------------------------- the real process, SIGKILLed

STORED = "SELECT count(*) FROM polled_updates"
HANDLED = "SELECT count(*) FROM inbound_updates"


def _until(check: Any, seconds: float, what: str, serve: Serve) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not after {seconds}s\n{serve.log()[-3000:]}")


def test_a_killed_serve_resumes_its_stored_updates_after_the_restart_each_once(
    tmp_path: Path,
) -> None:
    """`aftersales serve` polling the fake Bot API: a customer's photo hangs on its download
    (a slow link) and their next two messages wait behind it, all three fetched, stored and
    confirmed to Telegram; SIGKILL. Telegram will not send them again, yet after the restart
    they are handled, in order, each once: the customer gets exactly the answers another
    customer gets for the same three messages sent to the running server."""
    with contextlib.ExitStack() as stack:
        if PG_URL:
            database_url = stack.enter_context(_fresh_pg_database(PG_URL))
        else:
            database_url = f"sqlite:///{tmp_path / 'aftersales.db'}"
        upgrade(database_url)
        fake = stack.enter_context(FakeBotApi())
        serve = Serve(database_url=database_url, data_dir=tmp_path / "shop", api_url=fake.url)
        stack.callback(serve.stop)
        photo = photo_bytes()

        def sends(chat: int) -> None:
            fake.photo(chat, photo, caption="broken")
            fake.message(chat, "/start")
            fake.message(chat, "/help")

        fake.hold_files()
        serve.start()
        killed, control = 810_001, 810_002
        sends(killed)
        _until(
            lambda: (
                bool([c for c in fake.snapshot() if c.method == "downloadFile:held"])
                and fake.unconfirmed() == 0
                and count(database_url, STORED) == 3
            ),
            60,
            "the three updates stored and confirmed, the photo's download under way",
            serve,
        )
        serve.kill()
        assert count(database_url, STORED) == 3 and count(database_url, HANDLED) == 0
        assert fake.unconfirmed() == 0  # Telegram has let go of them: only our store has them

        fake.release_files()
        serve.start()
        _until(
            lambda: count(database_url, HANDLED) == 3 and count(database_url, STORED) == 0,
            60,
            "the stored updates handled after the restart",
            serve,
        )
        sends(control)
        _until(lambda: count(database_url, HANDLED) == 6, 60, "the control chat handled", serve)
        # Their answers go out one a second per chat.
        _until(
            lambda: (
                pending_outbox(database_url) == 0
                and len(fake.messages(killed)) == len(fake.messages(control)) > 0
            ),
            60,
            "every answer sent",
            serve,
        )
        time.sleep(1.5)  # an answer sent twice would arrive within a second of its first
        answers = {
            chat: [m.text.replace(str(chat), "<chat>") for m in fake.messages(chat)]
            for chat in (killed, control)
        }
        assert answers[killed] == answers[control]
        assert "resuming 3 stored update(s)" in serve.log()
        assert not serve.bad_log_lines(), serve.bad_log_lines()[:1]
