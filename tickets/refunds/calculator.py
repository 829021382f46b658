"""Refund quotes: what goes back, on which route, and by which rule (MONEY.md rules 1-16).
Over 500 lines as one file: one pure function of MONEY.md's sixteen rules, which interact; each
reads beside those it depends on.

Pure functions over plain frozen dataclasses: no database, no clock. Every amount is an integer
of the order currency's minor unit; `Decimal` appears only for rates (restocking fee, exchange
rate). The caller maps its rows to `QuoteOrder` / `QuoteRequest`, calls `quote_refund`, shows
`Quote.to_json()`, and, once the refund is issued, records the ledger (`after_refund` says what
the order's ledger becomes).

How a request that cannot be honoured is answered, consistently:

- `QuoteError` (a `ValueError` whose `loc` names the field, e.g. ``items.0.sku``): the input
  cannot be read at all: an unknown SKU, unit, reason, kind or outcome; negative amounts;
  payments that do not add up to the order; a unit named twice. A caller's mistake (a 422).
- ``eligible=False`` with `reasons` in plain words: the input is well formed but the policy
  refuses it: more units than bought or than are left, units already refunded, a restocking fee
  on a resalable no-reason return, goods that came back damaged after a no-reason return, and
  whatever the eligibility rules refused (`QuoteRequest.refused_by_policy`: an unpaid or
  cancelled order, a kind or reason closed now, the no-reason window, a line that excludes
  it), decided by tickets/policy/eligibility.py alone and passed in by the caller. Every
  reason found is listed; the amount is 0 and there are no routes and no lines.
- `QuoteInvariantError`: the calculator produced a quote breaking rule 12 (parts not summing to
  their whole, more than was paid going back). A bug here, never the customer's fault.

Interpretations of MONEY.md (the rule numbers cited in each quote line):

- Rule 6, the contract's form (DESIGN.md's Order JSON): a gift is its own line, free
  (`unit_price` 0) with its declared value in `gift_value`, and may name the paid line it came
  with (`gift_for`); without it the gift belongs to all the order's paid lines. Its value is
  shared across those lines' units like a coupon (in proportion to their nets, largest
  remainder, to the cent), and each returned unit's share is deducted on a customer-choice
  return while the gift is kept: not named in `gifts_returned` and none of its units in the
  returned parcel. Returning the units one by one deducts what returning them together does;
  returning all of them deducts the gift's whole value (as far as their refunds go).
- Rule 6, the older form, still read: `gift_value` on a paid line is the value of the gift
  that came with that line, shared evenly across the line's units, each returned unit's share
  deducted unless `gifts_returned` names the line.
- Rule 5 and the free-shipping part of rule 7 are kept on an order-level ledger
  (`promotion_clawed_back`, `shipping_clawed_back`): what the kept items owe is recomputed on
  each return and only the difference with what was already deducted is applied, so returning
  units one by one ends where returning them together does (it may even give back an earlier
  deduction). What this refund cannot cover is shown as `Quote.collect` (少补); the ledger
  records only what was deducted, so a later refund of the same order deducts the rest. If
  the shop does collect it, that is a payment of its own, outside this calculator.
- Rule 11: the proportion is kept on the cumulative ledger of each payment (already refunded
  plus this refund), floors for every payment and the rounding remainder on the last, each
  capped by what it has left (an overflow spills onto the others from the last backwards).
- Rule 8: return freight is compensation, not a repayment: it is routed on its own (original
  method of the first payment, no payment id) and is not counted against what was paid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any

from babel.numbers import is_currency

from tickets import reasons
from tickets.money import allocate, format_amount

SELLER_FAULT_REASONS = frozenset(reasons.SELLER_FAULT_REASONS)
CUSTOMER_CHOICE_REASONS = frozenset(reasons.CUSTOMER_CHOICE_REASONS)
KINDS = frozenset({"refund_only", "return_refund", "exchange"})
ORDER_STATUSES = frozenset({"unpaid", "paid", "shipped", "delivered", "cancelled", "refused"})
OUTCOMES = frozenset({"resalable", "damaged", "missing", "wrong_item"})
# Inspection outcomes meaning the unit did not come back.
NOT_BACK = frozenset({"missing", "wrong_item"})
PAYMENT_KINDS = frozenset({"full", "deposit", "balance"})
SELLER_FAULT = "seller_fault"
CUSTOMER_CHOICE = "customer_choice"

# The rule that produced each quote line, as the agent and the customer read it.
R_NET = "rules 2-4: the unit's net, what was paid for it"
R_ALREADY = "rule 10: already refunded on this unit"
R_PRESALE_UNPAID = "rule 14: presale balance not paid"
R_NOT_RETURNED = "inspection: unit not in the returned parcel"
R_GIFT = "rule 6: free gift kept: its declared value"
R_RESTOCK = "rule 9: restocking fee"
R_EXCHANGE = "rule 15: price of the replacement"
R_SHIPPING = "rule 7: outbound shipping share"
R_FREIGHT = "rule 8: return freight reimbursed"
R_FREE_SHIP = "rule 7: kept items below the free-shipping threshold: standard shipping fee"
R_FREE_SHIP_BACK = "rule 7: free-shipping deduction given back"
R_RESETTLE = "rule 5: kept items below the promotion threshold: their discount share"
R_RESETTLE_BACK = "rule 5: promotion re-settlement given back"
R_REFUSED_OUT = "rule 7: parcel refused on delivery: outbound leg"
R_REFUSED_BACK = "rule 7: parcel refused on delivery: return leg"
R_OVERRIDE_OUT = "rule 7: refusal overridden at the customer's request: outbound leg"
R_ORDER_CAP = "rule 10: order-level refunds already paid"


class QuoteError(ValueError):
    """The quote's input cannot be read; `loc` names the field (``items.0.sku``)."""

    def __init__(self, message: str, loc: str) -> None:
        super().__init__(f"{loc}: {message}")
        self.message = message
        self.loc = loc


class QuoteInvariantError(RuntimeError):
    """A computed quote breaks MONEY.md rule 12: a calculator bug, never shown as a refusal."""


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class QuoteUnit:
    """One unit of a line: its net allocated at order time and its ledger.

    `refunded_so_far` counts every refund already paid on the unit (price protection included);
    `returned` marks a unit already taken back or refunded by an earlier case.
    """

    unit_id: int
    net: int
    refunded_so_far: int = 0
    returned: bool = False


@dataclass(frozen=True)
class QuoteLine:
    """An order line; `discount` is on the whole line. `gift_value`: on a free line (a gift
    line, `unit_price` 0) its declared value, `gift_for` naming the paid line it came with
    (None: the order's paid lines); on a paid line, the value of the gift that came with it
    (the older form)."""

    sku: str
    quantity: int
    unit_price: int
    units: tuple[QuoteUnit, ...]
    discount: int = 0
    gift_value: int = 0
    category: str = ""
    no_reason_return: bool = True
    gift_for: str | None = None

    @property
    def is_gift(self) -> bool:
        """A gift line as the contract has it: free, its value declared (or its paid line
        named)."""
        return self.unit_price == 0 and (self.gift_value > 0 or self.gift_for is not None)


@dataclass(frozen=True)
class QuotePayment:
    """One payment of the order (kind full, deposit or balance) and what went back on it."""

    payment_id: int
    method: str
    amount: int
    kind: str = "full"
    refunded_so_far: int = 0


@dataclass(frozen=True)
class QuoteOrder:
    """The order as the calculator needs it, ledger included.

    `order_discount` with `promotion_threshold` describes a threshold promotion (满减) already
    allocated into the nets; `exchange_rate` is the rate recorded at purchase, shown, never
    applied. The `*_clawed_back` fields are the re-settlement ledgers (rules 5 and 7).
    """

    currency: str
    status: str
    lines: tuple[QuoteLine, ...]
    payments: tuple[QuotePayment, ...]
    shipping_fee: int = 0
    free_shipping_threshold: int | None = None
    order_discount: int = 0
    promotion_threshold: int | None = None
    exchange_rate: Decimal | None = None
    presale: bool = False
    shipping_refunded_so_far: int = 0
    promotion_clawed_back: int = 0
    shipping_clawed_back: int = 0
    # What the order's other live refunds (proposed, approved, issued or confirmed: not
    # withdrawn, refused nor failed) pay back. The large-refund threshold applies to their sum
    # with this one: a large refund split into small ones still needs its second person.
    other_refunds: int = 0


@dataclass(frozen=True)
class QuoteItem:
    """`quantity` units of `sku`: the lowest-index units not yet refunded."""

    sku: str
    quantity: int


@dataclass(frozen=True)
class ReturnFreight:
    """What the customer paid to send the goods back, and whether a receipt backs it."""

    amount: int
    receipt: bool


@dataclass(frozen=True)
class QuoteRequest:
    """What the customer (or the agent) asks for.

    Units are named by id (`unit_ids`), by `items`, or both. `outcomes` maps a unit id to its
    inspection result. `restocking_fee_skus` are the lines the shop wants a restocking fee on,
    `gifts_returned` the lines whose gift came back. `replacement_price` is the total price of
    the replacement goods of an exchange.
    """

    kind: str
    reason: str
    unit_ids: tuple[int, ...] = ()
    items: tuple[QuoteItem, ...] = ()
    outcomes: Mapping[int, str] = field(default_factory=dict)
    return_freight: ReturnFreight | None = None
    restocking_fee_skus: frozenset[str] = frozenset()
    gifts_returned: frozenset[str] = frozenset()
    refused_on_delivery: bool = False
    override_refusal: bool = False
    replacement_price: int | None = None
    # What the eligibility rules refuse (tickets/policy/eligibility.py, the one home of what a
    # unit may be claimed for: order status, kind, reason, the no-reason window and excluded
    # lines), in words, as the caller found them: listed first among the refusals.
    refused_by_policy: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShippingTerms:
    """One row of the shipping matrix: who pays each leg for a reason group."""

    refund_outbound: bool
    reimburse_return_freight: bool


def _default_matrix() -> Mapping[str, ShippingTerms]:
    return MappingProxyType(
        {
            SELLER_FAULT: ShippingTerms(refund_outbound=True, reimburse_return_freight=True),
            CUSTOMER_CHOICE: ShippingTerms(refund_outbound=False, reimburse_return_freight=False),
        }
    )


# Days a refund takes to arrive, per payment method: (fastest, slowest). Coupons and points
# paid come back in kind, at once (MONEY.md rule 6).
DEFAULT_ARRIVAL_DAYS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "alipay": (1, 3),
        "wechat": (1, 3),
        "card": (3, 7),
        "bank_transfer": (1, 3),
        "balance": (0, 0),
        "points": (0, 0),
        "coupon": (0, 0),
    }
)


def _default_arrival() -> Mapping[str, tuple[int, int]]:
    return DEFAULT_ARRIVAL_DAYS


@dataclass(frozen=True)
class RefundPolicy:
    """The shop's refund settings; the defaults are MONEY.md's and DOMAIN.md's, the one home of
    those numbers (the policy file's `[refunds]` section reads its defaults from here).

    Amounts are minor units of the order's currency. `no_reason_law_applies` is the Chinese
    seven-day no-reason law: with it, no restocking fee on resalable goods (rule 9).
    """

    shipping_matrix: Mapping[str, ShippingTerms] = field(default_factory=_default_matrix)
    return_freight_cap: int = 2000
    resettle_threshold_promotions: bool = False
    restocking_fee_rate: Decimal = Decimal(0)
    no_reason_law_applies: bool = True
    deduct_outbound_shipping_when_below_free_threshold: bool = True
    standard_shipping_fee: int = 1000
    arrival_days: Mapping[str, tuple[int, int]] = field(default_factory=_default_arrival)
    default_arrival_days: tuple[int, int] = (1, 7)
    large_refund_threshold: int = 100_000


# ---------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Adjustment:
    """An amount added to or deducted from a refund, with the rule that produced it."""

    amount: int
    rule: str


@dataclass(frozen=True)
class UnitRefund:
    """One unit's part: refund = net - deductions + additions."""

    sku: str
    unit_id: int
    net: int
    deductions: tuple[Adjustment, ...]
    additions: tuple[Adjustment, ...]
    refund: int


@dataclass(frozen=True)
class Route:
    """Money going back on one payment (`payment_id` None: return freight, paid on its own)."""

    payment_id: int | None
    method: str
    amount: int
    arrival_min_days: int
    arrival_max_days: int
    arrival_by: date | None = None


@dataclass(frozen=True)
class Quote:
    """An itemised refund quote. `amount` = sum of unit refunds + additions - deductions.

    `collect` is what the customer owes instead (exchange difference, re-settlement the refund
    could not cover; informational, `after_refund` does not record it). The ledger fields
    (`shipping_refunded`, `freight_reimbursed`, `promotion_clawback`, `shipping_clawback`) say
    what issuing it records on the order.
    """

    amount: int
    currency: str
    lines: tuple[UnitRefund, ...]
    additions: tuple[Adjustment, ...]
    deductions: tuple[Adjustment, ...]
    routes: tuple[Route, ...]
    eligible: bool
    reasons: tuple[str, ...]
    needs_second_approval: bool
    exchange_rate: Decimal | None = None
    collect: int = 0
    notes: tuple[str, ...] = ()
    shipping_refunded: int = 0
    freight_reimbursed: int = 0
    promotion_clawback: int = 0
    shipping_clawback: int = 0

    def to_json(self) -> dict[str, Any]:
        """The Refund quote JSON of DESIGN.md: money as decimal strings, order-level items as
        lines without sku or unit (return freight always its own line)."""
        cur = self.currency

        def adj(items: tuple[Adjustment, ...]) -> list[dict[str, str]]:
            return [{"amount": format_amount(a.amount, cur), "rule": a.rule} for a in items]

        lines: list[dict[str, Any]] = [
            {
                "sku": u.sku,
                "unit": u.unit_id,
                "net": format_amount(u.net, cur),
                "deductions": adj(u.deductions),
                "additions": adj(u.additions),
                "refund": format_amount(u.refund, cur),
                "rule": R_NET,
            }
            for u in self.lines
        ]
        for a in self.additions:
            lines.append(_order_line(a, [a], [], cur))
        for d in self.deductions:
            lines.append(_order_line(d, [], [d], cur))
        out: dict[str, Any] = {
            "amount": format_amount(self.amount, cur),
            "currency": cur,
            "routes": [
                {
                    "method": r.method,
                    "amount": format_amount(r.amount, cur),
                    "arrival": _arrival_text(r.arrival_min_days, r.arrival_max_days),
                    **({"arrival_by": r.arrival_by.isoformat()} if r.arrival_by else {}),
                }
                for r in self.routes
            ],
            "lines": lines,
            "eligible": self.eligible,
            "reasons": list(self.reasons),
            "needs_second_approval": self.needs_second_approval,
        }
        if self.exchange_rate is not None:
            out["exchange_rate"] = str(self.exchange_rate)
        if self.collect:
            out["collect"] = format_amount(self.collect, cur)
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def _order_line(
    item: Adjustment, additions: list[Adjustment], deductions: list[Adjustment], cur: str
) -> dict[str, Any]:
    signed = item.amount if additions else -item.amount
    return {
        "sku": None,
        "unit": None,
        "net": format_amount(0, cur),
        "deductions": [
            {"amount": format_amount(d.amount, cur), "rule": d.rule} for d in deductions
        ],
        "additions": [{"amount": format_amount(a.amount, cur), "rule": a.rule} for a in additions],
        "refund": format_amount(signed, cur),
        "rule": item.rule,
    }


def _arrival_text(low: int, high: int) -> str:
    if high == 0:
        return "immediate"
    if low == high:
        return f"{high} days"
    return f"{low}-{high} days"


# ---------------------------------------------------------------- validation


def _validate_order(order: QuoteOrder) -> None:
    # babel's precision lookup answers 2 for any unknown code, so ask whether it is one.
    if not is_currency(order.currency):
        raise QuoteError(f"unknown currency {order.currency!r}", "order.currency")
    if order.status not in ORDER_STATUSES:
        raise QuoteError(f"unknown order status {order.status!r}", "order.status")
    for name in (
        "shipping_fee",
        "order_discount",
        "shipping_refunded_so_far",
        "promotion_clawed_back",
        "shipping_clawed_back",
    ):
        if getattr(order, name) < 0:
            raise QuoteError("must not be negative", f"order.{name}")
    if order.shipping_refunded_so_far > order.shipping_fee:
        raise QuoteError("more shipping refunded than was paid", "order.shipping_refunded_so_far")
    if not order.payments:
        raise QuoteError("an order needs at least one payment", "order.payments")
    seen_units: set[int] = set()
    seen_skus: set[str] = set()
    for i, line in enumerate(order.lines):
        loc = f"order.lines.{i}"
        if line.sku in seen_skus:
            raise QuoteError(f"SKU {line.sku} appears twice", f"{loc}.sku")
        seen_skus.add(line.sku)
        if line.quantity < 1 or len(line.units) != line.quantity:
            raise QuoteError("a line needs one unit per quantity", f"{loc}.units")
        if min(line.unit_price, line.discount, line.gift_value) < 0:
            raise QuoteError("amounts must not be negative", loc)
        if line.gift_for is not None:
            paid_skus = {ln.sku for ln in order.lines if ln.unit_price > 0}
            if line.unit_price != 0:
                raise QuoteError("only a free gift line names one", f"{loc}.gift_for")
            if line.gift_for not in paid_skus:
                raise QuoteError(f"no paid line {line.gift_for} on this order", f"{loc}.gift_for")
        for j, unit in enumerate(line.units):
            if unit.unit_id in seen_units:
                raise QuoteError(f"unit {unit.unit_id} appears twice", f"{loc}.units.{j}")
            seen_units.add(unit.unit_id)
            if unit.net < 0 or not 0 <= unit.refunded_so_far <= unit.net:
                raise QuoteError(
                    "net must not be negative and refunded_so_far within 0..net",
                    f"{loc}.units.{j}",
                )
    for i, pay in enumerate(order.payments):
        loc = f"order.payments.{i}"
        if pay.kind not in PAYMENT_KINDS:
            raise QuoteError(f"unknown payment kind {pay.kind!r}", f"{loc}.kind")
        if pay.amount < 0 or not 0 <= pay.refunded_so_far <= pay.amount:
            raise QuoteError("amount and refunded_so_far must satisfy 0 <= refunded <= amount", loc)
    total = _order_total(order)
    paid = sum(p.amount for p in order.payments)
    if paid > total or (paid < total and not order.presale):
        raise QuoteError(
            f"payments add up to {format_amount(paid, order.currency)} but the order's total "
            f"is {format_amount(total, order.currency)}",
            "order.payments",
        )


def _order_total(order: QuoteOrder) -> int:
    return sum(u.net for line in order.lines for u in line.units) + order.shipping_fee


def _validate_request(request: QuoteRequest, order: QuoteOrder, now: datetime | None) -> None:
    if request.kind not in KINDS:
        raise QuoteError(f"unknown kind {request.kind!r}; use one of {sorted(KINDS)}", "kind")
    if request.reason not in SELLER_FAULT_REASONS | CUSTOMER_CHOICE_REASONS:
        raise QuoteError(f"{request.reason!r} is not a refund reason", "reason")
    if not request.unit_ids and not request.items:
        raise QuoteError("name at least one unit or item", "items")
    for unit_id, outcome in request.outcomes.items():
        if outcome not in OUTCOMES:
            raise QuoteError(f"unknown outcome {outcome!r}", f"outcomes.{unit_id}")
    skus = {line.sku for line in order.lines}
    for name in ("restocking_fee_skus", "gifts_returned"):
        for sku in sorted(getattr(request, name)):
            if sku not in skus:
                raise QuoteError(f"no SKU {sku} on this order", f"{name}.{sku}")
    if request.return_freight is not None and request.return_freight.amount < 0:
        raise QuoteError("must not be negative", "return_freight.amount")
    if (request.kind == "exchange") != (request.replacement_price is not None):
        raise QuoteError("an exchange (and only an exchange) needs a replacement price", "kind")
    if request.replacement_price is not None and request.replacement_price < 0:
        raise QuoteError("must not be negative", "replacement_price")
    if now is not None and now.tzinfo is None:
        raise QuoteError("now must be timezone-aware", "now")


# ---------------------------------------------------------------- helpers


def _split_last(total: int, weights: list[int], caps: list[int]) -> list[int]:
    """`total` in proportion to `weights`: floors, the last absorbing the rounding remainder,
    each part capped (an overflow spills onto the others, from the last backwards)."""
    if total > sum(caps):
        raise QuoteInvariantError(f"cannot place {total} within caps {caps}")
    weight_sum = sum(weights)
    if weight_sum == 0:
        weights, weight_sum = list(caps), sum(caps)
    if weight_sum == 0:
        return [0] * len(weights)
    parts = [total * w // weight_sum for w in weights[:-1]]
    parts.append(total - sum(parts))
    excess = 0
    for i, cap in enumerate(caps):
        if parts[i] > cap:
            excess += parts[i] - cap
            parts[i] = cap
    for i in reversed(range(len(parts))):
        room = min(caps[i] - parts[i], excess)
        parts[i] += room
        excess -= room
    return parts


def _even_shares(total: int, weights: list[int]) -> list[int]:
    """`allocate`, with equal weights when every weight is zero (a line of free units)."""
    if total and not any(weights):
        weights = [1] * len(weights)
    return allocate(total, weights)


def _kept_gift_shares(
    order: QuoteOrder, request: QuoteRequest, picked: list[tuple[QuoteLine, QuoteUnit]]
) -> list[dict[int, int]]:
    """For each gift line the customer keeps, its declared value shared across the units it
    belongs to (its `gift_for` line's, else every paid line's) in proportion to their nets,
    like a coupon: {unit id: share}. A gift is kept unless one of its units is in the returned
    parcel (or came back earlier) or `gifts_returned` names it (or, as the older form did, the
    line it came with). A gift sent back after its goods were refunded does not give back what
    was deducted then: no ledger keeps it (the agent refunds it as goodwill)."""
    back = {
        u.unit_id for _, u in picked if request.outcomes.get(u.unit_id, "resalable") not in NOT_BACK
    }
    out = []
    for gift in order.lines:
        if not gift.is_gift or gift.gift_value == 0:
            continue
        if {gift.sku, gift.gift_for} & request.gifts_returned:
            continue
        if any(u.unit_id in back or u.returned for u in gift.units):
            continue  # in this parcel, or came back with an earlier return
        owners = [
            u
            for line in order.lines
            if line.unit_price > 0 and gift.gift_for in (None, line.sku)
            for u in line.units
        ]
        if not owners:
            continue  # a gift on an order with nothing paid: nothing it could be taken from
        shares = _even_shares(gift.gift_value, [u.net for u in owners])
        out.append({u.unit_id: share for u, share in zip(owners, shares, strict=True)})
    return out


def _paid_bases(order: QuoteOrder) -> tuple[dict[int, int], int]:
    """Per unit, the money actually paid for it; and the shipping actually paid (rule 14: an
    unfinished presale has paid its deposit only, shared in proportion to the nets)."""
    units = [u for line in order.lines for u in line.units]
    nets = [u.net for u in units]
    paid = sum(p.amount for p in order.payments)
    goods = sum(nets)
    if paid == goods + order.shipping_fee:
        return {u.unit_id: u.net for u in units}, order.shipping_fee
    goods_paid, shipping_paid = _even_shares(paid, [goods, order.shipping_fee])
    bases = _even_shares(goods_paid, nets)
    return {u.unit_id: b for u, b in zip(units, bases, strict=True)}, shipping_paid


def _group(reason: str) -> str:
    return SELLER_FAULT if reason in SELLER_FAULT_REASONS else CUSTOMER_CHOICE


def _taken(unit: QuoteUnit) -> bool:
    return unit.returned or unit.refunded_so_far >= unit.net > 0


def _resolve(
    order: QuoteOrder, request: QuoteRequest, reasons: list[str]
) -> list[tuple[QuoteLine, QuoteUnit]]:
    """The units the request names, in order order; refusals go to `reasons`."""
    by_id = {u.unit_id: (line, u) for line in order.lines for u in line.units}
    chosen: dict[int, tuple[QuoteLine, QuoteUnit]] = {}
    for i, unit_id in enumerate(request.unit_ids):
        if unit_id not in by_id:
            raise QuoteError(f"no unit {unit_id} on this order", f"unit_ids.{i}")
        if unit_id in chosen:
            raise QuoteError(f"unit {unit_id} is named twice", f"unit_ids.{i}")
        line, unit = by_id[unit_id]
        if _taken(unit):
            reasons.append(f"Unit {unit_id} of {line.sku} was already refunded.")
        chosen[unit_id] = (line, unit)
    lines = {line.sku: line for line in order.lines}
    asked: set[str] = set()
    for i, item in enumerate(request.items):
        if item.sku not in lines:
            raise QuoteError(f"no SKU {item.sku} on this order", f"items.{i}.sku")
        if item.sku in asked:
            raise QuoteError(f"SKU {item.sku} is named twice", f"items.{i}.sku")
        asked.add(item.sku)
        if item.quantity < 1:
            raise QuoteError("quantity must be at least 1", f"items.{i}.quantity")
        line = lines[item.sku]
        if item.quantity > line.quantity:
            reasons.append(
                f"Only {line.quantity} of {line.sku} were bought; {item.quantity} were asked for."
            )
            continue
        free = [u for u in line.units if not _taken(u) and u.unit_id not in chosen]
        if item.quantity > len(free):
            reasons.append(
                f"Only {len(free)} of {line.sku} are left to refund; "
                f"{item.quantity} were asked for."
            )
            continue
        for unit in free[: item.quantity]:
            chosen[unit.unit_id] = (line, unit)
    order_pos = {u.unit_id: n for n, u in enumerate(u for ln in order.lines for u in ln.units)}
    return sorted(chosen.values(), key=lambda lu: order_pos[lu[1].unit_id])


def _refusals(
    order: QuoteOrder,
    request: QuoteRequest,
    picked: list[tuple[QuoteLine, QuoteUnit]],
    policy: RefundPolicy,
) -> list[str]:
    """Every reason this request is refused, in plain words (empty: eligible): the
    eligibility rules' (`request.refused_by_policy`), then the money's own: goods that came
    back damaged after a change of mind, a restocking fee the law or the facts forbid."""
    reasons: list[str] = list(request.refused_by_policy)
    group = _group(request.reason)
    kind = request.kind
    if group == CUSTOMER_CHOICE and kind != "refund_only" and not request.override_refusal:
        damaged = [u.unit_id for _, u in picked if request.outcomes.get(u.unit_id) == "damaged"]
        if damaged:
            reasons.append(
                f"Unit(s) {', '.join(map(str, damaged))} came back damaged: a no-reason return "
                "needs the goods intact (the refund is possible if you pay shipping both ways)."
            )
    for sku in sorted(request.restocking_fee_skus):
        units = [u for line, u in picked if line.sku == sku]
        if not units:
            raise QuoteError(f"no unit of {sku} is being refunded", f"restocking_fee_skus.{sku}")
        if group == SELLER_FAULT:
            reasons.append(f"No restocking fee on {sku}: the shop is at fault.")
        elif kind == "refund_only" or order.status == "paid":
            reasons.append(f"No restocking fee on {sku}: the goods were never sent.")
        elif policy.no_reason_law_applies and any(
            request.outcomes.get(u.unit_id, "resalable") == "resalable" for u in units
        ):
            reasons.append(
                f"No restocking fee on {sku}: the law allows no deduction from a no-reason "
                "return of resalable goods."
            )
    return reasons


def _take(remaining: int, amount: int, rule: str, into: list[Adjustment]) -> int:
    """Deduct up to `amount` (never below zero); record what was actually deducted."""
    taken = min(amount, remaining)
    if taken > 0:
        into.append(Adjustment(taken, rule))
    return remaining - taken


def _round_fee(value: Decimal) -> int:
    # Rule 9: rounded once, per line, half up.
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# ---------------------------------------------------------------- the calculator


def quote_refund(
    order: QuoteOrder,
    request: QuoteRequest,
    policy: RefundPolicy | None = None,
    *,
    now: datetime | None = None,
) -> Quote:
    """Quote the refund of `request` on `order` under `policy` (defaults: MONEY.md's).

    Raises QuoteError for unreadable input; answers eligible=False with reasons for a request
    the policy refuses. `now` (timezone-aware) dates the arrivals.
    """
    policy = policy or RefundPolicy()
    _validate_order(order)
    _validate_request(request, order, now)
    reasons: list[str] = []
    picked = _resolve(order, request, reasons)
    reasons += _refusals(order, request, picked, policy)
    if reasons:
        return Quote(
            amount=0,
            currency=order.currency,
            lines=(),
            additions=(),
            deductions=(),
            routes=(),
            eligible=False,
            reasons=tuple(reasons),
            needs_second_approval=False,
            exchange_rate=order.exchange_rate,
        )

    group = _group(request.reason)
    terms = policy.shipping_matrix[group]
    kind = request.kind
    unshipped = order.status == "paid"
    refused = group == CUSTOMER_CHOICE and (
        order.status == "refused" or request.refused_on_delivery
    )
    # A customer-choice return that came back damaged and was accepted anyway.
    overridden = (
        group == CUSTOMER_CHOICE
        and request.override_refusal
        and any(request.outcomes.get(u.unit_id) == "damaged" for _, u in picked)
    )
    notes: list[str] = []
    if order.presale and unshipped:
        notes.append(
            "Presale in production: check with the supplier first; this refund takes longer."
        )
    bases, shipping_paid = _paid_bases(order)

    # ---- per unit: the base, less what the unit can no longer refund
    unit_deds: dict[int, list[Adjustment]] = {}
    remaining: dict[int, int] = {}
    line_index = {u.unit_id: j for line in order.lines for j, u in enumerate(line.units)}
    gift_shares = {
        line.sku: _even_shares(line.gift_value, [1] * line.quantity)
        for line in order.lines
        if line.unit_price > 0
    }
    kept_gifts = _kept_gift_shares(order, request, picked)
    for line, unit in picked:
        deds: list[Adjustment] = []
        left = unit.net
        left = _take(left, unit.net - bases[unit.unit_id], R_PRESALE_UNPAID, deds)
        left = _take(left, unit.refunded_so_far, R_ALREADY, deds)
        if kind != "refund_only" and request.outcomes.get(unit.unit_id) in NOT_BACK:
            left = _take(left, left, R_NOT_RETURNED, deds)
        # Rule 6: goods back on a customer-choice return while a gift stays with the customer.
        gifts_apply = group == CUSTOMER_CHOICE and kind == "return_refund" and not refused
        if gifts_apply and line.sku in gift_shares and line.sku not in request.gifts_returned:
            left = _take(left, gift_shares[line.sku][line_index[unit.unit_id]], R_GIFT, deds)
        if gifts_apply:
            for shares in kept_gifts:
                left = _take(left, shares.get(unit.unit_id, 0), R_GIFT, deds)
        unit_deds[unit.unit_id] = deds
        remaining[unit.unit_id] = left
    for sku in sorted(request.restocking_fee_skus):
        units = [u for line, u in picked if line.sku == sku]
        weights = [bases[u.unit_id] for u in units]
        fee = _round_fee(Decimal(sum(weights)) * policy.restocking_fee_rate)
        for unit, share in zip(units, _even_shares(fee, weights), strict=True):
            remaining[unit.unit_id] = _take(
                remaining[unit.unit_id], share, R_RESTOCK, unit_deds[unit.unit_id]
            )
    collect = 0
    if kind == "exchange":
        assert request.replacement_price is not None  # checked by _validate_request
        credits = [remaining[u.unit_id] for _, u in picked]
        covered = min(request.replacement_price, sum(credits))
        collect = request.replacement_price - covered
        for (_, unit), share in zip(picked, _even_shares(covered, credits), strict=True):
            remaining[unit.unit_id] = _take(
                remaining[unit.unit_id], share, R_EXCHANGE, unit_deds[unit.unit_id]
            )
    lines = tuple(
        UnitRefund(
            sku=line.sku,
            unit_id=unit.unit_id,
            net=unit.net,
            deductions=tuple(unit_deds[unit.unit_id]),
            additions=(),
            refund=remaining[unit.unit_id],
        )
        for line, unit in picked
    )
    goods = sum(u.refund for u in lines)

    # ---- order level: shipping, re-settlements, refusal legs
    additions: list[Adjustment] = []
    deductions: list[Adjustment] = []
    shipping_refund = 0
    received = [
        u
        for _, u in picked
        if kind == "refund_only" or request.outcomes.get(u.unit_id) not in NOT_BACK
    ]
    if (unshipped or (terms.refund_outbound and kind == "return_refund")) and not refused:
        all_units = [u for line in order.lines for u in line.units]
        shares = dict(
            zip(
                (u.unit_id for u in all_units),
                _even_shares(shipping_paid, [bases[u.unit_id] for u in all_units]),
                strict=True,
            )
        )
        wanted = sum(shares[u.unit_id] for u in received)
        shipping_refund = min(wanted, shipping_paid - order.shipping_refunded_so_far)
        if shipping_refund > 0:
            additions.append(Adjustment(shipping_refund, R_SHIPPING))

    freight = 0
    claim = request.return_freight
    if claim is not None and claim.amount > 0:
        if kind == "refund_only" or refused:
            notes.append("No return freight on this request: nothing is being sent back.")
        elif not terms.reimburse_return_freight or overridden:
            notes.append("The return leg is the customer's to pay under this reason.")
        elif not claim.receipt:
            notes.append("Return freight is reimbursed against a receipt: none was given.")
        else:
            freight = min(claim.amount, policy.return_freight_cap)
            if freight < claim.amount:
                notes.append(
                    "Return freight reimbursed up to the cap of "
                    f"{format_amount(policy.return_freight_cap, order.currency)}."
                )
            additions.append(Adjustment(freight, R_FREIGHT))

    picked_ids = {u.unit_id for _, u in picked}
    kept = [u for line in order.lines for u in line.units if not u.returned]
    kept = [u for u in kept if u.unit_id not in picked_ids]
    shipping_clawback = 0
    if (
        group == CUSTOMER_CHOICE
        and kind == "return_refund"
        and not refused
        and policy.deduct_outbound_shipping_when_below_free_threshold
        and order.free_shipping_threshold is not None
        and order.shipping_fee == 0
    ):
        below = bool(kept) and sum(bases[u.unit_id] for u in kept) < order.free_shipping_threshold
        target = policy.standard_shipping_fee if below else 0
        shipping_clawback = target - order.shipping_clawed_back
    promotion_clawback = 0
    if (
        policy.resettle_threshold_promotions
        and kind != "exchange"
        and order.promotion_threshold is not None
        and order.order_discount > 0
    ):
        promo_share: dict[int, int] = {}
        pre_value: dict[int, int] = {}
        for line in order.lines:
            pre = _even_shares(line.unit_price * line.quantity - line.discount, [1] * line.quantity)
            for unit, value in zip(line.units, pre, strict=True):
                pre_value[unit.unit_id] = value
                promo_share[unit.unit_id] = max(0, value - unit.net)
        below = bool(kept) and sum(pre_value[u.unit_id] for u in kept) < order.promotion_threshold
        target = sum(promo_share[u.unit_id] for u in kept) if below else 0
        promotion_clawback = target - order.promotion_clawed_back

    available = goods + shipping_refund
    applied: list[int] = []
    for delta, rule, back_rule in (
        (promotion_clawback, R_RESETTLE, R_RESETTLE_BACK),
        (shipping_clawback, R_FREE_SHIP, R_FREE_SHIP_BACK),
    ):
        if delta < 0:
            additions.append(Adjustment(-delta, back_rule))
            available += -delta
            applied.append(delta)
        else:
            # 多退少补: what this refund cannot cover is to be collected. Only what was
            # deducted enters the ledger, so a later refund deducts the rest (or gives it back).
            before = available
            available = _take(available, delta, rule, deductions)
            applied.append(before - available)
            collect += delta - (before - available)
    promotion_clawback, shipping_clawback = applied
    if refused or overridden:
        # Shipping both ways is the customer's. Shipping they paid is simply not refunded; a
        # free-shipping order owes the standard fee for the outbound leg.
        out_rule = R_REFUSED_OUT if refused else R_OVERRIDE_OUT
        if order.shipping_fee == 0:
            available = _take(available, policy.standard_shipping_fee, out_rule, deductions)
        if refused:
            # The carrier brings a refused parcel back at the shop's cost; after an overridden
            # inspection the customer already paid the return leg when sending the goods.
            back_leg = claim.amount if claim is not None else policy.standard_shipping_fee
            available = _take(available, back_leg, R_REFUSED_BACK, deductions)
    order_left = sum(p.amount - p.refunded_so_far for p in order.payments)
    if available > order_left:
        available = _take(available, available - order_left, R_ORDER_CAP, deductions)
    repaid = available

    # ---- routes (rule 11) and the freight on its own
    routes = [
        _route(pay.payment_id, pay.method, part, policy, now)
        for pay, part in zip(order.payments, _split_routes(order.payments, repaid), strict=True)
        if part > 0
    ]
    if freight > 0:
        routes.append(_route(None, order.payments[0].method, freight, policy, now))
    amount = repaid + freight
    quote = Quote(
        amount=amount,
        currency=order.currency,
        lines=lines,
        additions=tuple(additions),
        deductions=tuple(deductions),
        routes=tuple(routes),
        eligible=True,
        reasons=(),
        needs_second_approval=order.other_refunds + amount > policy.large_refund_threshold,
        exchange_rate=order.exchange_rate,
        collect=collect,
        notes=tuple(notes),
        shipping_refunded=shipping_refund,
        freight_reimbursed=freight,
        promotion_clawback=promotion_clawback,
        shipping_clawback=shipping_clawback,
    )
    check_invariants(order, quote)
    return quote


def _route(
    payment_id: int | None, method: str, amount: int, policy: RefundPolicy, now: datetime | None
) -> Route:
    low, high = policy.arrival_days.get(method, policy.default_arrival_days)
    return Route(
        payment_id=payment_id,
        method=method,
        amount=amount,
        arrival_min_days=low,
        arrival_max_days=high,
        arrival_by=(now + timedelta(days=high)).date() if now is not None else None,
    )


def _split_routes(payments: tuple[QuotePayment, ...], total: int) -> list[int]:
    """Rule 11: each payment's part of `total`, in proportion to what it paid.

    The proportion is kept on the cumulative ledger (already refunded plus this refund), so
    refunding in several goes ends where one refund would; a payment already refunded beyond
    its proportion (a price protection paid on it alone) takes nothing until the others catch up.
    """
    amounts = [p.amount for p in payments]
    refunded = [p.refunded_so_far for p in payments]
    targets = _split_last(sum(refunded) + total, amounts, amounts)
    desired = [max(0, t - r) for t, r in zip(targets, refunded, strict=True)]
    if sum(desired) == total:
        return desired
    return _split_last(total, desired, desired)


def check_invariants(order: QuoteOrder, quote: Quote) -> None:
    """Rule 12 on a computed quote: parts sum to their whole; per unit, per payment and per
    order nothing goes back beyond what was paid less what was refunded. Raises
    QuoteInvariantError naming the broken one."""

    def fail(what: str) -> None:
        raise QuoteInvariantError(f"refund quote invariant broken: {what}")

    if not quote.eligible:
        if quote.amount or quote.routes or quote.lines:
            fail("a refused quote carries money")
        return
    bases, shipping_paid = _paid_bases(order)
    units = {u.unit_id: u for line in order.lines for u in line.units}
    seen: set[int] = set()
    for line in quote.lines:
        unit = units[line.unit_id]
        if line.unit_id in seen:
            fail(f"unit {line.unit_id} quoted twice")
        seen.add(line.unit_id)
        if any(a.amount <= 0 for a in line.deductions + line.additions):
            fail(f"unit {line.unit_id} has a non-positive adjustment")
        parts = (
            line.net
            - sum(a.amount for a in line.deductions)
            + sum(a.amount for a in line.additions)
        )
        if parts != line.refund:
            fail(f"unit {line.unit_id}: net - deductions + additions != refund")
        if not 0 <= line.refund <= bases[line.unit_id] - unit.refunded_so_far:
            fail(f"unit {line.unit_id} refunds more than was paid for it less refunds")
    if any(a.amount <= 0 for a in quote.additions + quote.deductions):
        fail("an order-level adjustment is not positive")
    whole = (
        sum(u.refund for u in quote.lines)
        + sum(a.amount for a in quote.additions)
        - sum(a.amount for a in quote.deductions)
    )
    if whole != quote.amount:
        fail("unit refunds + additions - deductions != amount")
    if sum(r.amount for r in quote.routes) != quote.amount:
        fail("routes do not add up to the amount")
    if quote.amount < 0 or quote.collect < 0:
        fail("negative amount")
    payments = {p.payment_id: p for p in order.payments}
    repaid = 0
    for route in quote.routes:
        if route.amount <= 0:
            fail("an empty route")
        if route.payment_id is None:
            continue
        pay = payments[route.payment_id]
        if route.amount > pay.amount - pay.refunded_so_far:
            fail(f"payment {pay.payment_id} refunds more than it has left")
        repaid += route.amount
    if sum(1 for r in quote.routes if r.payment_id is not None) != len(
        {r.payment_id for r in quote.routes if r.payment_id is not None}
    ):
        fail("a payment routed twice")
    if repaid != quote.amount - quote.freight_reimbursed:
        fail("payment routes != amount less return freight")
    if repaid > sum(p.amount - p.refunded_so_far for p in order.payments):
        fail("the order refunds more than was paid less refunds")
    if not 0 <= quote.shipping_refunded <= shipping_paid - order.shipping_refunded_so_far:
        fail("shipping refunded more than once")


def after_refund(order: QuoteOrder, quote: Quote) -> QuoteOrder:
    """The order's ledger once `quote` is issued: units marked returned with their refunds,
    payments and shipping refunded, re-settlement deductions recorded. Pure (the database keeps
    the real ledger; this states what it must become)."""
    if not quote.eligible:
        return order
    refunds = {u.unit_id: u.refund for u in quote.lines}
    per_payment = {r.payment_id: r.amount for r in quote.routes if r.payment_id is not None}
    lines = tuple(
        replace(
            line,
            units=tuple(
                replace(
                    u,
                    refunded_so_far=u.refunded_so_far + refunds[u.unit_id],
                    returned=True,
                )
                if u.unit_id in refunds
                else u
                for u in line.units
            ),
        )
        for line in order.lines
    )
    payments = tuple(
        replace(p, refunded_so_far=p.refunded_so_far + per_payment.get(p.payment_id, 0))
        for p in order.payments
    )
    return replace(
        order,
        lines=lines,
        payments=payments,
        shipping_refunded_so_far=order.shipping_refunded_so_far + quote.shipping_refunded,
        promotion_clawed_back=order.promotion_clawed_back + quote.promotion_clawback,
        shipping_clawed_back=order.shipping_clawed_back + quote.shipping_clawback,
    )
