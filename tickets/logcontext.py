"""What a log line is about: the HTTP request, the bot update and the case it was written for.

Three context variables, set where the work starts (the HTTP middleware, api/observe.py; the
bot's unit of work, bot/middlewares.py) and where a case is taken up (loading it by number,
recording an event on it: tickets/cases/), and `LogContext`, a logging filter that copies them
onto every record. With `AFTERSALES_LOG_FORMAT=json` (api/processes.py) each line carries the
ones that are set: `request_id`, `update_id`, `case`.

Context variables follow the work, not the thread: a request's worker thread, a bot update's
unit-of-work thread and the sweep's thread each run in a copy of the context they were handed
off from (anyio, bot/threads.py, asyncio.to_thread), so what is set before the hand-off shows
there, and what a thread sets stays with that piece of work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("aftersales_request_id", default=None)
UPDATE_ID: ContextVar[int | None] = ContextVar("aftersales_update_id", default=None)
CASE: ContextVar[str | None] = ContextVar("aftersales_case", default=None)


def about_case(number: str | None) -> None:
    """The work under way now concerns this case (its later log lines carry the number)."""
    if number:
        CASE.set(number)


@contextmanager
def case_scope(number: str | None = None) -> Iterator[None]:
    """A piece of work about one case inside a longer one (the sweep's clocks): the number it
    sets is forgotten when the block ends, so the next case's lines do not carry it."""
    token = CASE.set(number)
    try:
        yield
    finally:
        CASE.reset(token)


class LogContext(logging.Filter):
    """Copies the request id, the update id and the case number onto each record (as
    `request_id`, `update_id`, `case`), only those that are set."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("request_id", REQUEST_ID), ("update_id", UPDATE_ID), ("case", CASE)):
            value = var.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True
