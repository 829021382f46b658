"""Request bodies parsed and validated off the event loop.

FastAPI runs a sync endpoint in a worker thread, but it reads the JSON body, parses it and
validates it against the endpoint's models on the event loop first. For a small body that is
nothing; for the largest body a route accepts (a 2 MiB batch of orders, thousands of lines) it
is a second or more of pure Python, during which no other request is answered, /healthz
included (issue 12). `OffLoop` routes read the body on the loop (network I/O, with the body
guard's limits) and then run FastAPI's whole handler (parsing, validation, dependencies, the
endpoint) in a worker thread, on an event loop of that thread's own, kept for the thread's next
request. The answer is sent from the main loop as usual.

Only requests with a body are moved: a GET gains nothing from the extra hop.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

_WITHOUT_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
# Threads for the handlers, each with its event loop: a fixed few that live as long as the
# process (a loop per request, or per short-lived thread, would leak its sockets or cost a
# thread per request). The endpoints themselves still run in FastAPI's own threads.
THREADS = 4
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_local = threading.local()
_runners: list[asyncio.Runner] = []


def _threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="request-body")
        return _pool


def _runner() -> asyncio.Runner:
    """This worker thread's own event loop, made on first use and kept."""
    runner: asyncio.Runner | None = getattr(_local, "runner", None)
    if runner is None:
        runner = _local.runner = asyncio.Runner()
        with _pool_lock:
            _runners.append(runner)
    return runner


@atexit.register
def _close_runners() -> None:
    # The threads live as long as the process; their loops are closed with it, quietly.
    with _pool_lock:
        for runner in _runners:
            runner.close()
        _runners.clear()


Handle = Callable[[Request], Coroutine[Any, Any, Response]]


def _run(handle: Handle, request: Request) -> Response:
    return _runner().run(_handle(handle, request))


async def _handle(handle: Handle, request: Request) -> Response:
    # The dependencies' exit stacks (FastAPI keeps them in the scope) belong to this loop: a
    # dependency with `yield` (a database session) then ends in the loop and the threads it
    # began in, before the answer leaves, as it does on any route.
    async with AsyncExitStack() as request_stack:
        request.scope["fastapi_inner_astack"] = request_stack
        async with AsyncExitStack() as function_stack:
            request.scope["fastapi_function_astack"] = function_stack
            return await handle(request)


class OffLoop(APIRoute):
    """An API route whose body is parsed and validated in a worker thread (module doc)."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handle: Handle = super().get_route_handler()

        async def offloaded(request: Request) -> Response:
            if request.method in _WITHOUT_BODY:
                return await handle(request)
            # The network part on the loop; the request keeps the body for the handler.
            await request.body()
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(_threads(), _run, handle, request)

        return offloaded
