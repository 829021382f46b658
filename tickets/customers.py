"""Who is writing: the Telegram user turned into our `Customer`, and an order proved theirs.

Telegram objects stop here: the rest of the bot sees a `Customer` row and plain values.
"""

from __future__ import annotations

import re

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from tickets.messages.scripts import resolve_language
from tickets.models import Customer, Order, Ticket

# Built once: every update runs it (a statement built anew pays for its cache key again).
_BY_TELEGRAM_ID = select(Customer).where(Customer.telegram_user_id == bindparam("tg"))


def resolve_customer(
    session: Session, *, telegram_user_id: int, name: str, language_code: str | None
) -> Customer:
    """The customer of this Telegram account, created on first contact with the language
    Telegram reports (a language chosen later with /language is kept)."""
    customer = session.execute(_BY_TELEGRAM_ID, {"tg": telegram_user_id}).scalar_one_or_none()
    if customer is None:
        customer = Customer(
            name=name[:200],
            telegram_user_id=telegram_user_id,
            language=resolve_language(language_code),
        )
        session.add(customer)
        session.flush()
    return customer


def digits(phone: str | None) -> str:
    """Only the digits of a phone number, without a leading China country code."""
    only = re.sub(r"\D", "", phone or "")
    if len(only) == 13 and only.startswith("86"):
        only = only[2:]
    return only


def phone_matches(order_phone: str | None, given: str) -> bool:
    """Whether a shared contact's number is the order's phone."""
    a, b = digits(order_phone), digits(given)
    # Both must be real numbers: a short fragment would match far too many contacts.
    return len(a) >= 7 and len(b) >= 7 and (a.endswith(b) or b.endswith(a))


def last4_matches(order_phone: str | None, given: str) -> bool:
    """Whether `given` is the last four digits of the order's phone."""
    a = digits(order_phone)
    return len(a) >= 4 and given.strip() == a[-4:]


class LinkedElsewhere(Exception):
    """The order's customer is already another Telegram account."""


def link_order_customer(session: Session, *, me: Customer, order: Order) -> Customer:
    """Make this Telegram account the order's customer (after proof). The placeholder created
    on first contact is merged away when nothing hangs on it; returns the customer to act as.
    Raises LinkedElsewhere when the order's customer is a different Telegram account."""
    owner = order.customer
    if owner.id == me.id:
        return me
    if owner.telegram_user_id is not None and owner.telegram_user_id != me.telegram_user_id:
        raise LinkedElsewhere(order.order_no)
    telegram_id, language = me.telegram_user_id, me.language
    # The Telegram id is unique: free it on the placeholder before the owner takes it.
    me.telegram_user_id = None
    session.flush()
    owner.telegram_user_id = telegram_id
    owner.language = language
    if not owner.name:
        owner.name = me.name
    has_orders = session.scalar(select(func.count(Order.id)).where(Order.customer_id == me.id))
    has_cases = session.scalar(select(func.count(Ticket.id)).where(Ticket.customer_id == me.id))
    if not has_orders and not has_cases:
        session.delete(me)
    session.flush()
    return owner


def recent_orders(session: Session, customer: Customer, limit: int = 5) -> list[Order]:
    """The customer's latest orders, newest first (a linked customer picks from these)."""
    return list(
        session.scalars(
            select(Order)
            .where(Order.customer_id == customer.id)
            .order_by(Order.placed_at.desc(), Order.id.desc())
            .limit(limit)
        )
    )
