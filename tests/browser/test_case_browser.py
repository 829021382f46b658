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


def _luminance(css: str) -> float:
    """A CSS rgb()/rgba() colour's relative luminance (WCAG), alpha laid on nothing."""
    r, g, b = (int(x) / 255 for x in re.findall(r"[\d.]+", css)[:3])

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def test_an_agent_sends_a_pdf_from_the_case_page(
    shop: Shop, chromium: Any, screenshots: Path, tmp_path: Path
) -> None:
    page = _agent(chromium, shop, "xiaomei", "en")
    page.goto(f"{shop.base_url}/panel/cases/{shop.case}")
    label = tmp_path / "return-label.pdf"
    label.write_bytes(PDF)
    # The Send button's shortcut is readable: its light text once sat on a white key cap.
    hint = page.locator("#reply button[type=submit] kbd")
    assert hint.inner_text() == "Ctrl+Enter"
    text, cap = hint.evaluate(
        "k => { const s = getComputedStyle(k), b = getComputedStyle(k.closest('button'));"
        " const bg = s.backgroundColor === 'rgba(0, 0, 0, 0)' ? b.backgroundColor"
        " : s.backgroundColor; return [s.color, bg]; }"
    )
    assert _luminance(text) - _luminance(cap) > 0.4, (text, cap)
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


def _free_order(db_url: str) -> tuple[str, str]:
    """A delivered demo order no case is about, and its first line's SKU."""
    from sqlalchemy import select

    from tickets.db import make_engine, make_sessionmaker
    from tickets.models import Order, OrderStatus, Ticket

    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as s:
            order = s.scalar(
                select(Order)
                .where(
                    Order.status == OrderStatus.delivered.value,
                    Order.id.not_in(select(Ticket.order_id).where(Ticket.order_id.is_not(None))),
                )
                .order_by(Order.order_no)
                .limit(1)
            )
            assert order is not None, "the demo has no delivered order without a case"
            return order.order_no, order.lines[0].sku
    finally:
        engine.dispose()


@pytest.mark.parametrize("lang", ["en", pytest.param("zh-CN", id="zh")])
def test_a_phone_call_becomes_a_case_by_ticking_the_orders_items(
    shop: Shop, chromium: Any, screenshots: Path, tmp_path: Path, fresh_db_url: str, lang: str
) -> None:
    from PIL import Image

    order_no, sku = _free_order(fresh_db_url)
    photo = tmp_path / "seam.png"
    Image.new("RGB", (64, 48), "red").save(photo)
    page = _agent(chromium, shop, "xiaomei", lang)
    page.goto(f"{shop.base_url}/panel/cases/new")
    # The caller reads the order number in lower case: its lines appear to tick, no SKU typed.
    page.fill("input[name=order_no]", order_no.lower())
    line = page.locator(f'#order-lines tr[data-line="{sku}"]')
    line.wait_for()
    line.locator("input[type=checkbox]").check()
    line.locator("input[type=number]").fill("1")
    page.select_option("select[name=kind]", "return_refund")
    page.select_option("select[name=reason]", "quality_defect")
    page.fill("textarea[name=description]", "the seam opened after one wash")
    page.set_input_files("#case-files", str(photo))
    assert page.locator("#take").is_checked()
    page.screenshot(path=str(screenshots / f"case-new-phone-{lang}.png"), full_page=True)
    page.locator("#new-case-form button.primary").click()
    page.wait_for_selector("#done")
    # The new case: the agent's own, the ticked item only, the photo as its evidence (so it
    # does not wait for one).
    assert "小美" in page.locator(".case-head .meta").inner_text()  # her display name
    items = page.locator("section.card:has(h3) table.grid.compact").all_inner_texts()
    assert any(sku in text for text in items)
    assert page.locator(".thumbs a[data-photo] img").count() == 1
    assert "needs_info" not in (page.locator(".case-head .status").get_attribute("class") or "")


def test_a_reply_from_a_stale_page_warns_and_keeps_the_text(
    shop: Shop, chromium: Any, screenshots: Path
) -> None:
    xiaomei = _agent(chromium, shop, "xiaomei", "en")
    tom = _agent(chromium, shop, "tom", "en")
    url = f"{shop.base_url}/panel/cases/{shop.case}"
    xiaomei.goto(url)
    tom.goto(url)
    tom.fill("#reply-text", "Tom here: we are on it.")
    tom.click("#reply button[type=submit]")
    tom.wait_for_selector("#done")
    # Xiaomei's page learns the case changed (its poll), and her send asks first.
    xiaomei.wait_for_selector("#stale", timeout=TIMEOUT)
    xiaomei.fill("#reply-text", "Xiaomei: a refund is on its way.")
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    xiaomei.once("dialog", accept)
    xiaomei.click("#reply button[type=submit]")
    xiaomei.wait_for_selector("#reply-kept")
    assert asked and "changed since you opened this page" in asked[0]
    # Nothing went: the case as it is now (Tom's reply), her words still in the box.
    assert "Tom here: we are on it." in xiaomei.locator(".timeline").inner_text()
    assert "Xiaomei: a refund is on its way." not in xiaomei.locator(".timeline").inner_text()
    assert xiaomei.locator("#reply-text").input_value() == "Xiaomei: a refund is on its way."
    xiaomei.screenshot(path=str(screenshots / "case-stale-reply-en.png"))
    # Read, sent again: it goes.
    xiaomei.click("#reply button[type=submit]")
    xiaomei.wait_for_selector("#done")
    assert "Xiaomei: a refund is on its way." in xiaomei.locator(".timeline").inner_text()
