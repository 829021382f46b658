"""Hostile numbers and counts: refused with a 4xx naming the field, before any work, nothing
written (issue 12, "The desk stays up")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Api, Panel, locs
from tests.factories import make_case, order_json, write_csv, xlsx_one_line
from tickets.limits import Limits
from tickets.models import Order, OrderUnit
from tickets.money import AmountError, parse_amount

# The shared fixtures of the panel's HTTP tests.

NOW_IMPORT = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)

HOSTILE_AMOUNTS = ["1e300000", "1E+30", "NaN", "Infinity", "-1", "0x10", "1_000", "١٢", "9" * 5000]


@pytest.mark.parametrize("text", HOSTILE_AMOUNTS)
def test_the_one_money_parser_refuses_what_is_not_plain_digits(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text, "CNY")


def test_the_money_parser_knows_decimals_and_the_ceiling() -> None:
    assert parse_amount("19.99", "CNY") == 1999
    assert parse_amount("500", "JPY") == 500
    assert parse_amount(Decimal("20.0"), "CNY") == 2000
    with pytest.raises(AmountError, match="2 decimal places"):
        parse_amount("0.001", "CNY")
    with pytest.raises(AmountError, match="0 decimal places"):
        parse_amount("5.5", "JPY")
    with pytest.raises(AmountError, match="largest amount"):
        parse_amount(Decimal("1E+300000"), "CNY")
    with pytest.raises(AmountError, match="largest amount"):
        parse_amount("1000.01", "CNY", maximum=1000)


def _count(sessions: sessionmaker[Session], what: Any) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(what)) or 0)


@pytest.mark.parametrize("field", ["unit_price", "discount", "gift_value"])
def test_an_exponent_price_is_a_422_naming_the_field(
    api: Api, sessions: sessionmaker[Session], field: str
) -> None:
    order = order_json("H1")
    order["lines"][1][field] = "1e300000"
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == f"orders.0.lines.1.{field}"
    assert "not an amount" in r.json()["errors"][0]["msg"]
    assert _count(sessions, Order) == 0


def test_order_money_fields_are_bounded(api: Api, sessions: sessionmaker[Session]) -> None:
    for field in ("shipping_fee", "order_discount", "free_shipping_threshold"):
        r = api.as_("shop").post(
            "/api/v1/orders", json={"orders": [order_json("H2", **{field: "1e99"})]}
        )
        assert r.status_code == 422, field
        assert r.json()["errors"][0]["loc"] == f"orders.0.{field}"
    # JSON numbers too: 1e20 is a float, far over any amount.
    order = order_json("H2")
    order["lines"][0]["unit_price"] = 1e20
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "orders.0.lines.0.unit_price"
    payments = [{"method": "alipay", "amount": "1e300000"}]
    r = api.as_("shop").post(
        "/api/v1/orders", json={"orders": [order_json("H2", payments=payments)]}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "orders.0.payments.0.amount"
    assert _count(sessions, Order) == 0


def test_the_shop_ceiling_on_amounts_is_a_setting(app: Any, api: Api) -> None:
    app.state.settings = app.state.settings.model_copy(update={"max_amount": Decimal(50)})
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order_json("H3")]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "orders.0.lines.0.unit_price"
    assert "largest amount accepted (50)" in r.json()["errors"][0]["msg"]


def test_a_line_of_100000_units_is_refused_before_any_row(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    order = order_json("Q1")
    order["lines"][0]["quantity"] = 100_000
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "orders.0.lines.0.quantity"
    assert "units on one line" in r.json()["errors"][0]["msg"]
    assert _count(sessions, OrderUnit) == 0


def test_units_per_order_lines_and_batches_are_limited(
    app: Any, api: Api, sessions: sessionmaker[Session]
) -> None:
    order = order_json("Q2")
    for line in order["lines"]:
        line["quantity"] = 900
    settings = app.state.settings
    app.state.settings = settings.model_copy(update={"limit_units_per_order": 2000})
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order]})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"loc": "orders.0.lines", "msg": "more than 2000 units on one order (the shop's limit)"}
    ]
    app.state.settings = settings.model_copy(update={"limit_orders_per_batch": 2})
    batch = [order_json(f"Q3-{i}") for i in range(3)]
    r = api.as_("shop").post("/api/v1/orders", json={"orders": batch})
    assert r.status_code == 422
    assert "more than 2 orders in one batch" in r.json()["message"]
    # The hard ceiling of the schema holds whatever the settings say.
    many = order_json(
        "Q4", lines=[order_json()["lines"][0] | {"sku": f"S{i}"} for i in range(1001)]
    )
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [many]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "orders.0.lines"
    assert _count(sessions, Order) == 0


def test_items_per_case_request_are_limited(app: Any, api: Api) -> None:
    api.as_("shop").post("/api/v1/orders", json={"orders": [order_json("Q5")]})
    app.state.settings = app.state.settings.model_copy(update={"limit_items_per_request": 2})
    items = [{"sku": s, "quantity": 1} for s in ("JACKET-M", "SOCKS", "TEA")]
    r = api.post(
        "/api/v1/tickets",
        json={
            "order_no": "Q5",
            "kind": "return_refund",
            "reason": "quality_defect",
            "items": items,
        },
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "items"
    r = api.post(
        "/api/v1/orders/Q5/refund-quote", json={"items": items, "reason": "quality_defect"}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "items"


def test_a_script_preview_with_an_exponent_amount_is_a_422(api: Api) -> None:
    r = api.post(
        "/api/v1/scripts/compensation_coupon/preview",
        json={
            "variables": {
                "customer_name": "Emma",
                "reason": "a late parcel",
                "valid_until": "2026-12-31",
                "coupon_amount": "1e300000 CNY",
            },
            "language": "en",
        },
    )
    assert r.status_code == 422
    assert "coupon_amount" in r.json()["message"]


def test_script_variables_are_counted_and_sized(api: Api, app: Any) -> None:
    r = api.post(
        "/api/v1/scripts/compensation_coupon/preview",
        json={"variables": {f"v{i}": "x" for i in range(101)}},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "variables"
    r = api.post(
        "/api/v1/scripts/compensation_coupon/preview",
        json={"variables": {"amount": {"nested": [1, 2]}}},
    )
    assert r.status_code == 422
    app.state.settings = app.state.settings.model_copy(update={"limit_text_max": 100})
    r = api.post(
        "/api/v1/scripts/compensation_coupon/preview", json={"variables": {"note": "x" * 101}}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "variables.note"


def test_default_limits_are_far_above_a_real_shop() -> None:
    limits = Limits()
    assert limits.units_per_line >= 1000 and limits.lines_per_order >= 200


def test_an_exchange_rate_and_a_case_version_are_bounded(api: Api) -> None:
    r = api.as_("shop").post(
        "/api/v1/orders", json={"orders": [order_json("R1", exchange_rate="1e300000")]}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "orders.0.exchange_rate"
    api.as_("shop").post("/api/v1/orders", json={"orders": [order_json("R2")]})
    number = api.post(
        "/api/v1/tickets", json={"order_no": "R2", "kind": "complaint", "reason": "service"}
    ).json()["number"]
    r = api.post(f"/api/v1/tickets/{number}/actions", json={"action": "assign", "version": 10**25})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "version"


def test_the_panels_script_fill_refuses_an_exponent_and_a_huge_value(
    alice: Panel, sessions: sessionmaker[Session], ctx: Any
) -> None:
    number = make_case(sessions, ctx, "P1")
    url = f"/panel/cases/{number}/script"
    query = {
        "name": "compensation_coupon",
        "language": "en",
        "var_reason": "a late parcel",
        "var_valid_until": "2026-12-31",
    }
    r = alice.get(url, params={**query, "var_coupon_amount": "1e300000 CNY"})
    assert r.status_code == 200
    # Refused at once, naming the variable in words (the panel's own wording, i16-words).
    assert 'data-code="invalid_variable"' in r.text
    assert "“Coupon amount” is not a value this script takes" in r.text
    r = alice.get(url, params={**query, "var_reason": "x" * 6000})
    assert r.status_code == 200
    assert "more than 5000 characters" in r.text


def test_inspection_results_are_limited(api: Api, app: Any) -> None:
    api.as_("shop").post("/api/v1/orders", json={"orders": [order_json("I1")]})
    number = api.post(
        "/api/v1/tickets",
        json={
            "order_no": "I1",
            "kind": "return_refund",
            "reason": "size_fit",
            "items": [{"sku": "SOCKS", "quantity": 2}],
        },
    ).json()["number"]
    for action in ("approve", "mark_in_transit", "mark_received"):
        extra = {"tracking_no": "SF1"} if action == "mark_in_transit" else {}
        assert (
            api.post(
                f"/api/v1/tickets/{number}/actions", json={"action": action, **extra}
            ).status_code
            == 200
        )
    app.state.settings = app.state.settings.model_copy(update={"limit_results_per_inspect": 1})
    results = [{"sku": "SOCKS", "quantity": 1, "outcome": "resalable"}] * 2
    r = api.post(
        f"/api/v1/tickets/{number}/actions", json={"action": "inspect", "results": results}
    )
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"loc": "results", "msg": "more than 1 results (the shop's limit)"}
    ]
    over = [{"sku": "SOCKS", "quantity": 1, "outcome": "resalable"}] * 1001
    r = api.post(f"/api/v1/tickets/{number}/actions", json={"action": "inspect", "results": over})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "results"


def test_an_import_with_hostile_numbers_names_each_cell(tmp_path: Any, session: Session) -> None:
    from tickets.exceptions import InvalidInput
    from tickets.orders.importer import import_orders

    header = ["order_no", "status", "placed_at", "sku", "quantity", "unit_price", "exchange_rate"]
    row = ["X1", "paid", "2024-03-01T10:00:00+08:00", "A", "9" * 5000, "1e300000", "1e300000"]
    path = write_csv(tmp_path / "hostile.csv", [header, row])
    with pytest.raises(InvalidInput) as exc:
        import_orders(session=session, path=path, now=NOW_IMPORT)
    found = locs(exc)
    assert "too large" in found["line 2, quantity"]
    assert "not an amount" in found["line 2, unit_price"]
    # A spreadsheet's float cell of 1e300 is refused before any decimal arithmetic.
    path = xlsx_one_line(tmp_path, unit_price=1e300)
    with pytest.raises(InvalidInput) as exc:
        import_orders(session=session, path=path, now=NOW_IMPORT)
    assert "largest amount" in locs(exc)["line 2, unit_price"]
    # Within the schema's ceilings but over the shop's: the core's limits name the line.
    path = xlsx_one_line(tmp_path, quantity=5000)
    with pytest.raises(InvalidInput) as exc:
        import_orders(session=session, path=path, now=NOW_IMPORT)
    assert "units on one line" in next(iter(locs(exc).values()))
