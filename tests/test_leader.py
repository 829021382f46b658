"""Which process polls (bot/leader.py): one PostgreSQL advisory lock per bot; the holder
polls, the others are refused until it lets go or its connection dies. On SQLite (one
process) the right is always granted."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from bot.leader import PollerLock, lock_key
from tests.conftest import PG_URL
from tickets.db import make_engine


async def test_on_sqlite_the_one_process_always_polls(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    try:
        lock = PollerLock(engine, "42")
        assert await lock.acquire() and await lock.still_held()
        assert await PollerLock(engine, "42").acquire()
    finally:
        engine.dispose()


def test_each_bot_has_a_key_of_its_own() -> None:
    assert lock_key("42") != lock_key("43")
    assert -(2**63) <= lock_key("42") < 2**63  # PostgreSQL's bigint


@pytest.mark.skipif(not PG_URL, reason="advisory locks: runs in the PostgreSQL pass")
async def test_one_holder_at_a_time_and_a_successor_when_it_goes(fresh_db_url: str) -> None:
    engines = [make_engine(fresh_db_url) for _ in range(3)]
    try:
        first, second, other_bot = (
            PollerLock(engines[0], "42"),
            PollerLock(engines[1], "42"),
            PollerLock(engines[2], "43"),
        )
        assert await first.acquire()
        assert not await second.acquire()  # stands by
        assert await other_bot.acquire()  # another bot's poller is not held up
        await first.release()
        assert await second.acquire()  # takes over

        # The holder's connection dies (the database restarted it): the lock is gone, and
        # the holder notices rather than polling on beside a successor.
        with engines[0].connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND pid <> pg_backend_pid() "
                    "AND (classid::bigint << 32 | objid::bigint) = :k"
                ),
                {"k": lock_key("42") & 0xFFFFFFFFFFFFFFFF},
            )
        assert not await second.still_held()
        assert await first.acquire()
        await first.release()
        await other_bot.release()
    finally:
        for e in engines:
            e.dispose()
