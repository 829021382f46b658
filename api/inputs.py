"""No NUL character gets into the desk: refused at the edge with a 422 naming the field.

PostgreSQL cannot store NUL in text, and no person types one: a NUL in a search, a log-in name or
a reply is a 500 from the database (after other work) unless it is stopped first. JSON bodies are
checked by the schemas (tickets/schemas.py names the field); this middleware checks what the
schemas never see: the path, the query string and form bodies (the panel, the log-in page).
The forms of `file_routes` (the web chat's uploads) are left to their route, which checks its
few text fields itself.

Forms are scanned as the app reads them, chunk by chunk, never buffered or read ahead, so a body
limit or an authentication check in front of the parser still comes first. The contents of a
file in a multipart form (an agent's photo or PDF: binary, full of NUL bytes) are not text and
are let through; its part's headers (the file's name) are checked like any field.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NUL = "\x00"
_URLENCODED_NUL = re.compile(rb"%00|\x00", re.IGNORECASE)
_PART_NAME = re.compile(rb'name="([^"]{0,200})"')
_BOUNDARY = re.compile(rb'boundary="?([^";,\s]{1,70})')
# The bytes of a form kept to name the field a NUL is in: a field's name comes right before it.
_TAIL = 4096


class NulInInput(Exception):
    def __init__(self, loc: str) -> None:
        super().__init__(loc)
        self.loc = loc


def _body(loc: str) -> bytes:
    msg = "must not contain a NUL character (\\u0000)"
    return json.dumps(
        {"error": "invalid", "message": f"{loc}: {msg}", "errors": [{"loc": loc, "msg": msg}]}
    ).encode()


async def _refuse(send: Send, loc: str) -> None:
    body = _body(loc)
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _query_loc(query: bytes) -> str | None:
    if b"%00" not in query.lower() and b"\x00" not in query:
        return None
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if NUL in key or NUL in value:
            return f"query.{key.replace(NUL, '')}"
    return "query"


class _FormScanner:
    """Finds a NUL in a form body as it streams past, and the field it is in."""

    def __init__(self, multipart: bool, boundary: bytes = b"") -> None:
        self.multipart = multipart
        # Where a part starts: its delimiter line (a value never contains it, by definition).
        self.delimiter = b"--" + boundary if boundary else b""
        # Whether the kept tail starts inside a file's contents.
        self.tail_in_file = False
        self.tail = b""

    def feed(self, chunk: bytes) -> str | None:
        data = self.tail + chunk
        if not self.multipart:
            found = _URLENCODED_NUL.search(data)
            if found:
                return self._field(data[: found.start()])
            # Enough to see a '%00' split over two chunks, and the name of the field it is in.
            self.tail = data[-_TAIL:]
            return None
        spans = self._spans(data)
        fresh = len(self.tail)  # the tail was checked with the chunk before
        for start, end, is_file in spans:
            if not is_file and end > fresh:
                hit = data.find(b"\x00", max(start, fresh), end)
                if hit >= 0:
                    return self._field(data[:hit])
        cut = max(0, len(data) - _TAIL)
        for start, end, is_file in spans:
            if start <= cut < end:
                if not is_file and start >= len(data) - 2 * _TAIL:
                    cut = start  # never cut a part's headers in two: keep them whole
                self.tail_in_file = is_file
                break
        self.tail = data[cut:]
        return None

    def _spans(self, data: bytes) -> list[tuple[int, int, bool]]:
        """`data` cut into (start, end, is a file's contents): a part's delimiter and headers
        are text, then its contents, a file's when its headers name a filename."""
        if not self.delimiter:
            return [(0, len(data), False)]
        spans: list[tuple[int, int, bool]] = []
        at, in_file = 0, self.tail_in_file
        while at < len(data):
            part = data.find(self.delimiter, at)
            if part < 0:
                spans.append((at, len(data), in_file))
                break
            spans.append((at, part, in_file))
            ends = data.find(b"\r\n\r\n", part)
            if ends < 0:
                # The headers go on in the next chunk: text until then.
                spans.append((part, len(data), False))
                break
            spans.append((part, ends + 4, False))
            in_file = b"filename=" in data[part:ends].lower()
            at = ends + 4
        return spans

    def _field(self, before: bytes) -> str:
        if self.multipart:
            names = _PART_NAME.findall(before)
            return f"form.{names[-1].decode('utf-8', 'replace')}" if names else "form"
        pair = before.rsplit(b"&", 1)[-1]
        if b"=" not in pair:
            return "form"  # the NUL is in a field's name
        key = unquote_plus(pair.split(b"=", 1)[0].decode("latin-1"), encoding="utf-8")
        return f"form.{key}"


class RefuseNul:
    """ASGI middleware: a NUL in the path, the query or a form is a 422 naming where (but in
    the forms of `file_routes`, paths that take files: module doc)."""

    def __init__(self, app: ASGIApp, file_routes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.file_routes = frozenset(file_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loc = "path" if NUL in scope.get("path", "") else _query_loc(scope.get("query_string", b""))
        if loc is not None:
            await _refuse(send, loc)
            return
        raw_ctype = dict(scope.get("headers", [])).get(b"content-type", b"")
        ctype = raw_ctype.lower()
        if not ctype.startswith((b"application/x-www-form-urlencoded", b"multipart/form-data")) or (
            scope.get("path") in self.file_routes
        ):
            await self.app(scope, receive, send)
            return
        # The boundary as sent: it is case-sensitive.
        found_boundary = _BOUNDARY.search(raw_ctype)
        scanner = _FormScanner(
            multipart=ctype.startswith(b"multipart/"),
            boundary=found_boundary.group(1) if found_boundary else b"",
        )
        found: list[str] = []
        started = False

        async def scanned() -> Message:
            if found:
                raise NulInInput(found[0])
            message = await receive()
            if message["type"] == "http.request":
                hit = scanner.feed(message.get("body", b""))
                if hit is not None:
                    found.append(hit)
                    # The app never gets the chunk: whatever it was parsing fails.
                    raise NulInInput(hit)
            return message

        async def replaced(message: Message) -> None:
            # The form parser's failure may surface as the app's own 400 (or a CSRF 403):
            # the client gets the reason instead.
            nonlocal started
            if found and not started:
                if message["type"] == "http.response.start":
                    started = True
                    await _refuse(send, found[0])
                return
            if found:
                return
            await send(message)

        try:
            await self.app(scope, scanned, replaced)
        except NulInInput as exc:
            if not started:
                started = True
                await _refuse(send, exc.loc)
