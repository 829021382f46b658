"""Request bodies: who sends one is checked first, and no more than its route's limit is read.

FastAPI reads and parses a route's body *before* it solves the route's dependencies, so a
bearer-token or session dependency alone would let an anonymous client make the server read and
parse 100 MB of JSON (it once took the server to 2.9 GB). This pure ASGI middleware runs first:

1. a request that may carry a body (POST, PUT, PATCH, DELETE) to the JSON API needs a live
   bearer token, and one to the panel a live session cookie (the log-in form excepted), or it
   is answered 401 without a byte of its body read;
2. a declared Content-Length over the route's limit is answered 413 at once;
3. the body is counted as it streams in, and reading stops with 413 at the first byte over the
   limit (a client may lie about the length, or send it chunked).

The routes' own dependencies still check the token and the session (and CSRF, and roles): this
is a gate in front of them, not a replacement. The database lookups run in a worker thread, so
the event loop never waits on them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
from starlette.exceptions import HTTPException
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTooLarge(HTTPException):
    """Raised from `receive` at the first byte over the limit; FastAPI re-raises HTTPExceptions
    from body parsing, and its handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


@dataclass(frozen=True)
class RouteLimit:
    """Bodies to paths starting with `prefix` (or, `exact`, to that path only; with `suffix`,
    and ending with it: a route with the case number in the middle) may be `limit` bytes."""

    prefix: str
    limit: int
    exact: bool = False
    suffix: str = ""

    def matches(self, path: str) -> bool:
        if self.exact:
            return path == self.prefix
        return path.startswith(self.prefix) and path.endswith(self.suffix)

    @property
    def specificity(self) -> int:
        return len(self.prefix) + len(self.suffix)


@dataclass(frozen=True)
class GuardRules:
    """Per-route body limits (the longest matching prefix wins, else `default`), and the
    authentication checks: `authorize(scope)` returns None to let the request in, or
    (status, message, headers) to refuse it. It is called in a worker thread."""

    default: int
    routes: tuple[RouteLimit, ...] = ()
    authorize: Callable[[Scope], tuple[int, str, dict[str, str]] | None] | None = None

    def limit_for(self, path: str) -> int:
        best: RouteLimit | None = None
        for route in self.routes:
            if route.matches(path) and (best is None or route.specificity > best.specificity):
                best = route
        return best.limit if best is not None else self.default


_CODES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 413: "too_large"}


async def _answer(send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    # The API's error shape ({error, message}), and `detail` as FastAPI's own 401 had it.
    error = _CODES.get(status, "error")
    body = json.dumps({"error": error, "message": message, "detail": message}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # The body was not read: the connection cannot be reused for a next request.
        (b"connection", b"close"),
        *((k.lower().encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """The middleware (installed outermost but for Starlette's error handler: create_app)."""

    def __init__(self, app: ASGIApp, rules: GuardRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        if self.rules.authorize is not None:
            refused = await anyio.to_thread.run_sync(self.rules.authorize, scope)
            if refused is not None:
                await _answer(send, *refused)
                return
        limit = self.rules.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is None:
            await _answer(send, 400, "Content-Length is not a number", {})
            return
        if declared > limit:
            await _answer(send, 413, f"request body over {limit} bytes", {})
            return
        received = 0
        started = over = False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if over:
                    # The rest of the body is never read: the server closes the connection
                    # instead of reading (and discarding) it to reach a next request.
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"connection", b"close")],
                    }
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:
            # Raised where no handler turned it into a response (a middleware reading the body).
            if started:
                raise
            await _answer(send, exc.status_code, str(exc.detail), {})


def _content_length(scope: Scope) -> int | None:
    """The declared length (0 when none is declared: the stream is counted anyway), or None
    when the header is not a plain number."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            if not text.isdigit() or len(text) > 18:
                return None
            return int(text)
    return 0


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def cookie(scope: Scope, name: str) -> str | None:
    raw = header(scope, b"cookie")
    return cookie_parser(raw).get(name) if raw else None
