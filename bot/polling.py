"""Polling Telegram so that a killed process loses no update.

Telegram forgets an update once a `getUpdates` call asks for a later offset. aiogram's own
polling asks for the next batch as soon as it has handed the current one to tasks, so the
updates still being handled are already confirmed: a SIGKILL (or a crash) in that moment
loses them, their transactions never committed. Here the offset confirms only what is done:
it stays at the oldest update still being handled. Telegram then sends the unfinished ones
again with the next batch; they are skipped here (already under way), and after a crash the
new process handles them again, where the inbound log's unique update id makes a second
handling a no-op (bot/middlewares.py). So inbound is at least once, and effectively once.

Updates of one chat are handled in order (each waits for the previous one of its chat);
different chats concurrently. While some are being handled, Telegram is asked without a
long poll (it would answer at once with the unconfirmed ones), a few times a second at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramConflictError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.methods import GetUpdates
from aiogram.types import Update

log = logging.getLogger(__name__)

# Telegram's long poll (seconds) when nothing is being handled.
LONG_POLL_SECONDS = 25
# While updates are being handled: how long to wait for one to finish before asking again.
BUSY_RECHECK_SECONDS = 0.2
# Telegram sends at most 100 a call; fewer keeps one slow update from holding many behind
# the offset.
BATCH = 100
# While busy, ask again only once this many of a call's places can hold fresh updates: the
# ones taken and not yet confirmed come back first, and parsing them again (on the event loop,
# 100 at a time after every finished update) is what made a flood stall the HTTP side.
REFETCH_ROOM = BATCH // 2
# After Telegram could not be reached: wait, doubling up to the cap.
BACKOFF_FIRST, BACKOFF_CAP = 1.0, 30.0
# A flood wait longer than this (seconds) is cut short: asked again then (and told again).
RETRY_AFTER_CAP = 3600.0


def chat_key(update: Update) -> int | None:
    """The chat (or user) whose updates must be handled in order; None: no order needed."""
    event = update.event
    chat = getattr(event, "chat", None)
    if chat is not None:
        return int(chat.id)
    user = getattr(event, "from_user", None)
    return int(user.id) if user is not None else None


class Poller:
    """Fetches updates and feeds them to the dispatcher, confirming only what is handled."""

    def __init__(
        self,
        bot: Bot,
        dispatcher: Dispatcher,
        *,
        allowed_updates: list[str] | None = None,
        long_poll: int = LONG_POLL_SECONDS,
    ) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.allowed_updates = allowed_updates
        self.long_poll = long_poll
        # update id -> its task, for every update taken and not yet handled.
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self._last_of_chat: dict[int, asyncio.Task[None]] = {}
        self._newest = -1  # the highest update id taken
        # Set when a finished update leaves room for fresh ones in the next call.
        self._room = asyncio.Event()

    @property
    def offset(self) -> int | None:
        """What the next call confirms below: the oldest unfinished update, else the next."""
        if self.in_flight:
            return min(self.in_flight)
        return self._newest + 1 if self._newest >= 0 else None

    def _again(self) -> int:
        """How many taken updates the next call would bring back (at most: ids may skip)."""
        if not self.in_flight:
            return 0
        return self._newest - min(self.in_flight) + 1

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; then wait for the updates being handled (the caller's
        grace) and confirm them."""
        backoff = BACKOFF_FIRST
        while not stop.is_set():
            if BATCH - self._again() < REFETCH_ROOM:
                # Mostly the ones under way would come back: wait for room (or the recheck).
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), timeout=BUSY_RECHECK_SECONDS)
                continue
            busy = bool(self.in_flight)
            try:
                updates = await self._fetch(stop, timeout=0 if busy else self.long_poll)
            except TelegramConflictError:
                # Telegram's 409: another getUpdates (or a webhook) for this bot elsewhere.
                log.warning(
                    "Telegram says another client polls this bot (another deployment, or a "
                    "webhook set); again in %ss",
                    backoff,
                )
                await _wait(stop, backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
                continue
            except TelegramNetworkError as exc:
                log.warning("Telegram unreachable while polling (%s); again in %ss", exc, backoff)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
                continue
            except TelegramRetryAfter as exc:
                # Telegram's flood wait: as long as it says (one line, no traceback).
                wait = min(float(exc.retry_after), RETRY_AFTER_CAP)
                log.warning("Telegram asks to wait while polling (%s); again in %ss", exc, wait)
                await _wait(stop, wait)
                continue
            except TelegramAPIError as exc:
                # A 5xx (Telegram failing for a moment) or a refusal: one warning line, not a
                # traceback on every retry.
                log.warning("polling failed (%s); again in %ss", exc, backoff)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
                continue
            backoff = BACKOFF_FIRST
            fresh = [u for u in updates or [] if u.update_id > self._newest]
            for update in fresh:
                self._take(update)
            if self.in_flight and not fresh:
                # Only the unfinished ones came back: wait for one to end, not spin.
                await asyncio.wait(list(self.in_flight.values()), timeout=BUSY_RECHECK_SECONDS)

    async def finish(self, grace: float) -> int:
        """Wait up to `grace` seconds for the updates being handled, then confirm what is
        done to Telegram (so a restart does not fetch them again). Returns how many were
        still running (cut short: Telegram sends them again to whoever polls next)."""
        if self.in_flight:
            await asyncio.wait(list(self.in_flight.values()), timeout=grace)
        late = len(self.in_flight)
        if self.offset is not None:
            with contextlib.suppress(TelegramAPIError):
                await self.bot(GetUpdates(offset=self.offset, limit=1, timeout=0))
        return late

    async def _fetch(self, stop: asyncio.Event, timeout: int) -> list[Update] | None:
        call = GetUpdates(
            offset=self.offset, limit=BATCH, timeout=timeout, allowed_updates=self.allowed_updates
        )
        fetch = asyncio.ensure_future(self.bot(call, request_timeout=timeout + 30))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not fetch.done():
            # Stopping: the long poll is dropped; nothing it would bring is confirmed.
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, TelegramAPIError):
                await fetch
            return None
        return fetch.result()

    def _take(self, update: Update) -> None:
        self._newest = update.update_id
        key = chat_key(update)
        before = self._last_of_chat.get(key) if key is not None else None
        task = asyncio.create_task(self._handle(update, before), name=f"update-{update.update_id}")
        self.in_flight[update.update_id] = task
        if key is not None:
            self._last_of_chat[key] = task
        task.add_done_callback(lambda t: self._done(update.update_id, key, t))

    def _done(self, update_id: int, key: int | None, task: asyncio.Task[None]) -> None:
        self.in_flight.pop(update_id, None)
        if BATCH - self._again() >= REFETCH_ROOM:
            self._room.set()
        if key is not None and self._last_of_chat.get(key) is task:
            del self._last_of_chat[key]

    async def _handle(self, update: Update, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            # The chat's previous update first (its outcome is its own affair).
            await asyncio.wait([before])
        try:
            await self.dispatcher.feed_update(self.bot, update)
        except Exception:
            # Logged and confirmed: an update that fails every time must not come back forever.
            log.exception("update %s failed", update.update_id)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
