"""The JSON shapes of the public contracts (DESIGN.md): orders, tickets, actions, replies.

Money travels as decimal strings ("19.99") and is converted to integer minor units by
tickets/orders/store.py with the currency in hand; times are ISO 8601 with an offset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, Union

from annotated_types import Ge, Le
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from tickets.limits import HARD, VARIABLE_NAME_MAX, variables_errors
from tickets.models import CaseKind, CaseStatus, Channel, OrderStatus, Priority, UnitStatus
from tickets.money import MAX_INT_DIGITS, bounded_decimal
from tickets.reasons import REASONS
from tickets.workflow import TRANSITIONS


def _plain_amount(value: Any) -> Any:
    """A money string is plain digits (the one parser's rule, tickets.money.bounded_decimal):
    no exponent, sign, NaN or infinity, and bounded; checked before pydantic builds a Decimal.
    The currency's decimals are checked with the currency in hand (tickets/orders/store.py)."""
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

# Every integer a request carries is bounded by the column it is compared with or stored in,
# so a 25-digit number is a 422 naming the field rather than an overflow in the database.
# Plain constraints (annotated_types) so the same alias works in a pydantic model and as a
# FastAPI path, query or form parameter.
INT32_MAX = 2**31 - 1  # INTEGER: primary keys, versions, quantities
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # BIGINT: Telegram ids
DbId = Annotated[int, Ge(1), Le(INT32_MAX)]
DbInt = Annotated[int, Ge(0), Le(INT32_MAX)]
DbBigInt = Annotated[int, Ge(INT64_MIN), Le(INT64_MAX)]

# An amount in the currency's major unit (yuan, dollars). Ten billion is beyond any one price a
# shop writes, yet in minor units (up to 3 decimals) it stays far inside a BIGINT column, and a
# bound checked here refuses "1e20" before anything converts it.
MONEY_MAX = Decimal(10**10)
# Parsed by the one money parser (`Money`: plain digits, bounded) before these bounds apply.
MoneyIn = Annotated[
    Decimal, BeforeValidator(_plain_amount), AfterValidator(_bounded_amount), Ge(0), Le(MONEY_MAX)
]

# A time a request carries lies within the years a shop's records have: beyond them, turning it
# into UTC to store it, or a clock's arithmetic on it (+30 days), overflows datetime.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def plausible_time(value: datetime) -> datetime:
    if not EARLIEST <= value.replace(tzinfo=value.tzinfo or UTC) < LATEST:
        raise ValueError("must be a time between the years 1970 and 2999")
    return value


TimeIn = Annotated[AwareDatetime, AfterValidator(plausible_time)]


def whole_number(text: str, maximum: int = INT32_MAX) -> int | None:
    """Form text as a whole number in 0..maximum, or None. ASCII digits only: "²" is a digit to
    str.isdigit() but not to int(), and a 5000-digit string is past int()'s own limit."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None


# Fields whose value is free-form JSON rather than a model of its own.
FREE_FORM = frozenset({"variables"})


def nul_at(value: Any) -> str | None:
    """The dotted path of the first text holding a NUL character in JSON-like input, or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            for key, sub in item.items():
                name = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and "\x00" in key:
                    return name.replace("\x00", "")
                stack.append((name, sub))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}.{i}" if path else str(i), sub) for i, sub in enumerate(item))
    return None


class _In(BaseModel):
    # A misspelt field is an error naming it, not silently dropped.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any, info: ValidationInfo) -> Any:
        # PostgreSQL cannot store a NUL in text and no person types one: refused here, once for
        # every JSON body, naming the field (api/inputs.py does the same for forms and queries).
        # Nested models check their own fields; free-form values (script variables) are walked.
        if isinstance(value, str):
            where: str | None = "" if "\x00" in value else None
        elif info.field_name in FREE_FORM:
            where = nul_at(value)
        else:
            return value
        if where is not None:
            raise ValueError(
                f"{where + ': ' if where else ''}must not contain a NUL character (\\u0000)"
            )
        return value


# The base of every request body: forbids unknown fields, refuses NUL characters.
InputModel = _In


# The names the service passes beside a script's variables when it queues a notice
# (tickets/cases/, _notice): a variable of one of these names would collide with them.
RESERVED_VARIABLES = frozenset({"ticket", "ctx", "session", "script"})
MAX_VARIABLES = 50


def _script_variables(value: dict[str, Any]) -> dict[str, Any]:
    taken = sorted(RESERVED_VARIABLES & set(value))
    if taken:
        raise ValueError(
            f"variable {taken[0]!r} is a reserved name (not one of a script's variables): "
            f"{', '.join(sorted(RESERVED_VARIABLES))} cannot be used"
        )
    return value


class CustomerIn(_In):
    name: str = Field(default="", max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=200)
    telegram_user_id: DbBigInt | None = None
    language: Literal["zh-CN", "en"] | None = None


class OrderLineIn(_In):
    sku: str = Field(min_length=1, max_length=64)
    title: str = Field(default="", max_length=300)
    category: str = Field(default="", max_length=80)
    quantity: int = Field(ge=1, le=HARD.units_per_line)
    unit_price: MoneyIn
    discount: MoneyIn = Decimal(0)
    gift_value: MoneyIn = Decimal(0)
    # A gift line (unit_price 0, gift_value declared) may name the paid line it came with;
    # without it the gift belongs to the order's paid lines (README, "Gifts").
    gift_for: str | None = Field(default=None, min_length=1, max_length=64)
    no_reason_return: bool = True


class PaymentIn(_In):
    method: str = Field(min_length=1, max_length=40)
    amount: MoneyIn
    kind: Literal["full", "deposit", "balance"] = "full"
    paid_at: TimeIn | None = None


class OrderIn(_In):
    order_no: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")
    platform: str = Field(default="shop", max_length=40)
    status: OrderStatus
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    placed_at: TimeIn
    paid_at: TimeIn | None = None
    shipped_at: TimeIn | None = None
    delivered_at: TimeIn | None = None
    payment_method: str = Field(default="alipay", max_length=40)
    shipping_fee: MoneyIn = Decimal(0)
    order_discount: MoneyIn = Decimal(0)
    free_shipping_threshold: MoneyIn | None = None
    # The order_discount is a threshold promotion (满减) for spending at least this much.
    promotion_threshold: MoneyIn | None = None
    address: str = Field(default="", max_length=1000)
    presale: bool = False
    exchange_rate: Rate | None = Field(default=None, gt=0)
    customer: CustomerIn
    lines: list[OrderLineIn] = Field(min_length=1, max_length=HARD.lines_per_order)
    payments: list[PaymentIn] | None = Field(default=None, max_length=HARD.payments_per_order)


_ORDER_IN = TypeAdapter(OrderIn)


class OrderBatch(_In):
    orders: list[OrderIn] = Field(min_length=1, max_length=HARD.orders_per_batch)

    @model_validator(mode="wrap")
    @classmethod
    def _one_by_one(cls, data: Any, handler: ModelWrapValidatorHandler[OrderBatch]) -> OrderBatch:
        """The count first, then each order on its own. Why: pydantic checks a list's length
        after validating every item, and validates a list in one call that holds the
        interpreter lock throughout: the largest batch (2 MiB) held it 150-260 ms, while every
        other request, /healthz included, waited (issue 12). One order at a time, the lock can
        change hands between two."""
        raw = data.get("orders") if isinstance(data, dict) else None
        if not isinstance(raw, list) or not raw:
            return handler(data)
        most = HARD.orders_per_batch
        if len(raw) > most:
            ctx = {"field_type": "List", "max_length": most, "actual_length": len(raw)}
            too_long = InitErrorDetails(type="too_long", loc=("orders",), input=raw, ctx=ctx)
            raise ValidationError.from_exception_data(cls.__name__, [too_long])
        orders: list[OrderIn] = []
        errors: list[InitErrorDetails] = []
        for i, item in enumerate(raw):
            try:
                orders.append(_ORDER_IN.validate_python(item))
            except ValidationError as exc:
                errors.extend(
                    InitErrorDetails(
                        type=err["type"],
                        loc=("orders", i, *err["loc"]),
                        input=err["input"],
                        ctx=err.get("ctx", {}),
                    )
                    for err in exc.errors()
                )
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return handler({**data, "orders": orders})


class OrderLineRead(BaseModel):
    sku: str
    title: str
    category: str
    quantity: int
    unit_price: str
    discount: str
    gift_value: str
    gift_for: str | None = None
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
    # The agent opening the case takes it: it starts assigned to them (a phone call's case is
    # the caller's agent's). Only an agent may.
    take: bool = False

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
    return_freight: MoneyIn | None = None
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
    version: DbInt | None = None
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
    return_freight: MoneyIn | None = None
    return_freight_receipt: bool = False
    # What the agent deliberately confirms on a case the policy holds for a person
    # (tickets/cases/holds.py): approving it at high risk, or without the evidence it awaits.
    confirm: list[Literal["high_risk", "awaiting_evidence"]] = Field(
        default_factory=list, max_length=2
    )
    # The case number typed: confirms high risk as ticking "high_risk" does.
    confirm_number: str | None = Field(default=None, max_length=40)

    check_variables = field_validator("variables")(_script_variables)


# What each action takes beyond what every action takes (`version`, `reason`, `note`): the
# JSON API's request schema is one per action (OpenAPI's `oneOf`, told apart by `action`), so a
# client reads what an action needs, and a parameter it cannot use is refused naming it.
# tests/test_api_tickets.py checks every action of the lifecycle is here, with what it needs.
ACTION_COMMON: Final = ("version", "reason", "note")
ACTION_PARAMS: Final[dict[str, tuple[str, ...]]] = {
    "approve": ("variables", "confirm", "confirm_number"),
    "request_info": ("script", "variables"),
    "refuse": ("alternative", "script", "variables"),
    "cancel": ("variables",),
    "escalate": (),
    "assign": ("assignee", "group", "priority"),
    "mark_in_transit": ("tracking_no", "carrier", "pickup"),
    "mark_collected": ("tracking_no", "carrier"),
    "mark_received": (),
    "inspect": ("results", "variables"),
    "propose_refund": ("return_freight", "return_freight_receipt"),
    "approve_refund": (),
    "issue_refund": (),
    "withdraw_refund": (),
    "confirm_refund": (),
    "fail_refund": (),
    "ship_exchange": ("tracking_no", "carrier"),
    "resolve": (),
    "close": ("script", "variables"),
    "reopen": (),
    "refund_anyway": (),
    "send_back": (),
    "resubmit": (),
}


def _required_params(action: str) -> set[str]:
    """The parameters every transition of `action` needs (one of several, "a|b", is left to
    the core's check, which names them)."""
    needs = [set(t.needs) for t in TRANSITIONS if t.action == action]
    common = set.intersection(*needs) if needs else set()
    return {n for n in common if "|" not in n}


def _action_body(action: str, params: tuple[str, ...]) -> type[BaseModel]:
    """The request of one action: `action` fixed to its name, and the fields it takes, as
    ActionRequest declares them (same types, limits and defaults)."""
    fields: dict[str, Any] = {
        name: (ActionRequest.model_fields[name].annotation, ActionRequest.model_fields[name])
        for name in (*ACTION_COMMON, *params)
    }
    required = sorted(_required_params(action))

    def document(schema: dict[str, Any]) -> None:
        # What the action cannot do without (the lifecycle's `needs`) is required in the
        # documented schema; the core checks it (the same words for the panel and the bot).
        schema["required"] = [*schema.get("required", []), *required]

    title = "".join(part.capitalize() for part in action.split("_"))
    model = create_model(
        f"{title}Action",
        __base__=_In,
        __doc__=f"The `{action}` action.",
        # ActionRequest's checks of a script's variables, where the action takes them.
        __validators__=(
            {"check_variables": field_validator("variables")(_script_variables)}
            if "variables" in fields
            else None
        ),
        action=(Literal[action], ...),
        **fields,
    )
    model.model_config = {**model.model_config, "json_schema_extra": document}
    model.model_rebuild(force=True)
    return model


def _action_of(value: Any) -> str | None:
    """Which action a body is (its `action`), for the union below."""
    if isinstance(value, dict):
        action = value.get("action")
        return action if isinstance(action, str) else None
    return getattr(value, "action", None)


ACTION_BODIES: Final = tuple(
    Annotated[_action_body(a, p), Tag(a)] for a, p in ACTION_PARAMS.items()
)
# The JSON API's body of `POST /tickets/{number}/actions`: one of the actions' requests, chosen
# by its `action` (a function picks it: the NUL check every field has runs on `action` too,
# which pydantic's field discriminator does not allow).
ActionBody = Annotated[
    Union[ACTION_BODIES],  # type: ignore[valid-type]  # noqa: UP007
    Discriminator(
        _action_of,
        custom_error_type="unknown_action",
        custom_error_message=f"action must be one of: {', '.join(ACTION_PARAMS)}",
    ),
]


def action_request(body: BaseModel) -> ActionRequest:
    """The core's request from one action's body (validated again as ActionRequest: its
    checks of the script's variables run once more, on the same values)."""
    return ActionRequest.model_validate(body.model_dump(exclude_unset=True))


class ReplyCreate(_In):
    text: str | None = Field(default=None, max_length=4096)
    internal: bool = False
    script: str | None = Field(default=None, max_length=100)
    variables: Variables = Field(default_factory=dict)
    language: Literal["zh-CN", "en"] | None = None
    # The case version the agent saw; when given, a newer case is a 409 (someone answered, or
    # acted, meanwhile), never a second answer sent blind.
    version: DbInt | None = None

    check_variables = field_validator("variables")(_script_variables)


class TagsIn(_In):
    """Tags to put on a case (tickets/cases/tags.py says what a tag may be)."""

    # The hard ceiling; the shop's own (AFTERSALES_LIMIT_TAGS_PER_REQUEST) is the core's check.
    tags: list[Annotated[str, Field(max_length=100)]] = Field(
        min_length=1, max_length=HARD.tags_per_request
    )


class LinkIn(_In):
    """The other case of a link."""

    number: str = Field(min_length=1, max_length=40)


class MergeIn(_In):
    """Merge this case (a duplicate) into `into`; `version`: the duplicate's version seen."""

    into: str = Field(min_length=1, max_length=40)
    version: DbInt | None = None


class LinksRead(BaseModel):
    """The cases linked to a case after a change."""

    links: list[LinkRead]


class TagsRead(BaseModel):
    """A case's tags after a change, A to Z."""

    tags: list[str]


class ItemRead(BaseModel):
    sku: str
    quantity: int
    title: str
    units: list[UnitStatus]


class SlaRead(BaseModel):
    clock: str
    due_at: AwareDatetime | None
    state: Literal["running", "paused", "met", "breached"]


class DeliveryRead(BaseModel):
    """Where a message to the customer stands: queued (waiting for its worker), sent, failed
    (the channel refused it: `why`), undeliverable (no channel of the customer's is delivered,
    `reason` no_chat or channel_off:<channel>; never sent, never retried)."""

    state: Literal["queued", "sent", "failed", "undeliverable"]
    channel: str | None = None
    reason: str | None = None
    why: str | None = None


class MessageRead(BaseModel):
    id: int
    author: Literal["customer", "agent", "system"]
    agent: str | None
    text: str
    internal: bool
    at: AwareDatetime
    attachments: list[int]
    # A reply to the customer: how its delivery stands; None for notes and customer messages.
    delivery: DeliveryRead | None = None


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


class LinkRead(BaseModel):
    """A case linked to this one as related."""

    number: str
    status: str
    kind: str


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
    tags: list[str] = Field(default_factory=list)
    # Cases linked as related, and the case this one was merged into (a closed duplicate).
    links: list[LinkRead] = Field(default_factory=list)
    merged_into: str | None = None
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
    tags: list[str] = Field(default_factory=list)


class ApprovalRead(BaseModel):
    """A large refund waiting for this agent as the second person (maker-checker)."""

    number: str
    kind: CaseKind
    amount: str
    currency: str
    refund_status: str
    proposed_by: str | None
    proposed_at: AwareDatetime
    risk_level: str


class ApprovalList(BaseModel):
    data: list[ApprovalRead]
    count: int


class TicketList(BaseModel):
    data: list[TicketSummary]
    count: int
    # True when more cases match than the count cap: `count` is then the cap ("10 000+").
    count_capped: bool = False
    next_cursor: str | None


class ChatLinkRead(BaseModel):
    """A signed link to the web chat for one order (tickets/chat_links.py), for the shop's
    order page."""

    order_no: str
    url: str
    expires_at: AwareDatetime
