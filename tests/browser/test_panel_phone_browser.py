"""The panel on a phone-sized screen (390 px wide), in both languages: the queue and a case fit
the screen (no sideways scroll), the queue's rows are cards, its filters fold away, the top bar
wraps by whole links (never a character per line), and on a case the actions come before the
conversation and the reply box. And back: ← and `g q` on a case return to the queue the agent
came from, with its filters and order. Screenshots under test-artifacts/screenshots/phone-*.png."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Shop, password

pytestmark = pytest.mark.browser

TIMEOUT = 15_000
LOGIN_TIMEOUT = 60_000  # see test_panel_browser.py
PHONE = {"width": 390, "height": 844}


def _login(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/panel/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password(username))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/panel(\?.*)?$"), timeout=LOGIN_TIMEOUT)


def _set_language(page: Any, base: str, language: str) -> None:
    page.goto(f"{base}/panel")
    button = page.locator(f'button[name="language"][value="{language}"]')
    if button.get_attribute("aria-current") != "true":
        button.click()
        page.wait_for_selector(
            f'button[name="language"][value="{language}"][aria-current="true"]',
            timeout=LOGIN_TIMEOUT,
        )


def _width(page: Any) -> int:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width


def _top(page: Any, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    top: float = box["y"]
    return top


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_queue_and_case_fit_a_phone(
    shop: Shop, chromium: Any, screenshots: Path, language: str
) -> None:
    base = shop.base_url
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    _login(page, base, "lead")
    _set_language(page, base, language)

    page.goto(f"{base}/panel?queue=all")
    assert _width(page) <= PHONE["width"]
    # Rows are cards: no header row, each case a box within the screen.
    assert not page.locator("#queue-table thead").is_visible()
    cards = page.locator("#queue-rows tr[data-case]")
    assert cards.count() >= 10
    box = cards.first.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    # The filters are folded: the queue starts right under the sidebar, not 690 px down.
    assert page.locator("#filters").get_attribute("open") is None
    assert not page.locator("#filters select[name=kind]").is_visible()
    page.click("#filters > summary")
    assert page.locator("#filters select[name=kind]").is_visible()
    page.click("#filters > summary")
    # The top bar wraps by whole links: each on one line.
    heights = page.eval_on_selector_all(
        ".topbar nav a, .topbar .brand", "els => els.map(e => e.getBoundingClientRect().height)"
    )
    line = page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('.topbar nav a')).lineHeight)"
    )
    assert heights and max(heights) < 1.5 * line
    page.screenshot(path=str(screenshots / f"phone-queue-{language}.png"), full_page=True)

    # A working case: the actions first, then the conversation, then the reply box.
    page.goto(f"{base}/panel/cases/{shop.case}")
    assert _width(page) <= PHONE["width"]
    actions = _top(page, "section.actions")
    assert actions < _top(page, ".conversation") <= _top(page, "#reply")
    assert page.locator('section.actions button[data-action="approve"]').is_visible()
    page.screenshot(path=str(screenshots / f"phone-case-{language}.png"), full_page=True)
    # A case with a long conversation, an order and a refund fits too.
    page.goto(f"{base}/panel?queue=all")
    for number in page.eval_on_selector_all(
        "#queue-rows tr[data-case]", "rows => rows.map(r => r.dataset.case)"
    )[:12]:
        page.goto(f"{base}/panel/cases/{number}")
        assert _width(page) <= PHONE["width"], number
    context.close()


def test_back_returns_to_the_queue_the_agent_came_from(shop: Shop, chromium: Any) -> None:
    base = shop.base_url
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    _login(page, base, "lead")
    queue = "/panel?queue=all&kind=return_refund&sort=due"
    page.goto(base + queue)
    assert page.locator("#queue-rows tr[data-case]").count() >= 1
    page.locator("#queue-rows tr[data-case] a[data-open]").first.click()
    page.wait_for_url(re.compile(r"/panel/cases/"))
    # ← goes back to the filtered queue, not to "Mine".
    page.click(".case-head a.back")
    page.wait_for_url(re.compile(r"/panel\?"))
    assert page.url == base + queue
    assert page.locator("select[name=kind]").input_value() == "return_refund"
    # So does `g q`, from a case opened from that queue.
    page.locator("#queue-rows tr[data-case] a[data-open]").first.click()
    page.wait_for_url(re.compile(r"/panel/cases/"))
    page.keyboard.press("g")
    page.keyboard.press("q")
    page.wait_for_url(re.compile(r"/panel\?"))
    assert page.url == base + queue
    # A case opened straight (a link, a new tab) goes back to the default queue.
    fresh = context.new_page()
    fresh.goto(f"{base}/panel/cases/{shop.case}")
    assert fresh.locator(".case-head a.back").get_attribute("href") == "/panel"
    context.close()
