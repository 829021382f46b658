"""Who holds an outbox row's claim: the senders' heartbeat, one mechanism for every sender.

Every sender of outbox rows (the Telegram worker, bot/delivery.py; the webhook sender,
api/hooks_delivery.py) claims rows by stamping its id on them (`OutboxMessage.claimed_by`) and
pushing them a lease ahead. A process killed between the claim and the record would leave its
rows to wait out that lease (minutes). So each sender has a heartbeat here: its id's
`outbox_workers.seen_at`, refreshed every `HEARTBEAT_SECONDS` in a thread of its own (a busy
event loop does not stop it), and each beat takes back the pending rows of every claimer not
seen for `OWNER_TIMEOUT` seconds, whatever channel they are on: due at once, a live sender sends
them within seconds.

The rule that keeps a row from going twice: a claimer is presumed dead only once its heartbeat
has stopped for `OWNER_TIMEOUT`, and a sender whose own beats have not worked for half that time
starts no send (`Heartbeat.alive`): its rows may be someone else's by now. A row goes twice only
if it was on the wire when its process died or froze for longer than the timeout.

The rows' claims must be made with the claimer seen in the same transaction (`seen`): a
sender run without its heartbeat thread (a test's passes, the command line) is not taken for a
dead one the moment its rows are stamped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from tickets.db import unit_of_work
from tickets.models import OutboxMessage, OutboxWorker

log = logging.getLogger(__name__)

# Several beats fit in the timeout, so a slow beat (a busy database) is not taken for a death.
HEARTBEAT_SECONDS = 5.0
OWNER_TIMEOUT = 20.0
# A sender gone this long holds nothing any more (its rows were taken back long ago).
FORGOTTEN_AFTER = timedelta(days=1)


def seen(session: Session, worker_id: str, now: datetime) -> None:
    """Mark the sender seen now (in the caller's transaction: a claim, a beat)."""
    worker = session.get(OutboxWorker, worker_id)
    if worker is None:
        session.add(OutboxWorker(id=worker_id, seen_at=now))
    else:
        worker.seen_at = now
    session.flush()


def take_back(session: Session, *, now: datetime, owner_timeout: float = OWNER_TIMEOUT) -> int:
    """The pending rows whose claimer has not been seen for `owner_timeout` become due now,
    their claim cleared (any channel: every sender beats here). Returns how many."""
    cutoff = now - timedelta(seconds=owner_timeout)
    live = select(OutboxWorker.id).where(OutboxWorker.seen_at >= cutoff)
    freed = session.execute(  # type: ignore[attr-defined]  # an UPDATE's CursorResult
        update(OutboxMessage)
        .where(
            OutboxMessage.status == "pending",
            OutboxMessage.claimed_by.is_not(None),
            OutboxMessage.claimed_by.not_in(live),
        )
        .values(next_attempt_at=now, claimed_by=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.execute(delete(OutboxWorker).where(OutboxWorker.seen_at < now - FORGOTTEN_AFTER))
    return int(freed or 0)


class Heartbeat:
    """One sender's heartbeat (module doc): `beat` once, or `start` a thread that beats every
    `every` seconds until `stop`; `alive` says whether this sender may still start a send."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        worker_id: str,
        clock: Callable[[], datetime],
        every: float = HEARTBEAT_SECONDS,
        owner_timeout: float = OWNER_TIMEOUT,
        name: str = "outbox-heartbeat",
    ) -> None:
        self.sessions = sessions
        self.worker_id = worker_id
        self.clock = clock
        self.every = every
        self.owner_timeout = owner_timeout
        self.name = name
        self._beaten_at: float | None = None  # time.monotonic() of the last beat that worked
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    def beat(self) -> int:
        """This sender is seen now, and the rows of claimers not seen for `owner_timeout`
        are taken back. Returns how many rows were taken back."""
        now = self.clock()
        stamp = time.monotonic()
        with unit_of_work(self.sessions) as session:
            seen(session, self.worker_id, now)
            freed = take_back(session, now=now, owner_timeout=self.owner_timeout)
        self._beaten_at = stamp
        if freed:
            log.warning("took back %d outbox row(s) of a delivery worker no longer seen", freed)
        return freed

    def beat_safely(self) -> int:
        try:
            return self.beat()
        except SQLAlchemyError:
            # Not seen this time; `alive` stops this sender's sends if it lasts.
            log.exception("%s failed", self.name)
            return 0

    def start(self, wake: Callable[[], object] | None = None) -> None:
        """Beat in a thread of its own every `every` seconds (call `beat_safely` first, so
        rows a killed predecessor left go out before the first claim); `wake` is called after
        a beat that took rows back."""
        self._done.clear()
        self._thread = threading.Thread(target=self._run, args=(wake,), name=self.name, daemon=True)
        self._thread.start()

    def _run(self, wake: Callable[[], object] | None) -> None:
        while not self._done.wait(self.every):
            try:
                if self.beat_safely() and wake is not None:
                    wake()
            except RuntimeError:
                return  # the loop closed under a stopping process: nothing to wake

    def stop(self) -> None:
        """Stop beating (blocking: the thread's last beat ends within one statement; call it
        from a thread, never on the event loop)."""
        self._done.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self.every)

    @property
    def beating(self) -> bool:
        return self._thread is not None

    def alive(self) -> bool:
        """Whether this sender may still start a send: its beats (when a thread runs them)
        worked within half the owner timeout, so no other sender has its rows yet."""
        if self._thread is None or self._beaten_at is None:
            return True
        return time.monotonic() - self._beaten_at < self.owner_timeout / 2
