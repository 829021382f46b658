"""Telegram's limits, held across every process that sends for the bot: about 30 messages a
second for the bot, one a second per chat, one every 3 s (20 a minute) per group.

One rule, three places to keep it:

- **in the process** (`LocalPacer`): SQLite, where one process runs;
- **in the database** (`DatabasePacer`): a small table `pace_marks`, one row per key (the bot,
  a chat) holding when it may next be sent to; on PostgreSQL each reservation is one
  statement that locks its rows (`FOR UPDATE`, in key order), run in a worker thread;
- **in Redis** (`RedisPacer`, when AFTERSALES_REDIS_URL is set): the same marks, updated by one
  Lua script (atomic on the server), through redis.asyncio.

The rule (a "virtual scheduling" of GCRA with no burst): a message to chat C is given the
slot `max(now, mark[bot], mark[C])`, and both marks move to that slot plus their interval.
Two slots of one key are thus never closer than its interval, whichever process took them;
the sender sleeps until its slot. A message that only counts for the bot (an edit) reserves
the bot's mark alone. The caller waits out `ready_in(chat)` before it reserves (and puts a
chat that must wait long back in the queue, bot/delivery.py): a slot reserved ahead for a
slow chat would push the bot's mark, and so every other chat, behind it.

Times are seconds on the pacer's `clock`: `time.time()` when shared (every process on a host
reads the same wall clock), the worker's monotonic clock in the process. The interface is
async and never waits on the event loop: the database calls run in a thread, Redis's are
asyncio.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine, create_engine, func, select, text, update

from tickets.db import dialect_insert
from tickets.models import PaceMark
from tickets.settings import Settings

BOT_KEY = "bot"
# Marks further ahead than this are kept in Redis a little longer than needed, then expire.
REDIS_SLACK_MS = 60_000


@dataclass(frozen=True)
class Limits:
    """Telegram's limits: messages a second for the bot, seconds between two messages to one
    chat, and to one group (negative chat ids)."""

    rate_per_second: float = 30.0
    per_chat_interval: float = 1.0
    group_interval: float = 3.0

    def interval(self, chat_id: int) -> float:
        return self.group_interval if chat_id < 0 else self.per_chat_interval

    @property
    def bot_interval(self) -> float:
        return 1.0 / self.rate_per_second


class Pacer(Protocol):
    """Where a message's turn comes from (module doc)."""

    limits: Limits
    # The clock the marks are kept on (seconds).
    clock: Callable[[], float]

    async def ready_in(self, chat_id: int) -> float:
        """Seconds until this chat may receive a message (0: now)."""

    async def reserve(self, chat_id: int | None) -> float:
        """Take the next slot for one message to `chat_id` (None: one that counts for the bot
        only, an edit); the seconds to wait until it (0: now)."""

    async def reserve_at(self, chat_id: int | None) -> float:
        """`reserve`, as the slot's time on `clock`: the caller measures its wait from when it
        reads the answer (a slot given by a thread, or by Redis, reaches the loop later)."""

    async def hold(self, chat_id: int, seconds: float) -> None:
        """Nothing goes to this chat before `seconds` from now (a flood wait; the interval
        counted again from Telegram's answer)."""

    async def close(self) -> None:
        """Let go of connections."""


def _keys(namespace: str, limits: Limits, chat_id: int | None) -> list[tuple[str, float]]:
    """The keys a message to `chat_id` moves, sorted (locks are always taken in one order),
    with their intervals."""
    keys = [(f"{namespace}{BOT_KEY}", limits.bot_interval)]
    if chat_id is not None:
        keys.append((f"{namespace}chat:{chat_id}", limits.interval(chat_id)))
    return sorted(keys)


class LocalPacer:
    """The marks in this process's memory: enough where one process sends (SQLite)."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._marks: dict[str, float] = {}

    async def ready_in(self, chat_id: int) -> float:
        return max(self._marks.get(f"chat:{chat_id}", 0.0) - self.clock(), 0.0)

    async def reserve(self, chat_id: int | None) -> float:
        return max(await self.reserve_at(chat_id) - self.clock(), 0.0)

    async def reserve_at(self, chat_id: int | None) -> float:
        now = self.clock()
        keys = _keys("", self.limits, chat_id)
        slot = max([now, *(self._marks.get(k, 0.0) for k, _ in keys)])
        for key, interval in keys:
            self._marks[key] = slot + interval
        return slot

    async def hold(self, chat_id: int, seconds: float) -> None:
        key = f"chat:{chat_id}"
        self._marks[key] = max(self._marks.get(key, 0.0), self.clock() + seconds)

    def forget(self) -> None:
        """Drop every mark (a test that moved its clock back)."""
        self._marks.clear()

    async def close(self) -> None:
        """Nothing to let go of."""


_TABLE: Any = PaceMark.__table__


# One statement, one round trip: the key rows locked in key order (two reservations never
# deadlock; a waiting one reads the marks its predecessor committed), the slot taken from
# them, and each mark moved to the slot plus its interval. No row is returned when a key has
# no row yet (its first message): the rows are made, and the statement run again.
_PG_RESERVE = text(
    """
    WITH locked AS (
        SELECT key, ready_at FROM pace_marks WHERE key = ANY(:keys) ORDER BY key FOR UPDATE
    ), slot AS (
        SELECT greatest(:now, max(ready_at)) AS at, count(*) AS n FROM locked
    )
    UPDATE pace_marks AS p
    SET ready_at = slot.at + CASE WHEN p.key = :bot THEN :bot_interval ELSE :chat_interval END
    FROM slot
    WHERE p.key = ANY(:keys) AND slot.n = :n
    RETURNING slot.at
    """
)


class DatabasePacer:
    """The marks in the `pace_marks` table, shared by every process on the database, each
    call in a worker thread (the event loop never waits on it). On PostgreSQL a reservation
    is one statement in autocommit (`_PG_RESERVE`); SQLite's `BEGIN IMMEDIATE` serialises a
    short transaction instead (tests; one process serves there)."""

    def __init__(
        self,
        engine: Engine,
        limits: Limits,
        *,
        namespace: str = "",
        clock: Callable[[], float] = time.time,
        owns_engine: bool = False,
    ) -> None:
        self.engine = engine
        self.limits = limits
        self.namespace = namespace
        self.clock = clock
        self.owns_engine = owns_engine
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = dialect_insert(engine.dialect.name)
        self._greatest = func.greatest if self._postgres else func.max

    @classmethod
    def beside(cls, engine: Engine, limits: Limits, **kwargs: Any) -> DatabasePacer:
        """A pacer with a small pool of its own on `engine`'s database: autocommit, and
        commits that do not wait for the disk (a mark lost in a crash costs one message's
        pace, never a message), so the pace never waits behind the app's pool or fsyncs."""
        own = create_engine(
            engine.url,
            isolation_level="AUTOCOMMIT",
            # A few at once is all the pace needs (a reservation takes under a millisecond);
            # every process opens its own: PostgreSQL's max_connections is shared by all.
            pool_size=2,
            max_overflow=4,
            pool_pre_ping=True,
            connect_args={"options": "-c synchronous_commit=off"},
        )
        pacer = cls(own, limits, owns_engine=True, **kwargs)
        # A worker dropped without `close()` (a test, a failed start) still closes its
        # connections, rather than leaving them for the garbage collector to find open.
        weakref.finalize(pacer, own.dispose)
        return pacer

    async def ready_in(self, chat_id: int) -> float:
        key = f"{self.namespace}chat:{chat_id}"
        mark = await asyncio.to_thread(self._read, key)
        return max(mark - self.clock(), 0.0)

    async def reserve(self, chat_id: int | None) -> float:
        return max(await self.reserve_at(chat_id) - self.clock(), 0.0)

    async def reserve_at(self, chat_id: int | None) -> float:
        keys = _keys(self.namespace, self.limits, chat_id)
        if self._postgres:
            return await asyncio.to_thread(self._reserve_pg, keys)
        return await asyncio.to_thread(self._reserve, keys)

    async def hold(self, chat_id: int, seconds: float) -> None:
        await asyncio.to_thread(self._hold, f"{self.namespace}chat:{chat_id}", seconds)

    async def close(self) -> None:
        if self.owns_engine:
            await asyncio.to_thread(self.engine.dispose)

    def _connect(self) -> Any:
        """A connection whose every statement commits on its own (PostgreSQL); on SQLite a
        transaction (its BEGIN IMMEDIATE is explicit), committed when the block ends."""
        if self._postgres:
            return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self.engine.begin()

    def _read(self, key: str) -> float:
        with self._connect() as conn:
            mark = conn.scalar(select(_TABLE.c.ready_at).where(_TABLE.c.key == key))
        return float(mark or 0.0)

    def _ensure(self, conn: Any, keys: Sequence[str]) -> None:
        """The keys' rows, made when missing (a first message): two processes making one at
        once never collide."""
        conn.execute(
            self._insert(_TABLE)
            .values([{"key": k, "ready_at": 0.0} for k in keys])
            .on_conflict_do_nothing(index_elements=[_TABLE.c.key])
        )

    def _reserve_pg(self, keys: list[tuple[str, float]]) -> float:
        names = [k for k, _ in keys]
        intervals = dict(keys)
        bot = names[0] if names[0].endswith(BOT_KEY) else names[-1]
        chat_interval = next((i for k, i in keys if k != bot), 0.0)
        with self._connect() as conn:
            for _ in range(2):
                now = self.clock()
                slot = conn.scalar(
                    _PG_RESERVE,
                    {
                        "keys": names,
                        "now": now,
                        "bot": bot,
                        "bot_interval": intervals[bot],
                        "chat_interval": chat_interval,
                        "n": len(names),
                    },
                )
                if slot is not None:
                    return float(slot)
                self._ensure(conn, names)
        raise RuntimeError(f"pace marks {names} could not be made")  # pragma: no cover

    def _reserve(self, keys: list[tuple[str, float]]) -> float:
        names = [k for k, _ in keys]
        with self.engine.begin() as conn:
            self._ensure(conn, names)
            query = select(_TABLE.c.ready_at).where(_TABLE.c.key.in_(names))
            marks = [float(m) for m in conn.scalars(query)]
            now = self.clock()
            slot = max([now, *marks])
            for key, interval in keys:
                conn.execute(
                    update(_TABLE).where(_TABLE.c.key == key).values(ready_at=slot + interval)
                )
        return slot

    def _hold(self, key: str, seconds: float) -> None:
        until = self.clock() + seconds
        stmt = self._insert(_TABLE).values(key=key, ready_at=until)
        # One atomic upsert: the mark moves later, never earlier.
        stmt = stmt.on_conflict_do_update(
            index_elements=[_TABLE.c.key],
            set_={"ready_at": self._greatest(_TABLE.c.ready_at, stmt.excluded.ready_at)},
        )
        with self._connect() as conn:
            conn.execute(stmt)


# KEYS: the marks to move; ARGV[1]: now; ARGV[2..]: each key's interval. Returns the slot.
# Numbers go back as strings: Redis would cut a Lua number to an integer.
_RESERVE = """
local now = tonumber(ARGV[1])
local slot = now
for _, key in ipairs(KEYS) do
  local mark = tonumber(redis.call('GET', key) or '0')
  if mark > slot then slot = mark end
end
for i, key in ipairs(KEYS) do
  local mark = slot + tonumber(ARGV[i + 1])
  local ttl = math.ceil((mark - now) * 1000) + tonumber(ARGV[#ARGV])
  redis.call('SET', key, string.format('%.6f', mark), 'PX', ttl)
end
return string.format('%.6f', slot)
"""
# KEYS[1]: a chat's mark; ARGV: now, seconds, slack. Moves it later, never earlier.
_HOLD = """
local until_ = tonumber(ARGV[1]) + tonumber(ARGV[2])
local mark = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > mark then
  local ttl = math.ceil(tonumber(ARGV[2]) * 1000) + tonumber(ARGV[3])
  redis.call('SET', KEYS[1], string.format('%.6f', until_), 'PX', ttl)
end
return 1
"""


class RedisPacer:
    """The marks in Redis, moved by one Lua script per call (atomic on the server, however
    many processes call it), through redis.asyncio (never blocking the loop)."""

    def __init__(
        self,
        client: Any,
        limits: Limits,
        *,
        namespace: str = "aftersales:pace:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.limits = limits
        self.namespace = namespace
        self.clock = clock
        self._reserve = client.register_script(_RESERVE)
        self._hold = client.register_script(_HOLD)

    @classmethod
    def from_url(cls, url: str, limits: Limits, **kwargs: Any) -> RedisPacer:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url), limits, **kwargs)

    async def ready_in(self, chat_id: int) -> float:
        mark = await self.client.get(f"{self.namespace}chat:{chat_id}")
        return max(float(mark or 0.0) - self.clock(), 0.0)

    async def reserve(self, chat_id: int | None) -> float:
        return max(await self.reserve_at(chat_id) - self.clock(), 0.0)

    async def reserve_at(self, chat_id: int | None) -> float:
        keys = _keys(self.namespace, self.limits, chat_id)
        slot = await self._reserve(
            keys=[k for k, _ in keys],
            args=[repr(self.clock()), *(repr(i) for _, i in keys), REDIS_SLACK_MS],
        )
        return float(slot)

    async def hold(self, chat_id: int, seconds: float) -> None:
        await self._hold(
            keys=[f"{self.namespace}chat:{chat_id}"],
            args=[repr(self.clock()), repr(seconds), REDIS_SLACK_MS],
        )

    async def close(self) -> None:
        await self.client.aclose()


def bot_namespace(settings: Settings) -> str:
    """Keys per bot (the token's numeric id, never the secret part): two shops' bots on one
    Redis do not share a pace."""
    bot_id = (settings.telegram_token or "").split(":", 1)[0] or "none"
    return f"{bot_id}:"


def build_pacer(
    settings: Settings,
    limits: Limits,
    *,
    engine: Engine | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> Pacer:
    """Redis when AFTERSALES_REDIS_URL is set; the database when it is PostgreSQL (several
    processes may send); this process's memory on SQLite (one process sends)."""
    if settings.redis_url:
        return RedisPacer.from_url(
            settings.redis_url, limits, namespace=f"aftersales:pace:{bot_namespace(settings)}"
        )
    if engine is not None and engine.dialect.name == "postgresql":
        return DatabasePacer.beside(engine, limits, namespace=bot_namespace(settings))
    return LocalPacer(limits, clock=monotonic)
