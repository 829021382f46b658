"""The overdue queue in a real browser: a missed clock is red and says "Late" and by how much,
in Chinese and in English (never colour alone), and a case going overdue while the page is open
reaches the list and the sidebar's count together on the next 15-second refresh."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.browser.conftest import Shop, password
from tickets.db import make_engine, make_sessionmaker
from tickets.models import SlaClock, Ticket, utcnow
from tickets.policy.rules import CUSTOMER_CLOCKS

pytestmark = pytest.mark.browser

TIMEOUT = 15_000
LOGIN_TIMEOUT = 60_000  # the first writes of a fresh server (see test_panel_browser.py)
# The poll runs every 15 s: two rounds and some slack on a loaded machine.
POLL_TIMEOUT = 45_000
RED = "rgb(207, 34, 46)"  # --bad in panel.css


def _make_late(url: str, number: str) -> None:
    """Every shop clock of the case running and past due by 3 h 10 min (and half a minute)."""
    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        ticket_id = s.scalar(select(Ticket.id).where(Ticket.number == number))
        s.execute(
            update(SlaClock)
            .where(
                SlaClock.ticket_id == ticket_id,
                SlaClock.clock.notin_(CUSTOMER_CLOCKS),
                SlaClock.met_at.is_(None),
            )
            .values(
                state="running",
                due_at=utcnow() - timedelta(hours=3, minutes=10, seconds=30),
            )
        )
        s.commit()
    engine.dispose()


def _fresh_case(url: str, other_than: str) -> str:
    """Another fresh case of the demo shop with a running shop clock, not yet late."""
    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        number = s.scalar(
            select(Ticket.number)
            .join(SlaClock, SlaClock.ticket_id == Ticket.id)
            .where(
                Ticket.number != other_than,
                Ticket.status == "submitted",
                SlaClock.state == "running",
                SlaClock.due_at > utcnow(),
            )
            .order_by(Ticket.number)
            .limit(1)
        )
    engine.dispose()
    assert number, "the demo has no second fresh case"
    return number


def test_an_overdue_row_is_red_and_says_late_in_both_languages(
    shop: Shop, fresh_db_url: str, chromium: Any, screenshots: Path
) -> None:
    base = shop.base_url
    _make_late(fresh_db_url, shop.case)
    page = chromium.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{base}/panel")
    page.fill("input[name=username]", "xiaomei")
    page.fill("input[name=password]", password("xiaomei"))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/panel(\?.*)?$"), timeout=LOGIN_TIMEOUT)
    page.goto(f"{base}/panel?queue=overdue")

    # Xiaomei's interface is Chinese: the row is red, flagged and worded.
    sla = page.locator(f'tr[data-case="{shop.case}"] .sla')
    assert sla.get_attribute("data-sla") == "late"
    text = " ".join(sla.inner_text().split())
    assert "已逾期" in text and "已超时 3小时10分" in text, text
    assert sla.evaluate("e => getComputedStyle(e).color") == RED
    page.screenshot(path=str(screenshots / "queue-overdue-zh.png"), full_page=True)

    page.click('button[name="language"][value="en"]')
    page.wait_for_selector(
        'button[name="language"][value="en"][aria-current="true"]', timeout=LOGIN_TIMEOUT
    )
    sla = page.locator(f'tr[data-case="{shop.case}"] .sla')
    text = " ".join(sla.inner_text().split())
    assert text.startswith("⚠ Late ") and ": 3h 10m late" in text, text
    assert sla.evaluate("e => getComputedStyle(e).color") == RED
    page.screenshot(path=str(screenshots / "queue-overdue-en.png"), full_page=True)

    # Another case goes overdue while the page is open: the refresh brings it and the count.
    listed = page.locator("#queue-rows tr[data-case]").count()
    counted = page.locator('[data-queue-count="overdue"]').inner_text()
    assert counted == str(listed)
    other = _fresh_case(fresh_db_url, shop.case)
    _make_late(fresh_db_url, other)
    page.wait_for_selector(f'#queue-rows tr[data-case="{other}"]', timeout=POLL_TIMEOUT)
    assert page.locator('[data-queue-count="overdue"]').inner_text() == str(listed + 1)
    assert page.locator("#queue-rows tr[data-case]").count() == listed + 1
    assert page.locator("#match-count").inner_text().startswith(str(listed + 1))
