"""Polling that loses no update to a crash (bot/polling.py): Telegram is told an update is
done only once it is handled, so a process killed mid-update has it sent again; updates of
one chat in order, of different chats at once; a clean stop lets the running ones finish."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.methods import GetUpdates
from aiogram.types import Message

from bot.polling import Poller
from tests.fakes.telegram import BOT_TOKEN, FakeSession


def message(update_id: int, chat: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1795312800,
            "chat": {"id": chat, "type": "private"},
            "from": {"id": chat, "is_bot": False, "first_name": "Li"},
            "text": text,
        },
    }


class World:
    """A dispatcher whose handler records each text and holds the ones named in `gates`
    until the test opens their gate."""

    def __init__(self) -> None:
        self.fake = FakeSession()
        self.bot = Bot(BOT_TOKEN, session=self.fake)
        self.started: list[str] = []
        self.done: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        router = Router()

        @router.message()
        async def handle(msg: Message) -> None:
            text = msg.text or ""
            self.started.append(text)
            if text in self.gates:
                await self.gates[text].wait()
            self.done.append(text)

        self.dp = Dispatcher()
        self.dp.include_router(router)
        self.poller = Poller(self.bot, self.dp, long_poll=0)
        self.stop = asyncio.Event()

    def telegram_sends(self, *updates: dict[str, Any]) -> None:
        self.fake.queue(GetUpdates, (200, {"ok": True, "result": list(updates)}))

    def offsets(self) -> list[int | None]:
        return [r.offset for r in self.fake.requests if isinstance(r, GetUpdates)]

    async def until(self, check: Any) -> None:
        for _ in range(500):
            if check():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the condition never held")


async def test_an_update_being_handled_is_not_confirmed_until_it_is_done() -> None:
    w = World()
    w.gates["slow"] = asyncio.Event()
    w.telegram_sends(message(1, 5001, "slow"), message(2, 5002, "fast"))
    run = asyncio.create_task(w.poller.run(w.stop))
    await w.until(lambda: w.done == ["fast"] and len(w.offsets()) >= 4)
    # Polled on meanwhile, yet never past update 1: a kill now has Telegram send it again.
    assert w.offsets()[0] is None and set(w.offsets()[1:]) == {1}
    assert w.started == ["slow", "fast"]

    # Telegram sends the unconfirmed one again with a new one: the new one is handled, the
    # one under way is not started twice.
    w.telegram_sends(message(1, 5001, "slow"), message(3, 5003, "new"))
    await w.until(lambda: "new" in w.done)
    assert w.started.count("slow") == 1

    w.gates["slow"].set()
    await w.until(lambda: w.offsets()[-1] == 4)
    assert sorted(w.done) == ["fast", "new", "slow"]
    w.stop.set()
    await run


async def test_one_chat_in_order_others_at_once() -> None:
    w = World()
    w.gates["first"] = asyncio.Event()
    w.telegram_sends(
        message(1, 5001, "first"), message(2, 5001, "second"), message(3, 5002, "other")
    )
    run = asyncio.create_task(w.poller.run(w.stop))
    await w.until(lambda: "other" in w.done)
    assert w.started == ["first", "other"]  # "second" waits for "first" of its chat
    w.gates["first"].set()
    await w.until(lambda: "second" in w.done)
    assert w.done == ["other", "first", "second"]
    w.stop.set()
    await run


async def test_a_clean_stop_lets_the_running_update_finish_and_confirms_it() -> None:
    w = World()
    w.gates["slow"] = asyncio.Event()
    w.telegram_sends(message(7, 5001, "slow"))
    run = asyncio.create_task(w.poller.run(w.stop))
    await w.until(lambda: w.started == ["slow"])
    w.stop.set()
    await run  # fetching has stopped; the update still runs
    assert w.done == []
    asyncio.get_running_loop().call_later(0.05, w.gates["slow"].set)
    assert await w.poller.finish(grace=5) == 0
    assert w.done == ["slow"]
    assert w.offsets()[-1] == 8  # confirmed: a restart does not fetch it again


async def test_a_full_window_under_way_is_not_fetched_again_until_there_is_room() -> None:
    # Telegram sends the unconfirmed updates back first: while most of a batch is under way,
    # asking again would only bring those back, parsed and dropped (issue 18: that parsing,
    # after every finished update, kept the event loop from answering /healthz in a flood).
    w = World()
    texts = [f"u{i}" for i in range(1, 61)]
    for text in texts:
        w.gates[text] = asyncio.Event()
    w.telegram_sends(*(message(i, 6000 + i, f"u{i}") for i in range(1, 61)))
    run = asyncio.create_task(w.poller.run(w.stop))
    await w.until(lambda: len(w.started) == 60)
    await asyncio.sleep(0.6)  # three of the poller's rechecks
    assert w.offsets() == [None]  # the 60 taken, nothing asked again meanwhile

    # Ten finished: fifty places of the next batch can hold fresh updates, so it asks again,
    # confirming the ten.
    for text in texts[:10]:
        w.gates[text].set()
    await w.until(lambda: len(w.offsets()) > 1)
    assert w.offsets()[1] == 11
    for text in texts[10:]:
        w.gates[text].set()
    await w.until(lambda: len(w.done) == 60)
    w.stop.set()
    await run


async def test_a_5xx_or_429_while_polling_is_one_warning_and_the_told_wait(
    monkeypatch: Any, caplog: Any
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
    w = World()
    w.fake.queue_error(GetUpdates, 502, "Bad Gateway")
    w.fake.queue_error(GetUpdates, 429, "Too Many Requests: retry after 6", retry_after=6)
    w.telegram_sends(message(1, 100, "hi"))
    caplog.set_level("INFO")
    task = asyncio.create_task(w.poller.run(w.stop))
    await w.until(lambda: w.done == ["hi"])
    w.stop.set()
    await task
    assert waits == [1.0, 6.0]
    warned = [r for r in caplog.records if r.name == "bot.polling"]
    assert [r.levelname for r in warned] == ["WARNING", "WARNING"]
    assert not any(r.exc_info for r in caplog.records)
