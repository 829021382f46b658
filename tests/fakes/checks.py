"""What the database says the bot decided, against what the fake Bot API received: every
answer (an outbox row) delivered exactly once, every customer update stored once.

An outbox row and the call it became are matched by chat, kind of call (a new message or an
edit) and content (the text, or the edited message's id): per such key, the rows marked sent
must equal the calls the fake applied. More calls than rows is a message the customer got twice
(doubled); fewer is one they never got (lost); a call for a row still pending was delivered but
not recorded (unrecorded: the row goes again when its lease ends, a duplicate to come).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.exc import OperationalError

from tests.fakes.bot_api import EDIT_METHODS, SEND_METHODS, FakeBotApi

Key = tuple[int, str, str]


def _engine(database_url: str) -> Engine:
    """A plain engine for reading: on SQLite not the product's (whose every transaction takes
    the write lock), so counting never waits behind a server that holds it."""
    if database_url.startswith("sqlite"):
        return create_engine(database_url, connect_args={"timeout": 5})
    return create_engine(database_url)


@dataclass
class Delivery:
    rows: int = 0
    sent: int = 0
    pending: int = 0
    failed: int = 0
    calls: int = 0
    lost: list[tuple[Key, int, int]] = field(default_factory=list)  # key, rows, calls
    doubled: list[tuple[Key, int, int]] = field(default_factory=list)
    # Delivered, but the row is still pending: it will be sent again when its lease ends.
    unrecorded: list[tuple[Key, int, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "sent": self.sent,
            "pending": self.pending,
            "failed": self.failed,
            "calls": self.calls,
            "lost": len(self.lost),
            "doubled": len(self.doubled),
            "unrecorded": len(self.unrecorded),
        }


def _row_key(row: Any, chat: int) -> Key:
    p = row.payload or {}
    method = str(p.get("method") or "")
    params = p.get("params") or {}
    if method in EDIT_METHODS or row.kind == "card_taken":
        return chat, "edit", str(params.get("message_id", row.id))
    return chat, "send", str(params.get("text") or p.get("text") or "")


def _call_key(method: str, chat: int, params: dict[str, Any], text: str | None) -> Key:
    if method in EDIT_METHODS:
        return chat, "edit", str(params.get("message_id"))
    return chat, "send", str(text or "")


def _chat_of(row: Any, agent_chat: int | None) -> int | None:
    """The Telegram chat a row goes to: the customer's, or the agents' group (None: none is
    set, and the row is not for Telegram)."""
    if row.channel == "agents":
        return agent_chat
    return int(row.recipient)


def delivery(
    database_url: str,
    fake: FakeBotApi,
    *,
    chats: set[int] | None = None,
    agent_chat: int | None = None,
    after_id: int = 0,
) -> Delivery:
    """Outbox rows of the telegram channel, and of the agents' one when their group is set,
    (to `chats`, when given; newer than `after_id`, the rows before the server first started,
    such as the demo's history) against the fake's applied sends and edits to those chats."""
    from sqlalchemy.orm import Session

    from tickets.models import OutboxMessage

    engine = _engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.channel.in_(("telegram", "agents")), OutboxMessage.id > after_id
                )
            ).all()
    finally:
        engine.dispose()
    addressed = [(r, _chat_of(r, agent_chat)) for r in rows]
    mine = [
        (r, chat) for r, chat in addressed if chat is not None and (chats is None or chat in chats)
    ]
    report = Delivery(rows=len(mine))
    expected: Counter[Key] = Counter()
    waiting: Counter[Key] = Counter()
    for row, chat in mine:
        if row.status == "pending":
            waiting[_row_key(row, chat)] += 1
        if row.status == "sent":
            report.sent += 1
            expected[_row_key(row, chat)] += 1
        elif row.status == "failed":
            report.failed += 1
            report.failures.append(f"outbox {row.id} to {row.recipient}: {row.last_error}")
        else:
            report.pending += 1
    got: Counter[Key] = Counter()
    for call in fake.applied(SEND_METHODS | EDIT_METHODS):
        if call.chat_id is None or (chats is not None and call.chat_id not in chats):
            continue
        report.calls += 1
        got[_call_key(call.method, call.chat_id, call.params, call.text)] += 1
    for key in expected.keys() | got.keys():
        if got[key] > expected[key] + waiting[key]:
            report.doubled.append((key, expected[key], got[key]))
        elif got[key] > expected[key]:
            report.unrecorded.append((key, expected[key], got[key]))
        elif got[key] < expected[key]:
            report.lost.append((key, expected[key], got[key]))
    return report


def pending_outbox(database_url: str, channels: tuple[str, ...] = ("telegram",)) -> int:
    """Rows still waiting to be sent on these channels (-1: the database did not answer)."""
    from tickets.models import OutboxMessage

    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(
                        OutboxMessage.status == "pending",
                        OutboxMessage.channel.in_(channels),
                    )
                )
                or 0
            )
    except OperationalError:
        return -1
    finally:
        engine.dispose()


def count(database_url: str, sql: str) -> int:
    """One number from the database (the benchmarks' counts)."""
    from sqlalchemy import text

    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text(sql)) or 0)
    finally:
        engine.dispose()
