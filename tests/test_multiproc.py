"""Two real `aftersales serve` processes on one PostgreSQL database, with the bot polling a
fake Bot API over HTTP: every outbox row is sent once across both, the SLA sweeps (one per
process) never double a notice, only one process polls at a time, and a SIGTERM stops a
process cleanly (exit 0), giving back the rows it claimed but had not sent: the other process
sends them at once, not after their 300 s lease, and takes over polling. Two webhook processes
without Redis keep one chat's updates in order; a SIGKILLed process's claimed rows go out
from the restarted one within seconds of its heartbeat stopping, each once.
Over 500 lines as one file: its tests share a costly set-up (real serve processes, the fake Bot
API, one PostgreSQL database) and its helpers.

PostgreSQL only (several processes are refused on SQLite): skipped in the SQLite pass, run
in the Makefile's PostgreSQL pass, which CI cannot skip.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select, update

from tests.conftest import ON_CI, PG_URL
from tests.factories import order_json
from tickets.cases.opening import open_case
from tickets.context import SYSTEM, Context
from tickets.db import make_engine, make_sessionmaker, unit_of_work
from tickets.models import (
    Customer,
    Event,
    InboundUpdate,
    Message,
    OutboxMessage,
    SlaClock,
    Ticket,
    UpdateArrival,
    utcnow,
)
from tickets.orders.store import upsert_order
from tickets.policy.rules import Policy
from tickets.schemas import OrderIn, TicketCreate

pytestmark = pytest.mark.skipif(
    not PG_URL,
    reason="several processes need PostgreSQL: runs in the PostgreSQL pass"
    + (" (make test-postgres, mandatory on CI)" if ON_CI else ""),
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "42:TEST"
SECRET = "peers-secret"
ROWS = 300  # 10 s of Telegram's 30 messages a second
CASES = 6


class FakeBotApi:
    """Telegram's Bot API over HTTP on loopback, in a thread: getMe, deleteWebhook,
    getUpdates (long polls cut to 0.5 s, so two pollers would overlap), sendMessage."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []
        self.updates: list[dict[str, Any]] = []
        # (start, end) of each getUpdates answered to a client still there.
        self.polls: list[tuple[float, float]] = []
        # While set, sendMessage is not answered (nor counted) until cleared; a request whose
        # client went away meanwhile (a killed process) never reached "Telegram".
        self.hold = threading.Event()
        self.holding = 0
        self._message_id = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def push(self, update: dict[str, Any]) -> None:
        self._loop.call_soon_threadsafe(self.updates.append, update)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "no"}, status=401
            )
        params = dict(await request.post())
        method = request.match_info["method"].lower()
        result: Any = True
        if method == "getme":
            result = {"id": 42, "is_bot": True, "first_name": "Shop", "username": "shop_bot"}
        elif method == "getupdates":
            result = await self._get_updates(
                request, int(str(params.get("offset") or 0)), float(str(params.get("timeout") or 0))
            )
        elif method == "sendmessage":
            if self.hold.is_set() and not await self._held(request):
                return web.json_response({"ok": False, "error_code": 502}, status=502)
            chat_id, text = int(str(params["chat_id"])), str(params["text"])
            self.sent.append((chat_id, text))
            self._message_id += 1
            result = {
                "message_id": self._message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "text": text,
            }
        return web.json_response({"ok": True, "result": result})

    async def _held(self, request: web.Request) -> bool:
        """Wait while `hold` is set; False if the client hung up meanwhile."""
        self.holding += 1
        try:
            while self.hold.is_set():
                if request.transport is None or request.transport.is_closing():
                    return False
                await asyncio.sleep(0.05)
            return True
        finally:
            self.holding -= 1

    async def _get_updates(
        self, request: web.Request, offset: int, timeout: float
    ) -> list[dict[str, Any]]:
        started = time.monotonic()
        try:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            for _ in range(10 if timeout else 0):
                # A poller that hung up (its process stopped) no longer polls.
                if self.updates or request.transport is None or request.transport.is_closing():
                    break
                await asyncio.sleep(0.05)
            return list(self.updates)
        finally:
            # A request its client hung up on (a stopping process) polled for no one.
            if request.transport is not None and not request.transport.is_closing():
                self.polls.append((started, time.monotonic()))


@pytest.fixture
def bot_api() -> Iterator[FakeBotApi]:
    api = FakeBotApi()
    api.start()
    yield api
    api.stop()


class Serve:
    """One `aftersales serve` process (this checkout's code), its output in a file."""

    def __init__(self, name: str, env: dict[str, str], tmp: Path, *options: str) -> None:
        self.port = free_port()
        self.log = tmp / f"{name}.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "info",
                *options,
            ],
            cwd=tmp,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            assert self.proc.poll() is None, f"exited early:\n{self.text()}"
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout}s:\n{self.text()}")

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def seed(url: str) -> None:
    """Cases opened two days ago (their SLA clocks breached: the sweeps have work), and
    ROWS notices to as many customers."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    from tickets.messages.scripts import bundled_scripts_dir, load_library

    then = utcnow() - timedelta(days=2)
    ctx = Context(
        policy=Policy(),
        now=then,
        tz=then.tzinfo,  # type: ignore[arg-type]
        scripts=load_library(bundled_scripts_dir()),
    )
    with unit_of_work(sessions) as s:
        for i in range(CASES):
            customer = {"name": "Li", "phone": f"1380013{i:04d}", "telegram_user_id": 6000 + i}
            data = order_json(f"M{i}", customer=customer)
            upsert_order(session=s, data=OrderIn(**data), now=then)
            open_case(
                session=s,
                request=TicketCreate(order_no=f"M{i}", kind="complaint", reason="service"),
                actor=SYSTEM,
                ctx=ctx,
            )
        # Not due yet: the processes start before these go out.
        s.add_all(
            OutboxMessage(
                channel="telegram",
                recipient=str(10_000 + i),
                kind="test.notice",
                payload={"text": f"m{i}", "parse_mode": "HTML"},
                next_attempt_at=utcnow() + timedelta(days=1),
            )
            for i in range(ROWS)
        )
    engine.dispose()


def start_update(update_id: int, user: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": user, "type": "private"},
            "from": {"id": user, "is_bot": False, "first_name": "Li", "language_code": "en"},
            "text": "/start",
        },
    }


def environment(url: str, bot_api: FakeBotApi, tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")},
        "PYTHONPATH": str(ROOT),
        "AFTERSALES_DATABASE_URL": url,
        "AFTERSALES_TELEGRAM_TOKEN": TOKEN,
        "AFTERSALES_TELEGRAM_API_URL": f"http://127.0.0.1:{bot_api.port}",
        "AFTERSALES_MEDIA_DIR": str(tmp_path / "media"),
    }


def test_serve_workers_starts_processes_of_which_one_polls(
    fresh_db_url: str, bot_api: FakeBotApi, tmp_path: Path
) -> None:
    """`serve --workers 2`: two processes on one port, one polling, the other standing by;
    a SIGTERM to the parent stops both and exits 0."""
    serve = Serve(
        "workers", environment(fresh_db_url, bot_api, tmp_path), tmp_path, "--workers", "2"
    )
    try:
        serve.wait_for(r"Telegram polling started", 120)
        serve.wait_for(r"another process polls Telegram: this one stands by", 60)
        assert serve.terminate() == 0, serve.text()
        log = serve.text()
        assert log.count("Application shutdown complete") == 2, log
        assert log.count("Telegram polling started") == 1, log
        assert "Traceback" not in log, log
    finally:
        serve.kill()


def test_two_processes_send_once_sweep_once_and_stop_cleanly(
    fresh_db_url: str, bot_api: FakeBotApi, tmp_path: Path
) -> None:
    seed(fresh_db_url)
    env = environment(fresh_db_url, bot_api, tmp_path)
    engine = make_engine(fresh_db_url)
    first = Serve("first", env, tmp_path)
    second: Serve | None = None
    try:
        first.wait_for(r"Telegram polling started")
        second = Serve("second", env, tmp_path)
        second.wait_for(r"another process polls Telegram: this one stands by")
        # Both up (each has swept once at its start): the notices fall due.
        with unit_of_work(make_sessionmaker(engine)) as s:
            s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.kind == "test.notice")
                .values(next_attempt_at=utcnow())
            )
        wait_until(lambda: len(bot_api.sent) >= 60, 30, "the first notices sent")

        # SIGTERM the polling process in the middle of its sending.
        assert first.terminate() == 0, first.text()
        released = re.search(r"released (\d+) claimed outbox row", first.text())
        assert released and int(released.group(1)) > 0, first.text()

        # The other process takes over polling, and sends everything, once, long before
        # any lease (300 s) could have run out.
        second.wait_for(r"the polling process is gone: this one polls Telegram now", 20)
        bot_api.push(start_update(900_001, 5555))
        mine = {f"m{i}" for i in range(ROWS)}
        wait_until(
            lambda: {t for _, t in bot_api.sent} >= mine and 5555 in {c for c, _ in bot_api.sent},
            60,
            "every notice and the answer to /start sent by the process left",
        )
        assert second.terminate() == 0, second.text()
        second = None

        counts = Counter(t for _, t in bot_api.sent if t in mine)
        assert set(counts.values()) == {1}, [t for t, n in counts.items() if n > 1]
        # Never two pollers at once (Telegram would refuse one with 409 Conflict).
        polls = sorted(bot_api.polls)
        assert len(polls) > 10
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(polls))
        with make_sessionmaker(engine)() as s:
            pending = s.scalar(select(func.count()).where(OutboxMessage.status == "pending"))
            breaches = s.execute(
                select(Event.ticket_id, Event.data).where(Event.type == "sla.breached")
            ).all()
            clocks = s.scalar(select(func.count()).select_from(SlaClock))
        assert pending == 0
        # Each breached clock was told once, though both processes swept.
        assert breaches and clocks
        told = Counter((t, json.dumps(d.get("clock"))) for t, d in breaches)
        assert set(told.values()) == {1}, told
        assert "Traceback" not in first.text(), first.text()
    finally:
        first.kill()
        if second is not None:
            second.kill()
        engine.dispose()


def text_update(update_id: int, user: int, text: str) -> dict[str, Any]:
    update = start_update(update_id, user)
    update["message"]["text"] = text
    return update


def post_webhook(port: int, update: dict[str, Any]) -> int:
    """POST one update to a process's webhook, as Telegram (through a proxy) would."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/telegram/webhook",
        data=json.dumps(update).encode(),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 (loopback)
        return int(answer.status)


def test_two_webhook_processes_without_redis_keep_a_chats_updates_in_order(
    fresh_db_url: str, bot_api: FakeBotApi, tmp_path: Path
) -> None:
    """Two `serve` processes behind a proxy, no Redis: one customer's messages reach them
    alternately, each sent as soon as the one before has reached its process (not waiting for
    it to be handled). They land on the customer's case in the order they were written."""
    seed(fresh_db_url)
    env = {
        **environment(fresh_db_url, bot_api, tmp_path),
        "AFTERSALES_WEBHOOK_URL": "https://shop.example.com/telegram/webhook",
        "AFTERSALES_WEBHOOK_SECRET": SECRET,
    }
    engine = make_engine(fresh_db_url)
    sessions = make_sessionmaker(engine)
    peers = [Serve("peer1", env, tmp_path), Serve("peer2", env, tmp_path)]
    customer = 6000  # has an open case (seed): what they write goes to it
    texts = [f"note {n:02d}" for n in range(24)]
    answers: list[int] = []
    try:
        for peer in peers:
            peer.wait_for(r"Telegram webhook set to", 180)
            peer.wait_for(r"Application startup complete", 60)

        def reached(update_id: int) -> bool:
            with sessions() as s:
                return bool(
                    s.scalar(
                        select(func.count())
                        .select_from(UpdateArrival)
                        .where(UpdateArrival.update_id == update_id)
                    )
                    or s.scalar(
                        select(func.count())
                        .select_from(InboundUpdate)
                        .where(InboundUpdate.external_id == f"42:{update_id}")
                    )
                )

        posts = []
        for n, text in enumerate(texts):
            update_id = 800_000 + n
            peer = peers[n % 2]
            post = threading.Thread(
                target=lambda p=peer.port, u=text_update(update_id, customer, text): answers.append(
                    post_webhook(p, u)
                )
            )
            post.start()
            posts.append(post)
            wait_until(lambda u=update_id: reached(u), 30, f"update {update_id} reached a process")
        for post in posts:
            post.join(60)
        assert answers == [200] * len(texts)
        with sessions() as s:
            written = list(
                s.scalars(
                    select(Message.text)
                    .join(Ticket, Ticket.id == Message.ticket_id)
                    .join(Customer, Customer.id == Ticket.customer_id)
                    .where(Customer.telegram_user_id == customer, Message.author == "customer")
                    .order_by(Message.id)
                )
            )
            left = s.scalar(select(func.count()).select_from(UpdateArrival))
        assert written == texts
        assert left == 0  # every arrival pruned once handled
        # Both took a share, and neither saw a traceback.
        for peer in peers:
            assert "POST /telegram/webhook" in peer.text(), peer.text()
            assert "Traceback" not in peer.text(), peer.text()
    finally:
        for peer in peers:
            peer.kill()
        engine.dispose()


def test_a_killed_process_s_claimed_rows_go_out_within_seconds_once(
    fresh_db_url: str, bot_api: FakeBotApi, tmp_path: Path
) -> None:
    """A process claims outbox rows and is killed (SIGKILL) while its sends hang unanswered.
    The restarted process sends everything, each row once, about 20-25 s after the kill (the
    dead worker's heartbeat stopped), not after the rows' 300 s lease."""
    seed(fresh_db_url)
    env = environment(fresh_db_url, bot_api, tmp_path)
    engine = make_engine(fresh_db_url)
    sessions = make_sessionmaker(engine)
    # Due before the process starts: its first pass claims a batch of them (a pass whose sends
    # hang claims nothing more, so the sweep's notices must not come first).
    with unit_of_work(sessions) as s:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.kind == "test.notice")
            .values(next_attempt_at=utcnow())
        )
    bot_api.hold.set()
    first = Serve("killed", env, tmp_path)
    second: Serve | None = None
    try:
        first.wait_for(r"Telegram polling started", 120)
        wait_until(lambda: bot_api.holding >= 20, 30, "sends on the wire, unanswered")
        first.kill()  # SIGKILL: nothing given back
        killed_at = time.monotonic()
        wait_until(lambda: bot_api.holding == 0, 10, "the killed process's requests gone")
        bot_api.hold.clear()
        assert not bot_api.sent
        with sessions() as s:
            claimed = s.scalar(
                select(func.count()).where(
                    OutboxMessage.claimed_by.is_not(None), OutboxMessage.status == "pending"
                )
            )
        assert claimed and claimed >= 20  # leased for 300 s to a dead process

        second = Serve("restarted", env, tmp_path)
        mine = {f"m{i}" for i in range(ROWS)}
        wait_until(
            lambda: {t for _, t in bot_api.sent} >= mine,
            90,
            "every notice sent, the killed process's claimed ones included",
        )
        assert time.monotonic() - killed_at < 120  # far from the 300 s lease
        second.wait_for(r"took back \d+ outbox row\(s\) of a delivery worker no longer seen")
        counts = Counter(t for _, t in bot_api.sent if t in mine)
        assert set(counts.values()) == {1}, [t for t, n in counts.items() if n > 1]
        with sessions() as s:
            pending = s.scalar(select(func.count()).where(OutboxMessage.status == "pending"))
        assert pending == 0
        assert second.terminate() == 0, second.text()
        second = None
    finally:
        bot_api.hold.clear()
        first.kill()
        if second is not None:
            second.kill()
        engine.dispose()


class FakeShop:
    """The shop's webhook endpoint over HTTP on loopback, in a thread: answers 200 and keeps
    each delivery's `webhook-id`; while `hold` is set, requests wait unanswered, and one whose
    client went away meanwhile (a killed process) never arrived."""

    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.hold = threading.Event()
        self.holding = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.holding += 1
        try:
            while self.hold.is_set():
                if request.transport is None or request.transport.is_closing():
                    return web.Response(status=502)
                await asyncio.sleep(0.05)
        finally:
            self.holding -= 1
        self.delivered.append(request.headers["webhook-id"])
        return web.Response(text="ok")


def test_a_killed_process_s_claimed_webhooks_go_out_within_seconds_once(
    fresh_db_url: str, tmp_path: Path
) -> None:
    """The webhook sender's claims live by the same heartbeat as the Telegram worker's: a
    process that claimed webhook rows and is killed (SIGKILL) while its requests hang has
    them sent by the restarted process once its heartbeat has stopped for 20 s, each once,
    not after their 120 s lease."""
    from api.hooks_delivery import LEASE_SECONDS
    from tickets.messages.scripts import bundled_scripts_dir, load_library
    from tickets.webhooks import HookRules, create_subscription

    shop = FakeShop()
    shop.start()
    engine = make_engine(fresh_db_url)
    sessions = make_sessionmaker(engine)
    now = utcnow()
    ctx = Context(
        policy=Policy(),
        now=now,
        tz=now.tzinfo,  # type: ignore[arg-type]
        scripts=load_library(bundled_scripts_dir()),
    )
    with unit_of_work(sessions) as s:
        create_subscription(
            session=s,
            url=f"http://127.0.0.1:{shop.port}/hooks",
            events=["case.created"],
            rules=HookRules(allow_private=True),
            by="test",
            now=now,
        )
        # One case.created each, of different cases: the first pass claims them all.
        for i in range(CASES):
            upsert_order(session=s, data=OrderIn(**order_json(f"H{i}")), now=now)
            open_case(
                session=s,
                request=TicketCreate(order_no=f"H{i}", kind="complaint", reason="service"),
                actor=SYSTEM,
                ctx=ctx,
            )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")},
        "PYTHONPATH": str(ROOT),
        "AFTERSALES_DATABASE_URL": fresh_db_url,
        "AFTERSALES_MEDIA_DIR": str(tmp_path / "media"),
        "AFTERSALES_HOOKS_ALLOW_PRIVATE": "true",
        # The held requests hang until the kill, not given up on first.
        "AFTERSALES_HOOKS_TIMEOUT_SECONDS": "60",
    }
    shop.hold.set()
    first = Serve("hooks-killed", env, tmp_path)
    second: Serve | None = None
    try:
        first.wait_for(r"webhook sender started", 120)
        wait_until(lambda: shop.holding >= CASES, 60, "every webhook on the wire, unanswered")
        first.kill()  # SIGKILL: nothing given back
        killed_at = time.monotonic()
        wait_until(lambda: shop.holding == 0, 10, "the killed process's requests gone")
        shop.hold.clear()
        assert shop.delivered == []
        with sessions() as s:
            claimed = s.scalar(
                select(func.count()).where(
                    OutboxMessage.channel == "webhook",
                    OutboxMessage.claimed_by.is_not(None),
                    OutboxMessage.status == "pending",
                )
            )
        assert claimed == CASES  # leased for 120 s to a dead process

        second = Serve("hooks-restarted", env, tmp_path)
        wait_until(lambda: len(shop.delivered) >= CASES, 90, "every webhook delivered")
        assert time.monotonic() - killed_at < LEASE_SECONDS
        second.wait_for(r"took back \d+ outbox row\(s\) of a delivery worker no longer seen")
        counts = Counter(shop.delivered)
        assert len(counts) == CASES and set(counts.values()) == {1}, counts

        def pending() -> int:
            with sessions() as s:
                return int(
                    s.scalar(
                        select(func.count()).where(
                            OutboxMessage.channel == "webhook", OutboxMessage.status == "pending"
                        )
                    )
                    or 0
                )

        # Recorded once answered (the answer reaches the shop before the sender's commit).
        wait_until(lambda: pending() == 0, 30, "every delivery recorded")
        assert Counter(shop.delivered) == counts  # and none sent again meanwhile
        assert second.terminate() == 0, second.text()
        second = None
    finally:
        shop.hold.clear()
        first.kill()
        if second is not None:
            second.kill()
        engine.dispose()
        shop.stop()
