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
