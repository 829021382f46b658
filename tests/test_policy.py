"""Eligibility (tickets/policy/eligibility.py): hand-worked cases from DOMAIN.md and the 7-day law.
Over 500 lines as one file: one module under test, hand-worked cases by rule.

Every expected value below was worked out from the rules, not read off the code: the comment
beside a case gives the arithmetic (delivery date in Shanghai, day 1, last day, closing moment).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Formatter
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from tests.conftest import order_json
from tickets.models import CaseKind
from tickets.orders.store import upsert_order
from tickets.policy.eligibility import (
    EligibilityRules,
    EvidenceNeed,
    KindVerdict,
    LineFacts,
    OrderFacts,
    check_request,
    eligible_kinds,
    evidence_needed,
    line_verdicts,
    no_reason_window,
    no_reason_window_closes,
    order_facts,
    policy_texts,
    reasons_for,
    texts_dir,
)
from tickets.policy.rules import Policy
from tickets.reasons import REASONS
from tickets.refunds.ledger import quote
from tickets.schemas import OrderIn

SH = ZoneInfo("Asia/Shanghai")
RULES = EligibilityRules()


def sh(text: str) -> datetime:
    """A Shanghai wall-clock time: '2026-11-25 23:59'."""
    return datetime.fromisoformat(text).replace(tzinfo=SH)


@dataclass(frozen=True)
class Item:
    sku: str
    quantity: int = 1


JACKET = LineFacts("JACKET-M", "羽绒服 M", "apparel", 1)
SOCKS = LineFacts("SOCKS", "Socks", "apparel", 2)
SUIT = LineFacts("SUIT-MTO", "Made-to-measure suit", "made_to_order", 1, no_reason_return=False)
TEA = LineFacts("TEA", "Longjing tea", "food", 3, no_reason_return=False)
LIPSTICK = LineFacts("LIPSTICK", "Lipstick", "cosmetics", 1)
DVD = LineFacts("DVD", "Concert DVD", "audio_visual", 1)
MANGO = LineFacts("MANGO", "Fresh mangoes", "fresh_food", 2)

# Delivered 18 Nov 15:00 Shanghai: day 1 is 19 Nov, the last day 25 Nov, closed 26 Nov 00:00.
DELIVERED = OrderFacts(
    order_no="T1001",
    status="delivered",
    placed_at=sh("2026-11-15 10:00"),
    paid_at=sh("2026-11-15 10:01"),
    shipped_at=sh("2026-11-16 09:00"),
    delivered_at=sh("2026-11-18 15:00"),
    lines=(JACKET, SOCKS, SUIT, TEA, LIPSTICK, DVD, MANGO),
)


def status(name: str, **over: Any) -> OrderFacts:
    dates: dict[str, Any] = {
        "unpaid": {"paid_at": None, "shipped_at": None, "delivered_at": None},
        "paid": {"shipped_at": None, "delivered_at": None},
        "cancelled": {"shipped_at": None, "delivered_at": None},
        "shipped": {"delivered_at": None},
        "refused": {"delivered_at": None},
        "delivered": {},
    }[name]
    return replace(DELIVERED, status=name, **{**dates, **over})


def problems(
    facts: OrderFacts,
    kind: str,
    reason: str,
    items: list[Item] | None = None,
    now: str = "2026-11-20 12:00",
    rules: EligibilityRules = RULES,
    language: str = "en",
) -> list[tuple[str, str]]:
    found = check_request(
        order_facts=facts,
        kind=kind,
        reason=reason,
        items=[Item("JACKET-M")] if items is None else items,
        rules=rules,
        now=sh(now),
        tz=SH,
        language=language,
    )
    return [(p.loc, p.code) for p in found]


# ---------------------------------------------------------------- the table

CASES: list[tuple[str, OrderFacts, str, str, list[Item] | None, str, list[tuple[str, str]]]] = [
    # (name, order, kind, reason, items, now in Shanghai, expected problems (loc, code))
    # --- the window: last day 25 Nov (18 Nov + 7), closes 26 Nov 00:00 Shanghai.
    ("day 1, no reason", DELIVERED, "return_refund", "no_reason", None, "2026-11-19 00:00", []),
    ("day 7 23:59", DELIVERED, "return_refund", "no_reason", None, "2026-11-25 23:59", []),
    (
        "day 8 00:00",
        DELIVERED,
        "return_refund",
        "no_reason",
        None,
        "2026-11-26 00:00",
        [("reason", "window_closed")],
    ),
    (
        "size exchange day 8",
        DELIVERED,
        "exchange",
        "size_fit",
        None,
        "2026-11-26 09:00",
        [("reason", "window_closed")],
    ),
    (
        "quality return day 30",
        DELIVERED,
        "return_refund",
        "quality_defect",
        None,
        "2026-12-18 10:00",
        [],
    ),
    ("quality exchange day 8", DELIVERED, "exchange", "wrong_item", None, "2026-11-26 00:00", []),
    # 2026-11-18T16:30Z is 19 Nov 00:30 in Shanghai: day 1 is 20 Nov, last day 26 Nov (a UTC
    # reading would close a day early, on 25 Nov).
    (
        "UTC after local midnight, 26 Nov 23:59",
        replace(DELIVERED, delivered_at=datetime(2026, 11, 18, 16, 30, tzinfo=UTC)),
        "return_refund",
        "no_reason",
        None,
        "2026-11-26 23:59",
        [],
    ),
    (
        "UTC after local midnight, 27 Nov 00:00",
        replace(DELIVERED, delivered_at=datetime(2026, 11, 18, 16, 30, tzinfo=UTC)),
        "return_refund",
        "no_reason",
        None,
        "2026-11-27 00:00",
        [("reason", "window_closed")],
    ),
    # 2026-11-18T15:59Z is 18 Nov 23:59 Shanghai: still delivered on the 18th, last day 25 Nov.
    (
        "UTC before local midnight, 26 Nov 00:00",
        replace(DELIVERED, delivered_at=datetime(2026, 11, 18, 15, 59, tzinfo=UTC)),
        "return_refund",
        "no_reason",
        None,
        "2026-11-26 00:00",
        [("reason", "window_closed")],
    ),
    # --- categories and lines, decided per line.
    (
        "made to order, no reason",
        DELIVERED,
        "return_refund",
        "no_reason",
        [Item("SUIT-MTO")],
        "2026-11-20 12:00",
        [("items.0.sku", "line_excluded")],
    ),
    (
        "made to order, quality",
        DELIVERED,
        "return_refund",
        "quality_defect",
        [Item("SUIT-MTO")],
        "2026-11-20 12:00",
        [],
    ),
    (
        "fresh food, changed mind",
        DELIVERED,
        "return_refund",
        "changed_mind",
        [Item("MANGO")],
        "2026-11-20 12:00",
        [("items.0.sku", "line_excluded")],
    ),
    (
        "line flagged not returnable",
        DELIVERED,
        "return_refund",
        "no_reason",
        [Item("JACKET-M"), Item("TEA", 2)],
        "2026-11-20 12:00",
        [("items.1.sku", "line_not_returnable")],
    ),
    (
        "sealed-only category stays eligible",
        DELIVERED,
        "return_refund",
        "no_reason",
        [Item("DVD")],
        "2026-11-20 12:00",
        [],
    ),
    (
        "unknown sku and too many",
        DELIVERED,
        "return_refund",
        "quality_defect",
        [Item("NOPE"), Item("SOCKS", 3)],
        "2026-11-20 12:00",
        [("items.0.sku", "unknown_item"), ("items.1.quantity", "too_many")],
    ),
    (
        "return without items",
        DELIVERED,
        "return_refund",
        "quality_defect",
        [],
        "2026-11-20 12:00",
        [("items", "items_needed")],
    ),
    # --- reasons.
    (
        "unknown reason",
        DELIVERED,
        "return_refund",
        "bored",
        None,
        "2026-11-20 12:00",
        [("reason", "unknown_reason")],
    ),
    (
        "service is no return reason",
        DELIVERED,
        "return_refund",
        "service",
        None,
        "2026-11-20 12:00",
        [("reason", "reason_not_for_kind")],
    ),
    (
        "unknown kind",
        DELIVERED,
        "upgrade",
        "other",
        None,
        "2026-11-20 12:00",
        [("kind", "unknown_kind")],
    ),
    # --- order statuses.
    (
        "unpaid refund",
        status("unpaid"),
        "refund_only",
        "changed_mind",
        None,
        "2026-11-20 12:00",
        [("kind", "order_unpaid")],
    ),
    (
        "unpaid complaint",
        status("unpaid"),
        "complaint",
        "service",
        [],
        "2026-11-20 12:00",
        [("kind", "order_unpaid")],
    ),
    (
        "cancelled refund",
        status("cancelled"),
        "refund_only",
        "changed_mind",
        None,
        "2026-11-20 12:00",
        [("kind", "order_cancelled")],
    ),
    (
        "unshipped refund only",
        status("paid"),
        "refund_only",
        "changed_mind",
        None,
        "2026-11-20 12:00",
        [],
    ),
    (
        "unshipped return",
        status("paid"),
        "return_refund",
        "no_reason",
        None,
        "2026-11-20 12:00",
        [("kind", "not_shipped_goods")],
    ),
    (
        "unshipped exchange",
        status("paid"),
        "exchange",
        "size_fit",
        None,
        "2026-11-20 12:00",
        [("kind", "not_shipped_goods")],
    ),
    (
        "unshipped delivery problem",
        status("paid"),
        "delivery",
        "late_delivery",
        [],
        "2026-11-20 12:00",
        [("kind", "not_shipped_delivery")],
    ),
    (
        "unshipped complaint",
        status("paid"),
        "complaint",
        "late_delivery",
        [],
        "2026-11-20 12:00",
        [],
    ),
    (
        "unshipped refund for a defect",
        status("paid"),
        "refund_only",
        "quality_defect",
        None,
        "2026-11-20 12:00",
        [("reason", "reason_not_now")],
    ),
    (
        "in transit, lost parcel",
        status("shipped"),
        "refund_only",
        "missing_item",
        None,
        "2026-11-20 12:00",
        [],
    ),
    (
        "in transit, will refuse",
        status("shipped"),
        "refund_only",
        "changed_mind",
        None,
        "2026-11-20 12:00",
        [],
    ),
    (
        "in transit, defect",
        status("shipped"),
        "refund_only",
        "quality_defect",
        None,
        "2026-11-20 12:00",
        [("reason", "reason_not_now")],
    ),
    (
        "in transit return",
        status("shipped"),
        "return_refund",
        "no_reason",
        None,
        "2026-11-20 12:00",
        [("kind", "in_transit_goods")],
    ),
    (
        "in transit delivery problem",
        status("shipped"),
        "delivery",
        "late_delivery",
        [],
        "2026-11-20 12:00",
        [],
    ),
    (
        "refused parcel, refund",
        status("refused"),
        "refund_only",
        "changed_mind",
        None,
        "2026-11-20 12:00",
        [],
    ),
    (
        "refused parcel, return",
        status("refused"),
        "return_refund",
        "changed_mind",
        None,
        "2026-11-20 12:00",
        [("kind", "parcel_refused_goods")],
    ),
    (
        "delivered, missing item",
        DELIVERED,
        "refund_only",
        "missing_item",
        None,
        "2026-11-20 12:00",
        [],
    ),
    (
        "delivered, refund only for a whim",
        DELIVERED,
        "refund_only",
        "changed_mind",
        None,
        "2026-11-20 12:00",
        [("reason", "reason_not_now")],
    ),
    (
        "delivered complaint months later",
        DELIVERED,
        "complaint",
        "service",
        [],
        "2027-03-01 12:00",
        [],
    ),
    (
        "presale in production, refund",
        status("paid", presale=True, in_production=True),
        "refund_only",
        "changed_mind",
        None,
        "2026-11-20 12:00",
        [],
    ),
    # No delivery time on a delivered order: the window cannot close against the customer.
    (
        "delivered without a date",
        replace(DELIVERED, delivered_at=None),
        "return_refund",
        "no_reason",
        None,
        "2027-01-01 12:00",
        [],
    ),
]


@pytest.mark.parametrize(
    ("facts", "kind", "reason", "items", "now", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_check_request_table(
    facts: OrderFacts,
    kind: str,
    reason: str,
    items: list[Item] | None,
    now: str,
    expected: list[tuple[str, str]],
) -> None:
    assert problems(facts, kind, reason, items, now) == expected
    # The zh-CN answer finds the same problems (only the words differ).
    assert problems(facts, kind, reason, items, now, language="zh-CN") == expected


def test_day_8_names_the_last_day_in_both_languages() -> None:
    args: dict[str, Any] = {
        "order_facts": DELIVERED,
        "kind": "return_refund",
        "reason": "no_reason",
        "items": [Item("JACKET-M")],
        "rules": RULES,
        "now": sh("2026-11-26 00:00"),
        "tz": SH,
    }
    [en] = check_request(**args, language="en")
    assert "November 25, 2026" in en.message
    assert "7-day" in en.message
    assert "quality problem" in en.message  # the alternative: a refusal is never a dead end
    [zh] = check_request(**args, language="zh-CN")
    assert "2026年11月25日" in zh.message
    assert "7天无理由" in zh.message
    assert zh.to_error() == {"loc": "reason", "msg": zh.message}


def test_excluded_line_is_named() -> None:
    [p] = check_request(
        order_facts=DELIVERED,
        kind="return_refund",
        reason="no_reason",
        items=[Item("SUIT-MTO")],
        rules=RULES,
        now=sh("2026-11-20 12:00"),
        tz=SH,
        language="zh-CN",
    )
    assert "Made-to-measure suit" in p.message
    assert "定制商品" in p.message


# ---------------------------------------------------------------- settings change the answers


@pytest.mark.parametrize(
    "delivered_at",
    [
        sh("2026-11-18 15:00"),
        sh("2026-11-18 00:00"),
        sh("2026-11-18 23:59"),
        datetime(2026, 11, 18, 16, 30, tzinfo=UTC),
        datetime(2026, 11, 18, 15, 59, tzinfo=UTC),
    ],
)
def test_window_agrees_with_the_refund_calculator(delivered_at: datetime) -> None:
    # Eligibility and the refund quote must close the window at the same instant.
    window = no_reason_window(
        replace(DELIVERED, delivered_at=delivered_at),
        rules=RULES,
        now=sh("2026-11-20 00:00"),
        tz=SH,
    )
    assert window.closes_at == no_reason_window_closes(delivered_at, 7, SH)


def test_shop_adds_an_excluded_category() -> None:
    rules = EligibilityRules(shop_excluded_categories=["Cosmetics"])
    got = problems(DELIVERED, "return_refund", "no_reason", [Item("LIPSTICK")], rules=rules)
    assert got == [("items.0.sku", "line_excluded")]
    # The law's own list is kept when the shop adds one.
    got = problems(DELIVERED, "return_refund", "no_reason", [Item("SUIT-MTO")], rules=rules)
    assert got == [("items.0.sku", "line_excluded")]


def test_longer_window_setting() -> None:
    # 15 days: last day 3 Dec, so 26 Nov (day 8) is open and 4 Dec 00:00 is closed.
    rules = EligibilityRules(no_reason_days=15)
    assert (
        problems(DELIVERED, "return_refund", "no_reason", now="2026-11-26 00:00", rules=rules) == []
    )
    assert problems(
        DELIVERED, "return_refund", "no_reason", now="2026-12-04 00:00", rules=rules
    ) == [("reason", "window_closed")]


def test_no_reason_returns_switched_off() -> None:
    rules = EligibilityRules(no_reason_days=0)
    assert problems(DELIVERED, "return_refund", "no_reason", rules=rules) == [
        ("reason", "no_reason_off")
    ]
    assert problems(DELIVERED, "return_refund", "quality_defect", rules=rules) == []


def test_shop_allows_refund_only_for_defects_after_delivery() -> None:
    rules = EligibilityRules(delivered_refund_only_reasons=["missing_item", "quality_defect"])
    assert problems(DELIVERED, "refund_only", "quality_defect", rules=rules) == []


def test_rules_refuse_unknown_keys_and_reasons() -> None:
    with pytest.raises(ValidationError, match="extra"):
        EligibilityRules.model_validate({"no_reason_dayz": 7})
    with pytest.raises(ValidationError, match="unknown reasons"):
        EligibilityRules.model_validate({"delivered_refund_only_reasons": ["bored"]})
    with pytest.raises(ValidationError, match=r"not in reasons\.refund_only"):
        EligibilityRules.model_validate({"delivered_refund_only_reasons": ["wrong_item"]})
    with pytest.raises(ValidationError, match="unknown reasons"):
        EligibilityRules.model_validate({"evidence": {"photo_reasons": ["x"]}})


def test_rules_embed_as_a_policy_section() -> None:
    class Policy(BaseModel):
        eligibility: EligibilityRules = EligibilityRules()

    raw = tomllib.loads(
        """
        [eligibility]
        no_reason_days = 15
        shop_excluded_categories = ["cosmetics"]
        [eligibility.reasons]
        exchange = ["size_fit", "quality_defect"]
        [eligibility.evidence]
        min_photos = 2
        """
    )
    policy = Policy.model_validate(raw)
    assert policy.eligibility.no_reason_days == 15
    assert policy.eligibility.reasons.exchange == ["size_fit", "quality_defect"]
    # What the file leaves out keeps its default.
    assert policy.eligibility.reasons.delivery == ["late_delivery", "missing_item", "other"]
    assert policy.eligibility.evidence.min_photos == 2
    assert policy.eligibility.excluded("made_to_order")


# ---------------------------------------------------------------- the menu of kinds


def verdicts(
    facts: OrderFacts, now: str = "2026-11-20 12:00", language: str = "en"
) -> dict[str, KindVerdict]:
    got = eligible_kinds(order_facts=facts, rules=RULES, now=sh(now), tz=SH, language=language)
    return {v.kind: v for v in got}


@pytest.mark.parametrize(
    ("facts", "allowed"),
    [
        pytest.param(status("unpaid"), set(), id="unpaid: nothing"),
        pytest.param(status("cancelled"), set(), id="cancelled: nothing"),
        pytest.param(status("paid"), {"refund_only", "complaint"}, id="unshipped"),
        pytest.param(status("shipped"), {"refund_only", "complaint", "delivery"}, id="in transit"),
        pytest.param(status("refused"), {"refund_only", "complaint", "delivery"}, id="refused"),
        pytest.param(DELIVERED, set(CaseKind), id="delivered: everything"),
    ],
)
def test_allowed_kinds_per_status(facts: OrderFacts, allowed: set[str]) -> None:
    for language in ("en", "zh-CN"):
        got = verdicts(facts, language=language)
        assert list(got) == [k.value for k in CaseKind]
        assert {k for k, v in got.items() if v.allowed} == allowed
        for v in got.values():
            assert v.text.strip(), f"{v.kind} has no words"
            assert v.allowed == bool(v.reasons)


def test_unpaid_and_cancelled_texts_name_the_order() -> None:
    assert "T1001" in verdicts(status("unpaid"))["refund_only"].text
    assert "T1001" in verdicts(status("cancelled"), language="zh-CN")["exchange"].text


def test_delivered_menu_inside_the_window() -> None:
    got = verdicts(DELIVERED, now="2026-11-25 23:59")
    ret = got["return_refund"]
    assert ret.allowed
    assert "no_reason" in ret.reasons
    assert ret.no_reason_until is not None
    assert ret.no_reason_until.isoformat() == "2026-11-25"
    assert any("November 25, 2026" in n for n in ret.notes)
    # The lines that cannot go back without a reason are named, and the sealed-only one warned.
    assert any("Made-to-measure suit" in n for n in ret.notes)
    assert any("Longjing tea" in n for n in ret.notes)
    assert any("Concert DVD" in n and "seal" in n for n in ret.notes)
    assert got["refund_only"].reasons == ("missing_item",)


def test_delivered_menu_after_the_window() -> None:
    got = verdicts(DELIVERED, now="2026-11-26 00:00", language="zh-CN")
    ret = got["return_refund"]
    assert ret.allowed  # quality claims stay open
    assert not set(ret.reasons) & {"no_reason", "size_fit", "changed_mind"}
    assert any("2026年11月25日" in n for n in ret.notes)


def test_all_lines_excluded_closes_no_reason_but_not_quality() -> None:
    facts = replace(DELIVERED, lines=(SUIT, MANGO))
    ret = verdicts(facts)["return_refund"]
    assert ret.allowed
    assert "no_reason" not in ret.reasons
    assert "quality_defect" in ret.reasons


def test_only_no_reason_configured_and_window_closed_refuses_with_the_day() -> None:
    rules = EligibilityRules.model_validate({"reasons": {"exchange": ["size_fit"]}})
    got = eligible_kinds(
        order_facts=DELIVERED, rules=rules, now=sh("2026-11-27 08:00"), tz=SH, language="en"
    )
    exchange = next(v for v in got if v.kind == "exchange")
    assert not exchange.allowed
    assert exchange.code == "no_reason_closed"
    assert "November 25, 2026" in exchange.text


def test_presale_in_production_warns_it_takes_longer() -> None:
    facts = status("paid", presale=True, in_production=True)
    refund = verdicts(facts)["refund_only"]
    assert refund.allowed
    assert any("presale" in n and "longer" in n for n in refund.notes)
    assert not verdicts(status("paid"))["refund_only"].notes


def test_in_transit_refund_explains_refusing_at_the_door() -> None:
    refund = verdicts(status("shipped"), language="zh-CN")["refund_only"]
    assert any("拒收" in n for n in refund.notes)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        eligible_kinds(
            order_facts=DELIVERED,
            rules=RULES,
            now=sh("2026-11-20 12:00").replace(tzinfo=None),
            tz=SH,
            language="en",
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(DELIVERED, delivered_at=sh("2026-11-18 15:00").replace(tzinfo=None))


def test_every_reason_code_is_in_exactly_one_family() -> None:
    from tickets.reasons import (
        COMPLAINT_REASONS,
        CONVERSATION_REASONS,
        CUSTOMER_CHOICE_REASONS,
        SELLER_FAULT_REASONS,
        Reason,
    )

    families = [
        SELLER_FAULT_REASONS,
        CUSTOMER_CHOICE_REASONS,
        COMPLAINT_REASONS,
        CONVERSATION_REASONS,
    ]
    assert sorted(r for f in families for r in f) == sorted(Reason)


def test_reasons_for_each_kind() -> None:
    assert "no_reason" in reasons_for("return_refund")
    assert "no_reason" not in reasons_for(CaseKind.exchange)
    assert reasons_for("complaint") == ("service", "late_delivery", "not_as_described", "other")
    for kind in CaseKind:
        assert set(reasons_for(kind)) <= set(REASONS)


# ---------------------------------------------------------------- evidence


@pytest.mark.parametrize(
    ("kind", "reason", "categories", "expected"),
    [
        ("return_refund", "quality_defect", ["apparel"], EvidenceNeed(photos=1)),
        ("return_refund", "quality_defect", ["apparel", "food"], EvidenceNeed(1, True)),
        ("refund_only", "quality_defect", ["fresh_food"], EvidenceNeed(1, True)),
        # Food damaged in transit: the box, not the production date, is the evidence.
        ("return_refund", "damaged_in_transit", ["food"], EvidenceNeed(photos=1)),
        ("exchange", "wrong_item", ["shoes"], EvidenceNeed(photos=1)),
        ("return_refund", "no_reason", ["food"], EvidenceNeed()),
        ("refund_only", "missing_item", ["apparel"], EvidenceNeed()),
        ("complaint", "not_as_described", [], EvidenceNeed(photos=1)),
    ],
)
def test_evidence_needed(
    kind: str, reason: str, categories: list[str], expected: EvidenceNeed
) -> None:
    assert evidence_needed(kind=kind, reason=reason, categories=categories, rules=RULES) == expected


def test_evidence_counts_are_settings_and_texts_say_what_to_show() -> None:
    rules = EligibilityRules.model_validate(
        {"evidence": {"min_photos": 2, "photo_kinds": ["refund_only", "return_refund"]}}
    )
    need = evidence_needed(
        kind="return_refund", reason="quality_defect", categories=["food"], rules=rules
    )
    assert need == EvidenceNeed(photos=2, production_date=True)
    assert not need.satisfied_by(1)
    assert need.satisfied_by(2)
    assert "2" in need.text("en")
    assert "production date" in need.text("en")
    assert "生产日期" in need.text("zh-CN")
    assert EvidenceNeed().text("zh-CN") == ""
    # A shop that does not ask complaints for photos.
    none = evidence_needed(kind="complaint", reason="not_as_described", categories=[], rules=rules)
    assert not none.any


# ---------------------------------------------------------------- texts


def _load(language: str) -> Mapping[str, Mapping[str, str]]:
    return policy_texts(language).tables


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(text) if name}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    # tests/test_text_catalogs.py checks the catalog itself; this, what the rules read from it.
    zh, en = _load("zh-CN"), _load("en")
    assert set(zh) == set(en)
    for section in en:
        assert set(zh[section]) == set(en[section]), section
        for key in en[section]:
            assert zh[section][key].strip() and en[section][key].strip(), (section, key)
            assert zh[section][key] != en[section][key] or section == "format", (section, key)
            assert _fields(zh[section][key]) <= _fields(en[section][key]), (section, key)


def test_every_code_has_words_in_both_languages() -> None:
    for language in ("zh-CN", "en"):
        t = _load(language)
        assert set(t["reasons"]) == set(REASONS)
        assert set(t["kinds"]) == {k.value for k in CaseKind}
        assert set(t["statuses"]) == {
            "unpaid",
            "paid",
            "shipped",
            "delivered",
            "cancelled",
            "refused",
        }
        for category in (*RULES.excluded_categories, *RULES.sealed_only_categories):
            assert category in t["categories"], (language, category)
        assert set(t["risk"]) >= {
            "same_phone",
            "same_address",
            "quick_refund",
            "new_customer",
            "pickup_address",
            "office_address",
            "repeat_claims",
            "duplicate_request",
            "offensive_note",
            "claimant",
            "fake_phone",
            "cancel_reorder",
        }


def test_language_fallback() -> None:
    assert policy_texts("zh").language == "zh-CN"
    assert policy_texts("en-GB").language == "en"


def test_texts_dir_is_the_bundled_one() -> None:
    assert texts_dir() == Path(__file__).resolve().parent.parent / "templates" / "policy"


# ---------------------------------------------------------------- from the database


def test_order_facts_from_a_row(session: Session, now: datetime) -> None:
    data = order_json(
        "P1",
        status="paid",
        shipped_at=None,
        delivered_at=None,
        presale=True,
        lines=[
            {
                "sku": "DUVET",
                "title": "Goose down duvet",
                "category": "home",
                "quantity": 1,
                "unit_price": "899.00",
                "no_reason_return": False,
            }
        ],
    )
    order, _ = upsert_order(session=session, data=OrderIn.model_validate(data), now=now)
    session.flush()
    facts = order_facts(order)
    assert facts.status == "paid"
    assert facts.presale
    assert facts.in_production
    assert facts.paid_at == datetime(2026, 11, 15, 2, 1, tzinfo=UTC)
    assert facts.lines == (LineFacts("DUVET", "Goose down duvet", "home", 1, False),)
    got = eligible_kinds(order_facts=facts, rules=RULES, now=now, tz=SH, language="en")
    assert [v.kind for v in got if v.allowed] == ["refund_only", "complaint"]


def test_demo_style_day_8_from_a_row(session: Session) -> None:
    order, _ = upsert_order(
        session=session, data=OrderIn.model_validate(order_json("D8")), now=sh("2026-11-15 10:00")
    )
    session.flush()
    # order_json delivers on 18 Nov 15:00 Shanghai: 26 Nov 09:00 is day 8.
    when = sh("2026-11-26 09:00")
    [p] = check_request(
        order_facts=order_facts(order),
        kind="return_refund",
        reason="no_reason",
        items=[Item("JACKET-M")],
        rules=RULES,
        now=when,
        tz=SH,
        language="zh-CN",
    )
    assert p.code == "window_closed"
    assert "2026年11月25日 24:00" in p.message


# ---------------------------------------------------------------- per line: one home


def test_each_line_is_offered_only_the_reasons_it_may_get_with_why_beside_it() -> None:
    mixed = replace(DELIVERED, lines=(JACKET, MANGO))
    for language, why in (("en", "cannot be returned without a reason"), ("zh-CN", "不支持无理由")):
        jacket, mango = line_verdicts(
            order_facts=mixed,
            kind="return_refund",
            rules=RULES,
            now=sh("2026-11-20 12:00"),
            tz=SH,
            language=language,
        )
        assert "no_reason" in jacket.reasons and jacket.why == ""
        assert "no_reason" not in mango.reasons and "quality_defect" in mango.reasons
        assert MANGO.title in mango.why and why in mango.why
    # The same rule refuses the request that asks for the barred reason, and only that item.
    assert problems(mixed, "return_refund", "no_reason", [Item("JACKET-M", 1), Item("MANGO", 1)])
    assert problems(mixed, "return_refund", "no_reason", [Item("MANGO", 1)]) == [
        ("items.0.sku", "line_excluded")
    ]
    assert problems(mixed, "return_refund", "no_reason", [Item("JACKET-M", 1)]) == []
    # A kind closed to the order leaves every line without reasons.
    closed = line_verdicts(
        order_facts=replace(mixed, status="unpaid"),
        kind="refund_only",
        rules=RULES,
        now=sh("2026-11-20 12:00"),
        tz=SH,
        language="en",
    )
    assert all(v.reasons == () for v in closed)


def test_a_quote_refuses_what_a_case_could_not_ask(session: Session) -> None:
    # The refund quote (API, preview, case) asks the same eligibility rules as open_case.
    data = order_json("MIX1")
    data["lines"].append(
        {
            "sku": "CAKE",
            "title": "Birthday cake",
            "category": "fresh_food",
            "quantity": 1,
            "unit_price": "59.00",
        }
    )
    now = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
    order, _ = upsert_order(session=session, data=OrderIn.model_validate(data), now=now)
    cake = [u.id for ln in order.lines if ln.sku == "CAKE" for u in ln.units]
    jacket = [u.id for ln in order.lines if ln.sku == "JACKET-M" for u in ln.units]

    def ask(units: list[int], reason: str, at: datetime) -> Any:
        return quote(
            session=session,
            order=order,
            kind="return_refund",
            reason=reason,
            unit_ids=units,
            policy=Policy(),
            now=at,
            requested_at=at,
        )

    refused = ask(cake, "no_reason", now)
    assert not refused.eligible and "Birthday cake" in refused.reasons[0]
    assert ask(cake, "quality_defect", now).eligible
    assert ask(jacket, "no_reason", now).eligible
    # The window is judged when the customer asked, not when the refund is quoted.
    asked = datetime(2026, 11, 25, 15, 59, tzinfo=UTC)
    late = quote(
        session=session,
        order=order,
        kind="return_refund",
        reason="no_reason",
        unit_ids=jacket,
        policy=Policy(),
        now=asked + timedelta(days=5),
        requested_at=asked,
    )
    assert late.eligible
    assert not ask(jacket, "no_reason", asked + timedelta(minutes=1)).eligible
