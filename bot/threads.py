"""The bot's unit-of-work threads: where an update's whole database work runs, off the event
loop (README, "Architecture"; tickets/db.py's guard enforces it).

The handlers are `async def` (aiogram's), but they never wait on the network: their answers go
to the outbox through `Replies`. So each thread keeps an event loop of its own (an
`asyncio.Runner`, made on first use and reused for every later update) and runs the handler
chain to completion on it, with the update's session. The process's main loop meanwhile goes
on with polling, HTTP requests and sending; it only waits (without blocking) for the result.

The pool is bounded: a flood of updates queues for a thread instead of opening a connection
each (the engine's pool is shared with the HTTP side).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tickets.db import mark_worker_thread
from tickets.foreground import FOREGROUND

T = TypeVar("T")

# Threads for units of work. On PostgreSQL they overlap, and more than the cores pays while
# one waits on the database. On SQLite a unit of work holds the one write lock from its first
# statement to its commit, so threads beyond the second add no overlap, only a fight for the
# GIL: every statement gives the GIL up and waits for it again behind the others (measured with
# bench.bot_inbound, 400 customers: 181 updates/s with 4 threads, 224 with 2, 240 with 1). Two,
# not one: a unit of work held up before its transaction must not stop the other chats
# (issue 18: different chats run at the same time; tests/test_runtime.py).
DEFAULT_THREADS = 4
SQLITE_THREADS = 2


def threads_for(dialect: str) -> int:
    """How many unit-of-work threads pay on this database (the comment above)."""
    return SQLITE_THREADS if dialect == "sqlite" else DEFAULT_THREADS


class UnitOfWorkThreads:
    """A bounded pool of marked threads, each with a private event loop (module doc)."""

    def __init__(self, size: int = DEFAULT_THREADS) -> None:
        if not 1 <= size <= 64:
            raise ValueError("unit-of-work threads: between 1 and 64")
        self._pool = ThreadPoolExecutor(
            max_workers=size, thread_name_prefix="unit-of-work", initializer=mark_worker_thread
        )
        self._local = threading.local()
        self._runners: list[asyncio.Runner] = []
        self._lock = threading.Lock()

    def _runner(self) -> asyncio.Runner:
        runner: asyncio.Runner | None = getattr(self._local, "runner", None)
        if runner is None:
            runner = asyncio.Runner()
            self._local.runner = runner
            with self._lock:
                self._runners.append(runner)
        return runner

    def _run(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        # People's requests first (tickets/foreground.py): a short wait, here, off the loop.
        FOREGROUND.give_way()
        # The caller's context (copied when handed off) is the task's: context variables set
        # by the caller, and by `work` before its first await, are seen by the handlers.
        return self._runner().run(work(), context=contextvars.copy_context())

    async def run(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run the coroutine `work()` makes on one of the threads' loops; its result (or its
        exception) comes back here without blocking this loop."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._pool, context.run, self._run, work)

    def close(self) -> None:
        """Wait for the units of work in flight, then close the threads' loops. Blocks: call
        it off the event loop (a loop cannot be closed from a thread running another)."""
        self._pool.shutdown(wait=True)
        with self._lock:
            runners, self._runners = self._runners, []
        for runner in runners:
            runner.close()


_shared: dict[int, UnitOfWorkThreads] = {}
_shared_lock = threading.Lock()


def shared_threads(size: int = DEFAULT_THREADS) -> UnitOfWorkThreads:
    """The process's pool of `size` threads (made on first use): every Dispatcher of the
    process shares it, so the threads and their loops are made once and live as long as the
    process. (A process has one database; tests that build bots on both share per size.)"""
    with _shared_lock:
        pool = _shared.get(size)
        if pool is None:
            pool = _shared[size] = UnitOfWorkThreads(size)
        return pool
