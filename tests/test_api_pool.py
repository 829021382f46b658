"""A GET that records its token's use never holds one pooled connection while it waits for
another: as many such GETs at once as the pool has connections would otherwise each hold one and
wait for one more, and the API answered nothing for the pool's 30 s, then 500s (found by
bench.two_processes with 32 clients on one token)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tickets.auth import create_agent, create_token
from tickets.db import make_engine, make_sessionmaker, unit_of_work
from tickets.models import ApiToken, Role


def test_a_get_records_its_tokens_use_after_giving_back_its_connection(
    fresh_db_url: str, settings: Any, scripts: Any, now: datetime
) -> None:
    from api.app import create_app

    # One connection in all: the deterministic form of "as many GETs at once as the pool has
    # connections". A short pool timeout, so the old code fails in 3 s rather than 30.
    engine = make_engine(fresh_db_url, pool_size=1, max_overflow=0, pool_timeout=3)
    try:
        with unit_of_work(make_sessionmaker(engine)) as s:
            create_agent(session=s, username="alice", role=Role.agent, now=now)
            token = create_token(session=s, username="alice", now=now)
        later = now + timedelta(minutes=10)  # the token's last use is due to be recorded
        app = create_app(settings, engine=engine, scripts=scripts, clock=lambda: later)
        with TestClient(app, raise_server_exceptions=False) as client:
            got = client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {token}"})
        assert got.status_code == 200, got.text
        with make_sessionmaker(engine)() as s:
            used = s.scalar(select(ApiToken.last_used_at))
        assert used is not None and used.replace(tzinfo=later.tzinfo) == later
    finally:
        engine.dispose()


def test_a_write_is_committed_before_its_answer_leaves(
    fresh_db_url: str, settings: Any, scripts: Any
) -> None:
    """A write's answer (here the panel's log-in, a redirect the browser follows at once)
    leaves only once its transaction is committed, so the next request sees it and a failed
    commit is never answered as a success. FastAPI ends a `yield` dependency after the answer
    is sent unless told otherwise (api/deps.py): the page after a log-in, a language switch or
    an action showed the old state (the browser test saw it under load). Here every commit of
    the server waits 1 s first."""
    import time

    import httpx
    from sqlalchemy import event

    from api.app import create_app
    from tests.live import PASSWORD, serving

    engine = make_engine(fresh_db_url)
    try:
        own = settings.model_copy(update={"database_url": fresh_db_url})
        app = create_app(own, engine=engine, scripts=scripts)
        with serving(app) as live, httpx.Client(base_url=live.url, timeout=30) as client:
            page = client.get("/panel/login").text
            login_token = page.split('name="login_token" value="', 1)[1].split('"', 1)[0]
            event.listen(engine, "commit", lambda conn: time.sleep(1.0))
            logged_in = client.post(
                "/panel/login",
                data={"username": "alice", "password": PASSWORD, "login_token": login_token},
            )
            assert logged_in.status_code == 303, logged_in.text
            # At once, as a browser follows the redirect: the new session is there.
            queue = client.get("/panel")
            assert queue.status_code == 200, "the log-in was answered before it was committed"
    finally:
        engine.dispose()
