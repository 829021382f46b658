"""The JSON API's docs page works offline, as on a shop's firewalled server: every request to
another host is blocked, and Swagger UI still lists the API's operations."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from api.app import create_app
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.live import serving


def test_the_api_docs_page_needs_nothing_from_another_host(
    settings: Any, scripts: Any, fresh_db_url: str
) -> None:
    from playwright.sync_api import sync_playwright

    own = settings.model_copy(update={"database_url": fresh_db_url})
    # The server first: Playwright's sync API runs an event loop on this thread, where the
    # set-up's database calls would then be refused (tickets/db.py's guard).
    with (
        serving(create_app(own, scripts=scripts)) as live,
        sync_playwright() as playwright,
    ):
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        ours = urlsplit(live.url).netloc
        asked: list[str] = []
        blocked: list[str] = []

        def only_ours(route: Any) -> None:
            url = route.request.url
            asked.append(url)
            if urlsplit(url).netloc == ours:
                route.continue_()
            else:
                blocked.append(url)
                route.abort()

        context = chromium.new_context()
        try:
            context.route("**/*", only_ours)
            page = context.new_page()
            page.goto(f"{live.url}/api/v1/docs")
            # The operations, as Swagger UI lists them once it has read the OpenAPI document.
            page.wait_for_selector(".opblock", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert blocked == []
            assert any(p.replace("\u200b", "") == "/api/v1/tickets" for p in paths), paths
            assert any("/api/v1/orders" in p.replace("\u200b", "") for p in paths), paths
            assert f"{live.url}/api/v1/openapi.json" in asked
        finally:
            context.close()
            chromium.close()
