"""The JSON shapes of the public contracts (DESIGN.md): orders, tickets, actions, replies.

Money travels as decimal strings ("19.99") and is converted to integer minor units by
tickets/orders.py with the currency in hand; times are ISO 8601 with an offset.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

from tickets.config import REASONS
from tickets.limits import HARD, VARIABLE_NAME_MAX, variables_errors
from tickets.models import CaseKind, CaseStatus, Channel, OrderStatus, Priority, UnitStatus
from tickets.money import MAX_INT_DIGITS, bounded_decimal


def _plain_amount(value: Any) -> Any:
    """A money string is plain digits (the one parser's rule, tickets.money.bounded_decimal):
    no exponent, sign, NaN or infinity, and bounded; checked before pydantic builds a Decimal.
    The currency's decimals are checked with the currency in hand (tickets/orders.py)."""
    if isinstance(value, float):
        if not 0 <= value < 10**MAX_INT_DIGITS:
            raise ValueError(f"not an amount between 0 and {HARD.max_amount}")
        return value
    if isinstance(value, str | int | Decimal):
        return bounded_decimal(value, maximum=HARD.max_amount)
    return value


def _bounded_amount(value: Decimal) -> Decimal:
    return bounded_decimal(value, maximum=HARD.max_amount)


def _plain_rate(value: Any) -> Any:
    if isinstance(value, float):
        return _plain_amount(value)
    if isinstance(value, str | int | Decimal):
        return bounded_decimal(value, maximum=MAX_RATE)
    return value


# A currency's exchange rate: plain digits too, and at most a million to one.
MAX_RATE = Decimal(1_000_000)
Rate = Annotated[
    Decimal,
    BeforeValidator(_plain_rate),
    AfterValidator(lambda v: bounded_decimal(v, maximum=MAX_RATE)),
]

# Money travels as a decimal string ("19.99"); bounded here, exact per currency in the core.
Money = Annotated[Decimal, BeforeValidator(_plain_amount), AfterValidator(_bounded_amount)]


def _bounded_variables(value: dict[str, Any]) -> dict[str, Any]:
    errors = variables_errors(value, HARD)
    if errors:
        raise ValueError("; ".join(f"{e['loc']}: {e['msg']}" for e in errors))
    return value


# A script fill's variables: a few short values (the shop's own limit is checked in the core).
Variables = Annotated[
    dict[Annotated[str, Field(max_length=VARIABLE_NAME_MAX)], Any],
    Field(max_length=HARD.variables_per_fill),
    AfterValidator(_bounded_variables),
]


class _In(BaseModel):
    # A misspelt field is an error naming it, not silently dropped.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CustomerIn(_In):
    name: str = Field(default="", max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=200)
    telegram_user_id: int | None = None
    language: Literal["zh-CN", "en"] | None = None


class OrderLineIn(_In):
    sku: str = Field(min_length=1, max_length=64)
    title: str = Field(default="", max_length=300)
    category: str = Field(default="", max_length=80)
    quantity: int = Field(ge=1, le=HARD.units_per_line)
    unit_price: Money = Field(ge=0)
    discount: Money = Field(default=Decimal(0), ge=0)
    gift_value: Money = Field(default=Decimal(0), ge=0)
    no_reason_return: bool = True


class PaymentIn(_In):
    method: str = Field(min_length=1, max_length=40)
    amount: Money = Field(ge=0)
    kind: Literal["full", "deposit", "balance"] = "full"
    paid_at: AwareDatetime | None = None


class OrderIn(_In):
    order_no: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")
    platform: str = Field(default="shop", max_length=40)
    status: OrderStatus
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    placed_at: AwareDatetime
    paid_at: AwareDatetime | None = None
    shipped_at: AwareDatetime | None = None
    delivered_at: AwareDatetime | None = None
    payment_method: str = Field(default="alipay", max_length=40)
    shipping_fee: Money = Field(default=Decimal(0), ge=0)
    order_discount: Money = Field(default=Decimal(0), ge=0)
    free_shipping_threshold: Money | None = Field(default=None, ge=0)
    # The order_discount is a threshold promotion (满减) for spending at least this much.
    promotion_threshold: Money | None = Field(default=None, ge=0)
    address: str = Field(default="", max_length=1000)
    presale: bool = False
    exchange_rate: Rate | None = Field(default=None, gt=0)
    customer: CustomerIn
    lines: list[OrderLineIn] = Field(min_length=1, max_length=HARD.lines_per_order)
    payments: list[PaymentIn] | None = Field(default=None, max_length=HARD.payments_per_order)


class OrderBatch(_In):
    orders: list[OrderIn] = Field(min_length=1, max_length=HARD.orders_per_batch)


class OrderLineRead(BaseModel):
    sku: str
    title: str
    category: str
    quantity: int
    unit_price: str
    discount: str
    gift_value: str
    no_reason_return: bool
    unit_nets: list[str]


class PaymentRead(BaseModel):
    method: str
    amount: str
    kind: str
    paid_at: AwareDatetime | None


class OrderRead(BaseModel):
    order_no: str
    platform: str
    status: str
    currency: str
    placed_at: AwareDatetime
    paid_at: AwareDatetime | None
    shipped_at: AwareDatetime | None
    delivered_at: AwareDatetime | None
    payment_method: str
    shipping_fee: str
    order_discount: str
    free_shipping_threshold: str | None
    promotion_threshold: str | None
    address: str
    presale: bool
    exchange_rate: str | None
    paid_total: str
    customer: dict[str, Any]
    lines: list[OrderLineRead]
    payments: list[PaymentRead]


class OrderUpsertResult(BaseModel):
    created: list[str]
    updated: list[str]
    unchanged: list[str]


class ItemIn(_In):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=HARD.units_per_line)


class TicketCreate(_In):
    kind: CaseKind
    reason: str = Field(max_length=40)
    order_no: str | None = Field(default=None, max_length=64)
    items: list[ItemIn] = Field(default_factory=list, max_length=HARD.items_per_request)
    description: str = Field(default="", max_length=5000)
    channel: Channel = Channel.api
    priority: Priority = Priority.normal
    language: Literal["zh-CN", "en"] | None = None
    # Needed only without an order (a complaint about service, say).
    customer: CustomerIn | None = None
    # An agent's exception to the eligibility policy (goodwill); recorded on the case.
    override_policy: bool = False

    @field_validator("reason")
    @classmethod
    def _known_reason(cls, value: str) -> str:
        if value not in REASONS:
            raise ValueError(f"unknown reason {value!r}; use one of: {', '.join(REASONS)}")
        return value


class QuoteAsk(_In):
    """A refund quote request: which items, why, and what kind of request."""

    items: list[ItemIn] = Field(min_length=1, max_length=HARD.items_per_request)
    reason: str = Field(max_length=40)
    kind: Literal["refund_only", "return_refund"] = "return_refund"
    return_freight: Money | None = Field(default=None, ge=0)
    return_freight_receipt: bool = False

    @field_validator("reason")
    @classmethod
    def _known_reason(cls, value: str) -> str:
        if value not in REASONS:
            raise ValueError(f"unknown reason {value!r}; use one of: {', '.join(REASONS)}")
        return value


class InspectResult(_In):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=HARD.units_per_line)
    outcome: Literal["resalable", "damaged", "missing", "wrong_item"]


class Pickup(_In):
    time: str = Field(min_length=1, max_length=100)
    address: str = Field(min_length=1, max_length=1000)


class ActionRequest(_In):
    """One agent action. Parameters travel beside `action` (DESIGN.md, action names)."""

    action: str = Field(max_length=40)
    # The case version the agent saw; when given, a newer case is a 409, never an overwrite.
    version: int | None = Field(default=None, ge=0, le=2_147_483_647)
    reason: str | None = Field(default=None, max_length=2000)
    # What a refusal offers instead (a default from the policy when left out).
    alternative: str | None = Field(default=None, max_length=2000)
    # The script the customer receives for this step, and variables it needs beyond the case's.
    script: str | None = Field(default=None, max_length=100)
    variables: Variables = Field(default_factory=dict)
    note: str | None = Field(default=None, max_length=5000)
    tracking_no: str | None = Field(default=None, max_length=80)
    carrier: str | None = Field(default=None, max_length=80)
    pickup: Pickup | None = None
    results: list[InspectResult] | None = Field(default=None, max_length=HARD.results_per_inspect)
    assignee: str | None = Field(default=None, max_length=80)
    group: str | None = Field(default=None, max_length=80)
    priority: Priority | None = None
    # propose_refund: return freight the customer paid (reimbursed on its own line, capped).
    return_freight: Money | None = Field(default=None, ge=0)
    return_freight_receipt: bool = False


class ReplyCreate(_In):
    text: str | None = Field(default=None, max_length=4096)
    internal: bool = False
    script: str | None = Field(default=None, max_length=100)
    variables: Variables = Field(default_factory=dict)
    language: Literal["zh-CN", "en"] | None = None


class ItemRead(BaseModel):
    sku: str
    quantity: int
    title: str
    units: list[UnitStatus]


class SlaRead(BaseModel):
    clock: str
    due_at: AwareDatetime | None
    state: Literal["running", "paused", "met", "breached"]


class MessageRead(BaseModel):
    id: int
    author: Literal["customer", "agent", "system"]
    agent: str | None
    text: str
    internal: bool
    at: AwareDatetime
    attachments: list[int]


class AttachmentRead(BaseModel):
    id: int
    kind: str
    mime: str
    size: int
    sha256: str
    url: str


class EventRead(BaseModel):
    type: str
    actor: str
    at: AwareDatetime
    data: dict[str, Any]


class TicketRead(BaseModel):
    number: str
    kind: CaseKind
    status: CaseStatus
    priority: Priority
    group: str
    assignee: str | None
    order_no: str | None
    customer: dict[str, Any]
    reason: str
    description: str
    items: list[ItemRead]
    channel: Channel
    language: str
    created_at: AwareDatetime
    updated_at: AwareDatetime
    version: int
    rma_no: str | None
    tracking_no: str | None
    carrier: str | None
    allowed_actions: list[str]
    refund: dict[str, Any] | None
    sla: list[SlaRead]
    risk: dict[str, Any]
    messages: list[MessageRead]
    attachments: list[AttachmentRead]
    events: list[EventRead]


class TicketSummary(BaseModel):
    """A queue row: what an agent decides by, without the conversation."""

    number: str
    kind: CaseKind
    status: CaseStatus
    priority: Priority
    group: str
    assignee: str | None
    order_no: str | None
    customer_name: str
    reason: str
    channel: Channel
    created_at: AwareDatetime
    updated_at: AwareDatetime
    risk_level: str


class TicketList(BaseModel):
    data: list[TicketSummary]
    count: int
    # True when more cases match than the count cap: `count` is then the cap ("10 000+").
    count_capped: bool = False
    next_cursor: str | None
