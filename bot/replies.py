"""What the bot answers to one update, collected while the update is handled, then written to
the outbox in the update's own transaction.

Handlers never call Telegram themselves: a network wait inside the unit of work would hold the
database (SQLite's write lock, PostgreSQL row locks) while other updates queue behind it, and an
answer sent before the commit could announce something that is then rolled back. If the handler
fails, what it collected is dropped and the customer gets the apology instead.

Every message to a chat (a text, new buttons under one of the bot's messages) becomes an outbox
row (`queue`): the delivery worker sends it within Telegram's limits (30 a second for the bot,
one a second per chat), retries it, and a crash after the commit resends it rather than losing
it. Only the answer to a pressed button (`answerCallbackQuery`) is sent directly, after the
commit (`flush`): it is no chat message (no per-chat limit), it must come within seconds to
stop the button's spinner, and losing it loses nothing but the spinner.

An answer to a burst (`say_settled`: the parts of an album come as one update each) is held back
a moment on its outbox row, and a later part's answer replaces the row's text while it is still
unsent: the customer reads one answer, saying how the burst ended ("3 files", not "1"). Rows
queued after it wait behind it (the chat's order holds). A part that comes after the answer went
out gets an answer of its own, again with the whole count.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    SendMessage,
    TelegramMethod,
)
from aiogram.types import (
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
)
from sqlalchemy import Table, insert, update
from sqlalchemy.orm import Session

from bot.i18n import Texts
from tickets.customers import chat_channel, is_web_chat
from tickets.messages import payloads
from tickets.messages.payloads import BOT_ANSWER, BotAnswer
from tickets.models import OutboxMessage

log = logging.getLogger(__name__)

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove

# A flood wait longer than this is not worth holding a button's answer for: the answer is
# dropped (logged); the spinner stops by itself.
MAX_INLINE_RETRY_AFTER = 5

# The outbox row of a chat message: kind "bot_answer", the Bot API method's name and parameters in
# the payload (tickets/messages/payloads.py's BotAnswer; the delivery worker rebuilds the method
# from them, see bot/delivery.py).
REPLY_KIND = BOT_ANSWER
# A text key with this suffix (bot/messages.py) is the web chat's wording of the key without it.
WEB_SUFFIX = "_web"
# On the table and the session's connection: the ORM's bulk-insert path costs more than the
# INSERT (every update writes one).
_OUTBOX = cast(Table, OutboxMessage.__table__)
_QUEUE_REPLY = insert(_OUTBOX)


@dataclass
class Replies:
    """The answers to one update, in order. `language` may change while handling (/language)."""

    texts: Texts
    language: str
    chat_id: int | None
    callback_query_id: str | None = None
    methods: list[TelegramMethod[Any]] = field(default_factory=list)
    _callback_answered: bool = False
    # Held answers (`say_settled`), by the id of their method: (burst key, how long held).
    _settled: dict[int, tuple[str, timedelta]] = field(default_factory=dict)

    def _key(self, key: str) -> str:
        """The text key for this chat: on the web chat, its `_web` wording when it has one
        (the page has no Telegram name, contact button or account to speak of)."""
        if is_web_chat(self.chat_id) and self.texts.has(key + WEB_SUFFIX):
            return key + WEB_SUFFIX
        return key

    def t(self, key: str, **values: Any) -> str:
        """A text in the customer's language (for their channel: `_key`)."""
        return self.texts.get(self.language, self._key(key), **values)

    def plain(self, key: str, **values: Any) -> str:
        """A plain text (no HTML) in the customer's language, for a button's notice."""
        return self.texts.plain(self.language, self._key(key), **values)

    def say(self, key: str, markup: Markup | None = None, **values: Any) -> None:
        """Send the text `key` (filled with `values`) to the chat."""
        self.send_text(self.t(key, **values), markup)

    def say_settled(
        self,
        key: str,
        markup: Markup | None = None,
        *,
        burst: str,
        wait: timedelta,
        **values: Any,
    ) -> None:
        """Like `say`, as the one answer to a burst of updates named `burst` (module doc): held
        `wait` in the outbox, replaced by the next part's answer while still unsent."""
        self.send_settled(self.t(key, **values), markup, burst=burst, wait=wait)

    def send_settled(
        self, text: str, markup: Markup | None = None, *, burst: str, wait: timedelta
    ) -> None:
        """`send_text`, as the one answer to the burst `burst` (see `say_settled`)."""
        self.send_text(text, markup)
        if self.methods and self.chat_id is not None:
            self._settled[id(self.methods[-1])] = (burst, wait)

    def send_text(
        self, text: str, markup: Markup | None = None, *, reply_to: int | None = None
    ) -> None:
        """Send an already filled text (HTML), as a reply to message `reply_to` if given."""
        if self.chat_id is None:
            return
        self.methods.append(
            SendMessage(
                chat_id=self.chat_id,
                text=text,
                parse_mode="HTML",
                reply_markup=markup,
                reply_parameters=(
                    ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                    if reply_to is not None
                    else None
                ),
            )
        )

    def edit_markup(self, message_id: int, markup: InlineKeyboardMarkup | None) -> None:
        """Replace the buttons under one of the bot's messages (quantities, say)."""
        if self.chat_id is None:
            return
        self.methods.append(
            EditMessageReplyMarkup(chat_id=self.chat_id, message_id=message_id, reply_markup=markup)
        )

    def answer_callback(self, text: str | None = None, *, alert: bool = False) -> None:
        """Stop the button's spinner, with an optional short notice (a dialog when `alert`:
        seen only by the one who pressed, which is how a group member gets a private answer)."""
        if self.callback_query_id is None or self._callback_answered:
            return
        self._callback_answered = True
        self.methods.insert(
            0,
            AnswerCallbackQuery(
                callback_query_id=self.callback_query_id, text=text, show_alert=alert or None
            ),
        )

    def discard(self) -> None:
        """Forget everything collected (the handler failed; its answers would be wrong)."""
        self.methods.clear()
        self._settled.clear()
        self._callback_answered = False

    def queue(self, session: Session, now: datetime) -> int:
        """Write the collected chat messages to the outbox, in order, in `session`'s
        transaction (the update's own); once it commits, `committed()` forgets them (until
        then, a failed commit leaves them here for `flush` to send directly). The button's
        answer stays for `flush`. Returns how many rows were written."""
        rows = []
        for method in self.methods:
            if isinstance(method, AnswerCallbackQuery):
                continue
            row = {
                # A web chat's answers go to its page (api/chat.py), Telegram's to Telegram.
                "channel": chat_channel(self.chat_id).value,
                "recipient": str(self.chat_id),
                "ticket_id": None,
                "kind": REPLY_KIND,
                "payload": payloads.dump(
                    BotAnswer(method=method.__api_method__, params=_params(method))
                ),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "dedupe_key": None,
            }
            settled = self._settled.get(id(method))
            if settled is not None:
                burst, wait = settled
                row["next_attempt_at"] = now + wait
                prefix = f"burst:{self.chat_id}:{burst}:"
                if self._replace_held(session, prefix, row):
                    continue
                row["dedupe_key"] = prefix + uuid.uuid4().hex[:16]
            rows.append(row)
        if rows:
            # Inserted in the list's order: ids, hence the sending order, follow it.
            session.connection().execute(_QUEUE_REPLY, rows)
        return len(rows)

    def _replace_held(self, session: Session, prefix: str, row: dict[str, Any]) -> bool:
        """Put `row`'s message in place of the burst's held answer, if one is still unsent and
        unclaimed (a claimed one may be on the wire: `row` then goes as a new answer)."""
        replaced = session.connection().execute(
            update(_OUTBOX)
            .where(
                _OUTBOX.c.channel == row["channel"],
                _OUTBOX.c.recipient == row["recipient"],
                _OUTBOX.c.status == "pending",
                _OUTBOX.c.claimed_by.is_(None),
                _OUTBOX.c.dedupe_key.startswith(prefix, autoescape=True),
            )
            .values(payload=row["payload"], next_attempt_at=row["next_attempt_at"])
        )
        return bool(replaced.rowcount)

    def committed(self) -> None:
        """The transaction that `queue` wrote to has committed: the outbox has the messages
        now, only the button's answer is left to `flush`."""
        self.methods = [m for m in self.methods if isinstance(m, AnswerCallbackQuery)]
        self._settled.clear()

    async def flush(self, bot: Bot) -> int:
        """Send what is left after `queue` (the button's answer; everything, when the
        database could not take the rows), in order; every failure is logged with its
        method, none stops the rest. Returns how many were sent."""
        self.answer_callback()
        sent = 0
        for method in self.methods:
            if await self._send(bot, method):
                sent += 1
        self.methods.clear()
        return sent

    async def _send(self, bot: Bot, method: TelegramMethod[Any]) -> bool:
        for _attempt in range(2):
            try:
                await bot(method)
                return True
            except TelegramRetryAfter as exc:
                if exc.retry_after > MAX_INLINE_RETRY_AFTER:
                    log.warning(
                        "answer dropped: flood wait %ss for %s to chat %s",
                        exc.retry_after,
                        type(method).__name__,
                        self.chat_id,
                    )
                    return False
                await asyncio.sleep(exc.retry_after)
            except TelegramForbiddenError:
                log.info("chat %s blocked the bot; answer not delivered", self.chat_id)
                return False
            except TelegramBadRequest as exc:
                # An old button pressed again, "message is not modified": harmless, but logged.
                log.warning("answer refused by Telegram (%s): %s", type(method).__name__, exc)
                return False
            except (TelegramNetworkError, TelegramAPIError) as exc:
                log.error(
                    "answer not delivered to chat %s (%s): %s",
                    self.chat_id,
                    type(method).__name__,
                    exc,
                )
                return False
        return False


def _params(method: TelegramMethod[Any]) -> dict[str, Any]:
    """A method's parameters as JSON, as few as say it all. Unset options are left out (they
    hold aiogram's `Default` markers, which are no JSON); the keyboard keeps its literal flags
    (`remove_keyboard: true` is its default, and without it the keyboard means nothing)."""
    params = method.model_dump(mode="json", exclude_defaults=True, exclude={"reply_markup"})
    markup = getattr(method, "reply_markup", None)
    if markup is not None:
        params["reply_markup"] = markup.model_dump(mode="json", exclude_none=True)
    return params
