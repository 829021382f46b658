"""Test fixtures: a real database per test (SQLite by default, PostgreSQL when
AFTERSALES_TEST_DATABASE_URL is set), each test in its own transaction, rolled back.

Schema comes from the Alembic migrations, so every test also runs on what `migrate` builds.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tickets.db import make_engine, upgrade

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


@pytest.fixture
def sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """A session factory whose every session joins one outer transaction, rolled back after
    the test: commits inside the code under test become savepoints."""
    conn = engine.connect()
    outer = conn.begin()
    factory = sessionmaker(
        bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    yield factory
    outer.rollback()
    conn.close()


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

    return create_app(
        settings, engine=engine, sessions=sessions, scripts=scripts, clock=lambda: NOW
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
