"""Discount allocation when an order is recorded (MONEY.md rule 3), through the real upsert."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tests.conftest import order_json
from tickets.exceptions import InvalidInput
from tickets.money import allocate, to_minor
from tickets.orders.store import order_to_read, upsert_order
from tickets.schemas import OrderIn


def test_money_md_example_unit_nets(session: Session, now: datetime) -> None:
    order, outcome = upsert_order(session=session, data=OrderIn(**order_json()), now=now)
    assert outcome == "created"
    read = order_to_read(order)
    nets = [line.unit_nets for line in read.lines]
    # 30.00 shared 11.54 / 11.54 / 6.92, then across units; the last unit takes the cent.
    assert nets == [["88.36"], ["44.18", "44.18"], ["17.68", "17.68", "17.69"]]
    # Paid: goods 259.77 - coupon 30.00 + shipping 8.00.
    assert read.paid_total == "237.77"
    assert [p.amount for p in read.payments] == ["237.77"]


def test_upsert_again_changes_nothing(session: Session, now: datetime) -> None:
    upsert_order(session=session, data=OrderIn(**order_json()), now=now)
    _, outcome = upsert_order(session=session, data=OrderIn(**order_json()), now=now)
    assert outcome == "unchanged"
    _, outcome = upsert_order(
        session=session, data=OrderIn(**order_json(status="refused")), now=now
    )
    assert outcome == "updated"


def test_payments_must_add_up(session: Session, now: datetime) -> None:
    data = order_json(payments=[{"method": "alipay", "amount": "200.00"}])
    with pytest.raises(InvalidInput) as err:
        upsert_order(session=session, data=OrderIn(**data), now=now)
    assert err.value.errors[0]["loc"] == "order.payments"
    assert "237.77" in err.value.errors[0]["msg"]


def test_too_many_decimals_named(session: Session, now: datetime) -> None:
    data = order_json()
    data["lines"][1]["unit_price"] = "49.955"
    with pytest.raises(InvalidInput) as err:
        upsert_order(session=session, data=OrderIn(**data), now=now)
    assert err.value.errors == [
        {"loc": "order.lines.1.unit_price", "msg": "49.955 has more than 2 decimal places for CNY"}
    ]


def test_yen_has_no_minor_unit() -> None:
    assert to_minor("1200", "JPY") == 1200
    with pytest.raises(ValueError, match="more than 0 decimal"):
        to_minor("12.5", "JPY")


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(min_value=0, max_value=10**9),
    weights=st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=12),
)
def test_allocation_parts_sum_to_whole(total: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        weights = [*weights[:-1], 1]
    parts = allocate(total, weights)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)
    # Each part is within one minor unit of its exact share.
    for p, w in zip(parts, weights, strict=True):
        assert abs(p * sum(weights) - total * w) < sum(weights)
