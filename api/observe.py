"""What each HTTP request leaves behind: an id, and its count and latency in the metrics.

A pure ASGI middleware, outermost of the app's own:

- **The request id**: the client's `X-Request-ID` when it is a plain token (letters, digits,
  `.`, `_`, `-`, up to 64: what a proxy sets), else a new one; set for every log line the
  request causes (tickets/logcontext.py) and returned in the answer's `X-Request-ID`; the
  line about its answer also names the case when the route is about one.
- **The metrics** (tickets/telemetry.py): one count per answer by method, route *template*
  (`/api/v1/tickets/{number}`, never the path a client typed: one series per route, not per
  case) and status; and the time to the start of the answer (a stream that stays open, the web
  chat's events, counts until it starts, not for as long as it stays open). A request refused
  before routing (no token, a body too large) or that matches no route is counted under its
  area: `/api/v1/*`, `/panel/*`, `/chat/*`, or `other`.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tickets.logcontext import REQUEST_ID, about_case
from tickets.telemetry import instruments

HEADER = b"x-request-id"
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
# Requests no route took, by the area of their path (a bounded set of labels).
_AREAS = ("/api/v1/", "/panel/", "/chat/")
# A case number's longest (its column); a longer path parameter is no case, cut for the log.
NUMBER_MAX = 32
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id(scope: Scope) -> str:
    """The client's id when it is a plain token (module doc), else a new one."""
    for name, value in scope.get("headers", ()):
        if name == HEADER and _CLIENT_ID.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The template of the route that answered, or the area of an unrouted path."""
    route = scope.get("route")
    if isinstance(route, Mount):
        # A mounted app (the static files) answers for everything under its prefix.
        return f"{route.path}/{{path}}"
    raw: str = scope.get("path", "")
    if route is not None:
        # The route's own path is relative to the router it was declared on (FastAPI keeps
        # included routers apart): the template is the path with each parameter's segment
        # named instead (no route here takes a parameter spanning segments).
        names = {str(v): k for k, v in (scope.get("path_params") or {}).items()}
        return "/".join(f"{{{names[part]}}}" if part in names else part for part in raw.split("/"))
    for area in _AREAS:
        if raw.startswith(area):
            return area + "*"
    return "other"


class Observe:
    """The request id and the HTTP metrics (module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.made = instruments()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        # Not reset afterwards: uvicorn runs each request in a task of its own, and the
        # server's own lines about it (an error's traceback) come after this returns.
        REQUEST_ID.set(rid)
        started = time.perf_counter()
        answered = False

        async def answer(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                # A route about one case names it `{number}`: the server's line about the
                # answer (uvicorn's access line, logged inside this `send`) names the case.
                number = scope.get("path_params", {}).get("number")
                if isinstance(number, str):
                    about_case(number[:NUMBER_MAX])
                self._count(scope, message["status"], started)
                message = {
                    **message,
                    "headers": [*message.get("headers", ()), (HEADER, rid.encode("ascii"))],
                }
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            if not answered:
                # An error no handler answered: the server answers 500.
                self._count(scope, 500, started)

    def _count(self, scope: Scope, status: int, started: float) -> None:
        method = scope.get("method", "")
        method = method if method in _METHODS else "other"
        route = route_template(scope)
        self.made.http_requests.labels(method, route, str(status)).inc()
        self.made.http_seconds.labels(method, route).observe(time.perf_counter() - started)
