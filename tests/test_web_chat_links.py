"""Signed chat links (tickets/chat_links.py): made by the shop's integration or the command,
opening /chat already proved for the order; an expired or tampered one refused with a page
that shows the way on. And the web chat's own wording: no Telegram name, contact or account.
Through the real HTTP app on the real test database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.i18n import Texts
from bot.keyboards import KindCb, MenuCb
from tests.conftest import Api
from tests.factories import NOW, order_json
from tests.fakes.clock import Clock
from tests.fakes.web_page import WebPage, fast_streams
from tickets.chat_links import chat_link, make_token
from tickets.models import Customer as CustomerRow
from tickets.models import Ticket
from tickets.orders.store import upsert_order
from tickets.schemas import OrderIn

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


@pytest.fixture(autouse=True)
def order(sessions: sessionmaker[Session]) -> None:
    """W400: Emma's delivered order; Emma has no chat with us yet."""
    data = order_json("W400", status="delivered")
    data["customer"] = {"name": "Emma", "phone": "+86 138-0013-8000"}
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=NOW)
        s.commit()


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def open_link(app: Any, url: str, language: str) -> tuple[TestClient, Any]:
    """A new browser opening a link (the shop's order page's button)."""
    client = TestClient(app)
    client.headers["Accept-Language"] = language
    return client, client.get(path_of(url), follow_redirects=False)


@pytest.mark.parametrize("language", ["en", "zh-CN"])
async def test_the_shops_link_opens_the_chat_proved_for_the_order(
    app: Any, api: Api, settings: Any, sessions: sessionmaker[Session], language: str
) -> None:
    r = api.as_("shop").get("/api/v1/orders/w400/chat-link")
    assert r.status_code == 200, r.text
    made = r.json()
    assert made["order_no"] == "W400"
    assert made["url"].startswith(f"{settings.public_url}/chat?link=")
    hours = settings.web_chat_link_hours
    assert made["expires_at"] == (NOW + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")

    client, r = open_link(app, made["url"], language)
    # On to the page: the token never stays in the address bar.
    assert (r.status_code, r.headers["location"]) == (303, "/chat")
    page = WebPage(client, language, new=False)
    history = page.history
    texts = [e["html"] for e in history if e["type"] == "bot"]
    # No digits asked: straight to what the customer needs for the order.
    assert t(language, "menu.greeting_short_web", shop=settings.shop_name) == texts[0]
    assert not any(t(language, "intake.ask_proof_web") in x for x in texts)
    assert KindCb(kind="return_refund").pack() in page.buttons[max(page.buttons)]
    assert not [e for e in history if e["type"] == "mine"]  # the customer typed nothing
    with sessions() as s:
        emma = s.scalars(select(CustomerRow).where(CustomerRow.name == "Emma")).one()
        assert emma.web_chat_id == int(client.cookies["aftersales_chat"].split(".")[0])

    # Opened again (a reload, the button pressed twice): nothing begins twice.
    again = client.get(path_of(made["url"]), follow_redirects=False)
    assert again.status_code == 303
    assert page.read() == []
    client.close()


async def test_only_a_token_that_may_push_orders_gets_a_link_and_only_for_an_order(
    api: Api,
) -> None:
    assert api.get("/api/v1/orders/W400/chat-link").status_code == 403  # cases scope only
    assert api.as_("shop").get("/api/v1/orders/NOPE-1/chat-link").status_code == 404


@pytest.mark.parametrize("language", ["en", "zh-CN"])
async def test_an_expired_or_tampered_link_is_refused_and_the_digits_still_work(
    app: Any, settings: Any, clock: Clock, language: str
) -> None:
    link = chat_link(
        secret=settings.secret_key,
        public_url=settings.public_url,
        order_no="W400",
        now=NOW,
        hours=1,
    )
    token = link.url.split("link=")[1]
    encoded, expires, mac = token.split(".")
    # Another order's number under W400's signature; W400's with a longer life; a wrong key.
    forged = [
        f"{make_token('x', 'W401', NOW).split('.')[0]}.{expires}.{mac}",
        f"{encoded}.{int(expires) + 86400}.{mac}",
        make_token("not-the-shops-secret", "W400", NOW + timedelta(days=1)),
        "garbage",
        "a." * 150,
    ]
    for bad in forged:
        client, r = open_link(app, f"/chat?link={bad}", language)
        assert r.status_code == 400, bad
        assert t(language, "web.link_invalid") in r.text
        assert 'href="/chat"' in r.text
        client.close()

    clock.now = NOW + timedelta(hours=1)
    client, r = open_link(app, link.url, language)
    assert r.status_code == 410
    assert t(language, "web.link_expired") in r.text
    assert t(language, "web.link_prove") in r.text
    # The way on: the chat, proving the order by its number and the phone's digits.
    page = WebPage(client, language)
    said = await page.text("/start W400")
    assert t(language, "intake.ask_proof_web") in said.texts
    said = await page.text("8000")
    assert said.texts[0] == t(language, "intake.proof_ok", order_no="W400")
    client.close()


@pytest.mark.parametrize("language", ["en", "zh-CN"])
async def test_the_web_chat_speaks_of_no_telegram_and_talks_without_an_order(
    app: Any, settings: Any, sessions: sessionmaker[Session], language: str
) -> None:
    with TestClient(app) as client:
        page = WebPage(client, language)
        said = await page.text("/start")
        assert said.texts[0] == t(language, "menu.greeting_web", shop=settings.shop_name)
        said = await page.text("/start W400")
        everything = " ".join(said.texts)
        assert "Telegram" not in everything and "Web chat" not in everything
        assert t(language, "intake.ask_proof_web") in said.texts
        # Talking to a person needs no order, on the web as on Telegram.
        await page.text("/menu")
        said = await page.press(MenuCb(action="human"))
        assert said.texts == [t(language, "human.prompt")]
        said = await page.text("Where is my parcel? I lost the order number")
        with sessions() as s:
            case = s.scalars(select(Ticket)).one()
            assert (case.channel, case.order_id) == ("web", None)
        assert any(case.number in x for x in said.texts)


async def test_log_out_forgets_this_browser_and_the_order_brings_the_requests_back(
    app: Any, sessions: sessionmaker[Session]
) -> None:
    with TestClient(app) as client:
        page = WebPage(client, "en")
        await page.text("/start W400")
        await page.text("8000")
        before = client.cookies["aftersales_chat"]
        r = client.post("/chat/forget", json={}, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        assert client.post("/chat/forget", json={}).status_code == 200
        assert "aftersales_chat" not in client.cookies
        # This browser now is somebody new: the conversation is not shown.
        fresh = WebPage(client, "en")
        assert fresh.read(after=None) == []
        assert client.cookies["aftersales_chat"] != before
        # Proving the order again brings the customer back: the same customer row.
        await fresh.text("/start W400")
        said = await fresh.text("8000")
        assert said.texts[0] == t("en", "intake.proof_ok", order_no="W400")
        with sessions() as s:
            emma = s.scalars(select(CustomerRow).where(CustomerRow.name == "Emma")).one()
            assert emma.web_chat_id == int(client.cookies["aftersales_chat"].split(".")[0])


async def test_a_shop_without_the_web_chat_gets_no_link(
    settings: Any, engine: Any, sessions: sessionmaker[Session], scripts: Any
) -> None:
    from api.app import create_app
    from tests.factories import add_agent_with_token
    from tickets.models import Role

    settings.web_chat = False
    app = create_app(settings, engine=engine, sessions=sessions, scripts=scripts, clock=lambda: NOW)
    with sessions() as s:
        token = add_agent_with_token(s, "shop", Role.agent, scopes=["orders"])
        s.commit()
    with TestClient(app) as client:
        r = client.get(
            "/api/v1/orders/W400/chat-link", headers={"Authorization": f"Bearer {token}"}
        )
    assert r.status_code == 409
    assert "web chat is off" in r.json()["message"]


async def test_a_strangers_link_never_joins_their_order_to_this_browsers_account(
    app: Any, settings: Any, sessions: sessionmaker[Session]
) -> None:
    """Any page may make a browser open a link (a plain GET): Mallory's link, opened in Emma's
    browser, must not tie Mallory's order to Emma's account (proving it again would then open
    Emma's cases to Mallory). It opens in a chat of its own; Emma's stays hers."""
    data = order_json("W401", status="delivered")
    data["customer"] = {"name": "Mallory", "phone": "+86 139-0013-9000"}
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=NOW)
        s.commit()
    with TestClient(app) as client:
        page = WebPage(client, "en")
        await page.text("/start W400")
        await page.text("8000")  # Emma's browser: her account, with her order
        emmas = client.cookies["aftersales_chat"]
        link = chat_link(
            secret=settings.secret_key,
            public_url=settings.public_url,
            order_no="W401",
            now=NOW,
            hours=1,
        )
        r = client.get(path_of(link.url), follow_redirects=False)
        assert r.status_code == 303
        assert client.cookies["aftersales_chat"] != emmas  # a chat of its own
    with sessions() as s:
        emma = s.scalars(select(CustomerRow).where(CustomerRow.name == "Emma")).one()
        mallory = s.scalars(select(CustomerRow).where(CustomerRow.name == "Mallory")).one()
        assert emma.web_chat_id == int(emmas.split(".")[0])
        assert mallory.linked_to_id is None
        assert mallory.web_chat_id is not None and mallory.web_chat_id != emma.web_chat_id
