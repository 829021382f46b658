"""The polling bot in a process of its own, forked by `aftersales serve` (issue 18).

Why a process: with the bot in the server's process, its Python (aiogram's dispatch, the
handlers, the ORM) and the requests' Python take turns at one interpreter lock. Under a flood
of 300 updates/s a `GET /api/v1/tickets` then waited five times its idle time (p99 75 ms on
SQLite, 125 ms on PostgreSQL, on a quiet 2-core machine), however the bot's loop and threads
were arranged. In a process of its own the operating system shares the cores between the two,
and a request that wakes up is run at once rather than after the bot's turn: the bot's process
runs at a lower priority (`NICENESS`), so when both want a core the request gets it.

How: `serve` builds the app and the bot's runtime, freezes the heap (api/processes.py
`startup_heap`), then forks. What both built before the fork (the imported code, the rules,
the scripts, the Dispatcher) stays shared between the two processes, page for page, until one
writes it; the child adds only what the running bot allocates. The server process serves HTTP,
runs the SLA sweep, the web chat and the webhooks to the shop; the child polls Telegram and runs
the Telegram delivery worker. They meet only in the database (the outbox, the stored updates,
the conversation state), exactly as `serve --workers N` processes do (api/processes.py).

Stopping: the server's stop (SIGTERM, Ctrl-C) stops the child the same clean way (updates in
flight finish, claimed rows are given back) and waits for it. A SIGKILLed server takes the
child with it at once (the kernel's parent-death signal), so no orphan goes on polling beside
a restarted server; what a SIGKILL may lose is covered as for any process (README, "Stopping").
A child that ends on its own (a crash) stops the server with exit code 1, so its supervisor
(systemd, `make run` in a terminal) starts both again.

Only for polling with one process: a webhook's updates arrive as HTTP requests, which the
server's processes take (`serve --workers N` spreads them). `AFTERSALES_BOT_PROCESS=false`
keeps the bot in the server's process (less memory, slower requests under a flood).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sqlalchemy import Engine

from tickets.settings import Settings

log = logging.getLogger(__name__)

# Linux's prctl(2) option: the signal this process gets when its parent thread ends.
PR_SET_PDEATHSIG = 1
# How often the child looks whether its parent is still there (where prctl is not available).
PARENT_CHECK_SECONDS = 1.0
# The bot's process runs this much "nicer" than the server: when the two want the same core,
# the operating system runs the server's requests first (people first, as tickets/foreground.py
# does inside one process); the bot takes every cycle the requests leave.
NICENESS = 10
# How long the server waits for the child's clean stop: the bot's own stop takes up to about
# 30 s (bot/runtime.py: updates in flight, then the delivery pass), then it is killed.
STOP_WAIT_SECONDS = 40.0


class Runtime(Protocol):
    """What the child runs: bot/runtime.py's BotRuntime (built by the composition root)."""

    async def start(self, *, own_loop: bool = False) -> None: ...

    async def stop(self) -> None: ...


def wanted(settings: Settings, workers: int) -> bool:
    """Whether `serve` runs the bot in a process of its own: the bot on, polling, one server
    process, and the shop has not turned it off."""
    return bool(
        settings.telegram_token
        and not settings.webhook_url
        and workers == 1
        and settings.bot_process
    )


def _die_with_parent() -> None:
    """Ask the kernel for a SIGKILL when the parent goes (Linux); elsewhere the child's own
    check (`_watch_parent`) notices within a second."""
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(name, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent:
            log.error("the server process is gone: the bot stops")
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=PARENT_CHECK_SECONDS)


async def _run(runtime: Runtime, parent: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watch = asyncio.create_task(_watch_parent(parent, stop))
    # Polling and the delivery worker on this process's own loop: nothing else runs here.
    await runtime.start()
    log.info("the bot runs in process %d", os.getpid())
    try:
        await stop.wait()
    finally:
        watch.cancel()
        await runtime.stop()


def _child(runtime: Runtime, engine: Engine, parent: int, close: Iterable[Any]) -> int:
    _die_with_parent()
    if os.getppid() != parent:  # the parent went before the request above was made
        return 1
    for handle in close:
        # The server's listening socket and such: the child must not keep them open.
        with contextlib.suppress(OSError):
            handle.close()
    # Connections the parent opened stay the parent's; the child opens its own
    # (SQLAlchemy's advice for a forked process).
    engine.dispose(close=False)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    # Until its loop takes over, a stop request ends the child plainly.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    threading.current_thread().name = "bot-process"
    try:
        asyncio.run(_run(runtime, parent))
    except Exception:
        log.exception("the bot's process failed")
        return 1
    return 0


class BotProcess:
    """The forked child and the server's side of its life: `start()` forks, `watch(on_exit)`
    reports a child that ends on its own, `stop()` stops it cleanly."""

    def __init__(self, runtime: Runtime, engine: Engine) -> None:
        self._runtime = runtime
        self._engine = engine
        self.pid: int | None = None
        self._stopping = threading.Event()
        self._ended = threading.Event()
        self.exit_code: int | None = None

    def start(self, *, close: Iterable[Any] = ()) -> None:
        """Fork the child. Call it before the server starts any thread (uvicorn, the
        scheduler): a fork copies only the calling thread."""
        parent = os.getpid()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(self._runtime, self._engine, parent, close)
            finally:
                logging.shutdown()
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                # Never back into the parent's code (uvicorn's start, its atexit handlers).
                os._exit(code)
        self.pid = pid

    def watch(self, on_exit: Callable[[int], None]) -> None:
        """Wait for the child in a thread of its own; a child that ends while the server is
        not stopping calls `on_exit(code)`."""

        def wait() -> None:
            assert self.pid is not None
            _, status = os.waitpid(self.pid, 0)
            self.exit_code = os.waitstatus_to_exitcode(status)
            self._ended.set()
            if not self._stopping.is_set():
                log.error(
                    "the bot's process ended (exit code %s): serve stops, to be started again",
                    self.exit_code,
                )
                on_exit(self.exit_code)

        threading.Thread(target=wait, name="bot-process-watch", daemon=True).start()

    def stop(self) -> None:
        """Stop the child cleanly and wait for it (killed after STOP_WAIT_SECONDS)."""
        if self.pid is None:
            return
        self._stopping.set()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if not self._ended.wait(STOP_WAIT_SECONDS):
            log.warning("the bot's process did not stop in time: killed")
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._ended.wait(5)
