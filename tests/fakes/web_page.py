"""A browser on the web chat (/chat), through the real HTTP app: it posts texts, presses and
files as the page does, and reads the event stream as its EventSource does."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from bot.routers.customer.steps import ALBUM_WAIT
from tests.fakes.clock import Clock


def fast_streams(app: Any) -> Any:
    """The test client tells a stream its reader left only at the stream's next write: idle
    streams write often here, so a finished read ends at once."""
    app.state.web_chat.hub.keepalive_seconds = 0.05
    return app


class Said:
    """What the bot said to one step: its texts and the data of its buttons."""

    def __init__(self, texts: list[str], buttons: list[str]) -> None:
        self.texts = texts
        self.buttons = buttons


class WebPage:
    """A browser on /chat: it posts texts and presses, and reads the event stream, reconnecting
    each time after the last event it has (as the page's EventSource does after a drop)."""

    def __init__(self, client: TestClient, language: str, *, new: bool = True) -> None:
        """The page opened; a `new` customer's shows nothing (else `history` is what it
        shows: the conversation so far)."""
        self.client = client
        self.language = language
        self.last: int | None = None
        self.n = 0
        # The buttons under each bot message on the page, by the message's id.
        self.buttons: dict[int, list[str]] = {}
        self.seen: list[dict[str, Any]] = []
        # A browser sends its languages with every request.
        client.headers["Accept-Language"] = language
        page = client.get("/chat")
        assert page.status_code == 200, page.text
        self.history = self.read()
        if new:
            assert self.history == []

    def read(self, after: int | None = -1) -> list[dict[str, Any]]:
        """The events from after the last one read (or `after`) until the stream is idle."""
        start = self.last if after == -1 else after
        headers = {"Last-Event-ID": str(start)} if start is not None else {}
        events: list[dict[str, Any]] = []
        with self.client.stream("GET", "/chat/events", headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            for line in r.iter_lines():
                if line == "":
                    if fields.get("event") == "idle":
                        break
                    if "id" in fields:
                        self.last = int(fields["id"])
                    if fields.get("event") == "chat":
                        events.append(json.loads(fields["data"]))
                    fields = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(":")
                    fields[key] = value.lstrip(" ")
        for event in events:
            if event["type"] == "bot":
                self.buttons[event["id"]] = [
                    b["data"] for row in event.get("buttons", []) for b in row
                ]
            elif event["type"] == "markup":
                self.buttons[event["target"]] = [b["data"] for row in event["buttons"] for b in row]
        self.seen.extend(events)
        return events

    def _id(self) -> str:
        self.n += 1
        return f"page-msg-{self.n:04d}"

    def post_text(self, text: str, **kw: Any) -> Any:
        return self.client.post("/chat/send", json={"id": self._id(), "text": text}, **kw)

    def said(self, events: list[dict[str, Any]]) -> Said:
        texts = [e["html"] for e in events if e["type"] == "bot"]
        buttons = [
            b["data"]
            for e in events
            if e["type"] in ("bot", "markup")
            for row in e.get("buttons", [])
            for b in row
        ]
        return Said(texts, buttons)

    async def text(self, text: str) -> Said:
        r = self.post_text(text)
        assert r.status_code == 200, r.text
        events = self.read()
        assert events[0] == {"type": "mine", "text": text}
        return self.said(events[1:])

    async def press(self, data: Any) -> Said:
        packed = data.pack() if hasattr(data, "pack") else str(data)
        # The newest message on the page that shows this button.
        message = max(m for m, datas in self.buttons.items() if packed in datas)
        r = self.client.post(
            "/chat/press", json={"id": self._id(), "data": packed, "message": message}
        )
        assert r.status_code == 200, r.text
        return self.said(self.read())

    def post_file(
        self,
        data: bytes,
        *,
        name: str = "photo.jpg",
        mime: str = "image/jpeg",
        group: str | None = None,
        **kw: Any,
    ) -> Any:
        """A file as the page's pickers send it: a form with the page's id for it."""
        fields = {"id": self._id()}
        if group is not None:
            fields["group"] = group
        return self.client.post(
            "/chat/upload", data=fields, files={"file": (name, data, mime)}, **kw
        )

    async def files(
        self,
        *files: bytes,
        clock: Clock,
        name: str = "photo.jpg",
        mime: str = "image/jpeg",
    ) -> Said:
        """Files picked together (an album when several), then what the bot said once the
        album settled (its answer is held a moment for the album's end: bot/replies.py; the
        app's `clock` is moved past it)."""
        group = f"album-{self.n:04d}" if len(files) > 1 else None
        for data in files:
            r = self.post_file(data, name=name, mime=mime, group=group)
            assert r.status_code == 200, r.text
        clock.now += ALBUM_WAIT * 2
        events = self.read()
        mine = [e for e in events if e["type"] == "mine"]
        assert [e["file"]["name"] for e in mine] == [name] * len(files)
        return self.said([e for e in events if e["type"] != "mine"])
