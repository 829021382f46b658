"""The panel's webhooks page in a real browser: an admin subscribes the shop's URL to case
events, copies the signing secret shown once, finds the subscription (and no secret) after a
reload, opens its delivery log, and switches delivery off."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import Shop, password

pytestmark = pytest.mark.browser

TIMEOUT = 15_000
LOGIN_TIMEOUT = 60_000  # the first writes of a fresh server (see test_panel_browser.py)


def test_an_admin_subscribes_a_url_and_switches_it_off(shop: Shop, chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{shop.base_url}/panel")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", password("admin"))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/panel(\?.*)?$"), timeout=LOGIN_TIMEOUT)

    page.goto(f"{shop.base_url}/panel/admin")
    page.click("nav.tabs >> text=Webhooks")
    page.wait_for_url(re.compile(r"/panel/admin/webhooks$"))
    assert "No webhook yet." in page.inner_text("#webhooks")
    page.fill("#new-webhook input[name=url]", "https://erp.example.com/aftersales")
    page.check('#new-webhook input[value="case.created"]')
    page.check('#new-webhook input[value="inspection.recorded"]')
    page.click("#new-webhook button[type=submit]")
    secret = page.inner_text("#secret-value")
    assert secret.startswith("whsec_")
    row = page.locator("#webhooks tr[data-webhook]")
    assert row.count() == 1
    assert "case.created, inspection.recorded" in row.inner_text()

    # Shown once: the page read again lists it without the secret.
    page.goto(f"{shop.base_url}/panel/admin/webhooks")
    assert secret not in page.content()
    page.click("#webhooks tr[data-webhook] td.mono a")
    page.wait_for_url(re.compile(r"/panel/admin/webhooks/\d+$"))
    assert "Nothing sent yet." in page.inner_text("#deliveries")

    page.goto(f"{shop.base_url}/panel/admin/webhooks")
    page.click("#webhooks tr[data-webhook] >> text=Switch off")
    page.wait_for_selector("text=Saved.")
    assert "Off" in page.inner_text("#webhooks tr[data-webhook]")
    context.close()
