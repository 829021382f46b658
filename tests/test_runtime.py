"""The runtime's rule: no database call on the event loop (tickets/db.py, bot/middlewares.py).
Over 500 lines as one file: one rule, tested on every path that could break it.

Through the real Dispatcher, with Telegram faked at the session boundary, on a database of
the test's own (real commits from several connections and threads): different chats are
handled at the same time, one chat's updates (and an album's parts) in order, a redelivered
update once; the loop keeps answering while an HTTP request's thread holds SQLite's write lock
(the freeze of issue 18); SQLite readers never wait for a writer.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.types import Update
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine, event, func, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import DeliveryWorker
from bot.i18n import Texts
from bot.keyboards import ItemCb, KindCb, NavCb, ReasonCb
from tests.conftest import in_thread
from tests.factories import NOW, order_json
from tests.fakes.telegram import (
    FAST,
    Customer,
    colour_name,
    dispatcher,
    jpeg,
    texts_of,
)
from tickets.db import (
    EventLoopDatabaseCall,
    guard_event_loop,
    make_engine,
    make_sessionmaker,
    mark_worker_thread,
    read_sessionmaker,
    unit_of_work,
    upgrade,
)
from tickets.models import InboundUpdate, OutboxMessage, Ticket
from tickets.orders.store import upsert_order
from tickets.schemas import OrderIn
from tickets.storage import AttachmentStore

TEXTS = Texts.load()
SQLITE_ONLY = "the write lock and its busy wait are SQLite's"


@pytest.fixture
def own(fresh_db_url: str) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    """A database of the test's own, with the app's guard on: its `async def` bodies read it
    through `in_thread`."""
    engine = make_engine(fresh_db_url)
    remove = guard_event_loop(engine)
    yield engine, make_sessionmaker(engine)
    remove()
    engine.dispose()


# A unit of work started in a context where this is set waits at its first connection
# checkout (before its transaction: on SQLite a held transaction would hold the write lock)
# until the event is set.
HOLD: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("hold", default=None)


def holding(engine: Engine) -> threading.Event:
    """Install the hold on `engine`; the returned event is set once a unit of work is held."""
    reached = threading.Event()

    @event.listens_for(engine, "checkout")
    def _hold(*_args: Any) -> None:
        gate = HOLD.get()
        if gate is not None and not gate.is_set():
            reached.set()
            # Bounded: code that waits here on the loop's own thread (the old design) must
            # fail the test, not hang it.
            gate.wait(timeout=5)

    return reached


def held_task(work: Awaitable[Any], gate: threading.Event) -> asyncio.Task[Any]:
    """`work` as a task whose unit of work waits for `gate` (HOLD)."""
    context = contextvars.copy_context()
    context.run(HOLD.set, gate)

    async def run() -> Any:
        return await work

    return asyncio.get_running_loop().create_task(run(), context=context)


def add_order(sessions: sessionmaker[Session], telegram_user_id: int = 5001) -> None:
    data = order_json()
    data["customer"]["telegram_user_id"] = telegram_user_id
    data["customer"]["language"] = "en"
    with unit_of_work(sessions) as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=NOW)


def handled(sessions: sessionmaker[Session]) -> list[str]:
    """The stored update ids, in the order they were handled."""
    with sessions() as s:
        return list(s.scalars(select(InboundUpdate.external_id).order_by(InboundUpdate.id)))


def answers_to(sessions: sessionmaker[Session], chat_id: int) -> int:
    with sessions() as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.recipient == str(chat_id))
            )
            or 0
        )


# ---------------------------------------------------------------- the guard


async def test_the_guard_refuses_a_database_call_on_the_event_loop(
    own: tuple[Engine, sessionmaker[Session]],
) -> None:
    _, sessions = own

    def read() -> int:
        with sessions() as s:
            return int(s.scalar(text("SELECT 1")) or 0)

    with pytest.raises(EventLoopDatabaseCall, match="database call on the event loop"):
        read()
    assert await in_thread(read) == 1  # a plain thread: no loop there

    def in_a_worker() -> int:
        # A unit-of-work thread runs a loop of its own and may touch the database.
        mark_worker_thread()

        async def on_its_loop() -> int:
            return read()

        return asyncio.run(on_its_loop())

    assert await in_thread(in_a_worker) == 1


async def test_the_apps_own_engine_is_guarded(tmp_path: Path, settings: Any) -> None:
    from api.app import create_app

    url = f"sqlite:///{tmp_path / 'guarded.db'}"
    app = create_app(settings.model_copy(update={"database_url": url}))
    try:
        for factory in (app.state.sessions, app.state.read_sessions):
            with pytest.raises(EventLoopDatabaseCall), factory() as s:
                s.execute(text("SELECT 1"))
    finally:
        app.state.engine.dispose()


# ---------------------------------------------------------------- concurrency and order


async def test_two_chats_are_handled_at_the_same_time(
    own: tuple[Engine, sessionmaker[Session]], bot: Bot, settings: Any, scripts: Any
) -> None:
    engine, sessions = own
    dp = dispatcher(sessions, settings, scripts)
    reached, gate = holding(engine), threading.Event()
    slow = Customer(dp, bot, user_id=7001, language="en")
    quick = Customer(dp, bot, user_id=7002, language="en", first_update=100)
    first = held_task(
        dp.feed_update(bot, slow._update(message=slow._next_message(text="hi"))), gate
    )
    try:
        assert await in_thread(lambda: reached.wait(5)), "the first unit of work never started"
        # The other chat's update goes through while the first one's is still held.
        await asyncio.wait_for(
            dp.feed_update(bot, quick._update(message=quick._next_message(text="hi"))), 5
        )
        assert not first.done()
        assert await in_thread(lambda: answers_to(sessions, 7002)) >= 1
        assert await in_thread(lambda: answers_to(sessions, 7001)) == 0
    finally:
        gate.set()
    await asyncio.wait_for(first, 10)
    assert await in_thread(lambda: answers_to(sessions, 7001)) >= 1


async def test_one_chats_updates_are_handled_in_the_order_they_came(
    own: tuple[Engine, sessionmaker[Session]], bot: Bot, settings: Any, scripts: Any
) -> None:
    engine, sessions = own
    dp = dispatcher(sessions, settings, scripts)
    reached, gate = holding(engine), threading.Event()
    me = Customer(dp, bot, user_id=7003, language="en")
    updates = [me._update(message=me._next_message(text=f"message {n}")) for n in range(3)]
    first = held_task(dp.feed_update(bot, updates[0]), gate)
    rest = [asyncio.create_task(dp.feed_update(bot, u)) for u in updates[1:]]
    try:
        assert await in_thread(lambda: reached.wait(5))
        await asyncio.sleep(0.2)  # room for a later update to overtake (it must not)
        assert await in_thread(lambda: handled(sessions)) == []
    finally:
        gate.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), 10)
    assert await in_thread(lambda: handled(sessions)) == [
        f"{bot.id}:{u.update_id}" for u in updates
    ]


async def test_an_albums_photos_fed_at_once_land_in_order_with_one_answer(
    own: tuple[Engine, sessionmaker[Session]], bot: Bot, settings: Any, scripts: Any
) -> None:
    from bot.routers.customer.steps import ALBUM_WAIT
    from tests.fakes.clock import Clock

    _, sessions = own
    await in_thread(lambda: add_order(sessions))
    clock = Clock(NOW)
    dp = dispatcher(sessions, settings, scripts, clock)
    worker = DeliveryWorker(bot=bot, sessions=sessions, settings=settings, config=FAST, clock=clock)
    dp["delivery"] = worker
    me = Customer(dp, bot, user_id=5001, language="en")
    await me.text("/start T1001")
    await me.press(KindCb(kind="exchange"))
    await me.press(ItemCb(index=0, delta=1))
    await me.press(NavCb(action="done"))
    await me.press(ReasonCb(reason="damaged_in_transit"))
    await me.press(NavCb(action="skip"))
    colours = ["red", "green", "blue"]
    album = [
        me._update(message=me.photo_message(jpeg(colour), media_group_id="album-1"))
        for colour in colours
    ]
    before = len(me.session.requests)
    # As polling hands them over: each part a task of its own, all at once.
    await asyncio.gather(*(dp.feed_update(bot, u) for u in album))
    await worker.drain()
    assert texts_of(me.session.requests[before:]) == []  # the answer waits for the album
    clock.now += ALBUM_WAIT
    await worker.drain()
    answers = texts_of(me.session.requests[before:])
    assert len(answers) == 1
    assert answers[0].startswith(TEXTS.get("en", "intake.evidence_ready", count=3))
    await me.press(NavCb(action="confirm"))

    def colours_on_the_case() -> list[str]:
        with sessions() as s:
            case = s.scalars(select(Ticket)).one()
            store = AttachmentStore(settings.media_dir)
            seen = []
            for a in case.attachments:
                with Image.open(store.path(a.storage_key)) as img:
                    seen.append(colour_name(img))
            return seen

    assert await in_thread(colours_on_the_case) == colours


async def test_the_same_update_delivered_twice_at_once_is_handled_once(
    own: tuple[Engine, sessionmaker[Session]], bot: Bot, settings: Any, scripts: Any
) -> None:
    _, sessions = own
    dp = dispatcher(sessions, settings, scripts)
    me = Customer(dp, bot, user_id=7004, language="en")
    update = me._update(message=me._next_message(text="hello"))
    twin = Update.model_validate(update.model_dump(), context={"bot": bot})
    await asyncio.gather(dp.feed_update(bot, update), dp.feed_update(bot, twin))
    assert await in_thread(lambda: handled(sessions)) == [f"{bot.id}:{update.update_id}"]
    once = await in_thread(lambda: answers_to(sessions, 7004))
    assert once >= 1
    await dp.feed_update(bot, twin)  # and later again
    assert await in_thread(lambda: answers_to(sessions, 7004)) == once


async def test_conversation_state_in_redis_is_kept_between_updates(
    own: tuple[Engine, sessionmaker[Session]], bot: Bot, settings: Any, scripts: Any
) -> None:
    from aiogram.fsm.storage.base import DefaultKeyBuilder, StorageKey
    from aiogram.fsm.storage.redis import RedisStorage
    from redis.exceptions import ConnectionError as RedisConnectionError

    from bot.runtime import build_dispatcher
    from tickets.policy.rules import Policy

    _, sessions = own
    user_id = 800_000 + uuid.uuid4().int % 100_000
    await in_thread(lambda: add_order(sessions, telegram_user_id=user_id))
    storage = RedisStorage.from_url(
        "redis://127.0.0.1:6379/15", key_builder=DefaultKeyBuilder(with_destiny=True)
    )
    try:
        await storage.redis.ping()
    except RedisConnectionError:
        await storage.close()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Redis at 127.0.0.1:6379 is unreachable: CI must test against it")
        pytest.skip("no Redis at 127.0.0.1:6379 (CI has one)")
    key = StorageKey(bot_id=bot.id, chat_id=user_id, user_id=user_id)
    dp = build_dispatcher(
        sessions,
        settings,
        scripts,
        Policy(),
        storage=storage,
        events_isolation=storage.create_isolation(),
        clock=lambda: NOW,
    )
    dp["delivery"] = DeliveryWorker(bot=bot, sessions=sessions, settings=settings, config=FAST)
    me = Customer(dp, bot, user_id=user_id, language="en")
    try:
        await me.text("/start T1001")
        after_start = await storage.get_state(key)
        assert after_start is not None
        # The next step finds the state the first one wrote (read before the hand-off).
        sent = await me.press(KindCb(kind="exchange"))
        assert texts_of(sent), "the kind was understood and answered"
        after_kind = await storage.get_state(key)
        assert after_kind is not None and after_kind != after_start
        assert (await storage.get_data(key)).get("kind") == "exchange"
    finally:
        await storage.set_state(key, None)
        await storage.set_data(key, {})
        await storage.close()


# ---------------------------------------------------------------- the freeze (issue 18)


def sqlite_db(tmp_path: Path) -> tuple[Engine, sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'freeze.db'}"
    upgrade(url)
    engine = make_engine(url)
    guard_event_loop(engine)
    return engine, make_sessionmaker(engine)


async def test_the_loop_keeps_answering_while_a_request_holds_the_sqlite_write_lock(
    tmp_path: Path, bot: Bot, settings: Any, scripts: Any
) -> None:
    """An HTTP request's thread holds SQLite's write lock while a customer writes and the
    delivery worker has a row to record: the event loop must not wait for the lock (it once
    did, for the 30 s busy timeout, and the whole server froze). A liveness check, by order
    and not by the clock: the request's thread lets the lock go only once the loop, with the
    customer's update in hand, has come back to a short sleep ten times; a loop that waited
    for the lock could not, and the thread gives up (the lock goes, the test fails) after 30 s."""
    engine, sessions = sqlite_db(tmp_path)
    try:
        dp = dispatcher(sessions, settings, scripts)
        worker = DeliveryWorker(bot=bot, sessions=sessions, settings=settings, config=FAST)
        dp["delivery"] = worker
        me = Customer(dp, bot, user_id=7005, language="en")
        locked, answered = threading.Event(), threading.Event()
        held: list[bool] = []

        def request_holding_the_lock() -> None:
            with sessions() as s:
                s.execute(
                    insert(InboundUpdate).values(source="http", external_id="x", received_at=NOW)
                )  # BEGIN IMMEDIATE: the write lock, until the commit
                locked.set()
                # Whether the loop answered while this thread held the lock.
                held.append(answered.wait(timeout=30))
                s.commit()

        holder = threading.Thread(target=request_holding_the_lock)
        holder.start()
        assert await in_thread(lambda: locked.wait(5))
        update = asyncio.create_task(
            dp.feed_update(bot, me._update(message=me._next_message(text="hello")))
        )
        try:
            for _ in range(10):
                await asyncio.sleep(0.02)
            answered.set()
            await asyncio.wait_for(update, 60)
            await asyncio.wait_for(worker.drain(), 30)
        finally:
            answered.set()
            await in_thread(holder.join)
        assert held == [True], "the event loop stalled while the request held the lock"
        assert texts_of(me.session.requests), "the customer was answered once the lock was free"
    finally:
        engine.dispose()


# ---------------------------------------------------------------- SQLite readers and writers


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one SQLite file (two processes, say), with a short busy timeout: a
    wait for the lock shows as an error within a second instead of 30."""
    url = f"sqlite:///{tmp_path / 'rw.db'}"
    upgrade(url)
    args = {"check_same_thread": False, "timeout": 1}
    first, second = make_engine(url, connect_args=args), make_engine(url, connect_args=args)
    yield first, second
    first.dispose()
    second.dispose()


def test_a_sqlite_reader_does_not_wait_while_a_writer_holds_the_lock(
    sqlite_pair: tuple[Engine, Engine],
) -> None:
    writer_engine, reader_engine = sqlite_pair
    readers = read_sessionmaker(reader_engine)
    with make_sessionmaker(writer_engine)() as writer:
        writer.execute(
            insert(InboundUpdate).values(source="test", external_id="w", received_at=NOW)
        )
        # The writer holds the write lock (uncommitted); a reader sees the last commit.
        with readers() as reader:
            assert reader.scalar(select(func.count()).select_from(InboundUpdate)) == 0
        # A second writer waits (busy timeout) and gives up: writers queue, readers do not.
        with (
            pytest.raises(OperationalError, match="locked"),
            make_sessionmaker(reader_engine)() as other,
        ):
            other.execute(
                insert(InboundUpdate).values(source="test", external_id="o", received_at=NOW)
            )
        writer.commit()
    with readers() as reader:
        assert reader.scalar(select(func.count()).select_from(InboundUpdate)) == 1


def test_a_sqlite_reader_refuses_to_write(sqlite_pair: tuple[Engine, Engine]) -> None:
    engine, _ = sqlite_pair
    with read_sessionmaker(engine)() as reader, pytest.raises(OperationalError, match="readonly"):
        reader.execute(
            insert(InboundUpdate).values(source="test", external_id="r", received_at=NOW)
        )
    # The same pooled connection serves a writer afterwards.
    with unit_of_work(make_sessionmaker(engine)) as writer:
        writer.execute(
            insert(InboundUpdate).values(source="test", external_id="w", received_at=NOW)
        )


def test_get_requests_answer_while_a_writer_holds_the_sqlite_lock(
    tmp_path: Path, settings: Any
) -> None:
    from api.app import create_app
    from tickets.auth import create_agent, create_token
    from tickets.models import Role

    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    app = create_app(settings.model_copy(update={"database_url": url}))
    writer = make_engine(url)
    try:
        with unit_of_work(make_sessionmaker(writer)) as s:
            create_agent(session=s, username="alice", role=Role.agent, group="service", now=NOW)
            token = create_token(session=s, username="alice", now=NOW)
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(app) as client:
            # A first call records the token's use (a write of its own, once in a while).
            assert client.get("/api/v1/tickets", headers=headers).status_code == 200
            with make_sessionmaker(writer)() as holding_the_lock:
                holding_the_lock.execute(
                    insert(InboundUpdate).values(source="t", external_id="h", received_at=NOW)
                )
                assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
                listed = client.get("/api/v1/tickets", headers=headers)
                assert listed.status_code == 200, listed.text
                holding_the_lock.rollback()
    finally:
        writer.dispose()


def test_the_panels_pages_are_served_by_read_only_transactions(
    tmp_path: Path, settings: Any
) -> None:
    """On a real SQLite file the pages run in readers (query_only): a page that wrote in its
    read would fail here, and an expired panel session is still cleaned up (apart)."""
    import re
    from datetime import timedelta

    from sqlalchemy import update

    from api.app import create_app
    from tickets.auth import create_agent
    from tickets.models import PanelSession, Role

    url = f"sqlite:///{tmp_path / 'panel.db'}"
    upgrade(url)
    app = create_app(settings.model_copy(update={"database_url": url}))
    writer = make_engine(url)
    writers = make_sessionmaker(writer)
    try:
        with unit_of_work(writers) as s:
            create_agent(
                session=s,
                username="lena",
                role=Role.lead,
                group="service",
                password="a long enough password",
                now=NOW,
            )
        with TestClient(app) as client:
            form = client.get("/panel/login")
            token = re.search(r'name="login_token" value="([^"]+)"', form.text)
            assert token is not None
            logged_in = client.post(
                "/panel/login",
                data={
                    "username": "lena",
                    "password": "a long enough password",
                    "login_token": token.group(1),
                },
                follow_redirects=False,
            )
            assert logged_in.status_code == 303
            for page in ("/panel", "/panel/queue", "/panel/dashboard", "/panel/me"):
                assert client.get(page).status_code == 200, page
            # The session went stale: the next page touches it (a write apart from the read).
            with unit_of_work(writers) as s:
                s.execute(update(PanelSession).values(last_seen_at=NOW - timedelta(hours=1)))
            assert client.get("/panel/queue").status_code == 200
            with writers() as s:
                assert s.scalar(select(PanelSession.last_seen_at)) != NOW - timedelta(hours=1)
            # Expired: deleted, and the browser is sent to log in.
            with unit_of_work(writers) as s:
                s.execute(update(PanelSession).values(expires_at=NOW - timedelta(hours=1)))
            gone = client.get("/panel/queue", follow_redirects=False)
            assert gone.status_code == 303 and "/panel/login" in gone.headers["location"]
            with writers() as s:
                assert s.scalar(select(func.count()).select_from(PanelSession)) == 0
    finally:
        writer.dispose()
