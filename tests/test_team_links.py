"""Linked and merged cases: two cases linked as related (both sides show it, undone the same
way); a duplicate opened by phone merged into the bot's case of the same customer, its messages
and events shown in that case's history, itself closed as merged pointing there; refused, with
the reason and nothing changed, for another customer's case or a refund in motion."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Api, Panel, order_json, walk_to_refund_pending
from tests.factories import customer_json, make_case
from tickets.context import Context


def _open(api: Api, **body: Any) -> str:
    r = api.post("/api/v1/tickets", json=body)
    assert r.status_code == 201, r.text
    number: str = r.json()["number"]
    return number


def _phone_complaint(api: Api, phone: str = "13800138000") -> str:
    """A complaint taken on the phone, with no order named: the customer by their phone."""
    return _open(
        api,
        kind="complaint",
        reason="service",
        channel="phone",
        description="called about the same return",
        customer={"name": "李雷", "phone": phone},
    )


def test_link_two_cases_and_unlink(api: Api) -> None:
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order_json("LK1")]})
    assert r.status_code == 200
    bot = _open(
        api,
        order_no="LK1",
        kind="return_refund",
        reason="size_fit",
        items=[{"sku": "SOCKS", "quantity": 1}],
    )
    phone = _phone_complaint(api)
    r = api.post(f"/api/v1/tickets/{bot}/links", json={"number": phone.lower()})
    assert r.status_code == 200, r.text
    assert [x["number"] for x in r.json()["links"]] == [phone]
    # Both sides show the link, and linking again changes nothing.
    assert [x["number"] for x in api.get(f"/api/v1/tickets/{phone}").json()["links"]] == [bot]
    assert api.post(f"/api/v1/tickets/{phone}/links", json={"number": bot}).status_code == 200
    events = [
        e for e in api.get(f"/api/v1/tickets/{bot}").json()["events"] if e["type"] == "case.linked"
    ]
    assert [(e["actor"], e["data"]) for e in events] == [("agent:alice", {"case": phone})]
    assert api.post(f"/api/v1/tickets/{bot}/links", json={"number": bot}).status_code == 422
    assert api.post(f"/api/v1/tickets/{bot}/links", json={"number": "AS-NONE"}).status_code == 404
    r = api.client.delete(f"/api/v1/tickets/{phone}/links/{bot}", headers=api._h())
    assert r.status_code == 200 and r.json() == {"links": []}
    assert api.get(f"/api/v1/tickets/{bot}").json()["links"] == []


def test_merge_a_phone_duplicate_into_the_bots_case(api: Api) -> None:
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order_json("MG1")]})
    assert r.status_code == 200
    bot = _open(
        api,
        order_no="MG1",
        kind="return_refund",
        reason="size_fit",
        items=[{"sku": "SOCKS", "quantity": 1}],
    )
    phone = _phone_complaint(api)
    note = api.post(
        f"/api/v1/tickets/{phone}/replies",
        json={"text": "caller says the parcel is already packed", "internal": True},
    )
    assert note.status_code == 201
    version = api.get(f"/api/v1/tickets/{phone}").json()["version"]
    # Another customer's case is not a duplicate of this one.
    stranger = _phone_complaint(api, phone="13900001111")
    r = api.post(f"/api/v1/tickets/{phone}/merge", json={"into": stranger})
    assert r.status_code == 422 and "not the same customer" in r.json()["message"]
    # A stale view of the duplicate is refused.
    r = api.post(f"/api/v1/tickets/{phone}/merge", json={"into": bot, "version": version - 1})
    assert r.status_code == 409
    r = api.post(f"/api/v1/tickets/{phone}/merge", json={"into": bot, "version": version})
    assert r.status_code == 200, r.text
    target = r.json()
    assert target["number"] == bot
    # The duplicate's conversation is in the target now, and its history beside the target's.
    said = [m["text"] for m in target["messages"]]
    assert "caller says the parcel is already packed" in said
    # The duplicate's request in its own words, naming it.
    assert f"{phone}: called about the same return" in said
    taken = [e for e in target["events"] if e["data"].get("merged_from") == phone]
    assert taken and taken[0]["type"] == "case.created"
    assert any(
        e["type"] == "case.merged_in" and e["data"] == {"case": phone} for e in target["events"]
    )
    dup = api.get(f"/api/v1/tickets/{phone}").json()
    assert dup["status"] == "closed" and dup["merged_into"] == bot
    assert dup["messages"] == []
    # Merged once: not again, and not into it.
    assert api.post(f"/api/v1/tickets/{phone}/merge", json={"into": bot}).status_code == 409
    assert api.post(f"/api/v1/tickets/{bot}/merge", json={"into": phone}).status_code == 409


def test_a_case_with_a_refund_in_motion_is_not_merged(api: Api) -> None:
    assert (
        api.as_("shop").post("/api/v1/orders", json={"orders": [order_json()]}).status_code == 200
    )
    returned = walk_to_refund_pending(api, "SOCKS", 1)
    r = api.post(f"/api/v1/tickets/{returned}/actions", json={"action": "propose_refund"})
    assert r.status_code == 200, r.text
    phone = _phone_complaint(api, phone=customer_json()["phone"])
    r = api.post(f"/api/v1/tickets/{returned}/merge", json={"into": phone})
    assert r.status_code == 409
    assert "refund" in r.json()["message"] and "proposed" in r.json()["message"]
    after = api.get(f"/api/v1/tickets/{returned}").json()
    assert after["status"] == "refund_pending" and after["merged_into"] is None
    # The other way round is fine: the phone call folds into the case with the money.
    assert api.post(f"/api/v1/tickets/{phone}/merge", json={"into": returned}).status_code == 200


def test_panel_links_and_merges_from_the_case_page(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    who = {"name": "韩梅梅", "phone": "13700009999", "telegram_user_id": 7007}
    first = make_case(sessions, ctx, "MG2", customer=who)
    second = make_case(sessions, ctx, "MG3", customer=who)
    assert alice.post(f"/panel/cases/{first}/links", {"other": second}).status_code == 303
    page = alice.get(f"/panel/cases/{second}").text
    assert f'data-link="{first}"' in page
    # Without the tick, nothing is merged.
    r = alice.post(f"/panel/cases/{second}/merge", {"into": first})
    assert r.status_code == 422 and "tick the box" in r.text
    r = alice.post(f"/panel/cases/{second}/merge", {"into": first, "confirm": "1"})
    assert r.status_code == 303
    assert r.headers["location"] == f"/panel/cases/{first}?done=merged"
    target = alice.get(r.headers["location"]).text
    assert f'data-merged-from="{second}"' in target
    dup = alice.get(f"/panel/cases/{second}").text
    assert 'id="merged-into"' in dup and 'id="merge"' not in dup
