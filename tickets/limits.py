"""Sizes no real shop reaches, checked before any work so one request cannot stall the desk.

Two layers, one set of names:
- `HARD` are ceilings in the request schemas (tickets/schemas.py): pydantic refuses a body over
  them while parsing, before a row is read or a lock taken. They are also the most a shop may
  raise a setting to.
- `Limits` are the shop's own limits (AFTERSALES_LIMIT_* settings, defaults below), checked by
  the core's entry points that the API, the panel, the importer and the bot all go through:
  `order_errors` (upsert_order), `check_batch`, `check_items` (pick_units), `check_variables`
  (coerce_variables), the results of an inspection (cases.actions.returns.inspect_goods) and the
  ownership proof (tickets/ownership.py).

A line of 100 000 units once held SQLite's write lock for 35 s; the defaults here are a hundred
times what a busy shop sends and a small fraction of that cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tickets.exceptions import InvalidInput
from tickets.money import DEFAULT_MAX_AMOUNT


@dataclass(frozen=True, slots=True)
class Limits:
    """The shop's limits; every field is an AFTERSALES_LIMIT_<NAME> setting."""

    # Units of one SKU on one order line, and units over a whole order.
    units_per_line: int = 1_000
    units_per_order: int = 5_000
    lines_per_order: int = 200
    payments_per_order: int = 20
    # Orders in one POST /api/v1/orders batch (the importer writes in batches of its own).
    orders_per_batch: int = 500
    # Items (SKU and quantity) in one case, quote or inspection request.
    items_per_request: int = 200
    results_per_inspect: int = 200
    # Variables given to one script fill or preview, and the length of each text value.
    variables_per_fill: int = 30
    text_max: int = 5_000
    # The largest amount of money accepted, in the currency's major unit (yuan, dollars).
    max_amount: Decimal = field(default=DEFAULT_MAX_AMOUNT)
    # Wrong proofs that an order is yours (its phone's last digits), per day: on one order from
    # anyone, and by one person on any orders (tickets/ownership.py).
    proof_tries_per_order: int = 5
    proof_tries_per_person: int = 10
    # Tags on one case and named in one request (tickets/cases/tags.py), saved views (named
    # queues) per agent, cases linked to one case (tickets/cases/links.py), and notifications
    # kept per agent (the newest; tickets/notifications.py).
    tags_per_case: int = 20
    tags_per_request: int = 20
    saved_views_per_agent: int = 20
    links_per_case: int = 50
    notifications_per_agent: int = 200


# The ceilings of the schemas, and the most a setting may be raised to.
HARD = Limits(
    units_per_line=100_000,
    units_per_order=100_000,
    lines_per_order=1_000,
    payments_per_order=100,
    orders_per_batch=1_000,
    items_per_request=1_000,
    results_per_inspect=1_000,
    variables_per_fill=100,
    text_max=20_000,
    max_amount=Decimal(10) ** 12,
    proof_tries_per_order=100,
    proof_tries_per_person=100,
    tags_per_case=100,
    tags_per_request=100,
    saved_views_per_agent=100,
    links_per_case=500,
    notifications_per_agent=10_000,
)
DEFAULTS = Limits()
# A variable's name: a script declares short identifiers.
VARIABLE_NAME_MAX = 64
# An int variable a script prints (a count of days, parcels ...).
VARIABLE_INT_MAX = 10**12


def _over(loc: str, what: str, limit: int) -> dict[str, Any]:
    return {"loc": loc, "msg": f"more than {limit} {what} (the shop's limit)"}


def order_errors(data: Any, limits: Limits, loc: str) -> list[dict[str, Any]]:
    """What in an order (tickets.schemas.OrderIn) goes over the limits, each naming its field."""
    errors: list[dict[str, Any]] = []
    if len(data.lines) > limits.lines_per_order:
        errors.append(_over(f"{loc}.lines", "lines on one order", limits.lines_per_order))
    for i, line in enumerate(data.lines):
        if line.quantity > limits.units_per_line:
            errors.append(
                _over(f"{loc}.lines.{i}.quantity", "units on one line", limits.units_per_line)
            )
    if sum(line.quantity for line in data.lines) > limits.units_per_order:
        errors.append(_over(f"{loc}.lines", "units on one order", limits.units_per_order))
    if data.payments is not None and len(data.payments) > limits.payments_per_order:
        errors.append(_over(f"{loc}.payments", "payments on one order", limits.payments_per_order))
    return errors


def check_batch(count: int, limits: Limits, loc: str = "orders") -> None:
    if count > limits.orders_per_batch:
        raise InvalidInput(
            f"{loc}: more than {limits.orders_per_batch} orders in one batch; send it in parts",
            [_over(loc, "orders in one batch", limits.orders_per_batch)],
        )


def check_items(items: Sequence[Any], limits: Limits, loc: str = "items") -> None:
    """Items of a case, quote or inspection: how many, and units per item."""
    if len(items) > limits.items_per_request:
        raise InvalidInput(
            f"{loc}: more than {limits.items_per_request} items in one request",
            [_over(loc, "items in one request", limits.items_per_request)],
        )
    for i, item in enumerate(items):
        quantity = getattr(item, "quantity", None)
        if isinstance(quantity, int) and quantity > limits.units_per_line:
            raise InvalidInput(
                f"{loc}.{i}.quantity: more than {limits.units_per_line} units",
                [_over(f"{loc}.{i}.quantity", "units of one item", limits.units_per_line)],
            )


def variables_errors(
    variables: Mapping[str, Any], limits: Limits, loc: str = "variables"
) -> list[dict[str, Any]]:
    """A script fill's variables: how many, name length, and the size of each value (text,
    list items); nested structures are refused (no script variable is one)."""
    errors: list[dict[str, Any]] = []
    if len(variables) > limits.variables_per_fill:
        return [_over(loc, "variables in one fill", limits.variables_per_fill)]
    for name, value in variables.items():
        where = f"{loc}.{str(name)[:VARIABLE_NAME_MAX]}"
        if not isinstance(name, str) or len(name) > VARIABLE_NAME_MAX:
            errors.append(
                {"loc": loc, "msg": f"variable names are {VARIABLE_NAME_MAX} chars at most"}
            )
            continue
        items = value if isinstance(value, list) else [value]
        if len(items) > limits.variables_per_fill:
            errors.append(_over(where, "list items", limits.variables_per_fill))
            continue
        for item in items:
            if isinstance(item, str) and len(item) > limits.text_max:
                errors.append(_over(where, "characters", limits.text_max))
                break
            if (
                isinstance(item, int)
                and not isinstance(item, bool)
                and abs(item) > VARIABLE_INT_MAX
            ):
                errors.append({"loc": where, "msg": f"a number above {VARIABLE_INT_MAX}"})
                break
            if isinstance(item, dict | list):
                errors.append(
                    {"loc": where, "msg": "a nested value: give text, a number or a list of text"}
                )
                break
    return errors


def check_variables(variables: Mapping[str, Any], limits: Limits, loc: str = "variables") -> None:
    errors = variables_errors(variables, limits, loc)
    if errors:
        raise InvalidInput("; ".join(f"{e['loc']}: {e['msg']}" for e in errors), errors)
