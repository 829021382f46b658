"""Signed chat links: a link per order that opens the web chat already proved for that order.

The shop puts it on its order page (`aftersales chat-link ORDER_NO`, `GET
/api/v1/orders/{order_no}/chat-link`). A customer who opens it has shown the order is theirs
the way the shop showed them the page (their log-in on the shop's site), so the web chat asks no
phone digits: the link stands for the proof.

A link's token is the order number, when it expires, and an HMAC-SHA256 of both keyed with
AFTERSALES_SECRET_KEY (a purpose of its own: a session cookie's signature is never a link's).
Nothing is stored: a token whose signature does not match, or whose time has passed, is refused
(`LinkRefused`, with the reason), and the customer can still prove the order by its number and
the phone's last digits. It lasts AFTERSALES_WEB_CHAT_LINK_HOURS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from tickets.customers import has_history, link_order_customer, resolve_customer, speaks_for
from tickets.models import Customer
from tickets.orders.store import get_order

# The query parameter of /chat that carries a link's token.
LINK_PARAM = "link"
# Longer than any token made here (an order number is at most 64 characters): anything longer
# is refused before any work.
TOKEN_MAX = 200
_PURPOSE = b"chat-link\x00"


class LinkRefused(Exception):
    """A link that does not open the chat: `reason` is `expired` or `invalid`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ChatLink:
    """A signed link for one order, and when it stops working."""

    order_no: str
    url: str
    expires_at: datetime


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, body: str) -> str:
    return _b64(hmac.new(secret.encode(), _PURPOSE + body.encode(), hashlib.sha256).digest())


def make_token(secret: str, order_no: str, expires_at: datetime) -> str:
    """The token of a link to `order_no` that works until `expires_at`."""
    body = f"{_b64(order_no.encode())}.{int(expires_at.timestamp())}"
    return f"{body}.{_mac(secret, body)}"


def read_token(secret: str, token: str, now: datetime) -> str:
    """The order number a token names, or LinkRefused: tampered with, malformed, expired."""
    if not token or len(token) > TOKEN_MAX or token.count(".") != 2:
        raise LinkRefused("invalid")
    encoded, expires, mac = token.split(".")
    if not expires.isdigit() or len(expires) > 12:
        raise LinkRefused("invalid")
    if not hmac.compare_digest(mac.encode(), _mac(secret, f"{encoded}.{expires}").encode()):
        raise LinkRefused("invalid")
    try:
        order_no = _unb64(encoded).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise LinkRefused("invalid") from None
    if now.timestamp() >= int(expires):
        raise LinkRefused("expired")
    return order_no


def chat_link(
    *, secret: str, public_url: str, order_no: str, now: datetime, hours: int
) -> ChatLink:
    """A signed link to the web chat for this order (module doc), as the shop's page shows it."""
    expires_at = (now + timedelta(hours=hours)).astimezone(UTC).replace(microsecond=0)
    token = make_token(secret, order_no, expires_at)
    url = f"{public_url.rstrip('/')}/chat?{urlencode({LINK_PARAM: token})}"
    return ChatLink(order_no=order_no, url=url, expires_at=expires_at)


def link_for_order(
    session: Session, *, secret: str, public_url: str, order_no: str, now: datetime, hours: int
) -> ChatLink:
    """The chat link of a stored order (NotFound when there is none), under its stored
    number however it was typed."""
    order = get_order(session=session, order_no=order_no)
    return chat_link(
        secret=secret, public_url=public_url, order_no=order.order_no, now=now, hours=hours
    )


def prove_by_link(
    session: Session, *, web_chat_id: int, order_no: str, name: str, language: str
) -> Customer | None:
    """The web chat opened with a valid link for `order_no`: it is proved the order's, as by
    the phone's digits (tickets/customers.py `link_order_customer`: the chat joins the order's
    customer, a customer who also uses Telegram staying one). Returns the customer the chat
    now acts as; NotFound when the order is gone.

    None when the chat is already somebody's with a history (orders or cases) of its own and
    not this order's: a link never joins two customers. Any page may make a browser open a
    link (it is a plain GET), so joining would let a stranger's link tie their order to the
    browser's account, and proving that order again would then open the account to them. The
    caller opens the link in a new chat instead."""
    order = get_order(session=session, order_no=order_no)
    me = resolve_customer(session, telegram_user_id=web_chat_id, name=name, language_code=language)
    if not speaks_for(order.customer, me.id) and has_history(session, me):
        return None
    return link_order_customer(session, me=me, order=order)
