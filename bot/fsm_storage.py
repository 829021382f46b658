"""Conversation state (aiogram FSM) kept in our database, so a restart loses no half-filled
request; aiogram's RedisStorage instead when AFTERSALES_REDIS_URL is set.

While an update is handled, the state is read and written through that update's own session
(`bind`), so it commits or rolls back with everything else the update did: a handler that fails
leaves the customer at the step they were on, never at a step whose work was undone. Outside an
update (a script, a test) each call is a short transaction of its own, in a thread (never a
database wait on the event loop).

With Redis the update's handlers run on a unit-of-work thread's loop (bot/threads.py), where
the Redis client (made for the main loop) cannot be awaited: the middleware reads the
conversation into a `BufferedState` before the hand-off and writes it back after the
database commit, under the same per-chat lock. The crash window: a process killed between the
commit and the write-back keeps the update's work (and its dedupe row, so a redelivery is
ignored) but not its step; the customer is one step behind and repeats it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseEventIsolation,
    BaseStorage,
    DefaultKeyBuilder,
    KeyBuilder,
    StateType,
    StorageKey,
)
from aiogram.fsm.storage.memory import SimpleEventIsolation
from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.orm import Session, sessionmaker

from tickets.db import PerDialect, unit_of_work
from tickets.models import FsmRecord, utcnow
from tickets.settings import Settings

# Where a bound session keeps the conversations it read: key -> [state, data, changed].
_CACHE = "aftersales.fsm"


# The statements are Core ones on the table, run on the session's connection: the ORM's
# execution path (autoflush, bulk-insert bookkeeping) costs more than the statements themselves,
# and no FsmRecord object is ever pending in an update's session.
_TABLE = cast(Table, FsmRecord.__table__)


def _upsert(insert: Any) -> Any:
    stmt = insert(_TABLE).values(
        key=bindparam("k"),
        state=bindparam("s"),
        data=bindparam("d", type_=_TABLE.c.data.type),
        updated_at=bindparam("u", type_=_TABLE.c.updated_at.type),
    )
    return stmt.on_conflict_do_update(
        index_elements=[_TABLE.c.key],
        set_={
            "state": stmt.excluded.state,
            "data": stmt.excluded.data,
            "updated_at": stmt.excluded.updated_at,
        },
    )


# Built once: every update of a conversation writes through them, and a statement built anew
# each time pays for its construction and its cache key again.
_UPSERTS = PerDialect(_upsert)
_READ = select(_TABLE.c.state, _TABLE.c.data).where(_TABLE.c.key == bindparam("k"))
_DELETE = delete(_TABLE).where(_TABLE.c.key == bindparam("k"))


class DatabaseStorage(BaseStorage):
    """An aiogram storage on the `fsm_records` table, one row per storage key (deleted when
    the conversation has neither state nor data)."""

    def __init__(
        self, sessions: sessionmaker[Session], key_builder: KeyBuilder | None = None
    ) -> None:
        self._sessions = sessions
        self._key_builder = key_builder or DefaultKeyBuilder(with_destiny=True)
        # Per storage object, per task: the session of the update being handled, if any.
        self._bound: ContextVar[Session | None] = ContextVar(
            f"fsm_session_{id(self)}", default=None
        )

    @contextmanager
    def bind(self, session: Session) -> Iterator[None]:
        """Within the block, state is read and written through `session` (the update's unit of
        work), so it commits or rolls back with it. Reads are cached and writes kept in the
        session until `flush(session)` (the middleware calls it just before committing): one
        read and at most one write per conversation per update, however often a handler
        touches its state."""
        token = self._bound.set(session)
        try:
            yield
        finally:
            self._bound.reset(token)

    def flush(self, session: Session) -> None:
        """Write the conversations changed through `session` (call before its commit)."""
        cache: dict[str, list[Any]] = session.info.pop(_CACHE, {})
        for key, (state, data, dirty) in cache.items():
            if dirty:
                self._write(session, key, state, data)

    def _load(self, key: str) -> tuple[str | None, dict[str, Any]]:
        bound = self._bound.get()
        if bound is None:
            with unit_of_work(self._sessions) as session:
                return self._read(session, key) or (None, {})
        cache: dict[str, list[Any]] = bound.info.setdefault(_CACHE, {})
        if key not in cache:
            state, data = self._read(bound, key) or (None, {})
            cache[key] = [state, data, False]
        state, data, _ = cache[key]
        return state, dict(data)

    def _store(self, key: str, state: str | None, data: dict[str, Any]) -> None:
        bound = self._bound.get()
        if bound is None:
            with unit_of_work(self._sessions) as session:
                self._write(session, key, state, data)
            return
        bound.info.setdefault(_CACHE, {})[key] = [state, dict(data), True]

    def _key(self, key: StorageKey) -> str:
        return self._key_builder.build(key)

    @staticmethod
    def _read(session: Session, key: str) -> tuple[str | None, dict[str, Any]] | None:
        row = session.connection().execute(_READ, {"k": key}).one_or_none()
        if row is None:
            return None
        return row.state, dict(row.data or {})

    @staticmethod
    def _write(session: Session, key: str, state: str | None, data: dict[str, Any]) -> None:
        conn = session.connection()
        if state is None and not data:
            conn.execute(_DELETE, {"k": key})
            return
        # One upsert: two processes writing the same new key never collide on the primary key.
        stmt = _UPSERTS(conn)
        conn.execute(stmt, {"k": key, "s": state, "d": data, "u": utcnow()})

    def _set(self, k: str, state: str | None, data: dict[str, Any] | None) -> None:
        """Replace the state (or, with `data`, the data) of conversation `k`."""
        old_state, old_data = self._load(k)
        if data is None:
            self._store(k, state, old_data)
        else:
            self._store(k, old_state, data)

    async def _call(self, fn: Any, *args: Any) -> Any:
        # Bound: on the update's unit-of-work thread already. Unbound: a transaction of its
        # own, in a thread (the guard in tickets/db.py refuses it on the loop).
        if self._bound.get() is not None:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._call(self._set, self._key(key), value, None)

    async def get_state(self, key: StorageKey) -> str | None:
        state, _ = await self._call(self._load, self._key(key))
        return cast(str | None, state)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            raise DataNotDictLikeError(
                f"Data must be a dict or dict-like object, got {type(data).__name__}"
            )
        await self._call(self._set, self._key(key), None, dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        _, data = await self._call(self._load, self._key(key))
        return cast(dict[str, Any], data)

    async def close(self) -> None:
        """Nothing to close: the sessions belong to the caller's engine."""


class BufferedState(BaseStorage):
    """One conversation's state and data, read before the hand-off from a storage the unit of
    work's loop cannot await (Redis), kept here while the handler runs, written back after the
    commit (`write_back`; module doc). Only the update's own conversation is served."""

    def __init__(self, key: StorageKey, state: str | None, data: dict[str, Any]) -> None:
        self.key = key
        self.state = state
        self.data = dict(data)
        self.changed = False

    @classmethod
    async def read(cls, storage: BaseStorage, key: StorageKey) -> BufferedState:
        return cls(key, await storage.get_state(key), await storage.get_data(key))

    def _own(self, key: StorageKey) -> None:
        if key != self.key:
            raise RuntimeError("a handler may only touch its own conversation's state")

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        self._own(key)
        self.state = state.state if isinstance(state, State) else state
        self.changed = True

    async def get_state(self, key: StorageKey) -> str | None:
        self._own(key)
        return self.state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        self._own(key)
        if not isinstance(data, dict):
            raise DataNotDictLikeError(
                f"Data must be a dict or dict-like object, got {type(data).__name__}"
            )
        self.data = dict(data)
        self.changed = True

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        self._own(key)
        return dict(self.data)

    async def write_back(self, storage: BaseStorage) -> None:
        """Write what the handler changed to `storage` (on the loop that owns it)."""
        if self.changed:
            await storage.set_data(self.key, self.data)
            await storage.set_state(self.key, self.state)
            self.changed = False

    async def close(self) -> None:
        """Nothing to close: the real storage is the caller's."""


def build_storage(
    settings: Settings, sessions: sessionmaker[Session]
) -> tuple[BaseStorage, BaseEventIsolation]:
    """The FSM storage and event isolation for these settings: Redis (shared by several bot
    processes) when `redis_url` is set, else our database with in-process isolation."""
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        redis_storage = RedisStorage.from_url(
            settings.redis_url, key_builder=DefaultKeyBuilder(with_destiny=True)
        )
        return redis_storage, redis_storage.create_isolation()
    return DatabaseStorage(sessions), SimpleEventIsolation()
