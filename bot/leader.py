"""Which process polls Telegram. `getUpdates` cannot be shared: two processes polling one bot
make Telegram refuse one of them (409 Conflict) and hand updates to either at random. So on
PostgreSQL every `aftersales serve` process asks for one advisory lock, per bot, held on a
connection of its own: the one that gets it polls, the others stand by and ask again every
few seconds. When the polling process stops or dies its connection closes, PostgreSQL lets go
of the lock, and another process takes over polling within `RETRY_SECONDS`.

On SQLite there is one process (api/cli.py refuses a second): it always polls.

What is not covered: if the lock's connection breaks while its process lives on (PostgreSQL
restarted), another process may take the lock and both poll until the first notices
(`still_held`, checked every `RETRY_SECONDS`): Telegram answers one of them 409 meanwhile, and
aiogram retries; no update is handled twice (the inbound log dedupes by update id).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

RETRY_SECONDS = 3.0


def lock_key(bot_id: str) -> int:
    """A signed 64-bit advisory lock key for this bot (two bots on one database, two keys)."""
    digest = hashlib.sha256(f"aftersales:poller:{bot_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PollerLock:
    """The right to poll for one bot (module doc). `engine` None or SQLite: always granted."""

    def __init__(self, engine: Engine | None, bot_id: str) -> None:
        self.shared = engine is not None and engine.dialect.name == "postgresql"
        self.engine = engine
        self.key = lock_key(bot_id)
        self._conn: Any = None

    @property
    def held(self) -> bool:
        return self._conn is not None or not self.shared

    async def acquire(self) -> bool:
        """Take the lock if no other process holds it; whether this process holds it now."""
        if self.held:
            return True
        return await asyncio.to_thread(self._try)

    async def still_held(self) -> bool:
        """Whether the lock's connection is alive (a lost connection lost the lock)."""
        if not self.shared:
            return True
        if self._conn is None:
            return False
        return await asyncio.to_thread(self._ping)

    async def release(self) -> None:
        if self._conn is not None:
            await asyncio.to_thread(self._close)

    def _try(self) -> bool:
        assert self.engine is not None
        # Autocommit: the lock belongs to the session, and no transaction stays open idle
        # for as long as this process polls.
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}))
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _ping(self) -> bool:
        try:
            self._conn.scalar(text("SELECT 1"))
        except SQLAlchemyError:
            log.warning("the connection holding the poller lock broke: polling stops here")
            self._close()
            return False
        return True

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.scalar(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        except SQLAlchemyError:
            pass  # a broken connection: the lock went with it
        finally:
            # Closed for good, not pooled: a session that still held the lock (an unlock
            # that failed) must not live on in the pool.
            conn.invalidate()
            conn.close()
