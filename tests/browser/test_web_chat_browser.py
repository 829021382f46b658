"""The web chat in a real browser against the real `aftersales serve` (a process of its own,
restarted in the middle): a customer opens the shop's signed link, files a return with a photo
from the page (shown small, a tap opens it), an agent answers through the API and the answer
appears without a reload, the server restarts meanwhile and nothing is lost or shown twice; two
customers in two browsers never see each other's conversation. In both languages; screenshots
in test-artifacts/."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.i18n import Texts
from tests.browser.conftest import CHROMIUM
from tests.factories import order_json
from tests.fakes.serve import Serve
from tests.fakes.telegram import jpeg
from tickets.db import make_engine, make_sessionmaker, unit_of_work
from tickets.models import utcnow
from tickets.orders.store import upsert_order
from tickets.schemas import OrderIn

TEXTS = Texts.load()
ORDER = "WEB-1001"
OTHER = "WEB-2002"
# How long the page may take to show what the server sent (the watcher looks every second).
SHOWN_MS = 20_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _seed_orders(url: str) -> None:
    """Two orders delivered three days ago, each its own customer's."""
    now = utcnow()
    engine = make_engine(url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            for order_no, name, phone in (
                (ORDER, "Emma", "+86 138-0013-8000"),
                (OTHER, "Mallory", "+86 139-0013-9000"),
            ):
                data = order_json(order_no)
                data["customer"] = {"name": name, "phone": phone}
                for field, days in (
                    ("placed_at", 6),
                    ("paid_at", 6),
                    ("shipped_at", 5),
                    ("delivered_at", 3),
                ):
                    data[field] = (now - timedelta(days=days)).isoformat()
                upsert_order(session=session, data=OrderIn.model_validate(data), now=now)
    finally:
        engine.dispose()


@pytest.fixture
def served(fresh_db_url: str, tmp_path: Path) -> Iterator[tuple[Serve, str]]:
    """`aftersales serve` on a fixed port (a restart comes back where the page looks for
    it), the demo shop and two orders of our own; and the demo admin's API token."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium", pytrace=False)
    port = _free_port()
    serve = Serve(
        database_url=fresh_db_url,
        data_dir=tmp_path / "shop",
        api_url=None,
        token=None,
        serve_args=("--port", str(port), "--no-scheduler"),
        env={"AFTERSALES_PUBLIC_URL": f"http://127.0.0.1:{port}"},
    )
    try:
        token = serve.setup(in_process=True)
        _seed_orders(fresh_db_url)
        serve.start()
        yield serve, token
    finally:
        serve.stop()
    assert serve.bad_log_lines() == [], serve.bad_log_lines()[0]


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM_ARGS

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def t(lang: str, key: str, **values: Any) -> str:
    return TEXTS.plain(lang, key, **values)


def press(page: Any, data: str) -> None:
    """The newest button with this data (a bot message's inline button)."""
    page.locator(f'button[data-data="{data}"]').last.click()


def bot_says(page: Any, text: str) -> None:
    page.locator(".msg.bot", has_text=text).last.wait_for(timeout=SHOWN_MS)


def say(page: Any, text: str) -> None:
    page.fill("#text", text)
    page.click("#send")


def messages(page: Any) -> list[str]:
    return [str(x) for x in page.locator(".msg").all_inner_texts()]


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_a_customer_files_a_return_with_a_photo_and_reads_the_answer_across_a_restart(
    served: tuple[Serve, str], browser: Any, language: str, tmp_path: Path
) -> None:
    serve, token = served
    # serve says where the chat is, beside the panel.
    assert f"web chat:      {serve.url}/chat" in serve.log()
    link = serve.cli("chat-link", ORDER).strip().splitlines()[-1]
    context = browser.new_context(locale=language, viewport={"width": 400, "height": 780})
    page = context.new_page()
    page.goto(link)
    assert page.url == f"{serve.url}/chat"  # the token left the address bar
    # Proved by the link: straight to what the customer needs, no digits asked.
    press(page, "k:return_refund")
    press(page, "it:0:1")
    press(page, "nav:done")
    press(page, "r:quality_defect")
    page.locator('button[data-data="nav:skip"]').last.wait_for(timeout=SHOWN_MS)
    say(page, "The zip broke" if language == "en" else "拉链坏了")
    page.locator(
        ".msg.mine", has_text="拉链坏了" if language == "zh-CN" else "The zip broke"
    ).wait_for()
    # A photo from the page's picker (on a phone: its camera).
    photo = tmp_path / "zip.jpg"
    photo.write_bytes(jpeg("red", size=(1200, 900), gps=True))
    page.set_input_files("#files", str(photo))
    # Shown small (its thumbnail, loaded: no broken image), and a tap opens the photo.
    thumb = page.locator('.msg.mine a.thumb img[alt="zip.jpg"]')
    thumb.wait_for(timeout=SHOWN_MS)
    page.wait_for_function(
        "document.querySelector('.msg.mine a.thumb img').naturalWidth > 0", timeout=SHOWN_MS
    )
    box = thumb.bounding_box()
    assert box is not None and 0 < box["width"] <= 160 and 0 < box["height"] <= 160, box
    with context.expect_page() as opened:
        thumb.click()
    full = opened.value
    full.wait_for_load_state()
    assert full.evaluate("[document.images[0].naturalWidth, document.images[0].naturalHeight]") == [
        1200,
        900,
    ]
    full.close()
    # The one photo the request needs: on to the summary.
    bot_says(page, t(language, "intake.evidence_ready", count=1))
    page.locator('button[data-data="nav:confirm"]').last.wait_for(timeout=SHOWN_MS)
    press(page, "nav:confirm")
    page.locator(".msg.bot", has_text="AS-").last.wait_for(timeout=SHOWN_MS)
    text = " ".join(messages(page))
    assert "Telegram" not in text and "Web chat" not in text
    api = httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {token}"})
    found = api.get("/api/v1/tickets", params={"order_no": ORDER}).json()["data"]
    assert len(found) == 1
    number = found[0]["number"]
    case = api.get(f"/api/v1/tickets/{number}").json()
    assert (case["kind"], case["channel"]) == ("return_refund", "web")
    assert [a["kind"] for a in case["attachments"]] == ["photo"]
    page.screenshot(path=str(screenshot_dir() / f"web-chat-return-{language}.png"))

    # The agent answers: it appears in the page, no reload.
    answer = "We are sending a courier" if language == "en" else "我们会安排快递上门取件"
    r = api.post(f"/api/v1/tickets/{number}/replies", json={"text": answer})
    assert r.status_code == 201, r.text
    bot_says(page, answer)

    # The server restarts; the customer writes meanwhile; the page comes back by itself.
    before = messages(page)
    serve.stop()
    page.wait_for_function("document.body.dataset.live === '0'", timeout=SHOWN_MS)
    meanwhile = "Are you there?" if language == "en" else "请问在吗？"
    say(page, meanwhile)
    serve.start()
    page.wait_for_function("document.body.dataset.live === '1'", timeout=SHOWN_MS)
    page.locator(".msg.mine", has_text=meanwhile).wait_for(timeout=SHOWN_MS)
    second = "Tomorrow between 9 and 12" if language == "en" else "明天 9 点到 12 点之间"
    r = api.post(f"/api/v1/tickets/{number}/replies", json={"text": second})
    assert r.status_code == 201, r.text
    bot_says(page, second)
    after = messages(page)
    # Nothing lost, nothing twice: what was there, then the customer's message and the answer.
    assert after[: len(before)] == before
    added = after[len(before) :]
    assert added[0] == meanwhile and added[-1] == second and len(added) == 3, added
    assert sum(meanwhile in m for m in after) == 1 and sum(second in m for m in after) == 1
    assert sum(answer in m for m in after) == 1
    words = [m["text"] for m in api.get(f"/api/v1/tickets/{number}").json()["messages"]]
    assert sum(meanwhile in w for w in words) == 1
    # A reload shows the same conversation.
    page.reload()
    page.locator(".msg.bot", has_text=second).wait_for(timeout=SHOWN_MS)
    assert messages(page) == after
    page.screenshot(path=str(screenshot_dir() / f"web-chat-after-restart-{language}.png"))
    api.close()
    context.close()


def test_two_customers_in_two_browsers_never_see_each_others_conversation(
    served: tuple[Serve, str], browser: Any
) -> None:
    serve, _ = served
    emma = browser.new_context(locale="en").new_page()
    mallory = browser.new_context(locale="zh-CN").new_page()
    emma.goto(serve.cli("chat-link", ORDER).strip().splitlines()[-1])
    emma.locator('button[data-data="k:complaint"]').last.wait_for(timeout=SHOWN_MS)
    mallory.goto(f"{serve.url}/chat")
    say(mallory, f"/start {ORDER}")
    mallory.locator(
        ".msg.bot", has_text=t("zh-CN", "intake.ask_proof_web").split("：")[0]
    ).wait_for(timeout=SHOWN_MS)
    say(emma, "/menu")
    say(mallory, "0000")
    emma.locator(".msg.mine", has_text="/menu").wait_for(timeout=SHOWN_MS)
    mallory.locator(".msg.mine", has_text="0000").wait_for(timeout=SHOWN_MS)
    emma.reload()
    mallory.reload()
    emma.locator(".msg.mine", has_text="/menu").wait_for(timeout=SHOWN_MS)
    mallory.locator(".msg.mine", has_text="0000").wait_for(timeout=SHOWN_MS)
    assert not any("0000" in m for m in messages(emma))
    assert not any("/menu" in m for m in messages(mallory))
    # Mallory's guess did not prove Emma's order: no kinds to pick from.
    assert mallory.locator('button[data-data="k:complaint"]').count() == 0
    mallory.screenshot(path=str(screenshot_dir() / "web-chat-stranger-zh-CN.png"))


def screenshot_dir() -> Path:
    from tests.browser.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
