"""Test fixtures: a real database per test (SQLite by default, PostgreSQL when
AFTERSALES_TEST_DATABASE_URL is set), each test in its own transaction, rolled back.
Over 500 lines as one file: pytest finds shared fixtures here, the one home of the database,
app, panel and fake-Telegram fixtures every test file uses.

Schema comes from the Alembic migrations, so every test also runs on what `migrate` builds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import NOW, PASSWORD, PEOPLE, add_agent, add_agent_with_token, context
from tests.factories import order_json as order_json  # for tests written before factories.py
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


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of its own, for a test that runs `aftersales serve` on it: a SQLite
    file, or a fresh PostgreSQL database."""
    if PG_URL:
        with _fresh_pg_database(PG_URL) as url:
            yield url
        return
    yield f"sqlite:///{tmp_path / 'aftersales.db'}"


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


@contextmanager
def _rolled_back(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """A session factory whose every session joins one outer transaction, rolled back at the
    end of the block: commits inside the code under test become savepoints."""
    conn = engine.connect()
    outer = conn.begin()
    factory: sessionmaker[Session] = sessionmaker(
        class_=_OneAtATime,
        bind=conn,
        expire_on_commit=False,
        join_transaction_mode="create_savepoint",
    )
    try:
        yield factory
    finally:
        outer.rollback()
        conn.close()


@pytest.fixture
def sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """The test's sessions on the run's database, rolled back after the test."""
    with _rolled_back(engine) as factory:
        yield factory


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


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    from tickets.settings import Settings

    return Settings(
        database_url="sqlite:///unused.db",
        media_dir=tmp_path / "media",
        _env_file=None,
    )


@pytest.fixture(scope="session")
def scripts() -> Any:
    """The bundled script library, loaded and checked once for the run."""
    from tickets.messages.scripts import bundled_scripts_dir, load_library

    return load_library(bundled_scripts_dir())


@pytest.fixture
def app(settings: Any, engine: Engine, sessions: sessionmaker[Session], scripts: Any) -> Any:
    from api.app import create_app
    from tickets.messages.outbox import DEFAULT_CHANNELS

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


def walk_to_refund_pending(api: Api, sku: str, quantity: int) -> str:
    """T1001's return of `quantity` `sku`, approved, received and inspected: its number."""
    number: str = api.post(
        "/api/v1/tickets",
        json={
            "order_no": "T1001",
            "kind": "return_refund",
            "reason": "no_reason",
            "items": [{"sku": sku, "quantity": quantity}],
        },
    ).json()["number"]
    found = [{"sku": sku, "quantity": quantity, "outcome": "resalable"}]
    for action, params in (("approve", {}), ("mark_received", {}), ("inspect", {"results": found})):
        assert (
            api.post(
                f"/api/v1/tickets/{number}/actions", json={"action": action, **params}
            ).status_code
            == 200
        )
    return number


@pytest.fixture
def api(app: Any, sessions: sessionmaker[Session]) -> Iterator[Api]:
    """HTTP through the real app, as agents alice (agent), bob (agent), lena (lead), and the
    shop's integration "shop" (a token that may push orders and nothing else)."""
    from fastapi.testclient import TestClient

    from tickets.models import Role

    tokens = {}
    with sessions() as s:
        for name, role, group, _ in PEOPLE:
            tokens[name] = add_agent_with_token(s, name, role, group=group)
        tokens["shop"] = add_agent_with_token(s, "shop", Role.agent, scopes=["orders"])
        s.commit()
    with TestClient(app) as client:
        yield Api(client, tokens)


# ---------------------------------------------------------------- the panel over HTTP


@pytest.fixture
def panel_app(settings: Any, engine: Engine, sessions: sessionmaker[Session], scripts: Any) -> Any:
    """The app with the panel, and its people (`PEOPLE`, password `PASSWORD`, in English)."""
    from api.app import create_app
    from api.panel import install_panel
    from tickets.models import utcnow

    app = create_app(settings, engine=engine, sessions=sessions, scripts=scripts)
    install_panel(app)
    with sessions() as s:
        for name, role, group, display in PEOPLE:
            add_agent(
                s,
                name,
                role,
                group=group,
                password=PASSWORD,
                display_name=display,
                language="en",
                now=utcnow(),
            )
        s.commit()
    return app


class Panel:
    """A browser's cookie jar on the panel, logged in as one agent."""

    def __init__(
        self,
        app: Any,
        base_url: str = "http://testserver",
        client: tuple[str, int] = ("testclient", 50000),
    ) -> None:
        from fastapi.testclient import TestClient

        self.client = TestClient(app, base_url=base_url, follow_redirects=False, client=client)
        self.csrf = ""

    def login(self, username: str, password: str = PASSWORD) -> Any:
        page = self.client.get("/panel/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text)
        assert token, page.text
        r = self.client.post(
            "/panel/login",
            data={
                "username": username,
                "password": password,
                "login_token": token.group(1),
                "lang": "en",
            },
        )
        if r.status_code == 303:
            self.refresh_csrf()
        return r

    def refresh_csrf(self) -> None:
        home = self.client.get("/panel")
        assert home.status_code == 200, home.text
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', home.text)
        assert found
        self.csrf = found.group(1)

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.client.post(url, data={"csrf_token": self.csrf, **(data or {})}, **kw)


def logged_in(panel_app: Any, username: str) -> Panel:
    """A panel session of `username` (one of `PEOPLE`, or an agent the test added)."""
    p = Panel(panel_app)
    assert p.login(username).status_code == 303
    return p


def admin_panel(panel_app: Any, sessions: sessionmaker[Session]) -> Panel:
    """A panel session of a new admin, "boss"."""
    from tickets.models import Role, utcnow

    with sessions() as s:
        add_agent(s, "boss", Role.admin, password=PASSWORD, language="en", now=utcnow())
        s.commit()
    return logged_in(panel_app, "boss")


@pytest.fixture
def alice(panel_app: Any) -> Panel:
    return logged_in(panel_app, "alice")


@pytest.fixture
def ctx(scripts: Any) -> Any:
    """The core's context at the real now (the panel's tests run on the wall clock)."""
    from tickets.models import utcnow

    return context(scripts, now=utcnow())


def case_numbers(page: str) -> list[str]:
    """The case numbers a queue page lists, in order."""
    return re.findall(r'<tr data-case="([^"]+)"', page)


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on `engine` inside the block."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def query_diff(few: list[str], many: list[str]) -> str:
    """Two lists of statements, shortened, for an assertion's message."""

    def short(statements: list[str]) -> list[str]:
        return [" ".join(q.split())[:150] for q in statements]

    return "\n".join(["-- few:", *short(few), "-- many:", *short(many)])


# ---------------------------------------------------------------- the bot, Telegram faked


@pytest.fixture
def fake() -> Any:
    """Telegram's side of the bot's HTTP session (tests/fakes/telegram.py)."""
    from tests.fakes.telegram import FakeSession

    return FakeSession()


@pytest.fixture
def bot(fake: Any) -> Any:
    from aiogram import Bot

    from tests.fakes.telegram import BOT_TOKEN

    return Bot(BOT_TOKEN, session=fake)


@pytest.fixture
def make_dp(sessions: sessionmaker[Session], settings: Any, scripts: Any, bot: Any) -> Any:
    """A new Dispatcher on the same database each call (a restart of the bot), with its
    delivery worker."""
    from tests.fakes.telegram import dispatcher, with_delivery

    def make() -> Any:
        return with_delivery(
            dispatcher(sessions, settings, scripts), bot, sessions, settings, lambda: NOW
        )

    return make


@pytest.fixture
def dp(make_dp: Any) -> Any:
    return make_dp()


# ---------------------------------------------------------------- the importer


def order_count(session: Session) -> int:
    from sqlalchemy import func, select

    from tickets.models import Order

    return session.scalar(select(func.count()).select_from(Order)) or 0


def locs(exc: pytest.ExceptionInfo[Any]) -> dict[str, str]:
    """An InvalidInput's messages by where they point."""
    return {e["loc"]: e["msg"] for e in exc.value.errors}


# ---------------------------------------------------------------- the demo shop


@dataclass(frozen=True)
class DemoShop:
    """The demo shop as `aftersales demo` loads it at `NOW`, for one test: a session on it
    and its factory (a clean demo each test: rolled back after it), settings whose media
    folder holds the demo's photos (the test's own copy), and the summary the load printed."""

    session: Session
    sessions: sessionmaker[Session]
    settings: Any
    summary: str


@dataclass(frozen=True)
class _LoadedDemo:
    engine: Engine
    media: Path
    summary: str


@pytest.fixture(scope="session")
def _loaded_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_LoadedDemo]:
    """The demo shop loaded once for the run (loading it takes seconds) into a database of
    its own, committed; each test works on it inside a transaction rolled back after it."""
    from api.demo_pictures import demo_photo
    from tickets.demo import load_demo
    from tickets.settings import Settings

    media = tmp_path_factory.mktemp("demo-media")
    settings = Settings(database_url="sqlite:///unused.db", media_dir=media, _env_file=None)
    with contextlib.ExitStack() as stack:
        if PG_URL:
            url = stack.enter_context(_fresh_pg_database(PG_URL))
        else:
            url = f"sqlite:///{tmp_path_factory.mktemp('demo-db') / 'demo.db'}"
            upgrade(url)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        with Session(engine) as s:
            summary = load_demo(session=s, settings=settings, now=NOW, draw_photo=demo_photo)
            s.commit()
        yield _LoadedDemo(engine=engine, media=media, summary=summary)


@pytest.fixture
def demo(_loaded_demo: _LoadedDemo, tmp_path: Path) -> Iterator[DemoShop]:
    """The demo shop, clean for this test (`DemoShop`)."""
    from tickets.settings import Settings

    media = tmp_path / "demo-media"
    shutil.copytree(_loaded_demo.media, media)
    settings = Settings(database_url="sqlite:///unused.db", media_dir=media, _env_file=None)
    with _rolled_back(_loaded_demo.engine) as factory, factory() as session:
        yield DemoShop(
            session=session, sessions=factory, settings=settings, summary=_loaded_demo.summary
        )
