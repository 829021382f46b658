"""The panel has no OpenAPI document for schemathesis to read, so this walks every panel route
itself, as a logged-in lead, with each field set to values people and scripts send by accident
or on purpose: none may answer a 5xx (issue 12, "Clean errors": fix the class)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Panel
from tests.factories import make_case
from tickets.context import Context

HOSTILE = [
    "9" * 25,  # beyond any INTEGER column
    "-1",
    "²",  # a digit to str.isdigit(), not to int()
    "--5",
    "0001-01-01",
    "9999-12-31",
    "x" * 300,
    "令牌",
    "😀",
    "\x00",
    "\x07",
    "%",
    "'\"<>",
    "1e308",
    "nan",
    "",
    "AS-1@9",
]
# The fields the panel's forms and queries carry, whatever the route declares.
FIELDS = [
    "version", "q", "customer", "days", "format", "text", "script", "name", "language",
    "var_delay_days", "case", "action", "assignee", "group", "qty_0", "sku_0", "kind", "reason",
    "channel", "priority", "created_from", "created_to", "cursor", "next", "back", "username",
    "password", "login_token", "role", "active", "away", "internal", "tracking_no", "note",
]  # fmt: skip


def test_no_panel_route_answers_a_5xx_to_hostile_values(
    panel_app: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = make_case(sessions, ctx, "HV1")
    lena = Panel(panel_app)
    assert lena.login("lena").status_code == 303
    client = TestClient(
        panel_app,
        follow_redirects=False,
        raise_server_exceptions=False,
        cookies=lena.client.cookies,
    )
    answers: Counter[int] = Counter()
    server_errors = []
    routes = 0
    for route in iter_route_contexts(panel_app.routes):
        if not route.path or not route.path.startswith("/panel") or route.methods is None:
            continue
        if route.path.endswith("/stream"):
            continue  # an event stream answers for as long as the page is open: never "done"
        routes += 1
        path = (
            route.path.replace("{number}", number)
            .replace("{action}", "approve")
            .replace("{chart}", "products")
            .replace("{attachment_id}", "1")
            .replace("{agent_id}", "1")
            .replace("{token_id}", "1")
            .replace("{view_id}", "1")
            .replace("{notification_id}", "1")
        )
        for method in sorted(route.methods):
            for value in HOSTILE:
                fields = dict.fromkeys(FIELDS, value)
                if method == "GET":
                    r = client.get(path, params=fields)
                else:
                    r = client.request(method, path, data={"csrf_token": lena.csrf, **fields})
                answers[r.status_code] += 1
                if r.status_code >= 500:
                    server_errors.append(f"{method} {path} {value[:20]!r} -> {r.status_code}")
    assert not server_errors, "\n".join(server_errors)
    assert routes > 20
    # The walk reached the routes' own code, not only the log-in check.
    assert answers[200] > 50 and answers[422] > 50, answers
