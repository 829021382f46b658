"""One unit of work per Telegram update.

For every update, in this order:

1. The message's file, if any, is downloaded and stored (before the transaction: see below),
   unless the update was already handled.
2. A redelivered update (its id already stored) does nothing at all.
3. A transaction opens; the update's id is written first (`InboundUpdate`, unique), then the
   customer is resolved from the Telegram user, the handler runs with the session, the
   customer, the service context and a `Replies` collector injected; the FSM state is read and
   written through the same session; the collected answers are written to the outbox
   (bot/replies.py). Commit; or, on any error, roll back.
4. After the commit the delivery worker is woken to send the answers, and a pressed button's
   answer is sent directly (outside the transaction).

Why no network inside the transaction: the database code is synchronous and runs on the event
loop. A transaction that awaited Telegram would hold SQLite's write lock (or PostgreSQL row
locks) while another update's handler blocks the loop waiting for that lock: a deadlock. For
the same reason units of work in one process take turns (`asyncio.Lock`); they contain no
network waits, so the turn is short.

Errors are handled by type (domain errors, database errors, anything else): the customer gets a
short apology and a way on (queued like any answer, in the transaction that records the update
as handled; sent directly if even that fails), the error is logged with the update and the
customer's open case (if any) gets a `bot.error` event. Never silence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.storage.base import BaseStorage
from aiogram.types import InlineKeyboardMarkup, TelegramObject, Update, User
from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot import keyboards
from bot.fsm_storage import DatabaseStorage
from bot.i18n import Texts
from bot.identity import resolve_customer
from bot.media import Media, fetch_media
from bot.replies import Replies
from bot.routers.agents import answers_the_bot
from tickets.config import Policy
from tickets.exceptions import (
    Conflict,
    DomainError,
    DuplicateCase,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from tickets.models import OPEN_STATUSES, Agent, Customer, InboundUpdate, Ticket
from tickets.scripts import ScriptLibrary, resolve_language
from tickets.service import SYSTEM, Context, record_event
from tickets.settings import Settings
from tickets.storage import AttachmentStore

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


class UnitOfWorkMiddleware(BaseMiddleware):
    """The per-update transaction, dedupe, customer, media and error handling (module doc)."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        settings: Settings,
        policy: Policy,
        scripts: ScriptLibrary | None,
        texts: Texts,
        store: AttachmentStore,
        storage: BaseStorage,
        clock: Callable[[], datetime],
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.policy = policy
        self.scripts = scripts
        self.texts = texts
        self.store = store
        self.storage = storage
        self.clock = clock
        self._turn = asyncio.Lock()

    def context(self, now: datetime) -> Context:
        """The service context of one update."""
        return Context(
            policy=self.policy,
            now=now,
            tz=self.settings.tz,
            case_prefix=self.settings.case_prefix,
            scripts=self.scripts,
            shop_name=self.settings.shop_name,
        )

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        bot: Bot = data["bot"]
        external_id = f"{bot.id}:{event.update_id}"
        # A file is fetched before the transaction: check first that this is no redelivery
        # (for other updates the unique row written first in the transaction is the check).
        has_file = event.message is not None and bool(
            event.message.photo or event.message.video or event.message.document
        )
        if has_file and self._seen(external_id):
            log.info("update %s already handled: ignored", external_id)
            return UNHANDLED
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
        # Files are fetched from customers, and from linked agents answering one of the bot's
        # cards (a photo for the customer); the agents' other talk in their group, and anyone
        # there who is not an agent, is left alone.
        if event.message is not None and (
            private
            or (
                has_file
                and agents_chat
                and answers_the_bot(event.message, bot)
                and user is not None
                and self._is_agent(user)
            )
        ):
            try:
                media = await fetch_media(bot, event.message, self.store)
            except TelegramAPIError as exc:
                # Not recorded as handled: a redelivery (webhook) may fetch it; the customer is
                # asked to send it again in any case.
                log.error("could not download the file of update %s: %s", external_id, exc)
                replies.say("error.media_download")
                self._queue_alone(replies, data)
                await replies.flush(bot)
                return UNHANDLED
        result: Any = UNHANDLED
        failure: BaseException | None = None
        customer_id: int | None = None
        queued = 0
        async with self._turn:
            with self.sessions() as session:
                try:
                    # A plain INSERT, not an ORM object: it is written on every update, and
                    # the unit-of-work flush would cost more than the statement itself.
                    session.connection().execute(
                        _RECORD_UPDATE,
                        {"source": SOURCE, "external_id": external_id, "at": self.clock()},
                    )
                except IntegrityError:
                    # Its id is already stored: a redelivery (or a twin racing this one).
                    session.rollback()
                    log.info("update %s already handled: ignored", external_id)
                    return UNHANDLED
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
                    if isinstance(self.storage, DatabaseStorage):
                        with self.storage.bind(session):
                            result = await handler(event, data)
                        self.storage.flush(session)
                    else:
                        result = await handler(event, data)
                    queued = replies.queue(session, self.clock())
                    session.commit()
                    replies.committed()
                except Exception as exc:
                    # Whatever the type, the update's work is undone as a whole; `_report` and
                    # `error_text_key` then log and answer it by its type.
                    session.rollback()
                    failure = exc
            if failure is not None:
                replies.discard()
                if private:
                    # Customers get the apology; a group (the agents') gets only the log line.
                    replies.say(error_text_key(failure), markup=self._way_on(replies))
                queued = self._report(failure, event, external_id, customer_id, replies)
        if queued:
            _wake_delivery(data)
        # The button's answer; and everything, if the database could not queue the apology.
        await replies.flush(bot)
        return result

    # ------------------------------------------------------------ pieces

    def _seen(self, external_id: str) -> bool:
        with self.sessions() as session:
            return (
                session.scalar(
                    select(InboundUpdate.id).where(
                        InboundUpdate.source == SOURCE, InboundUpdate.external_id == external_id
                    )
                )
                is not None
            )

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

    def _is_agent(self, user: User) -> bool:
        """This Telegram account is a linked, active agent (read before the update's own
        transaction, like `_seen`)."""
        with self.sessions() as session:
            return self._agent(session, user) is not None

    def _way_on(self, replies: Replies) -> InlineKeyboardMarkup:
        return keyboards.main_menu(replies.t)

    def _queue_alone(self, replies: Replies, data: dict[str, Any]) -> None:
        """Queue `replies` in a transaction of their own (no update's work to join). If the
        database cannot take them, they stay for `flush` to send directly."""
        try:
            with self.sessions() as session:
                queued = replies.queue(session, self.clock())
                session.commit()
                replies.committed()
        except SQLAlchemyError:
            log.exception("could not queue an answer: sending it directly")
            return
        if queued:
            _wake_delivery(data)

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
                            Ticket.customer_id == customer_id,
                            Ticket.status.in_([s.value for s in OPEN_STATUSES]),
                        )
                        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
                        .limit(1)
                    )
                    if ticket is not None:
                        record_event(
                            session=session,
                            ticket=ticket,
                            type="bot.error",
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


def _wake_delivery(data: dict[str, Any]) -> None:
    """Tell this process's delivery worker (the Dispatcher's `delivery`, set by the runtime)
    that replies were committed, so it sends them now rather than at its next tick."""
    worker = data.get("delivery")
    if worker is not None:
        worker.wake()
