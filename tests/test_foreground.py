"""Foreground first (tickets/foreground.py): people's requests in flight are counted by the HTTP
app, and the bot's units of work wait (briefly) for them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.priority import MarkForeground
from bot.threads import UnitOfWorkThreads
from tickets.foreground import FOREGROUND, Foreground


def test_a_request_is_counted_while_in_flight_and_the_webhook_is_not() -> None:
    app = FastAPI()

    @app.get("/seen")
    async def seen() -> int:
        return FOREGROUND.in_flight

    @app.post("/telegram/webhook")
    async def webhook() -> int:
        return FOREGROUND.in_flight

    app.add_middleware(MarkForeground, exclude=frozenset({"/telegram/webhook"}))
    with TestClient(app) as client:
        assert client.get("/seen").json() == 1
        assert client.post("/telegram/webhook").json() == 0
    assert FOREGROUND.in_flight == 0


def test_an_open_stream_stops_counting_once_its_answer_starts() -> None:
    """The web chat's events stay open as long as the page: a person is not waiting on them,
    and the bot must not give way for as long as a customer keeps the chat open."""
    from fastapi.responses import StreamingResponse

    app = FastAPI()
    seen: list[int] = []

    @app.get("/events")
    async def events() -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            yield "data: one\n\n"
            seen.append(FOREGROUND.in_flight)
            yield "data: two\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    app.add_middleware(MarkForeground)
    with TestClient(app) as client:
        assert "two" in client.get("/events").text
    assert seen == [0]
    assert FOREGROUND.in_flight == 0


def test_give_way_ends_when_the_requests_are_answered() -> None:
    fg = Foreground()
    assert fg.give_way(most=60) == 0.0  # nothing in flight: no wait at all
    fg.enter()
    answered = threading.Timer(0.05, fg.leave)
    answered.start()
    waited = fg.give_way(most=60)
    answered.join()
    # It waited for the request, and not for its 60 s bound.
    assert 0.0 < waited < 30


async def test_a_unit_of_work_starts_after_the_request_in_flight_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The bound raised far above the request's 50 ms, so the order below is not a race.
    monkeypatch.setattr("tickets.foreground.MOST_SECONDS", 60.0)
    order: list[str] = []
    threads = UnitOfWorkThreads(size=1)
    FOREGROUND.enter()
    try:

        async def work() -> None:
            order.append("unit of work")

        def answer() -> None:
            order.append("request answered")
            FOREGROUND.leave()

        answered = threading.Timer(0.05, answer)
        answered.start()
        await threads.run(work)
        answered.join()
    finally:
        await asyncio.to_thread(threads.close)
    assert order == ["request answered", "unit of work"]
