"""Clocks a test moves itself, so no test waits on, or measures, the wall clock."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from datetime import datetime
from typing import Any, TypeVar, TypeVarTuple, Unpack

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class Clock:
    """A clock the test moves by hand (the product's `clock`: an aware datetime)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class SecondsClock:
    """Seconds (a pacer's `clock`), moved by the test through `t`; one instance may serve
    several pacers, as one host's clock serves its processes."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock (`time()`) stands still while anything can run and jumps to
    the next timer when nothing can: no task is ready, no thread (`asyncio.to_thread`) is at
    work, no socket has data. `asyncio.sleep` then takes no real time, and the seconds between
    two readings of `time()` are exactly what the code under test slept, whatever the load of
    the machine. Pass `loop.time` where the code takes a monotonic clock."""

    def __init__(self, start: float = 1_000.0) -> None:
        self._now = start
        self._threads = 0
        super().__init__(_SkipIdle(self))

    def time(self) -> float:
        return self._now

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[Ts]], T], *args: *Ts
    ) -> asyncio.Future[T]:
        # A thread at work may hand the loop something to do: time waits for it.
        future = super().run_in_executor(executor, func, *args)
        self._threads += 1
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _: object) -> None:
        self._threads -= 1

    def skip(self, seconds: float) -> bool:
        """Move the clock on by `seconds` if nothing is at work in a thread."""
        if self._threads:
            return False
        self._now += seconds
        return True

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` to its end on this loop, then close the loop."""
        try:
            return self.run_until_complete(coro)
        finally:
            self.run_until_complete(self.shutdown_default_executor())
            self.close()


class _SkipIdle(selectors.DefaultSelector):
    """The loop's selector: a wait for the next timer, with nothing ready on the sockets and
    no thread at work, becomes a jump of the virtual clock."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0:
            ready = super().select(0)
            if ready or not self._loop.skip(timeout):
                # Something to do, or a thread to wait for (it wakes the loop when done).
                return ready or super().select(timeout)
            return ready
        return super().select(timeout)
