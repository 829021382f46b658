"""Words on the panel, in a real browser: a lead whose interface is Chinese walks every page of
the demo desk (the queue, a case in each state the demo holds, the dashboard, the approvals, the
new-case form, their own page, the scripts) and no English word is left outside the shop's own
data (names, messages, product titles, addresses: marked `translate="no"` by the templates).
Group codes, SLA states, clock names, refund routes and arrival times, refund rules, actors,
the new-case form's errors and a script's missing variable all read in Chinese; the refund
breakdown names each unit by its item and position and the order's own lines by their rule
(never "None None"); a script's variables are labelled in words, not "carrier · str". The same
pages read in English. Screenshots under test-artifacts/screenshots/words-*.png."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Shop, password

pytestmark = pytest.mark.browser

TIMEOUT = 15_000
LOGIN_TIMEOUT = 60_000  # see test_panel_browser.py

# Words allowed on a Chinese page: names of things that are not translated (a brand, the
# language switch's own name for English, keyboard keys, a technical term Chinese admins read
# as it is: a webhook is "Webhook" there too).
ALLOWED = frozenset({"Telegram", "English", "Ctrl", "Enter", "PayPal", "Webhook", "Webhooks"})

# Every text node and label outside the shop's own data (`translate="no"`), codes (`.mono`,
# `code`, `kbd`) and what is not shown; a word of two letters or more with a small letter is
# English (SKU, RMA, CNY, US$ and case numbers are codes, in capitals).
_WORDS_JS = r"""(allowed) => {
  const skip = 'script,style,noscript,[translate=no],.mono,code,kbd,[hidden],template';
  const found = [];
  const check = (text, where) => {
    for (const w of text.match(/[A-Za-z]*[a-z][A-Za-z]*/g) || []) {
      if (w.length > 1 && !allowed.includes(w)) {
        found.push(where + ': ' + text.trim().slice(0, 90));
        return;
      }
    }
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    const el = node.parentElement;
    if (!el || el.closest(skip)) continue;
    check(node.textContent, el.tagName.toLowerCase() + (el.id ? '#' + el.id : ''));
  }
  for (const el of document.body.querySelectorAll('[title],[placeholder],[aria-label]')) {
    if (el.closest(skip)) continue;
    for (const a of ['title', 'placeholder', 'aria-label']) {
      const v = el.getAttribute(a);
      if (v) check(v, '@' + a);
    }
  }
  return found;
}"""


def _login(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/panel/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password(username))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/panel(\?.*)?$"), timeout=LOGIN_TIMEOUT)


def _english(page: Any) -> list[str]:
    found: list[str] = page.evaluate(_WORDS_JS, sorted(ALLOWED))
    return found


def _set_language(page: Any, base: str, language: str) -> None:
    page.goto(f"{base}/panel")
    button = page.locator(f'button[name="language"][value="{language}"]')
    if button.get_attribute("aria-current") != "true":
        button.click()
        page.wait_for_selector(
            f'button[name="language"][value="{language}"][aria-current="true"]',
            timeout=LOGIN_TIMEOUT,
        )


def _cases(page: Any, base: str) -> dict[str, str]:
    """Every demo case by number, with its status code (one page of the "all" queue)."""
    page.goto(f"{base}/panel?queue=all")
    rows = page.eval_on_selector_all(
        "#queue-rows tr[data-case]",
        "rows => rows.map(r => [r.dataset.case, r.querySelector('.status').className])",
    )
    return {number: cls.split("s-")[-1] for number, cls in rows}


def test_every_page_of_the_demo_desk_reads_in_chinese(
    shop: Shop, chromium: Any, screenshots: Path
) -> None:
    base = shop.base_url
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    _login(page, base, "lead")
    _set_language(page, base, "zh-CN")
    cases = _cases(page, base)
    # A case in each state the lifecycle has (the demo drives one through each).
    assert len(set(cases.values())) >= 12, cases
    pages = [
        "/panel?queue=all",
        "/panel?queue=overdue",
        "/panel/dashboard",
        "/panel/approvals",
        "/panel/me",
        "/panel/cases/new",
        "/panel/admin/scripts",
        "/panel/admin/policy",
        "/panel/admin",
        *(f"/panel/cases/{n}" for n in cases),
    ]
    untranslated: dict[str, list[str]] = {}
    for url in pages:
        page.goto(base + url)
        found = _english(page)
        if found:
            untranslated[url] = found
    assert untranslated == {}

    # The words the issue found in English, now in Chinese: groups, SLA states, routes and
    # arrival times, refund rules, actors.
    page.goto(f"{base}/panel?queue=all")
    queue = page.locator("#queue-rows").inner_text()
    assert "客服组" in queue
    assert not re.search(r"^(service|logistics|quality|finance)$", queue, re.MULTILINE)
    page.screenshot(path=str(screenshots / "words-queue-zh.png"), full_page=True)
    # The policy page reads as settings with their units, not a dump of keys.
    page.goto(f"{base}/panel/admin/policy")
    policy = page.locator("main").inner_text()
    assert "超过多少分钟升级" in policy and "无理由退货期限（天）" in policy
    assert "定制商品" in policy  # a category code, in words
    page.screenshot(path=str(screenshots / "words-policy-zh.png"), full_page=True)
    refund_case = _a_case_with(page, base, cases, "#refund-lines [data-refund-line=order]")
    refund = page.locator("#refund").inner_text()
    assert "None" not in refund
    assert "规则 7" in refund
    assert re.search(r"天|即时到账", refund)
    timeline = page.locator(".timeline").inner_text()
    assert "agent:" not in timeline and "system" not in timeline
    page.screenshot(path=str(screenshots / "words-case-zh.png"), full_page=True)
    states = _a_case_with(page, base, cases, "[data-sla-state]")
    assert states
    assert page.locator("[data-sla-state]").first.inner_text() in {"已达成", "已超时", "已停止"}

    # The refund breakdown: a unit is its item and its position (#1, #2 ...), never an id.
    page.goto(f"{base}/panel/cases/{refund_case}")
    for line in page.locator("#refund-lines [data-refund-line=unit]").all():
        sku_and_position = line.locator(".sub").inner_text()
        assert re.fullmatch(r"[A-Z0-9-]+ #[1-9]\d?", sku_and_position), sku_and_position
    order_line = page.locator("#refund-lines [data-refund-line=order]").first.inner_text()
    assert order_line.startswith("订单")

    # A script whose variable the case cannot fill: the variables are labelled in words, and
    # the missing one is named in Chinese.
    working = next(n for n, s in cases.items() if s == "submitted")
    page.goto(f"{base}/panel/cases/{working}")
    page.select_option("#script-picker", "delay_parcel_stuck")
    page.wait_for_selector("#script-problem")
    fill = page.locator("#reply-fill")
    assert "请先填写" in page.locator("#script-problem").inner_text()
    assert " · str" not in fill.inner_text()
    assert "快递公司" in fill.locator("[data-var=carrier]").inner_text()
    assert _english(page) == []
    page.screenshot(path=str(screenshots / "words-script-zh.png"), full_page=True)

    # The new-case form in Chinese, its order looked up: the lines to tick (no SKU is typed
    # any more, so "which SKU?" can no longer be asked).
    page.goto(f"{base}/panel/cases/new")
    page.fill("input[name=order_no]", shop.order_no)
    page.click("#lookup")
    page.wait_for_load_state()
    assert shop.order_no.upper() in page.locator("#new-case-form").inner_text().upper()
    assert _english(page) == []
    context.close()


def test_the_same_words_read_in_english(shop: Shop, chromium: Any, screenshots: Path) -> None:
    base = shop.base_url
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    _login(page, base, "lead")
    _set_language(page, base, "en")
    cases = _cases(page, base)
    page.goto(f"{base}/panel?queue=all")
    assert "Customer service" in page.locator("#queue-rows").inner_text()
    _a_case_with(page, base, cases, "#refund-lines [data-refund-line=order]")
    refund = page.locator("#refund").inner_text()
    assert "None" not in refund
    assert "rule 7" in refund
    assert re.search(r"\d+(-\d+)? days|immediately", refund)
    assert re.search(r"Alipay|WeChat Pay|Bank card|Store balance|Bank transfer", refund)
    order_line = page.locator("#refund-lines [data-refund-line=order]").first.inner_text()
    assert order_line.startswith("Order")
    timeline = page.locator(".timeline").inner_text()
    assert "agent:" not in timeline
    page.screenshot(path=str(screenshots / "words-case-en.png"), full_page=True)
    page.goto(f"{base}/panel/admin/policy")
    policy = page.locator("main").inner_text()
    assert "Escalate after (minutes)" in policy and "No-reason return window (days)" in policy
    assert "Made to order" in policy
    page.screenshot(path=str(screenshots / "words-policy-en.png"), full_page=True)
    working = next(n for n, s in cases.items() if s == "submitted")
    page.goto(f"{base}/panel/cases/{working}")
    page.select_option("#script-picker", "delay_parcel_stuck")
    page.wait_for_selector("#script-problem")
    assert "Fill in" in page.locator("#script-problem").inner_text()
    assert "Carrier" in page.locator("#reply-fill [data-var=carrier]").inner_text()
    assert " · str" not in page.locator("#reply-fill").inner_text()
    page.screenshot(path=str(screenshots / "words-script-en.png"), full_page=True)
    context.close()


def _a_case_with(page: Any, base: str, cases: dict[str, str], selector: str) -> str:
    """Open the first demo case (by number) whose page has `selector`; its number."""
    for number in sorted(cases):
        page.goto(f"{base}/panel/cases/{number}")
        if page.locator(selector).count():
            return number
    raise AssertionError(f"no demo case shows {selector}")
