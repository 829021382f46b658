"""Orders through the API: batch upsert all-or-nothing, idempotent, errors naming the field."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import Api, order_json
from tickets.exceptions import NotFound
from tickets.models import Customer, Order
from tickets.orders.store import get_order, upsert_order
from tickets.schemas import OrderIn


def test_batch_upsert_is_idempotent(api: Api) -> None:
    batch = {"orders": [order_json("A1"), order_json("A2")]}
    assert api.as_("shop").post("/api/v1/orders", json=batch).json() == {
        "created": ["A1", "A2"],
        "updated": [],
        "unchanged": [],
    }
    assert api.as_("shop").post("/api/v1/orders", json=batch).json() == {
        "created": [],
        "updated": [],
        "unchanged": ["A1", "A2"],
    }
    order = api.get("/api/v1/orders/A1").json()
    assert order["paid_total"] == "237.77"
    assert order["lines"][2]["unit_nets"] == ["17.68", "17.68", "17.69"]
    assert api.get("/api/v1/orders/NOPE").status_code == 404


def test_an_order_number_is_found_in_any_case_and_with_spaces(api: Api) -> None:
    api.as_("shop").post("/api/v1/orders", json={"orders": [order_json("VIC-1")]})
    for typed in ("vic-1", "Vic-1", " VIC - 1 ", "VIC-1"):
        got = api.get(f"/api/v1/orders/{typed}")
        assert got.status_code == 200, typed
        assert got.json()["order_no"] == "VIC-1"
    # A case opened on the number as typed names the stored order.
    made = api.post(
        "/api/v1/tickets",
        json={"order_no": "vic-1", "kind": "complaint", "reason": "service"},
    )
    assert made.status_code == 201, made.text
    assert made.json()["order_no"] == "VIC-1"
    assert api.get("/api/v1/orders/VIC-2").status_code == 404


def test_two_orders_one_number_apart_from_case_is_no_guess(session: Session, now: datetime) -> None:
    for number in ("ab-1", "AB-1"):
        upsert_order(session=session, data=OrderIn.model_validate(order_json(number)), now=now)
    # Each found as stored; typed any other way, both match: ambiguous, so not found.
    assert get_order(session=session, order_no="ab-1").order_no == "ab-1"
    assert get_order(session=session, order_no="AB-1").order_no == "AB-1"
    with pytest.raises(NotFound):
        get_order(session=session, order_no="Ab-1")


def test_one_bad_order_writes_nothing(api: Api) -> None:
    bad = order_json("B2", currency="XYZ")
    worse = order_json("B3")
    worse["lines"][0]["unit_price"] = "-1"
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order_json("B1"), bad]})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"loc": "orders.1.currency", "msg": "unknown currency XYZ"}]
    assert "nothing was written" in r.json()["message"]
    assert api.get("/api/v1/orders/B1").status_code == 404
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [worse]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "orders.0.lines.0.unit_price"


def test_lines_of_an_order_with_cases_cannot_change(api: Api) -> None:
    api.as_("shop").post("/api/v1/orders", json={"orders": [order_json("C1")]})
    api.post("/api/v1/tickets", json={"order_no": "C1", "kind": "complaint", "reason": "service"})
    changed = order_json("C1")
    changed["lines"][0]["unit_price"] = "89.90"
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [changed]})
    assert r.status_code == 409
    assert "already has after-sales cases" in r.json()["message"]
    r = api.as_("shop").post(
        "/api/v1/orders", json={"orders": [order_json("C1", status="refused")]}
    )
    assert r.json()["updated"] == ["C1"]


def test_reimport_without_phone_keeps_the_customer(session: Session, now: datetime) -> None:
    data = order_json("D1", customer={"name": "Anon"})
    upsert_order(session=session, data=OrderIn(**data), now=now)
    _, outcome = upsert_order(session=session, data=OrderIn(**data), now=now)
    assert outcome == "unchanged"
    assert session.scalar(select(func.count()).select_from(Customer)) == 1
    assert session.scalar(select(func.count()).select_from(Order)) == 1


def test_an_order_is_read_whole_in_order(session: Session, now: datetime) -> None:
    """get_order loads lines, units, payments and customer in one joined statement: each
    collection once, in its own order, whatever the join multiplies."""
    payments = [
        {"method": "alipay", "amount": "100.00", "kind": "deposit"},
        {"method": "wechat", "amount": "137.77", "kind": "balance"},
    ]
    upsert_order(session=session, data=OrderIn(**order_json("E1", payments=payments)), now=now)
    upsert_order(session=session, data=OrderIn(**order_json("E2")), now=now)
    session.expunge_all()
    order = get_order(session=session, order_no="E1")
    assert [ln.sku for ln in order.lines] == ["JACKET-M", "SOCKS", "TEA"]
    assert [[u.unit_index for u in ln.units] for ln in order.lines] == [[1], [1, 2], [1, 2, 3]]
    assert [(p.method, p.amount) for p in order.payments] == [("alipay", 10000), ("wechat", 13777)]
    assert order.customer.phone == "13800138000"
    with pytest.raises(NotFound):
        get_order(session=session, order_no="NOPE")
