"""Files from the web chat's page (/chat/upload): photos, several at once or from the camera,
checked and kept exactly as Telegram evidence is (the bot's own media step), through the real
HTTP app on the real test database."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.i18n import Texts
from bot.keyboards import ItemCb, KindCb, NavCb, ReasonCb
from tests.factories import NOW, order_json
from tests.fakes.clock import Clock
from tests.fakes.telegram import colour_of, jpeg
from tests.fakes.web_page import WebPage, fast_streams
from tickets.models import Ticket
from tickets.orders.store import upsert_order
from tickets.schemas import OrderIn
from tickets.storage import AttachmentStore

pytestmark = pytest.mark.usefixtures("db_guard")

TEXTS = Texts.load()


def t(lang: str, key: str, **values: Any) -> str:
    return TEXTS.get(lang, key, **values)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def app(
    settings: Any, engine: Any, sessions: sessionmaker[Session], scripts: Any, clock: Clock
) -> Any:
    from api.app import create_app
    from tickets.messages.outbox import DEFAULT_CHANNELS

    return fast_streams(
        create_app(
            settings,
            engine=engine,
            sessions=sessions,
            scripts=scripts,
            clock=clock,
            channels=DEFAULT_CHANNELS | {"web"},
        )
    )


@pytest.fixture
def page(app: Any, sessions: sessionmaker[Session]) -> Any:
    """A customer on /chat who proved a delivered order (W300) and is at its evidence step."""
    data = order_json("W300", status="delivered")
    data["customer"] = {"name": "Emma", "phone": "+86 138-0013-8000"}
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=NOW)
        s.commit()
    with TestClient(app) as client:
        yield WebPage(client, "en")


async def at_evidence(page: WebPage) -> None:
    await page.text("/start W300")
    await page.text("8000")
    await page.press(KindCb(kind="return_refund"))
    await page.press(ItemCb(index=0, delta=1))
    await page.press(NavCb(action="done"))
    await page.press(ReasonCb(reason="quality_defect"))
    said = await page.text("the zip broke on the first day")
    assert any("Files so far: 0" in text for text in said.texts), said.texts


async def test_photos_picked_together_become_the_cases_evidence_without_their_location(
    page: WebPage, settings: Any, sessions: sessionmaker[Session], clock: Clock
) -> None:
    await at_evidence(page)
    # Three photos picked at once: one answer for the album, as on Telegram.
    said = await page.files(
        jpeg("red", gps=True), jpeg("lime", gps=True), jpeg("blue", gps=True), clock=clock
    )
    assert len(said.texts) == 1 and "3 files" in said.texts[0], said.texts
    await page.press(NavCb(action="done"))
    said = await page.press(NavCb(action="confirm"))
    with sessions() as s:
        case = s.scalars(select(Ticket)).one()
        assert case.number in said.texts[0]
        assert (case.kind, case.channel) == ("return_refund", "web")
        assert [a.kind for a in case.attachments] == ["photo"] * 3
        store = AttachmentStore(settings.media_dir)
        colours = []
        for a in case.attachments:
            with Image.open(store.path(a.storage_key)) as img:
                assert img.getexif().get_ifd(0x8825) == {}, "location metadata must be stripped"
                colours.append(colour_of(img))
        # In the order they were picked (the page sends them so): red, green, blue.
        assert [max(range(3), key=lambda i: c[i]) for c in colours] == [0, 1, 2], colours


async def test_a_file_that_is_no_image_is_refused_in_words_and_nothing_is_kept(
    page: WebPage, clock: Clock
) -> None:
    await at_evidence(page)
    said = await page.files(b"MZ\x90\x00 not a picture", name="evil.jpg", clock=clock)
    assert said.texts == [t("en", "intake.media_not_image")]
    # A real photo after it counts as the first.
    said = await page.files(jpeg("green"), clock=clock)
    assert any("Received, 1 file." in text for text in said.texts), said.texts


async def test_a_photo_over_the_shops_limit_is_refused_with_the_limit(
    settings: Any, engine: Any, sessions: sessionmaker[Session], scripts: Any
) -> None:
    from api.app import create_app

    settings.media_max_photo_bytes = 2048
    clock = Clock(NOW)
    app = fast_streams(
        create_app(settings, engine=engine, sessions=sessions, scripts=scripts, clock=clock)
    )
    big = Image.effect_noise((200, 200), 90).convert("RGB")
    out = io.BytesIO()
    big.save(out, "JPEG", quality=95)
    assert len(out.getvalue()) > 2048
    with TestClient(app) as client:
        page = WebPage(client, "zh-CN")
        said = await page.files(out.getvalue(), clock=clock)
    assert said.texts == [t("zh-CN", "intake.media_too_large", limit_mb=0)]


async def test_uploads_are_bounded_and_refused_from_other_sites_and_strangers(
    settings: Any, engine: Any, sessions: sessionmaker[Session], scripts: Any
) -> None:
    from api.app import create_app

    settings.max_upload_bytes = 1024 * 1024
    app = fast_streams(
        create_app(settings, engine=engine, sessions=sessions, scripts=scripts, clock=lambda: NOW)
    )
    with TestClient(app) as client:
        page = WebPage(client, "en")
        # Over the upload limit: refused before the body is read, nothing shown.
        r = page.post_file(b"\xff" * (1024 * 1024 + 1))
        assert r.status_code == 413
        r = page.post_file(jpeg(), headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        # Two files in one form, or an id the page never makes: refused, nothing handled.
        r = client.post(
            "/chat/upload",
            data={"id": "page-file-0001"},
            files=[
                ("file", ("a.jpg", jpeg(), "image/jpeg")),
                ("file", ("b.jpg", jpeg(), "image/jpeg")),
            ],
        )
        assert r.status_code == 400
        r = client.post(
            "/chat/upload", data={"id": "x"}, files={"file": ("a.jpg", jpeg(), "image/jpeg")}
        )
        assert r.status_code == 422
        assert page.read() == []
    with TestClient(app) as stranger:
        r = stranger.post(
            "/chat/upload", data={"id": "abcdefgh"}, files={"file": ("a.jpg", jpeg(), "image/jpeg")}
        )
        assert r.status_code == 401


async def test_the_customers_own_photo_shows_small_and_opens_for_their_chat_only(
    page: WebPage, app: Any, clock: Clock
) -> None:
    await at_evidence(page)
    big = jpeg("red", size=(1600, 1200), gps=True)
    await page.files(big, name="zip.jpg", clock=clock)
    [mine] = [e for e in page.seen if e["type"] == "mine" and e.get("file")]
    shown = mine["file"]
    assert (shown["kind"], shown["name"]) == ("photo", "zip.jpg")
    # Small: its thumbnail, bounded whatever the photo's size.
    small = page.client.get(shown["thumb"])
    assert small.status_code == 200 and small.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(small.content)) as img:
        assert max(img.size) <= 320 and colour_of(img)[0] > 200
    # A tap: the photo itself, as kept (its location stripped).
    full = page.client.get(shown["url"])
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(full.content)) as img:
        assert img.size == (1600, 1200) and img.getexif().get_ifd(0x8825) == {}
    assert len(small.content) < len(full.content) / 5
    # Another customer's page, and a browser with no session, get nothing; nor an unknown row.
    # (Clients of the same running app: its lifespan is the page's.)
    stranger = WebPage(TestClient(app), "en")
    nobody = TestClient(app)
    for url in (shown["thumb"], shown["url"]):
        assert stranger.client.get(url).status_code == 404
        assert nobody.get(url).status_code == 401
    assert page.client.get("/chat/files/99999999/thumb").status_code == 404
    # A reload shows it the same way.
    again = [e for e in page.read(after=None) if e["type"] == "mine" and e.get("file")]
    assert [e["file"] for e in again] == [shown]


async def test_a_document_or_a_refused_photo_keeps_its_name_only(
    page: WebPage, clock: Clock
) -> None:
    await at_evidence(page)
    await page.files(b"MZ\x90\x00 not a picture", name="evil.jpg", clock=clock)
    await page.files(b"%PDF-1.4\n%%EOF\n", name="receipt.pdf", mime="application/pdf", clock=clock)
    shown = [e["file"] for e in page.seen if e["type"] == "mine" and e.get("file")]
    assert shown == [
        {"kind": "photo", "name": "evil.jpg"},
        {"kind": "document", "name": "receipt.pdf"},
    ]


async def test_a_photo_kept_after_its_message_showed_is_small_on_the_next_visit(
    page: WebPage, app: Any, settings: Any, clock: Clock
) -> None:
    """The bot took longer than the hold (a process stopped mid-file, a slow disk): the page
    showed the name; the photo, kept at last, shows small from the next visit on."""
    from api.chat import ECHO_HOLD

    chat = app.state.web_chat
    chat_id = int(page.client.cookies["aftersales_chat"].split(".")[0])
    await asyncio.to_thread(
        chat.echo, chat_id, "late-photo-01", "", {"kind": "photo", "name": "late.jpg"}
    )
    clock.now += ECHO_HOLD + timedelta(seconds=1)
    assert [e["file"] for e in page.read()] == [{"kind": "photo", "name": "late.jpg"}]
    stored = AttachmentStore(settings.media_dir).store_photo(jpeg("blue"))
    await asyncio.to_thread(chat.settle, chat_id, "late-photo-01", [stored])
    [shown] = [e["file"] for e in page.read(after=None)]
    assert page.client.get(shown["thumb"]).status_code == 200
