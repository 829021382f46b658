"""Test fixtures: a real database per test (SQLite by default, PostgreSQL when
AFTERSALES_TEST_DATABASE_URL is set), each test in its own transaction, rolled back.

Schema comes from the Alembic migrations, so every test also runs on what `migrate` builds.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tickets.db import EventLoopDatabaseCall, is_worker_thread, make_engine, upgrade

T = TypeVar("T")

PG_URL = os.environ.get("AFTERSALES_TEST_DATABASE_URL")
ON_CI = os.environ.get("CI", "").lower() == "true"


def pytest_report_header(config: pytest.Config) -> str:
    return f"aftersales database: {'PostgreSQL ' + PG_URL if PG_URL else 'SQLite'}"


@pytest.fixture(scope="session")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for the run: a SQLite file, or a fresh PostgreSQL database."""
    if PG_URL:
        with _fresh_pg_database(PG_URL) as url:
            yield url
        return
    path = tmp_path_factory.mktemp("db") / "test.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    yield url


class _fresh_pg_database:
    """A new PostgreSQL database, migrated, dropped afterwards."""

    def __init__(self, base_url: str) -> None:
        self.base = make_url(base_url)
        self.name = f"aftersales_test_{uuid.uuid4().hex[:10]}"

    def __enter__(self) -> str:
        admin = create_engine(self.base, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        except Exception as exc:
            pytest.fail(f"PostgreSQL at {self.base} is unreachable: {exc}", pytrace=False)
        finally:
            admin.dispose()
        url = self.base.set(database=self.name).render_as_string(hide_password=False)
        upgrade(url)
        return url

    def __exit__(self, *exc: object) -> None:
        admin = create_engine(self.base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


class _OneAtATime(Session):
    """A session of the shared test connection: one DBAPI connection cannot serve two threads
    at once (the delivery worker records several chats' outcomes in threads), so a session
    holds the connection, in a `with` block, for its thread alone."""

    _turn = threading.RLock()

    def __enter__(self) -> _OneAtATime:
        # Bounded: a test body that holds a session across an await that needs a thread's
        # session would otherwise hang.
        if not self._turn.acquire(timeout=20):
            raise RuntimeError("test connection busy for 20 s: a session held across an await?")
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self._turn.release()


@pytest.fixture
def sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """A session factory whose every session joins one outer transaction, rolled back after
    the test: commits inside the code under test become savepoints."""
    conn = engine.connect()
    outer = conn.begin()
    factory = sessionmaker(
        class_=_OneAtATime,
        bind=conn,
        expire_on_commit=False,
        join_transaction_mode="create_savepoint",
    )
    yield factory
    outer.rollback()
    conn.close()


_ROOT = Path(__file__).resolve().parent.parent
_TESTS = str(_ROOT / "tests") + os.sep
_RUNTIME = (str(_ROOT / "bot") + os.sep, str(_ROOT / "api") + os.sep)


def _code_under_test_on_loop(*_args: Any, **_kwargs: Any) -> None:
    """The guard of tickets/db.py for the code under test: on a thread that runs an event
    loop (and is no unit-of-work worker), a database call made by the bot or the API (a frame
    of bot/ or api/ met first, walking out from the call) fails. The test's own reads and
    set-ups (a frame of tests/ met first, perhaps through tickets/) are let through: they are
    not the product, and running each in a thread would only add noise to the tests."""
    if is_worker_thread():
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    frame = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(_TESTS):
            return
        if path.startswith(_RUNTIME):
            break
        frame = frame.f_back  # type: ignore[assignment]
    raise EventLoopDatabaseCall("database call on the event loop")


@pytest.fixture
def db_guard(engine: Engine) -> Iterator[None]:
    """The app's rule in a test (`_code_under_test_on_loop`): the bot's and the API's
    database calls must not run on the event loop's thread."""
    for name in ("before_cursor_execute", "checkout"):
        event.listen(engine, name, _code_under_test_on_loop)
    yield
    for name in ("before_cursor_execute", "checkout"):
        event.remove(engine, name, _code_under_test_on_loop)


async def in_thread(fn: Callable[[], T]) -> T:
    """Run `fn` (database reads and writes of a test body) off the event loop."""
    return await asyncio.to_thread(fn)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s:
        yield s


@pytest.fixture
def fresh_db_url(tmp_path: Path) -> Iterator[str]:
    """An empty migrated database of its own, for tests that need real commits from several
    connections at once (concurrency)."""
    if PG_URL:
        with _fresh_pg_database(PG_URL) as url:
            yield url
        return
    url = f"sqlite:///{tmp_path / 'own.db'}"
    upgrade(url)
    yield url


NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Sunday


@pytest.fixture
def now() -> datetime:
    return NOW


def order_json(order_no: str = "T1001", **over: Any) -> dict[str, Any]:
    """A delivered two-line order with a coupon: the default of most tests."""
    data: dict[str, Any] = {
        "order_no": order_no,
        "platform": "shop",
        "status": "delivered",
        "currency": "CNY",
        "placed_at": "2026-11-15T10:00:00+08:00",
        "paid_at": "2026-11-15T10:01:00+08:00",
        "shipped_at": "2026-11-16T09:00:00+08:00",
        "delivered_at": "2026-11-18T15:00:00+08:00",
        "payment_method": "alipay",
        "shipping_fee": "8.00",
        "order_discount": "30.00",
        "address": "上海市浦东新区世纪大道 100 号",
        "customer": {"name": "李雷", "phone": "13800138000", "telegram_user_id": 5001},
        "lines": [
            {
                "sku": "JACKET-M",
                "title": "羽绒服 M",
                "category": "apparel",
                "quantity": 1,
                "unit_price": "99.90",
            },
            {
                "sku": "SOCKS",
                "title": "袜子",
                "category": "apparel",
                "quantity": 2,
                "unit_price": "49.95",
            },
            {
                "sku": "TEA",
                "title": "Green tea",
                "category": "food",
                "quantity": 3,
                "unit_price": "19.99",
            },
        ],
    }
    data.update(over)
    return data


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    from tickets.settings import Settings

    return Settings(
        database_url="sqlite:///unused.db",
        media_dir=tmp_path / "media",
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(scope="session")
def scripts() -> Any:
    """The bundled script library, loaded and checked once for the run."""
    from tickets.scripts import bundled_scripts_dir, load_library

    return load_library(bundled_scripts_dir())


@pytest.fixture
def app(settings: Any, engine: Engine, sessions: sessionmaker[Session], scripts: Any) -> Any:
    from api.app import create_app
    from tickets.outbox import DEFAULT_CHANNELS

    # As when the bot runs: customer messages and agents' cards are queued for it (the bot
    # itself is not started; tests of a desk without one build their app with `channels`).
    return create_app(
        settings,
        engine=engine,
        sessions=sessions,
        scripts=scripts,
        clock=lambda: NOW,
        channels=DEFAULT_CHANNELS,
    )


class Api:
    """A TestClient with an agent's token; `as_(name)` switches agent."""

    def __init__(self, client: Any, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens
        self.who = "alice"

    def as_(self, who: str) -> Api:
        other = Api(self.client, self.tokens)
        other.who = who
        return other

    def _h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[self.who]}"}

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self._h(), **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.client.post(url, headers=self._h(), **kw)


@pytest.fixture
def api(app: Any, sessions: sessionmaker[Session]) -> Iterator[Api]:
    """HTTP through the real app, as agents alice (agent), bob (agent), lena (lead), and the
    shop's integration "shop" (a token that may push orders and nothing else)."""
    from fastapi.testclient import TestClient

    from tickets.auth import create_agent, create_token
    from tickets.models import Role

    tokens = {}
    with sessions() as s:
        for name, role, group in (
            ("alice", Role.agent, "service"),
            ("bob", Role.agent, "finance"),
            ("lena", Role.lead, "service"),
        ):
            create_agent(session=s, username=name, role=role, group=group, now=NOW)
            tokens[name] = create_token(session=s, username=name, now=NOW)
        create_agent(session=s, username="shop", role=Role.agent, now=NOW)
        tokens["shop"] = create_token(session=s, username="shop", now=NOW, scopes=["orders"])
        s.commit()
    with TestClient(app) as client:
        yield Api(client, tokens)
