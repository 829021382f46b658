"""Running several `aftersales serve` processes, and stopping one cleanly.

Every process is a full peer: the panel, the API and the webhook answer in each; the delivery
worker and the SLA sweep run in each (outbox rows and SLA clocks are claimed with
`FOR UPDATE SKIP LOCKED`, so each is handled once); the bot polls in exactly one of them, the
holder of a PostgreSQL advisory lock (bot/leader.py), and another takes over when it goes.
Telegram's limits are kept together through PostgreSQL or Redis (bot/pacing.py).

SQLite allows one process: `serve` holds a lock file next to the database, and a second
`serve` on it is refused with the reason (`--workers N` too).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any

from sqlalchemy.engine import make_url

# Read by `app_from_environment` in each worker process `serve --workers N` starts.
NO_SCHEDULER_ENV = "AFTERSALES_SERVE_NO_SCHEDULER"
LOG_LEVEL_ENV = "AFTERSALES_SERVE_LOG_LEVEL"
# A stop waits this long for the HTTP requests under way (webhooks included), then the bot's
# updates and the delivery pass get their own grace (bot/runtime.py): about 30 s in all.
HTTP_DRAIN_SECONDS = 10
# Each process holds its own database pool: more than this is a mistake, not a setting.
MAX_WORKERS = 32
# uvicorn's supervisor kills a worker that does not answer its ping within this long and starts
# another. Its default, 5 s, killed workers still importing on a busy host (load 9 on 2 cores:
# "Child process died", then 40 s until /healthz answered), again and again; a worker truly hung
# is now replaced after 30 s instead.
WORKER_HEALTHCHECK_SECONDS = 30


@contextmanager
def startup_heap() -> Iterator[None]:
    """Around the imports and the building of the app: no automatic garbage collection
    meanwhile, then one collection and everything built taken out of the collector's sight.

    A full collection walks every tracked object; a serving process holds hundreds of
    thousands from its start-up alone, and each full collection stopped every thread (the
    event loop included) for 130-740 ms under a bot flood, so a /healthz waited that long
    (issue 18). Those objects live as long as the process: never collecting them loses
    nothing, and the full collections then walk only what was made since. While they are
    being made, the collections the allocations trigger walk them again and again (aiogram
    alone makes hundreds of thousands): about an eighth of the start-up's CPU, saved by the one
    collection at the end, which frees the same garbage."""
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.freeze()
        gc.enable()


@contextmanager
def shared_metrics(workers: int) -> Iterator[None]:
    """Where the processes of `serve --workers N` count for /metrics (tickets/telemetry.py):
    `PROMETHEUS_MULTIPROC_DIR` when it is set (an earlier run's files removed first: counts
    start again at each start), else, with several workers, a fresh directory of this serve,
    removed when it ends. One process alone counts in memory."""
    from tickets.telemetry import MULTIPROC_ENV

    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for old in Path(given).glob("*.db"):
            old.unlink(missing_ok=True)
        yield
        return
    if workers <= 1:
        yield
        return
    path = tempfile.mkdtemp(prefix="aftersales-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


class Refused(Exception):
    """A way of running that cannot work, with what to do instead."""


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite database URL (None: not SQLite, or in memory)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    if not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def check_workers(url: str, workers: int) -> None:
    """Refuse several processes on SQLite: its one writer at a time and its file lock make
    a second process wait on the first, and the bot's state, pace and polling live in one
    process there. On PostgreSQL the webhook needs no Redis: one conversation's updates are
    kept in order across the processes in the database (bot/middlewares.py)."""
    if not 1 <= workers <= MAX_WORKERS:
        raise Refused(f"--workers must be between 1 and {MAX_WORKERS}")
    if workers > 1 and make_url(url).drivername.startswith("sqlite"):
        raise Refused(
            "--workers needs PostgreSQL: on SQLite one process serves "
            "(set AFTERSALES_DATABASE_URL=postgresql+psycopg://...)"
        )


def hold_sqlite_lock(url: str) -> IO[str] | None:
    """On SQLite, take the lock file beside the database for the life of this process; a
    second `serve` on the same database is refused. Returns the open lock file (keep it)."""
    path = sqlite_path(url)
    if path is None:
        return None
    lock_path = path.with_name(path.name + ".serve.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "another process"
        handle.close()
        raise Refused(
            f"another `aftersales serve` (pid {other}) already serves the SQLite database "
            f"{path}: on SQLite one process serves; several need PostgreSQL"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def reserve_port(host: str, port: int) -> socket.socket:
    """Check, before any work, that `serve` can listen on host:port, and hold the port (bound,
    not listening: uvicorn binds it beside us, as both set SO_REUSEADDR) until the process
    ends, so nothing else takes it meanwhile; port 0 gets a free one, and the socket says
    which. A port already in use is refused in one line that says what to do, where uvicorn
    would print the URLs first and then die with `[Errno 98]`."""
    # The address family as uvicorn picks it (an IPv6 literal holds a colon).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise Refused(
                f"port {port} on {host} is already in use (another `aftersales serve`, or "
                f"another program): stop it, or serve on another port: "
                f"`aftersales serve --port {port + 1}` (`make run PORT={port + 1}`)"
            ) from None
        if exc.errno == errno.EACCES:
            raise Refused(
                f"port {port} on {host} needs privileges this user does not have: "
                f"serve on a port above 1023 (`aftersales serve --port 8000`) behind a proxy"
            ) from None
        # An unknown host name, or an address that is not this machine's.
        raise Refused(
            f"cannot listen on {host} port {port}: {exc.strerror or exc}: "
            f"use an address of this machine (`--host 127.0.0.1`, or `0.0.0.0` for all)"
        ) from None
    return sock


def reserve_metrics_address(host: str, port: int, serve_port: int) -> socket.socket:
    """Check, before any work, that the internal metrics listener (AFTERSALES_METRICS_ADDRESS)
    can bind host:port, and hold it (bound, not listening, as `reserve_port` does) until the
    listener binds it beside us; refused with what to do when it cannot."""
    if port == serve_port:
        raise Refused(
            f"AFTERSALES_METRICS_ADDRESS uses port {port}, where `serve` itself listens: "
            f"give the metrics a port of their own (e.g. 127.0.0.1:9464)"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.suppress(OSError):  # the bind below says what is wrong
        # The family the listener picks (a name such as localhost may be either).
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise Refused(
            f"AFTERSALES_METRICS_ADDRESS={host}:{port}: cannot listen there ({why}): use a "
            f"free port on an address of this machine (e.g. 127.0.0.1:9464)"
        ) from None
    return sock


def exit_cleanly_on_sigterm() -> None:
    """After a SIGTERM-led shutdown uvicorn raises SIGTERM again, so the process would end as
    killed (-15) however cleanly it stopped. SIGTERM here means "stop": the shutdown has run
    (uvicorn restores this handler only after its lifespan ended), so the exit is 0. Before
    uvicorn starts, the same handler stops the start with 0."""

    def _stopped(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stopped)


def configure_logging(level: str, fmt: str = "text") -> None:
    """The product's own log lines (which process polls, leases given back, failures) at
    the serve's level, beside uvicorn's. aiogram's line per handled update and APScheduler's
    two per sweep stay quiet (their warnings and errors still show).

    `fmt` is AFTERSALES_LOG_FORMAT: "text" (lines for a person), or "json": one JSON object a
    line (time, level, logger, message, and `request_id`, `update_id`, `case` when the line has
    them: tickets/logcontext.py) for a log shipper; uvicorn's own lines then come through the
    same handler (`uvicorn_log_config`)."""
    from tickets.logcontext import LogContext

    handler = logging.StreamHandler()
    handler.addFilter(LogContext())
    if fmt == "json":
        from pythonjsonlogger.core import RESERVED_ATTRS
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                ["levelname", "name", "message"],
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",
                # uvicorn's copy of its message with terminal colours.
                reserved_attrs=[*RESERVED_ATTRS, "color_message"],
                json_ensure_ascii=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    for chatty in ("aiogram.event", "apscheduler"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def uvicorn_log_config(fmt: str) -> dict[str, Any] | None:
    """uvicorn's `log_config`: its own coloured lines for "text"; none for "json", so its
    loggers pass their records to ours (`configure_logging`)."""
    if fmt == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG
