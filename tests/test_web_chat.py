"""The web chat (/chat) through the real HTTP app: a customer without Telegram talks to the same
bot from a page, on the real test database; the same intake runs on both channels. Over 500
lines as one file: one page's conversation and the two-channel fixtures its tests share."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiogram import Bot, Dispatcher
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.i18n import Texts
from bot.keyboards import ItemCb, KindCb, MenuCb, NavCb, ReasonCb
from tests.conftest import Api
from tests.factories import NOW, order_json
from tests.fakes.telegram import Customer, buttons_of, jpeg, texts_of
from tests.fakes.web_page import Said, WebPage, fast_streams
from tickets.customers import is_web_chat
from tickets.models import Customer as CustomerRow
from tickets.models import OutboxMessage, Ticket
from tickets.orders.store import upsert_order
from tickets.schemas import OrderIn
from tickets.storage import AttachmentStore

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")

TEXTS = Texts.load()
METRICS_TOKEN = "scrape-" + "w" * 24


def t(lang: str, key: str, **values: Any) -> str:
    return TEXTS.get(lang, key, **values)


@pytest.fixture
def app(settings: Any, engine: Any, sessions: sessionmaker[Session], scripts: Any) -> Any:
    """The app as `serve` builds it with the web chat on (its channel delivered) and the bot's
    channels too (as when a token is set)."""
    from api.app import create_app
    from tickets.messages.outbox import DEFAULT_CHANNELS

    return fast_streams(
        create_app(
            settings,
            engine=engine,
            sessions=sessions,
            scripts=scripts,
            clock=lambda: NOW,
            channels=DEFAULT_CHANNELS | {"web"},
        )
    )


def add_unlinked(sessions: sessionmaker[Session], order_no: str, status: str = "delivered") -> None:
    """An order whose customer has a phone but no chat with us yet."""
    data = order_json(order_no, status=status)
    data["customer"] = {"name": "Emma", "phone": "+86 138-0013-8000"}
    if status == "paid":
        data["shipped_at"] = data["delivered_at"] = None
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=NOW)
        s.commit()


class Chat(Protocol):
    language: str

    async def text(self, text: str) -> Said: ...

    async def press(self, data: Any) -> Said: ...

    async def photo(self, data: bytes) -> Said: ...


class TelegramChat:
    """A Telegram customer (tests/fakes/telegram.py)."""

    def __init__(self, customer: Customer, language: str) -> None:
        self.customer = customer
        self.language = language

    async def text(self, text: str) -> Said:
        sent = await self.customer.text(text)
        return Said(texts_of(sent), buttons_of(sent))

    async def press(self, data: Any) -> Said:
        sent = await self.customer.press(data)
        return Said(texts_of(sent), buttons_of(sent))

    async def photo(self, data: bytes) -> Said:
        sent = await self.customer.photo(data)
        return Said(texts_of(sent), buttons_of(sent))


class WebChat(WebPage):
    """The page, sending one photo as its picker does (no album: answered at once)."""

    async def photo(self, data: bytes) -> Said:
        r = self.post_file(data)
        assert r.status_code == 200, r.text
        events = self.read()
        assert events[0]["type"] == "mine" and events[0]["file"]["kind"] == "photo"
        return self.said(events[1:])


@pytest.fixture(params=["telegram", "web"])
def channel(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def talk(channel: str, app: Any, dp: Dispatcher, bot: Bot) -> Iterator[Any]:
    """A new customer on `channel`, in the language asked: the same conversation either way."""
    clients: list[TestClient] = []

    def make(language: str) -> Chat:
        if channel == "telegram":
            return TelegramChat(Customer(dp, bot, user_id=6001, language=language), language)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return WebChat(client, language)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.mark.parametrize("language", ["en", "zh-CN"])
async def test_a_new_customer_proves_an_order_and_files_a_refund_on_either_channel(
    talk: Any, channel: str, language: str, sessions: sessionmaker[Session]
) -> None:
    add_unlinked(sessions, "T2002", status="paid")
    me: Chat = talk(language)

    said = await me.text("/start T2002")  # the shop's order page links here
    # The web chat's wording has no Telegram contact button to speak of.
    ask_proof = "intake.ask_proof_web" if channel == "web" else "intake.ask_proof"
    assert t(language, ask_proof) in said.texts
    said = await me.text("1111")
    assert said.texts == [t(language, "intake.proof_failed", left=2)]
    said = await me.text("8000")
    assert said.texts[0] == t(language, "intake.proof_ok", order_no="T2002")
    assert KindCb(kind="refund_only").pack() in said.buttons
    assert KindCb(kind="return_refund").pack() not in said.buttons  # not shipped

    await me.press(KindCb(kind="refund_only"))
    said = await me.press(ItemCb(index=2, delta=1))
    assert ItemCb(index=2, delta=-1).pack() in said.buttons  # the quantities shown again
    await me.press(NavCb(action="done"))
    await me.press(ReasonCb(reason="changed_mind"))
    said = await me.press(NavCb(action="skip"))
    assert said.texts == [t(language, "intake.ask_evidence", count=0)]
    said = await me.press(NavCb(action="done"))
    assert said.texts and NavCb(action="confirm").pack() in said.buttons
    said = await me.press(NavCb(action="confirm"))

    with sessions() as s:
        case = s.scalars(select(Ticket)).one()
        assert case.number in said.texts[0]
        assert said.texts[-1] == t(language, "menu.prompt")
        assert (case.kind, case.status, case.language) == (
            "refund_only",
            "refund_pending",
            language,
        )
        assert case.channel == channel
        owner = s.get(CustomerRow, case.customer_id)
        assert owner is not None and owner.name == "Emma"
        if channel == "web":
            assert owner.telegram_user_id is None and is_web_chat(owner.web_chat_id)
        else:
            assert owner.telegram_user_id == 6001 and owner.web_chat_id is None
        # The placeholder made on first contact was merged into the order's customer.
        assert s.scalar(select(CustomerRow.id).where(CustomerRow.name == "Web chat")) is None


# ---------------------------------------------------------------- the web chat itself


def web_page(app: Any, language: str = "en") -> WebPage:
    client = TestClient(app)
    return WebPage(client, language)


async def test_an_agents_answer_reaches_the_page_once_even_across_reconnects(
    app: Any, api: Api, sessions: sessionmaker[Session]
) -> None:
    add_unlinked(sessions, "W100")
    page = web_page(app, "zh-CN")
    await page.text("/start W100")
    await page.text("8000")
    said = await page.press(KindCb(kind="complaint"))
    reason = next(b for b in said.buttons if b.startswith("r:"))
    await page.press(reason)
    await page.text("包裹里少了一件")
    await page.press(NavCb(action="done"))
    said = await page.press(NavCb(action="confirm"))
    with sessions() as s:
        case = s.scalars(select(Ticket)).one()
    assert case.number in said.texts[0]
    last_before = page.last
    r = api.post(f"/api/v1/tickets/{case.number}/replies", json={"text": "We are on it <3"})
    assert r.status_code == 201, r.text
    assert r.json()["delivery"]["channel"] == "web"
    # The page was closed meanwhile: it reads from where it was, and gets the answer once.
    answer = page.read()
    assert [e["html"] for e in answer if e["type"] == "bot"] == ["We are on it &lt;3"]
    assert page.read() == []
    # A reconnect from the same place (the event was lost on the way) gets it again, once.
    again = page.read(after=last_before)
    assert [e["html"] for e in again if e["type"] == "bot"] == ["We are on it &lt;3"]
    with sessions() as s:
        row = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.ticket_id == case.id)
            .order_by(OutboxMessage.id.desc())
        ).first()
        assert row is not None and (row.channel, row.status) == ("web", "sent")


async def test_an_agents_photo_opens_in_the_page_and_only_there(
    app: Any, api: Api, sessions: sessionmaker[Session]
) -> None:
    # The page shows an agent's photo from /chat/files/{row}: it was a broken image (no such
    # route). Only the page's own conversation gets it.
    add_unlinked(sessions, "W300")
    page = web_page(app, "en")
    await page.text("/start W300")
    await page.text("8000")
    said = await page.press(KindCb(kind="complaint"))
    await page.press(next(b for b in said.buttons if b.startswith("r:")))
    await page.text("one item missing")
    await page.press(NavCb(action="done"))
    await page.press(NavCb(action="confirm"))
    with sessions() as s:
        number = s.scalars(select(Ticket.number)).one()
    r = api.post(
        f"/api/v1/tickets/{number}/replies/files",
        data={"text": "what we packed"},
        files=[("files", ("packed.jpg", jpeg("green"), "image/jpeg"))],
    )
    assert r.status_code == 201, r.text
    [shown] = [e["file"] for e in page.read() if e["type"] == "bot" and e.get("file")]
    assert shown["kind"] == "photo"
    got = page.client.get(shown["url"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(got.content)) as img:
        assert img.size[0] > 0 and not img.getexif()
    # Another customer's page, and no session at all, get nothing.
    stranger = web_page(app, "en")
    assert stranger.client.get(shown["url"]).status_code == 404
    with TestClient(app) as nobody:
        assert nobody.get(shown["url"]).status_code == 401
    assert page.client.get("/chat/files/99999999").status_code == 404


async def test_a_photo_with_a_long_text_is_one_message_in_the_page(
    app: Any, api: Api, sessions: sessionmaker[Session]
) -> None:
    # Telegram's caption limit (1024) is Telegram's: the page shows the photo with its whole
    # text, as one message.
    add_unlinked(sessions, "W301")
    page = web_page(app, "en")
    await page.text("/start W301")
    await page.text("8000")
    said = await page.press(KindCb(kind="complaint"))
    await page.press(next(b for b in said.buttons if b.startswith("r:")))
    await page.text("one item missing")
    await page.press(NavCb(action="done"))
    await page.press(NavCb(action="confirm"))
    with sessions() as s:
        number = s.scalars(select(Ticket.number)).one()
    text = "How to pack it. " * 70  # 1120 characters
    r = api.post(
        f"/api/v1/tickets/{number}/replies/files",
        data={"text": text},
        files=[("files", ("packed.jpg", jpeg("green"), "image/jpeg"))],
    )
    assert r.status_code == 201, r.text
    [shown] = [e for e in page.read() if e["type"] == "bot" and e.get("file")]
    assert shown["html"] == text.strip() and shown["file"]["kind"] == "photo"


def _delivery_errors(client: TestClient, error: str) -> float:
    """The web chat's delivery errors of one kind, as a shop's Prometheus scrapes them."""
    from prometheus_client.parser import text_string_to_metric_families

    r = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200, r.text
    return sum(
        s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
        if s.name == "aftersales_delivery_errors_total"
        and s.labels == {"channel": "web", "error": error}
    )


async def test_what_the_page_cannot_show_is_counted_in_metrics(
    app: Any, api: Api, sessions: sessionmaker[Session], settings: Any
) -> None:
    """A web chat's delivery errors are in /metrics as Telegram's are: a message the page
    cannot show (skipped) and an agent's file gone from the store (a broken image)."""
    app.state.settings = app.state.settings.model_copy(update={"metrics_token": METRICS_TOKEN})
    scraper = TestClient(app)
    unreadable, missing = (_delivery_errors(scraper, e) for e in ("unreadable", "missing_file"))
    add_unlinked(sessions, "W400")
    page = web_page(app, "en")
    await page.text("/start W400")
    await page.text("8000")
    said = await page.press(KindCb(kind="complaint"))
    await page.press(next(b for b in said.buttons if b.startswith("r:")))
    await page.text("one item missing")
    await page.press(NavCb(action="done"))
    await page.press(NavCb(action="confirm"))
    with sessions() as s:
        case = s.scalars(select(Ticket)).one()
        recipient = s.scalars(
            select(OutboxMessage.recipient).where(OutboxMessage.channel == "web")
        ).first()
        assert recipient is not None
        # An edit that names no message (an older version's row, say): nothing to show.
        s.add(
            OutboxMessage(
                channel="web",
                recipient=recipient,
                ticket_id=case.id,
                kind="reply",
                payload={"method": "editMessageReplyMarkup", "params": {}},
                next_attempt_at=NOW,
            )
        )
        s.commit()
    assert page.read() == []  # skipped: the page goes on
    assert _delivery_errors(scraper, "unreadable") == unreadable + 1

    r = api.post(
        f"/api/v1/tickets/{case.number}/replies/files",
        data={"text": "what we packed"},
        files=[("files", ("packed.jpg", jpeg("green"), "image/jpeg"))],
    )
    assert r.status_code == 201, r.text
    [shown] = [e["file"] for e in page.read() if e["type"] == "bot" and e.get("file")]
    assert page.client.get(shown["url"]).status_code == 200
    assert _delivery_errors(scraper, "missing_file") == missing
    for stored in Path(settings.media_dir).rglob("*"):
        if stored.is_file():
            stored.unlink()  # the store lost it (a disk replaced, a backup without media)
    assert page.client.get(shown["url"]).status_code == 404
    assert _delivery_errors(scraper, "missing_file") == missing + 1
    # Another chat's row is no error of delivery: nothing counted.
    assert web_page(app, "en").client.get(shown["url"]).status_code == 404
    assert _delivery_errors(scraper, "missing_file") == missing + 1


async def test_the_conversation_is_there_after_closing_the_tab(app: Any) -> None:
    page = web_page(app, "en")
    said = await page.text("/start")
    assert said.texts
    # A new tab of the same browser (its cookie) shows the conversation so far, in order.
    history = page.read(after=None)
    assert history[0] == {"type": "mine", "text": "/start"}
    assert [e["html"] for e in history if e["type"] == "bot"] == said.texts


async def test_two_customers_never_see_each_other(
    app: Any, sessions: sessionmaker[Session]
) -> None:
    add_unlinked(sessions, "W200")
    alice = web_page(app, "en")
    mallory = web_page(app, "en")
    await alice.text("/start W200")
    await alice.text("8000")
    alices_message = max(alice.buttons)
    assert mallory.read(after=None) == []
    # Mallory names Alice's message in a press: she acts only as herself.
    r = mallory.client.post(
        "/chat/press",
        json={
            "id": "mallory-0001",
            "data": KindCb(kind="refund_only").pack(),
            "message": alices_message,
        },
    )
    assert r.status_code == 200
    seen = mallory.read()
    assert all("W200" not in json.dumps(e, ensure_ascii=False) for e in seen)
    assert all(e["type"] != "mine" or e["text"] != "8000" for e in mallory.read(after=None))
    # Mallory's cookie with Alice's id but not her signature is no session.
    chat_id = alice.client.cookies["aftersales_chat"].split(".")[0]
    with TestClient(app, cookies={"aftersales_chat": f"{chat_id}.forged"}) as forged:
        with forged.stream("GET", "/chat/events") as r:
            assert r.status_code == 401
        r = forged.post("/chat/send", json={"id": "forged-0001", "text": "hello"})
        assert r.status_code == 401


async def test_cross_site_and_non_json_posts_are_refused(app: Any) -> None:
    page = web_page(app)
    r = page.post_text("hi", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = page.client.post(
        "/chat/send",
        content="id=abcdefgh&text=hi",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert page.post_text("hi", headers={"Origin": "http://testserver"}).status_code == 200
    with TestClient(app) as stranger:
        assert stranger.post("/chat/send", json={"id": "abcdefgh", "text": "x"}).status_code == 401


async def test_a_session_sending_too_fast_is_slowed(
    settings: Any, engine: Any, sessions: sessionmaker[Session], scripts: Any
) -> None:
    from api.app import create_app

    settings.web_chat_messages_per_minute = 2
    app = create_app(settings, engine=engine, sessions=sessions, scripts=scripts, clock=lambda: NOW)
    page = web_page(fast_streams(app))
    assert [page.post_text("hi").status_code for _ in range(3)] == [200, 200, 429]


async def test_a_shop_that_turns_the_web_chat_off_gets_404_everywhere(
    settings: Any, engine: Any, sessions: sessionmaker[Session], scripts: Any
) -> None:
    from api.app import create_app

    settings.web_chat = False
    app = create_app(settings, engine=engine, sessions=sessions, scripts=scripts, clock=lambda: NOW)
    with TestClient(app) as client:
        assert client.get("/chat").status_code == 404
        assert client.get("/chat/events").status_code == 404
        assert client.post("/chat/send", json={"id": "abcdefgh", "text": "x"}).status_code == 404
        assert client.post("/chat/press", json={}).status_code == 404


@pytest.mark.parametrize("language", ["en", "zh-CN"])
async def test_a_return_needing_a_photo_takes_it_alike_on_either_channel(
    talk: Any, channel: str, language: str, settings: Any, sessions: sessionmaker[Session]
) -> None:
    add_unlinked(sessions, "T2003")
    me: Chat = talk(language)
    await me.text("/start T2003")
    await me.text("8000")
    await me.press(KindCb(kind="return_refund"))
    await me.press(ItemCb(index=0, delta=1))
    await me.press(NavCb(action="done"))
    await me.press(ReasonCb(reason="quality_defect"))
    await me.text("the seam came open")
    # Not a picture, whatever it says it is: refused in words, on both channels.
    said = await me.photo(b"MZ\x90\x00 not a picture")
    assert said.texts == [t(language, "intake.media_not_image")]
    said = await me.photo(jpeg("red", gps=True))
    assert said.texts[0].startswith(t(language, "intake.evidence_ready", count=1))
    said = await me.press(NavCb(action="confirm"))
    with sessions() as s:
        case = s.scalars(select(Ticket)).one()
        assert case.number in said.texts[0]
        assert (case.kind, case.channel) == ("return_refund", channel)
        assert [a.kind for a in case.attachments] == ["photo"]
        with Image.open(
            AttachmentStore(settings.media_dir).path(case.attachments[0].storage_key)
        ) as img:
            assert img.getexif().get_ifd(0x8825) == {}, "location metadata must be stripped"


# ---------------------------------------------------------------- one customer, two chats


async def file_a_complaint(me: Chat, order_no: str, words: str) -> Said:
    """A customer proves `order_no` by the phone's last digits and files a complaint."""
    await me.text(f"/start {order_no}")
    said = await me.text("8000")
    assert said.texts[0] == t(me.language, "intake.proof_ok", order_no=order_no)
    said = await me.press(KindCb(kind="complaint"))
    await me.press(next(b for b in said.buttons if b.startswith("r:")))
    await me.text(words)
    await me.press(NavCb(action="done"))
    return await me.press(NavCb(action="confirm"))


def shown_cases(said: Said) -> list[str]:
    """The case numbers "My requests" lists."""
    return [text.split("</code>")[0].removeprefix("<code>") for text in said.texts[1:]]


def telegram_sends(bot: Bot) -> list[tuple[int, str]]:
    """What the bot sent on Telegram so far: (chat, text)."""
    session = bot.session
    return [
        (int(r.chat_id), str(r.text))
        for r in session.requests  # type: ignore[attr-defined]
        if type(r).__name__ == "SendMessage"
    ]


async def test_a_case_opened_on_the_web_is_followed_in_telegram_by_the_same_customer(
    app: Any, api: Api, dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session]
) -> None:
    add_unlinked(sessions, "X100")
    page = WebChat(TestClient(app), "en")
    said = await file_a_complaint(page, "X100", "the box came crushed")
    with sessions() as s:
        case = s.scalars(select(Ticket)).one()
    assert case.number in said.texts[0] and case.channel == "web"
    # The same person on Telegram proves the order there: one customer, both chats.
    phone = TelegramChat(Customer(dp, bot, user_id=6001, language="en"), "en")
    await phone.text("/start X100")
    said = await phone.text("8000")
    assert said.texts[0] == t("en", "intake.proof_ok", order_no="X100")
    with sessions() as s:
        [emma] = s.scalars(select(CustomerRow)).all()
        assert emma.telegram_user_id == 6001 and is_web_chat(emma.web_chat_id)
    # My requests, on Telegram, shows the web case.
    said = await phone.press(MenuCb(action="mine"))
    assert said.texts[0] == t("en", "cases.header") and shown_cases(said) == [case.number]
    # What they write on Telegram reaches the case.
    said = await phone.text("any news about it?")
    assert said.texts == [t("en", "cases.message_added", case_no=case.number)]
    # The agent's answer reaches them: on the case's own chat, the web page, once.
    r = api.post(f"/api/v1/tickets/{case.number}/replies", json={"text": "A new box is on its way"})
    assert r.status_code == 201, r.text
    assert r.json()["delivery"]["channel"] == "web"
    answer = page.read()
    assert [e["html"] for e in answer if e["type"] == "bot"] == ["A new box is on its way"]
    words = [m["text"] for m in api.get(f"/api/v1/tickets/{case.number}").json()["messages"]]
    assert "any news about it?" in words


async def test_a_case_opened_in_telegram_is_followed_on_the_web_by_the_same_customer(
    app: Any, api: Api, dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session]
) -> None:
    add_unlinked(sessions, "X200")
    phone = TelegramChat(Customer(dp, bot, user_id=6001, language="en"), "en")
    said = await file_a_complaint(phone, "X200", "the colour is wrong")
    with sessions() as s:
        case = s.scalars(select(Ticket)).one()
    assert case.number in said.texts[0] and case.channel == "telegram"
    # The same person on the web chat proves the order there: one customer, both chats.
    page = WebChat(TestClient(app), "en")
    await page.text("/start X200")
    said = await page.text("8000")
    assert said.texts[0] == t("en", "intake.proof_ok", order_no="X200")
    with sessions() as s:
        [emma] = s.scalars(select(CustomerRow)).all()
        assert emma.telegram_user_id == 6001 and is_web_chat(emma.web_chat_id)
    # My requests, on the web, shows the Telegram case.
    said = await page.text("/menu")
    assert MenuCb(action="mine").pack() in said.buttons
    said = await page.press(MenuCb(action="mine"))
    assert said.texts[0] == t("en", "cases.header") and shown_cases(said) == [case.number]
    said = await page.text("I can send a photo")
    assert said.texts == [t("en", "cases.message_added", case_no=case.number)]
    # The agent's answer reaches them: on the case's own chat, Telegram.
    r = api.post(f"/api/v1/tickets/{case.number}/replies", json={"text": "Please do, thanks"})
    assert r.status_code == 201, r.text
    assert r.json()["delivery"]["channel"] == "telegram"
    worker = dp.workflow_data["delivery"]
    await worker.drain()
    assert telegram_sends(bot)[-1] == (6001, "Please do, thanks")
    words = [m["text"] for m in api.get(f"/api/v1/tickets/{case.number}").json()["messages"]]
    assert "I can send a photo" in words
