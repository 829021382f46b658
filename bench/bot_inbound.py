"""Inbound speed: updates per second through the full intake, next to a bare aiogram echo
Dispatcher measured in the same run, both with Telegram replaced by an in-process session that
answers at once (the network is not what is measured).

    python -m bench.bot_inbound [--customers 200] [--database sqlite:///...] [--steps]

With --steps, the time and the SQL statements of each step of the conversation, averaged
over the customers (measured in the same run, so the headline figure includes the counting).

Every customer (already linked to their order, so no proof step) walks a refund-only request:
/start ORDER, kind, item +, done, reason, description, done, confirm, then two messages to the
case they opened. Each update is stored (dedupe row), read and writes the conversation state,
and queues its answers; the confirm opens the case (its notice rendered into the outbox); the
messages land on the case. Goal (issue 18, replacing issue 6's): at least 40 % of the "floor
with state" measured in the same run, on SQLite and on PostgreSQL.

Two floors are measured in the same run. The floor of any bot that keeps what it is sent: the
bare echo Dispatcher plus one committed INSERT per update (a session, the write lock, the row,
the commit), and nothing else. The floor with state: that, plus what every step of a
conversation does at the least (the customer read, the conversation state read and written,
one answer queued), as plain statements with no handler work. The full intake does all that
and its work besides (the order, the previews, the case opened, messages on the case), so it
cannot be faster than either.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from aiogram import BaseMiddleware, Bot, Dispatcher, Router
from aiogram.client.session.base import BaseSession
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject, Update, User
from sqlalchemy import Engine, Table, bindparam, event, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from bot.fsm_storage import DatabaseStorage
from bot.keyboards import ItemCb, KindCb, NavCb, ReasonCb
from bot.runtime import build_dispatcher
from bot.threads import UnitOfWorkThreads, threads_for
from tickets.db import guard_event_loop, make_engine, make_sessionmaker, unit_of_work, upgrade
from tickets.messages.scripts import bundled_scripts_dir, load_library
from tickets.models import Customer as CustomerRow
from tickets.models import FsmRecord, InboundUpdate, OutboxMessage, Ticket
from tickets.models import Message as MessageRow
from tickets.orders.store import upsert_order
from tickets.policy.rules import Policy
from tickets.schemas import OrderIn
from tickets.settings import Settings

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
BOT_TOKEN = "42:BENCH"


class InstantSession(BaseSession):
    """Answers every call at once with a minimal valid result, without any network."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def close(self) -> None:
        """Nothing to close."""

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        self.calls += 1
        if isinstance(method, SendMessage):
            return Message(
                message_id=self.calls,
                date=NOW,
                chat=Chat(id=int(method.chat_id), type="private"),
                text=method.text,
            )
        return True

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""


def order(n: int) -> dict[str, Any]:
    return {
        "order_no": f"B{n:06d}",
        "status": "delivered",
        "currency": "CNY",
        "placed_at": "2026-11-15T10:00:00+08:00",
        "paid_at": "2026-11-15T10:01:00+08:00",
        "shipped_at": "2026-11-16T09:00:00+08:00",
        "delivered_at": "2026-11-20T15:00:00+08:00",
        "customer": {"name": f"C{n}", "phone": f"1380000{n:04d}", "telegram_user_id": 10_000 + n},
        "lines": [
            {"sku": "TEA", "title": "Tea", "category": "food", "quantity": 2, "unit_price": "20"},
            {"sku": "MUG", "title": "Mug", "category": "home", "quantity": 1, "unit_price": "35"},
        ],
    }


class Script:
    """The updates of every customer's conversation, built before the clock starts."""

    def __init__(self) -> None:
        self.update_id = 0
        self.message_id = 0

    def _user(self, n: int) -> tuple[User, Chat]:
        uid = 10_000 + n
        return User(id=uid, is_bot=False, first_name=f"C{n}", language_code="en"), Chat(
            id=uid, type="private"
        )

    def text(self, n: int, text: str) -> Update:
        user, chat = self._user(n)
        self.update_id += 1
        self.message_id += 1
        msg = Message(message_id=self.message_id, date=NOW, chat=chat, from_user=user, text=text)
        return Update(update_id=self.update_id, message=msg)

    def press(self, n: int, data: str) -> Update:
        user, chat = self._user(n)
        self.update_id += 1
        bot_msg = Message(message_id=1, date=NOW, chat=chat, text="…")
        query = CallbackQuery(
            id=str(self.update_id), from_user=user, chat_instance="c", message=bot_msg, data=data
        )
        return Update(update_id=self.update_id, callback_query=query)

    def conversation(self, n: int) -> list[Update]:
        return [
            self.text(n, f"/start B{n:06d}"),
            self.press(n, KindCb(kind="refund_only").pack()),
            self.press(n, ItemCb(index=0, delta=1).pack()),
            self.press(n, NavCb(action="done").pack()),
            self.press(n, ReasonCb(reason="missing_item").pack()),
            self.text(n, "One tea is missing from the parcel"),
            self.press(n, NavCb(action="done").pack()),
            self.press(n, NavCb(action="confirm").pack()),
            self.text(n, "Thanks, when will it arrive?"),
            self.text(n, "It was the green tea"),
        ]


STEPS = (
    "/start ORDER",
    "kind",
    "item +",
    "items done",
    "reason",
    "description",
    "evidence done",
    "confirm (open_case)",
    "message to the case",
    "message to the case",
)


def mounted(updates: list[Update], bot: Bot) -> list[Update]:
    """The updates as polling or a webhook hands them to the Dispatcher: validated with the
    bot in their context (else `feed_update` re-creates each one, through JSON, on the clock)."""
    return [Update.model_validate(u.model_dump(), context={"bot": bot}) for u in updates]


async def feed(dp: Dispatcher, bot: Bot, updates: list[Update]) -> float:
    """Hand every update over at once, a task each, as aiogram's polling does (a batch of
    getUpdates); the time until all are handled."""
    started = time.perf_counter()
    await asyncio.gather(*(dp.feed_update(bot, update) for update in updates))
    return time.perf_counter() - started


async def feed_steps(
    dp: Dispatcher, bot: Bot, updates: list[Update], engine: Engine
) -> tuple[float, list[float], list[int]]:
    """Like `feed`, with each step's time and statement count summed over the customers."""
    seconds = [0.0] * len(STEPS)
    statements = [0] * len(STEPS)
    current = [0]

    def count(*_: Any) -> None:
        statements[current[0]] += 1

    event.listen(engine, "before_cursor_execute", count)
    started = time.perf_counter()
    try:
        for i, update in enumerate(updates):
            current[0] = i % len(STEPS)
            begun = time.perf_counter()
            await dp.feed_update(bot, update)
            seconds[current[0]] += time.perf_counter() - begun
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return time.perf_counter() - started, seconds, statements


class StoreEachUpdate(BaseMiddleware):
    """A floor's durable work around the handler, committed: the update's id; with `state`,
    also what every step of a conversation does at the least (the customer read, the
    conversation state read and written, one answer queued), as plain statements. Like the
    intake, off the event loop: one hand-off per update to the same kind of unit-of-work
    threads (bot/threads.py), where the whole transaction runs; the handler (the echo's
    answer, network) runs on the loop after it."""

    def __init__(self, sessions: sessionmaker[Session], *, state: bool) -> None:
        self.sessions = sessions
        self.state = state
        bind = sessions.kw["bind"]
        # As many threads as the intake gets on this database (bot/threads.py).
        self.threads = UnitOfWorkThreads(threads_for(bind.dialect.name))
        self.insert = insert(cast(Table, InboundUpdate.__table__))
        fsm = cast(Table, FsmRecord.__table__)
        customers = cast(Table, CustomerRow.__table__)
        self.customer = select(customers).where(customers.c.telegram_user_id == bindparam("user"))
        self.read_state = select(fsm.c.state, fsm.c.data).where(fsm.c.key == bindparam("key"))
        upsert = (postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert)(fsm)
        self.write_state = upsert.on_conflict_do_update(
            index_elements=[fsm.c.key],
            set_={"state": upsert.excluded.state, "data": upsert.excluded.data},
        )
        self.answer = insert(cast(Table, OutboxMessage.__table__))

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update) and event.message is not None
        message = event.message

        async def work() -> None:
            self.store(event.update_id, message.chat.id, message.text)

        await self.threads.run(work)
        return await handler(event, data)

    def store(self, update_id: int, user: int, text: str | None) -> None:
        with self.sessions() as session:
            db = session.connection()
            source = "state floor" if self.state else "floor"
            row = {"source": source, "external_id": str(update_id), "received_at": NOW}
            db.execute(self.insert, row)
            key = f"floor:{user}"
            if self.state:
                db.execute(self.customer, {"user": user}).first()
                db.execute(self.read_state, {"key": key}).first()
            if self.state:
                db.execute(
                    self.write_state, {"key": key, "state": "s", "data": {}, "updated_at": NOW}
                )
                answer = {"text": text}
                db.execute(
                    self.answer,
                    [
                        {
                            "channel": "telegram",
                            "recipient": str(user),
                            "ticket_id": None,
                            "kind": "floor",
                            "payload": answer,
                            "status": "sent",
                            "attempts": 0,
                            "next_attempt_at": NOW,
                            "created_at": NOW,
                        }
                    ],
                )
            session.commit()


def echo_dispatcher(
    sessions: sessionmaker[Session] | None = None, *, state: bool = False
) -> Dispatcher:
    """The bare baseline: one handler answering every message and button; with `sessions`,
    a floor (StoreEachUpdate around it)."""
    dp = Dispatcher()
    if sessions is not None:
        dp.update.outer_middleware(StoreEachUpdate(sessions, state=state))
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    @router.callback_query()
    async def pressed(query: CallbackQuery) -> None:
        await query.answer()

    dp.include_router(router)
    return dp


async def main_async(customers: int, url: str | None, steps: bool = False) -> None:
    tmp = tempfile.TemporaryDirectory()
    url = url or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    settings = Settings(database_url=url, media_dir=Path(tmp.name) / "media", _env_file=None)
    with unit_of_work(sessions) as s:
        for n in range(customers):
            upsert_order(session=s, data=OrderIn.model_validate(order(n)), now=NOW)
    scripts = load_library(bundled_scripts_dir())
    # The app's rule holds here too: a database call on the loop would fail the run.
    guard_event_loop(engine)
    dp = build_dispatcher(
        sessions,
        settings,
        scripts,
        Policy(),
        storage=DatabaseStorage(sessions),
        events_isolation=SimpleEventIsolation(),
        clock=lambda: NOW,
    )
    bot = Bot(BOT_TOKEN, session=InstantSession())
    echo_bot = Bot(BOT_TOKEN, session=InstantSession())
    script = Script()
    updates = mounted([u for n in range(customers) for u in script.conversation(n)], bot)
    # Every update its own id, as Telegram sends them: aiogram caches Update.event_type by the
    # update (hashed by its id), and thousands of equal ids would make each lookup compare
    # whole updates field by field, slowing the baseline several times over.
    echo_script = Script()
    echo_updates = mounted(
        [echo_script.text(n % 50, "hello") for n in range(len(updates))], echo_bot
    )

    await feed(echo_dispatcher(), echo_bot, echo_updates[:200])  # warm-up
    echo_time = await feed(echo_dispatcher(), echo_bot, echo_updates)
    floor_time = await feed(echo_dispatcher(sessions), echo_bot, echo_updates)
    state_time = await feed(echo_dispatcher(sessions, state=True), echo_bot, echo_updates)
    if steps:
        intake_time, seconds, statements = await feed_steps(dp, bot, updates, engine)
    else:
        intake_time = await feed(dp, bot, updates)

    def counts() -> tuple[int, int, int, int]:
        with sessions() as s:
            return (
                s.query(Ticket).count(),
                s.query(InboundUpdate).filter(InboundUpdate.source == "telegram").count(),
                s.query(OutboxMessage).filter(OutboxMessage.kind == "bot_answer").count(),
                s.query(MessageRow).filter(MessageRow.author == "customer").count(),
            )

    cases, stored, answers, messages = await asyncio.to_thread(counts)
    assert cases == customers, f"{cases} cases for {customers} customers"
    assert stored == len(updates)
    assert messages == 2 * customers
    assert answers >= len(updates), "every update is answered"
    echo_rate = len(echo_updates) / echo_time
    floor_rate = len(echo_updates) / floor_time
    state_rate = len(echo_updates) / state_time
    intake_rate = len(updates) / intake_time
    print(f"database:                 {engine.url.get_backend_name()}")
    print(f"updates:                  {len(updates)} ({customers} intakes, {cases} cases)")
    print(f"answers queued:           {answers} (in the outbox, each in its update's commit)")
    print(f"bare echo Dispatcher:     {echo_rate:8.0f} updates/s")
    print(f"floor: echo + 1 commit:   {floor_rate:8.0f} updates/s")
    print(f"floor with state:         {state_rate:8.0f} updates/s")
    print(f"full intake:              {intake_rate:8.0f} updates/s")
    print(f"intake / bare:            {intake_rate / echo_rate:8.1%}")
    print(f"intake / floor:           {intake_rate / floor_rate:8.1%}")
    print(f"intake / floor with state:{intake_rate / state_rate:8.1%}")
    # Issue 18's goal (it replaced the bot issue's "1000 updates/s" and "40 % of bare", which
    # the floors showed out of reach).
    met = "met" if intake_rate >= 0.4 * state_rate else "NOT met"
    print(f"goal: >= 40 % of state:   {met}")
    if steps:
        print("per step (mean per customer):")
        for name, sec, count in zip(STEPS, seconds, statements, strict=True):
            print(f"  {name:<24} {sec / customers * 1000:6.2f} ms  {count / customers:5.1f} SQL")
    engine.dispose()
    tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--database", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--steps", action="store_true", help="time and count SQL per step")
    args = parser.parse_args()
    asyncio.run(main_async(args.customers, args.database, args.steps))


if __name__ == "__main__":
    main()
