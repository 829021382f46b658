"""Engine and session factories. Built by the entry point, never at import.

The runtime's rule (README, "Architecture"): **no database call on the event loop.** The event
loop only does network I/O and hand-offs; every database touch runs in a worker thread (a
FastAPI sync route's thread, `asyncio.to_thread`, or the bot's unit-of-work threads). A
database wait on the loop (SQLite's busy wait for the write lock, a pool checkout, a slow query)
would stop every request and every chat of the process at once. `guard_event_loop(engine)`
makes that rule hold by construction: a statement or a connection checkout on a thread that
runs an event loop raises `RuntimeError("database call on the event loop")`, unless the thread
is a unit-of-work worker (`mark_worker_thread`: the bot's threads run the handlers, which are
`async def`, on a private loop of their own, and are allowed to).

SQLite: WAL, and two kinds of transaction (`make_engine`):
- writers (the default) begin `BEGIN IMMEDIATE`, taking the write lock up front: two writers
  queue (the busy timeout) rather than fail late. A deferred transaction that reads and then
  writes fails at once with SQLITE_BUSY_SNAPSHOT when another writer committed in between, so
  anything that may write must be a writer.
- readers (`read_sessionmaker`: GET routes, the panel's pages, /healthz) begin a plain deferred
  `BEGIN` with `PRAGMA query_only` on: they read a snapshot, never take the write lock, never
  wait for a writer, and a reader that tries to write fails loudly instead of racing.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from tickets.bundled import bundled


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a busy timeout; PostgreSQL its
    indexes' own options on the models (tickets/models.py POSTGRESQL_INDEX_OPTIONS)."""
    if url.startswith("postgresql"):
        from tickets.models import use_postgresql_options

        use_postgresql_options()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)
        busy_timeout = float(kwargs["connect_args"].get("timeout", 5))
        writers = threading.Lock()

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when a transaction begins, so BEGIN IMMEDIATE
            # below takes the write lock up front: two writers queue instead of failing late.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            read = bool(conn.get_execution_options().get(READ_ONLY))
            # query_only follows the transaction's kind; set only when it changes (a pooled
            # connection serves both kinds).
            info = conn.connection.info
            if info.get(READ_ONLY, False) != read:
                conn.exec_driver_sql(f"PRAGMA query_only={int(read)}")
                info[READ_ONLY] = read
            if read:
                conn.exec_driver_sql("BEGIN")
                return
            # Writers of this process queue on a lock of ours first: SQLite's own busy wait
            # polls (sleeps of 1, 2, 5, 10... ms), so a writer would sleep on after the lock
            # came free; ours wakes the next one at once. Bounded by the busy timeout, after
            # which SQLite decides (another process may hold its lock).
            if not info.get(_HOLDS_WRITERS) and writers.acquire(timeout=busy_timeout):
                info[_HOLDS_WRITERS] = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _release(conn.connection.info)
                raise

        def _release(info: dict[Any, Any]) -> None:
            if info.pop(_HOLDS_WRITERS, False):
                writers.release()

        @event.listens_for(engine, "commit")
        @event.listens_for(engine, "rollback")
        def _sqlite_end(conn: Connection) -> None:
            _release(conn.connection.info)

        @event.listens_for(engine, "checkin")
        def _sqlite_returned(_dbapi_conn: Any, record: Any) -> None:
            # A connection given back with its transaction still open (the pool rolls it
            # back itself): never keep the lock with it.
            _release(record.info)

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


# Set on a pooled connection while its transaction holds the engine's writers' lock.
_HOLDS_WRITERS = "aftersales_holds_writers"

# The execution option that makes a transaction a reader (SQLite: deferred, query_only).
READ_ONLY = "aftersales_read_only"


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose transactions may write (on SQLite: `BEGIN IMMEDIATE`)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def read_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that only read: on SQLite a deferred transaction that never takes the write
    lock (nor waits for it) and refuses to write (module doc). Other databases: as writers."""
    return sessionmaker(bind=engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


# ---------------------------------------------------------------- the event loop guard

_thread_marks = threading.local()


def mark_worker_thread() -> None:
    """This thread runs units of work (it may run an event loop of its own to drive `async
    def` handlers, and still touch the database): the guard lets it through."""
    _thread_marks.worker = True


def is_worker_thread() -> bool:
    return bool(getattr(_thread_marks, "worker", False))


class EventLoopDatabaseCall(RuntimeError):
    """The database was touched from a thread that runs an event loop (the guard)."""


def _refuse_on_loop(*_args: Any, **_kwargs: Any) -> None:
    if getattr(_thread_marks, "worker", False):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop on this thread: a worker thread, a script, a sync test
    raise EventLoopDatabaseCall("database call on the event loop")


def guard_event_loop(engine: Engine) -> Callable[[], None]:
    """Make every statement and connection checkout of `engine` fail on an event loop's
    thread (module doc). Returns a function that removes the guard (tests)."""
    listeners = (("before_cursor_execute", engine), ("checkout", engine))
    for name, target in listeners:
        if not event.contains(target, name, _refuse_on_loop):
            event.listen(target, name, _refuse_on_loop)

    def remove() -> None:
        for name, target in listeners:
            if event.contains(target, name, _refuse_on_loop):
                event.remove(target, name, _refuse_on_loop)

    return remove


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit when the block ends cleanly, roll back on any error."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def migrations_dir() -> Path:
    """Alembic's script folder (env.py, versions/), shipped as the `migrations` package."""
    return bundled("migrations")


def alembic_config(url: str) -> Any:
    """Alembic's configuration for this project's migrations against `url`."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    # '%' is ConfigParser's interpolation character; URLs may carry it (escaped passwords).
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (the newest by default)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def migration_heads() -> set[str]:
    """The newest revision(s) of the migrations, as Alembic reads them."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory(str(migrations_dir())).get_heads())


def schema_is_current(engine: Engine) -> bool:
    """Whether the database has every migration applied. A database that cannot be reached
    raises (the caller says why): it is not "behind", and `aftersales migrate` would not help."""
    with engine.connect() as conn:
        try:
            current = {
                row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))
            }
        except SQLAlchemyError:
            return False  # no alembic_version table: never migrated
    return current == migration_heads()


# ---------------------------------------------------------------- per-dialect statements


def dialect_insert(name: str) -> Any:
    """The `insert` of this database's dialect (the one with ON CONFLICT), imported when first
    asked for: a deployment on SQLite never loads SQLAlchemy's PostgreSQL dialect (about 2 MB
    of modules), nor one on PostgreSQL SQLite's."""
    module = "postgresql" if name == "postgresql" else "sqlite"
    return importlib.import_module(f"sqlalchemy.dialects.{module}").insert


class PerDialect:
    """A statement built once per database kind, on its first use there: `build` gets the
    dialect's `insert` (`dialect_insert`). Hot paths keep a built statement (building one and
    its cache key costs more than running it) without importing a dialect the deployment does
    not use."""

    def __init__(self, build: Callable[[Any], Any]) -> None:
        self._build = build
        self._built: dict[str, Any] = {}

    def __call__(self, conn: Connection | Engine) -> Any:
        name = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
        stmt = self._built.get(name)
        if stmt is None:
            # Two threads may both build it first: the same statement, the last one kept.
            stmt = self._built[name] = self._build(dialect_insert(name))
        return stmt
