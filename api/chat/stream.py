"""The web chat's delivery: the outbox's `web` rows pushed to the open pages as server-sent
events.

Every message to a web chat is an outbox row like Telegram's (the bot's answers: bot/replies.py;
notices and agents' replies: tickets/messages/outbox.py), and the customer's own messages are
written beside them as `web_echo` rows (so every tab of the session, and the session after a
reload, shows the whole conversation in order). The event stream of a page sends a chat's rows
in id order, each as an event whose id is the row's; a row pending until then is marked sent
once pushed. A page that reconnects (a network drop, a server restart) says the last id it has
(`Last-Event-ID`, which the browser's EventSource sends by itself) and gets what follows it:
nothing lost, nothing twice. A customer offline when the agent answers gets the answer on
return, from the outbox. A row the page cannot show (skipped, logged) counts in /metrics as
a delivery error, as Telegram's rows that cannot be sent do (`aftersales_delivery_errors_total`,
channel `web`).

A stream waits, off the database, until it is woken: by the chat's own messages at once (the
route that fed the update), and by the process's one watcher (api/watch.py, shared with the
panel's notifications) that looks for new `web` rows every AFTERSALES_WATCH_SECONDS (an agent's
answer from the panel, another process) and wakes only the chats they are for. Every database
step runs in a thread: the event loop never waits on the database.

When the server is told to stop (SIGTERM, Ctrl-C), every open stream ends at once: a page's
stream never ends by itself, and uvicorn waits for open responses before it stops (its graceful
shutdown would wait out its whole timeout, then cancel the streams with a traceback each). The
browsers reconnect after the restart, from their last event. uvicorn has no hook for "stopping
now": `_on_server_exit` chains the stop signals' handlers it installs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from api.watch import Source, Watcher
from tickets.messages.payloads import WEB_ECHO
from tickets.models import Channel, OutboxMessage
from tickets.telemetry import instruments

log = logging.getLogger(__name__)

WEB = Channel.web.value
# The customer's own message, written by the chat's route beside the bot's answers.
ECHO_KIND = WEB_ECHO
# A page opened afresh gets at most this many of the chat's latest rows.
HISTORY = 200
# Rows read per step of a stream.
BATCH = 100
# How often an idle stream says it is alive (a comment line: proxies and browsers keep the
# connection).
KEEPALIVE_SECONDS = 15.0
# How long a browser waits before reconnecting (the EventSource's `retry`), in milliseconds.
RETRY_MS = 1000


@dataclass(frozen=True)
class Row:
    """An outbox row as the stream reads it."""

    id: int
    kind: str
    payload: dict[str, Any]
    status: str
    due: datetime
    ticket_id: int | None


class Hub:
    """The open streams of this process by chat, woken by the process's watcher."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
        watcher: Watcher,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.watcher = watcher
        # Also how soon a stream notices its page left when the server cannot tell (a test's
        # client): at its next write.
        self.keepalive_seconds = keepalive_seconds
        self._listeners: dict[str, set[asyncio.Event]] = {}
        # The loop whose server's stop ends the streams (module doc), once hooked.
        self._hooked: asyncio.AbstractEventLoop | None = None
        # Set when the server stops (module doc): every stream ends.
        self.closing = False
        watcher.add(
            Source(
                name="web-chat",
                id=OutboxMessage.id,
                key=OutboxMessage.recipient,
                where=(OutboxMessage.channel == WEB,),
                wake=self.wake,
                listening=lambda: bool(self._listeners),
            )
        )

    @contextlib.contextmanager
    def listen(self, recipient: str) -> Iterator[asyncio.Event]:
        """An event set whenever the chat may have something new, while the stream lasts."""
        event = asyncio.Event()
        self._listeners.setdefault(recipient, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._listeners.get(recipient)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._listeners[recipient]

    def wake(self, recipient: str) -> None:
        for event in self._listeners.get(recipient, ()):
            event.set()

    @property
    def open_streams(self) -> int:
        return sum(len(v) for v in self._listeners.values())

    def start(self) -> None:
        """Start the watcher (on the running loop) if it is not running, and end the streams
        when this server stops."""
        self.watcher.start()
        loop = asyncio.get_running_loop()
        if self._hooked is not loop:
            self._hooked = loop

            def stopping() -> None:
                loop.call_soon_threadsafe(self.close)

            _on_server_exit(stopping)

    def close(self) -> None:
        """End every open stream (the server stops: module doc)."""
        self.closing = True
        for waiting in self._listeners.values():
            for event in waiting:
                event.set()

    # ------------------------------------------------------------ one chat's rows

    def start_after(self, recipient: str) -> int:
        """Where a page opened afresh starts: before the chat's latest HISTORY rows."""
        with self.sessions() as session:
            older = session.scalar(
                select(OutboxMessage.id)
                .where(OutboxMessage.channel == WEB, OutboxMessage.recipient == recipient)
                .order_by(OutboxMessage.id.desc())
                .offset(HISTORY)
                .limit(1)
            )
        return int(older or 0)

    def take(self, recipient: str, after: int) -> tuple[list[Row], datetime | None]:
        """The chat's rows after `after` that may be shown now, in order, the pending ones
        marked sent; and when a held one (an answer to a burst, bot/replies.py) is due, if the
        rows stop at it (the chat's order holds: nothing after it goes first)."""
        now = self.clock()
        with self.sessions() as session:
            found = session.execute(
                select(
                    OutboxMessage.id,
                    OutboxMessage.kind,
                    OutboxMessage.payload,
                    OutboxMessage.status,
                    OutboxMessage.next_attempt_at,
                    OutboxMessage.ticket_id,
                )
                .where(
                    OutboxMessage.channel == WEB,
                    OutboxMessage.recipient == recipient,
                    OutboxMessage.id > after,
                    OutboxMessage.status.in_(("pending", "sent")),
                )
                .order_by(OutboxMessage.id)
                .limit(BATCH)
            ).all()
            rows: list[Row] = []
            held: datetime | None = None
            for f in found:
                row = Row(f[0], f[1], dict(f[2] or {}), f[3], _aware(f[4]), f[5])
                if row.status == "pending" and row.due > now:
                    held = row.due
                    break
                rows.append(row)
            pending = [r.id for r in rows if r.status == "pending"]
            if pending:
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(pending), OutboxMessage.status == "pending")
                    .values(status="sent", sent_at=now, attempts=OutboxMessage.attempts + 1)
                )
                session.commit()
        return rows, held

    async def events(
        self, recipient: str, after: int | None, render: Callable[[Row], dict[str, Any] | None]
    ) -> AsyncIterator[str]:
        """The chat's event stream (module doc), from after the row `after` (None: a page
        opened afresh, which gets the latest HISTORY rows)."""
        self.start()
        if self.closing:
            return
        with self.listen(recipient) as woken:
            yield f"retry: {RETRY_MS}\n\n"
            if after is None:
                after = await asyncio.to_thread(self.start_after, recipient)
            while True:
                woken.clear()
                rows, held = await asyncio.to_thread(self.take, recipient, after)
                for row in rows:
                    after = row.id
                    try:
                        event = render(row)
                    except (KeyError, TypeError, ValueError):
                        log.exception("web chat: outbox row %s cannot be shown", row.id)
                        # Counted as Telegram's rows that cannot be sent are (bot/delivery.py).
                        instruments().delivery_errors.labels(WEB, "unreadable").inc()
                        event = None
                    if event is not None:
                        yield _sse(row.id, event)
                    else:
                        # Still moves the page's place on: a reconnect starts after it.
                        yield f"id: {row.id}\n: skipped\n\n"
                if len(rows) == BATCH:
                    continue
                # Caught up (no id: a reconnect still starts after the last row): the page
                # knows the conversation so far is all there.
                yield "event: idle\ndata: {}\n\n"
                wait = self.keepalive_seconds
                if held is not None:
                    wait = max(0.05, min(wait, (held - self.clock()).total_seconds()))
                try:
                    await asyncio.wait_for(woken.wait(), timeout=wait)
                except TimeoutError:
                    yield ": alive\n\n"
                if self.closing:
                    return


_exit_callbacks: list[Callable[[], None]] = []


def _on_server_exit(callback: Callable[[], None]) -> None:
    """Call `callback` when the server is told to stop (module doc): the stop signals'
    handlers (uvicorn's, which it installs around its serving, in every worker process) are
    chained with ours, on the main thread, where signal handlers live. The callback runs in a
    signal handler: it only schedules its work on the loop."""
    _exit_callbacks.append(callback)
    if threading.current_thread() is not threading.main_thread():
        return  # a test's client serving the app from a thread: no server to stop
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if not callable(previous) or getattr(previous, "_web_chat", False):
            continue  # nobody handles it (the default: the process just ends), or chained

        def handler(signum: int, frame: Any, previous: Callable[..., Any] = previous) -> None:
            for call in list(_exit_callbacks):
                with contextlib.suppress(RuntimeError):  # a loop already closed
                    call()
            previous(signum, frame)

        handler._web_chat = True  # type: ignore[attr-defined]
        signal.signal(sig, handler)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _sse(ident: int, data: dict[str, Any]) -> str:
    return f"id: {ident}\nevent: chat\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
