"""Who is writing: the Telegram user turned into our `Customer`, and an order proved theirs.

Telegram objects stop here: the rest of the bot sees a `Customer` row and plain values.

One person may be several customer rows: the shop's orders name a customer by phone, and a
person with two phones is two customers. The row that holds the Telegram id is the account;
proving an order bought with another phone links that phone's customer to the account
(`Customer.linked_to`) instead of moving the Telegram id (which left the first phone's cases
with no chat: My requests empty, replies undeliverable). Everything a customer reaches
(their cases, replies, notices) follows the account: `account_ids`, `speaks_for`,
`telegram_of`.

The web chat (api/chat.py) is a second chat of the same kind: a browser session gets a chat id
from `WEB_CHAT_BASE` up, a range Telegram's user ids never reach (they have at most 52
significant bits), and the customer row holds it as `web_chat_id` beside any Telegram id. The
bot's handlers serve both alike; `chat_channel` tells which one a chat id is. Proving an order
from the web chat joins that chat to the order's customer, Telegram account or not: a customer
who also uses Telegram is one customer.
"""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, Select, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from tickets.messages.scripts import resolve_language
from tickets.models import Channel, Customer, Order, Ticket

# Web chat ids start here: Telegram's never reach 2**52, and a 64-bit column holds up to 2**63.
WEB_CHAT_BASE = 1 << 62
WEB_CHAT_LAST = (1 << 63) - 1


def is_web_chat(chat_id: int | None) -> bool:
    """Whether this chat id is a web chat's (never a Telegram chat's)."""
    return chat_id is not None and WEB_CHAT_BASE <= chat_id <= WEB_CHAT_LAST


def chat_channel(chat_id: int | None) -> Channel:
    """The channel a conversation's chat id belongs to."""
    return Channel.web if is_web_chat(chat_id) else Channel.telegram


# Built once: every update runs it (a statement built anew pays for its cache key again).
_BY_TELEGRAM_ID = select(Customer).where(Customer.telegram_user_id == bindparam("tg"))
_BY_WEB_CHAT = select(Customer).where(Customer.web_chat_id == bindparam("web"))


def resolve_customer(
    session: Session, *, telegram_user_id: int, name: str, language_code: str | None
) -> Customer:
    """The customer of this Telegram account (its account row), created on first contact.
    Until the customer chooses a language (/language), they get the one Telegram says they
    read, whoever created the row (the shop's import defaults to zh-CN). A web chat's id
    (`is_web_chat`) names the customer holding that web chat instead, the browser's language
    standing for Telegram's."""
    web = is_web_chat(telegram_user_id)
    if web:
        customer = session.execute(_BY_WEB_CHAT, {"web": telegram_user_id}).scalar_one_or_none()
    else:
        customer = session.execute(_BY_TELEGRAM_ID, {"tg": telegram_user_id}).scalar_one_or_none()
    if customer is None:
        customer = Customer(
            name=name[:200],
            telegram_user_id=None if web else telegram_user_id,
            web_chat_id=telegram_user_id if web else None,
            language=resolve_language(language_code),
        )
        session.add(customer)
        session.flush()
    elif language_code and not customer.language_chosen:
        telegrams = resolve_language(language_code)
        if customer.language != telegrams:
            set_language(session, customer, telegrams, chosen=False)
    return customer


def set_language(session: Session, customer: Customer, language: str, *, chosen: bool) -> None:
    """The language of the account and of every customer linked to it (their cases' notices
    are written in it); `chosen` when the customer picked it, which Telegram then never
    overrides."""
    customer.language, customer.language_chosen = language, chosen
    session.execute(
        update(Customer)
        .where(Customer.linked_to_id == customer.id)
        .values(language=language, language_chosen=chosen)
    )


def account_ids(customer_id: int | ColumnElement[int]) -> Select[int]:
    """The ids of the customers a Telegram account reaches: its own row's (`customer_id`) and
    those of the customers it proved orders of (other phones)."""
    return select(Customer.id).where(
        or_(Customer.id == customer_id, Customer.linked_to_id == customer_id)
    )


def speaks_for(customer: Customer, acting_customer_id: int | None) -> bool:
    """Whether the customer acting (by id: the account's row) may act for `customer`: it is
    them, or a customer whose order their account proved."""
    return acting_customer_id is not None and acting_customer_id in (
        customer.id,
        customer.linked_to_id,
    )


def telegram_of(customer: Customer) -> int | None:
    """The Telegram account that reaches this customer: theirs, or the account linked to it."""
    if customer.telegram_user_id is not None:
        return customer.telegram_user_id
    account = customer.linked_to
    return account.telegram_user_id if account is not None else None


def web_chat_of(customer: Customer) -> int | None:
    """The web chat that reaches this customer: theirs, or the account's it is linked to."""
    if customer.web_chat_id is not None:
        return customer.web_chat_id
    account = customer.linked_to
    return account.web_chat_id if account is not None else None


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
    """The order's customer is already another Telegram account (or, from the web chat, the
    proving chat has cases of its own under another customer)."""


def link_order_customer(session: Session, *, me: Customer, order: Order) -> Customer:
    """Make this Telegram account reach the order's customer (after proof); returns the
    customer to act as (the account's row). A placeholder made on first contact, with nothing
    on it, is merged away: the order's customer takes the Telegram id. A customer with orders
    or cases keeps it, and the order's customer (another phone) is linked to them, so every
    case of either stays reachable. Raises LinkedElsewhere when the order's customer belongs
    to a different Telegram account."""
    owner = order.customer
    if speaks_for(owner, me.id):
        return me
    if me.web_chat_id is not None and me.telegram_user_id is None:
        return _join_web_chat(session, me=me, owner=owner, order_no=order.order_no)
    if owner.telegram_user_id is not None or owner.linked_to_id is not None:
        raise LinkedElsewhere(order.order_no)
    if _has_anything(session, me):
        owner.linked_to = me
        owner.language, owner.language_chosen = me.language, me.language_chosen
        session.flush()
        return me
    telegram_id = me.telegram_user_id
    # The Telegram id is unique: free it on the placeholder before the owner takes it.
    me.telegram_user_id = None
    session.flush()
    owner.telegram_user_id = telegram_id
    owner.language, owner.language_chosen = me.language, me.language_chosen
    if not owner.name:
        owner.name = me.name
    # Nobody is linked to it: a customer with nothing on it never kept an order's customer.
    session.delete(me)
    session.flush()
    return owner


def has_history(session: Session, customer: Customer) -> bool:
    """Whether the customer has orders or cases of their own (not a placeholder made on
    first contact)."""
    return _has_anything(session, customer)


def _has_anything(session: Session, customer: Customer) -> bool:
    has_orders = session.scalar(
        select(func.count(Order.id)).where(Order.customer_id == customer.id)
    )
    has_cases = session.scalar(
        select(func.count(Ticket.id)).where(Ticket.customer_id == customer.id)
    )
    return bool(has_orders or has_cases)


def _join_web_chat(session: Session, *, me: Customer, owner: Customer, order_no: str) -> Customer:
    """A web chat proved `owner`'s order: the chat becomes the account's (the owner's, or the
    Telegram account it is linked to), so the web chat and Telegram are one customer. The web
    chat's placeholder, with nothing on it, goes; one with cases of its own keeps them, and the
    order's customer is linked to it, as a Telegram account's would be, when nothing else holds
    the owner. The account's earlier web chat (another browser) gives way to this one."""
    account = owner.linked_to or owner
    if _has_anything(session, me):
        if account.telegram_user_id is not None or owner.linked_to_id is not None:
            raise LinkedElsewhere(order_no)
        if account.web_chat_id is not None:
            raise LinkedElsewhere(order_no)
        owner.linked_to = me
        owner.language, owner.language_chosen = me.language, me.language_chosen
        session.flush()
        return me
    web_chat = me.web_chat_id
    me.web_chat_id = None
    session.flush()
    account.web_chat_id = web_chat
    if not account.language_chosen:
        account.language, account.language_chosen = me.language, me.language_chosen
    if not account.name:
        account.name = me.name
    session.delete(me)
    session.flush()
    return account


def recent_orders(session: Session, customer: Customer, limit: int = 5) -> list[Order]:
    """The account's latest orders (all its phones'), newest first (a linked customer picks
    from these)."""
    return list(
        session.scalars(
            select(Order)
            .where(Order.customer_id.in_(account_ids(customer.id)))
            .order_by(Order.placed_at.desc(), Order.id.desc())
            .limit(limit)
        )
    )
