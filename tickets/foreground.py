"""Foreground first: while a person's request (a panel page, an API call) is being answered,
the bot's background work gives way for a moment.

Why: in one process the event loop and the bot's unit-of-work threads share one interpreter
lock. Under a flood of customers' updates the bot is never idle, and an agent's request then
waits its turn at that lock behind every busy thread. So each unit of work, before it starts,
waits while requests are in flight, at most `MOST_SECONDS`: a burst of requests slows the bot
a little, and never stops it.

The count is kept by the HTTP app's outermost middleware, on the event loop's thread only (so it
needs no lock); the threads only read it.
"""

from __future__ import annotations

import time

# The longest one unit of work waits for the requests in flight.
MOST_SECONDS = 0.02
# How often a waiting unit looks again.
STEP_SECONDS = 0.002


class Foreground:
    """How many people's requests are in flight (module doc)."""

    def __init__(self) -> None:
        self.in_flight = 0

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1

    def give_way(self, most: float | None = None) -> float:
        """Wait (a worker thread's sleep, releasing the interpreter) while requests are in
        flight, at most `most` seconds (`MOST_SECONDS`); the seconds waited."""
        if not self.in_flight:
            return 0.0
        start = time.monotonic()
        deadline = start + (MOST_SECONDS if most is None else most)
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(STEP_SECONDS)
        return time.monotonic() - start


# The process's count: the HTTP app marks, the bot's threads give way (bot/threads.py).
FOREGROUND = Foreground()
