"""Who is talking on the web chat: a browser session, and the limits on what it may send.

A session is a web chat id (tickets/customers.py: a range Telegram's ids never reach) in a
signed cookie (HttpOnly, SameSite=Lax): an id nobody can choose, since the server signs it
with AFTERSALES_SECRET_KEY; a changed cookie is a new session. It lasts
AFTERSALES_WEB_CHAT_SESSION_DAYS after its last use, so a customer who closes the tab comes
back to their conversation on the same device. Whatever ids a request names, it acts only as
its cookie's chat: the bot's handlers see that chat's customer, the event stream reads that
chat's outbox rows.

Rate limits are counted in this process (a sliding minute, a sliding hour): messages per
session and per address, new sessions per address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tickets.customers import WEB_CHAT_BASE, WEB_CHAT_LAST, is_web_chat

COOKIE = "aftersales_chat"
LANGUAGE_COOKIE = "aftersales_chat_lang"
# One address may send this many times a session's messages: a family, an office, a shop's
# own test behind one address.
ADDRESS_FACTOR = 4


def _sign(secret: str, value: str) -> str:
    mac = hmac.new(secret.encode(), b"web-chat\x00" + value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def new_chat_id() -> int:
    """A fresh web chat id: random, in the web range."""
    return WEB_CHAT_BASE + secrets.randbelow(WEB_CHAT_LAST - WEB_CHAT_BASE + 1)


def session_cookie(secret: str, chat_id: int) -> str:
    """The cookie's value for this chat: the id and its signature."""
    return f"{chat_id}.{_sign(secret, str(chat_id))}"


def chat_of(secret: str, value: str | None) -> int | None:
    """The web chat a cookie names, or None when it is missing, changed or not a web chat's."""
    if not value or "." not in value or len(value) > 100:
        return None
    raw, _, mac = value.partition(".")
    if not raw.isdigit() or not hmac.compare_digest(mac, _sign(secret, raw)):
        return None
    chat_id = int(raw)
    return chat_id if is_web_chat(chat_id) else None


@dataclass
class Window:
    """At most `limit` events in any `seconds` per key (in this process)."""

    limit: int
    seconds: float
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def allow(self, key: str) -> bool:
        """Whether one more event for `key` fits; counted when it does."""
        now = self.clock()
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= now - self.seconds:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        if len(self._seen) > 100_000:
            # Keys of long-gone visitors: dropped rather than kept forever.
            self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - self.seconds}
        return True


@dataclass
class Limits:
    """The web chat's rate limits (module doc)."""

    per_session: Window
    per_address: Window
    sessions_per_address: Window

    @classmethod
    def of(cls, messages_per_minute: int, sessions_per_hour: int) -> Limits:
        return cls(
            per_session=Window(messages_per_minute, 60.0),
            per_address=Window(messages_per_minute * ADDRESS_FACTOR, 60.0),
            sessions_per_address=Window(sessions_per_hour, 3600.0),
        )

    def message(self, chat_id: int, address: str) -> bool:
        """Whether this session, from this address, may send one more message now."""
        return self.per_session.allow(str(chat_id)) and self.per_address.allow(address)
