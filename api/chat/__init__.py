"""The web chat at /chat: customers without Telegram talk to the same bot from a web page.
Over 500 lines as one file: the routes and the page's conversation (its cookie, its events,
their rendering) share one state.

`install_chat(app, conversation)` is the one call the composition root makes, when
AFTERSALES_WEB_CHAT is on (off, no chat route exists: every one answers 404). It needs no
Telegram token. `conversation` is the bot's side (api/chat/port.py, built by bot/web_chat.py in
the root): nothing here imports bot/.

- `GET /chat`: the page (templates/chat/chat.html, api/static/chat.js), in the browser's
  language (zh-CN or en) with a switch; it opens the browser's session (api/chat/identity.py).
  `GET /chat?link=TOKEN`, a signed chat link for an order (tickets/chat_links.py): the chat is
  proved for that order, the request for it begins, and the browser goes on to `/chat` (the
  token never stays in its address bar); an expired or tampered link gets a page saying so,
  and the way to prove the order by its number and the phone's digits instead.
- `POST /chat/send` `{"id", "text"}`, `POST /chat/press` `{"id", "data", "message"}`: a text,
  a button press. `id` is the page's own id for it (a retry with the same id is handled once).
  Each becomes a Telegram update fed to a Dispatcher built by the bot's own factory
  (bot/runtime.py `build_dispatcher`, through the port), with a bot whose session never calls
  Telegram (bot/web.py): every handler, filter, state and fallback of the bot serves the page.
- `POST /chat/upload` (multipart: `id`, `group`, `file`): one photo, video or document, as a
  Telegram message carrying it (the page sends the files picked together one by one, sharing a
  `group`, as Telegram sends an album): the bot's own media step checks and keeps it
  (bot/media.py: real images, the size limits, location metadata stripped). Its body is bounded
  by AFTERSALES_MAX_UPLOAD_BYTES before a byte is read (api/app.py `UPLOAD_ROUTES`).
- `POST /chat/forget`: log out; this browser forgets its session.
- `GET /chat/events`: the conversation as server-sent events, resumed by `Last-Event-ID`
  (api/chat/stream.py).
- `GET /chat/files/{row}`: the file an agent's answer carries (a photo, a PDF), or a photo the
  customer sent; `GET /chat/files/{row}/thumb`, that photo's thumbnail (at most
  320 px, made once when the photo is kept: tickets/storage.py), which the page shows (a tap
  opens the photo). For the page's own conversation only (another chat's, or none: 404).

The JSON routes refuse cross-site requests (the `Origin` must be this site's) and bodies that
are not JSON, and are rate-limited per session and per address. Whatever ids a request names,
it acts only as its cookie's chat.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as FastPath
from fastapi.encoders import jsonable_encoder
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from api.chat import identity
from api.chat.port import Conversation, Updates
from api.chat.stream import ECHO_KIND, WEB, Hub, Row
from api.panel.auth import client_address
from tickets.bundled import bundled
from tickets.chat_links import LINK_PARAM, TOKEN_MAX, LinkRefused, prove_by_link, read_token
from tickets.customers import LinkedElsewhere
from tickets.exceptions import InvalidInput, NotFound
from tickets.messages import payloads
from tickets.messages.payloads import (
    BotAnswer,
    CustomerMessage,
    EchoFile,
    KeptFile,
    Reply,
    WebEcho,
)
from tickets.messages.scripts import resolve_language
from tickets.models import Attachment, OutboxMessage
from tickets.storage import AttachmentStore, StoredFile
from tickets.telemetry import instruments

log = logging.getLogger(__name__)

PREFIX = "/chat"
TEMPLATES_DIR = bundled("templates", "chat")
LANGUAGES = ("zh-CN", "en")
# The page's own id for a message: letters, digits, - and _.
CLIENT_ID = r"^[A-Za-z0-9_-]{8,64}$"
# Telegram's own limits: a message's text, a button's data.
TEXT_MAX = 4096
DATA_MAX = 64
# How long the customer's file message waits for the bot to keep the file before it is shown
# all the same (`WebChat.echo`): longer than the slowest photo takes, short enough that a
# process stopping mid-file does not hide the chat's rest for long.
ECHO_HOLD = timedelta(seconds=60)
# The page's own words (bot/messages.py, `web.*`).
PAGE_TEXTS = (
    "title",
    "placeholder",
    "send",
    "offline",
    "online",
    "switch",
    "busy",
    "camera",
    "camera_label",
    "attach",
    "attach_label",
    "uploading",
    "upload_failed",
    "too_large",
    "forget",
    "forget_confirm",
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)
M = TypeVar("M", bound=BaseModel)


class TextIn(BaseModel):
    id: Annotated[str, Field(pattern=CLIENT_ID)]
    text: Annotated[str, Field(min_length=1, max_length=TEXT_MAX)]


class PressIn(BaseModel):
    id: Annotated[str, Field(pattern=CLIENT_ID)]
    data: Annotated[str, Field(min_length=1, max_length=DATA_MAX)]
    # The outbox row id of the bot's message the button is under (its id on the page).
    message: Annotated[int, Field(ge=0, le=2**62)]


class UploadIn(BaseModel):
    """The upload's form fields beside the file."""

    id: Annotated[str, Field(pattern=CLIENT_ID)]
    # Files picked together share one (a Telegram album's media_group_id).
    group: Annotated[str | None, Field(pattern=CLIENT_ID)] = None


class LanguageIn(BaseModel):
    language: Annotated[str, Field(pattern=r"^(zh-CN|en)$")]


class WebChat:
    """The web chat's parts in one process: the bot's conversation (the port), the event hub,
    the limits, the page's templates."""

    def __init__(self, app: FastAPI, conversation: Conversation) -> None:
        state = app.state
        self.settings = state.settings
        self.clock = state.clock
        self.sessions = state.sessions
        self.conversation = conversation
        self.hub = Hub(state.sessions, state.clock, state.watcher)
        self.limits = identity.Limits.of(
            self.settings.web_chat_messages_per_minute, self.settings.web_chat_sessions_per_hour
        )
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"])
        )

    @property
    def secret(self) -> str:
        return str(self.settings.secret_key)

    def updates(self, chat_id: int, language: str) -> Updates:
        return self.conversation.updates(chat_id, language)

    async def feed(self, chat_id: int, update: object) -> None:
        """Handle one update of the chat as the bot handles Telegram's, then wake its page."""
        try:
            await self.conversation.feed(update)
        finally:
            self.hub.wake(str(chat_id))

    async def feed_file(
        self, chat_id: int, client_id: str, update: object, file_id: str, data: bytes
    ) -> None:
        """Handle an update carrying a file (its bytes offered under `file_id`), then show
        the customer's message with what was kept of the file (`settle`), and wake the page."""
        kept: list[StoredFile] = []
        try:
            kept = await self.conversation.feed(update, {file_id: data})
        finally:
            await asyncio.to_thread(self.settle, chat_id, client_id, kept[:1])
            self.hub.wake(str(chat_id))

    def echo(
        self,
        chat_id: int,
        client_id: str,
        text: str,
        file: dict[str, str] | None = None,
    ) -> None:
        """Write the customer's own message (a text, or a file's kind and name) to the
        conversation (stream.py's doc); once. A file's is held until the bot has kept the file
        (`settle`): the page then shows the photo itself; what the bot answers meanwhile waits
        behind it (the chat's order holds), and if this process stops before, it shows after
        ECHO_HOLD as the file's name."""
        now = self.clock()
        echo = WebEcho(text=text)
        if file is not None:
            echo.file = EchoFile.model_validate(file)
        held = file is not None
        with self.sessions() as session:
            try:
                session.execute(
                    insert(OutboxMessage).values(
                        channel=WEB,
                        recipient=str(chat_id),
                        kind=ECHO_KIND,
                        payload=payloads.dump(echo),
                        status="pending" if held else "sent",
                        attempts=0,
                        next_attempt_at=now + ECHO_HOLD if held else now,
                        created_at=now,
                        sent_at=None if held else now,
                        dedupe_key=_echo_key(chat_id, client_id),
                    )
                )
                session.commit()
            except IntegrityError:
                session.rollback()  # sent again by the page: shown once

    def settle(self, chat_id: int, client_id: str, kept: list[StoredFile]) -> None:
        """The file's message handled: its echo (held by `echo`) shown, with where the kept
        file and its thumbnail are (served by `file_of`, never sent to the page as such).
        An echo that already names its file (a retry of the same upload) is left as it is;
        one shown already as a name (the bot took longer than ECHO_HOLD) gets its file for
        the next time the page is opened."""
        now = self.clock()
        with self.sessions() as session:
            row = session.scalar(
                select(OutboxMessage).where(
                    OutboxMessage.dedupe_key == _echo_key(chat_id, client_id)
                )
            )
            if row is None:
                return
            echo = payloads.readable(row)
            if kept and isinstance(echo, WebEcho) and echo.stored is None:
                stored = kept[0]
                echo.stored = KeptFile(
                    key=stored.storage_key, thumb=stored.thumbnail_key, mime=stored.mime
                )
                row.payload = payloads.dump(echo)
            if row.status == "pending":
                row.status = "sent"
                row.sent_at = now
                row.next_attempt_at = now
            session.commit()

    def prove(self, chat_id: int, order_no: str, language: str) -> bool | None:
        """The chat opened a valid link for `order_no`: prove it the order's (in the core:
        tickets/chat_links.py). False when it cannot be (the order gone, the order's customer
        followed from elsewhere): the bot then asks for the proof as without a link. None
        when the chat is another customer's with a history: the link needs a chat of its
        own."""
        with self.sessions() as session:
            try:
                proved = prove_by_link(
                    session,
                    web_chat_id=chat_id,
                    order_no=order_no,
                    name=self.conversation.name,
                    language=language,
                )
            except (NotFound, LinkedElsewhere):
                session.rollback()
                return False
            if proved is None:
                session.rollback()
                return None
            session.commit()
        return True

    def file_of(self, chat_id: int, row_id: int, thumb: bool = False) -> tuple[Path, str] | None:
        """The file an answer to this chat carries (an agent's photo or PDF), or the customer's
        own photo (its `thumb`nail, or the photo), with its type; None when there is no such
        message, or it is another chat's (the same answer for both: a row id tells nothing of
        anyone else's conversation)."""
        with self.sessions() as session:
            row = session.get(OutboxMessage, row_id)
            if row is None or row.channel != WEB or row.recipient != str(chat_id):
                return None
            message = payloads.readable(row)
            if isinstance(message, WebEcho):
                return self._own_photo(message, thumb)
            if thumb or not isinstance(message, Reply) or message.attachment is None:
                return None
            key = message.attachment.storage_key
            mime = session.scalar(
                select(Attachment.mime).where(Attachment.storage_key == key).limit(1)
            )
        path = Path(self.settings.media_dir) / key
        if not path.is_file():
            # The page shows a broken image: a delivery error, as Telegram's for a file gone
            # from the store (bot/delivery.py).
            log.warning("web chat: outbox row %s's file %s is missing from the store", row_id, key)
            instruments().delivery_errors.labels(WEB, "missing_file").inc()
            return None
        return path, mime or "application/octet-stream"

    def _own_photo(self, echo: WebEcho, thumb: bool) -> tuple[Path, str] | None:
        """The customer's photo an echo names (`settle`), or its thumbnail (a JPEG)."""
        if echo.file is None or echo.file.kind != "photo" or echo.stored is None:
            return None
        key = echo.stored.thumb if thumb else echo.stored.key
        if key is None:
            return None
        try:
            path = AttachmentStore(Path(self.settings.media_dir)).path(key)
        except InvalidInput:
            return None
        if not path.is_file():
            return None
        return path, "image/jpeg" if thumb else (echo.stored.mime or "image/jpeg")

    def render(self, row: Row) -> dict[str, Any] | None:
        """What the page shows for one outbox row (None: nothing)."""
        try:
            message = payloads.load(channel=WEB, kind=row.kind, data=row.payload)
        except ValueError:  # pydantic's ValidationError included: a row we can't read
            log.warning("web chat: outbox %s unreadable, not shown", row.id, exc_info=True)
            # Counted as Telegram's rows that cannot be sent are (bot/delivery.py).
            instruments().delivery_errors.labels(WEB, "unreadable").inc()
            return None
        if isinstance(message, WebEcho):
            mine: dict[str, Any] = {"type": "mine", "text": message.text}
            file = message.file
            if file is not None:
                mine["file"] = {"kind": file.kind, "name": file.name}
                if file.kind == "photo" and message.stored is not None and message.stored.thumb:
                    # Shown small; a tap opens the photo (both for this chat only: `file_of`).
                    mine["file"]["thumb"] = f"{PREFIX}/files/{row.id}/thumb"
                    mine["file"]["url"] = f"{PREFIX}/files/{row.id}"
            return mine
        if isinstance(message, BotAnswer):
            # Its parameters are the Bot API's JSON (no aiogram here: the port's module doc).
            params = message.params
            if message.method == "sendMessage":
                return {
                    "type": "bot",
                    "id": row.id,
                    "html": _html(str(params.get("text") or ""), params.get("parse_mode")),
                    **_markup(params.get("reply_markup")),
                }
            if message.method == "editMessageReplyMarkup":
                return {
                    "type": "markup",
                    "target": int(params["message_id"]),
                    "buttons": _markup(params.get("reply_markup")).get("buttons", []),
                }
            return None
        if not isinstance(message, CustomerMessage):
            return None
        attachment = message.attachment if isinstance(message, Reply) else None
        if not message.text and attachment is None:
            # A message to the customer with nothing in it (a row of an older shape): the page
            # shows nothing, and it is counted as a row that cannot be shown.
            log.warning("web chat: outbox %s has nothing to show", row.id)
            instruments().delivery_errors.labels(WEB, "unreadable").inc()
            return None
        event: dict[str, Any] = {
            "type": "bot",
            "id": row.id,
            "html": _html(message.text or "", message.parse_mode),
            **_markup(self.conversation.markup(message, row.ticket_id)),
        }
        if attachment is not None:
            event["file"] = {"url": f"{PREFIX}/files/{row.id}", "kind": attachment.kind}
        return event


def _html(text: str, parse_mode: Any) -> str:
    """Telegram HTML as it is (the page keeps only Telegram's tags); plain text escaped."""
    return text if parse_mode == "HTML" else html.escape(text)


def _markup(markup: Any) -> dict[str, Any]:
    """A Telegram keyboard as the page draws it: inline buttons (a press sends their data, a
    link opens), a reply keyboard (a press sends its text; a contact request has no web
    equivalent: the customer types the digits), or the keyboard removed."""
    if not isinstance(markup, dict):
        return {}
    if "inline_keyboard" in markup:
        rows = [
            [
                {"text": b.get("text", ""), "data": b.get("callback_data"), "url": b.get("url")}
                for b in row
                if b.get("callback_data") or b.get("url")
            ]
            for row in markup["inline_keyboard"]
        ]
        return {"buttons": [r for r in rows if r]}
    if "keyboard" in markup:
        rows = [
            [b.get("text", "") for b in row if not b.get("request_contact")]
            for row in markup["keyboard"]
        ]
        return {"keyboard": [r for r in rows if r]}
    if markup.get("remove_keyboard"):
        return {"keyboard": []}
    return {}


# ---------------------------------------------------------------- requests


def _chat(request: Request) -> WebChat:
    chat: WebChat = request.app.state.web_chat
    return chat


def _language(request: Request) -> str:
    chosen = request.cookies.get(identity.LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return str(chosen)
    return resolve_language(request.headers.get("accept-language"))


def _session(request: Request) -> int | None:
    return identity.chat_of(_chat(request).secret, request.cookies.get(identity.COOKIE))


def _same_site(request: Request) -> bool:
    """Whether the request comes from this site's own page (module doc)."""
    origin = request.headers.get("origin")
    if origin is None:
        # Browsers send Origin on every cross-site POST; without one, a fetch metadata header
        # (when sent) must say same-origin.
        return request.headers.get("sec-fetch-site") in (None, "same-origin")
    own = {
        f"{request.url.scheme}://{request.headers.get('host', '')}",
        _chat(request).settings.public_url.rstrip("/"),
    }
    return origin.rstrip("/") in own


def _refusal(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _guard(
    request: Request, content_type: str = "application/json"
) -> tuple[int, JSONResponse | None]:
    """The chat of a request (JSON, or the upload's form), or the refusal: a foreign site,
    another body, no session, too many."""
    if not _same_site(request):
        return 0, _refusal(403, "cross-site request refused")
    if request.headers.get("content-type", "").split(";")[0].strip() != content_type:
        return 0, _refusal(
            415, "send JSON" if content_type == "application/json" else "send a form"
        )
    chat_id = _session(request)
    if chat_id is None:
        return 0, _refusal(401, "open /chat first")
    if not _chat(request).limits.message(chat_id, client_address(request)):
        return 0, _refusal(429, "too many messages: wait a minute")
    return chat_id, None


def _set_session(response: Response, chat: WebChat, chat_id: int) -> None:
    response.set_cookie(
        identity.COOKIE,
        identity.session_cookie(chat.secret, chat_id),
        max_age=chat.settings.web_chat_session_days * 86400,
        httponly=True,
        samesite="lax",
        secure=chat.settings.public_url.startswith("https://"),
        path=PREFIX,
    )


@router.get("", response_class=HTMLResponse)
async def page(request: Request) -> Response:
    """The chat page; a browser without a session gets one. With a chat link (module doc),
    the chat proved for its order first."""
    chat = _chat(request)
    chat_id = _session(request)
    if chat_id is None and not chat.limits.sessions_per_address.allow(client_address(request)):
        return HTMLResponse("Too many new chats from this address: try again later.", 429)
    language = _language(request)
    link = request.query_params.get(LINK_PARAM)
    if link is not None:
        return await _open_link(request, chat, chat_id or identity.new_chat_id(), link, language)
    texts = {
        lang: {
            # Placeholders kept for the page to fill in ({name}, {reason}).
            key: chat.conversation.plain(lang, f"web.{key}", name="{name}", reason="{reason}")
            for key in PAGE_TEXTS
        }
        for lang in LANGUAGES
    }
    body = chat.env.get_template("chat.html").render(
        language=language,
        texts=texts,
        t=texts[language],
        shop=chat.settings.shop_name,
        max_upload=chat.settings.max_upload_bytes,
    )
    response = HTMLResponse(body)
    # Renewed on every visit: the session lasts its days after the last use.
    _set_session(response, chat, chat_id if chat_id is not None else identity.new_chat_id())
    response.headers["Cache-Control"] = "no-store"
    return response


async def _open_link(
    request: Request, chat: WebChat, chat_id: int, link: str, language: str
) -> Response:
    """A chat link opened (module doc)."""
    try:
        order_no = read_token(chat.secret, link[: TOKEN_MAX + 1], chat.clock())
    except LinkRefused as exc:
        body = chat.env.get_template("link.html").render(
            language=language,
            t={
                key: chat.conversation.plain(language, f"web.{key}")
                for key in ("title", f"link_{exc.reason}", "link_prove", "link_open")
            },
            reason=exc.reason,
            shop=chat.settings.shop_name,
        )
        # Gone for good (expired), or never valid (tampered): neither is worth retrying.
        response: Response = HTMLResponse(body, 410 if exc.reason == "expired" else 400)
        response.headers["Cache-Control"] = "no-store"
        return response
    if await asyncio.to_thread(chat.prove, chat_id, order_no, language) is None:
        # The browser's chat is another customer's: the link opens in a new one (theirs is
        # kept: proving their order brings it back).
        if not chat.limits.sessions_per_address.allow(client_address(request)):
            return HTMLResponse("Too many new chats from this address: try again later.", 429)
        chat_id = identity.new_chat_id()
        await asyncio.to_thread(chat.prove, chat_id, order_no, language)
    # The request for the order begins as from a Telegram deep link: proved, the bot goes
    # straight to the kind. Its id comes from the link, so opening it again (a reload) starts
    # nothing twice.
    client_id = "link-" + hashlib.sha256(link.encode()).hexdigest()[:40]
    update = chat.updates(chat_id, language).text(client_id, f"/start {order_no}", chat.clock())
    await chat.feed(chat_id, update)
    response = RedirectResponse(PREFIX, status_code=303)
    _set_session(response, chat, chat_id)
    response.headers["Cache-Control"] = "no-store"
    return response


async def _body(request: Request, model: type[M]) -> M | JSONResponse:
    """The request's JSON as `model`, read after the guard (a foreign site's body is never
    parsed), or a 422 naming the field."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        return JSONResponse(
            {"detail": jsonable_encoder(exc.errors(include_url=False, include_input=False))},
            status_code=422,
        )


@router.post("/send")
async def send(request: Request) -> Response:
    """A text from the page, handled as the bot handles a Telegram message."""
    chat_id, refused = _guard(request)
    if refused is not None:
        return refused
    body = await _body(request, TextIn)
    if isinstance(body, JSONResponse):
        return body
    chat = _chat(request)
    await asyncio.to_thread(chat.echo, chat_id, body.id, body.text)
    update = chat.updates(chat_id, _language(request)).text(body.id, body.text, chat.clock())
    await chat.feed(chat_id, update)
    return JSONResponse({"ok": True})


@router.post("/press")
async def press(request: Request) -> Response:
    """A button press from the page, handled as the bot handles Telegram's."""
    chat_id, refused = _guard(request)
    if refused is not None:
        return refused
    body = await _body(request, PressIn)
    if isinstance(body, JSONResponse):
        return body
    chat = _chat(request)
    updates = chat.updates(chat_id, _language(request))
    await chat.feed(chat_id, updates.press(body.id, body.data, body.message, chat.clock()))
    return JSONResponse({"ok": True})


def file_kind(mime: str) -> str:
    """What a file is to the bot, from the type the browser says: a photo (checked to be a
    real image all the same: bot/media.py), a video, or a document."""
    if mime.startswith("image/"):
        return "photo"
    if mime.startswith("video/"):
        return "video"
    return "document"


@router.post("/upload")
async def upload(request: Request) -> Response:
    """A file from the page (module doc), handled as the bot handles a Telegram photo, video
    or document: the same checks, the same answers."""
    chat_id, refused = _guard(request, "multipart/form-data")
    if refused is not None:
        return refused
    try:
        # One file and its two short fields: anything more is refused before it is kept.
        form = await request.form(max_files=1, max_fields=2, max_part_size=1024)
    except HTTPException as exc:
        if exc.status_code == 413:
            raise  # over the upload limit (api/guard.py): answered 413
        return _refusal(400, "send the form with one file: id, group, file")
    try:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            body = UploadIn.model_validate(fields)
        except ValidationError as exc:
            return JSONResponse(
                {"detail": jsonable_encoder(exc.errors(include_url=False, include_input=False))},
                status_code=422,
            )
        sent = form.get("file")
        if not isinstance(sent, UploadFile):
            return _refusal(422, "no file")
        data = await sent.read()
        mime = (sent.content_type or "application/octet-stream")[:100]
        # The texts of the form no pattern checks (api/inputs.py leaves uploads alone).
        name = (sent.filename or "").replace("\x00", "")[:200]
        mime = mime.replace("\x00", "")
    finally:
        await form.close()
    if not data:
        return _refusal(422, "the file is empty")
    chat = _chat(request)
    kind = file_kind(mime)
    await asyncio.to_thread(chat.echo, chat_id, body.id, "", {"kind": kind, "name": name})
    update, file_id = chat.updates(chat_id, _language(request)).file(
        body.id,
        kind=kind,
        size=len(data),
        name=name,
        mime=mime,
        group=body.group,
        now=chat.clock(),
    )
    await chat.feed_file(chat_id, body.id, update, file_id, data)
    return JSONResponse({"ok": True})


@router.post("/language")
async def language(request: Request) -> Response:
    """The page's language switch: the page's words, and the bot's until the customer picks
    one with /language (as Telegram's language does)."""
    if not _same_site(request):
        return _refusal(403, "cross-site request refused")
    body = await _body(request, LanguageIn)
    if isinstance(body, JSONResponse):
        return body
    response = JSONResponse({"ok": True})
    response.set_cookie(
        identity.LANGUAGE_COOKIE, body.language, max_age=365 * 86400, samesite="lax", path=PREFIX
    )
    return response


@router.post("/forget")
async def forget(request: Request) -> Response:
    """Log out: this browser forgets its session (a shared or borrowed device). The
    conversation stays the customer's: proving the order again, from any browser, brings
    their requests back (tickets/customers.py)."""
    if not _same_site(request):
        return _refusal(403, "cross-site request refused")
    response = JSONResponse({"ok": True})
    response.delete_cookie(identity.COOKIE, path=PREFIX)
    return response


@router.get("/events")
async def events(request: Request) -> Response:
    """The conversation as server-sent events, resumed after `Last-Event-ID`."""
    chat_id = _session(request)
    if chat_id is None:
        return _refusal(401, "open /chat first")
    chat = _chat(request)
    given = request.headers.get("last-event-id") or request.query_params.get("after")
    after = int(given) if given and given.isdigit() and len(given) < 20 else None
    return StreamingResponse(
        chat.hub.events(str(chat_id), after, chat.render),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/files/{row_id}")
async def answer_file(
    row_id: Annotated[int, FastPath(ge=1, le=2**63 - 1)], request: Request
) -> Response:
    """A file an agent's answer carries, or the customer's own photo, for the page's own
    conversation only."""
    return await _file(request, row_id, thumb=False)


@router.get("/files/{row_id}/thumb")
async def own_thumbnail(
    row_id: Annotated[int, FastPath(ge=1, le=2**63 - 1)], request: Request
) -> Response:
    """The thumbnail of a photo the customer sent (made once, when the photo was kept:
    tickets/storage.py), for the page's own conversation only."""
    return await _file(request, row_id, thumb=True)


async def _file(request: Request, row_id: int, *, thumb: bool) -> Response:
    chat_id = _session(request)
    if chat_id is None:
        return _refusal(401, "open /chat first")
    found = await asyncio.to_thread(_chat(request).file_of, chat_id, row_id, thumb)
    if found is None:
        return _refusal(404, "no such file")
    path, mime = found
    return FileResponse(path, media_type=mime, headers={"Cache-Control": "private, max-age=3600"})


def _echo_key(chat_id: int, client_id: str) -> str:
    return f"web-echo:{chat_id}:{client_id}"


def install_chat(app: FastAPI, conversation: Conversation) -> None:
    """Add the web chat to the app (module doc), talking through the bot's `conversation`
    (api/chat/port.py), which the composition root builds."""
    app.state.web_chat = WebChat(app, conversation)
    app.include_router(router)


__all__ = ["install_chat"]
