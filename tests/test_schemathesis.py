"""schemathesis over /api/v1/openapi.json: no request a client can send gets a 5xx.

Its coverage phase (boundary and invalid values of every parameter), fuzzing and stateful phase
(links between operations: an order read, quoted, a case read, acted on, replied to ...) run
against the real app in this process, with a valid token, on a small shop, within a bounded
number of examples per operation (issue 12, "Proof"). The engine is the one the `schemathesis`
command runs; a failure lists each 5xx with the request that caused it."""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis import engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events

from tests.conftest import NOW, Api, order_json
from tickets.auth import create_token

MAX_EXAMPLES = 25


def _config(token: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "headers": {"Authorization": f"Bearer {token}"},
            # The one property: never a server error (the API's own tests check the answers).
            "checks": {"enabled": False, "not_a_server_error": {"enabled": True}},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True},
            },
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "seed": 12,
        }
    )


def _shop(api: Api) -> None:
    """Two orders (one delivered, one paid) and a case to act on."""
    paid = order_json("T1002", status="paid", shipped_at=None, delivered_at=None)
    for order in (order_json("T1001"), paid):
        r = api.as_("shop").post("/api/v1/orders", json={"orders": [order]})
        assert r.status_code == 200, r.text
    r = api.post(
        "/api/v1/tickets",
        json={
            "order_no": "T1001",
            "kind": "return_refund",
            "reason": "size_fit",
            "items": [{"sku": "SOCKS", "quantity": 1}],
        },
    )
    assert r.status_code == 201, r.text


def _server_errors(event: Any) -> list[str]:
    found = []
    recorder = event.recorder
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.status != Status.FAILURE:
                continue
            interaction = recorder.interactions.get(case_id)
            request = interaction.request if interaction else None
            response = interaction.response if interaction else None
            body = (request.body or b"")[:300] if request else b""
            status = response.status_code if response else "?"
            where = f"{request.method} {request.uri}" if request else recorder.label
            found.append(f"[{event.phase}] {where} {body!r} -> {status}")
    return found


def test_no_request_is_a_server_error(app: Any, api: Api, sessions: Any) -> None:
    _shop(api)
    # A lead's token with every scope, so every operation is reached (not only refused).
    with sessions() as s:
        token = create_token(session=s, username="lena", now=NOW, scopes=["cases", "orders"])
        s.commit()
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, config=_config(token))
    problems: list[str] = []
    phases: set[str] = set()
    scenarios = 0
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            scenarios += 1
            phases.add(str(event.phase))
            if event.status == Status.FAILURE:
                problems.extend(_server_errors(event))
        elif isinstance(event, events.NonFatalError):
            # An exception out of the app (the test transport raises it): a 500 in production.
            problems.append(f"[{event.phase}] {event.label}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            problems.append(f"fatal: {event.exception!r}")
    unique = list(dict.fromkeys(problems))
    assert not unique, f"{len(unique)} server error(s):\n" + "\n".join(unique[:30])
    assert {"coverage", "stateful"} <= {p.lower().rsplit(".", 1)[-1] for p in phases}, phases
    assert scenarios > 10
