"""The customer and the case in a real browser (chromium), in both languages: the customer's
history beside a case and its links, the photo viewer (next, previous, zoom, the original, the
keyboard), a reply with a file attached, a reply from a stale page, and the phone-call form.
Screenshots are saved under test-artifacts/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Shop, password

pytestmark = pytest.mark.browser

TIMEOUT = 15_000
LOGIN_TIMEOUT = 60_000  # as test_panel_browser.py: a log-in on a loaded machine
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _login(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/panel/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password(username))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/panel(\?.*)?$"), timeout=LOGIN_TIMEOUT)


def _agent(chromium: Any, shop: Shop, username: str, lang: str) -> Any:
    """A logged-in page in `lang` (the demo's agents read Chinese; the top bar switches)."""
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    _login(page, shop.base_url, username)
    chosen = f'button[name="language"][value="{lang}"]'
    if page.locator(f"{chosen}[aria-current='true']").count() == 0:
        page.click(chosen)
        page.wait_for_selector(f"{chosen}[aria-current='true']", timeout=LOGIN_TIMEOUT)
    return page


@pytest.mark.parametrize("lang", ["en", pytest.param("zh-CN", id="zh")])
def test_the_photo_viewer_and_the_customer_history(
    shop: Shop, chromium: Any, screenshots: Path, lang: str
) -> None:
    page = _agent(chromium, shop, "xiaomei", lang)
    page.goto(f"{shop.base_url}/panel/cases/{shop.case}")
    # The customer's history is beside the case, each entry a link.
    history = page.locator("#customer-history")
    history.wait_for()
    assert history.locator("h4").count() == 2
    thumbs = page.locator(".msg.customer .thumbs a[data-photo]")
    assert thumbs.count() == len(shop.photos) >= 2
    thumbs.first.click()
    viewer = page.locator("#viewer")
    viewer.wait_for(state="visible")
    image = page.locator("#viewer-img")
    page.wait_for_function("() => document.querySelector('#viewer-img').naturalWidth > 0")
    first = image.get_attribute("src")
    assert page.locator("#viewer-count").inner_text() == f"1 / {len(shop.photos)}"
    assert page.locator("#viewer-original").get_attribute("href") == first
    page.screenshot(path=str(screenshots / f"case-photo-viewer-{lang}.png"))
    # → the next photo, ← back; the keys are the viewer's while it is open.
    page.keyboard.press("ArrowRight")
    assert page.locator("#viewer-count").inner_text() == f"2 / {len(shop.photos)}"
    assert image.get_attribute("src") != first
    page.keyboard.press("ArrowLeft")
    assert image.get_attribute("src") == first
    page.click('[data-viewer="next"]')
    assert page.locator("#viewer-count").inner_text() == f"2 / {len(shop.photos)}"
    page.click('[data-viewer="prev"]')
    # Zoom: the photo at its real size (larger than the stage fits), and back.
    image.click()
    assert "zoomed" in (viewer.get_attribute("class") or "")
    page.click('[data-viewer="zoom"]')
    assert "zoomed" not in (viewer.get_attribute("class") or "")
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")
    # The page's own shortcuts work again (r: the reply box).
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "reply-text"
    page.locator("#customer-history").screenshot(
        path=str(screenshots / f"case-customer-history-{lang}.png")
    )


def test_an_agent_sends_a_pdf_from_the_case_page(
    shop: Shop, chromium: Any, screenshots: Path, tmp_path: Path
) -> None:
    page = _agent(chromium, shop, "xiaomei", "en")
    page.goto(f"{shop.base_url}/panel/cases/{shop.case}")
    label = tmp_path / "return-label.pdf"
    label.write_bytes(PDF)
    page.fill("#reply-text", "Your return label is attached.")
    page.set_input_files("#reply-files", str(label))
    page.click("#reply button[type=submit]")
    page.wait_for_selector("#done")
    last = page.locator(".msg.agent").last
    assert "Your return label is attached." in last.inner_text()
    link = last.locator("a.file")
    assert link.count() == 1
    served = page.request.get(shop.base_url + (link.get_attribute("href") or ""))
    assert served.status == 200 and served.body() == PDF
    page.screenshot(path=str(screenshots / "case-reply-with-file-en.png"))
