"""The one watcher of the live pages (api/watch.py): one look, in a thread, finds what another
process wrote for both the web chat's pages and the agents' notification streams, and wakes
only the streams the new rows are for; its interval is a bounded setting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from api.panel.notifications import NotifyHub
from tests.conftest import in_thread
from tests.factories import NOW, add_agent
from tickets.models import Notification, OutboxMessage

# No database call on the event loop (tickets/db.py): the watcher reads in a thread.
pytestmark = pytest.mark.usefixtures("db_guard")

# A bound on waiting for the watcher (it looks every 0.2 s here), not a timing check.
WAIT = 20.0


async def test_one_watcher_wakes_the_chat_and_the_agent_the_new_rows_are_for(
    settings: Any, engine: Any, sessions: sessionmaker[Session], scripts: Any
) -> None:
    from api.app import create_app

    settings.watch_seconds = 0.2
    app = create_app(settings, engine=engine, sessions=sessions, scripts=scripts)
    watcher = app.state.watcher
    chats = app.state.web_chat.hub
    agents = NotifyHub(app.state.read_sessions, watcher)
    # Both features' streams are woken by the one watcher.
    assert [s.name for s in watcher.sources] == ["web-chat", "notifications"]

    def agents_of() -> tuple[int, int]:
        with sessions() as s:
            alice, bob = add_agent(s, "alice"), add_agent(s, "bob")
            s.commit()
            return alice.id, bob.id

    alice, bob = await in_thread(agents_of)
    looks: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        looks.append(1)

    with (
        chats.listen("9000000000001") as mine,
        chats.listen("9000000000002") as theirs,
        agents.listen(alice) as alices,
        agents.listen(bob) as bobs,
    ):
        watcher.start()
        try:
            # The first look learns where each source stands.
            async with asyncio.timeout(WAIT):
                while None in watcher._last.values():
                    await asyncio.sleep(0.05)

            def written_elsewhere() -> None:
                with sessions() as s:
                    s.add(
                        OutboxMessage(
                            channel="web",
                            recipient="9000000000001",
                            kind="customer_notice",
                            payload={"text": "an agent's answer"},
                            status="pending",
                            attempts=0,
                            next_attempt_at=NOW,
                            created_at=NOW,
                        )
                    )
                    s.add(Notification(agent_id=alice, kind="mention", number="AS-1"))
                    s.commit()

            await in_thread(written_elsewhere)
            async with asyncio.timeout(WAIT):
                await mine.wait()
                await alices.wait()
            # Only those the rows are for.
            assert not theirs.is_set() and not bobs.is_set()
        finally:
            await watcher.stop()
    # Nobody listening: the watcher reads nothing.
    event.listen(engine, "before_cursor_execute", count)
    try:
        watcher.interval = 0.01
        watcher.start()
        for _ in range(20):
            await asyncio.sleep(0.01)
        await watcher.stop()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert looks == []


@pytest.mark.parametrize(
    ("value", "ok"), [("0.1", False), ("0.2", True), ("30", True), ("31", False)]
)
def test_the_watch_interval_is_bounded(
    monkeypatch: pytest.MonkeyPatch, value: str, ok: bool
) -> None:
    from tickets.settings import Settings

    monkeypatch.setenv("AFTERSALES_WATCH_SECONDS", value)
    if ok:
        assert Settings(database_url="sqlite:///unused.db", _env_file=None).watch_seconds == float(
            value
        )
    else:
        with pytest.raises(ValidationError, match="watch_seconds"):
            Settings(database_url="sqlite:///unused.db", _env_file=None)
