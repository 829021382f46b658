"""Risk signals (风控) and auto-approval: which cases may move on without a human.
Over 500 lines as one file: the signals and the auto-approval that weighs them are one rule set.

Two steps, so the rules stay pure and testable: `collect_risk_facts` runs one statement of a few
bounded queries (each one through an index, each one capped) and returns plain `RiskFacts`;
`assess` turns facts and the shop's `RiskRules` (the `[risk]` section of the policy TOML) into a
level and the signals that fired, in words an agent reads (tickets/policy/texts.py, `risk.*`,
through the `policy` catalog). `decide_auto_approval` then applies `AutoApprovalRules`
(`[auto_approval]`).

High risk never refuses anything: it holds automation and sends the case to a human (DOMAIN.md,
风控). A signal is a reason to look, not a verdict.

Interpretations:

- "Same phone / address on N orders in a period": N orders (this one included) placed within
  one stretch of `period_days` that contains this order, a sliding window: a burst around this
  order counts, an old burst elsewhere in the customer's history does not.
- "Within N minutes / days" includes the bound: a refund-only request exactly 30 minutes after
  payment, or a first order exactly 1 day old, fires.
- "Repeated claims": cases by this customer in the period, this request included (the caller
  assesses before the case row exists, or passes its id in `exclude_ticket_id`).
- "Duplicate": another case (any status but draft, cancelled ones included: cancel-and-resubmit
  is the pattern) for the same order created within the window.
- A new customer is one whose first order was placed within `days`; a customer with no order yet
  counts from the customer row's creation.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import CompoundSelect, Select, bindparam, func, literal, select, union_all
from sqlalchemy.orm import InstrumentedAttribute, Session

from tickets.models import CaseKind, CaseStatus, Customer, Order, OrderStatus, Ticket
from tickets.policy.eligibility import policy_texts

Level = Literal["low", "medium", "high"]
SignalLevel = Literal["medium", "high"]
_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2}
# Count thresholds are capped so every query can be capped too (rows fetched <= 2 x the cap).
MAX_COUNT = 100


# ---------------------------------------------------------------- settings


class _Rules(BaseModel):
    # A misspelt key in the policy file must be refused, not silently ignored.
    model_config = ConfigDict(extra="forbid")


class _Signal(_Rules):
    enabled: bool = True
    level: SignalLevel = "medium"


class SamePhoneRule(_Signal):
    min_orders: int = Field(default=3, ge=2, le=MAX_COUNT)
    period_days: int = Field(default=7, ge=1)


class SameAddressRule(SamePhoneRule):
    pass


class QuickRefundRule(_Signal):
    """A refund-only request within `minutes` of payment."""

    minutes: int = Field(default=30, ge=1)


class NewCustomerRule(_Signal):
    days: int = Field(default=1, ge=1)


class _Keywords(_Signal):
    keywords: list[str] = Field(default_factory=list)

    @field_validator("keywords")
    @classmethod
    def _no_blank(cls, value: list[str]) -> list[str]:
        if any(not k.strip() for k in value):
            raise ValueError("a keyword cannot be blank (it would match everything)")
        return value


class PickupAddressRule(_Keywords):
    keywords: list[str] = Field(
        default_factory=lambda: [
            "菜鸟驿站",
            "驿站",
            "快递柜",
            "丰巢",
            "自提",
            "代收点",
            "parcel locker",
            "pickup point",
            "pick-up point",
        ]
    )


class OfficeAddressRule(_Keywords):
    keywords: list[str] = Field(
        default_factory=lambda: ["写字楼", "办公楼", "办公室", "公司前台", "office building"]
    )


class OffensiveNoteRule(_Keywords):
    level: SignalLevel = "high"
    keywords: list[str] = Field(
        default_factory=lambda: [
            "傻逼",
            "煞笔",
            "他妈的",
            "去死",
            "王八蛋",
            "fuck",
            "shit",
            "bitch",
            "idiot",
        ]
    )


class ClaimantRule(_Keywords):
    """Professional claimants (职业索赔): answered with the rules, by a human."""

    level: SignalLevel = "high"
    keywords: list[str] = Field(
        default_factory=lambda: [
            "十倍赔偿",
            "假一赔十",
            "退一赔三",
            "ten times compensation",
            "10x compensation",
        ]
    )


class RepeatClaimsRule(_Signal):
    min_cases: int = Field(default=3, ge=2, le=MAX_COUNT)
    period_days: int = Field(default=30, ge=1)


class DuplicateRule(_Signal):
    minutes: int = Field(default=30, ge=1)


class FakePhoneRule(_Signal):
    """A home-country number must match `home_pattern` (national digits); a foreign one needs
    `min_digits`..`max_digits` digits (E.164). One digit repeated is fake anywhere."""

    level: SignalLevel = "high"
    home_country_code: str = Field(default="86", pattern=r"^\d{1,3}$")
    home_pattern: str = r"^1\d{10}$"
    min_digits: int = Field(default=7, ge=1)
    max_digits: int = Field(default=15, ge=1)

    @field_validator("home_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"home_pattern is not a regular expression: {exc}") from exc
        return value


class CancelReorderRule(_Signal):
    min_cancelled: int = Field(default=3, ge=1, le=MAX_COUNT)
    period_days: int = Field(default=30, ge=1)


class RiskRules(_Rules):
    """Every risk signal with its threshold and level, and when signals together mean high."""

    same_phone: SamePhoneRule = Field(default_factory=SamePhoneRule)
    same_address: SameAddressRule = Field(default_factory=SameAddressRule)
    quick_refund: QuickRefundRule = Field(default_factory=QuickRefundRule)
    new_customer: NewCustomerRule = Field(default_factory=NewCustomerRule)
    pickup_address: PickupAddressRule = Field(default_factory=PickupAddressRule)
    office_address: OfficeAddressRule = Field(default_factory=OfficeAddressRule)
    repeat_claims: RepeatClaimsRule = Field(default_factory=RepeatClaimsRule)
    duplicate_request: DuplicateRule = Field(default_factory=DuplicateRule)
    offensive_note: OffensiveNoteRule = Field(default_factory=OffensiveNoteRule)
    claimant: ClaimantRule = Field(default_factory=ClaimantRule)
    fake_phone: FakePhoneRule = Field(default_factory=FakePhoneRule)
    cancel_reorder: CancelReorderRule = Field(default_factory=CancelReorderRule)
    # This many signals at once make the case high risk, whatever their own levels.
    high_when_signals: int = Field(default=3, ge=1)


SIGNALS = tuple(name for name in RiskRules.model_fields if name != "high_when_signals")


class AutoRule(_Rules):
    """Approve without a human when the kind, the order status and the amount fit, and the
    risk is at most `max_risk` (never high: high risk always goes to a human)."""

    name: str = Field(min_length=1)
    kinds: list[CaseKind]
    order_statuses: list[OrderStatus]
    # The most the rule approves, per currency, in minor units (CNY 10000 = 100.00; JPY has
    # no minor unit: 1000 = ¥1000). None: any amount. A currency not listed: the rule does
    # not apply (amounts are never converted to compare them).
    max_amount_minor: dict[str, int] | None = None
    max_risk: Literal["low", "medium"] = "low"

    @field_validator("max_amount_minor")
    @classmethod
    def _amounts(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is None:
            return None
        for cur, amount in value.items():
            if not re.fullmatch(r"[A-Z]{3}", cur):
                raise ValueError(f"{cur!r} is not a currency code (three capital letters)")
            if amount < 0:
                raise ValueError(f"max_amount_minor.{cur} cannot be negative")
        return value


def _default_auto_rules() -> list[AutoRule]:
    # Only what DOMAIN.md says can be automatic. Peak-time rules (a small return with no risk
    # signal, say) are the shop's to switch on: policy.example.toml shows one.
    return [
        # DOMAIN.md: refund only on an unshipped order can be automatic (the shipment stops).
        AutoRule(
            name="refund only on an unshipped order",
            kinds=[CaseKind.refund_only],
            order_statuses=[OrderStatus.paid],
        ),
    ]


class AutoApprovalRules(_Rules):
    """The off switch and the rules, tried in order; the first that fits decides."""

    enabled: bool = True
    rules: list[AutoRule] = Field(default_factory=_default_auto_rules)

    @model_validator(mode="after")
    def _unique(self) -> AutoApprovalRules:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"auto-approval rule names must be unique: {dupes}")
        return self


# ---------------------------------------------------------------- facts and results


@dataclass(frozen=True)
class RiskFacts:
    """What the signals look at, read from the database once (timestamps, not verdicts, so
    `assess` can apply any thresholds up to the ones they were collected with)."""

    now: datetime
    kind: str | None = None
    note: str = ""
    phone: str | None = None
    address: str = ""
    placed_at: datetime | None = None
    paid_at: datetime | None = None
    # placed_at of orders with the same phone / address around this one (this one included).
    same_phone_orders: tuple[datetime, ...] = ()
    same_address_orders: tuple[datetime, ...] = ()
    first_order_at: datetime | None = None
    # created_at of this customer's other cases, and of other cases for this order.
    customer_cases: tuple[datetime, ...] = ()
    order_cases: tuple[datetime, ...] = ()
    # placed_at of this customer's cancelled orders.
    cancelled_orders: tuple[datetime, ...] = ()


@dataclass(frozen=True)
class RiskSignal:
    code: str
    text: str
    level: SignalLevel

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "text": self.text}


@dataclass(frozen=True)
class RiskAssessment:
    """The level and the signals that fired, in words (Ticket.risk_level / risk_signals)."""

    level: Level
    signals: tuple[RiskSignal, ...] = ()

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(s.code for s in self.signals)

    @property
    def needs_human(self) -> bool:
        """High risk: automation holds and the case waits for an agent."""
        return self.level == "high"

    def signals_json(self) -> list[dict[str, str]]:
        return [s.to_json() for s in self.signals]

    def to_json(self) -> dict[str, Any]:
        """The ticket JSON's `risk`: {level, signals [{code, text}]}."""
        return {"level": self.level, "signals": self.signals_json()}


@dataclass(frozen=True)
class AutoDecision:
    """`approve`: move on at once. `rule`: the rule that decided ('off' when switched off,
    'none' when no rule fits). `held_because`: the signals that held a fitting rule back."""

    approve: bool
    rule: str
    held_because: str | None = None


# ---------------------------------------------------------------- collecting


def _span(rule: SamePhoneRule, placed_at: datetime, now: datetime) -> tuple[datetime, datetime]:
    period = timedelta(days=rule.period_days)
    return placed_at - period, min(placed_at + period, now)


def _earliest(at: InstrumentedAttribute[datetime], *where: Any) -> Select[Any]:
    """The timestamps `at` of the rows matching `where`, earliest first, capped at
    2 x MAX_COUNT rows."""
    return select(at.label("at")).where(*where).order_by(at).limit(2 * MAX_COUNT)


def _between(at: InstrumentedAttribute[datetime], low: str, high: str) -> tuple[Any, Any]:
    """`at` within the bound parameters `low` and `high`, both included."""
    return at >= bindparam(low), at <= bindparam(high)


@lru_cache(maxsize=16)
def _facts_statement(
    *, with_order: bool, phone: bool, address: bool, exclude: bool
) -> CompoundSelect[Any]:
    """The one statement `collect_risk_facts` runs, for one shape of request: up to six
    queries, each through an index and capped, joined by UNION ALL and tagged with the fact
    they read (`fact`, `at`). Built once per shape: building it costs several times what
    running it does."""
    cases: list[Any] = [Ticket.status != CaseStatus.draft.value]
    if exclude:
        cases.append(Ticket.id != bindparam("exclude"))
    parts: dict[str, Select[Any]] = {
        # This customer's cases in the repeat-claims period (ix_tickets_customer_id).
        "customer_cases": _earliest(
            Ticket.created_at,
            Ticket.customer_id == bindparam("customer_id"),
            *_between(Ticket.created_at, "repeat_since", "now"),
            *cases,
        ),
        # The customer's first order (ix_orders_customer_id).
        "first_order_at": select(func.min(Order.placed_at).label("at")).where(
            Order.customer_id == bindparam("customer_id")
        ),
        # Cancelled orders in the period (ix_orders_customer_id, then the customer's rows).
        "cancelled_orders": _earliest(
            Order.placed_at,
            Order.customer_id == bindparam("customer_id"),
            Order.status == OrderStatus.cancelled.value,
            *_between(Order.placed_at, "cancel_since", "now"),
        ),
    }
    if with_order:
        # Other cases for this order in the duplicate window (ix_tickets_order_id).
        parts["order_cases"] = _earliest(
            Ticket.created_at,
            Ticket.order_id == bindparam("order_id"),
            *_between(Ticket.created_at, "duplicate_since", "now"),
            *cases,
        )
    if with_order and phone:
        # Orders with the same phone around this one (ix_customers_phone ->
        # ix_orders_customer_id).
        parts["same_phone_orders"] = _earliest(
            Order.placed_at,
            Customer.phone == bindparam("phone"),
            *_between(Order.placed_at, "phone_from", "phone_to"),
        ).join(Customer, Customer.id == Order.customer_id)
    if with_order and address:
        # Orders to the same address around this one: exact text, so an index can serve it
        # (needs one on orders.address, or on a normalised address key: see the module's
        # report).
        parts["same_address_orders"] = _earliest(
            Order.placed_at,
            Order.address == bindparam("address"),
            *_between(Order.placed_at, "address_from", "address_to"),
        )
    # Each part as a subquery (a capped, ordered member of a UNION must be one), tagged.
    tagged = []
    for name, part in parts.items():
        sub = part.subquery()
        tagged.append(select(literal(name).label("fact"), sub.c.at))
    return union_all(*tagged)


def collect_risk_facts(
    *,
    session: Session,
    order: Order | None,
    customer: Customer,
    now: datetime,
    kind: CaseKind | str | None = None,
    note: str = "",
    rules: RiskRules | None = None,
    exclude_ticket_id: int | None = None,
) -> RiskFacts:
    """Read what the signals need in one statement (`_facts_statement`), bounded in time by
    `rules`' periods (the defaults if None).

    Indexes: customers.phone, orders.customer_id, tickets.order_id, tickets.customer_id exist;
    the address query needs an index on orders.address (see the module's report).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rules = rules or RiskRules()
    phone = bool(customer.phone)
    address = order is not None and bool(order.address.strip())
    params: dict[str, Any] = {
        "customer_id": customer.id,
        "now": now,
        "repeat_since": now - timedelta(days=rules.repeat_claims.period_days),
        "cancel_since": now - timedelta(days=rules.cancel_reorder.period_days),
    }
    if exclude_ticket_id is not None:
        params["exclude"] = exclude_ticket_id
    if order is not None:
        params.update(
            order_id=order.id,
            duplicate_since=now - timedelta(minutes=rules.duplicate_request.minutes),
        )
        if phone:
            params["phone"] = customer.phone
            params["phone_from"], params["phone_to"] = _span(rules.same_phone, order.placed_at, now)
        if address:
            params["address"] = order.address
            params["address_from"], params["address_to"] = _span(
                rules.same_address, order.placed_at, now
            )
    statement = _facts_statement(
        with_order=order is not None,
        phone=phone,
        address=address,
        exclude=exclude_ticket_id is not None,
    )
    found: dict[str, list[datetime]] = defaultdict(list)
    for fact, at in session.execute(statement, params):
        if at is not None:
            found[fact].append(at)
    first = found.pop("first_order_at", None)
    facts: dict[str, Any] = {name: tuple(sorted(times)) for name, times in found.items()}
    facts.update(
        now=now,
        kind=CaseKind(kind).value if kind is not None else None,
        note=note,
        phone=customer.phone,
        # Without an order, the customer counts from their row's creation.
        first_order_at=first[0] if first else customer.created_at,
    )
    if order is not None:
        facts.update(address=order.address, placed_at=order.placed_at, paid_at=order.paid_at)
    return RiskFacts(**facts)


# ---------------------------------------------------------------- assessing


def _burst(times: Sequence[datetime], anchor: datetime, period: timedelta) -> int:
    """The most of `times` inside one stretch of `period` that contains `anchor`."""
    ordered = sorted(times)
    best = 0
    for start in ordered:
        end = start + period
        if start <= anchor <= end:
            best = max(best, sum(1 for t in ordered if start <= t <= end))
    return best


def _keyword(text: str, keywords: Sequence[str]) -> str | None:
    folded = text.casefold()
    return next((k for k in keywords if k.casefold() in folded), None)


def phone_looks_fake(phone: str, rule: FakePhoneRule) -> bool:
    """Whether a phone number cannot be real: see FakePhoneRule."""
    raw = phone.strip()
    digits = re.sub(r"\D", "", raw)
    international = raw.startswith(("+", "00"))
    if raw.startswith("00"):
        digits = digits[2:]
    cc = rule.home_country_code
    if international:
        if digits.startswith(cc):
            national = digits[len(cc) :]
        else:
            national = digits
            if not rule.min_digits <= len(digits) <= rule.max_digits:
                return True
            return len(set(national)) <= 1
    else:
        national = digits
        # 8613800138000 typed without the plus: accept the country code in front.
        if not re.fullmatch(rule.home_pattern, national) and national.startswith(cc):
            national = national[len(cc) :]
    if len(set(national)) <= 1:
        return True
    return re.fullmatch(rule.home_pattern, national) is None


def assess(facts: RiskFacts, rules: RiskRules, language: str) -> RiskAssessment:
    """The risk level and the signals that fired, each in words in `language`."""
    texts = policy_texts(language)
    fired: list[RiskSignal] = []

    def fire(code: str, **variables: Any) -> None:
        rule: _Signal = getattr(rules, code)
        fired.append(RiskSignal(code, texts.get("risk", code, **variables), rule.level))

    for code in ("same_phone", "same_address"):
        rule: SamePhoneRule = getattr(rules, code)
        times = facts.same_phone_orders if code == "same_phone" else facts.same_address_orders
        if rule.enabled and facts.placed_at is not None:
            count = _burst(times, facts.placed_at, timedelta(days=rule.period_days))
            if count >= rule.min_orders:
                fire(code, count=count, days=rule.period_days)

    qr = rules.quick_refund
    if qr.enabled and facts.kind == CaseKind.refund_only.value and facts.paid_at is not None:
        elapsed = facts.now - facts.paid_at
        if timedelta(0) <= elapsed <= timedelta(minutes=qr.minutes):
            fire("quick_refund", minutes=int(elapsed.total_seconds() // 60), limit=qr.minutes)

    nc = rules.new_customer
    first = facts.first_order_at
    if nc.enabled and first is not None and facts.now - first <= timedelta(days=nc.days):
        fire("new_customer", days=nc.days)

    for code in ("pickup_address", "office_address"):
        kw_rule: _Keywords = getattr(rules, code)
        hit = _keyword(facts.address, kw_rule.keywords) if kw_rule.enabled else None
        if hit:
            fire(code, keyword=hit)

    rc = rules.repeat_claims
    if rc.enabled:
        since = facts.now - timedelta(days=rc.period_days)
        count = 1 + sum(1 for t in facts.customer_cases if since <= t <= facts.now)
        if count >= rc.min_cases:
            fire("repeat_claims", count=count, days=rc.period_days)

    dr = rules.duplicate_request
    if dr.enabled:
        since = facts.now - timedelta(minutes=dr.minutes)
        count = sum(1 for t in facts.order_cases if since <= t <= facts.now)
        if count:
            fire("duplicate_request", count=count, minutes=dr.minutes)

    for code in ("offensive_note", "claimant"):
        kw_rule = getattr(rules, code)
        hit = _keyword(facts.note, kw_rule.keywords) if kw_rule.enabled else None
        if hit:
            fire(code, keyword=hit)

    fp = rules.fake_phone
    if fp.enabled and facts.phone and phone_looks_fake(facts.phone, fp):
        fire("fake_phone", phone=facts.phone)

    cr = rules.cancel_reorder
    if cr.enabled:
        since = facts.now - timedelta(days=cr.period_days)
        count = sum(1 for t in facts.cancelled_orders if since <= t <= facts.now)
        if count >= cr.min_cancelled:
            fire("cancel_reorder", count=count, days=cr.period_days)

    level: Level = "low"
    if fired:
        level = "medium"
        if any(s.level == "high" for s in fired) or len(fired) >= rules.high_when_signals:
            level = "high"
    return RiskAssessment(level, tuple(fired))


# ---------------------------------------------------------------- auto-approval


def _fits(rule: AutoRule, kind: str, status: str, amount: int | None, currency: str) -> bool:
    if kind not in rule.kinds or status not in rule.order_statuses:
        return False
    if rule.max_amount_minor is None:
        return True
    limit = rule.max_amount_minor.get(currency.upper())
    return limit is not None and amount is not None and amount <= limit


def decide_auto_approval(
    *,
    kind: CaseKind | str,
    order_status: OrderStatus | str,
    amount_minor: int | None,
    currency: str,
    risk: RiskAssessment,
    rules: AutoApprovalRules,
) -> AutoDecision:
    """Whether a new case is approved without a human, by which rule, or what held it.

    `amount_minor` is what would go back (or the goods' value, for an exchange), in minor
    units of `currency`; None when unknown (rules with an amount limit then do not fit).
    """
    if amount_minor is not None and amount_minor < 0:
        raise ValueError("amount_minor cannot be negative")
    if not rules.enabled:
        return AutoDecision(approve=False, rule="off")
    k, s = CaseKind(kind).value, OrderStatus(order_status).value
    rule = next((r for r in rules.rules if _fits(r, k, s, amount_minor, currency)), None)
    if rule is None:
        return AutoDecision(approve=False, rule="none")
    if _RANK[risk.level] > _RANK[rule.max_risk]:
        held = f"risk {risk.level}: {', '.join(risk.codes)}"
        return AutoDecision(approve=False, rule=rule.name, held_because=held)
    return AutoDecision(approve=True, rule=rule.name)
