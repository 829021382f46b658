"""Refunds through the API: quotes without writing, the ledger, second approver, idempotent
issuing. Amounts worked by hand from MONEY.md on conftest.order_json:
unit nets JACKET 88.36; SOCKS 44.18, 44.18; TEA 17.68, 17.68, 17.69; shipping 8.00, paid 237.77.
Shipping shares by net (largest remainder over 229.77): JACKET 3.08; SOCKS 1.54, 1.54;
TEA 0.61, 0.61, 0.62 (sum 8.00)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import NOW, Api, walk_to_refund_pending
from tests.factories import order_json


def _order(api: Api, **over: Any) -> None:
    assert (
        api.as_("shop").post("/api/v1/orders", json={"orders": [order_json(**over)]}).status_code
        == 200
    )


def _quote(api: Api, **body: Any) -> Any:
    return api.post("/api/v1/orders/T1001/refund-quote", json=body)


def test_quotes_follow_the_money_rules(api: Api) -> None:
    _order(api)
    # No-reason return of both socks: their nets; the customer pays the return leg.
    q = _quote(api, items=[{"sku": "SOCKS", "quantity": 2}], reason="no_reason").json()
    assert (q["amount"], q["currency"], q["eligible"]) == ("88.36", "CNY", True)
    assert [r["method"] for r in q["routes"]] == ["alipay"]
    assert [ln["net"] for ln in q["lines"] if ln["sku"] == "SOCKS"] == ["44.18", "44.18"]
    # Quality defect: the net, plus its outbound shipping share 3.08.
    q = _quote(api, items=[{"sku": "JACKET-M", "quantity": 1}], reason="quality_defect").json()
    assert q["amount"] == "91.44"
    # ... and the return freight the customer paid, as a line of its own (12.00, under the cap).
    q = _quote(
        api,
        items=[{"sku": "JACKET-M", "quantity": 1}],
        reason="quality_defect",
        return_freight="12.00",
        return_freight_receipt=True,
    ).json()
    assert q["amount"] == "103.44"
    order_level = [a for ln in q["lines"] if ln["sku"] is None for a in ln["additions"]]
    by_rule = {a["rule"].split(":")[0]: a["amount"] for a in order_level}
    assert by_rule == {"rule 7": "3.08", "rule 8": "12.00"}  # never folded into the unit
    jacket = next(ln for ln in q["lines"] if ln["sku"] == "JACKET-M")
    assert (jacket["net"], jacket["additions"]) == ("88.36", [])


def test_unshipped_refund_only_gives_everything_back(api: Api) -> None:
    _order(api, status="paid", shipped_at=None, delivered_at=None)
    q = _quote(
        api, items=[{"sku": "TEA", "quantity": 3}], reason="changed_mind", kind="refund_only"
    ).json()
    assert q["amount"] == "54.89"  # 53.05 of tea + 1.84 of shipping


def test_bad_items_name_the_line(api: Api) -> None:
    _order(api)
    r = _quote(
        api,
        items=[{"sku": "TEA", "quantity": 4}, {"sku": "HAT", "quantity": 1}],
        reason="no_reason",
    )
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["errors"]] == ["items.0.quantity", "items.1.sku"]
    api.post(
        "/api/v1/tickets",
        json={
            "order_no": "T1001",
            "kind": "return_refund",
            "reason": "no_reason",
            "items": [{"sku": "TEA", "quantity": 2}],
        },
    )
    r = _quote(api, items=[{"sku": "TEA", "quantity": 2}], reason="no_reason")
    assert r.status_code == 422
    assert "another open case" in r.json()["errors"][0]["msg"]
    assert (
        _quote(api, items=[{"sku": "TEA", "quantity": 1}], reason="no_reason").json()["amount"]
        == "17.69"
    )  # the one unit left is the third


def test_ticket_carries_its_quote_then_its_refund(api: Api) -> None:
    _order(api)
    number = walk_to_refund_pending(api, "TEA", 3)
    case = api.get(f"/api/v1/tickets/{number}").json()
    assert (case["refund"]["status"], case["refund"]["amount"]) == ("quote", "53.05")
    api.post(f"/api/v1/tickets/{number}/actions", json={"action": "propose_refund"})
    case = api.get(f"/api/v1/tickets/{number}").json()
    assert (case["refund"]["status"], case["refund"]["amount"]) == ("proposed", "53.05")


def _tvs(api: Api, quantity: int, price: str) -> None:
    """An order of one line of TVs (no coupon), pushed by the shop's integration."""
    tvs = order_json(
        lines=[
            {
                "sku": "TV",
                "title": "电视",
                "category": "electronics",
                "quantity": quantity,
                "unit_price": price,
            }
        ],
        order_discount="0",
    )
    assert api.as_("shop").post("/api/v1/orders", json={"orders": [tvs]}).status_code == 200


def test_large_refund_needs_a_second_approver(api: Api) -> None:
    _tvs(api, 1, "3999.00")
    number = walk_to_refund_pending(api, "TV", 1)
    case = api.post(f"/api/v1/tickets/{number}/actions", json={"action": "propose_refund"}).json()
    assert case["refund"]["needs_second_approval"] is True
    r = api.post(f"/api/v1/tickets/{number}/actions", json={"action": "approve_refund"})
    assert r.status_code == 403
    # The real reason, not "your role may not": the two-person rule, its threshold, and why.
    assert r.json()["error"] == "second_approver_required"
    assert r.json()["message"] == (
        "a second person must approve refunds over 1000.00 CNY; you proposed this one"
    )
    assert (r.json()["did"], r.json()["threshold"]) == ("proposed", "1000.00")
    r = api.as_("bob").post(f"/api/v1/tickets/{number}/actions", json={"action": "approve_refund"})
    assert r.status_code == 200
    assert r.json()["refund"]["status"] == "approved"


def _later(app: Any) -> None:
    """Past the duplicate window: another case on the order is a case of its own."""
    app.state.clock = lambda: NOW + timedelta(hours=2)


def test_a_large_refund_split_into_small_ones_still_needs_a_second_approver(
    api: Api, app: Any
) -> None:
    """The threshold (1000.00) holds for the order's live refunds together: two TVs of 700.00
    refunded on two cases, each under it, and the second still needs another agent."""
    _tvs(api, 2, "700.00")  # 1400.00 in all, over the threshold (1000.00)
    first = walk_to_refund_pending(api, "TV", 1)
    for action in ("propose_refund", "approve_refund", "issue_refund"):
        r = api.post(f"/api/v1/tickets/{first}/actions", json={"action": action})
        assert r.status_code == 200, r.text
    assert r.json()["refund"]["needs_second_approval"] is False  # 700.00 alone: one person
    # The quote of the other TV already says so.
    q = _quote(api, items=[{"sku": "TV", "quantity": 1}], reason="no_reason").json()
    assert (q["amount"], q["needs_second_approval"]) == ("700.00", True)
    _later(app)
    second = walk_to_refund_pending(api, "TV", 1)
    case = api.post(f"/api/v1/tickets/{second}/actions", json={"action": "propose_refund"}).json()
    assert (case["refund"]["amount"], case["refund"]["needs_second_approval"]) == ("700.00", True)
    r = api.post(f"/api/v1/tickets/{second}/actions", json={"action": "approve_refund"})
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "second_approver_required"
    assert "a second person must approve refunds over 1000.00 CNY" in r.json()["message"]
    r = api.as_("bob").post(f"/api/v1/tickets/{second}/actions", json={"action": "approve_refund"})
    assert r.status_code == 200, r.text


def test_only_live_refunds_count_toward_the_threshold(api: Api, app: Any) -> None:
    """A proposal counts while it is live (two proposals at once: the second is flagged); a
    withdrawn one no longer does."""
    _tvs(api, 2, "700.00")  # 1400.00 in all, over the threshold (1000.00)
    first = walk_to_refund_pending(api, "TV", 1)
    _later(app)
    # A case of another kind on the other TV (one open case per kind and order).
    second = api.post(
        "/api/v1/tickets",
        json={
            "order_no": "T1001",
            "kind": "refund_only",
            "reason": "missing_item",
            "items": [{"sku": "TV", "quantity": 1}],
        },
    ).json()["number"]
    r = api.post(f"/api/v1/tickets/{second}/actions", json={"action": "approve"})
    assert r.json()["status"] == "refund_pending", r.text
    flags = []
    for number in (first, second):
        r = api.post(f"/api/v1/tickets/{number}/actions", json={"action": "propose_refund"})
        flags.append(r.json()["refund"]["needs_second_approval"])
    assert flags == [False, True]
    for number in (second, first):
        r = api.post(f"/api/v1/tickets/{number}/actions", json={"action": "withdraw_refund"})
        assert r.status_code == 200, r.text
    # Both withdrawn: a new proposal stands alone again.
    r = api.post(f"/api/v1/tickets/{second}/actions", json={"action": "propose_refund"})
    assert r.json()["refund"]["needs_second_approval"] is False


def test_issuing_twice_pays_once(api: Api) -> None:
    _order(api)
    number = walk_to_refund_pending(api, "SOCKS", 1)
    for action in ("propose_refund", "approve_refund", "issue_refund"):
        assert (
            api.post(f"/api/v1/tickets/{number}/actions", json={"action": action}).status_code
            == 200
        )
    r = api.post(f"/api/v1/tickets/{number}/actions", json={"action": "issue_refund"})
    assert r.status_code == 409
    # The ledger now holds the sock: the same unit cannot be quoted again.
    r = _quote(api, items=[{"sku": "SOCKS", "quantity": 2}], reason="no_reason")
    assert r.status_code == 422
    assert "only 1 unit" in r.json()["errors"][0]["msg"]


def test_threshold_promotion_resettles_when_the_shop_says_so(api: Api, app: Any) -> None:
    # 满 200 减 30: lines 99.90 + 2 x 49.95 + 3 x 19.99 = 259.77, coupon 30.00 on reaching
    # 200.00. Returning the jacket leaves 159.87 kept, below the threshold.
    _order(api, promotion_threshold="200.00")
    body = {"items": [{"sku": "JACKET-M", "quantity": 1}], "reason": "no_reason"}
    assert _quote(api, **body).json()["amount"] == "88.36"  # default: the allocation stands
    from tickets.policy.rules import Policy

    app.state.policy = Policy.model_validate({"refunds": {"resettle_threshold_promotions": True}})
    q = _quote(api, **body).json()
    # Re-settled: the kept items lose the 18.46 of coupon they carried (30.00 - 11.54).
    assert q["amount"] == "69.90"
    assert any("rule 5" in d["rule"] for ln in q["lines"] for d in ln["deductions"])
