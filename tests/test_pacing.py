"""Telegram's limits shared by several processes (bot/pacing.py): two pacers on one database
(SQLite, PostgreSQL) or one Redis, taking slots at once, never grant more than the limits
together. Time is an injected clock; grants are counted per window, nothing is timed."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from bot.pacing import DatabasePacer, Limits, LocalPacer, Pacer, RedisPacer, build_pacer
from tests.conftest import ON_CI
from tests.fakes.clock import SecondsClock
from tickets.db import make_engine
from tickets.settings import Settings

REDIS_URL = os.environ.get("AFTERSALES_TEST_REDIS_URL")
LIMITS = Limits(rate_per_second=30.0, per_chat_interval=1.0, group_interval=3.0)
# Float sums on the marks: a grant may land this much early without breaking anything real.
EPS = 1e-4
CUSTOMERS = [5001, 5002, 5003, 5004]
GROUP = -1001234


async def hammer(pacers: Sequence[Pacer], clock: SecondsClock, rounds: int = 40) -> list[Any]:
    """Both pacers take slots at the same moment, round after round, for customers, the
    agents' group and edits (bot only); returns (chat or None, granted time)."""
    rng = random.Random(7)
    grants: list[tuple[int | None, float]] = []
    for _ in range(rounds):
        asks = [
            (p, rng.choice([*CUSTOMERS, GROUP, None]))
            for p in pacers
            for _ in range(rng.randint(1, 4))
        ]
        waits = await asyncio.gather(*(p.reserve(chat) for p, chat in asks))
        now = clock.t
        grants.extend((chat, now + wait) for (_, chat), wait in zip(asks, waits, strict=True))
        clock.t += rng.choice([0.0, 0.02, 0.1, 0.4])
    return grants


def assert_within_limits(grants: list[Any]) -> None:
    times = sorted(t for _, t in grants)
    assert len(times) >= 100
    # The bot: no two slots closer than 1/30 s, so no one-second window holds more than 30.
    for a, b in itertools.pairwise(times):
        assert b - a >= LIMITS.bot_interval - EPS, (a, b)
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t < start + 1.0 - EPS)
        assert in_window <= 30
    # Each chat: a customer one a second, the group one every 3 s (20 a minute).
    for chat in [*CUSTOMERS, GROUP]:
        mine = sorted(t for c, t in grants if c == chat)
        assert mine, chat
        for a, b in itertools.pairwise(mine):
            assert b - a >= LIMITS.interval(chat) - EPS, (chat, a, b)
        for i, start in enumerate(mine):
            per_minute = sum(1 for t in mine[i:] if t < start + 60.0 - EPS)
            assert per_minute <= (20 if chat < 0 else 60)


async def test_one_local_pacer_keeps_the_limits() -> None:
    clock = SecondsClock()
    assert_within_limits(await hammer([LocalPacer(LIMITS, clock=clock)], clock))


async def test_two_processes_in_memory_would_break_them() -> None:
    """Why the pace is shared: two processes each pacing alone send to one chat twice within
    its second (what the shared pacers below prevent)."""
    clock = SecondsClock()
    a, b = LocalPacer(LIMITS, clock=clock), LocalPacer(LIMITS, clock=clock)
    assert (await a.reserve(5001), await b.reserve(5001)) == (0.0, 0.0)


@pytest.fixture
def two_db_pacers(fresh_db_url: str) -> Any:
    """Two pacers with engines of their own (two processes) on one database."""
    clock = SecondsClock()
    engines = [make_engine(fresh_db_url) for _ in range(2)]
    yield [DatabasePacer(e, LIMITS, namespace="1:", clock=clock) for e in engines], clock
    for e in engines:
        e.dispose()


async def test_two_database_pacers_keep_the_limits_together(two_db_pacers: Any) -> None:
    pacers, clock = two_db_pacers
    grants = await hammer(pacers, clock)
    assert_within_limits(grants)


async def test_a_flood_wait_told_to_one_process_holds_the_other(two_db_pacers: Any) -> None:
    (a, b), _clock = two_db_pacers
    await a.hold(5001, 7.0)
    assert await b.ready_in(5001) == pytest.approx(7.0)
    assert await b.reserve(5001) == pytest.approx(7.0)
    assert await b.ready_in(5002) == 0.0  # other chats are not held
    # A hold never brings a mark earlier.
    await a.hold(5001, 1.0)
    assert await b.ready_in(5001) == pytest.approx(8.0)


@pytest.fixture
async def two_redis_pacers() -> AsyncIterator[Any]:
    if not REDIS_URL:
        reason = "needs AFTERSALES_TEST_REDIS_URL (the Makefile's test passes set it)"
        if ON_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    from redis.asyncio import Redis
    from redis.exceptions import ConnectionError as RedisDown

    try:
        async with Redis.from_url(REDIS_URL) as probe:
            await probe.ping()
    except RedisDown as exc:
        if ON_CI:
            pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable (CI runs these)")
    clock = SecondsClock()
    namespace = f"aftersales:test:{uuid.uuid4().hex[:8]}:"
    pacers = [
        RedisPacer.from_url(REDIS_URL, LIMITS, namespace=namespace, clock=clock) for _ in range(2)
    ]
    yield pacers, clock
    keys = [k async for k in pacers[0].client.scan_iter(f"{namespace}*")]
    if keys:
        await pacers[0].client.delete(*keys)
    for p in pacers:
        await p.close()


async def test_two_redis_pacers_keep_the_limits_together(two_redis_pacers: Any) -> None:
    pacers, clock = two_redis_pacers
    assert_within_limits(await hammer(pacers, clock))


async def test_a_flood_wait_in_redis_holds_the_other_process(two_redis_pacers: Any) -> None:
    (a, b), _clock = two_redis_pacers
    await a.hold(GROUP, 30.0)
    assert await b.ready_in(GROUP) == pytest.approx(30.0)
    assert await b.reserve(GROUP) == pytest.approx(30.0)


def test_the_pace_is_kept_where_the_processes_meet(tmp_path: Any) -> None:
    def settings(**kw: Any) -> Settings:
        return Settings(_env_file=None, telegram_token="42:secret", **kw)

    sqlite = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    assert isinstance(build_pacer(settings(), LIMITS, engine=sqlite), LocalPacer)
    sqlite.dispose()
    redis = build_pacer(settings(redis_url="redis://127.0.0.1:1/0"), LIMITS, engine=sqlite)
    assert isinstance(redis, RedisPacer)
    assert redis.namespace == "aftersales:pace:42:"  # the bot's id, never its secret
    pg = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # not connected to
    pacer = build_pacer(settings(), LIMITS, engine=pg)
    assert isinstance(pacer, DatabasePacer) and pacer.namespace == "42:"
    pg.dispose()
