"""Orders in: upsert by order number, allocate discounts to units once, read back as JSON.
Over 500 lines as one file: the upsert, the allocation of discounts to units and the reading
back are one round trip that must agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from babel.numbers import is_currency
from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from tickets.exceptions import Conflict, InvalidInput, NotFound
from tickets.limits import DEFAULTS, Limits, check_items, order_errors
from tickets.models import (
    HOLDING_STATUSES,
    Agent,
    AuditEntry,
    CaseStatus,
    Customer,
    Event,
    EventType,
    Order,
    OrderLine,
    OrderUnit,
    Payment,
    Ticket,
    TicketUnit,
    UnitStatus,
)
from tickets.money import allocate, format_amount, parse_amount
from tickets.schemas import (
    INT64_MAX,
    CustomerIn,
    ItemIn,
    OrderIn,
    OrderLineRead,
    OrderRead,
    PaymentRead,
)

UpsertOutcome = Literal["created", "updated", "unchanged"]


def _minor(
    value: Decimal | None,
    currency: str,
    loc: str,
    errors: list[dict[str, Any]],
    maximum: Decimal | None = None,
) -> int:
    if value is None:
        return 0
    try:
        return parse_amount(value, currency, maximum=maximum)
    except ValueError as exc:
        errors.append({"loc": loc, "msg": str(exc)})
        return 0


def _priced(data: OrderIn, loc: str, limits: Limits = DEFAULTS) -> dict[str, Any]:
    """Convert every amount of an order to minor units, or raise naming each bad field."""
    # Sizes first: nothing below runs for an order over the shop's limits.
    errors: list[dict[str, Any]] = order_errors(data, limits, loc)
    if errors:
        raise InvalidInput("order over the shop's limits", errors)
    cap = limits.max_amount
    if not is_currency(data.currency):
        errors.append({"loc": f"{loc}.currency", "msg": f"unknown currency {data.currency}"})
        raise InvalidInput("invalid order", errors) from None
    cur = data.currency
    skus = [line.sku for line in data.lines]
    for i, sku in enumerate(skus):
        if skus.index(sku) != i:
            errors.append({"loc": f"{loc}.lines.{i}.sku", "msg": f"SKU {sku} appears twice"})
    lines = []
    for i, line in enumerate(data.lines):
        price = _minor(line.unit_price, cur, f"{loc}.lines.{i}.unit_price", errors, cap)
        discount = _minor(line.discount, cur, f"{loc}.lines.{i}.discount", errors, cap)
        gift = _minor(line.gift_value, cur, f"{loc}.lines.{i}.gift_value", errors, cap)
        if discount > price * line.quantity:
            errors.append(
                {"loc": f"{loc}.lines.{i}.discount", "msg": "line discount exceeds the line amount"}
            )
        lines.append((line, price, discount, gift))
    errors += _gift_errors(data, [price for _, price, _, _ in lines], loc)
    shipping = _minor(data.shipping_fee, cur, f"{loc}.shipping_fee", errors, cap)
    order_discount = _minor(data.order_discount, cur, f"{loc}.order_discount", errors, cap)
    threshold = (
        _minor(data.free_shipping_threshold, cur, f"{loc}.free_shipping_threshold", errors, cap)
        if data.free_shipping_threshold is not None
        else None
    )
    promotion = (
        _minor(data.promotion_threshold, cur, f"{loc}.promotion_threshold", errors, cap)
        if data.promotion_threshold is not None
        else None
    )
    goods = sum(price * ln.quantity - discount for ln, price, discount, _ in lines)
    if goods + shipping > INT64_MAX:
        # Each amount is bounded by the schema; their sum is stored too (the payment, a BIGINT).
        errors.append({"loc": f"{loc}.lines", "msg": "the order's total is beyond any real order"})
    if order_discount > goods and not errors:
        errors.append(
            {"loc": f"{loc}.order_discount", "msg": "order discount exceeds the goods amount"}
        )
    payments = []
    for i, p in enumerate(data.payments or []):
        payments.append((p, _minor(p.amount, cur, f"{loc}.payments.{i}.amount", errors, cap)))
    if errors:
        raise InvalidInput("invalid order", errors)
    paid_total = goods - order_discount + shipping
    if payments and sum(a for _, a in payments) != paid_total:
        errors.append(
            {
                "loc": f"{loc}.payments",
                "msg": (
                    f"payments add up to {format_amount(sum(a for _, a in payments), cur)} "
                    f"but the order's total is {format_amount(paid_total, cur)}"
                ),
            }
        )
        raise InvalidInput("invalid order", errors)
    return {
        "lines": lines,
        "shipping": shipping,
        "order_discount": order_discount,
        "threshold": threshold,
        "promotion": promotion,
        "goods": goods,
        "paid_total": paid_total,
        "payments": payments,
    }


def _gift_errors(data: OrderIn, prices: list[int], loc: str) -> list[dict[str, Any]]:
    """A gift line's `gift_for` names another line of the order, a paid one, and the gift
    itself is free (its value is declared in gift_value, not paid)."""
    errors: list[dict[str, Any]] = []
    paid = {ln.sku for ln, price in zip(data.lines, prices, strict=True) if price > 0}
    for i, (line, price) in enumerate(zip(data.lines, prices, strict=True)):
        if line.gift_for is None:
            continue
        field = f"{loc}.lines.{i}.gift_for"
        if price != 0:
            errors.append({"loc": field, "msg": "only a free gift line (unit_price 0) names one"})
        elif line.gift_for == line.sku:
            errors.append({"loc": field, "msg": "a gift cannot be its own line's gift"})
        elif line.gift_for not in paid:
            errors.append({"loc": field, "msg": f"no paid line {line.gift_for} on this order"})
    return errors


def unit_nets(line_amounts: list[tuple[int, int]], order_discount: int) -> list[list[int]]:
    """Per line, the net of each unit: (quantity, line amount after line discount) in,
    the order discount shared across lines then across each line's units (MONEY.md rule 3)."""
    shares = allocate(order_discount, [amount for _, amount in line_amounts])
    nets = []
    for (quantity, amount), share in zip(line_amounts, shares, strict=True):
        nets.append(allocate(amount - share, [1] * quantity))
    return nets


def find_or_make_customer(
    session: Session, data: CustomerIn, current: Customer | None = None, *, now: datetime
) -> Customer:
    """The customer these details name (by Telegram id, then phone), else `current` (the
    order's customer so far, when it is re-imported without either), else a new one."""
    customer = None
    if data.telegram_user_id is not None:
        customer = session.scalar(
            select(Customer).where(Customer.telegram_user_id == data.telegram_user_id)
        )
    if customer is None and data.phone:
        customer = session.scalar(
            select(Customer).where(Customer.phone == data.phone).order_by(Customer.id).limit(1)
        )
    if (
        customer is None
        and current is not None
        and not data.phone
        and (data.telegram_user_id is None)
    ):
        customer = current
    if customer is None:
        customer = Customer(name=data.name, phone=data.phone, email=data.email, created_at=now)
        session.add(customer)
    if data.name:
        customer.name = data.name
    if data.phone:
        customer.phone = data.phone
    if data.email:
        customer.email = data.email
    if data.telegram_user_id is not None:
        customer.telegram_user_id = data.telegram_user_id
    if data.language:
        customer.language = data.language
    return customer


# Fields of an order that decide what a refund pays (MONEY.md): once the order has cases they
# never change, so a refund proposed in CNY stays in CNY and a unit's net stays what was paid.
MONEY_HEADER = (
    "currency",
    "payment_method",
    "shipping_fee",
    "order_discount",
    "free_shipping_threshold",
    "promotion_threshold",
    "presale",
    "exchange_rate",
)
# Per line: what the money rests on, and what decides eligibility only (corrected in place).
LINE_MONEY = ("quantity", "unit_price", "discount", "gift_value", "gift_for")
LINE_FACTS = ("title", "category", "no_reason_return")


def _show(value: Any, currency: str, field: str) -> str:
    if value is None:
        return "none"
    if field in {"quantity", "presale", "currency", "payment_method", "exchange_rate", "gift_for"}:
        return str(value)
    return format_amount(value, currency)


def _money_changes(
    order: Order,
    header: dict[str, Any],
    new_lines: dict[str, tuple[Any, ...]],
    new_payments: list[tuple[str, int, str]],
    loc: str,
) -> list[dict[str, Any]]:
    """Each money field the re-sent order would change, as {loc, msg}: the header's, each
    line's (by the line's place in the re-sent order), lines added or removed, the payments."""
    cur = order.currency
    out = []
    for key in MONEY_HEADER:
        old, new = getattr(order, key), header[key]
        if old != new:
            out.append(
                {
                    "loc": f"{loc}.{key}",
                    "msg": f"{key} cannot change on an order with cases "
                    f"({_show(old, cur, key)} -> {_show(new, cur, key)})",
                }
            )
    old_lines = {ln.sku: ln for ln in order.lines}
    for i, (sku, values) in enumerate(new_lines.items()):
        line = old_lines.get(sku)
        if line is None:
            out.append(
                {
                    "loc": f"{loc}.lines.{i}.sku",
                    "msg": f"SKU {sku} cannot be added to an order with cases",
                }
            )
            continue
        for key, new in zip(LINE_MONEY, values, strict=True):
            old = getattr(line, key)
            if old != new:
                out.append(
                    {
                        "loc": f"{loc}.lines.{i}.{key}",
                        "msg": f"{key} of {sku} cannot change on an order with cases "
                        f"({_show(old, cur, key)} -> {_show(new, cur, key)})",
                    }
                )
    for sku in old_lines.keys() - new_lines.keys():
        out.append(
            {"loc": f"{loc}.lines", "msg": f"SKU {sku} cannot be removed from an order with cases"}
        )
    old_payments = [(p.method, p.amount, p.kind) for p in order.payments]
    if not out and old_payments != new_payments:
        out.append(
            {"loc": f"{loc}.payments", "msg": "payments cannot change on an order with cases"}
        )
    return out


def upsert_order(
    *,
    session: Session,
    data: OrderIn,
    now: datetime,
    loc: str = "order",
    agent: Agent | None = None,
    actor: str = "cli",
    limits: Limits = DEFAULTS,
    again: bool = False,
) -> tuple[Order, UpsertOutcome]:
    """Create or update an order by its number. Units' nets are allocated once, when recorded.

    Once the order has cases its money fields (MONEY_HEADER, each line's LINE_MONEY, the
    payments) are frozen: a change is a Conflict naming each field. Status, dates, address
    and the customer may change; a line's title, category or no-reason flag may be corrected
    (they decide eligibility), and the correction is recorded on each of its cases.
    `agent` is who pushed it (an API token's agent): recorded in `touched_by`, so that agent
    is never the second approver of a refund on it. `actor` labels the audit entries.
    `limits` are the shop's sizes, checked before any work. `again`: this is the second try,
    after another writer created the order first (see below)."""
    priced = _priced(data, loc, limits)
    # Held before it is read (see _lock_order_no): two writers of one order go one at a time,
    # each on what the other committed.
    _lock_order_no(session, data.order_no)
    order = session.scalar(
        select(Order)
        .where(Order.order_no == data.order_no)
        .options(selectinload(Order.lines).selectinload(OrderLine.units))
        .execution_options(populate_existing=True)
    )
    cur = data.currency
    nets = unit_nets(
        [(ln.quantity, price * ln.quantity - disc) for ln, price, disc, _ in priced["lines"]],
        priced["order_discount"],
    )
    new_lines = {
        ln.sku: (ln.quantity, price, disc, gift, ln.gift_for)
        for ln, price, disc, gift in priced["lines"]
    }
    payments = priced["payments"] or [(None, priced["paid_total"])]
    new_payments = [
        (p.method if p else data.payment_method, amount, p.kind if p else "full")
        for p, amount in payments
    ]
    header = {
        "platform": data.platform,
        "status": data.status.value,
        "currency": cur,
        "placed_at": data.placed_at,
        "paid_at": data.paid_at,
        "shipped_at": data.shipped_at,
        "delivered_at": data.delivered_at,
        "payment_method": data.payment_method,
        "shipping_fee": priced["shipping"],
        "order_discount": priced["order_discount"],
        "free_shipping_threshold": priced["threshold"],
        "promotion_threshold": priced["promotion"],
        "address": data.address,
        "presale": data.presale,
        "exchange_rate": str(data.exchange_rate) if data.exchange_rate is not None else None,
    }
    outcome: UpsertOutcome
    corrections: list[dict[str, Any]] = []
    if order is None:
        try:
            with session.begin_nested():
                customer = find_or_make_customer(session, data.customer, None, now=now)
                order = Order(
                    order_no=data.order_no,
                    customer=customer,
                    created_at=now,
                    updated_at=now,
                    **header,
                )
                session.add(order)
                session.flush()
        except IntegrityError:
            if again:
                raise
            # Another writer created this order (or its customer) meanwhile: no row to lock
            # then, its insert waited for ours and has committed. Once more, as an update of
            # what it made.
            return upsert_order(
                session=session,
                data=data,
                now=now,
                loc=loc,
                agent=agent,
                actor=actor,
                limits=limits,
                again=True,
            )
        outcome = "created"
        money_changed = True
    else:
        old_lines = {ln.sku: ln for ln in order.lines}
        money_changed = (
            any(getattr(order, k) != header[k] for k in MONEY_HEADER)
            or old_lines.keys() != new_lines.keys()
            or any(
                tuple(getattr(old_lines[sku], k) for k in LINE_MONEY) != values
                for sku, values in new_lines.items()
            )
            or [(p.method, p.amount, p.kind) for p in order.payments] != new_payments
        )
        has_cases = session.scalar(select(Ticket.id).where(Ticket.order_id == order.id).limit(1))
        if money_changed and has_cases is not None:
            errors = _money_changes(order, header, new_lines, new_payments, loc)
            raise Conflict(
                f"order {data.order_no} already has after-sales cases: its money cannot change "
                "(status, dates, address and line titles, categories and no-reason flags may): "
                + "; ".join(f"{e['loc']}: {e['msg']}" for e in errors),
                order_no=data.order_no,
                errors=errors,
            )
        if not money_changed:
            for ln in data.lines:
                line = old_lines[ln.sku]
                changed = {
                    k: [getattr(line, k), getattr(ln, k)]
                    for k in LINE_FACTS
                    if getattr(line, k) != getattr(ln, k)
                }
                if changed:
                    corrections.append({"sku": ln.sku, **changed})
        customer = find_or_make_customer(session, data.customer, order.customer, now=now)
        header_changed = any(getattr(order, k) != v for k, v in header.items()) or (
            order.customer_id != customer.id if customer.id is not None else True
        )
        if not money_changed and not header_changed and not corrections:
            return order, "unchanged"
        for key, value in header.items():
            setattr(order, key, value)
        order.customer = customer
        order.updated_at = now
        outcome = "updated"
    if agent is not None and agent.id not in (order.touched_by or []):
        # Reassigned, not appended in place: a JSON column is saved when the value is replaced.
        order.touched_by = [*(order.touched_by or []), agent.id]
    if money_changed:
        order.lines.clear()
        order.payments.clear()
        session.flush()
        for i, ((ln, price, disc, gift), line_nets) in enumerate(
            zip(priced["lines"], nets, strict=True)
        ):
            order.lines.append(
                OrderLine(
                    line_no=i + 1,
                    sku=ln.sku,
                    title=ln.title,
                    category=ln.category,
                    quantity=ln.quantity,
                    unit_price=price,
                    discount=disc,
                    gift_value=gift,
                    gift_for=ln.gift_for,
                    no_reason_return=ln.no_reason_return,
                    units=[OrderUnit(unit_index=j + 1, net=n) for j, n in enumerate(line_nets)],
                )
            )
        for p, amount in payments:
            order.payments.append(
                Payment(
                    method=p.method if p else data.payment_method,
                    amount=amount,
                    kind=p.kind if p else "full",
                    paid_at=(p.paid_at if p else None) or data.paid_at,
                )
            )
    else:
        by_sku = {ln.sku: ln for ln in data.lines}
        for line in order.lines:
            ln = by_sku[line.sku]
            line.title, line.category = ln.title, ln.category
            line.no_reason_return = ln.no_reason_return
        # Dates may change: a payment recorded without its own time follows the order's.
        for pay, (p, _amount) in zip(order.payments, payments, strict=True):
            pay.paid_at = (p.paid_at if p else None) or data.paid_at
    session.flush()
    if corrections:
        _record_corrections(session, order, corrections, now=now, actor=actor)
    return order, outcome


def _record_corrections(
    session: Session, order: Order, corrections: list[dict[str, Any]], *, now: datetime, actor: str
) -> None:
    """A line's title, category or no-reason flag corrected: in the desk's audit trail, and on
    each of the order's cases (eligibility may read differently now)."""
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action="order.corrected",
            target=order.order_no,
            data={"lines": corrections},
        )
    )
    for ticket_id in session.scalars(select(Ticket.id).where(Ticket.order_id == order.id)):
        session.add(
            Event(
                ticket_id=ticket_id,
                type=EventType.order_corrected,
                actor=actor,
                at=now,
                data={"order_no": order.order_no, "lines": corrections},
            )
        )


# One statement for the order with its lines, units, payments and customer: joined, not
# "selectin" (five statements), which costs about four times as much in SQLAlchemy's loading
# alone. The join repeats the order per line x unit x payment: a handful of payments at most.
_ORDER = (
    select(Order)
    .where(Order.order_no == bindparam("order_no"))
    .options(
        joinedload(Order.lines).joinedload(OrderLine.units),
        joinedload(Order.payments),
        joinedload(Order.customer),
    )
)


def lock_order(session: Session, order: Order) -> None:
    """Hold the order's row until the transaction ends: whoever changes what its units hold
    (a new case, an approval, an issue) goes one at a time. PostgreSQL locks the row; SQLite
    runs one writer at a time already (BEGIN IMMEDIATE, tickets/db.py)."""
    session.execute(select(Order.id).where(Order.id == order.id).with_for_update())


def _lock_order_no(session: Session, order_no: str) -> None:
    """Hold the row of the order with this number, if there is one, *before* it is loaded:
    a writer that loaded first and locked after (a case opening while the shop re-sends the
    order) went on with lines and units the other had replaced meanwhile (a 500, a foreign key
    to rows gone). PostgreSQL locks the row; SQLite runs one writer at a time already."""
    session.execute(select(Order.id).where(Order.order_no == order_no).with_for_update())


def normalise_order_no(typed: str) -> str:
    """An order number as people type it, made comparable: no spaces anywhere (a number read
    aloud or copied from a label: "vic 1"), upper case (`vic-1` is `VIC-1`)."""
    return "".join(typed.split()).upper()


# Built once: the stored number matching a typed one once both are normalised (spaces gone,
# upper case). Asked only when the exact number is not found, so the usual lookup stays an
# index seek.
_LOOSE_NUMBER = (
    select(Order.order_no)
    .where(func.upper(func.replace(Order.order_no, " ", "")) == bindparam("normalised"))
    .limit(2)
)


def _loose_order_no(session: Session, order_no: str) -> str | None:
    """The stored number of the one order matching `order_no` in any case and with any
    spaces; None when none does, or two do (ambiguous: never a guess)."""
    found = list(session.scalars(_LOOSE_NUMBER, {"normalised": normalise_order_no(order_no)}))
    return found[0] if len(found) == 1 else None


def _load_order(session: Session, order_no: str, lock: bool) -> Order | None:
    options: dict[str, Any] = {}
    if lock:
        _lock_order_no(session, order_no)
        # Whatever this session read before the lock is read again.
        options["populate_existing"] = True
    return (
        session.execute(_ORDER, {"order_no": order_no}, execution_options=options)
        .unique()
        .scalar_one_or_none()
    )


def get_order(*, session: Session, order_no: str, lock: bool = False) -> Order:
    """The order with this number (lines, units, payments and customer loaded), or NotFound.
    A number typed in another case or with spaces (`vic-1` or `VIC - 1` for `VIC-1`) finds its
    order when exactly one matches, so the bot, the API and the panel agree on it. With
    `lock`, its row is held until the transaction ends, and it is read once held."""
    order = _load_order(session, order_no, lock)
    if order is None:
        # Asked only on a miss: the exact number stays one index seek.
        stored = _loose_order_no(session, order_no)
        if stored is not None and stored != order_no:
            order = _load_order(session, stored, lock)
    if order is None:
        raise NotFound(f"no order {order_no}", order_no=order_no)
    return order


def find_order_id(*, session: Session, order_no: str) -> int | None:
    """The id of the order `get_order` finds for this number (the same matching: exact, else
    the one order equal in any case and with any spaces), without loading it: for filters."""
    found = session.scalar(select(Order.id).where(Order.order_no == order_no))
    if found is None:
        stored = _loose_order_no(session, order_no)
        if stored is not None and stored != order_no:
            found = session.scalar(select(Order.id).where(Order.order_no == stored))
    return found


def order_to_read(order: Order) -> OrderRead:
    """The Order JSON of DESIGN.md, with each unit's stored net."""
    cur = order.currency
    return OrderRead(
        order_no=order.order_no,
        platform=order.platform,
        status=order.status,
        currency=cur,
        placed_at=order.placed_at,
        paid_at=order.paid_at,
        shipped_at=order.shipped_at,
        delivered_at=order.delivered_at,
        payment_method=order.payment_method,
        shipping_fee=format_amount(order.shipping_fee, cur),
        order_discount=format_amount(order.order_discount, cur),
        free_shipping_threshold=(
            format_amount(order.free_shipping_threshold, cur)
            if order.free_shipping_threshold is not None
            else None
        ),
        promotion_threshold=(
            format_amount(order.promotion_threshold, cur)
            if order.promotion_threshold is not None
            else None
        ),
        address=order.address,
        presale=order.presale,
        exchange_rate=order.exchange_rate,
        paid_total=format_amount(sum(p.amount for p in order.payments), cur),
        customer={
            "name": order.customer.name,
            "phone": order.customer.phone,
            "telegram_user_id": order.customer.telegram_user_id,
        },
        lines=[
            OrderLineRead(
                sku=ln.sku,
                title=ln.title,
                category=ln.category,
                quantity=ln.quantity,
                unit_price=format_amount(ln.unit_price, cur),
                discount=format_amount(ln.discount, cur),
                gift_value=format_amount(ln.gift_value, cur),
                gift_for=ln.gift_for,
                no_reason_return=ln.no_reason_return,
                unit_nets=[format_amount(u.net, cur) for u in ln.units],
            )
            for ln in order.lines
        ],
        payments=[
            PaymentRead(
                method=p.method, amount=format_amount(p.amount, cur), kind=p.kind, paid_at=p.paid_at
            )
            for p in order.payments
        ],
    )


# Built once (building a statement costs more than running it): the units among `unit_ids`
# that an open case holds (HOLDING_STATUSES; a refused one only those it has back from the
# customer) or that were refunded.
_TAKEN = (
    select(TicketUnit.unit_id)
    .join(Ticket)
    .where(
        TicketUnit.unit_id.in_(bindparam("unit_ids", expanding=True)),
        or_(
            Ticket.status.in_([s.value for s in HOLDING_STATUSES]),
            and_(
                Ticket.status == CaseStatus.refused.value,
                TicketUnit.status != UnitStatus.requested.value,
            ),
            TicketUnit.status == UnitStatus.refunded.value,
        ),
    )
)
_TAKEN_BY_OTHERS = _TAKEN.where(Ticket.id != bindparam("exclude"))


def units_taken(session: Session, order: Order, *, exclude_ticket: int | None = None) -> set[int]:
    """Ids of this order's units that an open case holds (a refused request's are free again,
    but for those the shop has back), or that were refunded."""
    unit_ids = [u.id for ln in order.lines for u in ln.units]
    if not unit_ids:
        return set()
    if exclude_ticket is None:
        return set(session.scalars(_TAKEN, {"unit_ids": unit_ids}))
    return set(session.scalars(_TAKEN_BY_OTHERS, {"unit_ids": unit_ids, "exclude": exclude_ticket}))


def free_units(session: Session, order: Order) -> dict[str, int]:
    """Per SKU, how many units a new case can still claim (not refunded, not held by an open
    case)."""
    taken = units_taken(session, order)
    return {ln.sku: sum(1 for u in ln.units if u.id not in taken) for ln in order.lines}


def pick_units(
    *, session: Session, order: Order, items: Sequence[ItemIn], limits: Limits = DEFAULTS
) -> list[tuple[OrderLine, int, list[int]]]:
    """For each requested item, its line and the ids of the units the case will name (the
    lowest-index units not already taken), or InvalidInput naming each bad item."""
    check_items(items, limits)
    errors: list[dict[str, Any]] = []
    taken = units_taken(session, order)
    by_sku = {ln.sku: ln for ln in order.lines}
    picked: list[tuple[OrderLine, int, list[int]]] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        line = by_sku.get(item.sku)
        if line is None:
            errors.append(
                {
                    "loc": f"items.{i}.sku",
                    "msg": f"order {order.order_no} has no SKU {item.sku}; "
                    f"it has {', '.join(by_sku)}",
                }
            )
            continue
        if item.sku in seen:
            errors.append({"loc": f"items.{i}.sku", "msg": f"SKU {item.sku} is listed twice"})
            continue
        seen.add(item.sku)
        free = [u.id for u in line.units if u.id not in taken]
        if item.quantity > line.quantity:
            errors.append(
                {
                    "loc": f"items.{i}.quantity",
                    "msg": f"{item.quantity} units asked but only {line.quantity} of {item.sku} "
                    "were bought",
                }
            )
        elif item.quantity > len(free):
            errors.append(
                {
                    "loc": f"items.{i}.quantity",
                    "msg": f"only {len(free)} unit(s) of {item.sku} are not already refunded or in "
                    "another open case",
                }
            )
        else:
            picked.append((line, item.quantity, free[: item.quantity]))
    if errors:
        raise InvalidInput("some items cannot be claimed", errors)
    return picked
