"""One unit of work per Telegram update.
Over 500 lines as one file: the unit of work per update and the conversation ordering it needs
(turns, arrivals across processes) are one mechanism.

For every update, in this order:

1. On the event loop: the update's conversation lock is taken (aiogram's events isolation for
   its FSM key: in-process, or Redis when AFTERSALES_REDIS_URL is set, so several processes
   agree), behind a first-come-first-served lock of this process: one chat's updates (and the
   parts of an album) are handled in the order they came, different chats at the same time.
2. Still on the loop (network only): the message's file, if any, is downloaded and stored,
   unless the update was already handled (checked in a thread); with Redis, the conversation's
   state is read into a buffer (bot/fsm_storage.py).
3. Hand-off to a unit-of-work thread (bot/threads.py), which does the whole database part: a
   transaction opens; the update's id is written first (`InboundUpdate`, unique: a redelivered
   update does nothing at all), the customer is resolved from the Telegram user, the handler
   chain runs to its end (on that thread's own loop) with the session, the customer, the
   service context, the conversation's `state` and a `Replies` collector injected; the FSM
   state is written through the same session; the answers are written to the outbox
   (bot/replies.py). Commit; or, on any error, roll back and record the failure.
4. Back on the loop: with Redis, the state is written back; the delivery worker is woken to
   send the answers, and a pressed button's answer is sent directly.

**Several processes on PostgreSQL** (issue 18: a proxy spreads one chat's webhook updates over
the processes, with no Redis to lock them). The unit of work's transaction takes a PostgreSQL
advisory lock on the conversation first (`pg_advisory_xact_lock`, held to its commit or
rollback): two processes never handle one conversation at once, and the state it reads is the
one the previous update committed. Mutual exclusion is not order: so a webhook update is first
noted as arrived (`update_arrivals`, a short transaction of its own, before it waits for its
turn), and, under the lock, an update that finds an earlier update of its conversation arrived
but not yet handled (its id not in `inbound_updates`) steps back (rolls back, lets the lock go,
gives up its turn in this process) and tries again shortly. An earlier update's arrival stops
later ones for at most `ORDER_WAIT` seconds (its process may have died: Telegram redelivers
it, and it runs late). What is not guaranteed: an update that reaches us after a later one of
its conversation has already been handled (Telegram, or the proxy, delivered them so) runs
late; nothing can run it earlier.

Why: the database code is synchronous. On the loop, a wait for SQLite's write lock (held by an
HTTP request's thread that needs the loop to finish) froze the whole server; the guard in
tickets/db.py now refuses any database call on the loop. And no network inside the
transaction: an answer sent before the commit could announce work that is then rolled back.

Errors are handled by type (domain errors, database errors, anything else): the customer gets a
short apology and a way on (queued like any answer, in the transaction that records the update
as handled; sent directly if even that fails), the error is logged with the update and the
customer's open case (if any) gets a `bot.error` event. Never silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.types import InlineKeyboardMarkup, TelegramObject, Update, User
from sqlalchemy import Engine, Table, bindparam, delete, exists, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot import keyboards
from bot.fsm_storage import BufferedState, DatabaseStorage
from bot.i18n import Texts
from bot.media import Media, fetch_media
from bot.render import PARTS
from bot.replies import Replies
from bot.routers.agents import answers_the_bot
from bot.threads import UnitOfWorkThreads, shared_threads, threads_for
from bot.web import WEB_BOT_ID
from tickets.cases.events import record_event
from tickets.context import SYSTEM, Context
from tickets.customers import account_ids, resolve_customer
from tickets.db import PerDialect
from tickets.exceptions import (
    Conflict,
    DomainError,
    DuplicateCase,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from tickets.logcontext import UPDATE_ID
from tickets.messages.outbox import DEFAULT_CHANNELS, delivered_channels
from tickets.messages.scripts import ScriptLibrary, resolve_language
from tickets.models import (
    OPEN_STATUSES,
    Agent,
    Customer,
    EventType,
    InboundUpdate,
    Ticket,
    UpdateArrival,
)
from tickets.policy.rules import Policy
from tickets.settings import Settings
from tickets.storage import AttachmentStore
from tickets.telemetry import instruments

log = logging.getLogger(__name__)

SOURCE = "telegram"

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# Built once (every update runs it): the update's id, the dedupe key. On the table, not the
# mapped class, and run on the session's connection: the ORM's bulk-insert path around an
# INSERT costs four times the statement itself.
_RECORD_UPDATE = insert(cast(Table, InboundUpdate.__table__)).values(
    source=bindparam("source"),
    external_id=bindparam("external_id"),
    received_at=bindparam("at", type_=InboundUpdate.__table__.c.received_at.type),
)


# The data key the webhook sets on its updates (bot/runtime.py): they may reach any process.
WEBHOOK = "aftersales_webhook"
# A list the feeder of an update may pass under this data key (the web chat, bot/web_chat.py):
# the files kept from the update's message go in it (its page shows the customer's own photos).
KEPT_FILES = "aftersales_kept_files"
# How long an earlier update that arrived (in any process) and is not handled holds back its
# conversation's later ones: long enough for a busy process to reach it, short enough that a
# dead one's update (Telegram redelivers it) does not stall the chat for long.
ORDER_WAIT = 15.0
# How often an update that stepped back behind an earlier one tries again.
ORDER_RETRY = 0.05

_ARRIVALS = cast(Table, UpdateArrival.__table__)
_INBOUND = cast(Table, InboundUpdate.__table__)
# PostgreSQL only (several processes): built there on first use, never imported on SQLite.
_ARRIVE = PerDialect(
    lambda insert: (
        insert(_ARRIVALS)
        .values(
            chat_key=bindparam("k"),
            update_id=bindparam("u"),
            external_id=bindparam("e"),
            arrived_at=bindparam("at", type_=_ARRIVALS.c.arrived_at.type),
        )
        .on_conflict_do_update(
            index_elements=[_ARRIVALS.c.chat_key, _ARRIVALS.c.update_id],
            set_={"arrived_at": bindparam("at", type_=_ARRIVALS.c.arrived_at.type)},
        )
    )
)
# An earlier update of the conversation arrived lately and not handled yet.
_EARLIER = select(
    exists().where(
        _ARRIVALS.c.chat_key == bindparam("k"),
        _ARRIVALS.c.update_id < bindparam("u"),
        _ARRIVALS.c.arrived_at > bindparam("since", type_=_ARRIVALS.c.arrived_at.type),
        ~exists().where(
            _INBOUND.c.source == SOURCE, _INBOUND.c.external_id == _ARRIVALS.c.external_id
        ),
    )
)
# Once an update may run, its arrival and the earlier ones (handled, or given up on) go.
_PRUNE = delete(_ARRIVALS).where(
    _ARRIVALS.c.chat_key == bindparam("k"), _ARRIVALS.c.update_id <= bindparam("u")
)
_LOCK = select(func.pg_advisory_xact_lock(bindparam("lock")))


@dataclass(frozen=True)
class _Arrival:
    """A webhook update noted as arrived: its conversation and its id."""

    chat_key: str
    update_id: int
    external_id: str


def conversation_key(key: StorageKey) -> str:
    """The conversation's name across processes (its lock, its arrivals)."""
    return (
        f"{key.bot_id}:{key.chat_id}:{key.user_id}:{key.thread_id or ''}:"
        f"{key.business_connection_id or ''}:{key.destiny}"
    )


def advisory_lock_id(name: str) -> int:
    """A conversation's PostgreSQL advisory lock: 64 bits of a hash of its name (a collision
    only makes two conversations take turns)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), signed=True)


def error_text_key(exc: BaseException) -> str:
    """Which apology fits the error (texts under `error.`)."""
    if isinstance(exc, DuplicateCase | Conflict):
        return "error.conflict"
    if isinstance(exc, PermissionDenied):
        return "error.forbidden"
    if isinstance(exc, NotFound):
        return "error.not_found"
    if isinstance(exc, InvalidInput):
        return "error.invalid"
    if isinstance(exc, OperationalError):
        return "error.busy"
    return "error.generic"


@dataclass
class _Done:
    """What an update's unit of work hands back to the loop."""

    result: Any = UNHANDLED
    queued: int = 0
    committed: bool = False
    # An earlier update of the conversation is not handled yet: nothing was done, try again.
    behind: bool = False
    # How it ended (`OUTCOME`).
    outcome: str = "failed"


# What `_handle` returns for an update that stepped back behind an earlier one.
_BEHIND = object()

# The data key where `_handle` leaves how an update ended, for the metrics: handled (its work
# committed), duplicate (already handled: a redelivery), failed (rolled back, the customer got
# the apology; or a file that could not be fetched).
OUTCOME = "aftersales_outcome"
# Update types counted by name; anything else Telegram adds is "other" (a bounded label).
_COUNTED_TYPES = frozenset(
    {"message", "edited_message", "callback_query", "my_chat_member", "chat_member"}
)


def _update_type(update: Update) -> str:
    try:
        kind = update.event_type
    except LookupError:  # aiogram's UpdateTypeLookupError: a type it does not know
        return "other"
    return kind if kind in _COUNTED_TYPES else "other"


class _Turns:
    """First come, first served per conversation in this process (asyncio's locks queue their
    waiters in order); a key's lock is dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[StorageKey, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: StorageKey) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class UnitOfWorkMiddleware(BaseMiddleware):
    """The per-update ordering, transaction, dedupe, customer, conversation state, media and
    error handling (module doc). Takes the place of aiogram's FSM middleware (`fsm`: its
    storage, events isolation and key strategy), which must not be registered as well."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        settings: Settings,
        policy: Policy,
        scripts: ScriptLibrary | None,
        texts: Texts,
        store: AttachmentStore,
        fsm: FSMContextMiddleware,
        clock: Callable[[], datetime],
        threads: UnitOfWorkThreads | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.policy = policy
        self.scripts = scripts
        self.texts = texts
        self.store = store
        self.fsm = fsm
        self.storage = fsm.storage
        self.clock = clock
        # This process runs the bot, so its chats are delivered whatever the settings say
        # (tests build the bot without a token); the settings add any other channel.
        self._channels = DEFAULT_CHANNELS | delivered_channels(settings)
        self._turns = _Turns()
        # Several processes may share a PostgreSQL database (module doc): the conversation's
        # advisory lock, and the webhook's arrivals.
        bind = sessions.kw.get("bind")
        dialect = bind.dialect.name if isinstance(bind, Engine) else "sqlite"
        self._postgres = dialect == "postgresql"
        self.threads = threads or shared_threads(threads_for(dialect))

    def context(self, now: datetime) -> Context:
        """The service context of one update."""
        return Context(
            policy=self.policy,
            now=now,
            tz=self.settings.tz,
            case_prefix=self.settings.case_prefix,
            scripts=self.scripts,
            shop_name=self.settings.shop_name,
            # The shop's sizes and the channels this deployment delivers, as the API's context.
            limits=self.settings.limits,
            channels=self._channels,
            parts=PARTS,
        )

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        # Every log line of this update carries its id (tickets/logcontext.py), and it is
        # counted with its outcome and time (tickets/telemetry.py).
        update_id = UPDATE_ID.set(event.update_id)
        started = time.perf_counter()
        data[OUTCOME] = "failed"
        try:
            return await self._ordered(handler, event, data)
        finally:
            UPDATE_ID.reset(update_id)
            channel = "web" if cast(Bot, data["bot"]).id == WEB_BOT_ID else "telegram"
            made = instruments()
            made.bot_updates.labels(channel, _update_type(event), data[OUTCOME]).inc()
            made.bot_update_seconds.labels(channel).observe(time.perf_counter() - started)

    async def _ordered(self, handler: Handler, event: Update, data: dict[str, Any]) -> Any:
        """The update in its conversation's turn (module doc), as many times as it steps back
        behind an earlier one."""
        event = without_nul(event, cast(Bot, data["bot"]))
        data["fsm_storage"] = self.storage
        conversation = self.fsm.resolve_event_context(cast(Bot, data["bot"]), data)
        if conversation is None:
            return await self._handle(handler, event, data, None, None)
        name = conversation_key(conversation.key)
        arrival: _Arrival | None = None
        if self._postgres and data.get(WEBHOOK):
            # Noted before waiting for a turn: a later update in another process waits for it.
            arrival = _Arrival(
                name, event.update_id, f"{cast(Bot, data['bot']).id}:{event.update_id}"
            )
            await asyncio.to_thread(self._arrive, arrival)
        while True:
            async with self._turn(conversation.key):
                result = await self._handle(handler, event, data, conversation, arrival)
            if result is not _BEHIND:
                return result
            # Out of the turn: the earlier update may be queued behind this one here.
            await asyncio.sleep(ORDER_RETRY)

    def _arrive(self, arrival: _Arrival) -> None:
        with self.sessions() as session:
            conn = session.connection()
            conn.execute(
                _ARRIVE(conn),
                {
                    "k": arrival.chat_key,
                    "u": arrival.update_id,
                    "e": arrival.external_id,
                    "at": self.clock(),
                },
            )
            session.commit()

    def _drop_arrival(self, arrival: _Arrival) -> None:
        """An update given up on without being recorded as handled: it holds back no other."""
        with self.sessions() as session:
            session.connection().execute(
                delete(_ARRIVALS).where(
                    _ARRIVALS.c.chat_key == arrival.chat_key,
                    _ARRIVALS.c.update_id == arrival.update_id,
                )
            )
            session.commit()

    @contextlib.asynccontextmanager
    async def _turn(self, key: StorageKey) -> AsyncIterator[None]:
        """The conversation's lock: this process's queue first (keeps the arrival order), then
        the storage's isolation when it reaches other processes (Redis)."""
        isolation = self.fsm.events_isolation
        async with self._turns.hold(key):
            if isinstance(isolation, SimpleEventIsolation):
                yield
            else:
                async with isolation.lock(key):
                    yield

    async def _handle(
        self,
        handler: Handler,
        event: Update,
        data: dict[str, Any],
        conversation: FSMContext | None,
        arrival: _Arrival | None,
    ) -> Any:
        bot: Bot = data["bot"]
        external_id = f"{bot.id}:{event.update_id}"
        user: User | None = data.get("event_from_user")
        chat = data.get("event_chat")
        private = chat is not None and chat.type == "private"
        agents_chat = (
            chat is not None
            and self.settings.agent_chat_id is not None
            and chat.id == self.settings.agent_chat_id
        )
        replies = Replies(
            texts=self.texts,
            language=resolve_language(user.language_code if user else None),
            chat_id=chat.id if chat is not None else None,
            callback_query_id=event.callback_query.id if event.callback_query else None,
        )
        media: list[Media] = []
        message = event.message
        if message is not None and (message.photo or message.video or message.document):
            # A file is fetched before the transaction: check first that this is no
            # redelivery (for other updates the unique row written first in the transaction
            # is the check). Files are fetched from customers, and from linked agents
            # answering one of the bot's cards (a photo for the customer); the agents' other
            # talk in their group, and anyone there who is not an agent, is left alone.
            agent_file = agents_chat and user is not None and answers_the_bot(message, bot)
            seen, from_agent = await asyncio.to_thread(
                self._before_file, external_id, user if agent_file else None
            )
            if seen:
                log.info("update %s already handled: ignored", external_id)
                data[OUTCOME] = "duplicate"
                return UNHANDLED
            if private or from_agent:
                try:
                    media = await fetch_media(bot, message, self.store)
                except TelegramAPIError as exc:
                    # Not recorded as handled: a redelivery (webhook) may fetch it; the
                    # customer is asked to send it again in any case.
                    log.error("could not download the file of update %s: %s", external_id, exc)
                    if arrival is not None:
                        await asyncio.to_thread(self._drop_arrival, arrival)
                    replies.say("error.media_download")
                    if await asyncio.to_thread(self._queue_alone, replies):
                        _wake_delivery(data)
                    await replies.flush(bot)
                    return UNHANDLED
                kept = data.get(KEPT_FILES)
                if isinstance(kept, list):
                    kept.extend(m.stored for m in media if m.stored is not None)
        buffer: BufferedState | None = None
        if conversation is not None:
            if isinstance(self.storage, DatabaseStorage):
                data["state"] = conversation
            else:
                # Redis: its client belongs to this loop; the handler gets a copy (fsm_storage).
                buffer = await BufferedState.read(self.storage, conversation.key)
                data["state"] = FSMContext(storage=buffer, key=conversation.key)

        async def work() -> _Done:
            return await self._unit_of_work(
                handler,
                event,
                data,
                external_id=external_id,
                user=user,
                private=private,
                agents_chat=agents_chat,
                replies=replies,
                media=media,
                lock=advisory_lock_id(conversation_key(conversation.key))
                if self._postgres and conversation is not None
                else None,
                arrival=arrival,
            )

        handed = asyncio.ensure_future(self.threads.run(work))
        try:
            done = await asyncio.shield(handed)
        except asyncio.CancelledError:
            # A thread cannot be stopped: the unit of work runs to its end (commit or
            # rollback). The conversation's lock is kept until it has, so the chat's next
            # update cannot overtake it.
            with contextlib.suppress(Exception):
                await handed
            raise
        if done.behind:
            return _BEHIND
        data[OUTCOME] = done.outcome
        if done.committed and buffer is not None:
            try:
                await buffer.write_back(self.storage)
            except Exception:
                # The work is committed; the conversation stays a step behind (module doc).
                log.exception("conversation state of update %s not saved", external_id)
        if done.queued:
            _wake_delivery(data)
        # The button's answer; and everything, if the database could not queue the apology.
        await replies.flush(bot)
        return done.result

    async def _unit_of_work(
        self,
        handler: Handler,
        event: Update,
        data: dict[str, Any],
        *,
        external_id: str,
        user: User | None,
        private: bool,
        agents_chat: bool,
        replies: Replies,
        media: list[Media],
        lock: int | None,
        arrival: _Arrival | None,
    ) -> _Done:
        """The update's transaction, on a unit-of-work thread's own loop (module doc)."""
        failure: BaseException | None = None
        customer_id: int | None = None
        with self.sessions() as session:
            if lock is not None:
                # Other processes' units of work on this conversation wait here (module doc).
                session.connection().execute(_LOCK, {"lock": lock})
            if arrival is not None and self._behind(session, arrival):
                session.rollback()
                return _Done(behind=True)
            try:
                # A plain INSERT, not an ORM object: it is written on every update, and the
                # unit-of-work flush would cost more than the statement itself.
                session.connection().execute(
                    _RECORD_UPDATE,
                    {"source": SOURCE, "external_id": external_id, "at": self.clock()},
                )
            except IntegrityError:
                # Its id is already stored: a redelivery (or a twin racing this one).
                session.rollback()
                log.info("update %s already handled: ignored", external_id)
                return _Done(outcome="duplicate")
            try:
                customer = self._customer(session, user) if private and user else None
                if customer is not None:
                    customer_id = customer.id
                    replies.language = customer.language
                agent = None
                if agents_chat:
                    # The agents' chat speaks the agents' language (theirs when linked).
                    agent = self._agent(session, user) if user else None
                    replies.language = agent.language if agent else self.policy.agent_language
                data.update(
                    db=session,
                    customer=customer,
                    agent=agent,
                    reply=replies,
                    svc=self.context(self.clock()),
                    media=media,
                    store=self.store,
                )
                state: FSMContext | None = data.get("state")
                if isinstance(self.storage, DatabaseStorage):
                    with self.storage.bind(session):
                        if state is not None:
                            data["raw_state"] = await state.get_state()
                        result = await handler(event, data)
                    self.storage.flush(session)
                else:
                    if state is not None:
                        data["raw_state"] = await state.get_state()
                    result = await handler(event, data)
                queued = replies.queue(session, self.clock())
                session.commit()
                replies.committed()
                return _Done(result=result, queued=queued, committed=True, outcome="handled")
            except Exception as exc:
                # Whatever the type, the update's work is undone as a whole; `_report` and
                # `error_text_key` then log and answer it by its type.
                session.rollback()
                failure = exc
        assert failure is not None  # the only way here
        replies.discard()
        if private:
            # Customers get the apology; a group (the agents') gets only the log line.
            replies.say(error_text_key(failure), markup=self._way_on(replies))
        return _Done(queued=self._report(failure, event, external_id, customer_id, replies))

    # ------------------------------------------------------------ pieces

    def _behind(self, session: Session, arrival: _Arrival) -> bool:
        """Whether an earlier update of the conversation arrived and is not handled (module
        doc); if none, the conversation's arrivals up to this one are pruned."""
        connection = session.connection()
        since = self.clock() - timedelta(seconds=ORDER_WAIT)
        key = {"k": arrival.chat_key, "u": arrival.update_id}
        if connection.execute(_EARLIER, {**key, "since": since}).scalar():
            return True
        connection.execute(_PRUNE, key)
        return False

    def _before_file(self, external_id: str, agent_user: User | None) -> tuple[bool, bool]:
        """Read before a file is fetched, in one short transaction (in a thread): whether
        the update was already handled, and whether `agent_user` (if given) is a linked,
        active agent."""
        with self.sessions() as session:
            seen = (
                session.scalar(
                    select(InboundUpdate.id).where(
                        InboundUpdate.source == SOURCE, InboundUpdate.external_id == external_id
                    )
                )
                is not None
            )
            agent = not seen and agent_user is not None and self._agent(session, agent_user)
            return seen, bool(agent)

    @staticmethod
    def _customer(session: Session, user: User) -> Customer:
        return resolve_customer(
            session,
            telegram_user_id=user.id,
            name=user.full_name,
            language_code=user.language_code,
        )

    @staticmethod
    def _agent(session: Session, user: User) -> Agent | None:
        """The active agent linked to this Telegram account, if any."""
        return session.scalar(
            select(Agent)
            .where(Agent.telegram_user_id == user.id, Agent.active.is_(True))
            .order_by(Agent.id)
            .limit(1)
        )

    def _way_on(self, replies: Replies) -> InlineKeyboardMarkup:
        return keyboards.main_menu(replies.t)

    def _queue_alone(self, replies: Replies) -> int:
        """Queue `replies` in a transaction of their own (no update's work to join; in a
        thread). If the database cannot take them, they stay for `flush` to send directly.
        Returns how many were queued."""
        try:
            with self.sessions() as session:
                queued = replies.queue(session, self.clock())
                session.commit()
                replies.committed()
        except SQLAlchemyError:
            log.exception("could not queue an answer: sending it directly")
            return 0
        return queued

    def _report(
        self,
        exc: BaseException,
        event: Update,
        external_id: str,
        customer_id: int | None,
        replies: Replies,
    ) -> int:
        """Log the error with the update, record the update as handled (a redelivery must not
        repeat the apology), show the error on the customer's open case and queue the
        apology, all in one transaction. Returns how many messages were queued (none when the
        database itself fails: the apology then stays in `replies`, sent directly)."""
        dump = event.model_dump_json(exclude_none=True)
        if isinstance(exc, DomainError):
            log.warning("update %s refused (%s): %s | update=%s", external_id, exc.code, exc, dump)
        else:
            log.error("update %s failed | update=%s", external_id, dump, exc_info=exc)
        try:
            with self.sessions() as session:
                session.add(
                    InboundUpdate(source=SOURCE, external_id=external_id, received_at=self.clock())
                )
                if customer_id is not None:
                    ticket = session.scalar(
                        select(Ticket)
                        .where(
                            Ticket.customer_id.in_(account_ids(customer_id)),
                            Ticket.status.in_([s.value for s in OPEN_STATUSES]),
                        )
                        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
                        .limit(1)
                    )
                    if ticket is not None:
                        record_event(
                            session=session,
                            ticket=ticket,
                            type=EventType.bot_error,
                            actor=SYSTEM,
                            now=self.clock(),
                            error=type(exc).__name__,
                            detail=str(exc)[:500],
                            update_id=event.update_id,
                        )
                queued = replies.queue(session, self.clock())
                session.commit()
                replies.committed()
                return queued
        except SQLAlchemyError:
            # The database itself is failing: the log line above is all that can be kept.
            log.exception("could not record the failure of update %s", external_id)
            return 0


def without_nul(update: Update, bot: Bot) -> Update:
    """The update with NUL characters removed from what a person typed (a message's text or
    caption): no one types one, and PostgreSQL cannot store one in text, so a case's
    description or message would fail to save (the API refuses them with a 422; a chat
    cannot be answered with one, so here they are dropped). Telegram's objects are frozen:
    an update that carries one is rebuilt, the others pass untouched."""
    message = update.message or update.edited_message
    if message is None or "\x00" not in (message.text or "") + (message.caption or ""):
        return update
    raw = update.model_dump(mode="json", exclude_unset=True)
    for key in ("message", "edited_message"):
        part = raw.get(key)
        if isinstance(part, dict):
            for field in ("text", "caption"):
                if isinstance(part.get(field), str):
                    part[field] = part[field].replace("\x00", "")
    return Update.model_validate(raw, context={"bot": bot})


def _wake_delivery(data: dict[str, Any]) -> None:
    """Tell this process's delivery worker (the Dispatcher's `delivery`, set by the runtime)
    that replies were committed, so it sends them now rather than at its next tick."""
    worker = data.get("delivery")
    if worker is not None:
        worker.wake()
