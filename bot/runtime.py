"""Building and running the bot: the factories the composition root (api/app.py, api/cli.py)
calls. Nothing here runs at import.

- `build_bot(settings)`: the Bot, pointed at a self-hosted Bot API server when
  AFTERSALES_TELEGRAM_API_URL is set.
- `build_dispatcher(sessions, settings, scripts, policy)`: the Dispatcher with the FSM storage
  (database, or Redis), the unit-of-work middleware and the customer router.
- `BotRuntime`: the running parts and their lifecycle: `start()` (polling, or registering the
  webhook) and the delivery worker, `stop()`; `feed_webhook_update()` handles what Telegram
  POSTs to the webhook route (api/telegram_webhook.py, the HTTP side).
  `serve` starts it with `own_loop=True`: the bot then runs on an event loop of its own, in a
  thread of its own (`BotLoop`), so a flood of updates and sends never queues in front of the
  HTTP requests on the server's loop (README, "Architecture").

Several processes may run it on one PostgreSQL database: each runs a delivery worker and
serves the webhook; polling runs in the one holding the poller lock (bot/leader.py), which
stores each fetched batch before confirming it to Telegram and resumes what a previous poller
left stored (bot/polling.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.types import Update
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import DeliveryConfig, DeliveryWorker
from bot.fsm_storage import build_storage
from bot.i18n import Texts
from bot.leader import RETRY_SECONDS, PollerLock
from bot.middlewares import WEBHOOK, UnitOfWorkMiddleware
from bot.polling import Poller
from bot.routers import agents, customer
from bot.session import BotSession
from bot.threads import UnitOfWorkThreads
from tickets.messages.scripts import ScriptLibrary
from tickets.models import utcnow
from tickets.policy.rules import Policy
from tickets.settings import Settings
from tickets.storage import AttachmentStore, limits_from

log = logging.getLogger(__name__)

T = TypeVar("T")

# Requests to Telegram give up after this long; the outbox lease is much longer (delivery.py).
REQUEST_TIMEOUT = 30
# How long to wait before polling again after Telegram could not be reached.
POLL_RETRY_SECONDS = 10
# After a 5xx or a network error at polling start: the first wait, doubled up to the above.
POLL_BACKOFF_FIRST = 1.0
# A flood wait longer than this (seconds) is cut short: asked again then (and told again).
POLL_RETRY_AFTER_CAP = 3600.0
# How long a stop waits for the updates being handled, and for the delivery pass under way.
STOP_GRACE_SECONDS = 10


def build_bot(settings: Settings) -> Bot:
    """The Bot for `settings.telegram_token` (which must be set)."""
    if not settings.telegram_token:
        raise ValueError("AFTERSALES_TELEGRAM_TOKEN is not set: the bot is off")
    api = (
        TelegramAPIServer.from_base(settings.telegram_api_url.rstrip("/"))
        if settings.telegram_api_url
        else PRODUCTION
    )
    session = BotSession(api=api, timeout=REQUEST_TIMEOUT)
    # No default parse mode: every text we send says its own (HTML), user text is escaped.
    return Bot(settings.telegram_token, session=session, default=DefaultBotProperties())


def build_dispatcher(
    sessions: sessionmaker[Session],
    settings: Settings,
    scripts: ScriptLibrary | None,
    policy: Policy,
    *,
    storage: BaseStorage | None = None,
    events_isolation: BaseEventIsolation | None = None,
    texts: Texts | None = None,
    store: AttachmentStore | None = None,
    clock: Callable[[], datetime] = utcnow,
    threads: UnitOfWorkThreads | None = None,
) -> Dispatcher:
    """The Dispatcher: FSM state in the database (Redis when set), one unit of work per update,
    the customer router (private chats) and, when AFTERSALES_AGENT_CHAT_ID is set, the agents'
    router (that group). Tests pass their own storage, store and clock."""
    if storage is None:
        storage, isolation = build_storage(settings, sessions)
        events_isolation = events_isolation or isolation
    # aiogram's FSM middleware is not registered: ours takes the conversation's lock itself
    # (it must hold it across the hand-off to the unit-of-work thread) and puts the state in
    # the handlers' data as aiogram's would (bot/middlewares.py).
    dp = Dispatcher(storage=storage, events_isolation=events_isolation, disable_fsm=True)
    dp.update.outer_middleware(
        UnitOfWorkMiddleware(
            sessions=sessions,
            settings=settings,
            policy=policy,
            scripts=scripts,
            texts=texts or Texts.load(),
            store=store or AttachmentStore(settings.media_dir, limits_from(settings)),
            fsm=dp.fsm,
            clock=clock,
            threads=threads,
        )
    )
    dp.include_router(customer.make_router())
    if settings.agent_chat_id is not None:
        # The agents' cards link to the panel: the handlers get its address from here.
        dp["public_url"] = settings.public_url
        dp.include_router(agents.make_router(chat_id=settings.agent_chat_id))
    return dp


class BotLoop:
    """An event loop in a thread of its own, for the bot's parts.

    Why: the bot's own loop-side work (aiogram's dispatch of each update, the delivery worker's
    sends and their pacing) is most of what a busy process's loop does. On the server's loop
    it queued in front of every HTTP request: under a flood of 300 updates/s, `/healthz` waited
    150 ms at p99 on PostgreSQL. Here the two loops share only the interpreter, and a request
    waits at most for its turn at the GIL, not for the bot's backlog of callbacks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="bot-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on this loop; the caller's loop waits without blocking."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))

    async def close(self) -> None:
        """Stop the loop and wait for its thread (off the caller's loop)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join)


class BotRuntime:
    """The bot's running parts in one process: polling or webhook, and the delivery worker."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        scripts: ScriptLibrary | None,
        policy: Policy,
        bot: Bot | None = None,
        dispatcher: Dispatcher | None = None,
        delivery: DeliveryConfig | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.bot = bot or build_bot(settings)
        self.texts = Texts.load()
        self.dispatcher = dispatcher or build_dispatcher(
            sessions, settings, scripts, policy, texts=self.texts, clock=clock
        )
        self.worker = DeliveryWorker(
            bot=self.bot,
            sessions=sessions,
            settings=settings,
            config=delivery,
            texts=self.texts,
            clock=clock,
            agent_language=policy.agent_language,
        )
        # Handlers' answers go to the outbox; the middleware wakes this worker after each
        # commit (bot/middlewares.py), so an answer is sent at once, within the limits.
        self.dispatcher["delivery"] = self.worker
        # Updates stored, then confirmed to Telegram, then handled (bot/polling.py).
        self.polling = Poller(
            self.bot,
            self.dispatcher,
            sessions,
            allowed_updates=self.dispatcher.resolve_used_update_types(),
            max_backlog=settings.polling_max_backlog,
        )
        # Exactly one process polls (bot/leader.py): the others stand by.
        bind = sessions.kw.get("bind")
        self.poller_lock = PollerLock(
            bind if isinstance(bind, Engine) else None, self.bot_id_of(settings)
        )
        self._stop = asyncio.Event()
        # Set to stop polling (the runtime stops, or the poller lock was lost).
        self._polling_stop = asyncio.Event()
        self._standing_by = False
        self._polling_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        # The bot's own loop when started with `own_loop=True` (BotLoop's doc).
        self._own: BotLoop | None = None

    async def _on_bot_loop(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` where the bot's parts live: its own loop when it has one, else here."""
        if self._own is None:
            return await work
        return await self._own.run(work)

    @property
    def uses_webhook(self) -> bool:
        return bool(self.settings.webhook_url)

    @staticmethod
    def bot_id_of(settings: Settings) -> str:
        """The bot's numeric id, the token's public part."""
        return (settings.telegram_token or "").split(":", 1)[0]

    async def start(self, *, own_loop: bool = False) -> None:
        """Start the delivery worker, and polling or the webhook registration; with `own_loop`,
        on a loop and thread of their own (BotLoop). Telegram being unreachable does not stop
        the rest of the product: it is logged and retried."""
        if own_loop and self._own is None:
            self._own = BotLoop()
        await self._on_bot_loop(self._start())

    async def _start(self) -> None:
        self._stop.clear()
        self._polling_stop.clear()
        self._tasks.append(asyncio.create_task(self.worker.run(self._stop), name="delivery"))
        if self.uses_webhook:
            try:
                await self.bot.set_webhook(
                    url=str(self.settings.webhook_url),
                    secret_token=self.settings.webhook_secret,
                    allowed_updates=self.dispatcher.resolve_used_update_types(),
                )
                log.info("Telegram webhook set to %s", self.settings.webhook_url)
            except TelegramAPIError:
                # Telegram keeps a webhook set by an earlier run; updates may still arrive.
                log.exception("could not set the Telegram webhook to %s", self.settings.webhook_url)
        else:
            self._polling_task = asyncio.create_task(self._poll(), name="polling")

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds`, or less when the runtime stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _may_poll(self) -> bool:
        """Whether this process holds the poller lock (taking it when free); the first
        refusal is logged, not every retry."""
        try:
            if await self.poller_lock.acquire():
                return True
        except SQLAlchemyError as exc:
            log.warning("could not ask for the poller lock (%s); asking again shortly", exc)
            return False
        if not self._standing_by:
            self._standing_by = True
            log.info("another process polls Telegram: this one stands by to take over")
        return False

    async def _watch_lock(self) -> None:
        """While polling: a lost lock (its connection broke) stops polling here, so two
        processes do not poll for long."""
        while await self.poller_lock.still_held():
            await asyncio.sleep(RETRY_SECONDS)
        self._polling_stop.set()

    async def _poll(self) -> None:
        """Poll until stopped, while this process holds the poller lock; a failure to start
        (Telegram unreachable, a bad token) is logged and tried again a little later. When
        stopped, the updates being handled finish (up to the grace) before the lock goes."""
        self._standing_by = False
        backoff = POLL_BACKOFF_FIRST
        while not self._stop.is_set():
            if not await self._may_poll():
                await self._pause(RETRY_SECONDS)
                continue
            if self._standing_by:
                log.info("the polling process is gone: this one polls Telegram now")
            self._standing_by = False
            self._polling_stop.clear()
            watch = asyncio.create_task(self._watch_lock(), name="poller-lock")
            try:
                # Polling replaces a webhook that an earlier run may have left behind.
                await self.bot.delete_webhook(drop_pending_updates=False)
                log.info("Telegram polling started")
                await self.polling.run(self._polling_stop)
            except TelegramRetryAfter as exc:
                # Telegram's flood wait (a 429 at polling start): exactly as long as it says.
                wait = min(float(exc.retry_after), POLL_RETRY_AFTER_CAP)
                log.warning("Telegram polling failed (%s); trying again in %ss", exc, wait)
            except (TelegramNetworkError, TelegramServerError) as exc:
                # Telegram unreachable (no network, a wrong AFTERSALES_TELEGRAM_API_URL) or
                # failing for a moment (a 5xx): one line, not a traceback every few seconds
                # (printing one also keeps every source file it names in memory); a short
                # wait first, doubling while it lasts.
                wait, backoff = backoff, min(backoff * 2, POLL_RETRY_SECONDS)
                log.warning("Telegram polling failed (%s); trying again in %ss", exc, wait)
            except TelegramAPIError as exc:
                # Telegram refuses (a revoked token, say): nothing a quick retry changes.
                wait = POLL_RETRY_SECONDS
                log.error("Telegram polling failed (%s); trying again in %ss", exc, wait)
            else:
                backoff = POLL_BACKOFF_FIRST
                continue  # stopped, or the lock was lost: the loop decides
            finally:
                watch.cancel()
            await self._pause(wait)
        left = await self.polling.finish(STOP_GRACE_SECONDS)
        if left:
            log.info("%d update(s) left stored at the stop: the next poller resumes them", left)
        # Another process may poll at once.
        await self.poller_lock.release()

    async def stop(self) -> None:
        """A clean stop (SIGTERM): `_stop`'s, then the bot's own loop closes (when it has one)."""
        await self._on_bot_loop(self._stop_parts())
        if self._own is not None:
            own, self._own = self._own, None
            await own.close()

    async def _stop_parts(self) -> None:
        """A clean stop (SIGTERM). No more updates are fetched, and the ones being handled
        finish (their answers go to the outbox). Then the delivery worker claims nothing
        more: its sends on the wire finish and are recorded, and the rows it claimed but did
        not send are given back due now, so another process sends them at once rather than
        after their lease. The poller lock goes (another process polls) and the bot's
        session closes."""
        self._stop.set()
        self._polling_stop.set()
        if self._polling_task is not None:
            await self._wait_for(self._polling_task, 2 * STOP_GRACE_SECONDS)
            self._polling_task = None
        self.worker.stop_claiming()
        for task in self._tasks:
            await self._wait_for(task, STOP_GRACE_SECONDS)
        self._tasks.clear()
        try:
            # Off the loop: a database write (the release of the unsent claims).
            await asyncio.to_thread(self.worker.release_unsent)
        except SQLAlchemyError:
            log.exception("could not give back the claimed rows: they wait out their lease")
        await self.poller_lock.release()
        await self.worker.pacer.close()
        await self.dispatcher.fsm.close()
        await self.bot.session.close()

    @staticmethod
    async def _wait_for(task: asyncio.Task[Any], seconds: float) -> None:
        try:
            await asyncio.wait_for(task, timeout=seconds)
        except TimeoutError:
            log.warning("%s did not stop in time: cancelled", task.get_name())

    async def feed_webhook_update(self, body: bytes) -> bool:
        """Handle one update Telegram POSTed to the webhook (the request's body), before the
        answer; False when it is not a Telegram update. The update is stored and deduplicated by
        the middleware, so a redelivery after a crash is safe."""
        # Parsed, validated and handled on the bot's loop (BotLoop's doc).
        return await self._on_bot_loop(self._webhook_update(body))

    async def _webhook_update(self, body: bytes) -> bool:
        try:
            update = Update.model_validate_json(body, context={"bot": self.bot})
        except (ValueError, ValidationError):
            log.warning("webhook body is not a Telegram update: ignored")
            return False
        try:
            # Marked as the webhook's: any process may get the conversation's next one.
            await self.dispatcher.feed_update(self.bot, update, **{WEBHOOK: True})
        except TelegramAPIError:
            # Already logged by the dispatcher; Telegram must not redeliver in a loop.
            log.exception("update %s failed at Telegram", update.update_id)
        return True


async def run_polling(runtime: BotRuntime) -> None:
    """Run the bot by polling until cancelled (a process of its own, or a test)."""
    await runtime.start()
    try:
        await asyncio.Event().wait()
    finally:
        await runtime.stop()
