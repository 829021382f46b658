"""The refund calculator (tickets/refunds/calculator.py) against MONEY.md rules 1-16.
Over 500 lines as one file: one module under test, a section per MONEY.md rule.

A table of quotes worked out by hand (the arithmetic beside each), a few tests that need more
than one quote (ledger, one by one), the refusals, and hypothesis properties over random orders:
parts sum to the whole, nothing goes back beyond what was paid, one by one equals together.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickets.money import allocate, to_minor
from tickets.orders.store import unit_nets
from tickets.refunds.calculator import (
    CUSTOMER_CHOICE_REASONS,
    R_ALREADY,
    R_EXCHANGE,
    R_FREE_SHIP,
    R_FREE_SHIP_BACK,
    R_FREIGHT,
    R_GIFT,
    R_NOT_RETURNED,
    R_ORDER_CAP,
    R_OVERRIDE_OUT,
    R_PRESALE_UNPAID,
    R_REFUSED_BACK,
    R_REFUSED_OUT,
    R_RESETTLE,
    R_RESETTLE_BACK,
    R_RESTOCK,
    R_SHIPPING,
    SELLER_FAULT_REASONS,
    Quote,
    QuoteError,
    QuoteInvariantError,
    QuoteItem,
    QuoteLine,
    QuoteOrder,
    QuotePayment,
    QuoteRequest,
    QuoteUnit,
    RefundPolicy,
    ReturnFreight,
    after_refund,
    check_invariants,
    quote_refund,
)

# ---------------------------------------------------------------- builders


def m(value: str, currency: str = "CNY") -> int:
    """'19.99' -> 1999: amounts in the table read as on a receipt."""
    return to_minor(value, currency)


def build(
    lines: list[tuple[Any, ...]],
    *,
    coupon: str = "0",
    shipping: str = "0",
    currency: str = "CNY",
    payments: list[tuple[str, str, str]] | None = None,
    **order_fields: Any,
) -> QuoteOrder:
    """An order recorded the way tickets/orders/store.py records one (rule 3 allocation at order
    time). A line is (sku, quantity, unit_price[, line_discount[, gift_value[, no_reason]]]);
    unit ids run 1, 2, 3... across lines; one alipay payment of the total unless given as
    (method, amount, kind)."""
    specs = []
    for spec in lines:
        sku, qty, price, *rest = spec
        discount = m(rest[0], currency) if len(rest) > 0 else 0
        gift = m(rest[1], currency) if len(rest) > 1 else 0
        no_reason = rest[2] if len(rest) > 2 else True
        specs.append((sku, qty, m(price, currency), discount, gift, no_reason))
    nets = unit_nets([(q, p * q - d) for _, q, p, d, _, _ in specs], m(coupon, currency))
    next_id = 1
    quote_lines = []
    for (sku, qty, price, discount, gift, no_reason), line_nets in zip(specs, nets, strict=True):
        units = tuple(QuoteUnit(next_id + j, n) for j, n in enumerate(line_nets))
        next_id += qty
        quote_lines.append(QuoteLine(sku, qty, price, units, discount, gift, "", no_reason))
    total = sum(sum(n) for n in nets) + m(shipping, currency)
    pays = payments or [("alipay", "", "full")]
    quote_payments = tuple(
        QuotePayment(i + 1, method, m(amount, currency) if amount else total, kind)
        for i, (method, amount, kind) in enumerate(pays)
    )
    order_fields.setdefault("status", "delivered")
    return QuoteOrder(
        currency=currency,
        lines=tuple(quote_lines),
        payments=quote_payments,
        shipping_fee=m(shipping, currency),
        order_discount=m(coupon, currency),
        **order_fields,
    )


def ask(kind: str, reason: str, *units: int, **fields: Any) -> QuoteRequest:
    """A request naming units by id."""
    return QuoteRequest(kind=kind, reason=reason, unit_ids=tuple(units), **fields)


def items(kind: str, reason: str, *pairs: tuple[str, int], **fields: Any) -> QuoteRequest:
    """A request naming (sku, quantity) pairs."""
    return QuoteRequest(
        kind=kind, reason=reason, items=tuple(QuoteItem(s, q) for s, q in pairs), **fields
    )


# MONEY.md rule 3: 99.90, 2 x 49.95, 3 x 19.99, coupon 30.00; units 1 | 2 3 | 4 5 6.
RULE3 = build([("A", 1, "99.90"), ("B", 2, "49.95"), ("C", 3, "19.99")], coupon="30.00")
# Two units of 100.00 with 10.00 shipping paid: total 210.00; shipping shares 5.00 + 5.00.
SHIP = build([("Q", 2, "100.00")], shipping="10.00")
SHIP_PAID = replace(SHIP, status="paid")
# Free shipping above 99.00 (shipping 0): P 60.00 (unit 1), R 50.00 (unit 2).
FREE = build([("P", 1, "60.00"), ("R", 1, "50.00")], free_shipping_threshold=m("99.00"))
# 满200减20: X 150.00 (unit 1), Y 100.00 (unit 2); shares 20x150/250 = 12.00 and 8.00,
# nets 138.00 and 92.00.
PROMO = build([("X", 1, "150.00"), ("Y", 1, "100.00")], coupon="20.00", promotion_threshold=20000)
# 满200减100: X 190.00, Y 20.00. Shares of 100.00 by 190:20: 90.476 and 9.523; floors 90.47 and
# 9.52, one cent left to the larger remainder (.6 against .38): 90.48 and 9.52.
# Nets X 99.52, Y 10.48.
PROMO_DEEP = build(
    [("X", 1, "190.00"), ("Y", 1, "20.00")], coupon="100.00", promotion_threshold=20000
)
GIFT = build([("G", 1, "100.00", "0", "15.00")])
# A line of 2 x 50.00 with a 15.01 gift: gift shares allocate(1501, [1, 1]) = 7.50, 7.51.
GIFT2 = build([("G", 2, "50.00", "0", "15.01")])
ONE = build([("S", 1, "100.00")])
# 33.33 x 3 = 99.99 paid 80.00 by alipay and 19.99 by card.
TWO_PAY = build(
    [("T", 3, "33.33")], payments=[("alipay", "80.00", "full"), ("card", "19.99", "full")]
)
RESTOCK = RefundPolicy(no_reason_law_applies=False, restocking_fee_rate=Decimal("0.10"))
RESETTLE = RefundPolicy(resettle_threshold_promotions=True)

# (id, order, request, policy, amount, unit refunds, rules that must appear)
CASES: list[tuple[str, QuoteOrder, QuoteRequest, RefundPolicy | None, str, list[str], set[str]]] = [
    # Rule 2-4: all three 19.99 units, quality: 17.68 + 17.68 + 17.69 = 53.05 (not 3 x 19.99).
    (
        "rule3-line-c",
        RULE3,
        ask("return_refund", "quality_defect", 4, 5, 6),
        None,
        "53.05",
        ["17.68", "17.68", "17.69"],
        set(),
    ),
    # Rule 2: the base is the net 88.36, never the list price 99.90.
    (
        "rule2-net-not-list",
        RULE3,
        items("return_refund", "no_reason", ("A", 1)),
        None,
        "88.36",
        ["88.36"],
        set(),
    ),
    # Rule 4: 1 of C by quantity: lowest index unit 4 -> 17.68.
    (
        "rule4-partial-1",
        RULE3,
        items("return_refund", "size_fit", ("C", 1)),
        None,
        "17.68",
        ["17.68"],
        set(),
    ),
    # Rule 4: 2 of B: 44.18 + 44.18 = 88.36.
    (
        "rule4-partial-2",
        RULE3,
        items("return_refund", "changed_mind", ("B", 2)),
        None,
        "88.36",
        ["44.18", "44.18"],
        set(),
    ),
    # Rule 4: everything: 88.36 + 88.36 + 53.05 = 229.77 = 259.77 - 30.00 coupon.
    (
        "rule4-all",
        RULE3,
        items("return_refund", "quality_defect", ("A", 1), ("B", 2), ("C", 3)),
        None,
        "229.77",
        ["88.36", "44.18", "44.18", "17.68", "17.68", "17.69"],
        set(),
    ),
    # Rule 5 off (default): the stored allocation stands: Y refunds its net 92.00.
    ("rule5-off", PROMO, ask("return_refund", "no_reason", 2), None, "92.00", ["92.00"], set()),
    # Rule 5 on: kept X 150.00 < 200.00 loses its 12.00 share: 92.00 - 12.00 = 80.00
    # (customer paid 230.00, keeps X at 150.00: 230.00 - 150.00 = 80.00).
    (
        "rule5-on-return-y",
        PROMO,
        ask("return_refund", "no_reason", 2),
        RESETTLE,
        "80.00",
        ["92.00"],
        {R_RESETTLE},
    ),
    # Rule 5 on: return X, kept Y 100.00 < 200.00 loses 8.00: 138.00 - 8.00 = 130.00.
    (
        "rule5-on-return-x",
        PROMO,
        ask("return_refund", "no_reason", 1),
        RESETTLE,
        "130.00",
        ["138.00"],
        {R_RESETTLE},
    ),
    # Rule 5 on, everything back: nothing kept, nothing to re-settle: 138.00 + 92.00 = 230.00.
    (
        "rule5-on-all",
        PROMO,
        ask("return_refund", "no_reason", 1, 2),
        RESETTLE,
        "230.00",
        ["138.00", "92.00"],
        set(),
    ),
    # Rule 6: no-reason, gift kept: 100.00 - 15.00 = 85.00.
    (
        "rule6-gift-kept",
        GIFT,
        ask("return_refund", "no_reason", 1),
        None,
        "85.00",
        ["85.00"],
        {R_GIFT},
    ),
    # Rule 6: gift came back: 100.00.
    (
        "rule6-gift-returned",
        GIFT,
        ask("return_refund", "no_reason", 1, gifts_returned=frozenset({"G"})),
        None,
        "100.00",
        ["100.00"],
        set(),
    ),
    # Rule 6: quality return: gift not deducted: 100.00.
    (
        "rule6-gift-quality",
        GIFT,
        ask("return_refund", "quality_defect", 1),
        None,
        "100.00",
        ["100.00"],
        set(),
    ),
    # Rule 6: 1 of 2 units, its gift share 7.50: 50.00 - 7.50 = 42.50.
    (
        "rule6-gift-share",
        GIFT2,
        ask("return_refund", "no_reason", 1),
        None,
        "42.50",
        ["42.50"],
        {R_GIFT},
    ),
    # Rule 7/8 quality: unit 100.00 + shipping share 5.00 + return freight 12.00 = 117.00.
    (
        "rule7-quality-both-ways",
        SHIP,
        ask("return_refund", "quality_defect", 1, return_freight=ReturnFreight(m("12.00"), True)),
        None,
        "117.00",
        ["100.00"],
        {R_SHIPPING, R_FREIGHT},
    ),
    # Rule 8 cap: freight 25.00 capped at 20.00: 100.00 + 5.00 + 20.00 = 125.00.
    (
        "rule8-freight-capped",
        SHIP,
        ask("return_refund", "wrong_item", 1, return_freight=ReturnFreight(m("25.00"), True)),
        None,
        "125.00",
        ["100.00"],
        {R_SHIPPING, R_FREIGHT},
    ),
    # Rule 8: no receipt, no reimbursement: 100.00 + 5.00 = 105.00.
    (
        "rule8-no-receipt",
        SHIP,
        ask(
            "return_refund", "not_as_described", 1, return_freight=ReturnFreight(m("12.00"), False)
        ),
        None,
        "105.00",
        ["100.00"],
        {R_SHIPPING},
    ),
    # Rule 7 quality, whole order: 200.00 + shipping 10.00 = 210.00, all that was paid.
    (
        "rule7-quality-all",
        SHIP,
        ask("return_refund", "quality_defect", 1, 2),
        None,
        "210.00",
        ["100.00", "100.00"],
        {R_SHIPPING},
    ),
    # Rule 7 no-reason: customer pays the return leg, outbound not refunded: 100.00.
    (
        "rule7-no-reason-return-leg",
        SHIP,
        ask("return_refund", "no_reason", 1, return_freight=ReturnFreight(m("12.00"), True)),
        None,
        "100.00",
        ["100.00"],
        set(),
    ),
    # Rule 7: kept P 60.00 < 99.00 free-shipping threshold: 50.00 - 10.00 standard fee = 40.00.
    (
        "rule7-below-free-threshold",
        FREE,
        ask("return_refund", "no_reason", 2),
        None,
        "40.00",
        ["50.00"],
        {R_FREE_SHIP},
    ),
    # Same with the setting off: 50.00.
    (
        "rule7-below-threshold-off",
        FREE,
        ask("return_refund", "no_reason", 2),
        RefundPolicy(deduct_outbound_shipping_when_below_free_threshold=False),
        "50.00",
        ["50.00"],
        set(),
    ),
    # Kept R 50.00 < 99.00 too: 60.00 - 10.00 = 50.00.
    (
        "rule7-below-threshold-other",
        FREE,
        ask("return_refund", "changed_mind", 1),
        None,
        "50.00",
        ["60.00"],
        {R_FREE_SHIP},
    ),
    # Quality return below the threshold: no deduction (shop's fault): 50.00.
    (
        "rule7-threshold-quality",
        FREE,
        ask("return_refund", "quality_defect", 2),
        None,
        "50.00",
        ["50.00"],
        set(),
    ),
    # Unshipped refund-only: everything back, shipping included: 200.00 + 10.00 = 210.00.
    (
        "rule7-unshipped-all",
        SHIP_PAID,
        ask("refund_only", "changed_mind", 1, 2),
        None,
        "210.00",
        ["100.00", "100.00"],
        {R_SHIPPING},
    ),
    # Unshipped, one of two: 100.00 + its shipping share 5.00 = 105.00.
    (
        "rule7-unshipped-one",
        SHIP_PAID,
        ask("refund_only", "no_reason", 1),
        None,
        "105.00",
        ["100.00"],
        {R_SHIPPING},
    ),
    # Refused on delivery, shipping 10.00 paid (kept), return leg 10.00 deducted:
    # 200.00 - 10.00 = 190.00 (the shop keeps 20.00: both legs).
    (
        "rule7-refused-paid-shipping",
        replace(SHIP, status="refused"),
        ask("refund_only", "changed_mind", 1, 2),
        None,
        "190.00",
        ["100.00", "100.00"],
        {R_REFUSED_BACK},
    ),
    # Refused on delivery, free shipping: 100.00 - 10.00 outbound - 10.00 return = 80.00.
    (
        "rule7-refused-free-shipping",
        ONE,
        ask("refund_only", "no_reason", 1, refused_on_delivery=True),
        None,
        "80.00",
        ["100.00"],
        {R_REFUSED_OUT, R_REFUSED_BACK},
    ),
    # Damaged no-reason return accepted at the customer's request: outbound 10.00 is theirs:
    # 100.00 - 10.00 = 90.00 (they already paid the return leg).
    (
        "rule7-override",
        ONE,
        ask("return_refund", "no_reason", 1, outcomes={1: "damaged"}, override_refusal=True),
        None,
        "90.00",
        ["100.00"],
        {R_OVERRIDE_OUT},
    ),
    # Rule 9 (not under the no-reason law, rate 10 %): 10 % of 53.05 = 5.305 -> 5.31 (half up,
    # once per line); split by nets 17.68:17.68:17.69 -> 1.76|.95, 1.76|.95, 1.77|.07, two
    # cents to the largest remainders: 1.77, 1.77, 1.77. Refunds 15.91, 15.91, 15.92 = 47.74.
    (
        "rule9-restocking",
        RULE3,
        ask("return_refund", "no_reason", 4, 5, 6, restocking_fee_skus=frozenset({"C"})),
        RESTOCK,
        "47.74",
        ["15.91", "15.91", "15.92"],
        {R_RESTOCK},
    ),
    # Rule 9: a damaged unit under the law: fee allowed: 10 % of 100.00 = 10.00; override
    # deducts the free-shipping outbound 10.00: 100.00 - 10.00 - 10.00 = 80.00.
    (
        "rule9-restocking-damaged",
        ONE,
        ask(
            "return_refund",
            "no_reason",
            1,
            outcomes={1: "damaged"},
            override_refusal=True,
            restocking_fee_skus=frozenset({"S"}),
        ),
        RefundPolicy(restocking_fee_rate=Decimal("0.10")),
        "80.00",
        ["90.00"],
        {R_RESTOCK},
    ),
    # Rule 10: a 15.00 price protection already paid: 100.00 - 15.00 = 85.00.
    (
        "rule10-price-protection",
        replace(
            ONE,
            lines=(QuoteLine("S", 1, 10000, (QuoteUnit(1, 10000, 1500),)),),
            payments=(QuotePayment(1, "alipay", 10000, "full", 1500),),
        ),
        ask("return_refund", "quality_defect", 1),
        None,
        "85.00",
        ["85.00"],
        {R_ALREADY},
    ),
    # Rule 10: a 10.00 goodwill refund on the order (no unit): everything back is at most
    # 100.00 - 10.00 = 90.00.
    (
        "rule10-goodwill-cap",
        replace(ONE, payments=(QuotePayment(1, "alipay", 10000, "full", 1000),)),
        ask("return_refund", "quality_defect", 1),
        None,
        "90.00",
        ["100.00"],
        {R_ORDER_CAP},
    ),
    # Rule 11: 33.33 on 80.00 + 19.99: floor(33.33 x 80.00 / 99.99) = 26.66, the last takes
    # 33.33 - 26.66 = 6.67.
    (
        "rule11-two-payments",
        TWO_PAY,
        ask("return_refund", "no_reason", 1),
        None,
        "33.33",
        ["33.33"],
        set(),
    ),
    # Rule 13: USD charged, rate recorded 7.1234: refund 25.99 USD, no conversion.
    (
        "rule13-usd",
        build(
            [("U", 2, "25.99")],
            currency="USD",
            exchange_rate=Decimal("7.1234"),
            payments=[("card", "", "full")],
        ),
        ask("return_refund", "quality_defect", 1),
        None,
        "25.99",
        ["25.99"],
        set(),
    ),
    # Rule 14: 300.00 presale, deposit 50.00 worth 100.00 (a 50.00 discount): net 250.00,
    # refunded as paid: 250.00 (not 300.00, not 100.00 for the deposit).
    (
        "rule14-presale-paid",
        build(
            [("V", 1, "300.00")],
            coupon="50.00",
            presale=True,
            payments=[("wechat", "50.00", "deposit"), ("alipay", "200.00", "balance")],
        ),
        ask("return_refund", "no_reason", 1),
        None,
        "250.00",
        ["250.00"],
        set(),
    ),
    # Rule 14: only the deposit paid, not shipped: the money paid, 50.00 (250.00 - 200.00).
    (
        "rule14-presale-deposit-only",
        build(
            [("V", 1, "300.00")],
            coupon="50.00",
            presale=True,
            status="paid",
            payments=[("wechat", "50.00", "deposit")],
        ),
        ask("refund_only", "changed_mind", 1),
        None,
        "50.00",
        ["50.00"],
        {R_PRESALE_UNPAID},
    ),
    # Rule 15: 100.00 back, replacement 80.00: refund 20.00.
    (
        "rule15-exchange-refund",
        ONE,
        ask("exchange", "size_fit", 1, replacement_price=m("80.00")),
        None,
        "20.00",
        ["20.00"],
        {R_EXCHANGE},
    ),
    # Rule 15: replacement 120.00: refund 0, collect 20.00 (checked below).
    (
        "rule15-exchange-collect",
        ONE,
        ask("exchange", "size_fit", 1, replacement_price=m("120.00")),
        None,
        "0.00",
        ["0.00"],
        {R_EXCHANGE},
    ),
    # Inspection: unit 2 missing from the parcel: 100.00 + 0.00; shipping share of the unit
    # received only: 5.00. Total 105.00.
    (
        "inspection-missing",
        SHIP,
        ask("return_refund", "quality_defect", 1, 2, outcomes={2: "missing"}),
        None,
        "105.00",
        ["100.00", "0.00"],
        {R_NOT_RETURNED, R_SHIPPING},
    ),
    # Rule 16 boundary: 1000.00 is not above the 1000.00 threshold.
    (
        "rule16-at-threshold",
        build([("L", 1, "1000.00")]),
        ask("return_refund", "quality_defect", 1),
        None,
        "1000.00",
        ["1000.00"],
        set(),
    ),
    # JPY has no minor unit: 1980 yen back as 1980.
    (
        "rule1-jpy",
        build([("J", 1, "1980")], currency="JPY"),
        ask("return_refund", "no_reason", 1),
        None,
        "1980",
        ["1980"],
        set(),
    ),
]


@pytest.mark.parametrize(
    ("order", "request_", "policy", "amount", "refunds", "rules"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_hand_worked_quotes(
    order: QuoteOrder,
    request_: QuoteRequest,
    policy: RefundPolicy | None,
    amount: str,
    refunds: list[str],
    rules: set[str],
) -> None:
    quote = quote_refund(order, request_, policy)
    assert quote.eligible, quote.reasons
    assert quote.to_json()["amount"] == amount
    assert [u["refund"] for u in quote.to_json()["lines"] if u["unit"] is not None] == refunds
    used = {a.rule for u in quote.lines for a in u.deductions + u.additions}
    used |= {a.rule for a in quote.additions + quote.deductions}
    assert rules <= used
    check_invariants(order, quote)


def test_hand_worked_table_is_large_enough() -> None:
    assert len(CASES) >= 30


# ---------------------------------------------------------------- rule by rule, in more detail


def test_rule3_example_nets_exactly() -> None:
    # 30.00 over 99.90 : 99.90 : 59.97 -> 11.54, 11.54, 6.92; then 88.36 | 44.18 x2 |
    # 53.05 / 3 = 17.68, 17.68, 17.69.
    assert allocate(3000, [9990, 9990, 5997]) == [1154, 1154, 692]
    nets = [[u.net for u in line.units] for line in RULE3.lines]
    assert nets == [[8836], [4418, 4418], [1768, 1768, 1769]]


def test_rule4_one_by_one_equals_together() -> None:
    # Returning the three 19.99 units one at a time: 17.68, 17.68, 17.69 = 53.05.
    order, got = RULE3, []
    for _ in range(3):
        quote = quote_refund(order, items("return_refund", "no_reason", ("C", 1)))
        got.append(quote.amount)
        order = after_refund(order, quote)
    assert got == [1768, 1768, 1769]
    together = quote_refund(RULE3, items("return_refund", "no_reason", ("C", 3)))
    assert sum(got) == together.amount == 5305
    # Nothing left of C: a fourth is refused in plain words.
    refused = quote_refund(order, items("return_refund", "no_reason", ("C", 1)))
    assert not refused.eligible
    assert refused.reasons == ("Only 0 of C are left to refund; 1 were asked for.",)


def test_rule5_resettlement_ledger_gives_back_when_nothing_is_kept() -> None:
    # Y first: 92.00 - 12.00 = 80.00 (X re-priced at 150.00). Then X: nothing kept, the 12.00
    # comes back: 138.00 + 12.00 = 150.00. 80.00 + 150.00 = 230.00, all that was paid.
    first = quote_refund(PROMO, ask("return_refund", "no_reason", 2), RESETTLE)
    assert first.amount == 8000
    assert first.promotion_clawback == 1200
    second = quote_refund(
        after_refund(PROMO, first), ask("return_refund", "no_reason", 1), RESETTLE
    )
    assert second.amount == 15000
    assert [a.rule for a in second.additions] == [R_RESETTLE_BACK]


def test_rule5_resettlement_collects_what_the_refund_cannot_cover() -> None:
    # Return Y (net 10.48): kept X 190.00 < 200.00 owes its 90.48 share: 10.48 deducted and
    # 80.00 collected (paid 110.00, keeps X at 190.00: owes 80.00).
    quote = quote_refund(PROMO_DEEP, ask("return_refund", "no_reason", 2), RESETTLE)
    assert [u.net for line in PROMO_DEEP.lines for u in line.units] == [9952, 1048]
    assert quote.amount == 0
    assert quote.collect == 8000
    assert quote.to_json()["collect"] == "80.00"
    assert quote.deductions[0].amount == 1048


def test_rule7_free_shipping_deduction_given_back_when_the_rest_returns() -> None:
    # R: 50.00 - 10.00 = 40.00; then P with nothing kept: 60.00 + 10.00 back = 70.00;
    # together: 110.00, no deduction.
    first = quote_refund(FREE, ask("return_refund", "no_reason", 2))
    second = quote_refund(after_refund(FREE, first), ask("return_refund", "no_reason", 1))
    assert (first.amount, second.amount) == (4000, 7000)
    assert [a.rule for a in second.additions] == [R_FREE_SHIP_BACK]
    assert quote_refund(FREE, ask("return_refund", "no_reason", 1, 2)).amount == 11000


def test_rule7_shipping_refunded_at_most_once() -> None:
    # Both units one by one on a quality return: 105.00 + 105.00 = 210.00; a third quote of the
    # shipping cannot happen (the units are gone) and the ledger holds 10.00.
    first = quote_refund(SHIP, ask("return_refund", "quality_defect", 1))
    order = after_refund(SHIP, first)
    second = quote_refund(order, ask("return_refund", "quality_defect", 2))
    assert (first.amount, second.amount) == (10500, 10500)
    assert after_refund(order, second).shipping_refunded_so_far == 1000


def test_rule8_return_freight_is_its_own_line_and_route() -> None:
    quote = quote_refund(
        SHIP,
        ask("return_refund", "quality_defect", 1, return_freight=ReturnFreight(1200, True)),
    )
    # The unit's line is still 100.00: freight never inflates the item base.
    assert [u.refund for u in quote.lines] == [10000]
    data = quote.to_json()
    freight = [ln for ln in data["lines"] if ln["rule"] == R_FREIGHT]
    assert freight == [
        {
            "sku": None,
            "unit": None,
            "net": "0.00",
            "deductions": [],
            "additions": [{"amount": "12.00", "rule": R_FREIGHT}],
            "refund": "12.00",
            "rule": R_FREIGHT,
        }
    ]
    # 105.00 on the payment, 12.00 on its own route.
    assert [(r.payment_id, r.amount) for r in quote.routes] == [(1, 10500), (None, 1200)]


def test_rule9_restocking_refused_on_resalable_no_reason_return() -> None:
    quote = quote_refund(
        RULE3,
        ask("return_refund", "no_reason", 4, restocking_fee_skus=frozenset({"C"})),
        RefundPolicy(restocking_fee_rate=Decimal("0.10")),
    )
    assert not quote.eligible
    assert quote.amount == 0
    assert quote.routes == ()
    assert "no deduction from a no-reason return of resalable goods" in quote.reasons[0]
    # The shop's fault: no fee either.
    seller = quote_refund(
        RULE3, ask("return_refund", "quality_defect", 4, restocking_fee_skus=frozenset({"C"}))
    )
    assert seller.reasons == ("No restocking fee on C: the shop is at fault.",)


def test_rule11_two_payments_remainder_on_the_last_and_ledger_proportion() -> None:
    # 33.33: 26.66 alipay, 6.67 card (the last takes the rounding remainder).
    order, parts = TWO_PAY, []
    for unit in (1, 2, 3):
        quote = quote_refund(order, ask("return_refund", "no_reason", unit))
        parts.append([(r.method, r.amount) for r in quote.routes])
        order = after_refund(order, quote)
    assert parts[0] == [("alipay", 2666), ("card", 667)]
    # Cumulatively 66.66: floor(66.66 x 80 / 99.99) = 53.33, card 13.33; less what went:
    # alipay 26.67, card 6.66. Then all: 80.00 and 19.99, exactly what each paid.
    assert parts[1] == [("alipay", 2667), ("card", 666)]
    assert [p.refunded_so_far for p in order.payments] == [8000, 1999]
    quote = quote_refund(TWO_PAY, ask("return_refund", "no_reason", 1))
    assert [(r["method"], r["arrival"]) for r in quote.to_json()["routes"]] == [
        ("alipay", "1-3 days"),
        ("card", "3-7 days"),
    ]


def test_rule11_price_protection_on_one_payment_is_caught_up() -> None:
    # 100.00 paid 50.00 + 50.00; a 20.00 price protection went to alipay alone (unit ledger
    # 20.00). The whole unit back: 80.00 left; cumulative 100.00 -> 50.00 each; alipay has 30.00
    # left, card 50.00.
    order = QuoteOrder(
        currency="CNY",
        status="delivered",
        lines=(QuoteLine("S", 1, 10000, (QuoteUnit(1, 10000, 2000),)),),
        payments=(
            QuotePayment(1, "alipay", 5000, "full", 2000),
            QuotePayment(2, "card", 5000, "full", 0),
        ),
    )
    quote = quote_refund(order, ask("return_refund", "quality_defect", 1))
    assert [r.amount for r in quote.routes] == [3000, 5000]


def test_rule13_exchange_rate_recorded_and_shown_never_applied() -> None:
    order = build(
        [("U", 2, "25.99")],
        currency="USD",
        exchange_rate=Decimal("7.1234"),
        payments=[("card", "", "full")],
    )
    data = quote_refund(order, ask("return_refund", "quality_defect", 1)).to_json()
    assert (data["amount"], data["currency"], data["exchange_rate"]) == ("25.99", "USD", "7.1234")
    assert "exchange_rate" not in quote_refund(ONE, ask("return_refund", "no_reason", 1)).to_json()


def test_rule14_presale_refund_in_proportion_to_deposit_and_balance() -> None:
    order = build(
        [("V", 1, "300.00")],
        coupon="50.00",
        presale=True,
        payments=[("wechat", "50.00", "deposit"), ("alipay", "200.00", "balance")],
    )
    quote = quote_refund(order, ask("return_refund", "no_reason", 1))
    # 250.00: 50.00 back on the deposit, 200.00 on the balance.
    assert [(r.method, r.amount) for r in quote.routes] == [("wechat", 5000), ("alipay", 20000)]
    unpaid = build(
        [("V", 1, "300.00")],
        coupon="50.00",
        presale=True,
        status="paid",
        payments=[("wechat", "50.00", "deposit")],
    )
    deposit_only = quote_refund(unpaid, ask("refund_only", "changed_mind", 1))
    assert deposit_only.notes[0].startswith("Presale in production")


def test_rule15_exchange_collects_a_positive_difference() -> None:
    quote = quote_refund(ONE, ask("exchange", "size_fit", 1, replacement_price=12000))
    assert (quote.amount, quote.collect, quote.routes) == (0, 2000, ())


def test_rule16_large_refund_needs_a_second_approver() -> None:
    big = build([("L", 1, "1000.01")])
    assert quote_refund(big, ask("return_refund", "quality_defect", 1)).needs_second_approval
    at = build([("L", 1, "1000.00")])
    assert not quote_refund(at, ask("return_refund", "quality_defect", 1)).needs_second_approval
    low = RefundPolicy(large_refund_threshold=5000)
    assert quote_refund(ONE, ask("return_refund", "no_reason", 1), low).needs_second_approval


def test_quote_json_shape() -> None:
    now = datetime(2025, 6, 18, 10, 0, tzinfo=UTC)
    data = quote_refund(RULE3, ask("return_refund", "no_reason", 4), now=now).to_json()
    assert data == {
        "amount": "17.68",
        "currency": "CNY",
        "routes": [
            {
                "method": "alipay",
                "amount": "17.68",
                "arrival": "1-3 days",
                "arrival_by": "2025-06-21",
            }
        ],
        "lines": [
            {
                "sku": "C",
                "unit": 4,
                "net": "17.68",
                "deductions": [],
                "additions": [],
                "refund": "17.68",
                "rule": "rules 2-4: the unit's net, what was paid for it",
            }
        ],
        "eligible": True,
        "reasons": [],
        "needs_second_approval": False,
    }


# ---------------------------------------------------------------- refusals and bad input


@pytest.mark.parametrize(
    ("order", "request_", "reason"),
    [
        pytest.param(
            RULE3,
            items("return_refund", "no_reason", ("B", 3)),
            "Only 2 of B were bought; 3 were asked for.",
            id="more-than-bought",
        ),
        pytest.param(
            replace(
                ONE,
                lines=(QuoteLine("S", 1, 10000, (QuoteUnit(1, 10000, 10000, returned=True),)),),
                payments=(QuotePayment(1, "alipay", 10000, "full", 10000),),
            ),
            ask("return_refund", "no_reason", 1),
            "Unit 1 of S was already refunded.",
            id="already-refunded",
        ),
        pytest.param(
            ONE,
            ask("return_refund", "no_reason", 1, outcomes={1: "damaged"}),
            "Unit(s) 1 came back damaged: a no-reason return needs the goods intact "
            "(the refund is possible if you pay shipping both ways).",
            id="damaged-no-reason",
        ),
    ],
)
def test_policy_refusals_in_plain_words(
    order: QuoteOrder, request_: QuoteRequest, reason: str
) -> None:
    quote = quote_refund(order, request_)
    assert not quote.eligible
    assert quote.reasons == (reason,)
    assert (quote.amount, quote.routes, quote.lines) == (0, (), ())
    assert quote.to_json()["eligible"] is False


def test_eligibility_refusals_come_first_and_carry_no_money() -> None:
    # The eligibility rules (tickets/policy/eligibility.py) decide what may be claimed; the
    # calculator lists their refusals as given, before its own, and pays nothing.
    refused = ("The order is not paid.",)
    request = ask("return_refund", "no_reason", 1, outcomes={1: "damaged"})
    quote = quote_refund(ONE, replace(request, refused_by_policy=refused))
    assert not quote.eligible
    assert quote.reasons[0] == refused[0] and len(quote.reasons) == 2
    assert (quote.amount, quote.routes, quote.lines) == (0, (), ())


def test_arrival_dates_count_from_now() -> None:
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert quote_refund(ONE, ask("return_refund", "no_reason", 1), now=now).routes[
        0
    ].arrival_by == date(2025, 6, 4)


@pytest.mark.parametrize(
    ("order", "request_", "loc"),
    [
        pytest.param(RULE3, items("return_refund", "no_reason", ("Z", 1)), "items.0.sku", id="sku"),
        pytest.param(RULE3, ask("return_refund", "no_reason", 99), "unit_ids.0", id="unit"),
        pytest.param(RULE3, ask("return_refund", "no_reason", 4, 4), "unit_ids.1", id="twice"),
        pytest.param(RULE3, ask("return_refund", "service", 4), "reason", id="reason"),
        pytest.param(RULE3, ask("return", "no_reason", 4), "kind", id="kind"),
        pytest.param(RULE3, ask("exchange", "size_fit", 4), "kind", id="exchange-no-price"),
        pytest.param(
            RULE3, items("return_refund", "no_reason", ("C", 0)), "items.0.quantity", id="quantity"
        ),
        pytest.param(
            RULE3, QuoteRequest(kind="return_refund", reason="no_reason"), "items", id="nothing"
        ),
        pytest.param(
            RULE3,
            ask("return_refund", "no_reason", 4, outcomes={4: "lost"}),
            "outcomes.4",
            id="outcome",
        ),
        pytest.param(
            replace(RULE3, payments=(QuotePayment(1, "alipay", 100, "full"),)),
            ask("return_refund", "no_reason", 4),
            "order.payments",
            id="payments-do-not-add-up",
        ),
        pytest.param(
            replace(RULE3, currency="XXY"),
            ask("return_refund", "no_reason", 4),
            "order.currency",
            id="currency",
        ),
    ],
)
def test_unreadable_input_raises_quote_error_naming_the_field(
    order: QuoteOrder, request_: QuoteRequest, loc: str
) -> None:
    with pytest.raises(QuoteError) as caught:
        quote_refund(order, request_)
    assert caught.value.loc == loc


def test_naive_now_is_refused() -> None:
    with pytest.raises(QuoteError, match="timezone-aware"):
        quote_refund(ONE, ask("return_refund", "no_reason", 1), now=datetime(2025, 1, 1))  # noqa: DTZ001


def test_invariant_breach_raises() -> None:
    quote = quote_refund(ONE, ask("return_refund", "no_reason", 1))
    broken = replace(quote, amount=quote.amount + 1)
    with pytest.raises(QuoteInvariantError, match="deductions != amount"):
        check_invariants(ONE, broken)
    too_much = replace(ONE, payments=(QuotePayment(1, "alipay", 10000, "full", 9000),))
    with pytest.raises(QuoteInvariantError, match="more than it has left"):
        check_invariants(too_much, quote)


# ---------------------------------------------------------------- properties


@st.composite
def orders(draw: st.DrawFn) -> QuoteOrder:
    """Random orders recorded by rule 3: 1-4 lines, 1-4 units, line discounts, a coupon,
    shipping, thresholds, 1-3 payments."""
    n_lines = draw(st.integers(1, 4))
    specs = []
    for i in range(n_lines):
        qty = draw(st.integers(1, 4))
        price = draw(st.integers(0, 50_000))
        discount = draw(st.integers(0, price * qty))
        gift = draw(st.sampled_from([0, 0, draw(st.integers(0, 3000))]))
        specs.append((f"S{i}", qty, price, discount, gift))
    goods = sum(p * q - d for _, q, p, d, _ in specs)
    coupon = draw(st.integers(0, goods))
    nets = unit_nets([(q, p * q - d) for _, q, p, d, _ in specs], coupon)
    shipping = draw(st.sampled_from([0, 0, 800, 1000, 1299]))
    next_id, lines = 1, []
    for (sku, qty, price, discount, gift), line_nets in zip(specs, nets, strict=True):
        units = tuple(QuoteUnit(next_id + j, n) for j, n in enumerate(line_nets))
        next_id += qty
        lines.append(QuoteLine(sku, qty, price, units, discount, gift))
    total = goods - coupon + shipping
    n_pay = draw(st.integers(1, 3))
    weights = draw(st.lists(st.integers(1, 100), min_size=n_pay, max_size=n_pay))
    amounts = allocate(total, weights)
    methods = ["alipay", "card", "balance"]
    payments = tuple(
        QuotePayment(i + 1, methods[i], a, "full") for i, a in enumerate(amounts) if a > 0
    ) or (QuotePayment(1, "alipay", 0, "full"),)
    return QuoteOrder(
        currency="CNY",
        status="delivered",
        lines=tuple(lines),
        payments=payments,
        shipping_fee=shipping,
        free_shipping_threshold=draw(st.sampled_from([None, draw(st.integers(0, goods + 1))])),
        order_discount=coupon,
        promotion_threshold=draw(st.sampled_from([None, draw(st.integers(0, goods + 1))])),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[QuoteOrder, list[int], str, RefundPolicy]:
    order = draw(orders())
    ids = [u.unit_id for line in order.lines for u in line.units]
    chosen = draw(st.lists(st.sampled_from(ids), min_size=1, unique=True))
    reason = draw(st.sampled_from(sorted(SELLER_FAULT_REASONS | CUSTOMER_CHOICE_REASONS)))
    policy = RefundPolicy(resettle_threshold_promotions=draw(st.booleans()))
    return order, sorted(chosen), reason, policy


def _assert_within_paid(order: QuoteOrder, quote: Quote) -> None:
    units = {u.unit_id: u for line in order.lines for u in line.units}
    for line in quote.lines:
        deducted = sum(a.amount for a in line.deductions)
        assert line.refund == line.net - deducted
        assert 0 <= line.refund <= units[line.unit_id].net - units[line.unit_id].refunded_so_far
    whole = (
        sum(u.refund for u in quote.lines)
        + sum(a.amount for a in quote.additions)
        - sum(a.amount for a in quote.deductions)
    )
    assert whole == quote.amount == sum(r.amount for r in quote.routes)
    left = {p.payment_id: p.amount - p.refunded_so_far for p in order.payments}
    for route in quote.routes:
        assert route.payment_id is not None
        assert route.amount <= left[route.payment_id]
    assert quote.amount <= sum(left.values())


@settings(max_examples=200, deadline=None, database=None)
@given(scenarios())
def test_property_parts_sum_and_never_more_than_paid(
    scenario: tuple[QuoteOrder, list[int], str, RefundPolicy],
) -> None:
    order, chosen, reason, policy = scenario
    quote = quote_refund(order, ask("return_refund", reason, *chosen), policy)
    assert quote.eligible
    _assert_within_paid(order, quote)


@settings(max_examples=200, deadline=None, database=None)
@given(scenarios())
def test_property_one_by_one_equals_together(
    scenario: tuple[QuoteOrder, list[int], str, RefundPolicy],
) -> None:
    order, chosen, reason, policy = scenario
    together = quote_refund(order, ask("return_refund", reason, *chosen), policy)
    current, amounts, collected = order, [], together.collect
    # A free gift line comes back first (with its goods, or before them): one sent back after
    # its goods were refunded does not give back the deduction made then
    # (tickets/refunds/calculator.py).
    free = {u.unit_id for line in order.lines if line.unit_price == 0 for u in line.units}
    for unit_id in sorted(chosen, key=lambda u: u not in free):
        quote = quote_refund(current, ask("return_refund", reason, unit_id), policy)
        _assert_within_paid(current, quote)
        amounts.append(quote.amount)
        collected += quote.collect
        current = after_refund(current, quote)
    one_by_one = [p.refunded_so_far for p in current.payments]
    if not collected:
        # The same money back. (When a refund is too small to carry a re-settlement, what is
        # left to collect depends on the order of the returns.)
        assert sum(amounts) == together.amount
        # Each payment keeps its proportion on the cumulative ledger: rounding in separate
        # goes may move a cent or two between payments, never more than one per payment.
        both = [p.refunded_so_far for p in after_refund(order, together).payments]
        for one, two in zip(one_by_one, both, strict=True):
            assert abs(one - two) <= len(order.payments) - 1
    # Everything returned on a seller-fault reason: every cent paid goes back.
    if reason in SELLER_FAULT_REASONS and len(chosen) == sum(ln.quantity for ln in order.lines):
        assert sum(one_by_one) == sum(p.amount for p in order.payments)
