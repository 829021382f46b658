"""Gifts as DESIGN.md's Order JSON has them (MONEY.md rule 6): a gift is its own line, free,
with its declared value in `gift_value`, and may name the paid line it came with (`gift_for`).
Kept on a customer-choice return, its value is deducted from the returned units, shared like a
coupon (in proportion to the nets, largest remainder, to the cent). Worked by hand, the
arithmetic beside each; then properties; then the order contract through the API and the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import Api
from tests.factories import order_json, write_csv, write_xlsx
from tickets.money import allocate, to_minor
from tickets.orders.importer import parse_order_file
from tickets.orders.store import unit_nets
from tickets.refunds.calculator import (
    R_GIFT,
    QuoteError,
    QuoteLine,
    QuoteOrder,
    QuotePayment,
    QuoteRequest,
    QuoteUnit,
    quote_refund,
)


def m(value: str) -> int:
    return to_minor(value, "CNY")


def order(lines: list[tuple[Any, ...]], coupon: str = "0") -> QuoteOrder:
    """(sku, quantity, unit_price[, gift_value[, gift_for]]); unit ids 1, 2, 3... across lines;
    one alipay payment of the whole (rule 3 allocation of the coupon at order time)."""
    specs = []
    for sku, qty, price, *rest in lines:
        gift = m(rest[0]) if rest else 0
        gift_for = rest[1] if len(rest) > 1 else None
        specs.append((sku, qty, m(price), gift, gift_for))
    nets = unit_nets([(q, p * q) for _, q, p, _, _ in specs], m(coupon))
    out, next_id = [], 1
    for (sku, qty, price, gift, gift_for), line_nets in zip(specs, nets, strict=True):
        units = tuple(QuoteUnit(next_id + j, n) for j, n in enumerate(line_nets))
        next_id += qty
        out.append(QuoteLine(sku, qty, price, units, gift_value=gift, gift_for=gift_for))
    total = sum(sum(n) for n in nets)
    return QuoteOrder(
        currency="CNY",
        status="delivered",
        lines=tuple(out),
        payments=(QuotePayment(1, "alipay", total),),
        order_discount=m(coupon),
    )


def back(*units: int, reason: str = "no_reason", **fields: Any) -> QuoteRequest:
    return QuoteRequest(kind="return_refund", reason=reason, unit_ids=units, **fields)


def refunds(o: QuoteOrder, request: QuoteRequest) -> tuple[str, list[str]]:
    q = quote_refund(o, request)
    assert q.eligible, q.reasons
    return f"{q.amount / 100:.2f}", [f"{u.refund / 100:.2f}" for u in q.lines]


# A 100.00 (unit 1), B 2 x 50.00 (units 2, 3), a towel given with the order, declared 30.00
# (unit 4, net 0). Shares of 30.00 by the nets 100:50:50 = 15.00, 7.50, 7.50.
TOWEL = order([("A", 1, "100.00"), ("B", 2, "50.00"), ("TOWEL", 1, "0", "30.00")])
# The same, the towel declared as B's gift: shares of 30.00 over B's two units: 15.00, 15.00.
TOWEL_B = order([("A", 1, "100.00"), ("B", 2, "50.00"), ("TOWEL", 1, "0", "30.00", "B")])
# C 3 x 33.33 (nets 33.33 each), a 10.00 gift: allocate(1000, [3333] * 3) = 3.33, 3.33, 3.34
# (the cent left over goes to the later position on equal remainders).
THIRDS = order([("C", 3, "33.33"), ("GIFT", 1, "0", "10.00")])
# MONEY.md rule 3's order (nets 88.36 | 44.18 44.18 | 17.68 17.68 17.69, sum 229.77) with a
# 10.00 gift: 1000 x net / 22977 = 384.56 | 192.28 192.28 | 76.94 76.94 76.99; floors 996,
# the 4 cents left to the largest remainders (unit 6 .99, units 4 and 5 .94, unit 1 .56):
# 3.85 | 1.92 1.92 | 0.77 0.77 0.77 (sum 10.00).
RULE3 = order(
    [("A", 1, "99.90"), ("B", 2, "49.95"), ("C", 3, "19.99"), ("GIFT", 1, "0", "10.00")],
    coupon="30.00",
)


@pytest.mark.parametrize(
    ("o", "request_", "amount", "units"),
    [
        # A back, towel kept: 100.00 - 15.00 = 85.00 (the old reading deducted nothing).
        (TOWEL, back(1), "85.00", ["85.00"]),
        # One B back: 50.00 - 7.50 = 42.50.
        (TOWEL, back(2), "42.50", ["42.50"]),
        # Everything paid back, towel kept: 200.00 - 30.00 = 170.00.
        (TOWEL, back(1, 2, 3), "170.00", ["85.00", "42.50", "42.50"]),
        # The towel in the parcel too: nothing deducted, 200.00 (its own unit refunds 0.00).
        (TOWEL, back(1, 2, 3, 4), "200.00", ["100.00", "50.00", "50.00", "0.00"]),
        # The towel named as returned: 100.00.
        (TOWEL, back(1, gifts_returned=frozenset({"TOWEL"})), "100.00", ["100.00"]),
        # The towel in the request but missing from the parcel: still kept, 100.00 - 15.00.
        (TOWEL, back(1, 4, outcomes={4: "missing"}), "85.00", ["85.00", "0.00"]),
        # A quality return: the gift is never deducted (rule 6), 100.00.
        (TOWEL, back(1, reason="quality_defect"), "100.00", ["100.00"]),
        # gift_for B: A owes nothing of it, 100.00; one B back: 50.00 - 15.00 = 35.00.
        (TOWEL_B, back(1), "100.00", ["100.00"]),
        (TOWEL_B, back(2), "35.00", ["35.00"]),
        (TOWEL_B, back(2, 3), "70.00", ["35.00", "35.00"]),
        # Its paid line named as returning its gift (as the older form says it): 50.00.
        (TOWEL_B, back(2, gifts_returned=frozenset({"B"})), "50.00", ["50.00"]),
        # Thirds: 33.33 - 3.33 = 30.00, 30.00, and 33.33 - 3.34 = 29.99; all three:
        # 99.99 - 10.00 = 89.99.
        (THIRDS, back(1), "30.00", ["30.00"]),
        (THIRDS, back(3), "29.99", ["29.99"]),
        (THIRDS, back(1, 2, 3), "89.99", ["30.00", "30.00", "29.99"]),
        # Rule 3's order: A 88.36 - 3.85 = 84.51; C's third unit 17.69 - 0.77 = 16.92.
        (RULE3, back(1), "84.51", ["84.51"]),
        (RULE3, back(6), "16.92", ["16.92"]),
        # Everything: 229.77 - 10.00 = 219.77.
        (
            RULE3,
            back(1, 2, 3, 4, 5, 6),
            "219.77",
            ["84.51", "42.26", "42.26", "16.91", "16.91", "16.92"],
        ),
    ],
    ids=[
        "towel-a",
        "towel-one-b",
        "towel-all-paid",
        "towel-in-parcel",
        "towel-named-returned",
        "towel-missing-from-parcel",
        "towel-quality",
        "gift-for-b-a",
        "gift-for-b-one",
        "gift-for-b-both",
        "gift-for-b-named-by-its-line",
        "thirds-first",
        "thirds-last",
        "thirds-all",
        "rule3-a",
        "rule3-c3",
        "rule3-all",
    ],
)
def test_gift_line_by_hand(
    o: QuoteOrder, request_: QuoteRequest, amount: str, units: list[str]
) -> None:
    assert refunds(o, request_) == (amount, units)
    q = quote_refund(o, request_)
    has_gift = any(a.rule == R_GIFT for u in q.lines for a in u.deductions)
    assert has_gift == (amount not in ("100.00", "200.00", "50.00"))


def test_one_by_one_deducts_what_together_does() -> None:
    """Returning C's units in three cases deducts 3.33 + 3.33 + 3.34 = 10.00, as one case."""
    alone = [quote_refund(THIRDS, back(u)).amount for u in (1, 2, 3)]
    assert alone == [3000, 3000, 2999]
    assert sum(alone) == quote_refund(THIRDS, back(1, 2, 3)).amount == m("89.99")


def test_a_gift_back_in_an_earlier_return_is_no_longer_kept() -> None:
    """The towel returned first (its own case: refunds 0.00), then A: nothing deducted,
    100.00. The other way round, A first deducts its 15.00 share and the towel sent later
    gives nothing back (no ledger keeps gift deductions; an agent refunds it as goodwill)."""
    from tickets.refunds.calculator import after_refund

    towel_first = after_refund(TOWEL, quote_refund(TOWEL, back(4)))
    assert refunds(towel_first, back(1)) == ("100.00", ["100.00"])
    a_first = after_refund(TOWEL, quote_refund(TOWEL, back(1)))
    assert refunds(a_first, back(4)) == ("0.00", ["0.00"])


def test_the_older_form_still_reads() -> None:
    """gift_value on a paid line: that line's gift, shared evenly over its units (as before):
    2 x 50.00 with a 15.01 gift: 7.50, 7.51; the first unit back: 50.00 - 7.50 = 42.50."""
    old = order([("G", 2, "50.00", "15.01")])
    assert refunds(old, back(1)) == ("42.50", ["42.50"])
    assert refunds(old, back(1, gifts_returned=frozenset({"G"}))) == ("50.00", ["50.00"])


def test_a_gift_for_must_name_a_paid_line() -> None:
    bad = order([("A", 1, "100.00"), ("TOWEL", 1, "0", "30.00", "NOPE")])
    with pytest.raises(QuoteError) as exc:
        quote_refund(bad, back(1))
    assert exc.value.loc == "order.lines.1.gift_for"


@st.composite
def gift_orders(draw: st.DrawFn) -> tuple[QuoteOrder, list[int], str]:
    """1-3 paid lines of 1-4 units, a coupon, 1-2 gift lines (each for a paid line or the
    order), and a random set of returned units (gifts among them or not)."""
    paid = []
    for i in range(draw(st.integers(1, 3))):
        paid.append((f"P{i}", draw(st.integers(1, 4)), draw(st.integers(1, 50_000))))
    goods = sum(q * p for _, q, p in paid)
    gifts = []
    for i in range(draw(st.integers(1, 2))):
        target = draw(st.sampled_from([None] + [sku for sku, _, _ in paid]))
        gifts.append((f"G{i}", draw(st.integers(0, 60_000)), target))
    coupon = draw(st.integers(0, goods))
    nets = unit_nets([(q, p * q) for _, q, p in paid] + [(1, 0) for _ in gifts], coupon)
    lines, next_id = [], 1
    for (sku, qty, price), line_nets in zip(paid, nets[: len(paid)], strict=True):
        lines.append(
            QuoteLine(
                sku, qty, price, tuple(QuoteUnit(next_id + j, n) for j, n in enumerate(line_nets))
            )
        )
        next_id += qty
    for sku, value, target in gifts:
        lines.append(
            QuoteLine(sku, 1, 0, (QuoteUnit(next_id, 0),), gift_value=value, gift_for=target)
        )
        next_id += 1
    o = QuoteOrder(
        currency="CNY",
        status="delivered",
        lines=tuple(lines),
        payments=(QuotePayment(1, "alipay", goods - coupon),),
        order_discount=coupon,
    )
    ids = list(range(1, next_id))
    chosen = sorted(draw(st.lists(st.sampled_from(ids), min_size=1, unique=True)))
    reason = draw(st.sampled_from(["no_reason", "size_fit", "quality_defect"]))
    return o, chosen, reason


@settings(max_examples=300, deadline=None, database=None)
@given(gift_orders())
def test_property_gifts_never_take_more_than_paid_and_parts_sum(
    scenario: tuple[QuoteOrder, list[int], str],
) -> None:
    o, chosen, reason = scenario
    q = quote_refund(o, back(*chosen, reason=reason))
    assert q.eligible
    nets = {u.unit_id: u.net for line in o.lines for u in line.units}
    for u in q.lines:
        deducted = sum(a.amount for a in u.deductions)
        assert u.refund == u.net - deducted  # the unit's parts sum to it
        assert 0 <= u.refund <= nets[u.unit_id]  # never more than paid, never negative
    assert q.amount == sum(u.refund for u in q.lines) == sum(r.amount for r in q.routes)
    assert q.amount <= sum(p.amount for p in o.payments)
    # The gift deductions are the kept gifts' shares of these units, to the cent.
    gift_total = sum(a.amount for u in q.lines for a in u.deductions if a.rule == R_GIFT)
    if reason == "quality_defect":
        assert gift_total == 0
    else:
        expected = 0
        picked = set(chosen)
        for g in (line for line in o.lines if line.unit_price == 0):
            if g.units[0].unit_id in picked:
                continue  # the gift came back
            owners = [
                u
                for line in o.lines
                if line.unit_price > 0 and g.gift_for in (None, line.sku)
                for u in line.units
            ]
            weights = [u.net for u in owners] if any(u.net for u in owners) else [1] * len(owners)
            shares = allocate(g.gift_value, weights)
            expected += sum(s for u, s in zip(owners, shares, strict=True) if u.unit_id in picked)
        # Each unit gives up at most its net: the expected total is capped unit by unit.
        assert gift_total <= expected
        if all(
            sum(a.amount for a in u.deductions) < u.net for u in q.lines
        ):  # no unit ran out of money: every share was taken in full
            assert gift_total == expected


# ---------------------------------------------------------------- the order contract


def _gift_order(order_no: str = "GIFT1", **line: Any) -> dict[str, Any]:
    data = order_json(order_no)
    data["lines"] = [
        {
            "sku": "JACKET",
            "title": "羽绒服",
            "category": "apparel",
            "quantity": 1,
            "unit_price": "100.00",
        },
        {
            "sku": "SOCKS",
            "title": "袜子",
            "category": "apparel",
            "quantity": 2,
            "unit_price": "50.00",
        },
        {
            "sku": "TOWEL",
            "title": "赠品毛巾",
            "category": "gift",
            "quantity": 1,
            "unit_price": "0",
            "gift_value": "30.00",
            **line,
        },
    ]
    data["order_discount"] = "0"
    data["shipping_fee"] = "0"
    return data


def test_a_gift_line_through_the_api_is_deducted_when_kept(api: Api) -> None:
    """The contract's form through POST /api/v1/orders: the towel is B's (SOCKS') gift; one
    pair of socks back without a reason, towel kept: 50.00 - 30.00 / 2 = 35.00."""
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [_gift_order(gift_for="SOCKS")]})
    assert r.status_code == 200, r.text
    lines = api.get("/api/v1/orders/GIFT1").json()["lines"]
    assert [(ln["sku"], ln["gift_for"]) for ln in lines] == [
        ("JACKET", None),
        ("SOCKS", None),
        ("TOWEL", "SOCKS"),
    ]
    r = api.post(
        "/api/v1/tickets",
        json={
            "order_no": "GIFT1",
            "kind": "return_refund",
            "reason": "no_reason",
            "items": [{"sku": "SOCKS", "quantity": 1}],
        },
    )
    assert r.status_code == 201, r.text
    refund = r.json()["refund"]
    assert refund["amount"] == "35.00"
    # The jacket owes nothing of the socks' towel: 100.00 (the same order again, as GIFT2).
    r = api.as_("shop").post(
        "/api/v1/orders", json={"orders": [_gift_order("GIFT2", gift_for="SOCKS")]}
    )
    assert r.status_code == 200, r.text
    r = api.post(
        "/api/v1/tickets",
        json={
            "order_no": "GIFT2",
            "kind": "return_refund",
            "reason": "no_reason",
            "items": [{"sku": "JACKET", "quantity": 1}],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["refund"]["amount"] == "100.00"


def test_without_gift_for_the_gift_belongs_to_the_order(api: Api) -> None:
    """No gift_for: 30.00 over the nets 100:50:50; the jacket back: 100.00 - 15.00 = 85.00."""
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [_gift_order()]})
    assert r.status_code == 200, r.text
    r = api.post(
        "/api/v1/tickets",
        json={
            "order_no": "GIFT1",
            "kind": "return_refund",
            "reason": "no_reason",
            "items": [{"sku": "JACKET", "quantity": 1}],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["refund"]["amount"] == "85.00"


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ({"gift_for": "NOPE"}, "no paid line NOPE"),
        ({"gift_for": "TOWEL"}, "its own line"),
        ({"gift_for": "SOCKS", "unit_price": "5.00"}, "free gift line"),
    ],
)
def test_a_bad_gift_for_is_refused_naming_the_field(
    api: Api, line: dict[str, Any], msg: str
) -> None:
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [_gift_order(**line)]})
    assert r.status_code == 422, r.text
    body = r.text
    assert "lines.2.gift_for" in body and msg in body
    assert api.get("/api/v1/orders/GIFT1").status_code == 404  # nothing written


def test_the_import_files_take_a_gift_for_column(tmp_path: Path) -> None:
    header = [
        "order_no",
        "status",
        "placed_at",
        "customer_name",
        "sku",
        "quantity",
        "unit_price",
        "gift_value",
        "gift_for",
    ]
    rows = [
        header,
        ["F1", "delivered", "2024-03-01T10:00:00+08:00", "张伟", "TEA", "1", "168.00", "", ""],
        ["F1", "", "", "", "TOWEL", "1", "0", "15.00", "TEA"],
    ]
    want = [("TEA", 0, None), ("TOWEL", 15, "TEA")]
    orders = parse_order_file(write_csv(tmp_path / "gifts.csv", rows))
    assert [(ln.sku, ln.gift_value, ln.gift_for) for ln in orders[0].lines] == want
    # The same in a workbook, numbers as numbers and the blank gift_for an empty cell.
    cells: list[list[Any]] = [header]
    for row in rows[1:]:
        cells.append([None if v == "" else v for v in row])
    cells[1][5], cells[1][6] = 1, 168.0
    cells[2][5], cells[2][6], cells[2][7] = 1, 0, 15.0
    orders = parse_order_file(write_xlsx(tmp_path / "gifts.xlsx", cells))
    assert [(ln.sku, ln.gift_value, ln.gift_for) for ln in orders[0].lines] == want
