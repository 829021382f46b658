"""Polling Telegram with a durable intake: one slow chat does not stall the others, and a
killed process loses no update.

Telegram forgets an update once a `getUpdates` call asks for a later offset, and one call
brings at most 100. So each batch is first stored (`polled_updates`, bot/intake.py: one short
transaction, in a thread) and only then confirmed, by the next call's offset, which asks past
the whole batch. The stored updates are handled from there: one chat's in the order they came
(a task per chat drains its queue), different chats at the same time. When one is handled it
is dropped from the store (in batches, in a thread). An earlier design kept the offset at the
oldest unfinished update instead; then a chat sending 50 slow updates filled Telegram's window
and no other chat's update was fetched until they were done.

A process that starts polling (or takes over from one that stopped or died, bot/leader.py)
first resumes whatever is stored. A SIGKILL thus loses nothing, and nothing is handled twice:
each update's id is written in its own transaction when it is handled (`inbound_updates`,
bot/middlewares.py), so one handled but not yet dropped from the store is a no-op the second
time. A stop (SIGTERM) starts no more stored updates, lets those being handled finish (the
caller's grace), and leaves the rest stored for the next poller.

Back-pressure: at `max_backlog` stored updates not yet handled, no more are fetched (Telegram
keeps them, for up to a day) until some are done; fetching resumes once a batch's worth of
room is free (half the cap when that is smaller), so a full desk is not asked one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Hashable

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramConflictError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.methods import GetUpdates
from aiogram.types import Update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.intake import IntakeStore

log = logging.getLogger(__name__)

# Telegram's long poll (seconds).
LONG_POLL_SECONDS = 25
# Telegram sends at most 100 a call.
BATCH = 100
# Stored updates not yet handled, at most (AFTERSALES_POLLING_MAX_BACKLOG).
DEFAULT_MAX_BACKLOG = 1000
# After Telegram (or the database) could not be reached: wait, doubling up to the cap.
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
    """Fetches updates, stores them, confirms them, and feeds them to the dispatcher from the
    store (module doc)."""

    def __init__(
        self,
        bot: Bot,
        dispatcher: Dispatcher,
        sessions: sessionmaker[Session],
        *,
        allowed_updates: list[str] | None = None,
        long_poll: int = LONG_POLL_SECONDS,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
    ) -> None:
        if max_backlog < 1:
            raise ValueError("the polling backlog must allow at least one update")
        self.bot = bot
        self.dispatcher = dispatcher
        self.store = IntakeStore(sessions, bot)
        self.allowed_updates = allowed_updates
        self.long_poll = long_poll
        self.max_backlog = max_backlog
        # Fetching pauses at the cap and resumes once this much room is free.
        self._resume_room = max(1, min(BATCH, max_backlog // 2))
        # Update id -> update, for every update stored and not yet handled here.
        self.backlog: dict[int, Update] = {}
        # Per chat (or per update, when no order is needed): its updates waiting, and the task
        # draining them.
        self._queues: dict[Hashable, deque[Update]] = {}
        self._drains: dict[Hashable, asyncio.Task[None]] = {}
        self._newest = -1  # the highest update id stored
        self._room = asyncio.Event()  # set when the backlog falls to the resume mark
        self._paused = False
        self._stopping = False  # a stop: start no more stored updates
        # Handled, to be dropped from the store; and the task dropping them.
        self._handled: list[int] = []
        self._dropping: set[int] = set()
        self._forget_task: asyncio.Task[None] | None = None

    @property
    def offset(self) -> int | None:
        """What the next call confirms below: everything stored."""
        return self._newest + 1 if self._newest >= 0 else None

    async def run(self, stop: asyncio.Event) -> None:
        """Resume what is stored, then poll until `stop` is set. The stored updates go on
        being handled after it returns; `finish` ends that."""
        self._stopping = False
        for key, queue in self._queues.items():
            # Left by an earlier stop of this poller (the lock lost, then taken again).
            if key not in self._drains:
                self._drains[key] = asyncio.create_task(self._drain(key, queue), name=f"chat-{key}")
        backoff = BACKOFF_FIRST
        while not stop.is_set():
            try:
                await self._resume()
                break
            except SQLAlchemyError as exc:
                log.warning("could not read the stored updates (%s); again in %ss", exc, backoff)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
        backoff = BACKOFF_FIRST
        while not stop.is_set():
            if len(self.backlog) >= self.max_backlog:
                await self._wait_for_room(stop)
                continue
            room = min(BATCH, self.max_backlog - len(self.backlog))
            try:
                updates = await self._fetch(stop, limit=room)
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
            # Telegram sends a batch again while it is not confirmed (a poller killed between
            # storing it and the next call): those already stored are left out.
            fresh = [u for u in updates or [] if u.update_id > self._newest]
            if fresh:
                try:
                    # Off the loop: one short transaction for the whole batch.
                    await asyncio.to_thread(self.store.store, fresh)
                except SQLAlchemyError as exc:
                    # Not stored, so not confirmed: the next call brings the batch again.
                    log.warning(
                        "could not store %d polled update(s) (%s); again in %ss",
                        len(fresh),
                        exc,
                        backoff,
                    )
                    await _wait(stop, backoff)
                    backoff = min(backoff * 2, BACKOFF_CAP)
                    continue
                for update in fresh:
                    self._take(update)
            backoff = BACKOFF_FIRST

    async def finish(self, grace: float) -> int:
        """Start no more stored updates; wait up to `grace` seconds for those being handled;
        drop the handled ones from the store and confirm everything stored to Telegram (so a
        restart does not fetch it again). Returns how many stay stored, unhandled: the next
        poller (this process restarted, or another one) resumes them."""
        self._stopping = True
        running = [t for t in self._drains.values() if not t.done()]
        if running:
            await asyncio.wait(running, timeout=grace)
        if self._forget_task is not None:
            await asyncio.wait([self._forget_task], timeout=grace)
        if self.offset is not None:
            with contextlib.suppress(TelegramAPIError):
                await self.bot(GetUpdates(offset=self.offset, limit=1, timeout=0))
        return len(self.backlog)

    async def _resume(self) -> None:
        """Take the updates stored and not known here yet (a previous poller's), oldest first."""
        known = set(self.backlog) | self._dropping | set(self._handled)
        stored = await asyncio.to_thread(self.store.pending, known)
        if stored:
            log.info("resuming %d stored update(s) left by the previous poller", len(stored))
        for update in stored:
            self._take(update)

    async def _wait_for_room(self, stop: asyncio.Event) -> None:
        if not self._paused:
            self._paused = True
            log.warning(
                "%d updates stored and not yet handled (AFTERSALES_POLLING_MAX_BACKLOG): "
                "fetching pauses until %d are done",
                len(self.backlog),
                self._resume_room,
            )
        self._room.clear()
        if len(self.backlog) > self.max_backlog - self._resume_room:
            stopped = asyncio.ensure_future(stop.wait())
            room = asyncio.ensure_future(self._room.wait())
            try:
                await asyncio.wait({stopped, room}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                room.cancel()
        if len(self.backlog) <= self.max_backlog - self._resume_room:
            self._paused = False
            log.info("fetching resumes: %d updates stored and not yet handled", len(self.backlog))

    async def _fetch(self, stop: asyncio.Event, limit: int) -> list[Update] | None:
        call = GetUpdates(
            offset=self.offset,
            limit=limit,
            timeout=self.long_poll,
            allowed_updates=self.allowed_updates,
        )
        fetch = asyncio.ensure_future(self.bot(call, request_timeout=self.long_poll + 30))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            fetch.cancel()  # not left running (its failure unheard) when polling is cancelled
            raise
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
        """Queue a stored update behind its chat's earlier ones."""
        self._newest = max(self._newest, update.update_id)
        self.backlog[update.update_id] = update
        chat = chat_key(update)
        key: Hashable = ("chat", chat) if chat is not None else ("update", update.update_id)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(update)
        if key not in self._drains:
            self._drains[key] = asyncio.create_task(self._drain(key, queue), name=f"chat-{key}")

    async def _drain(self, key: Hashable, queue: deque[Update]) -> None:
        """Handle one chat's stored updates, one after the other."""
        try:
            while queue and not self._stopping:
                update = queue[0]
                try:
                    await self.dispatcher.feed_update(self.bot, update)
                except Exception:
                    # Logged and dropped: an update that fails every time must not come back
                    # forever (its failure is recorded by the middleware).
                    log.exception("update %s failed", update.update_id)
                queue.popleft()
                self._handled_one(update.update_id)
        finally:
            del self._drains[key]
            if not queue:
                del self._queues[key]

    def _handled_one(self, update_id: int) -> None:
        self.backlog.pop(update_id, None)
        self._handled.append(update_id)
        if self._forget_task is None or self._forget_task.done():
            self._forget_task = asyncio.create_task(self._forget(), name="intake-forget")
        if len(self.backlog) <= self.max_backlog - self._resume_room:
            self._room.set()

    async def _forget(self) -> None:
        """Drop the handled updates from the store, the ones handled meanwhile together."""
        while self._handled:
            ids, self._handled = self._handled, []
            self._dropping.update(ids)
            try:
                await asyncio.to_thread(self.store.forget, ids)
            except SQLAlchemyError as exc:
                # Left stored: the next poller resumes them, and the dedupe by update id makes
                # that a no-op.
                log.warning("could not drop %d handled update(s) from the store: %s", len(ids), exc)
            finally:
                self._dropping.difference_update(ids)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
