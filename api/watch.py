"""One watcher per process for the live pages' event streams: the web chat's (api/chat/stream.py)
and the panel's notifications (api/panel/notifications.py).

A stream waits off the database until it is woken. What another process (or a request on
another path) writes is found by this one watcher: every `AFTERSALES_WATCH_SECONDS` one thread
step reads, in one read session, every source's rows newer than the last it saw (new web chat
outbox rows, new notifications), and each source wakes only the streams they are for. Nobody
listening: no database read at all. The event loop never waits on the database: the step runs
in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import QueryableAttribute, Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

log = logging.getLogger(__name__)

# Rows read per source in one step (a backlog after a quiet spell is read over several steps).
STEP_ROWS = 10_000


@dataclass(frozen=True)
class Source:
    """One kind of row to watch: `id` (the table's growing id), `key` (whom a row is for),
    `where` (which rows count), and `wake` (wake the streams of a key), `listening` (whether
    any stream is open: none, the source is not read)."""

    name: str
    id: QueryableAttribute[int]
    key: QueryableAttribute[Any]
    where: tuple[ColumnElement[bool], ...]
    wake: Callable[[Any], None]
    listening: Callable[[], bool]

    def latest(self) -> Select[Any]:
        return select(func.max(self.id)).where(*self.where)

    def since(self, last: int) -> Select[Any]:
        return (
            select(self.id, self.key)
            .where(*self.where, self.id > last)
            .order_by(self.id)
            .limit(STEP_ROWS)
        )


class Watcher:
    """The process's watcher (module doc); `start` on the running loop, `stop` at shutdown."""

    def __init__(self, read_sessions: sessionmaker[Session], interval: float) -> None:
        self.read_sessions = read_sessions
        self.interval = interval
        self.sources: list[Source] = []
        # The last id seen per source (None: not read yet).
        self._last: dict[str, int | None] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, source: Source) -> None:
        self.sources.append(source)
        self._last[source.name] = None

    def start(self) -> None:
        """Start watching (on the running loop) if it is not running."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="stream-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            watched = [s for s in self.sources if s.listening()]
            if watched:
                try:
                    found = await asyncio.to_thread(self.step, watched)
                except Exception:
                    # The database is away for a moment: the streams wait, the watcher retries.
                    log.exception("stream watcher: could not read")
                else:
                    for source, keys in found:
                        for key in keys:
                            source.wake(key)
            await asyncio.sleep(self.interval)

    def step(self, sources: list[Source]) -> list[tuple[Source, set[Any]]]:
        """One look (module doc), in a thread: each source's keys with new rows. A source read
        for the first time only learns where it stands (its streams read what is there)."""
        found: list[tuple[Source, set[Any]]] = []
        with self.read_sessions() as session:
            for source in sources:
                last = self._last[source.name]
                if last is None:
                    self._last[source.name] = int(session.scalar(source.latest()) or 0)
                    continue
                rows = session.execute(source.since(last)).all()
                if rows:
                    self._last[source.name] = int(rows[-1][0])
                    found.append((source, {r[1] for r in rows}))
        return found
