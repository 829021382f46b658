"""The team tools over the JSON API, through real HTTP with agents' tokens: macros listed,
previewed (nothing kept) and applied with the action's checks; an agent's saved views kept,
renamed and deleted, only their own; an agent's notifications listed and marked read, only
their own. Same core as the panel; bad input is a 422 naming the field, nothing written."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Api
from tests.factories import order_json
from tickets.models import OutboxMessage, SavedView


def _case(api: Api, order_no: str) -> str:
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order_json(order_no)]})
    assert r.status_code == 200, r.text
    r = api.post(
        "/api/v1/tickets",
        json={"order_no": order_no, "kind": "complaint", "reason": "service", "channel": "phone"},
    )
    assert r.status_code == 201, r.text
    number: str = r.json()["number"]
    return number


def _send(api: Api, method: str, url: str, **kw: Any) -> Any:
    return api.client.request(method, url, headers=api._h(), **kw)


def _outbox(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


def test_macros_listed_previewed_and_applied(api: Api, sessions: sessionmaker[Session]) -> None:
    every = api.get("/api/v1/macros")
    assert every.status_code == 200, every.text
    names = [m["name"] for m in every.json()["data"]]
    assert names[:2] == ["ask_for_photo", "refuse_insufficient_evidence"]
    photo = every.json()["data"][0]
    assert photo["action"] == "request_info"
    assert photo["title"]["en"] == "Ask for a photo"
    number = _case(api, "MA1")
    case = api.get(f"/api/v1/tickets/{number}").json()
    usable = api.get(f"/api/v1/macros?number={number}").json()["data"]
    assert {m["action"] for m in usable} <= set(case["allowed_actions"])
    assert "ask_for_photo" in [m["name"] for m in usable]
    # The preview: where the case would go and the customer's words; nothing kept.
    sent = _outbox(sessions)
    url = f"/api/v1/tickets/{number}/macros/ask_for_photo"
    r = api.post(f"{url}/preview", json={"version": case["version"]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "needs_info"
    assert any("一张能看清问题的近照" in t for t in r.json()["texts"]), r.json()
    assert api.get(f"/api/v1/tickets/{number}").json()["status"] == case["status"]
    assert _outbox(sessions) == sent
    # A stale version: refused as the action would be, nothing kept.
    stale = api.post(f"{url}/apply", json={"version": case["version"] + 5})
    assert stale.status_code == 409, stale.text
    assert api.get(f"/api/v1/tickets/{number}").json()["status"] == case["status"]
    r = api.post(f"{url}/apply", json={"version": case["version"]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "needs_info"
    assert _outbox(sessions) > sent


def test_macros_refuse_bad_input_and_other_tokens(api: Api) -> None:
    number = _case(api, "MA2")
    base = f"/api/v1/tickets/{number}/macros"
    r = api.post(f"{base}/no_such_macro/preview", json={})
    assert r.status_code == 404 and "no_such_macro" in r.json()["message"]
    assert api.post(f"{base}/Bad Name/preview", json={}).status_code == 422
    r = api.post(f"{base}/ask_for_photo/preview", json={"version": "x"})
    assert r.status_code == 422 and "version" in r.text
    assert api.post(f"{base}/ask_for_photo/apply", json={"what": 1}).status_code == 422
    assert (
        api.post("/api/v1/tickets/AS-NOPE/macros/ask_for_photo/preview", json={}).status_code == 404
    )
    assert api.get("/api/v1/macros?number=AS-NOPE").status_code == 404
    assert api.get("/api/v1/macros?number=" + "9" * 41).status_code == 422
    # An orders-only token does not work cases; no token is a 401.
    assert api.as_("shop").get("/api/v1/macros").status_code == 403
    assert api.client.get("/api/v1/macros").status_code == 401


def test_saved_views_are_each_agents_own(api: Api, sessions: sessionmaker[Session]) -> None:
    r = api.post(
        "/api/v1/views", json={"name": " My  urgent ", "query": "priority=urgent&cursor=x"}
    )
    assert r.status_code == 201, r.text
    view = r.json()
    assert (view["name"], view["query"]) == ("My urgent", "priority=urgent")
    assert [v["name"] for v in api.get("/api/v1/views").json()["data"]] == ["My urgent"]
    # The same name again: 409 naming it; an unknown filter or a bad body: 422 naming it.
    again = api.post("/api/v1/views", json={"name": "My urgent", "query": ""})
    assert again.status_code == 409, again.text
    bad = api.post("/api/v1/views", json={"name": "x", "query": "drop=table"})
    assert bad.status_code == 422 and "drop" in bad.json()["message"]
    assert api.post("/api/v1/views", json={"name": "", "query": ""}).status_code == 422
    assert api.post("/api/v1/views", json={"name": "n" * 500}).status_code == 422
    assert api.post("/api/v1/views", json={"name": "n", "extra": 1}).status_code == 422
    # Bob sees none of Alice's, and cannot rename or delete hers.
    bob = api.as_("bob")
    assert bob.get("/api/v1/views").json()["data"] == []
    assert (
        _send(bob, "PATCH", f"/api/v1/views/{view['id']}", json={"name": "mine"}).status_code == 404
    )
    assert _send(bob, "DELETE", f"/api/v1/views/{view['id']}").status_code == 404
    r = _send(api, "PATCH", f"/api/v1/views/{view['id']}", json={"name": "Urgent"})
    assert r.status_code == 200 and r.json()["name"] == "Urgent"
    assert _send(api, "DELETE", f"/api/v1/views/{view['id']}").status_code == 204
    assert _send(api, "DELETE", f"/api/v1/views/{view['id']}").status_code == 404
    assert _send(api, "DELETE", "/api/v1/views/99999999999").status_code == 422
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(SavedView)) == 0


def test_notifications_listed_and_marked_read_only_ones_own(api: Api) -> None:
    # Alice opens two cases in the service group: Lena (service) hears of both.
    numbers = [_case(api, "MN1"), _case(api, "MN2")]
    lena = api.as_("lena")
    r = lena.get("/api/v1/notifications")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["unread"] == 2
    assert [(n["kind"], n["number"]) for n in got["data"]] == [
        ("new_case", numbers[1]),
        ("new_case", numbers[0]),
    ]
    assert all(n["read_at"] is None and n["by"] == "agent:alice" for n in got["data"])
    older, newer = got["data"][1]["id"], got["data"][0]["id"]
    # Polling: those after an id, oldest first.
    after = lena.get(f"/api/v1/notifications?after={older}").json()["data"]
    assert [n["id"] for n in after] == [newer]
    # Alice hears nothing of what she did, and cannot mark Lena's.
    assert api.get("/api/v1/notifications").json() == {"data": [], "unread": 0}
    assert api.post(f"/api/v1/notifications/{older}/read").status_code == 404
    r = lena.post(f"/api/v1/notifications/{older}/read")
    assert r.status_code == 200 and r.json()["read_at"] is not None
    assert lena.get("/api/v1/notifications").json()["unread"] == 1
    assert lena.post("/api/v1/notifications/read").json()["unread"] == 0
    assert lena.get("/api/v1/notifications").json()["unread"] == 0
    # Bounded: a limit out of range or a huge id is a 422 naming it.
    r = lena.get("/api/v1/notifications?limit=100000")
    assert r.status_code == 422 and "limit" in r.text
    assert lena.get("/api/v1/notifications?after=99999999999").status_code == 422
    assert lena.post("/api/v1/notifications/99999999999/read").status_code == 422
