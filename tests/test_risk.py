"""Risk signals and auto-approval (tickets/policy/risk.py).
Over 500 lines as one file: one module under test, hand-worked cases by signal.

Each signal is shown firing at its threshold and not firing one step past it, on a real
database (orders go in through upsert_order, cases as rows), then the level rules and the
auto-approval matrix, which are pure.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy import event
from sqlalchemy.orm import Session

from tests.conftest import NOW, order_json
from tickets.models import Order, Ticket
from tickets.orders.store import upsert_order
from tickets.policy.risk import (
    SIGNALS,
    AutoApprovalRules,
    FakePhoneRule,
    RiskAssessment,
    RiskFacts,
    RiskRules,
    RiskSignal,
    assess,
    collect_risk_facts,
    decide_auto_approval,
    phone_looks_fake,
)
from tickets.schemas import OrderIn

RULES = RiskRules()
_numbers = itertools.count(1)


def add_order(
    session: Session,
    *,
    placed: datetime,
    paid: datetime | None = None,
    status: str = "paid",
    phone: str = "13800138000",
    tg: int = 5001,
    address: str = "上海市浦东新区世纪大道 100 号",
) -> Order:
    """A paid (unshipped) order placed at `placed`, paid a minute later unless told."""
    no = f"R{next(_numbers):05d}"
    data = order_json(
        no,
        status=status,
        placed_at=placed.isoformat(),
        paid_at=(paid or placed + timedelta(minutes=1)).isoformat(),
        shipped_at=None,
        delivered_at=None,
        address=address,
        customer={"name": "客户", "phone": phone, "telegram_user_id": tg},
    )
    order, _ = upsert_order(session=session, data=OrderIn.model_validate(data), now=placed)
    session.flush()
    return order


def add_case(session: Session, order: Order, at: datetime, status: str = "submitted") -> Ticket:
    n = next(_numbers)
    ticket = Ticket(
        number=f"AS-TEST-{n:04d}",
        kind="refund_only",
        status=status,
        group="service",
        order=order,
        customer=order.customer,
        reason="changed_mind",
        channel="api",
        created_at=at,
        updated_at=at,
    )
    session.add(ticket)
    session.flush()
    return ticket


def fired(
    session: Session,
    order: Order,
    *,
    kind: str = "return_refund",
    note: str = "",
    rules: RiskRules = RULES,
    now: datetime = NOW,
    language: str = "en",
) -> dict[str, str]:
    facts = collect_risk_facts(
        session=session,
        order=order,
        customer=order.customer,
        now=now,
        kind=kind,
        note=note,
        rules=rules,
    )
    return {s.code: s.text for s in assess(facts, rules, language).signals}


# ---------------------------------------------------------------- each signal, on the database


@pytest.mark.parametrize(
    ("oldest", "fires"), [(timedelta(days=7), True), (timedelta(days=7, minutes=1), False)]
)
def test_same_phone_three_orders_in_seven_days(
    session: Session, oldest: timedelta, fires: bool
) -> None:
    # This order 2 days ago, one 3 days before it, one `oldest` before it: 7 days exactly is
    # one stretch of 7 days holding all three; a minute more and no stretch with this order
    # holds more than two.
    this_at = NOW - timedelta(days=2)
    add_order(session, placed=this_at - oldest)
    add_order(session, placed=this_at - timedelta(days=3))
    this = add_order(session, placed=this_at)
    got = fired(session, this)
    assert ("same_phone" in got) is fires
    if fires:
        assert got["same_phone"] == "3 orders with the same phone within 7 days"


def test_same_phone_two_orders_is_not_enough(session: Session) -> None:
    add_order(session, placed=NOW - timedelta(days=3))
    this = add_order(session, placed=NOW - timedelta(days=2))
    assert "same_phone" not in fired(session, this)


def test_same_phone_threshold_is_a_setting(session: Session) -> None:
    add_order(session, placed=NOW - timedelta(days=3))
    this = add_order(session, placed=NOW - timedelta(days=2))
    rules = RiskRules.model_validate({"same_phone": {"min_orders": 2}})
    assert "same_phone" in fired(session, this, rules=rules)


@pytest.mark.parametrize(("orders", "fires"), [(3, True), (2, False)])
def test_same_address_across_customers(session: Session, orders: int, fires: bool) -> None:
    address = "北京市朝阳区建国路 88 号 2 单元 301"
    placed = [NOW - timedelta(days=d) for d in range(orders, 0, -1)]
    made = [
        add_order(session, placed=at, phone=f"1390000000{i}", tg=7000 + i, address=address)
        for i, at in enumerate(placed)
    ]
    assert len({o.customer_id for o in made}) == orders  # different people, one address
    got = fired(session, made[-1], language="zh-CN")
    assert ("same_address" in got) is fires
    if fires:
        assert got["same_address"] == "同一收货地址 7 天内有 3 笔订单"


@pytest.mark.parametrize(
    ("kind", "after_payment", "fires"),
    [
        ("refund_only", timedelta(minutes=30), True),
        ("refund_only", timedelta(minutes=31), False),
        ("refund_only", timedelta(0), True),
        ("return_refund", timedelta(minutes=5), False),
    ],
)
def test_refund_only_right_after_payment(
    session: Session, kind: str, after_payment: timedelta, fires: bool
) -> None:
    paid = NOW - after_payment
    this = add_order(session, placed=paid - timedelta(minutes=1), paid=paid)
    got = fired(session, this, kind=kind)
    assert ("quick_refund" in got) is fires


@pytest.mark.parametrize(
    ("age", "fires"), [(timedelta(days=1), True), (timedelta(days=1, minutes=1), False)]
)
def test_new_customer(session: Session, age: timedelta, fires: bool) -> None:
    this = add_order(session, placed=NOW - age)
    assert ("new_customer" in fired(session, this)) is fires


def test_new_customer_counts_from_the_first_order(session: Session) -> None:
    add_order(session, placed=NOW - timedelta(days=90))
    this = add_order(session, placed=NOW - timedelta(hours=1))
    assert "new_customer" not in fired(session, this)


@pytest.mark.parametrize(
    ("address", "code"),
    [
        ("浙江省杭州市西湖区文三路 菜鸟驿站(文三路店)", "pickup_address"),
        ("上海市徐汇区漕溪北路 丰巢快递柜 12 号", "pickup_address"),
        ("Flat 3, 10 Queen St, Parcel Locker 7", "pickup_address"),
        ("深圳市南山区科技园 腾讯大厦 写字楼 B 座前台", "office_address"),
        ("上海市浦东新区世纪大道 100 号", None),
    ],
)
def test_pickup_point_and_office_addresses(
    session: Session, address: str, code: str | None
) -> None:
    this = add_order(session, placed=NOW - timedelta(days=5), address=address)
    got = set(fired(session, this)) & {"pickup_address", "office_address"}
    assert got == ({code} if code else set())


@pytest.mark.parametrize(
    ("oldest", "fires"), [(timedelta(days=30), True), (timedelta(days=30, minutes=1), False)]
)
def test_repeated_claims(session: Session, oldest: timedelta, fires: bool) -> None:
    # Two earlier cases (on other orders) and this request: 3 in 30 days when the oldest is
    # exactly 30 days old.
    first = add_order(session, placed=NOW - timedelta(days=40))
    second = add_order(session, placed=NOW - timedelta(days=20))
    add_case(session, first, NOW - oldest)
    add_case(session, second, NOW - timedelta(days=1))
    this = add_order(session, placed=NOW - timedelta(days=5))
    got = fired(session, this)
    assert ("repeat_claims" in got) is fires
    if fires:
        assert got["repeat_claims"] == "3 after-sales cases within 30 days, this one included"


@pytest.mark.parametrize(
    ("age", "status", "fires"),
    [
        (timedelta(minutes=30), "submitted", True),
        (timedelta(minutes=31), "submitted", False),
        (timedelta(minutes=10), "cancelled", True),  # cancel and resubmit: still a duplicate
        (timedelta(minutes=10), "draft", False),  # the bot still collecting: not a request
    ],
)
def test_duplicate_request_for_the_same_order(
    session: Session, age: timedelta, status: str, fires: bool
) -> None:
    this = add_order(session, placed=NOW - timedelta(days=5))
    add_case(session, this, NOW - age, status=status)
    assert ("duplicate_request" in fired(session, this)) is fires


def test_the_case_itself_is_not_its_own_duplicate(session: Session) -> None:
    this = add_order(session, placed=NOW - timedelta(days=5))
    own = add_case(session, this, NOW)
    facts = collect_risk_facts(
        session=session,
        order=this,
        customer=this.customer,
        now=NOW,
        kind="refund_only",
        exclude_ticket_id=own.id,
    )
    assert facts.order_cases == ()
    assert facts.customer_cases == ()


@pytest.mark.parametrize(
    ("note", "code"),
    [
        ("你们这群傻逼，赶紧退钱", "offensive_note"),
        ("What the FUCK is this", "offensive_note"),
        ("假一赔十，我要十倍赔偿", "claimant"),
        ("衣服开线了，麻烦处理一下", None),
    ],
)
def test_notes(session: Session, note: str, code: str | None) -> None:
    this = add_order(session, placed=NOW - timedelta(days=5))
    got = set(fired(session, this, note=note)) & {"offensive_note", "claimant"}
    assert got == ({code} if code else set())


@pytest.mark.parametrize(
    ("phone", "fires"), [("1380013800", True), ("11111111111", True), ("13800138000", False)]
)
def test_fake_phone(session: Session, phone: str, fires: bool) -> None:
    this = add_order(session, placed=NOW - timedelta(days=5), phone=phone, tg=8123)
    assert ("fake_phone" in fired(session, this)) is fires


@pytest.mark.parametrize(("cancelled", "fires"), [(3, True), (2, False)])
def test_cancel_and_reorder(session: Session, cancelled: int, fires: bool) -> None:
    for d in range(cancelled):
        add_order(session, placed=NOW - timedelta(days=10 + d), status="cancelled")
    this = add_order(session, placed=NOW - timedelta(days=5))
    assert ("cancel_reorder" in fired(session, this)) is fires


def test_a_quiet_order_has_no_signal(session: Session) -> None:
    this = add_order(session, placed=NOW - timedelta(days=5))
    facts = collect_risk_facts(
        session=session, order=this, customer=this.customer, now=NOW, kind="return_refund"
    )
    got = assess(facts, RULES, "en")
    assert got == RiskAssessment("low", ())
    assert got.to_json() == {"level": "low", "signals": []}


def test_a_disabled_signal_stays_quiet(session: Session) -> None:
    this = add_order(session, placed=NOW - timedelta(hours=2))
    assert "new_customer" in fired(session, this)
    rules = RiskRules.model_validate({"new_customer": {"enabled": False}})
    assert "new_customer" not in fired(session, this, rules=rules)


def test_no_order_complaint(session: Session) -> None:
    this = add_order(session, placed=NOW - timedelta(days=5))
    facts = collect_risk_facts(
        session=session, order=None, customer=this.customer, now=NOW, kind="complaint"
    )
    assert facts.same_phone_orders == ()
    assert facts.first_order_at == this.placed_at


@pytest.fixture
def statements(session: Session) -> Iterator[list[str]]:
    seen: list[str] = []
    conn = session.connection()

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(conn, "before_cursor_execute", count)
    yield seen
    event.remove(conn, "before_cursor_execute", count)


def test_collecting_is_one_statement_of_capped_queries(
    session: Session, statements: list[str]
) -> None:
    this = add_order(session, placed=NOW - timedelta(days=5))
    statements.clear()
    collect_risk_facts(session=session, order=this, customer=this.customer, now=NOW)
    assert len(statements) == 1
    # Six queries joined by UNION ALL; every list query is capped (the one aggregate is a
    # single row).
    assert statements[0].count("UNION ALL") == 5
    assert statements[0].count("LIMIT") == 5


def test_naive_now_is_refused(session: Session) -> None:
    this = add_order(session, placed=NOW - timedelta(days=5))
    with pytest.raises(ValueError, match="timezone-aware"):
        collect_risk_facts(
            session=session, order=this, customer=this.customer, now=NOW.replace(tzinfo=None)
        )


# ---------------------------------------------------------------- pure: phones, levels, texts


@pytest.mark.parametrize(
    ("phone", "fake"),
    [
        ("13800138000", False),
        ("138 0013 8000", False),
        ("+86 138-0013-8000", False),
        ("0086 13800138000", False),
        ("8613800138000", False),
        ("1380013800", True),  # 10 digits
        ("138001380001", True),  # 12 digits
        ("23800138000", True),  # not starting with 1
        ("11111111111", True),  # one digit repeated
        ("+86 000 0000 0000", True),
        ("+61 491 570 105", False),  # Australian, 11 digits in all
        ("+1 555", True),  # too short for any country
        ("+44 7777 777777", False),
        ("+7 777 777 7777", True),  # a real length, one digit repeated
        ("abc", True),
    ],
)
def test_phone_looks_fake(phone: str, fake: bool) -> None:
    assert phone_looks_fake(phone, FakePhoneRule()) is fake


def facts(**over: Any) -> RiskFacts:
    base: dict[str, Any] = {
        "now": NOW,
        "kind": "return_refund",
        "phone": "13800138000",
        "address": "上海市浦东新区世纪大道 100 号",
        "placed_at": NOW - timedelta(days=5),
        "paid_at": NOW - timedelta(days=5),
        "first_order_at": NOW - timedelta(days=100),
    }
    return RiskFacts(**{**base, **over})


def test_levels() -> None:
    assert assess(facts(), RULES, "en").level == "low"
    # One medium signal: medium.
    one = assess(facts(address="杭州 菜鸟驿站"), RULES, "en")
    assert (one.level, one.codes) == ("medium", ("pickup_address",))
    assert not one.needs_human
    # A high signal alone: high.
    assert assess(facts(phone="123"), RULES, "en").level == "high"
    # Three medium signals together: high (high_when_signals).
    three = assess(
        facts(address="杭州 菜鸟驿站", first_order_at=NOW, kind="refund_only", paid_at=NOW),
        RULES,
        "en",
    )
    assert set(three.codes) == {"pickup_address", "new_customer", "quick_refund"}
    assert three.level == "high"
    assert three.needs_human
    # The combination threshold is a setting.
    lenient = RiskRules(high_when_signals=4)
    assert (
        assess(
            facts(address="杭州 菜鸟驿站", first_order_at=NOW, kind="refund_only", paid_at=NOW),
            lenient,
            "en",
        ).level
        == "medium"
    )
    # A signal's level is a setting too.
    strict = RiskRules.model_validate({"pickup_address": {"level": "high"}})
    assert assess(facts(address="杭州 菜鸟驿站"), strict, "en").level == "high"


def test_signals_in_words_in_both_languages() -> None:
    everything = facts(
        kind="refund_only",
        note="傻逼 十倍赔偿",
        phone="11111111111",
        address="菜鸟驿站 写字楼",
        paid_at=NOW - timedelta(minutes=3),
        first_order_at=NOW,
        same_phone_orders=(NOW - timedelta(days=5),) * 3,
        same_address_orders=(NOW - timedelta(days=5),) * 3,
        customer_cases=(NOW - timedelta(days=1),) * 2,
        order_cases=(NOW - timedelta(minutes=1),),
        cancelled_orders=(NOW - timedelta(days=1),) * 3,
    )
    for language in ("en", "zh-CN"):
        got = assess(everything, RULES, language)
        assert set(got.codes) == set(SIGNALS)  # every signal fires, each has words
        assert all(s.text and "{" not in s.text for s in got.signals)
        assert got.signals_json()[0].keys() == {"code", "text"}
    quick = next(s for s in assess(everything, RULES, "zh-CN").signals if s.code == "quick_refund")
    assert quick.text == "付款后 3 分钟即申请仅退款（阈值 30 分钟）"


def test_risk_rules_are_checked() -> None:
    with pytest.raises(ValidationError, match="extra"):
        RiskRules.model_validate({"same_phone": {"min_order": 3}})
    with pytest.raises(ValidationError):
        RiskRules.model_validate({"same_phone": {"min_orders": 1000}})
    with pytest.raises(ValidationError, match="blank"):
        RiskRules.model_validate({"pickup_address": {"keywords": ["驿站", " "]}})
    with pytest.raises(ValidationError, match="regular expression"):
        RiskRules.model_validate({"fake_phone": {"home_pattern": "(["}})


def test_partial_section_keeps_the_signal_defaults() -> None:
    # Overriding the keywords of a high signal keeps it high.
    rules = RiskRules.model_validate({"offensive_note": {"keywords": ["混蛋"]}})
    assert rules.offensive_note.level == "high"


def test_sections_embed_in_the_policy_toml() -> None:
    class Policy(BaseModel):
        risk: RiskRules = RiskRules()
        auto_approval: AutoApprovalRules = AutoApprovalRules()

    raw = tomllib.loads(
        """
        [risk]
        high_when_signals = 2
        [risk.same_phone]
        min_orders = 4
        period_days = 3
        [risk.pickup_address]
        keywords = ["驿站", "快递柜"]

        [auto_approval]
        enabled = true
        [[auto_approval.rules]]
        name = "unshipped refund only, up to 500"
        kinds = ["refund_only"]
        order_statuses = ["paid"]
        max_amount_minor = { CNY = 50000, USD = 7000 }
        max_risk = "medium"
        """
    )
    policy = Policy.model_validate(raw)
    assert policy.risk.same_phone.min_orders == 4
    assert policy.risk.same_address.min_orders == 3
    assert policy.auto_approval.rules[0].max_amount_minor == {"CNY": 50000, "USD": 7000}


# ---------------------------------------------------------------- auto-approval

LOW = RiskAssessment("low")
MEDIUM = RiskAssessment("medium", (RiskSignal("new_customer", "new customer", "medium"),))
HIGH = RiskAssessment(
    "high",
    (
        RiskSignal("fake_phone", "phone looks fake", "high"),
        RiskSignal("quick_refund", "quick", "medium"),
    ),
)
UNSHIPPED = "refund only on an unshipped order"
SMALL = "small return, no risk signal"


# The default rule plus the peak-day rule policy.example.toml shows.
PEAK_RULES = AutoApprovalRules.model_validate(
    {
        "rules": [
            {
                "name": "refund only on an unshipped order",
                "kinds": ["refund_only"],
                "order_statuses": ["paid"],
            },
            {
                "name": "small return, no risk signal",
                "kinds": ["return_refund", "exchange"],
                "order_statuses": ["delivered"],
                "max_amount_minor": {"CNY": 10000},
            },
        ]
    }
)


def test_default_auto_approval_is_only_the_unshipped_refund() -> None:
    assert [r.name for r in AutoApprovalRules().rules] == ["refund only on an unshipped order"]


@pytest.mark.parametrize(
    ("kind", "status", "amount", "currency", "risk", "expected"),
    [
        # Refund only on an unshipped order: any amount, no signal.
        ("refund_only", "paid", 250000, "CNY", LOW, (True, UNSHIPPED, None)),
        ("refund_only", "paid", None, "CNY", LOW, (True, UNSHIPPED, None)),
        (
            "refund_only",
            "paid",
            500,
            "CNY",
            MEDIUM,
            (False, UNSHIPPED, "risk medium: new_customer"),
        ),
        (
            "refund_only",
            "paid",
            500,
            "CNY",
            HIGH,
            (False, UNSHIPPED, "risk high: fake_phone, quick_refund"),
        ),
        # Shipped or delivered refund only: verify first, a human.
        ("refund_only", "shipped", 500, "CNY", LOW, (False, "none", None)),
        ("refund_only", "delivered", 500, "CNY", LOW, (False, "none", None)),
        # Small returns and exchanges: at most 100.00 CNY (10000 fen), no signal.
        ("return_refund", "delivered", 10000, "CNY", LOW, (True, SMALL, None)),
        ("exchange", "delivered", 9999, "CNY", LOW, (True, SMALL, None)),
        ("return_refund", "delivered", 10001, "CNY", LOW, (False, "none", None)),
        (
            "return_refund",
            "delivered",
            5000,
            "CNY",
            MEDIUM,
            (False, SMALL, "risk medium: new_customer"),
        ),
        # A currency the rule does not list is never compared by conversion.
        ("return_refund", "delivered", 500, "USD", LOW, (False, "none", None)),
        ("return_refund", "delivered", 500, "cny", LOW, (True, SMALL, None)),
        ("return_refund", "delivered", None, "CNY", LOW, (False, "none", None)),
        # No goods flow, nothing to approve automatically.
        ("complaint", "delivered", None, "CNY", LOW, (False, "none", None)),
        ("delivery", "shipped", None, "CNY", LOW, (False, "none", None)),
    ],
)
def test_auto_approval_matrix(
    kind: str,
    status: str,
    amount: int | None,
    currency: str,
    risk: RiskAssessment,
    expected: tuple[bool, str, str | None],
) -> None:
    got = decide_auto_approval(
        kind=kind,
        order_status=status,
        amount_minor=amount,
        currency=currency,
        risk=risk,
        rules=PEAK_RULES,
    )
    assert (got.approve, got.rule, got.held_because) == expected


def test_auto_approval_off_switch() -> None:
    got = decide_auto_approval(
        kind="refund_only",
        order_status="paid",
        amount_minor=100,
        currency="CNY",
        risk=LOW,
        rules=AutoApprovalRules(enabled=False),
    )
    assert (got.approve, got.rule, got.held_because) == (False, "off", None)


def test_a_rule_may_tolerate_medium_but_never_high() -> None:
    rules = AutoApprovalRules.model_validate(
        {
            "rules": [
                {
                    "name": "quick cancellations",
                    "kinds": ["refund_only"],
                    "order_statuses": ["paid"],
                    "max_risk": "medium",
                }
            ]
        }
    )
    args: dict[str, Any] = {
        "kind": "refund_only",
        "order_status": "paid",
        "amount_minor": 100,
        "currency": "CNY",
        "rules": rules,
    }
    assert decide_auto_approval(**args, risk=MEDIUM).approve
    high = decide_auto_approval(**args, risk=HIGH)
    assert not high.approve
    assert high.held_because is not None
    assert "fake_phone" in high.held_because
    with pytest.raises(ValidationError):
        AutoApprovalRules.model_validate(
            {"rules": [{"name": "x", "kinds": [], "order_statuses": [], "max_risk": "high"}]}
        )


def test_auto_approval_rules_are_checked() -> None:
    rule = {"name": "a", "kinds": ["refund_only"], "order_statuses": ["paid"]}
    with pytest.raises(ValidationError, match="unique"):
        AutoApprovalRules.model_validate({"rules": [rule, rule]})
    with pytest.raises(ValidationError, match="currency"):
        AutoApprovalRules.model_validate({"rules": [{**rule, "max_amount_minor": {"yuan": 1}}]})
    with pytest.raises(ValidationError, match="negative"):
        AutoApprovalRules.model_validate({"rules": [{**rule, "max_amount_minor": {"CNY": -1}}]})
    with pytest.raises(ValidationError):
        AutoApprovalRules.model_validate({"rules": [{**rule, "kinds": ["upgrade"]}]})
    with pytest.raises(ValueError, match="negative"):
        decide_auto_approval(
            kind="refund_only",
            order_status="paid",
            amount_minor=-1,
            currency="CNY",
            risk=LOW,
            rules=AutoApprovalRules(),
        )
