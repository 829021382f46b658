"""The agent's notifications in the panel: a badge in the top bar, a list (open one, mark
read), the count in the tab's title and the browser's own notifications when the agent allows
them, kept live by a server-sent event stream. Who hears what is the core's rule
(tickets/notifications.py).

The stream works as the web chat's (api/chat/stream.py): it waits off the database until
woken, by the process's one watcher (api/watch.py, shared with the web chat) that looks for new
notification rows every AFTERSALES_WATCH_SECONDS and wakes only the agents they are for; each
database step runs in a thread (a reader's: it never takes SQLite's write lock), so the event
loop never waits on the database. A page that reconnects
says the last id it has (`Last-Event-ID`) and gets what follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.deps import SessionDep
from api.panel import i18n
from api.panel.auth import CurrentPanelAgent
from api.panel.labels import NOTIFICATION
from api.panel.pages import render
from api.watch import Source, Watcher
from tickets.models import Notification
from tickets.notifications import latest, mark_read, since, unread_count
from tickets.schemas import DbId, whole_number

log = logging.getLogger(__name__)
router = APIRouter()

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000
# The newest shown on the list page, and sent at once on a reconnect.
LIST_SIZE = 50


@dataclass
class NotifyHub:
    """The open notification streams of this process by agent, woken by the process's
    watcher (the web chat's Hub, for agents)."""

    read_sessions: sessionmaker[Session]
    watcher: Watcher
    keepalive_seconds: float = KEEPALIVE_SECONDS
    _listeners: dict[int, set[asyncio.Event]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.watcher.add(
            Source(
                name="notifications",
                id=Notification.id,
                key=Notification.agent_id,
                where=(),
                wake=self.wake,
                listening=lambda: bool(self._listeners),
            )
        )

    @contextlib.contextmanager
    def listen(self, agent_id: int) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._listeners.setdefault(agent_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._listeners.get(agent_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._listeners[agent_id]

    def wake(self, agent_id: int) -> None:
        for event in self._listeners.get(agent_id, ()):
            event.set()

    def start(self) -> None:
        self.watcher.start()

    def take(self, agent_id: int, after: int | None) -> tuple[int, list[dict[str, Any]], int]:
        """(unread count, the notifications after `after` as the page shows them, the last id);
        `after` None: none of them, only where the stream starts."""
        with self.read_sessions() as session:
            count = unread_count(session, agent_id)
            if after is None:
                newest = session.scalar(
                    select(func.max(Notification.id)).where(Notification.agent_id == agent_id)
                )
                return count, [], int(newest or 0)
            found = since(session, agent_id, after, LIST_SIZE)
            items = [
                {"id": n.id, "kind": n.kind, "number": n.number, "by": n.by, "excerpt": n.excerpt}
                for n in found
            ]
            return count, items, found[-1].id if found else after


def hub_of(request: Request) -> NotifyHub:
    state = request.app.state.panel
    if state.notify_hub is None:
        state.notify_hub = NotifyHub(request.app.state.read_sessions, request.app.state.watcher)
    hub: NotifyHub = state.notify_hub
    return hub


def notification_text(kind: str, number: str, language: str, catalogs: Any) -> str:
    """A notification in the agent's language."""
    catalog = catalogs[i18n.pick_language(language)]
    return catalog.gettext(NOTIFICATION.get(kind, "%(number)s")) % {"number": number}


async def _events(
    hub: NotifyHub, agent_id: int, after: int | None, language: str, catalogs: Any
) -> AsyncIterator[str]:
    hub.start()
    with hub.listen(agent_id) as woken:
        yield f"retry: {RETRY_MS}\n\n"
        initial = True
        while True:
            woken.clear()
            count, items, after = await asyncio.to_thread(hub.take, agent_id, after)
            for item in items:
                item["text"] = notification_text(item["kind"], item["number"], language, catalogs)
            data = {"count": count, "new": items, "initial": initial}
            yield f"id: {after}\nevent: notify\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            initial = False
            try:
                await asyncio.wait_for(woken.wait(), timeout=hub.keepalive_seconds)
            except TimeoutError:
                yield ": alive\n\n"


@router.get("/notifications/stream")
async def stream(request: Request, agent: CurrentPanelAgent) -> StreamingResponse:
    """The agent's notifications as server-sent events: the unread count at once, then each
    new notification as it comes (with the count)."""
    raw = request.headers.get("last-event-id", "").strip()
    after = whole_number(raw) if raw else None
    return StreamingResponse(
        _events(
            hub_of(request),
            agent.id,
            after,
            agent.language,
            request.app.state.panel.catalogs,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/notifications")
def notifications_page(request: Request, session: SessionDep, agent: CurrentPanelAgent) -> Response:
    """The agent's newest notifications, unread first in bold."""
    return render(
        request,
        "notifications.html",
        {
            "items": latest(session, agent.id, LIST_SIZE),
            "unread": unread_count(session, agent.id),
            "notification_labels": NOTIFICATION,
        },
    )


@router.get("/notifications/{notification_id}/open")
def open_one(
    notification_id: DbId, request: Request, session: SessionDep, agent: CurrentPanelAgent
) -> Response:
    """Open what a notification is about, marking it read (a GET's reader cannot write: the
    mark goes in a short write of its own, after the read)."""
    found = session.get(Notification, notification_id)
    if found is None or found.agent_id != agent.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such notification")
    now = request.app.state.clock()
    request.state.write_apart.append(
        lambda writer: mark_read(writer, agent.id, now, notification_id)
    )
    return RedirectResponse(f"/panel/cases/{found.number}", status.HTTP_303_SEE_OTHER)


@router.post("/notifications/read")
def read_all(request: Request, session: SessionDep, agent: CurrentPanelAgent) -> Response:
    """Mark every notification of the agent read."""
    mark_read(session, agent.id, request.app.state.clock())
    return RedirectResponse("/panel/notifications", status.HTTP_303_SEE_OTHER)


@router.post("/notifications/{notification_id}/read")
def read_one(
    notification_id: DbId, request: Request, session: SessionDep, agent: CurrentPanelAgent
) -> Response:
    if mark_read(session, agent.id, request.app.state.clock(), notification_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such notification")
    return RedirectResponse("/panel/notifications", status.HTTP_303_SEE_OTHER)
