"""The outbox worker: sends pending outbox rows to Telegram within Telegram's limits, retries
what can be retried, and leaves every failure visible on its row and on the case.
Over 500 lines as one file: claim, send and record are one protocol whose order is the exactly-
once rule; split, that rule would span files.

How a row is delivered once:

1. **Claim** (one short transaction): due rows (`pending`, `next_attempt_at <= now`) are taken
   with `FOR UPDATE SKIP LOCKED` on PostgreSQL (two workers never take the same row; on SQLite
   `BEGIN IMMEDIATE` serialises claims), their `attempts` incremented and `next_attempt_at`
   pushed a lease ahead, and committed. No other worker will take them during the lease.
2. **Send**, outside any transaction: one coroutine per chat (that chat's rows in order, at
   most one message per `per_chat_interval`), all of them paced by Telegram's limits (about
   30 messages a second for the bot; a group, the agents', one per `group_interval`), kept
   across every process together (bot/pacing.py: Redis, PostgreSQL, or memory on SQLite).
3. **Record** (one short transaction per row): sent; or rescheduled (`retry_after` honoured,
   network and 5xx errors backed off exponentially), or failed (blocked by the customer, a
   request Telegram refuses, out of attempts) with `last_error` and an event on the case.

Sending is the event loop's (network); every database step (claim, record, release, the cards
read) runs in a thread (`asyncio.to_thread`): a wait for SQLite's write lock, held by a request
that needs the loop to finish, must never block the loop (the guard in tickets/db.py refuses
it). Why not keep the claiming transaction open while sending: it would hold SQLite's write
lock (or a pooled PostgreSQL connection and its row locks) for as long as Telegram takes. The
lease gives the same guarantee: a row is sent again only if the process dies between Telegram
accepting it and step 3 (then once more after the lease: resend, never forget).

**Who holds a claim** (issue 18: a killed process's rows used to wait out the whole 5-minute
lease). Each worker has an id, stamped on the rows it claims (`claimed_by`), and a heartbeat
(`outbox_workers.seen_at`, every `heartbeat_seconds`, in a thread of its own so a busy event
loop does not stop it; tickets/messages/claims.py, the webhook sender's too). Each beat also
takes back the pending rows whose claimer has not been seen for `owner_timeout` seconds (killed,
frozen, gone): due at once, they go out from a live worker within seconds. A row is let go
of (recorded, given back, put to wait) with its claim cleared, so a retry's backoff is never
cut short by its claimer's death. The exactly-once rule is unchanged: the claimer is presumed
dead only when its heartbeat stopped, and a worker whose own heartbeat has not succeeded for
half that time starts no send (its rows may be someone else's by now); so a row goes twice only
if it was on the wire when its process died or froze for longer than `owner_timeout` (as after
the lease before).

Stopping (`stop_claiming`, then `release_unsent`): no pass claims more; a row whose first
request has gone finishes and is recorded; the rows claimed but not yet sent are given back,
due at once, so another process sends them now rather than after the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import (
    EditMessageReplyMarkup,
    EditMessageText,
    SendDocument,
    SendMessage,
    SendPhoto,
    SendVideo,
    TelegramMethod,
)
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup
from sqlalchemy import Engine, select, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased, sessionmaker

from bot import keyboards
from bot.i18n import Texts
from bot.pacing import Limits, Pacer, build_pacer
from tickets.cases.events import record_event
from tickets.context import SYSTEM
from tickets.db import unit_of_work
from tickets.exceptions import InvalidInput
from tickets.logcontext import case_scope
from tickets.messages import payloads
from tickets.messages.claims import HEARTBEAT_SECONDS, OWNER_TIMEOUT, Heartbeat, seen
from tickets.messages.outbox import notify_agents
from tickets.messages.payloads import (
    CARD_TAKEN,
    AgentCard,
    BotAnswer,
    CardTaken,
    CustomerMessage,
    FileRef,
    OutboxPayload,
    Reply,
)
from tickets.models import EventType, OutboxMessage, Ticket, utcnow
from tickets.settings import Settings
from tickets.storage import AttachmentStore
from tickets.telemetry import instruments

log = logging.getLogger(__name__)

CHANNELS = ("telegram", "agents")
# Telegram takes photos up to 10 MB (sendPhoto); a bigger one goes as a document (50 MB).
PHOTO_MAX_BYTES = 10 * 1024 * 1024
# Telegram's answer to an edit that changes nothing.
NOT_MODIFIED = "message is not modified"
# How many of a case's latest cards are updated when it is taken (CARD_TAKEN rows).
CARDS_UPDATED = 3
# The Bot API calls a conversation reply may be (bot/replies.py), by their API names.
REPLY_METHODS: dict[str, type[TelegramMethod[Any]]] = {
    m.__api_method__: m for m in (SendMessage, EditMessageReplyMarkup)
}


# A sender woken too late for its slot takes another, at most this many times (then it goes:
# a process that late every time would otherwise not send at all).
MAX_RESLOTS = 5

# The outbox row whose send the current task is making (one task per chat in a pass).
_SENDING: ContextVar[int | None] = ContextVar("aftersales_sending_row", default=None)


class _Stopping(Exception):
    """The worker stops: a row not yet on the wire goes back to the queue."""


@dataclass(frozen=True)
class DeliveryConfig:
    """Telegram's limits and the retry rules (seconds unless named otherwise)."""

    # Telegram counts 30 a second for the bot where the messages arrive; paced at exactly
    # that, a message landing a little late (the network, a busy loop, up to one slot: see
    # `_pace`) beside an on-time one makes 31 in some second. 28 leaves that room.
    rate_per_second: float = 28.0
    per_chat_interval: float = 1.0
    # Telegram allows a group about 20 messages a minute (the agents' group, by its negative
    # chat id): a burst of cards after a sweep would otherwise meet flood waits.
    group_interval: float = 3.0
    batch_size: int = 100
    # Longer than the slowest send can take (the bot's request timeout), so a lease never
    # expires while its message is still on the wire.
    lease_seconds: float = 300.0
    # The claimer's heartbeat: a row whose claimer has not been seen for `owner_timeout` is
    # taken back (module doc) long before its lease ends. Several beats fit in the timeout,
    # so a slow beat (a busy database) is not taken for a death.
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    owner_timeout: float = OWNER_TIMEOUT
    max_attempts: int = 10
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    # A flood wait longer than this is capped: the row is tried again then (and waits again).
    max_retry_after: float = 3600.0
    idle_seconds: float = 0.5
    # A chat not ready for longer than this (its pace, a flood wait) gets its rows put back
    # until then, rather than a pass that waits for it: one slow chat must not hold up the
    # others (a customer's answer behind the agents' group, say).
    max_inline_wait: float = 0.5


@dataclass(frozen=True)
class Claimed:
    """A row taken for sending, as plain values (the claiming session is closed)."""

    id: int
    channel: str
    recipient: str
    ticket_id: int | None
    kind: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """What happened to one send: sent, skipped, retry (after `delay`), failed."""

    result: str
    error: str | None = None
    delay: float = 0.0
    # Failures the agents must hear about (the customer blocked the bot).
    unreachable: bool = False
    # The Telegram message a card became (kept on its row: the card is edited when the case
    # is taken, see `_update_cards`).
    message_id: int | None = None
    # What kind of error a send that did not go through met, for the metrics (a bounded
    # label: flood, forbidden, bad_request, ..., tickets/telemetry.py).
    kind: str | None = None


@dataclass
class DeliveryReport:
    """What one pass did."""

    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0
    outcomes: dict[int, Outcome] = field(default_factory=dict)


class DeliveryWorker:
    """Sends the outbox (module doc). One per process is enough; several are safe."""

    def __init__(
        self,
        *,
        bot: Bot,
        sessions: sessionmaker[Session],
        settings: Settings,
        config: DeliveryConfig | None = None,
        texts: Texts | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        agent_language: str = "zh-CN",
        store: AttachmentStore | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.bot = bot
        # Where a reply's files are read from (an agent's photo from the agents' chat).
        self.store = store or AttachmentStore(settings.media_dir)
        self.sessions = sessions
        self.settings = settings
        self.config = config or DeliveryConfig()
        self.texts = texts or Texts.load()
        self.agent_language = agent_language
        self.clock = clock
        self.sleep = sleep
        # The pace's clock (seconds); a test moves it with its own `clock`.
        self.monotonic = monotonic
        # One message per 1/rate seconds, no burst (a burst of 30 at once would break the
        # rate over any one-second window that starts just before it), and each chat's pace:
        # shared by every process through Redis or PostgreSQL, in memory on SQLite
        # (bot/pacing.py).
        bind = sessions.kw.get("bind")
        self.pacer = pacer or build_pacer(
            settings,
            Limits(
                rate_per_second=self.config.rate_per_second,
                per_chat_interval=self.config.per_chat_interval,
                group_interval=self.config.group_interval,
            ),
            engine=bind if isinstance(bind, Engine) else None,
            monotonic=monotonic,
        )
        # Rows claimed by this process and not yet handed to Telegram: given back at once
        # when the process stops (`release_unsent`), not left to their lease.
        self._unsent: dict[int, Claimed] = {}
        # This worker's id on the rows it claims, and its heartbeat (module doc).
        self.worker_id = uuid.uuid4().hex
        self.heartbeat = Heartbeat(
            sessions=sessions,
            worker_id=self.worker_id,
            clock=clock,
            every=self.config.heartbeat_seconds,
            owner_timeout=self.config.owner_timeout,
        )
        self._stopping = False
        self._stopped = asyncio.Event()
        # Set when rows were queued in this process (a conversation's reply): the idle wait
        # ends at once, so a reply does not wait for the next polling pass.
        self._wake = asyncio.Event()

    # ------------------------------------------------------------ the loop

    def wake(self) -> None:
        """Rows were just committed: start a pass now (when idle) rather than at the next
        `idle_seconds` tick. Rows queued by other processes are found by that tick."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; an idle pass waits `idle_seconds`, or until `wake()`
        (`stop()` wakes it too)."""
        log.info("delivery worker started")
        self._stopping = False
        self._stopped.clear()
        loop = asyncio.get_running_loop()
        # The first beat before the first claim: rows a killed predecessor left go out now.
        await asyncio.to_thread(self.heartbeat.beat_safely)
        self.heartbeat.start(lambda: loop.call_soon_threadsafe(self.wake))
        try:
            await self._deliver_until(stop)
        finally:
            # The thread's last beat ends within one statement; not waited for on the loop.
            await asyncio.to_thread(self.heartbeat.stop)
        log.info("delivery worker stopped")

    async def _deliver_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                report = await self.run_once()
            except SQLAlchemyError:
                # The database is unavailable: nothing was lost (rows stay pending), try later.
                log.exception("delivery pass failed; retrying shortly")
                report = DeliveryReport()
            except Exception:
                # A bug must not stop delivery for good: logged, and the next pass goes on
                # (claimed rows come back when their lease ends).
                log.exception("delivery pass failed unexpectedly; retrying shortly")
                report = DeliveryReport()
            if report.claimed == 0 and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.config.idle_seconds)

    # ------------------------------------------------------------ the heartbeat

    def beat(self) -> int:
        """One heartbeat (tickets/messages/claims.py): this worker is seen now, and the
        pending rows of claimers not seen for `owner_timeout` become due at once (their claim
        cleared). Returns how many."""
        return self.heartbeat.beat()

    async def drain(self) -> DeliveryReport:
        """Pass after pass until nothing is due now, or a pass only put rows back to wait;
        what all the passes did."""
        total = DeliveryReport()
        while True:
            report = await self.run_once()
            if report.claimed == 0:
                return total
            done = report.sent + report.skipped + report.failed
            total.claimed += report.claimed
            total.sent += report.sent
            total.skipped += report.skipped
            total.retried += report.retried
            total.failed += report.failed
            total.outcomes.update(report.outcomes)
            if done == 0:
                return total  # only retries (due again at once, a zero wait): no spinning

    async def run_once(self) -> DeliveryReport:
        """One pass: claim the due rows, send them, record each outcome."""
        if self._stopping:
            return DeliveryReport()  # stopping: nothing more is claimed here
        rows = await asyncio.to_thread(self._claim)
        # Passes may overlap (a wake during a pass): each adds its own rows. A row left by a
        # pass that failed waits out its lease (it may be on the wire), never given back early.
        self._unsent.update((row.id, row) for row in rows)
        report = DeliveryReport(claimed=len(rows))
        # By the Telegram chat they go to: the agents' cards and the bot's answers in the
        # agents' group are one sequence, paced together.
        by_chat: dict[str, list[Claimed]] = {}
        for row in rows:
            target = self._target(row)
            key = f"chat:{target}" if target is not None else f"{row.channel}:{row.recipient}"
            by_chat.setdefault(key, []).append(row)
        try:
            await asyncio.gather(
                *(self._deliver_chat(chat_rows, report) for chat_rows in by_chat.values())
            )
        except BaseException:
            self._forget(rows)
            raise
        return report

    # ------------------------------------------------------------ claim and record

    def _claim(self) -> list[Claimed]:
        now = self.clock()
        with unit_of_work(self.sessions) as session:
            # Only rows no earlier pending row of their chat is waiting before (a retry
            # waiting out its delay, a row leased by a pass): those are what may go now. Left
            # in the batch, they could fill it, be dropped by `_in_chat_order` and be read
            # again on every pass while every other chat waits (issue 18's stall). In id
            # order: a row's earlier due rows come before it, so the limit never takes a
            # chat's later rows without its first (ordered by due time, rows given back
            # behind a retry could come first, and be dropped again).
            earlier = aliased(OutboxMessage)
            blocked = (
                select(earlier.id)
                .where(
                    earlier.channel == OutboxMessage.channel,
                    earlier.recipient == OutboxMessage.recipient,
                    earlier.status == "pending",
                    earlier.id < OutboxMessage.id,
                    earlier.next_attempt_at > now,
                )
                .exists()
            )
            query = (
                select(OutboxMessage)
                .where(
                    OutboxMessage.status == "pending",
                    OutboxMessage.next_attempt_at <= now,
                    OutboxMessage.channel.in_(CHANNELS),
                    ~blocked,
                )
                .order_by(OutboxMessage.id)
                .limit(self.config.batch_size)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = _in_chat_order(session, list(session.scalars(query)))
            lease_until = now + timedelta(seconds=self.config.lease_seconds)
            if rows:
                # Seen as it claims: a worker driven by `run_once` alone (no heartbeat) is
                # not taken for a dead one the moment its rows are stamped.
                seen(session, self.worker_id, now)
            claimed = []
            for row in rows:
                row.attempts += 1
                row.next_attempt_at = lease_until
                row.claimed_by = self.worker_id
                claimed.append(
                    Claimed(
                        id=row.id,
                        channel=row.channel,
                        recipient=row.recipient,
                        ticket_id=row.ticket_id,
                        kind=row.kind,
                        payload=dict(row.payload or {}),
                        attempts=row.attempts,
                    )
                )
        # Same chat in id order: a customer reads the notices in the order they were decided.
        claimed.sort(key=lambda c: c.id)
        return claimed

    def _record(self, row: Claimed, outcome: Outcome) -> str:
        """Write the outcome; returns what the row became: sent, skipped, retry, failed."""
        now = self.clock()
        with unit_of_work(self.sessions) as session:
            db_row = session.get(OutboxMessage, row.id)
            if db_row is None:
                return "failed"  # its case was deleted meanwhile: nothing left to record
            if db_row.status != "pending":
                log.warning("outbox %s was already %s; keeping that", row.id, db_row.status)
                return "failed"
            db_row.claimed_by = None
            if outcome.result in ("sent", "skipped"):
                db_row.status = "sent"
                db_row.sent_at = now
                db_row.last_error = outcome.error
                if outcome.message_id is not None:
                    # The card's message: edited when the case is taken (`_update_cards`).
                    card = payloads.of(db_row, AgentCard)
                    card.telegram_message_id = outcome.message_id
                    db_row.payload = payloads.dump(card)
                return outcome.result
            db_row.last_error = outcome.error
            if outcome.result == "retry" and row.attempts < self.config.max_attempts:
                db_row.next_attempt_at = now + timedelta(seconds=outcome.delay)
                return "retry"
            db_row.status = "failed"
            if outcome.result == "retry":
                db_row.last_error = f"gave up after {row.attempts} attempts: {outcome.error}"
            self._show_failure(session, row, db_row, outcome, now)
        return "failed"

    def _release(self, rows: list[Claimed], delay: float, why: str | None) -> None:
        """Give back rows not tried because their chat must wait (an earlier row's retry, the
        chat's pace): they keep their place and lose no attempt. `why` goes on the rows (a
        pace is no error: None leaves them as they were)."""
        if not rows:
            return
        until = self.clock() + timedelta(seconds=delay)
        with unit_of_work(self.sessions) as session:
            for row in rows:
                db_row = session.get(OutboxMessage, row.id)
                # Only rows still this worker's: one taken back meanwhile is another's now.
                if (
                    db_row is not None
                    and db_row.status == "pending"
                    and db_row.claimed_by == self.worker_id
                ):
                    db_row.claimed_by = None
                    db_row.attempts = max(db_row.attempts - 1, 0)
                    db_row.next_attempt_at = until
                    if why is not None:
                        db_row.last_error = why

    def _show_failure(
        self,
        session: Session,
        row: Claimed,
        db_row: OutboxMessage,
        outcome: Outcome,
        now: datetime,
    ) -> None:
        """A message that will not be delivered: on the case's log, and to the agents when the
        customer cannot be reached."""
        ticket = session.get(Ticket, row.ticket_id) if row.ticket_id is not None else None
        with case_scope(ticket.number if ticket is not None else None):
            log.warning("outbox %s failed for %s: %s", row.id, row.recipient, db_row.last_error)
        if ticket is None:
            return
        record_event(
            session=session,
            ticket=ticket,
            type=EventType.delivery_failed,
            actor=SYSTEM,
            now=now,
            outbox_id=row.id,
            kind=row.kind,
            channel=row.channel,
            error=db_row.last_error,
            unreachable=outcome.unreachable,
        )
        if outcome.unreachable and row.channel == "telegram":
            notify_agents(
                session=session,
                ticket=ticket,
                kind="customer_unreachable",
                payload=AgentCard(
                    type="customer_unreachable",
                    number=ticket.number,
                    text=self._unreachable_text(ticket),
                    parse_mode="HTML",
                ),
                now=now,
            )

    def _unreachable_text(self, ticket: Ticket) -> str:
        return self._agent_text("agents.unreachable", case_no=ticket.number)

    def _agent_text(self, key: str, **values: Any) -> str:
        """A text in the agents' language (their chat's cards and notices)."""
        return self.texts.get(self.agent_language, key, **values)

    # ------------------------------------------------------------ sending

    async def _deliver_chat(self, rows: list[Claimed], report: DeliveryReport) -> None:
        for i, row in enumerate(rows):
            if self._stopping:
                return  # stopping: the rest go back to the queue (`release_unsent`)
            chat_id = self._target(row)
            wait = await self.pacer.ready_in(chat_id) if chat_id is not None else 0.0
            if chat_id is not None and wait > self.config.max_inline_wait:
                # Not worth holding the pass for: back in the queue, due when the chat is.
                await asyncio.to_thread(self._release, rows[i:], wait, None)
                self._forget(rows[i:])
                report.retried += len(rows) - i
                return
            token = _SENDING.set(row.id)
            try:
                outcome = await self._send(row)
            except _Stopping:
                return  # this row and the rest are given back (`release_unsent`)
            finally:
                _SENDING.reset(token)
            self._unsent.pop(row.id, None)
            report.outcomes[row.id] = outcome
            if outcome.kind is not None:
                instruments().delivery_errors.labels(row.channel, outcome.kind).inc()
            final = await asyncio.to_thread(self._record, row, outcome)
            counter = {"sent": "sent", "skipped": "skipped", "retry": "retried"}.get(
                final, "failed"
            )
            setattr(report, counter, getattr(report, counter) + 1)
            if final == "retry":
                # Later messages to this chat wait behind it, in order.
                rest = rows[i + 1 :]
                await asyncio.to_thread(
                    self._release, rest, outcome.delay, f"waiting behind outbox {row.id}"
                )
                self._forget(rest)
                report.retried += len(rest)
                return

    def _forget(self, rows: list[Claimed]) -> None:
        for row in rows:
            self._unsent.pop(row.id, None)

    def stop_claiming(self) -> None:
        """Stopping: no new pass claims rows, and the pass under way sends no further row
        (the sends on the wire finish and are recorded)."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    def release_unsent(self) -> int:
        """Give back the rows this process claimed but never began to send, due now: another
        process sends them at once instead of after their lease. Returns how many."""
        rows = list(self._unsent.values())
        self._unsent.clear()
        if rows:
            self._release(rows, 0.0, None)
            log.info("released %d claimed outbox row(s) for other workers", len(rows))
        return len(rows)

    def _target(self, row: Claimed) -> int | None:
        if row.channel == "agents":
            return self.settings.agent_chat_id
        return int(row.recipient)

    def _interval(self, chat_id: int) -> float:
        """The least time between two messages to this chat (groups have negative ids)."""
        return self.config.group_interval if chat_id < 0 else self.config.per_chat_interval

    async def _pace(self, chat_id: int | None) -> None:
        """Wait for this message's slot: the bot's rate and the chat's pace (None: the bot's
        rate only), across every process (bot/pacing.py). The chat's own pace is waited out
        first: a slot reserved ahead for a slow chat would push the bot's mark, and every
        other chat, behind it."""
        row_id = _SENDING.get()
        # The row's first request: until it goes, a stop gives the row back (and cuts the
        # wait short); from then on it may reach Telegram, so it is never given back early
        # (a stop that cuts its send short leaves it to its lease: sent again, never lost).
        first = row_id is not None and row_id in self._unsent
        if chat_id is not None:
            await self._wait(await self.pacer.ready_in(chat_id), first)
        # The slot is a time, not a wait: the answer reaches this loop later than it was
        # given (a thread's hand-off, a busy loop), and that delay must not be slept again.
        # A sender that wakes well after its slot (the loop was busy, the process stalled)
        # takes a fresh one: sent at once, it would land beside the senders of the next
        # slots, and a stalled process's backlog would arrive as a burst on top of the
        # other processes' pace (issue 18: two processes, 61-76 a second).
        # Only the bot's mark again then: the chat's turn is taken (another chat slot would
        # hold it a whole interval more), and its interval is counted again from Telegram's
        # answer (`hold` in `_send`).
        key = chat_id
        for _ in range(MAX_RESLOTS):
            slot = await self.pacer.reserve_at(key)
            key = None
            await self._wait(slot - self.pacer.clock(), first)
            late = self.pacer.clock() - slot
            if late <= self.pacer.limits.bot_interval:
                break
            log.debug("woke %.3fs after the pace slot: another slot", late)
        if first and row_id is not None:
            if self._stopping:
                raise _Stopping
            if not self.heartbeat.alive():
                # Not seen for too long: the row may be another worker's by now (module doc).
                log.warning("outbox %s not sent: this worker's heartbeat is failing", row_id)
                raise _Stopping
            self._unsent.pop(row_id, None)

    async def _hold(self, chat_id: int, seconds: float) -> None:
        """Mark the chat's next slot in the shared pace. It runs after Telegram answered: a
        pace store that fails (Redis, the database) must not turn a sent message into an
        unrecorded one, sent again after its lease; the chat's pace is then only a guess."""
        try:
            await self.pacer.hold(chat_id, seconds)
        except Exception:
            log.exception("could not mark chat %s's pace; the message's outcome stands", chat_id)

    async def _wait(self, seconds: float, interruptible: bool) -> None:
        """Sleep for a slot; a stop ends the sleep of a row not yet sent at once."""
        if seconds <= 0:
            return
        if self._stopping and interruptible:
            raise _Stopping
        if not interruptible:
            await self.sleep(seconds)
            return
        slept = asyncio.ensure_future(self.sleep(seconds))
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({slept, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            slept.cancel()
            stopped.cancel()
        if self._stopping:
            raise _Stopping

    def _markup(self, row: Claimed, message: OutboxPayload) -> InlineKeyboardMarkup | None:
        """The buttons a row carries: an agents' card about a case gets "take it" and "open
        in the panel"; a notice asking for a rating gets the 1-5 buttons; one asking to ship
        the return gets "tracking number" and "book a pickup"."""
        if isinstance(message, AgentCard):
            number = message.case_number
            if not number:
                return None
            return keyboards.agent_card(
                self._agent_text, number, public_url=self.settings.public_url
            )
        return keyboards.customer_markup(self.texts, message, row.ticket_id)

    def _backoff(self, attempts: int) -> float:
        return float(
            min(self.config.backoff_base * 2 ** max(attempts - 1, 0), self.config.backoff_cap)
        )

    async def _send(self, row: Claimed) -> Outcome:
        chat_id = self._target(row)
        if chat_id is None:
            return Outcome("skipped", error="skipped: no AFTERSALES_AGENT_CHAT_ID configured")
        try:
            message = payloads.of(row)
            reply = _reply_method(row, message)
            if reply is None and isinstance(message, Reply) and message.attachment is not None:
                reply = await self._file_method(row, message, message.attachment, chat_id)
        except ValueError as exc:  # pydantic's ValidationError included: a row we can't read
            return Outcome("failed", error=f"unreadable reply: {exc}", kind="unreadable")
        except (OSError, InvalidInput) as exc:
            return Outcome(
                "failed", error=f"the file is missing from the store: {exc}", kind="missing_file"
            )
        text = message.text if isinstance(message, CustomerMessage | AgentCard) else None
        if reply is None and not text and not isinstance(message, CardTaken):
            return Outcome(
                "failed", error="nothing to send: the row has no rendered text", kind="empty"
            )
        sent_id: int | None = None
        try:
            if isinstance(message, CardTaken):
                await self._update_cards(row, message, chat_id)
            elif isinstance(reply, SendPhoto):
                await self._pace(chat_id)
                await self._send_photo(reply)
            elif reply is not None:
                await self._pace(chat_id)
                await self.bot(reply)
            else:
                await self._pace(chat_id)
                sent_id = await self._send_text(
                    row, message, chat_id, str(text), self._markup(row, message)
                )
            # Counted again from the answer: network jitter must not bring two messages to one
            # chat closer than the interval when they arrive.
            await self._hold(chat_id, self._interval(chat_id))
        except TelegramRetryAfter as exc:
            delay = min(float(exc.retry_after), self.config.max_retry_after)
            # Telegram says this chat (or the bot) must wait: nothing goes to it before then,
            # from any process.
            await self._hold(chat_id, delay)
            return Outcome(
                "retry",
                error=f"flood control: retry after {exc.retry_after}s",
                delay=delay,
                kind="flood",
            )
        except TelegramForbiddenError as exc:
            return Outcome(
                "failed", error=f"forbidden: {exc.message}", unreachable=True, kind="forbidden"
            )
        except TelegramMigrateToChat as exc:
            return Outcome(
                "failed",
                error=f"the chat moved to {exc.migrate_to_chat_id}: update the setting",
                kind="chat_migrated",
            )
        except TelegramBadRequest as exc:
            if NOT_MODIFIED in exc.message:
                # An edit to what the message already shows (a button pressed twice): done.
                return Outcome("sent", error=f"already so: {exc.message}")
            return Outcome(
                "failed", error=f"refused by Telegram: {exc.message}", kind="bad_request"
            )
        except TelegramNotFound as exc:
            return Outcome("failed", error=f"refused by Telegram: {exc.message}", kind="not_found")
        except TelegramUnauthorizedError as exc:
            # The token was revoked: every message would fail alike; keep them for a new token.
            log.critical("Telegram refuses the bot token: %s", exc.message)
            return Outcome(
                "retry",
                error=f"unauthorized: {exc.message}",
                delay=self.config.backoff_cap,
                kind="unauthorized",
            )
        except (TelegramServerError, TelegramNetworkError) as exc:
            return Outcome(
                "retry",
                error=f"{type(exc).__name__}: {exc.message}",
                delay=self._backoff(row.attempts),
                kind="server" if isinstance(exc, TelegramServerError) else "network",
            )
        except TelegramAPIError as exc:
            return Outcome(
                "retry",
                error=f"{type(exc).__name__}: {exc.message}",
                delay=self._backoff(row.attempts),
                kind="other",
            )
        return Outcome("sent", message_id=sent_id if row.channel == "agents" else None)

    async def _update_cards(self, row: Claimed, taken_by: CardTaken, chat_id: int) -> None:
        """The case was taken: its latest cards in the agents' chat say by whom and lose their
        "take it" button. A card Telegram no longer lets us edit (deleted, unchanged) is left
        as it is; flood waits and network errors retry the row (edits repeat harmlessly)."""
        number = taken_by.number
        taken = self._agent_text("agents.taken", case_no=number, agent=taken_by.agent)
        markup = keyboards.agent_card(
            self._agent_text, number, public_url=self.settings.public_url, take=False
        )
        for message_id, text, parse_mode in await asyncio.to_thread(self._cards_of, row):
            # Edits, not new messages: only the bot's overall rate holds them.
            await self._pace(None)
            try:
                await self.bot(
                    EditMessageText(
                        chat_id=chat_id,
                        message_id=message_id,
                        text=f"{text}\n\n{taken}",
                        parse_mode=parse_mode,
                        reply_markup=markup,
                    )
                )
            except TelegramBadRequest as exc:
                log.info("card %s of %s not updated: %s", message_id, number, exc.message)

    def _cards_of(self, row: Claimed) -> list[tuple[int, str, str | None]]:
        """(message id, text, parse mode) of the case's cards sent before `row`, the newest
        few (the ones agents still look at), oldest first."""
        if row.ticket_id is None:
            return []
        with self.sessions() as session:
            earlier = session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.ticket_id == row.ticket_id,
                    OutboxMessage.channel == "agents",
                    OutboxMessage.status == "sent",
                    OutboxMessage.id < row.id,
                )
                .order_by(OutboxMessage.id.desc())
                .limit(20)
            ).all()
            sent = [payloads.readable(c) for c in earlier if c.kind != CARD_TAKEN]
            cards = [
                (c.telegram_message_id, c.text or "", c.parse_mode)
                for c in sent
                if isinstance(c, AgentCard) and c.telegram_message_id
            ]
        return list(reversed(cards[:CARDS_UPDATED]))

    async def _file_method(
        self, row: Claimed, reply: Reply, file: FileRef, chat_id: int
    ) -> TelegramMethod[Any]:
        """A photo, video or document from the attachment store (the cleaned copy: no
        location metadata), with the reply's text as its caption. A photo too big for
        Telegram's photos goes as a document."""
        kind = file.kind or "document"
        path = self.store.path(file.storage_key)
        data = await asyncio.to_thread(path.read_bytes)  # up to the video limit: off the loop
        name = file.name or f"{kind}-{row.id}{path.suffix}"
        upload = BufferedInputFile(data, filename=name)
        caption = reply.text or None
        parse_mode = reply.parse_mode if caption else None
        if kind == "photo" and len(data) <= PHOTO_MAX_BYTES:
            return SendPhoto(chat_id=chat_id, photo=upload, caption=caption, parse_mode=parse_mode)
        if kind == "video":
            return SendVideo(chat_id=chat_id, video=upload, caption=caption, parse_mode=parse_mode)
        return SendDocument(
            chat_id=chat_id, document=upload, caption=caption, parse_mode=parse_mode
        )

    async def _send_photo(self, photo: SendPhoto) -> None:
        """A photo; one Telegram refuses as a photo (its sides too long, too narrow) goes
        as a document, which keeps it whole."""
        try:
            await self.bot(photo)
        except TelegramBadRequest as exc:
            if "PHOTO" not in exc.message.upper():
                raise
            log.info("photo to %s refused as a photo (%s): sent as a file", photo.chat_id, exc)
            # A second message as far as Telegram's limits go: paced like the first.
            await self._pace(int(photo.chat_id))
            await self.bot(
                SendDocument(
                    chat_id=photo.chat_id,
                    document=photo.photo,
                    caption=photo.caption,
                    parse_mode=photo.parse_mode,
                )
            )

    async def _send_text(
        self,
        row: Claimed,
        message: OutboxPayload,
        chat_id: int,
        text: str,
        markup: InlineKeyboardMarkup | None,
    ) -> int:
        """A notice or a card: its rendered text with the buttons its kind carries. Returns
        the id of the message it became."""
        parse_mode = (
            message.parse_mode if isinstance(message, CustomerMessage | AgentCard) else None
        )
        try:
            sent = await self.bot(
                SendMessage(chat_id=chat_id, text=text, parse_mode=parse_mode, reply_markup=markup)
            )
        except TelegramBadRequest as exc:
            if not _has_url(markup):
                raise
            # Telegram refuses link buttons to addresses it deems invalid (localhost, a bad
            # AFTERSALES_PUBLIC_URL): the card still goes, without its link.
            log.warning("card %s refused with its panel link (%s): sent without", row.id, exc)
            await self._pace(chat_id)
            sent = await self.bot(
                SendMessage(
                    chat_id=chat_id,
                    text=text,
                    parse_mode=parse_mode,
                    reply_markup=_without_urls(markup),
                )
            )
        return sent.message_id


def _in_chat_order(session: Session, due: list[OutboxMessage]) -> list[OutboxMessage]:
    """The due rows that may go now: in each chat, those before its first pending row that is
    not due (a retry waiting out its delay, a row another worker is sending). A later message
    never overtakes an earlier one to the same chat. The claim's query already leaves out
    rows behind a waiting one; this catches the rest: on PostgreSQL an earlier row another
    worker is claiming at this moment (locked, so skipped, yet due in our snapshot), or an
    earlier due row the batch's limit left out."""
    if not due:
        return []
    chats = {(r.channel, r.recipient) for r in due}
    pending = session.execute(
        select(OutboxMessage.id, OutboxMessage.channel, OutboxMessage.recipient)
        .where(
            OutboxMessage.status == "pending",
            tuple_(OutboxMessage.channel, OutboxMessage.recipient).in_(chats),
            OutboxMessage.id <= max(r.id for r in due),
        )
        .order_by(OutboxMessage.id)
    ).all()
    due_ids = {r.id for r in due}
    blocked: set[tuple[str, str]] = set()
    allowed: set[int] = set()
    for ident, channel, recipient in pending:
        chat = (channel, recipient)
        if chat in blocked:
            continue
        if ident in due_ids:
            allowed.add(ident)
        else:
            blocked.add(chat)
    return [r for r in due if r.id in allowed]


def _reply_method(row: Claimed, message: OutboxPayload) -> TelegramMethod[Any] | None:
    """The Bot API call a conversation reply row stands for (bot/replies.py writes them), or
    None for a rendered notice or card."""
    if not isinstance(message, BotAnswer):
        return None
    method = REPLY_METHODS.get(message.method)
    if method is None:
        raise ValueError(f"outbox {row.id}: unknown Bot API method {message.method!r}")
    return method.model_validate(message.params)


def _has_url(markup: InlineKeyboardMarkup | None) -> bool:
    return markup is not None and any(b.url for row in markup.inline_keyboard for b in row)


def _without_urls(markup: InlineKeyboardMarkup | None) -> InlineKeyboardMarkup | None:
    if markup is None:
        return None
    rows = [[b for b in row if not b.url] for row in markup.inline_keyboard]
    rows = [row for row in rows if row]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
