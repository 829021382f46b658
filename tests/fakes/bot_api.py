"""A fake Telegram Bot API server over real HTTP, for the real `aftersales serve` process.
Over 500 lines as one file: one fake server, a handler per Bot API method the product calls.

The product points at it with AFTERSALES_TELEGRAM_API_URL (bot/runtime.py `build_bot`), so the
bot's own aiohttp session, polling, retries and the delivery worker run as in production; only
Telegram is replaced. The server is aiohttp, on 127.0.0.1 and a free port, in a thread of its
own (its own event loop), so a test or a benchmark keeps its main thread.

What it does:

- answers the methods the product calls (getMe, deleteWebhook, setWebhook, getUpdates with
  Telegram's offset semantics and long polling, sendMessage, sendPhoto, sendDocument, sendVideo,
  editMessageText, editMessageReplyMarkup, answerCallbackQuery, getFile) and serves files at
  `/file/bot<token>/<path>`;
- takes customers' updates (`message`, `press`, `photo`) into the getUpdates queue, or, once
  `deliver_by_webhook(url, secret)` is called, posts each to that URL as Telegram's webhook
  does (the secret header; each chat's updates one after another, in order, a refused or failed
  post retried until it is answered 200; chats in parallel);
- records every call (method, chat, text, time, outcome) and keeps, per chat, the messages the
  bot sent with their current buttons, so a script can read them and press what is offered;
- injects faults (`Faults`): a share of calls answered 5xx, 429 with `retry_after`, or with the
  connection closed unanswered. A faulted call is *not applied* (no message appears), as when
  Telegram fails before doing anything: so every applied send is one message the customer sees,
  and a second applied send of one outbox row is a duplicate the customer would see;
- computes the pace of what it received (`pace()`): overall per second, per chat, per group
  per minute.

A second getUpdates while one is waiting ends the waiting one with 409, as Telegram does
("terminated by other getUpdates request"), so two processes polling one bot show.

Customers' coroutines run on the server's loop (`run(coro)` from another thread), where they
can await the bot's next message (`wait_messages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

TOKEN = "4242:E2E-FAKE-TOKEN"
BOT_ID = 4242
# Methods that put a message in a chat: Telegram's limits count these.
SEND_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "sendVideo", "sendMediaGroup", "copyMessage"}
)
EDIT_METHODS = frozenset({"editMessageText", "editMessageReplyMarkup", "editMessageCaption"})
# Parameters aiogram sends as JSON text in its form data.
JSON_FIELDS = frozenset(
    {"reply_markup", "allowed_updates", "media", "entities", "caption_entities", "reply_parameters"}
)
# Slack for the pace of one chat: the fake sees a message up to this much after it left.
PACE_JITTER = 0.05


@dataclass(frozen=True)
class Faults:
    """Shares (0..1) of calls that fail, each drawn independently per call; `methods` limits
    them to those methods (None: every method but getMe)."""

    server_error: float = 0.0
    retry_after: float = 0.0
    retry_after_seconds: int = 1
    dropped: float = 0.0
    methods: frozenset[str] | None = None
    seed: int = 18

    def applies(self, method: str) -> bool:
        if self.methods is None:
            return method != "getMe"
        return method in self.methods


@dataclass
class Call:
    """One request the bot made, as the fake saw it."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when it arrived
    outcome: str  # ok | 5xx | 429 | dropped | conflict | error
    chat_id: int | None = None
    text: str | None = None  # text or caption
    message_id: int | None = None  # of the message it sent or edited


@dataclass
class BotMessage:
    """A message the bot sent to a chat, with its buttons as they are now (edits applied)."""

    message_id: int
    chat_id: int
    text: str
    markup: dict[str, Any] | None
    method: str
    at: float

    def buttons(self) -> list[dict[str, Any]]:
        """The inline buttons, row by row flattened."""
        if not self.markup:
            return []
        return [b for row in self.markup.get("inline_keyboard", []) for b in row]

    def as_telegram(self) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": self.message_id,
            "date": int(time.time()),
            "chat": {"id": self.chat_id, "type": "private" if self.chat_id > 0 else "supergroup"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Shop", "username": "shop_bot"},
            "text": self.text,
        }
        if self.markup and "inline_keyboard" in self.markup:
            msg["reply_markup"] = self.markup
        return msg


@dataclass
class Pace:
    """The pace of the sends the fake applied (Telegram's limits: 30/s per bot, one a second
    per chat, 20 a minute per group)."""

    sends: int
    max_per_second: int
    max_per_chat_second: int
    max_per_group_minute: int
    min_chat_interval: float | None
    busiest_chat: int | None

    def within_limits(self) -> bool:
        return (
            self.max_per_second <= 30
            and self.max_per_chat_second <= 1
            and self.max_per_group_minute <= 20
        )


class FakeBotApi:
    """The server; `start()` it (or use it as a context manager), then point the bot at `url`."""

    def __init__(
        self, *, token: str = TOKEN, faults: Faults | None = None, max_poll_seconds: float = 1.0
    ) -> None:
        self.token = token
        # A long poll with nothing to give ends after this (Telegram may end one early too):
        # a stopping bot is not held up to its whole polling timeout.
        self.max_poll_seconds = max_poll_seconds
        self.faults = faults or Faults()
        self._random = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        self.chats: dict[int, list[BotMessage]] = defaultdict(list)
        self.files: dict[str, bytes] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._last_update_id = 0
        self._message_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._confirmed = 0  # every update below this id was confirmed by an offset
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._new_update: asyncio.Event | None = None
        # Set: files are served; cleared (`hold_files`): downloads wait, as on a slow link.
        self._files_open: asyncio.Event | None = None
        self._chat_changed: dict[int, asyncio.Event] = {}
        self._poll_waiting: asyncio.Future[None] | None = None
        self.port = 0
        self.loop_lag_max = 0.0
        self._heartbeat: asyncio.Task[None] | None = None
        # Webhook delivery (deliver_by_webhook): where to post, the secret, a queue per chat.
        self._webhook: tuple[str, str] | None = None
        self._webhook_queues: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._webhook_tasks: list[asyncio.Task[None]] = []
        self.webhook_posts = 0  # answered 200
        self.webhook_failures = 0  # refused or failed, then retried

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "start() the fake first"
        return self._loop

    def start(self) -> FakeBotApi:
        started = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start_server())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-bot-api", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the fake Bot API did not start")
        return self

    async def _beat(self) -> None:
        """How late this loop runs (the process is shared with the test): a call's time is
        taken when the loop gets to it, so a late loop bunches calls up in the pace."""
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.05)
            self.loop_lag_max = max(self.loop_lag_max, time.monotonic() - t0 - 0.05)

    async def _start_server(self) -> None:
        self._new_update = asyncio.Event()
        self._files_open = asyncio.Event()
        self._files_open.set()
        self._heartbeat = asyncio.create_task(self._beat())
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._heartbeat is not None:
            self._loop.call_soon_threadsafe(self._heartbeat.cancel)
        for task in self._webhook_tasks:
            self._loop.call_soon_threadsafe(task.cancel)
        if self._runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the fake's loop from another thread; its result within `timeout`."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._random = random.Random(faults.seed)

    # ------------------------------------------------------------ customers' side

    def push(self, update: dict[str, Any]) -> int:
        """Queue an update (its `update_id` is set here); thread-safe. Returns its id."""
        with self._lock:
            update_id = next(self._update_ids)
            self._last_update_id = update_id
            if self._webhook is not None:
                self.loop.call_soon_threadsafe(self._post_later, {**update, "update_id": update_id})
                return update_id
            self._updates.append({**update, "update_id": update_id})
        self.loop.call_soon_threadsafe(self._wake_polls)
        return update_id

    def deliver_by_webhook(self, url: str, secret: str) -> None:
        """From now on post each update to `url` (the product's /telegram/webhook, reached as
        a proxy would) with `secret` in X-Telegram-Bot-Api-Secret-Token, as Telegram does once
        a webhook is set; getUpdates gets nothing more."""
        with self._lock:
            self._webhook = (url, secret)

    def _post_later(self, update: dict[str, Any]) -> None:
        """On the fake's loop: the update joins its chat's queue (one poster per chat)."""
        body = update.get("message") or update.get("callback_query") or {}
        chat = (body.get("chat") or (body.get("message") or {}).get("chat") or {}).get("id", 0)
        queue = self._webhook_queues.get(chat)
        if queue is None:
            queue = self._webhook_queues[chat] = asyncio.Queue()
            self._webhook_tasks.append(asyncio.create_task(self._post_chat(queue)))
        queue.put_nowait(update)

    async def _post_chat(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        import aiohttp

        assert self._webhook is not None
        url, secret = self._webhook
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            while True:
                update = await queue.get()
                while True:
                    try:
                        async with http.post(url, json=update, headers=headers) as answer:
                            if answer.status == 200:
                                self.webhook_posts += 1
                                break
                    except (aiohttp.ClientError, TimeoutError):
                        pass
                    self.webhook_failures += 1
                    await asyncio.sleep(0.5)

    def _wake_polls(self) -> None:
        assert self._new_update is not None
        self._new_update.set()

    def user(self, chat_id: int, language: str = "en") -> dict[str, Any]:
        return {
            "id": chat_id,
            "is_bot": False,
            "first_name": f"Customer{chat_id}",
            "language_code": language,
        }

    def _incoming(self, chat_id: int, language: str) -> dict[str, Any]:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": f"Customer{chat_id}"},
            "from": self.user(chat_id, language),
        }

    def message(self, chat_id: int, text: str, *, language: str = "en") -> int:
        """A customer types `text` in their private chat with the bot."""
        msg = {**self._incoming(chat_id, language), "text": text}
        if text.startswith("/"):
            command = text.split()[0]
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self.push({"message": msg})

    def press(self, message: BotMessage, data: str, *, language: str = "en") -> int:
        """A customer presses the button with callback data `data` under `message`."""
        query = {
            "id": f"cb{next(self._callback_ids)}",
            "from": self.user(message.chat_id, language),
            "chat_instance": f"ci{message.chat_id}",
            "message": message.as_telegram(),
            "data": data,
        }
        return self.push({"callback_query": query})

    def photo(self, chat_id: int, data: bytes, *, caption: str | None = None) -> int:
        """A customer sends a photo (its bytes served by getFile and the file path)."""
        n = next(self._message_ids)
        file_id = f"photo{chat_id}x{n}"
        with self._lock:
            self.files[file_id] = data
        sizes = [
            {
                "file_id": file_id,
                "file_unique_id": f"u{file_id}",
                "width": 64,
                "height": 48,
                "file_size": len(data),
            }
        ]
        msg: dict[str, Any] = {**self._incoming(chat_id, "en"), "photo": sizes}
        if caption:
            msg["caption"] = caption
        return self.push({"message": msg})

    @property
    def pushed(self) -> int:
        """How many updates were queued in all."""
        with self._lock:
            return self._last_update_id

    def unconfirmed(self) -> int:
        """Updates the bot has not confirmed yet (by a later getUpdates offset)."""
        with self._lock:
            return sum(1 for u in self._updates if u["update_id"] >= self._confirmed)

    def messages(self, chat_id: int) -> list[BotMessage]:
        with self._lock:
            return list(self.chats.get(chat_id, []))

    async def wait_messages(self, chat_id: int, count: int, timeout: float) -> list[BotMessage]:
        """On the fake's loop: the chat's messages once there are at least `count` (and, after
        one arrives, a short quiet moment so a burst of answers is read whole)."""
        deadline = time.monotonic() + timeout
        event = self._chat_changed.setdefault(chat_id, asyncio.Event())
        while len(self.chats.get(chat_id, [])) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"chat {chat_id}: {len(self.chats.get(chat_id, []))} of {count} messages "
                    f"after {timeout}s"
                )
            event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(left, 1.0))
        return self.messages(chat_id)

    def hold_files(self) -> None:
        """File downloads wait from now on until `release_files` (a slow link, a stuck one)."""
        assert self._files_open is not None
        self.loop.call_soon_threadsafe(self._files_open.clear)

    def release_files(self) -> None:
        assert self._files_open is not None
        self.loop.call_soon_threadsafe(self._files_open.set)

    # ------------------------------------------------------------ what the bot did

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def applied(self, methods: frozenset[str] = SEND_METHODS) -> list[Call]:
        """The calls of `methods` that took effect."""
        return [c for c in self.snapshot() if c.outcome == "ok" and c.method in methods]

    def pace(self) -> Pace:
        sends = self.applied()
        times = sorted(c.at for c in sends)
        per_chat: dict[int, list[float]] = defaultdict(list)
        for c in sends:
            if c.chat_id is not None:
                per_chat[c.chat_id].append(c.at)
        max_chat, busiest, min_interval = 0, None, None
        max_group = 0
        for chat, ts in per_chat.items():
            ts.sort()
            if chat > 0:
                n = _max_in_window(ts, 1.0 - PACE_JITTER)
                if n > max_chat:
                    max_chat, busiest = n, chat
                gaps = [b - a for a, b in itertools.pairwise(ts)]
                if gaps:
                    g = min(gaps)
                    min_interval = g if min_interval is None else min(min_interval, g)
            else:
                max_group = max(max_group, _max_in_window(ts, 60.0 - PACE_JITTER))
        return Pace(
            sends=len(sends),
            # Telegram's 30 a second is an average; a window a little under a second absorbs
            # the jitter between the bot's limiter and the fake's clock.
            max_per_second=_max_in_window(times, 1.0 - PACE_JITTER),
            max_per_chat_second=max_chat,
            max_per_group_minute=max_group,
            min_chat_interval=min_interval,
            busiest_chat=busiest,
        )

    # ------------------------------------------------------------ the HTTP side

    def _fault(self, method: str) -> str | None:
        f = self.faults
        if not f.applies(method):
            return None
        with self._lock:
            r = self._random.random()
        if r < f.server_error:
            return "5xx"
        if r < f.server_error + f.retry_after:
            return "429"
        if r < f.server_error + f.retry_after + f.dropped:
            return "dropped"
        return None

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        params[key] = {"filename": value.filename, "size": len(value.file.read())}
                    elif key in JSON_FIELDS and isinstance(value, str):
                        params[key] = json.loads(value)
                    else:
                        params[key] = value
        return params

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method=method, params=params, at=time.monotonic(), outcome="ok")
        chat = params.get("chat_id")
        with contextlib.suppress(TypeError, ValueError):
            call.chat_id = int(chat) if chat is not None else None
        call.text = params.get("text") or params.get("caption")
        if request.match_info["token"] != self.token:
            call.outcome = "error"
            self._record(call)
            return _error(401, "Unauthorized")
        fault = self._fault(method)
        if fault is not None:
            call.outcome = fault
            self._record(call)
            if fault == "5xx":
                return _error(502, "Bad Gateway")
            if fault == "429":
                secs = self.faults.retry_after_seconds
                return _error(429, f"Too Many Requests: retry after {secs}", {"retry_after": secs})
            # Dropped: the connection closes with no answer at all.
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        if method == "getUpdates":
            return await self._get_updates(call)
        self._record(call)
        try:
            result = self._apply(call)
        except LookupError as exc:
            call.outcome = "error"
            return _error(400, f"Bad Request: {exc}")
        return web.json_response({"ok": True, "result": result})

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _apply(self, call: Call) -> Any:
        p = call.params
        m = call.method
        if m == "getMe":
            return {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "Shop",
                "username": "shop_bot",
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        if m in ("deleteWebhook", "setWebhook", "answerCallbackQuery", "close", "logOut"):
            return True
        if m == "getWebhookInfo":
            return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        if m == "getFile":
            file_id = str(p["file_id"])
            if file_id not in self.files:
                raise LookupError("file not found")
            return {
                "file_id": file_id,
                "file_unique_id": f"u{file_id}",
                "file_size": len(self.files[file_id]),
                "file_path": f"photos/{file_id}.jpg",
            }
        if m in SEND_METHODS:
            assert call.chat_id is not None
            sent = BotMessage(
                message_id=next(self._message_ids),
                chat_id=call.chat_id,
                text=str(call.text or ""),
                markup=p.get("reply_markup"),
                method=m,
                at=call.at,
            )
            call.message_id = sent.message_id
            self._add_message(sent)
            result = sent.as_telegram()
            if m != "sendMessage":
                result.pop("text")
                result["caption"] = sent.text
                if m == "sendPhoto":
                    result["photo"] = [
                        {
                            "file_id": f"out{sent.message_id}",
                            "file_unique_id": "o",
                            "width": 1,
                            "height": 1,
                        }
                    ]
                else:
                    result["document"] = {"file_id": f"out{sent.message_id}", "file_unique_id": "o"}
            if m == "sendMediaGroup":
                return [result]
            return result
        if m in EDIT_METHODS:
            assert call.chat_id is not None
            message_id = int(p["message_id"])
            call.message_id = message_id
            with self._lock:
                found = [x for x in self.chats.get(call.chat_id, []) if x.message_id == message_id]
                if not found:
                    raise LookupError("message to edit not found")
                target = found[0]
                if m == "editMessageText":
                    target.text = str(p.get("text") or "")
                target.markup = p.get("reply_markup")
            self._changed(call.chat_id)
            return target.as_telegram()
        raise LookupError(f"method {m} not faked")

    def _add_message(self, message: BotMessage) -> None:
        with self._lock:
            self.chats[message.chat_id].append(message)
        self._changed(message.chat_id)

    def _changed(self, chat_id: int) -> None:
        event = self._chat_changed.get(chat_id)
        if event is not None:
            event.set()

    async def _get_updates(self, call: Call) -> web.StreamResponse:
        p = call.params
        offset = int(p.get("offset") or 0)
        limit = min(int(p.get("limit") or 100), 100)
        timeout = min(float(p.get("timeout") or 0), self.max_poll_seconds)
        # Telegram answers an earlier waiting getUpdates with 409 when another comes in.
        if self._poll_waiting is not None and not self._poll_waiting.done():
            self._poll_waiting.set_result(None)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._poll_waiting = mine
        self._record(call)
        deadline = time.monotonic() + timeout
        assert self._new_update is not None
        while True:
            with self._lock:
                if offset:
                    self._confirmed = max(self._confirmed, offset)
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                batch = self._updates[:limit]
            if batch or time.monotonic() >= deadline:
                break
            self._new_update.clear()
            waiter = asyncio.ensure_future(self._new_update.wait())
            either: set[asyncio.Future[Any]] = {waiter, mine}
            done, _ = await asyncio.wait(
                either, timeout=deadline - time.monotonic(), return_when="FIRST_COMPLETED"
            )
            waiter.cancel()
            if mine in done and mine.done():
                call.outcome = "conflict"
                return _error(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one "
                    "bot instance is running",
                )
        if self._poll_waiting is mine:
            self._poll_waiting = None
        call.params = {**p, "returned": len(batch)}
        return web.json_response({"ok": True, "result": batch})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        file_id = path.rsplit("/", 1)[-1].removesuffix(".jpg")
        data = self.files.get(file_id)
        assert self._files_open is not None
        if not self._files_open.is_set():
            # Seen now (the bot asked), answered once released.
            self._record(
                Call(
                    method="downloadFile:held",
                    params={"path": path},
                    at=time.monotonic(),
                    outcome="ok",
                )
            )
            await self._files_open.wait()
        self._record(
            Call(
                method="downloadFile",
                params={"path": path},
                at=time.monotonic(),
                outcome="ok" if data is not None else "error",
            )
        )
        if data is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=data, content_type="image/jpeg")


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


def _max_in_window(times: list[float], window: float) -> int:
    """The most of the sorted `times` inside any half-open window of `window` seconds."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
