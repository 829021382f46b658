"""The team tools in a real browser, in Chinese and in English: tags put on a case from its
page, shown on the queue's rows and filtering the queue; the filtered queue saved as the
agent's own view, listed in the sidebar with its count, renamed and deleted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Shop, password

pytestmark = pytest.mark.browser

TIMEOUT = 15_000
LOGIN_TIMEOUT = 60_000  # the first writes of a fresh server (see test_panel_browser.py)


def _login(chromium: Any, base: str, username: str) -> Any:
    page = chromium.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{base}/panel")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password(username))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/panel(\?.*)?$"), timeout=LOGIN_TIMEOUT)
    return page


def _language(page: Any, code: str) -> None:
    page.click(f'button[name="language"][value="{code}"]')
    page.wait_for_selector(
        f'button[name="language"][value="{code}"][aria-current="true"]', timeout=LOGIN_TIMEOUT
    )


def test_tag_a_case_filter_by_it_and_save_the_view(
    shop: Shop, chromium: Any, screenshots: Path
) -> None:
    base = shop.base_url
    page = _login(chromium, base, "xiaomei")
    page.goto(f"{base}/panel/cases/{shop.case}")
    # Xiaomei reads Chinese: the tags line is in her language.
    assert "标签" in page.locator("#tags").inner_text()
    page.fill("#add-tags input[name=tags]", "VIP， 破损")
    page.click("#add-tags button[type=submit]")
    page.wait_for_selector('#tags [data-tag="vip"]')
    assert page.locator('#tags [data-tag="破损"]').count() == 1
    # The timeline says who tagged.
    assert "已加标签" in page.locator(".timeline").inner_text()
    page.screenshot(path=str(screenshots / "case-tags-zh.png"), full_page=True)

    # The tag's link lists the cases carrying it: this one, its row showing the tags.
    page.click('#tags [data-tag="vip"] a')
    page.wait_for_selector("#tag-filter")
    rows = page.locator("#queue-rows tr[data-case]")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-case") == shop.case
    assert rows.first.locator('[data-row-tag="破损"]').count() == 1

    # Saved as her own view: it opens the same filters and counts them in the sidebar.
    page.fill("#save-view input[name=name]", "VIP 工单")
    page.click("#save-view button[type=submit]")
    page.wait_for_selector('[data-view-count="VIP 工单"]')
    assert page.locator('[data-view-count="VIP 工单"]').inner_text() == "1"
    assert "我的视图" in page.locator("#queue-counts").inner_text()
    page.goto(f"{base}/panel?queue=mine")
    assert page.locator('[data-view-count="VIP 工单"]').inner_text() == "1"
    page.screenshot(path=str(screenshots / "queue-saved-view-zh.png"), full_page=True)
    page.click('[data-view="VIP 工单"]')
    page.wait_for_selector("#tag-filter")
    assert page.locator("#queue-rows tr[data-case]").count() == 1

    # The same in English.
    _language(page, "en")
    assert "My views" in page.locator("#queue-counts").inner_text()
    assert "Save these filters as my view" in page.locator("#save-view").inner_text()
    page.screenshot(path=str(screenshots / "queue-saved-view-en.png"), full_page=True)

    # Renamed and deleted on the views page.
    page.click("#manage-views")
    page.wait_for_selector("#views")
    row = page.locator('[data-view-row="VIP 工单"]')
    row.locator("input[name=name]").fill("VIP cases")
    row.locator("button[type=submit]").first.click()
    page.wait_for_selector('[data-view-row="VIP cases"]')
    assert "View renamed." in page.inner_text("main")
    page.click('[data-delete-view="VIP cases"]')
    page.wait_for_selector("text=No saved views yet.")

    # A tag taken off from the case page: the case leaves the tag's list.
    page.goto(f"{base}/panel/cases/{shop.case}")
    assert "Tags" in page.locator("#tags").inner_text()
    page.click('[data-untag="vip"]')
    page.wait_for_selector('#tags [data-tag="破损"]')
    assert page.locator('#tags [data-tag="vip"]').count() == 0
    page.screenshot(path=str(screenshots / "case-tags-en.png"), full_page=True)
    page.goto(f"{base}/panel?queue=all&tag=vip")
    assert page.locator("#queue-rows tr[data-case]").count() == 0


def test_a_macro_is_previewed_then_applied_in_both_languages(
    shop: Shop, chromium: Any, screenshots: Path
) -> None:
    base = shop.base_url
    page = _login(chromium, base, "xiaomei")
    page.goto(f"{base}/panel/cases/{shop.case}")
    # In Chinese: the macro's own title, and what it would do before anything happens.
    page.click('[data-macro="ask_for_photo"]')
    page.wait_for_selector("[data-macro-status]")
    assert page.locator("[data-macro-status]").get_attribute("data-macro-status") == "needs_info"
    assert "客户将收到" in page.locator("#macro-result").inner_text()
    assert shop.case in page.locator("[data-macro-text]").inner_text()
    page.screenshot(path=str(screenshots / "case-macro-preview-zh.png"), full_page=True)

    _language(page, "en")
    page.click('[data-macro="ask_for_photo"]')
    page.wait_for_selector("[data-macro-status]")
    assert "The customer will read:" in page.locator("#macro-result").inner_text()
    assert "Needs info" in page.locator("[data-macro-status]").inner_text()
    page.screenshot(path=str(screenshots / "case-macro-preview-en.png"), full_page=True)
    # Nothing happened yet: the case is still waiting for review.
    assert page.locator(".case-head .status").inner_text() == "Submitted"
    page.click("#macro-apply")
    page.wait_for_selector("#done")
    assert page.locator(".case-head .status").inner_text() == "Needs info"


def _assign(url: str, number: str, to: str, note: str | None = None) -> None:
    """The lead assigns the case to `to` (and writes `note` on it), as the panel would."""
    from sqlalchemy import select

    from tickets.cases.conversation import add_reply
    from tickets.cases.lifecycle import perform_action
    from tickets.context import Actor, Context
    from tickets.db import make_engine, make_sessionmaker
    from tickets.models import Agent, utcnow
    from tickets.policy.rules import Policy
    from tickets.schemas import ActionRequest, ReplyCreate
    from tickets.settings import Settings

    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        lead = s.scalar(select(Agent).where(Agent.username == "lead"))
        ctx = Context(policy=Policy(), now=utcnow(), tz=Settings(_env_file=None).tz)
        perform_action(
            session=s,
            number=number,
            request=ActionRequest(action="assign", assignee=to),
            actor=Actor("agent", lead),
            ctx=ctx,
        )
        if note:
            add_reply(
                session=s,
                number=number,
                reply=ReplyCreate(text=note, internal=True),
                actor=Actor("agent", lead),
                ctx=ctx,
            )
        s.commit()
    engine.dispose()


def test_notifications_arrive_live_with_a_badge_a_title_count_and_the_browsers_own(
    shop: Shop, fresh_db_url: str, chromium: Any, screenshots: Path
) -> None:
    base = shop.base_url
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    # The browser's own notifications, allowed and recorded (headless chromium shows none).
    context.add_init_script(
        "window.__shown = [];"
        "window.Notification = class { constructor(title) { window.__shown.push(title); }"
        " static get permission() { return 'granted'; }"
        " static requestPermission() { return Promise.resolve('granted'); } };"
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{base}/panel")
    page.fill("input[name=username]", "tom")
    page.fill("input[name=password]", password("tom"))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/panel(\?.*)?$"), timeout=LOGIN_TIMEOUT)
    page.goto(f"{base}/panel?queue=mine")
    # The stream's first event: the unread count so far (the demo's new cases in his group).
    page.wait_for_selector("#notifications[data-live]", state="attached")
    badge = page.locator("#notify-count")
    start = int(badge.inner_text()) if badge.is_visible() else 0

    _assign(fresh_db_url, shop.case, "tom", note="@tom can you call the customer? @xiaomei FYI")
    page.wait_for_function(
        f"document.getElementById('notify-count').textContent === '{start + 2}'", timeout=20_000
    )
    assert page.title().startswith(f"({start + 2}) ")
    shown = page.evaluate("window.__shown")
    assert f"{shop.case} was assigned to you" in shown
    assert f"You were mentioned on {shop.case}" in shown
    page.screenshot(path=str(screenshots / "notifications-badge-en.png"))

    # The list: opening one goes to the case and counts it read.
    page.click("#notifications")
    page.wait_for_selector("#notify-list")
    assert "can you call the customer?" in page.locator("#notify-list").inner_text()
    page.screenshot(path=str(screenshots / "notifications-list-en.png"), full_page=True)
    page.click(f'#notify-list a:has-text("{shop.case} was assigned to you")')
    page.wait_for_url(re.compile(rf"/panel/cases/{shop.case}"))
    page.wait_for_function(
        f"document.getElementById('notify-count').textContent === '{start + 1}'", timeout=20_000
    )

    # Xiaomei reads it in Chinese.
    zh = _login(chromium, base, "xiaomei")
    zh.goto(f"{base}/panel/notifications")
    assert f"有人在 {shop.case} 中提到了您" in zh.locator("#notify-list").inner_text()
    zh.screenshot(path=str(screenshots / "notifications-list-zh.png"), full_page=True)


def _phone_duplicate(url: str, number: str) -> str:
    """A complaint taken on the phone from the customer of case `number`, no order named."""
    from sqlalchemy import select

    from tickets.cases.opening import open_case
    from tickets.context import SYSTEM, Context
    from tickets.db import make_engine, make_sessionmaker
    from tickets.models import Ticket, utcnow
    from tickets.policy.rules import Policy
    from tickets.schemas import TicketCreate
    from tickets.settings import Settings

    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        original = s.scalar(select(Ticket).where(Ticket.number == number))
        assert original is not None
        ticket = open_case(
            session=s,
            request=TicketCreate.model_validate(
                {
                    "kind": "complaint",
                    "reason": "service",
                    "channel": "phone",
                    "description": "called about the same jeans",
                    "customer": {
                        "name": original.customer.name,
                        "phone": original.customer.phone,
                    },
                }
            ),
            actor=SYSTEM,
            ctx=Context(policy=Policy(), now=utcnow(), tz=Settings(_env_file=None).tz),
        )
        s.commit()
        duplicate = ticket.number
    engine.dispose()
    return duplicate


def test_link_then_merge_a_phone_duplicate_in_both_languages(
    shop: Shop, fresh_db_url: str, chromium: Any, screenshots: Path
) -> None:
    base = shop.base_url
    duplicate = _phone_duplicate(fresh_db_url, shop.case)
    page = _login(chromium, base, "xiaomei")
    page.goto(f"{base}/panel/cases/{duplicate}")
    assert "关联工单" in page.locator("#links").inner_text()
    page.fill("#link-form input[name=other]", shop.case.lower())
    page.click("#link-form button[type=submit]")
    page.wait_for_selector(f'#links [data-link="{shop.case}"]')
    page.screenshot(path=str(screenshots / "case-linked-zh.png"), full_page=True)

    _language(page, "en")
    page.click("#merge summary")
    page.fill("#merge input[name=into]", shop.case)
    page.check("#merge input[name=confirm]")
    page.click("#merge-button")
    page.wait_for_url(re.compile(rf"/panel/cases/{shop.case}\?done=merged"))
    assert "The duplicate was merged into this case." in page.locator("#done").inner_text()
    # The duplicate's history is in the target's, each entry saying where it came from.
    assert page.locator(f'[data-merged-from="{duplicate}"]').count() >= 1
    assert f"{duplicate}: called about the same jeans" in page.locator(".timeline").inner_text()
    page.screenshot(path=str(screenshots / "case-merged-en.png"), full_page=True)
    page.goto(f"{base}/panel/cases/{duplicate}")
    assert shop.case in page.locator("#merged-into").inner_text()
    assert page.locator(".case-head .status").inner_text() == "Closed"
