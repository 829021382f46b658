"""The conversation state storage: our database by default (bound to the update's transaction),
aiogram's RedisStorage when a Redis URL is set."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import SimpleEventIsolation
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.fsm_storage import DatabaseStorage, build_storage
from bot.threads import UnitOfWorkThreads
from tickets.models import FsmRecord

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")

KEY = StorageKey(bot_id=42, chat_id=5001, user_id=5001)


class Form(StatesGroup):
    step = State()


def rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(FsmRecord)) or 0


async def test_state_and_data_persist_across_storage_objects(
    sessions: sessionmaker[Session],
) -> None:
    first = DatabaseStorage(sessions)
    await first.set_state(KEY, Form.step)
    await first.update_data(KEY, {"order_no": "T1001", "chosen": {"SOCKS": 2}})
    second = DatabaseStorage(sessions)  # a restarted process
    assert await second.get_state(KEY) == "Form:step"
    assert await second.get_data(KEY) == {"order_no": "T1001", "chosen": {"SOCKS": 2}}
    assert await second.get_value(KEY, "order_no") == "T1001"
    other = StorageKey(bot_id=42, chat_id=6001, user_id=6001)
    assert await second.get_state(other) is None and await second.get_data(other) == {}


async def test_a_cleared_conversation_leaves_no_row(sessions: sessionmaker[Session]) -> None:
    storage = DatabaseStorage(sessions)
    await storage.set_state(KEY, "Form:step")
    await storage.set_data(KEY, {"a": 1})
    assert rows(sessions) == 1
    await storage.set_state(KEY, None)
    assert rows(sessions) == 1  # data is still there
    await storage.set_data(KEY, {})
    assert rows(sessions) == 0


async def test_bound_writes_commit_or_roll_back_with_the_update(
    sessions: sessionmaker[Session],
) -> None:
    storage = DatabaseStorage(sessions)
    # Bound, as the middleware binds it: on a unit-of-work thread's own loop.
    threads = UnitOfWorkThreads(1)

    async def rolled_back() -> None:
        with sessions() as session, storage.bind(session):
            await storage.set_state(KEY, "Form:step")
            assert await storage.get_state(KEY) == "Form:step"
            session.rollback()

    async def committed() -> None:
        with sessions() as session, storage.bind(session):
            await storage.set_state(KEY, "Form:step")
            await storage.update_data(KEY, {"a": 1})
            await storage.update_data(KEY, {"b": 2})
            storage.flush(session)  # the middleware does this just before committing
            session.commit()

    await threads.run(rolled_back)
    assert await storage.get_state(KEY) is None
    await threads.run(committed)
    await asyncio.to_thread(threads.close)
    assert await storage.get_state(KEY) == "Form:step"
    assert await storage.get_data(KEY) == {"a": 1, "b": 2}


async def test_data_must_be_a_dict(sessions: sessionmaker[Session]) -> None:
    from aiogram.exceptions import DataNotDictLikeError

    with pytest.raises(DataNotDictLikeError):
        await DatabaseStorage(sessions).set_data(KEY, [1, 2])  # type: ignore[arg-type]


def test_database_storage_by_default(settings: Any, sessions: sessionmaker[Session]) -> None:
    storage, isolation = build_storage(settings, sessions)
    assert isinstance(storage, DatabaseStorage)
    assert isinstance(isolation, SimpleEventIsolation)


async def test_redis_storage_when_a_redis_url_is_set(
    settings: Any, sessions: sessionmaker[Session]
) -> None:
    from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
    from redis.exceptions import ConnectionError as RedisConnectionError

    settings = settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/15"})
    storage, isolation = build_storage(settings, sessions)
    assert isinstance(storage, RedisStorage) and isinstance(isolation, RedisEventIsolation)
    key = StorageKey(bot_id=42, chat_id=uuid.uuid4().int % 10**9, user_id=1)
    try:
        try:
            await storage.redis.ping()
        except RedisConnectionError:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("Redis at 127.0.0.1:6379 is unreachable: CI must test against it")
            pytest.skip("no Redis at 127.0.0.1:6379 (CI has one)")
        await storage.set_state(key, "Form:step")
        await storage.set_data(key, {"order_no": "T1001"})
        assert await storage.get_state(key) == "Form:step"
        assert await storage.get_data(key) == {"order_no": "T1001"}
        await storage.set_state(key, None)
        await storage.set_data(key, {})
    finally:
        await storage.close()
