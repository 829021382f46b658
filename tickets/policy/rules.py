"""Rules as data: routing, duplicate window, evidence needs, and the other policy numbers.

The defaults are the operations manuals' numbers (DOMAIN.md). A shop overrides any of them in a
TOML file named by AFTERSALES_POLICY_FILE (see policy.example.toml); a file that does not make
sense is refused at start-up with the reason, never half-applied.
"""

from __future__ import annotations

import tomllib
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from tickets.exceptions import InvalidInput
from tickets.messages.scripts import Money
from tickets.models import CaseKind, CaseStatus, Priority
from tickets.money import to_minor
from tickets.policy.eligibility import EligibilityRules
from tickets.policy.risk import AutoApprovalRules, RiskRules
from tickets.reasons import REASONS
from tickets.refunds.calculator import DEFAULT_ARRIVAL_DAYS, RefundPolicy
from tickets.sla.calendar import BusinessCalendar, default_calendar


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoutingRule(_Strict):
    """Send a case to `group` when all the given conditions hold (empty list: any)."""

    name: str
    group: str
    kinds: list[CaseKind] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    statuses: list[CaseStatus] = Field(default_factory=list)


def _default_routing() -> list[RoutingRule]:
    return [
        RoutingRule(
            name="refund execution goes to finance",
            group="finance",
            statuses=[CaseStatus.refund_pending],
        ),
        RoutingRule(
            name="delivery problems go to logistics", group="logistics", kinds=[CaseKind.delivery]
        ),
        # Logistics chases the courier while a booked pickup waits (its clock, and its cards).
        RoutingRule(
            name="booked pickups go to logistics",
            group="logistics",
            statuses=[CaseStatus.pickup_booked],
        ),
        RoutingRule(
            name="quality claims go to product/quality",
            group="quality",
            reasons=["quality_defect", "not_as_described"],
        ),
    ]


_DEFAULTS = RefundPolicy()


def _units(minor: int) -> Decimal:
    return Decimal(minor).scaleb(-2)


class RefundSettings(_Strict):
    """The refund calculator's settings (MONEY.md); amounts in the order's currency units."""

    # The defaults are the calculator's own (tickets/refunds/calculator.py RefundPolicy), read back
    # from its minor units of a two-decimal currency into the file's currency units.
    return_freight_cap: Decimal = _units(_DEFAULTS.return_freight_cap)
    resettle_threshold_promotions: bool = _DEFAULTS.resettle_threshold_promotions
    restocking_fee_rate: Decimal = Field(default=_DEFAULTS.restocking_fee_rate, ge=0, lt=1)
    no_reason_law_applies: bool = _DEFAULTS.no_reason_law_applies
    deduct_outbound_shipping_when_below_free_threshold: bool = (
        _DEFAULTS.deduct_outbound_shipping_when_below_free_threshold
    )
    standard_shipping_fee: Decimal = _units(_DEFAULTS.standard_shipping_fee)
    # Days a refund takes to arrive, per payment method: (fastest, slowest).
    arrival_days: dict[str, tuple[int, int]] = Field(
        default_factory=lambda: dict(DEFAULT_ARRIVAL_DAYS)
    )
    # Refunds above this need a second approver (a different agent than the proposer).
    large_refund_threshold: Decimal = _units(_DEFAULTS.large_refund_threshold)

    def for_currency(self, currency: str) -> RefundPolicy:
        """The calculator's policy with amounts in `currency`'s minor units."""
        return RefundPolicy(
            return_freight_cap=to_minor(self.return_freight_cap, currency),
            resettle_threshold_promotions=self.resettle_threshold_promotions,
            restocking_fee_rate=self.restocking_fee_rate,
            no_reason_law_applies=self.no_reason_law_applies,
            deduct_outbound_shipping_when_below_free_threshold=(
                self.deduct_outbound_shipping_when_below_free_threshold
            ),
            standard_shipping_fee=to_minor(self.standard_shipping_fee, currency),
            arrival_days=dict(self.arrival_days),
            large_refund_threshold=to_minor(self.large_refund_threshold, currency),
        )


SHOP_CLOCKS = (
    "first_response",
    "review",
    "transit",
    "inspection",
    "refund_arrival",
    "complaint_resolution",
    "refused_delivery_contact",
    "platform_evidence",
    "pickup_collection",
)
# Clocks that run on the customer: reminders, then the case closes with notice.
CUSTOMER_CLOCKS = ("customer_shipping", "customer_reply")
CLOCKS = SHOP_CLOCKS + CUSTOMER_CLOCKS


class ClockRule(_Strict):
    """A clock's target: `hours` of working time on the group's calendar ("business") or of
    elapsed time ("calendar"), and optionally a legal limit in elapsed hours (the earlier
    wins). Customer clocks remind after each of `remind_after_hours`."""

    hours: float = Field(gt=0)
    calendar: Literal["business", "calendar"] = "business"
    legal_hours: float | None = Field(default=None, gt=0)
    remind_after_hours: list[float] = Field(default_factory=list)


def _default_clocks() -> dict[str, ClockRule]:
    return {
        "first_response": ClockRule(hours=2),
        # A WeChat shop must handle a request within 48 h, whatever the business hours.
        "review": ClockRule(hours=12, legal_hours=48),
        "transit": ClockRule(hours=24, calendar="calendar"),
        # The platform refunds by itself 10 days after delivery to the shop.
        "inspection": ClockRule(hours=24, legal_hours=240),
        # Never later than 7 days after receipt.
        "refund_arrival": ClockRule(hours=72, calendar="calendar", legal_hours=168),
        "complaint_resolution": ClockRule(hours=24),
        "refused_delivery_contact": ClockRule(hours=2),
        "platform_evidence": ClockRule(hours=24, calendar="calendar"),
        # A booked pickup the courier has not collected: two working days of the default
        # calendar (7.5 h each), from the booked slot's start, then logistics chases it.
        "pickup_collection": ClockRule(hours=15),
        "customer_shipping": ClockRule(
            hours=168, calendar="calendar", remind_after_hours=[72, 144]
        ),
        "customer_reply": ClockRule(hours=72, calendar="calendar", remind_after_hours=[24, 48]),
    }


class ClockOverride(_Strict):
    """A different target for some cases: by kind, priority and/or group (empty: any)."""

    clock: str
    hours: float = Field(gt=0)
    kinds: list[CaseKind] = Field(default_factory=list)
    priorities: list[Priority] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class SlaSettings(_Strict):
    """SLA targets, calendars and the sweep's thresholds (DOMAIN.md, service targets)."""

    clocks: dict[str, ClockRule] = Field(default_factory=_default_clocks)
    overrides: list[ClockOverride] = Field(
        default_factory=lambda: [
            ClockOverride(clock="first_response", hours=1, priorities=[Priority.urgent]),
        ]
    )
    # Named business calendars; "default" serves every group without its own (the manuals'
    # desk in the shop's timezone when left out).
    calendars: dict[str, BusinessCalendar] = Field(default_factory=dict)
    # Warn when this share of the target is used, or this many minutes are left.
    warn_fraction: float = Field(default=0.75, gt=0, lt=1)
    warn_minutes_left: int = Field(default=15, ge=0)
    # After a breach: priority up and the group's lead told after this long.
    escalate_after_minutes: int = Field(default=60, ge=0)
    # An unanswered case whose first response breached is offered to the group (unassigned).
    offer_unanswered_after_minutes: int = Field(default=30, ge=0)
    sweep_seconds: int = Field(default=60, ge=5)

    @model_validator(mode="after")
    def _known_clocks(self) -> SlaSettings:
        unknown = sorted(set(self.clocks) - set(CLOCKS))
        if unknown:
            raise ValueError(f"unknown clocks {unknown}; clocks are {list(CLOCKS)}")
        missing = sorted(set(CLOCKS) - set(self.clocks))
        if missing:
            defaults = _default_clocks()
            for name in missing:
                self.clocks[name] = defaults[name]
        for o in self.overrides:
            if o.clock not in CLOCKS:
                raise ValueError(f"override names unknown clock {o.clock!r}")
        return self

    _calendar_cache: dict[str, dict[str, BusinessCalendar]] = PrivateAttr(default_factory=dict)

    def calendars_for(self, timezone: str) -> dict[str, BusinessCalendar]:
        """The named calendars, with the default one in the shop's timezone when not given,
        and "24/7" for elapsed-time clocks. Built once per timezone (calendars precompute)."""
        cached = self._calendar_cache.get(timezone)
        if cached is not None:
            return cached
        out = dict(self.calendars)
        if "default" not in out:
            base = default_calendar().model_dump()
            out["default"] = BusinessCalendar.model_validate({**base, "timezone": timezone})
        out["24/7"] = BusinessCalendar.twenty_four_seven(timezone)
        self._calendar_cache[timezone] = out
        return out

    def target(self, clock: str, *, kind: str, priority: str, group: str) -> ClockRule:
        """The rule for this clock on a case of this kind, priority and group."""
        rule = self.clocks[clock]
        for o in self.overrides:
            if o.clock != clock:
                continue
            if o.kinds and kind not in o.kinds:
                continue
            if o.priorities and priority not in o.priorities:
                continue
            if o.groups and group not in o.groups:
                continue
            return rule.model_copy(update={"hours": o.hours})
        return rule


class PickupSettings(_Strict):
    """Courier pickups a customer may book for a return: the next `days` working days of the
    case group's calendar, each with a morning and an afternoon slot (the shop's local time)."""

    days: int = Field(default=3, ge=1, le=14)
    am: tuple[time, time] = (time(9, 0), time(12, 0))
    pm: tuple[time, time] = (time(14, 0), time(18, 0))
    # A courier needs an address they can find: at least this many letters and digits
    # (spaces and punctuation do not count; "北京市朝阳区建国路88号" has 13, "short" 5).
    address_min_length: int = Field(default=8, ge=1, le=200)
    address_max_length: int = Field(default=300, ge=20, le=1000)

    @model_validator(mode="after")
    def _slots_in_order(self) -> PickupSettings:
        for part in ("am", "pm"):
            start, end = getattr(self, part)
            if start >= end:
                raise ValueError(f"pickup.{part}: the slot must end after it starts")
        return self

    def slots(self) -> dict[str, tuple[time, time]]:
        """The day's slots by part (am, pm), in order."""
        return {"am": self.am, "pm": self.pm}

    def address_problem(self, address: str) -> str | None:
        """Why a pickup address is not plausible (too_short, too_long, no_letters), or None."""
        if len(address.strip()) > self.address_max_length:
            return "too_long"
        if sum(1 for c in address if c.isalnum()) < self.address_min_length:
            return "too_short"
        if not any(c.isalpha() for c in address):
            return "no_letters"  # a number alone is no address
        return None


class Policy(_Strict):
    """Every rule a lead may change without a deploy."""

    groups: dict[str, str] = Field(
        default_factory=lambda: {
            "service": "Customer service",
            "logistics": "Logistics",
            "quality": "Product / quality",
            "finance": "Finance",
        }
    )
    default_group: str = "service"
    routing: list[RoutingRule] = Field(default_factory=_default_routing)
    # Who may ask for what, when (windows, excluded categories, evidence):
    # tickets/policy/eligibility.py.
    eligibility: EligibilityRules = Field(default_factory=EligibilityRules)
    # Signals of abuse and their thresholds: tickets/policy/risk.py.
    risk: RiskRules = Field(default_factory=RiskRules)
    # What goes through without a human (never a risky case): tickets/policy/risk.py.
    auto_approval: AutoApprovalRules = Field(default_factory=AutoApprovalRules)
    # The language of texts written for agents (risk signals, system notes).
    agent_language: Literal["zh-CN", "en"] = "zh-CN"
    # What a refusal offers when the agent does not say (a refusal never ends without one).
    refusal_alternative: dict[str, str] = Field(
        default_factory=lambda: {
            "zh-CN": "您可以补充凭证后重新提交申请，或回复本消息联系人工客服协商其他方案",
            "en": "you can add evidence and submit the request again, or reply here to work out "
            "another solution with us",
        }
    )
    refunds: RefundSettings = Field(default_factory=RefundSettings)
    # The most a compensation script may offer, by its limit key, in the shop's currency
    # (a script's default above its limit is refused at start-up).
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    compensation_limits: dict[str, Decimal] = Field(
        default_factory=lambda: {
            "coupon": Decimal("20.00"),
            "gift": Decimal("30.00"),
            "goodwill": Decimal("50.00"),
        }
    )
    sla: SlaSettings = Field(default_factory=SlaSettings)
    return_address: str = "上海市青浦区华新镇 售后仓 3 号门 (After-sales warehouse, gate 3)"
    pickup: PickupSettings = Field(default_factory=PickupSettings)

    @model_validator(mode="after")
    def _groups_known(self) -> Policy:
        if self.default_group not in self.groups:
            raise ValueError(f"default_group {self.default_group!r} is not one of the groups")
        for rule in self.routing:
            if rule.group not in self.groups:
                raise ValueError(f"routing rule {rule.name!r} names unknown group {rule.group!r}")
            bad = [r for r in rule.reasons if r not in REASONS]
            if bad:
                raise ValueError(f"routing rule {rule.name!r} names unknown reasons {bad}")
        return self

    def script_limits(self) -> dict[str, Money]:
        """The compensation limits as the script library takes them."""
        return {
            key: Money(to_minor(value, self.currency), self.currency)
            for key, value in self.compensation_limits.items()
        }

    # One source for each number: these read the sections that own them.
    @property
    def no_reason_days(self) -> int:
        """The no-reason return window in days (七天无理由)."""
        return self.eligibility.no_reason_days

    @property
    def photo_required_reasons(self) -> list[str]:
        """Reasons whose claim needs a photo before review."""
        return self.eligibility.evidence.photo_reasons

    @property
    def duplicate_window_minutes(self) -> int:
        """A second request for the same order within this window is a duplicate."""
        return self.risk.duplicate_request.minutes


def load_policy(path: Path | None) -> Policy:
    """The policy: defaults, overridden by the TOML file at `path` when given."""
    if path is None:
        return Policy()
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInput(f"policy file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"policy file {path} is not valid TOML: {exc}") from exc
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        lines = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)
        raise InvalidInput(f"policy file {path} is refused: {lines}", errors) from exc
