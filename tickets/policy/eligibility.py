"""Eligibility: which after-sales requests an order is open to now, and why the others are not.
Over 500 lines as one file: the rules (windows, categories, exceptions, the 7-day law) are one
decision, read together.

Everything here is a pure function of an `OrderFacts` snapshot (built once from an `Order` row by
`order_facts`), the shop's `EligibilityRules` (the `[eligibility]` section of the policy TOML),
`now` and the shop's timezone: no database, no clock, so the bot's menu, the API's 422 and the
panel all give the same answer. Texts a customer reads come from tickets/policy/texts.py
through the `policy` gettext catalog (templates/policy/), never from this file.

Interpretations, written down so they can be argued with:

- The no-reason window (七天无理由, 《网络购买商品七日无理由退货暂行办法》 art. 7) runs from the
  day after delivery to 24:00 of day N, in the shop's timezone: delivered 18 Nov 15:00 with N = 7
  means the last day is 25 Nov and the window closes at 26 Nov 00:00 local time. A calendar rule,
  not N x 24 h: a parcel signed at 23:59 still gets seven full days.
- The window and the excluded categories apply to the customer-choice reasons
  (`no_reason_reasons`) of returns and exchanges; quality and other seller-fault claims are never
  limited by them. Exclusion is decided per line: the category is excluded, or the line itself is
  flagged `no_reason_return = false`.
- A delivered order without `delivered_at` cannot have its window computed; it is treated as open
  (a gap in the shop's data never counts against the customer; the agent still reviews it).
- Audio-visual goods and software are excluded by the law only once unsealed, which is known at
  inspection, not at application: they stay eligible, with a note saying "only while sealed".
- A presale order that is paid and not shipped is taken to be in production (the order has no
  production flag yet): refund only is allowed, with a note that it takes longer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tickets.bundled import bundled
from tickets.catalogs import Catalog, Plural, load_catalogs, mismatched
from tickets.messages.scripts import format_day
from tickets.models import GOODS_KINDS, CaseKind, Order, OrderStatus
from tickets.policy.texts import TEXTS as POLICY_TEXTS
from tickets.reasons import CUSTOMER_CHOICE_REASONS, REASONS

LANGUAGES = ("zh-CN", "en")
# Kinds that name goods and units (a complaint or a delivery problem need not).
ITEM_KINDS = frozenset({CaseKind.refund_only, CaseKind.return_refund, CaseKind.exchange})


# The bundled texts' directory (a resolved path is a few system calls; texts are read on every
# eligibility check, several times per update of the bot).
_TEXTS_DIR = bundled("templates", "policy")


def texts_dir() -> Path:
    """The bundled reason texts: templates/policy, shipped with the code."""
    return _TEXTS_DIR


# ---------------------------------------------------------------- settings


class _Rules(BaseModel):
    # A misspelt key in the policy file must be refused, not silently ignored.
    model_config = ConfigDict(extra="forbid")


def _unknown(codes: Sequence[str]) -> list[str]:
    return [c for c in codes if c not in REASONS]


class KindReasons(_Rules):
    """The reason codes a customer may give for each kind of request."""

    refund_only: list[str] = Field(
        default_factory=lambda: [
            "no_reason",
            "changed_mind",
            "size_fit",
            "late_delivery",
            "missing_item",
            "quality_defect",
            "damaged_in_transit",
        ]
    )
    return_refund: list[str] = Field(
        default_factory=lambda: [
            "no_reason",
            "size_fit",
            "changed_mind",
            "quality_defect",
            "damaged_in_transit",
            "wrong_item",
            "not_as_described",
        ]
    )
    exchange: list[str] = Field(
        default_factory=lambda: [
            "size_fit",
            "quality_defect",
            "damaged_in_transit",
            "wrong_item",
            "not_as_described",
        ]
    )
    complaint: list[str] = Field(
        default_factory=lambda: ["service", "late_delivery", "not_as_described", "other"]
    )
    delivery: list[str] = Field(default_factory=lambda: ["late_delivery", "missing_item", "other"])

    @model_validator(mode="after")
    def _known(self) -> KindReasons:
        for kind in CaseKind:
            bad = _unknown(self.of(kind))
            if bad:
                raise ValueError(f"reasons.{kind.value} names unknown reasons {bad}")
        return self

    def of(self, kind: CaseKind) -> list[str]:
        codes: list[str] = getattr(self, kind.value)
        return codes


class EvidenceRules(_Rules):
    """What a claim must bring before it is reviewed (DOMAIN.md, the application step)."""

    # Reasons that need photos of the problem, and how many at least.
    photo_reasons: list[str] = Field(
        default_factory=lambda: [
            "quality_defect",
            "damaged_in_transit",
            "wrong_item",
            "not_as_described",
        ]
    )
    min_photos: int = Field(default=1, ge=1)
    # Kinds whose claims are asked for photos (a shop may spare complaints, for instance).
    photo_kinds: list[CaseKind] = Field(default_factory=lambda: list(CaseKind))
    # Food claimed spoiled: the photo must show the production date as well.
    food_categories: list[str] = Field(default_factory=lambda: ["food", "fresh_food"])
    production_date_reasons: list[str] = Field(
        default_factory=lambda: ["quality_defect", "not_as_described"]
    )

    @model_validator(mode="after")
    def _known(self) -> EvidenceRules:
        bad = _unknown(self.photo_reasons + self.production_date_reasons)
        if bad:
            raise ValueError(f"evidence names unknown reasons {bad}")
        return self


class EligibilityRules(_Rules):
    """The shop's eligibility policy; defaults are the law's and the manuals' (DOMAIN.md)."""

    # The no-reason window in days after the day of delivery; 0: no no-reason returns at all.
    no_reason_days: int = Field(default=7, ge=0)
    # Customer-choice reasons: the window and the excluded categories apply to them.
    no_reason_reasons: list[str] = Field(
        default_factory=lambda: [r.value for r in CUSTOMER_CHOICE_REASONS]
    )
    # Categories the law excludes from no-reason returns (art. 6): made to order, fresh and
    # perishable, digital goods, newspapers and periodicals.
    excluded_categories: list[str] = Field(
        default_factory=lambda: [
            "made_to_order",
            "fresh_food",
            "digital",
            "newspapers",
            "periodicals",
        ]
    )
    # The shop's own additions, kept apart so adding one never drops the law's list.
    shop_excluded_categories: list[str] = Field(default_factory=list)
    # Excluded only once unsealed (art. 6): eligible, with a note.
    sealed_only_categories: list[str] = Field(default_factory=lambda: ["audio_visual", "software"])
    reasons: KindReasons = Field(default_factory=KindReasons)
    # Refund only (no goods back), by order status: unshipped, any choice; shipped, a lost
    # parcel or a refusal at the door; delivered, missing items only (DOMAIN.md 仅退款).
    unshipped_refund_only_reasons: list[str] = Field(
        default_factory=lambda: ["no_reason", "changed_mind", "size_fit", "late_delivery"]
    )
    in_transit_refund_only_reasons: list[str] = Field(
        default_factory=lambda: ["missing_item", "no_reason", "changed_mind", "late_delivery"]
    )
    delivered_refund_only_reasons: list[str] = Field(default_factory=lambda: ["missing_item"])
    refused_refund_only_reasons: list[str] = Field(
        default_factory=lambda: [
            "no_reason",
            "changed_mind",
            "size_fit",
            "late_delivery",
            "damaged_in_transit",
        ]
    )
    evidence: EvidenceRules = Field(default_factory=EvidenceRules)

    @model_validator(mode="after")
    def _known(self) -> EligibilityRules:
        for name in (
            "no_reason_reasons",
            "unshipped_refund_only_reasons",
            "in_transit_refund_only_reasons",
            "delivered_refund_only_reasons",
            "refused_refund_only_reasons",
        ):
            codes: list[str] = getattr(self, name)
            bad = _unknown(codes)
            if bad:
                raise ValueError(f"{name} names unknown reasons {bad}")
            if name.endswith("refund_only_reasons"):
                # A status list outside the kind's own list would be silently dead: refuse it.
                stray = [c for c in codes if c not in self.reasons.refund_only]
                if stray:
                    raise ValueError(f"{name} names {stray}, not in reasons.refund_only")
        return self

    def excluded(self, category: str) -> bool:
        """Whether a category is barred from no-reason returns (case-insensitive)."""
        key = category.strip().casefold()
        return key in {
            c.casefold() for c in (*self.excluded_categories, *self.shop_excluded_categories)
        }

    def sealed_only(self, category: str) -> bool:
        key = category.strip().casefold()
        return key in {c.casefold() for c in self.sealed_only_categories}


# ---------------------------------------------------------------- the order, as facts


@dataclass(frozen=True)
class LineFacts:
    sku: str
    title: str
    category: str
    quantity: int
    no_reason_return: bool = True


@dataclass(frozen=True)
class OrderFacts:
    """What eligibility needs of an order, detached from the database."""

    order_no: str
    status: str
    placed_at: datetime
    paid_at: datetime | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    presale: bool = False
    in_production: bool = False
    lines: tuple[LineFacts, ...] = ()

    def __post_init__(self) -> None:
        OrderStatus(self.status)  # an unknown status is a bug upstream: fail loudly
        for name in ("placed_at", "paid_at", "shipped_at", "delivered_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")


def order_facts(order: Order) -> OrderFacts:
    """The snapshot of an order row (with its lines loaded) that the pure rules work on."""
    presale = bool(order.presale)
    return OrderFacts(
        order_no=order.order_no,
        status=order.status,
        placed_at=order.placed_at,
        paid_at=order.paid_at,
        shipped_at=order.shipped_at,
        delivered_at=order.delivered_at,
        presale=presale,
        # No production flag on orders yet: a paid, unshipped presale order is being made.
        in_production=presale and order.status == OrderStatus.paid.value,
        lines=tuple(
            LineFacts(
                sku=ln.sku,
                title=ln.title,
                category=ln.category,
                quantity=ln.quantity,
                no_reason_return=ln.no_reason_return,
            )
            for ln in order.lines
        ),
    )


# ---------------------------------------------------------------- texts


class PolicyTexts:
    """One language's texts (tickets/policy/texts.py through the `policy` catalog): `tables`
    holds each section's texts by key (a text about a count in its singular form)."""

    def __init__(
        self,
        language: str,
        tables: Mapping[str, Mapping[str, str]],
        counted: Mapping[tuple[str, str], tuple[Catalog, Plural]] | None = None,
    ) -> None:
        self.language = language
        self.tables = tables
        self._counted = dict(counted or {})

    def get(self, section: str, key: str, **variables: Any) -> str:
        """The text, filled in; a missing key is a bug (the key tests catch it first)."""
        counted = self._counted.get((section, key))
        if counted is not None:
            catalog, plural = counted
            count = int(variables[plural.count])
            return catalog.ngettext(plural.singular, plural.plural, count).format_map(variables)
        try:
            template = self.tables[section][key]
        except KeyError as exc:
            raise KeyError(f"no text [{section}] {key} for {self.language}") from exc
        return template.format_map(variables)

    def name(self, section: str, code: str) -> str:
        """A code's display name (kinds, reasons, statuses, categories); the code itself when
        the texts do not name it (a shop's own category)."""
        return self.tables.get(section, {}).get(code, code)

    def join(self, items: Sequence[str]) -> str:
        return self.tables["format"]["list_separator"].join(items)

    def day(self, value: date) -> str:
        return format_day(value, self.language)


def normalise_language(language: str) -> str:
    """zh, zh-CN, zh_Hans... -> zh-CN; anything else -> en (the two languages we ship)."""
    return "zh-CN" if language.lower().startswith("zh") else "en"


@lru_cache(maxsize=4)
def _catalogs(directory: Path) -> dict[str, Catalog]:
    catalogs = load_catalogs(directory, "policy")
    problems = mismatched(catalogs, POLICY_TEXTS)
    if problems:
        raise ValueError("policy texts do not match: " + "; ".join(problems))
    return catalogs


@lru_cache(maxsize=8)
def _load(language: str, directory: Path) -> PolicyTexts:
    catalog = _catalogs(directory)[language]
    tables: dict[str, dict[str, str]] = {}
    counted: dict[tuple[str, str], tuple[Catalog, Plural]] = {}
    for name, message in POLICY_TEXTS.items():
        section, _, key = name.partition(".")
        if isinstance(message, Plural):
            counted[(section, key)] = (catalog, message)
            text = catalog.ngettext(message.singular, message.plural, 1)
        else:
            text = catalog.gettext(message)
        tables.setdefault(section, {})[key] = text
    return PolicyTexts(language, tables, counted)


def policy_texts(language: str, directory: Path | None = None) -> PolicyTexts:
    """The texts for a language, read once per process (lazily: nothing is read at import)."""
    return _load(normalise_language(language), directory or texts_dir())


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class KindVerdict:
    """Whether a kind of request is open for the order now, and why, in the customer's words.

    `reasons` are the reason codes open for it now (the bot offers only these); `notes` are
    extra facts the customer should know (the window's last day, lines that are excluded, a
    presale delay); `no_reason_until` is the last day of the no-reason window, when known.
    """

    kind: str
    allowed: bool
    code: str
    text: str
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    no_reason_until: date | None = None


@dataclass(frozen=True)
class LineVerdict:
    """What one line of the order may be claimed for, for one kind, now: `reasons`, the reason
    codes open to it (the kind's open reasons less those the line is barred from), and `why`,
    in the customer's words, when some of the kind's reasons are closed to this line ('' when
    none is)."""

    sku: str
    title: str
    reasons: tuple[str, ...]
    why: str = ""


@dataclass(frozen=True)
class Problem:
    """One reason a request cannot be taken as it is: where (`loc`, a field path) and why."""

    loc: str
    code: str
    message: str

    def to_error(self) -> dict[str, str]:
        """The {loc, msg} shape of InvalidInput.errors."""
        return {"loc": self.loc, "msg": self.message}


@dataclass(frozen=True)
class EvidenceNeed:
    """What must come with a claim: `photos` at least (0: none), and whether they must show
    a food's production date."""

    photos: int = 0
    production_date: bool = False

    @property
    def any(self) -> bool:
        return self.photos > 0

    def satisfied_by(self, photos: int) -> bool:
        return photos >= self.photos

    def text(self, language: str) -> str:
        """The request for evidence in the customer's language ('' when nothing is needed)."""
        texts = policy_texts(language)
        parts = []
        if self.photos:
            parts.append(texts.get("evidence", "photos", count=self.photos))
        if self.production_date:
            parts.append(texts.get("evidence", "production_date"))
        return (" " if texts.language == "en" else "").join(parts)


class RequestedItem(Protocol):
    """An item of a request: TicketCreate.items and the refund-quote items both fit."""

    @property
    def sku(self) -> str: ...

    @property
    def quantity(self) -> int: ...


# ---------------------------------------------------------------- the window


@dataclass(frozen=True)
class Window:
    """The no-reason window of an order now: open, closed, off, or not started (not
    delivered); `last_day` in the shop's timezone when delivery is known."""

    state: str  # open | closed | off | not_delivered
    last_day: date | None = None
    closes_at: datetime | None = None


def no_reason_window_closes(delivered_at: datetime, days: int, tz: tzinfo) -> datetime:
    """When a no-reason return window ends: counted from the day after delivery, it closes at
    24:00 of the `days`-th day, in the shop's timezone (《网络购买商品七日无理由退货暂行办法》).
    The one home of this rule. 24:00 is 00:00 of the next day, local time (DST-safe: built,
    not added)."""
    delivered_on = delivered_at.astimezone(tz).date()
    last_day = delivered_on + timedelta(days=days)
    return datetime.combine(last_day + timedelta(days=1), datetime.min.time(), tzinfo=tz)


def no_reason_last_day(delivered_at: datetime, *, days: int, tz: tzinfo) -> date:
    """The window's last day, in the shop's timezone (the day before it closes)."""
    return (no_reason_window_closes(delivered_at, days, tz) - timedelta(days=1)).date()


def no_reason_window(
    facts: OrderFacts, *, rules: EligibilityRules, now: datetime, tz: tzinfo
) -> Window:
    """Where the order's no-reason window stands at `now`."""
    if rules.no_reason_days == 0:
        return Window("off")
    if facts.status != OrderStatus.delivered.value:
        return Window("not_delivered")
    if facts.delivered_at is None:
        return Window("open")
    last = no_reason_last_day(facts.delivered_at, days=rules.no_reason_days, tz=tz)
    closes = no_reason_window_closes(facts.delivered_at, rules.no_reason_days, tz)
    return Window("open" if now < closes else "closed", last, closes)


# ---------------------------------------------------------------- deciding


@dataclass
class _Decision:
    """A verdict before it is put into words: text keys and their variables."""

    kind: CaseKind
    allowed: bool
    code: str
    reasons: list[str] = field(default_factory=list)
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    window: Window = field(default_factory=lambda: Window("not_delivered"))


def _aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


def _line_name(line: LineFacts) -> str:
    return line.title or line.sku


def _no_reason_bar(line: LineFacts, rules: EligibilityRules) -> str | None:
    """Why this line can never be returned or exchanged without a reason (a text key of
    [notes] and [problems]), or None: the one home of that per-line rule, asked by the kind's
    verdict, the per-line offer and the request's check alike."""
    if rules.excluded(line.category):
        return "line_excluded"
    if not line.no_reason_return:
        return "line_not_returnable"
    return None


def _line_notes(facts: OrderFacts, rules: EligibilityRules) -> list[tuple[str, dict[str, Any]]]:
    notes: list[tuple[str, dict[str, Any]]] = []
    for line in facts.lines:
        bar = _no_reason_bar(line, rules)
        if bar is not None:
            notes.append((bar, {"line": line}))
        elif rules.sealed_only(line.category):
            notes.append(("sealed_only", {"line": line}))
    return notes


def _refund_only(
    facts: OrderFacts, rules: EligibilityRules, status: OrderStatus
) -> tuple[str, list[str]]:
    by_status = {
        OrderStatus.paid: ("ok_unshipped_refund", rules.unshipped_refund_only_reasons),
        OrderStatus.shipped: ("ok_in_transit_refund", rules.in_transit_refund_only_reasons),
        OrderStatus.refused: ("ok_refused_refund", rules.refused_refund_only_reasons),
        OrderStatus.delivered: ("ok_delivered_refund", rules.delivered_refund_only_reasons),
    }
    code, allowed = by_status[status]
    return code, [r for r in rules.reasons.refund_only if r in allowed]


def _decide(
    facts: OrderFacts, kind: CaseKind, rules: EligibilityRules, now: datetime, tz: tzinfo
) -> _Decision:
    status = OrderStatus(facts.status)
    window = no_reason_window(facts, rules=rules, now=now, tz=tz)
    if status is OrderStatus.unpaid:
        return _Decision(kind, False, "order_unpaid", window=window)
    if status is OrderStatus.cancelled:
        return _Decision(kind, False, "order_cancelled", window=window)
    d = _Decision(kind, True, "", window=window)
    if kind is CaseKind.complaint:
        d.code, d.reasons = "ok_complaint", list(rules.reasons.complaint)
    elif kind is CaseKind.delivery:
        if status is OrderStatus.paid:
            d.allowed, d.code = False, "not_shipped_delivery"
        else:
            d.code, d.reasons = "ok_delivery", list(rules.reasons.delivery)
    elif kind is CaseKind.refund_only:
        d.code, d.reasons = _refund_only(facts, rules, status)
        if facts.in_production and status is OrderStatus.paid:
            d.notes.append(("presale_slow", {}))
        if status is OrderStatus.shipped and set(d.reasons) & set(rules.no_reason_reasons):
            d.notes.append(("refuse_at_door", {}))
    elif status is OrderStatus.paid:
        d.allowed, d.code = False, "not_shipped_goods"
    elif status is OrderStatus.shipped:
        d.allowed, d.code = False, "in_transit_goods"
    elif status is OrderStatus.refused:
        d.allowed, d.code = False, "parcel_refused_goods"
    else:  # delivered: return or exchange
        d.code = "ok_return" if kind is CaseKind.return_refund else "ok_exchange"
        d.reasons = list(rules.reasons.of(kind))
        choice = [r for r in d.reasons if r in rules.no_reason_reasons]
        if choice:
            if window.state == "open":
                if window.last_day is not None:
                    d.notes.append(("no_reason_open", {"last_day": window.last_day}))
                d.notes.extend(_line_notes(facts, rules))
                if facts.lines and all(_no_reason_bar(ln, rules) for ln in facts.lines):
                    d.reasons = [r for r in d.reasons if r not in choice]
            else:
                key = "no_reason_off" if window.state == "off" else "no_reason_closed"
                d.notes.append((key, {"last_day": window.last_day}))
                d.reasons = [r for r in d.reasons if r not in choice]
    if d.allowed and not d.reasons:
        # Every reason was closed off (a shop's settings can do that): say so, offer a human.
        d.allowed = False
        d.code = d.notes[0][0] if d.notes else "no_reasons_open"
    return d


def _note_text(texts: PolicyTexts, key: str, variables: Mapping[str, Any], days: int) -> str:
    if "line" in variables:
        line: LineFacts = variables["line"]
        return texts.get(
            "notes",
            key,
            item=_line_name(line),
            category=texts.name("categories", line.category),
        )
    last_day = variables.get("last_day")
    return texts.get(
        "notes", key, days=days, last_day=texts.day(last_day) if last_day is not None else ""
    )


def _render(
    d: _Decision, facts: OrderFacts, rules: EligibilityRules, texts: PolicyTexts
) -> KindVerdict:
    notes = tuple(_note_text(texts, k, v, rules.no_reason_days) for k, v in d.notes)
    if d.code in texts.tables["verdicts"]:
        text = texts.get(
            "verdicts", d.code, order_no=facts.order_no, kind=texts.name("kinds", d.kind.value)
        )
    else:
        # Refused because the window closed or no-reason returns are off: the note is the why.
        text = notes[0]
        notes = notes[1:]
    return KindVerdict(
        kind=d.kind.value,
        allowed=d.allowed,
        code=d.code,
        text=text,
        reasons=tuple(d.reasons),
        notes=notes,
        no_reason_until=d.window.last_day,
    )


# ---------------------------------------------------------------- public API


def reasons_for(kind: CaseKind | str, rules: EligibilityRules | None = None) -> tuple[str, ...]:
    """The reason codes a customer may give for a kind (the shop's settings, or the defaults)."""
    return tuple((rules or EligibilityRules()).reasons.of(CaseKind(kind)))


def eligible_kinds(
    *,
    order_facts: OrderFacts,
    rules: EligibilityRules,
    now: datetime,
    tz: tzinfo,
    language: str,
) -> list[KindVerdict]:
    """For every kind of request, whether this order is open to it now and why, in words."""
    _aware(now)
    texts = policy_texts(language)
    return [
        _render(_decide(order_facts, kind, rules, now, tz), order_facts, rules, texts)
        for kind in CaseKind
    ]


def line_verdicts(
    *,
    order_facts: OrderFacts,
    kind: CaseKind | str,
    rules: EligibilityRules,
    now: datetime,
    tz: tzinfo,
    language: str,
) -> list[LineVerdict]:
    """For each line of the order, the reasons it may be claimed for with this kind now, and
    why not the others: what the bot offers beside each item, and what `check_request`
    refuses per item (the same rule, `_no_reason_bar`). A kind closed to the order leaves
    every line without reasons (its verdict says why)."""
    _aware(now)
    texts = policy_texts(language)
    case_kind = CaseKind(kind)
    d = _decide(order_facts, case_kind, rules, now, tz)
    open_reasons = tuple(d.reasons) if d.allowed else ()
    out = []
    for line in order_facts.lines:
        bar = _no_reason_bar(line, rules) if case_kind in GOODS_KINDS else None
        reasons = open_reasons
        why = ""
        if bar is not None and any(r in rules.no_reason_reasons for r in open_reasons):
            reasons = tuple(r for r in open_reasons if r not in rules.no_reason_reasons)
            why = _note_text(texts, bar, {"line": line}, rules.no_reason_days)
        out.append(LineVerdict(sku=line.sku, title=_line_name(line), reasons=reasons, why=why))
    return out


def reasons_for_lines(
    verdicts: Sequence[LineVerdict], skus: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The reasons open to every one of the lines `skus` (one case has one reason for all its
    items), in the kind's order, and why some reasons are closed to some of them (each line's
    `why`, once)."""
    chosen = [v for v in verdicts if v.sku in skus]
    if not chosen:
        return (), ()
    reasons = tuple(r for r in chosen[0].reasons if all(r in v.reasons for v in chosen[1:]))
    return reasons, tuple(dict.fromkeys(v.why for v in chosen if v.why))


def check_request(
    *,
    order_facts: OrderFacts,
    kind: CaseKind | str,
    reason: str,
    items: Sequence[RequestedItem],
    rules: EligibilityRules,
    now: datetime,
    tz: tzinfo,
    language: str = "en",
) -> list[Problem]:
    """Every reason this request cannot be taken as it is (empty: it can), each naming its
    field: `kind`, `reason`, `items`, `items.<i>.sku`, `items.<i>.quantity`.

    It checks the policy only; units already refunded or in another case are the service's
    business (it knows the ledger). `language` is the customer's (the API's errors use "en").
    """
    _aware(now)
    facts = order_facts
    texts = policy_texts(language)
    try:
        case_kind = CaseKind(kind)
    except ValueError:
        return [Problem("kind", "unknown_kind", texts.get("problems", "unknown_kind", kind=kind))]
    d = _decide(facts, case_kind, rules, now, tz)
    if not d.allowed:
        verdict = _render(d, facts, rules, texts)
        return [Problem("kind", d.code, verdict.text)]
    problems: list[Problem] = []
    kind_name = texts.name("kinds", case_kind.value)
    choices = texts.join([texts.name("reasons", r) for r in d.reasons])
    reason_name = texts.name("reasons", reason)
    no_reason_goods = case_kind in GOODS_KINDS and reason in rules.no_reason_reasons
    if reason not in REASONS:
        problems.append(
            Problem(
                "reason",
                "unknown_reason",
                texts.get("problems", "unknown_reason", reason=reason, choices=choices),
            )
        )
    elif reason not in rules.reasons.of(case_kind):
        problems.append(
            Problem(
                "reason",
                "reason_not_for_kind",
                texts.get(
                    "problems",
                    "reason_not_for_kind",
                    reason=reason_name,
                    kind=kind_name,
                    choices=choices,
                ),
            )
        )
    elif no_reason_goods and d.window.state in ("closed", "off"):
        code = "window_closed" if d.window.state == "closed" else "no_reason_off"
        last_day = texts.day(d.window.last_day) if d.window.last_day is not None else ""
        problems.append(
            Problem(
                "reason",
                code,
                texts.get("problems", code, days=rules.no_reason_days, last_day=last_day),
            )
        )
    elif reason not in d.reasons and not no_reason_goods:
        problems.append(
            Problem(
                "reason",
                "reason_not_now",
                texts.get(
                    "problems",
                    "reason_not_now",
                    reason=reason_name,
                    kind=kind_name,
                    status=texts.name("statuses", facts.status),
                    choices=choices,
                ),
            )
        )
    problems.extend(_item_problems(facts, case_kind, items, no_reason_goods, rules, texts))
    return problems


def _item_problems(
    facts: OrderFacts,
    kind: CaseKind,
    items: Sequence[RequestedItem],
    no_reason_goods: bool,
    rules: EligibilityRules,
    texts: PolicyTexts,
) -> list[Problem]:
    if kind in ITEM_KINDS and not items:
        return [Problem("items", "items_needed", texts.get("problems", "items_needed"))]
    by_sku = {ln.sku: ln for ln in facts.lines}
    problems: list[Problem] = []
    for i, item in enumerate(items):
        line = by_sku.get(item.sku)
        if line is None:
            problems.append(
                Problem(
                    f"items.{i}.sku",
                    "unknown_item",
                    texts.get("problems", "unknown_item", order_no=facts.order_no, sku=item.sku),
                )
            )
            continue
        if item.quantity > line.quantity:
            problems.append(
                Problem(
                    f"items.{i}.quantity",
                    "too_many",
                    texts.get(
                        "problems",
                        "too_many",
                        asked=item.quantity,
                        item=_line_name(line),
                        bought=line.quantity,
                    ),
                )
            )
        code = _no_reason_bar(line, rules) if no_reason_goods else None
        if code is not None:
            problems.append(
                Problem(
                    f"items.{i}.sku",
                    code,
                    texts.get(
                        "problems",
                        code,
                        item=_line_name(line),
                        category=texts.name("categories", line.category),
                    ),
                )
            )
    return problems


def evidence_needed(
    *,
    kind: CaseKind | str,
    reason: str,
    categories: Sequence[str],
    rules: EligibilityRules,
) -> EvidenceNeed:
    """What a claim must bring: photos for a quality claim (at least `min_photos`); for food
    (any of the claimed lines' categories), photos that show the production date too."""
    ev = rules.evidence
    if CaseKind(kind) not in ev.photo_kinds or reason not in ev.photo_reasons:
        return EvidenceNeed()
    food = {c.casefold() for c in ev.food_categories}
    production_date = reason in ev.production_date_reasons and any(
        c.strip().casefold() in food for c in categories
    )
    return EvidenceNeed(photos=ev.min_photos, production_date=production_date)
