"""Money integrity through the real HTTP app (issue 12, "Money (high)"): who may push orders,
maker-checker over everyone who touched a refund, no unit refunded twice, the money of an order
with cases frozen, one permission check for policy exceptions.

Amounts from conftest.order_json (MONEY.md worked example): TEA nets 17.68, 17.68, 17.69
(53.05 for three), shipping 8.00, paid 237.77.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW, Api, order_json
from tickets.auth import create_token
from tickets.models import Order, Refund, Ticket

TV = {
    "sku": "TV",
    "title": "电视",
    "category": "electronics",
    "quantity": 1,
    "unit_price": "3999.00",
}


@pytest.fixture
def pusher(api: Api, sessions: sessionmaker[Session]) -> Api:
    """Alice with a second token that may also push orders (an agent a shop trusted with it)."""
    with sessions() as s:
        api.tokens["alice+orders"] = create_token(
            session=s, username="alice", now=NOW, scopes=["cases", "orders"]
        )
        s.commit()
    return api.as_("alice+orders")


def _push(api: Api, **over: Any) -> dict[str, Any]:
    r = api.post("/api/v1/orders", json={"orders": [order_json(**over)]})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _open(api: Api, **body: Any) -> dict[str, Any]:
    r = api.post("/api/v1/tickets", json={"order_no": "T1001", **body})
    assert r.status_code == 201, r.text
    case: dict[str, Any] = r.json()
    return case


def _act(api: Api, number: str, action: str, **params: Any) -> Any:
    return api.post(f"/api/v1/tickets/{number}/actions", json={"action": action, **params})


def _ok(api: Api, number: str, action: str, **params: Any) -> dict[str, Any]:
    r = _act(api, number, action, **params)
    assert r.status_code == 200, r.text
    case: dict[str, Any] = r.json()
    return case


def _to_refund_pending(api: Api, sku: str = "TEA", quantity: int = 3) -> str:
    number: str = _open(
        api, kind="return_refund", reason="no_reason", items=[{"sku": sku, "quantity": quantity}]
    )["number"]
    _ok(api, number, "approve")
    _ok(api, number, "mark_received")
    _ok(
        api, number, "inspect", results=[{"sku": sku, "quantity": quantity, "outcome": "resalable"}]
    )
    return number


UNSHIPPED_TV = {
    "status": "paid",
    "shipped_at": None,
    "delivered_at": None,
    "lines": [TV],
    "order_discount": "0",
}


# ---------------------------------------------------------------- who may push orders


def test_orders_come_only_from_a_token_with_the_orders_scope(api: Api) -> None:
    r = api.post("/api/v1/orders", json={"orders": [order_json()]})
    assert r.status_code == 403
    assert "--scope orders" in r.json()["detail"]
    assert api.get("/api/v1/orders/T1001").status_code == 404  # nothing written
    _push(api.as_("shop"))
    assert api.get("/api/v1/orders/T1001").status_code == 200
    # The integration's token pushes orders and does nothing else.
    assert api.as_("shop").get("/api/v1/tickets").status_code == 403
    r = api.as_("shop").post(
        "/api/v1/tickets",
        json={"order_no": "T1001", "kind": "complaint", "reason": "service"},
    )
    assert r.status_code == 403


# ---------------------------------------------------------------- maker-checker


def test_an_agent_who_pushed_the_order_and_opened_the_case_cannot_approve_its_refund(
    api: Api, pusher: Api
) -> None:
    _push(pusher, **UNSHIPPED_TV)
    # Refund-only on an unshipped order: auto-approval proposes it as the system.
    case = _open(
        pusher, kind="refund_only", reason="changed_mind", items=[{"sku": "TV", "quantity": 1}]
    )
    assert case["status"] == "refund_pending"
    # The TV and the shipping fee (unshipped: everything back).
    assert (case["refund"]["status"], case["refund"]["amount"]) == ("proposed", "4007.00")
    assert case["refund"]["needs_second_approval"] is True
    number = case["number"]
    r = _act(pusher, number, "approve_refund")
    assert r.status_code == 403
    assert r.json()["error"] == "second_approver_required"
    assert "a second person must approve" in r.json()["message"]
    assert "you opened the case" in r.json()["message"]
    assert "issue_refund" not in case["allowed_actions"]  # nothing approved yet
    assert _act(pusher, number, "issue_refund").status_code == 409
    # Bob had no hand in it: he approves, and then the money may go.
    assert _ok(api.as_("bob"), number, "approve_refund")["refund"]["status"] == "approved"
    assert _ok(pusher, number, "issue_refund")["status"] == "refunded"


def test_whoever_resent_the_order_or_opened_the_case_is_a_maker_too(api: Api, pusher: Api) -> None:
    _push(api.as_("shop"), lines=[TV], order_discount="0")  # delivered
    # Alice re-sends the delivered order as paid (status may change): she changed its order.
    assert _push(pusher, **UNSHIPPED_TV)["updated"] == ["T1001"]
    case = _open(
        api.as_("bob"),
        kind="refund_only",
        reason="changed_mind",
        items=[{"sku": "TV", "quantity": 1}],
    )
    number = case["number"]
    assert case["refund"]["needs_second_approval"] is True
    r = _act(api, number, "approve_refund")
    assert r.status_code == 403 and "changed its order" in r.json()["message"]
    r = _act(api.as_("bob"), number, "approve_refund")
    assert r.status_code == 403 and "opened the case" in r.json()["message"]
    case = _ok(api.as_("lena"), number, "approve_refund")
    approved = [e for e in case["events"] if e["type"] == "refund.approved"]
    assert [e["actor"] for e in approved] == ["agent:lena"]


# ---------------------------------------------------------------- no unit refunded twice


def _later(app: Any, hours: int) -> None:
    """The app's clock moved on (a second request for an order within minutes is a duplicate)."""
    app.state.clock = lambda: NOW + timedelta(hours=hours)


def test_a_closed_case_lets_its_refund_go_and_cannot_take_its_units_back(
    api: Api, app: Any
) -> None:
    _push(api.as_("shop"))
    first = _to_refund_pending(api)
    case = _ok(api, first, "propose_refund")
    assert "approve_refund" in case["allowed_actions"]
    assert "issue_refund" not in case["allowed_actions"]
    case = _ok(api, first, "approve_refund")
    assert {"issue_refund", "withdraw_refund"} <= set(case["allowed_actions"])
    assert "approve_refund" not in case["allowed_actions"]
    _ok(api, first, "escalate")
    case = _ok(api, first, "close")
    assert case["status"] == "closed"
    withdrawn = [e for e in case["events"] if e["type"] == "refund.withdrawn"]
    assert [(e["data"]["amount"], e["data"]["was"]) for e in withdrawn] == [("53.05", "approved")]
    assert case["refund"] is None
    # The units are free again: a second case refunds them, once.
    _later(app, 1)
    second = _to_refund_pending(api)
    _ok(api, second, "propose_refund")
    _ok(api.as_("bob"), second, "approve_refund")
    assert _ok(api.as_("bob"), second, "issue_refund")["refund"]["amount"] == "53.05"
    # Reopening the first cannot bring its old claim back.
    r = _act(api.as_("lena"), first, "reopen")
    assert r.status_code == 409
    assert second in r.json()["message"]
    assert api.get(f"/api/v1/tickets/{first}").json()["status"] == "closed"
    r = api.post(
        "/api/v1/orders/T1001/refund-quote",
        json={"items": [{"sku": "TEA", "quantity": 1}], "reason": "no_reason"},
    )
    assert r.status_code == 422  # the tea is in the ledger


def test_an_approved_refund_holds_its_units(
    api: Api, app: Any, sessions: sessionmaker[Session]
) -> None:
    _push(api.as_("shop"))
    first = _to_refund_pending(api)
    _ok(api, first, "propose_refund")
    _ok(api, first, "approve_refund")
    # A case closed with its refund approved (as the desk allowed before): the refund stays.
    with sessions() as s:
        s.execute(update(Ticket).where(Ticket.number == first).values(status="closed"))
        s.commit()
    _later(app, 1)
    second = _to_refund_pending(api)
    r = _act(api, second, "propose_refund")
    assert r.status_code == 422
    assert "already refunded" in r.json()["message"]
    assert api.get(f"/api/v1/tickets/{second}").json()["refund"]["eligible"] is False


def test_a_refund_can_be_withdrawn_and_proposed_again(api: Api) -> None:
    _push(api.as_("shop"))
    number = _to_refund_pending(api, "SOCKS", 1)
    assert _act(api, number, "withdraw_refund").status_code == 409  # nothing to withdraw
    assert "withdraw_refund" not in api.get(f"/api/v1/tickets/{number}").json()["allowed_actions"]
    _ok(api, number, "propose_refund")
    case = _ok(api, number, "withdraw_refund", reason="customer asked to wait")
    assert case["refund"]["status"] == "quote"
    event = next(e for e in case["events"] if e["type"] == "refund.withdrawn")
    assert event["data"]["reason"] == "customer asked to wait"
    assert _ok(api, number, "propose_refund")["refund"]["status"] == "proposed"


# ---------------------------------------------------------------- orders under their cases


def test_the_money_of_an_order_with_cases_is_frozen(api: Api) -> None:
    shop = api.as_("shop")
    _push(shop)
    number = _to_refund_pending(api)
    _ok(api, number, "propose_refund")
    for over, loc in (
        ({"currency": "USD"}, "orders.0.currency"),
        ({"shipping_fee": "12.00"}, "orders.0.shipping_fee"),
        ({"payment_method": "wechat"}, "orders.0.payment_method"),
    ):
        r = shop.post("/api/v1/orders", json={"orders": [order_json(**over)]})
        assert r.status_code == 409, over
        assert [e["loc"] for e in r.json()["errors"]] == [loc]
    lines = order_json()["lines"]
    lines[2] = {**lines[2], "unit_price": "29.99"}
    r = shop.post("/api/v1/orders", json={"orders": [order_json(lines=lines)]})
    assert r.status_code == 409
    assert r.json()["errors"][0]["loc"] == "orders.0.lines.2.unit_price"
    assert "19.99 -> 29.99" in r.json()["errors"][0]["msg"]
    order = api.get("/api/v1/orders/T1001").json()
    assert (order["currency"], order["shipping_fee"]) == ("CNY", "8.00")
    refund = api.get(f"/api/v1/tickets/{number}").json()["refund"]
    assert (refund["currency"], refund["amount"]) == ("CNY", "53.05")
    # What may change, changes.
    assert _push(shop, status="refused", address="北京市")["updated"] == ["T1001"]
    assert api.get("/api/v1/orders/T1001").json()["address"] == "北京市"


def test_a_line_correction_is_applied_and_recorded_on_the_cases(api: Api) -> None:
    shop = api.as_("shop")
    _push(shop)
    number = _to_refund_pending(api)
    lines = order_json()["lines"]
    lines[2] = {**lines[2], "title": "绿茶 250g", "no_reason_return": False}
    assert _push(shop, lines=lines)["updated"] == ["T1001"]
    order = api.get("/api/v1/orders/T1001").json()
    assert (order["lines"][2]["title"], order["lines"][2]["no_reason_return"]) == (
        "绿茶 250g",
        False,
    )
    events = api.get(f"/api/v1/tickets/{number}").json()["events"]
    corrected = [e for e in events if e["type"] == "order.corrected"]
    assert len(corrected) == 1 and corrected[0]["actor"] == "agent:shop"
    assert corrected[0]["data"]["lines"] == [
        {"sku": "TEA", "title": ["Green tea", "绿茶 250g"], "no_reason_return": [True, False]}
    ]
    assert _push(shop, lines=lines)["unchanged"] == ["T1001"]


def test_an_order_without_cases_may_change_its_shipping_and_stays_quotable(api: Api) -> None:
    shop = api.as_("shop")
    _push(shop)
    assert _push(shop, shipping_fee="12.00")["updated"] == ["T1001"]
    order = api.get("/api/v1/orders/T1001").json()
    assert (order["shipping_fee"], order["paid_total"]) == ("12.00", "241.77")
    r = api.post(
        "/api/v1/orders/T1001/refund-quote",
        json={
            "items": [{"sku": "TEA", "quantity": 3}],
            "reason": "changed_mind",
            "kind": "refund_only",
        },
    )
    assert r.status_code == 200, r.text


def test_a_case_stays_readable_when_its_order_no_longer_adds_up(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    _push(api.as_("shop"))
    number = _to_refund_pending(api)
    # The shipping fee replaced under the case (as re-sending did before money was frozen).
    with sessions() as s:
        s.execute(update(Order).where(Order.order_no == "T1001").values(shipping_fee=1200))
        s.commit()
    r = api.get(f"/api/v1/tickets/{number}")
    assert r.status_code == 200
    refund = r.json()["refund"]
    assert (refund["status"], refund["eligible"]) == ("unavailable", False)
    assert refund["reasons"]


# ---------------------------------------------------------------- one permission check


def test_issuing_needs_an_approval_that_satisfied_maker_checker(
    api: Api, pusher: Api, sessions: sessionmaker[Session]
) -> None:
    _push(pusher, **UNSHIPPED_TV)
    number = _open(
        pusher, kind="refund_only", reason="changed_mind", items=[{"sku": "TV", "quantity": 1}]
    )["number"]
    # An approval recorded without a person (as the system could before): not enough to pay.
    with sessions() as s:
        ticket_id = s.scalar(select(Ticket.id).where(Ticket.number == number))
        s.execute(update(Refund).where(Refund.ticket_id == ticket_id).values(status="approved"))
        s.commit()
    r = _act(api.as_("bob"), number, "issue_refund")
    assert r.status_code == 403
    assert "no agent approved it" in r.json()["message"]


def test_taking_a_colleagues_case_is_a_leads_right_everywhere(api: Api) -> None:
    # The bot's "take it" never took a case from a colleague; the API and the panel now agree.
    _push(api.as_("shop"))
    number = _open(api, kind="complaint", reason="service")["number"]
    _ok(api, number, "assign", assignee="alice")
    r = _act(api.as_("bob"), number, "assign", assignee="bob")
    assert r.status_code == 403
    assert "lead" in r.json()["message"]
    assert api.get(f"/api/v1/tickets/{number}").json()["assignee"] == "alice"
    # The assignee hands it on; a lead reassigns.
    assert _ok(api, number, "assign", assignee="bob")["assignee"] == "bob"
    assert _ok(api.as_("lena"), number, "assign", assignee="alice")["assignee"] == "alice"
