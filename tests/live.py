"""A real server for the tests that need one: uvicorn in a thread on a free port (port 0), the
app on a database of its own, and a watchdog that polls /healthz while something else runs."""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from tickets.auth import create_agent, create_token
from tickets.models import Role, utcnow

PASSWORD = "correct horse battery"


@dataclass
class Live:
    """The running server: its base URL, a token of agent `alice`, its app."""

    url: str
    host: str
    port: int
    token: str
    app: Any

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def serving(app: Any) -> Iterator[Live]:
    """Serve `app` in a thread until the block ends; agent alice (a lead) has a token."""
    with app.state.sessions() as s:
        create_agent(
            session=s,
            username="alice",
            role=Role.lead,
            group="service",
            now=utcnow(),
            password=PASSWORD,
        )
        token = create_token(session=s, username="alice", now=utcnow(), scopes=["cases", "orders"])
        s.commit()
    # As `aftersales serve` does once started (api/processes.startup_heap): what exists now is
    # taken out of the collector's sight. Here that is the whole suite's heap: one full
    # collection walking it stops every thread, the server's loop included, for as long as it
    # takes (the likely cause of a 1.6 s /healthz gap late in a CI run).
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Live(f"http://127.0.0.1:{port}", "127.0.0.1", port, token, app)
    finally:
        server.should_exit = True
        thread.join(30)
        gc.unfreeze()


@dataclass
class Watchdog:
    """Polls /healthz back to back in a thread; `gaps` are the seconds between successive
    answers, `statuses` every answer's status."""

    url: str
    gaps: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        last: float | None = None
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self._stop.is_set():
                try:
                    status = client.get("/healthz").status_code
                except httpx.HTTPError:
                    status = 0
                now = time.monotonic()
                self.statuses.append(status)
                # From the first answer on (the client's own start is not the server's).
                if last is not None:
                    self.gaps.append(now - last)
                last = now
                time.sleep(0.005)

    @contextmanager
    def watching(self) -> Iterator[Watchdog]:
        thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        thread.start()
        # A few answers before the hostile request starts: the server is up and polled.
        while len(self.statuses) < 3 and thread.is_alive():
            time.sleep(0.005)
        try:
            yield self
        finally:
            # A few answers after it ended, so a stall at its very end is seen too.
            seen = len(self.statuses)
            deadline = time.monotonic() + 60
            while len(self.statuses) < seen + 3 and time.monotonic() < deadline:
                time.sleep(0.005)
            self._stop.set()
            thread.join(120)


def raw_request(host: str, port: int, head: str, body: bytes = b"", timeout: float = 10) -> bytes:
    """Send a request's head (and maybe part of a body) on a raw socket; return what the server
    answers before `timeout` (b"" if nothing). Lets a test see that the server answered
    without waiting for the body it was promised."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + body)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)
