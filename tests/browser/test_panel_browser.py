"""A demo shop's case worked end to end in a real browser: log in, find a fresh return from
the demo shop in the queue, open it, look at the customer's photos (thumbnails and full size),
reply from a script, approve the return, mark it received, record the inspection, propose the
refund; a second agent, already looking at the case, sees the change without reloading, approves
and issues the refund, and closes the case. A lead assigns and approves in bulk: the
confirmation page lists each case and what will happen, leaving out the held ones with why,
before anything moves. Screenshots of the queue, the workspace and the
dashboard in both languages are saved under test-artifacts/screenshots/."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from api.demo_pictures import PHOTO_SIZE
from tests.browser.conftest import Shop, password

pytestmark = pytest.mark.browser

TIMEOUT = 15_000
# The log-in and the language switch once took over 15 s, about one run in three on a loaded
# machine: their transactions were committed after the answer was sent (FastAPI's default for a
# `yield` dependency), so the page the browser then loaded could still see the old state (now
# fixed: api/deps.py, tests/test_api_pool.py). The margin stays for a loaded machine.
LOGIN_TIMEOUT = 60_000


def _login(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/panel")
    # Anonymous: sent to the log-in page, and back to the queue afterwards.
    assert "/panel/login" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password(username))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/panel(\?.*)?$"), timeout=LOGIN_TIMEOUT)


def _act(page: Any, action: str) -> None:
    """Click an action's button and wait for the page to confirm it."""
    page.click(f'button[data-action="{action}"]')
    page.wait_for_selector("#done", timeout=TIMEOUT)


def _queue_rows(page: Any) -> list[str]:
    return [r.get_attribute("data-case") for r in page.locator("#queue-rows tr[data-case]").all()]


def test_two_agents_work_a_return_to_the_end(shop: Shop, chromium: Any, screenshots: Path) -> None:
    base = shop.base_url
    agent = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    page = agent.new_page()
    page.set_default_timeout(TIMEOUT)
    _login(page, base, "xiaomei")
    # Xiaomei starts on her own cases, in her interface's language (Chinese in the demo) ...
    assert len(_queue_rows(page)) == shop.mine
    assert page.locator('[data-queue-count="all"]').inner_text() == str(shop.cases)
    # ... and switches it to English: the choice is kept for her next pages.
    page.click('button[name="language"][value="en"]')
    # A write's page (see LOGIN_TIMEOUT).
    page.wait_for_selector(
        'button[name="language"][value="en"][aria-current="true"]', timeout=LOGIN_TIMEOUT
    )
    page.goto(f"{base}/panel?queue=all")
    # Every demo case is in the "all" queue (one page of 50), the fresh return among them.
    assert len(_queue_rows(page)) == min(shop.cases, 50)
    assert shop.case in _queue_rows(page)
    assert "Submitted" in page.locator(f'tr[data-case="{shop.case}"]').inner_text()
    page.screenshot(path=str(screenshots / "queue-en.png"), full_page=True)

    # Find the case by its order number from the search box (/ focuses it).
    page.keyboard.press("/")
    page.keyboard.type(shop.order_no)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=" + shop.order_no))
    assert _queue_rows(page) == [shop.case]
    page.locator("#queue-rows tr[data-case] a[data-open]").first.click()
    page.wait_for_url(f"**/panel/cases/{shop.case}")

    # The customer's photos are on their message, as thumbnails that really load (served only
    # behind the log-in) ...
    thumbs = page.locator(".msg.customer .thumbs img")
    thumbs.first.wait_for()
    assert thumbs.count() == len(shop.photos) >= 2
    for i in range(thumbs.count()):
        thumbs.nth(i).scroll_into_view_if_needed()
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=thumbs.nth(i).element_handle()
        )
    # ... open large in the page's viewer, and at full size a click away: the very file the
    # customer sent.
    page.locator(".msg.customer .thumbs a").first.click()
    page.wait_for_selector("#viewer:not([hidden])")
    with agent.expect_page() as opened:
        page.click("#viewer-original")
    page.keyboard.press("Escape")
    full = opened.value
    full.wait_for_load_state()
    size = full.evaluate("[document.images[0].naturalWidth, document.images[0].naturalHeight]")
    assert tuple(size) == PHOTO_SIZE
    served = page.request.get(full.url)
    assert served.headers["content-type"] == "image/png"
    assert hashlib.sha256(served.body()).hexdigest() == shop.photos[0]
    full.close()

    # Reply from a script, in the customer's language (Chinese, whatever the agent's interface):
    # picked, filled from the case, previewed, sent.
    assert page.locator("#script-language").input_value() == "zh-CN"
    page.select_option("#script-picker", "info_return_policy")
    page.wait_for_function(
        "document.querySelector('#reply-text').value.includes('质量问题')", timeout=TIMEOUT
    )
    page.wait_for_function(
        "document.querySelector('#preview').innerText.includes('来回运费都由我们承担')",
        timeout=TIMEOUT,
    )
    assert f"亲爱的{shop.customer}" in page.locator("#preview").inner_text()
    page.click("#reply button[type=submit]")
    page.wait_for_selector("#done")
    assert "来回运费都由我们承担" in page.locator(".timeline").inner_text()

    # The demo's fresh return is from a high-risk customer: approving it is deliberate.
    if page.locator("#confirm-risk").count():
        page.check("#confirm-risk")
    _act(page, "approve")
    _act(page, "mark_received")
    # The inspection, per unit: back unworn with its tags, so resalable and refunded.
    inspect = page.locator('details[data-action-form="inspect"]')
    for select in inspect.locator("select").all():
        select.select_option("resalable")
    inspect.locator('button[data-action="inspect"]').click()
    page.wait_for_selector("#done")
    assert "1 passed, 0 failed" in page.locator(".timeline").inner_text()
    assert "Refund pending" in page.locator(".case-head").inner_text()

    # The second agent opens the case before the refund is proposed ...
    finance = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    other = finance.new_page()
    other.set_default_timeout(TIMEOUT)
    _login(other, base, "finance.li")
    other.goto(f"{base}/panel/cases/{shop.case}")
    # ... and each sees the other on the case.
    page.wait_for_selector("#presence", timeout=TIMEOUT)
    assert "李会计" in page.locator("#presence").inner_text()

    _act(page, "propose_refund")
    page.screenshot(path=str(screenshots / "case-en.png"), full_page=True)

    # Without reloading, the second agent is told the case changed.
    other.wait_for_selector("#stale", timeout=TIMEOUT)
    other.click("[data-reload]")
    other.wait_for_selector('button[data-action="approve_refund"]')
    _act(other, "approve_refund")
    _act(other, "issue_refund")
    other.click('details[data-action-form="close"] summary')
    other.click('details[data-action-form="close"] button[data-action="close"]')
    other.wait_for_selector("#done")
    assert "已关闭" in other.locator(".case-head").inner_text()
    other.screenshot(path=str(screenshots / "case-zh.png"), full_page=True)
    other.goto(f"{base}/panel?queue=all")
    other.screenshot(path=str(screenshots / "queue-zh.png"), full_page=True)

    # The first agent's view follows: the case is closed (and her English is remembered).
    page.reload()
    assert "Closed" in page.locator(".case-head").inner_text()
    agent.close()
    finance.close()


def test_a_lead_works_in_bulk_and_reads_the_dashboard(
    shop: Shop, chromium: Any, screenshots: Path
) -> None:
    base = shop.base_url
    lead = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = lead.new_page()
    page.set_default_timeout(TIMEOUT)
    _login(page, base, "lead")  # the demo lead, Lena: her interface is in Chinese

    # Two unassigned cases selected, assigned to Xiaomei at once.
    page.goto(f"{base}/panel?queue=unassigned")
    rows = page.locator("#queue-rows tr[data-case]")
    assert rows.count() >= 2
    chosen = [rows.nth(i).get_attribute("data-case") for i in range(2)]
    for i in range(2):
        rows.nth(i).locator('input[name="case"]').check()
    page.select_option('#bulk select[name="assignee"]', "xiaomei")
    page.click("#bulk-assign")
    # First what will happen to each, then, confirmed, it happens.
    page.wait_for_selector("#bulk-confirm")
    assert page.locator('#bulk-plan-table tr[data-going="yes"]').count() == 2
    page.click("#bulk-confirm-go")
    page.wait_for_selector("#bulk-summary")
    assert "完成 2 件" in page.locator("#bulk-summary").inner_text()
    page.goto(f"{base}/panel?queue=all&assignee=xiaomei")
    assigned = {
        r.get_attribute("data-case") for r in page.locator("#queue-rows tr[data-case]").all()
    }
    assert set(chosen) <= assigned

    # Monday morning: she ticks every case and approves. Before anything moves, a page lists
    # each case and what will happen to it; the platform disputes, the cases waiting for the
    # customer's photos and the high-risk ones are left out, each saying why.
    page.goto(f"{base}/panel?queue=all")
    page.check("[data-select-all]")
    ticked = page.locator('#queue-rows input[name="case"]:checked').count()
    assert ticked == min(shop.cases, 50)
    page.click("#bulk-approve")
    page.wait_for_selector("#bulk-confirm")
    plan = page.locator("#bulk-plan-table tr[data-plan]")
    assert plan.count() == ticked

    def row(order_no: str) -> Any:
        return page.locator("#bulk-plan-table tr[data-plan]", has_text=order_no)

    dispute, photos = row("DEMO-0019"), row("DEMO-0005")
    assert dispute.get_attribute("data-going") == "no"
    assert "平台介入：以平台裁决为准" in dispute.inner_text()
    assert photos.get_attribute("data-going") == "no"
    assert "等待客户补充凭证" in photos.inner_text()
    assert row(shop.order_no).get_attribute("data-going") == "no"  # high risk
    assert "高风险" in row(shop.order_no).inner_text()
    going = page.locator('#bulk-plan-table tr[data-going="yes"]')
    assert going.count() >= 1
    approved = [going.nth(i).get_attribute("data-plan") for i in range(going.count())]
    assert "目前尚未做任何更改" in page.locator("#bulk-plan").inner_text()
    page.screenshot(path=str(screenshots / "bulk-confirm-zh.png"), full_page=True)
    page.click("#bulk-confirm-go")
    page.wait_for_selector("#bulk-summary")
    assert f"完成 {len(approved)} 件，拒绝 0 件。" in page.locator("#bulk-summary").inner_text()
    page.goto(f"{base}/panel?queue=all")
    for number in approved:
        assert "待审核" not in page.locator(f'tr[data-case="{number}"]').inner_text()
    assert "平台介入" in page.locator("tr[data-case]", has_text="DEMO-0019").inner_text()

    # The dashboard, in Chinese, then in English: every chart drawn.
    page.goto(f"{base}/panel/dashboard")
    page.wait_for_selector("#chart-products svg")
    assert page.locator("svg.chart").count() == 8
    assert "每日工单（按类型）" in page.locator("#chart-cases").inner_text()
    # Per agent: the demo's agents who brought cases to done, by name.
    assert page.locator("#chart-agents svg text").count() >= 1
    page.screenshot(path=str(screenshots / "dashboard-zh.png"), full_page=True)
    page.click('button[name="language"][value="en"]')
    page.wait_for_selector("#chart-products svg")
    assert "Cases per day by kind" in page.locator("#chart-cases").inner_text()
    page.screenshot(path=str(screenshots / "dashboard-en.png"), full_page=True)
    # Each chart exports: the CSV link downloads a file.
    with page.expect_download() as download:
        page.click('#chart-reasons a:has-text("CSV")')
    assert download.value.suggested_filename == "reasons-30d.csv"
    lead.close()
