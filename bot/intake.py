"""The polled updates' store (table `polled_updates`): what polling fetched and has not
handled yet, kept so that Telegram can be told at once that the batch arrived (bot/polling.py).

Every method is one short transaction and touches the database: call them off the event loop
(`asyncio.to_thread`; tickets/db.py's guard refuses them on it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import cast

from aiogram import Bot
from aiogram.types import Update
from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from tickets.db import PerDialect
from tickets.models import PolledUpdate, utcnow

_TABLE = cast(Table, PolledUpdate.__table__)
# A batch fetched again (a poller killed after storing it, before Telegram was told) is
# stored once: the rows already there stay as they are.
_INSERTS = PerDialect(
    lambda insert: insert(_TABLE).on_conflict_do_nothing(
        index_elements=[_TABLE.c.bot, _TABLE.c.update_id]
    )
)


class IntakeStore:
    """One bot's stored, unhandled updates."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        bot: Bot,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.bot = bot
        self.key = str(bot.id)
        self.clock = clock

    def store(self, updates: Sequence[Update]) -> None:
        """Keep `updates` (a fetched batch), all in one transaction."""
        if not updates:
            return
        at = self.clock()
        rows = [
            {
                "bot": self.key,
                "update_id": u.update_id,
                # As Telegram sent it: only the fields it set (aiogram's defaults left out).
                "payload": u.model_dump_json(exclude_unset=True),
                "received_at": at,
            }
            for u in updates
        ]
        with self.sessions() as session:
            conn = session.connection()
            stmt = _INSERTS(conn)
            conn.execute(stmt, rows)
            session.commit()

    def pending(self, skip: Iterable[int] = ()) -> list[Update]:
        """The stored updates, oldest first, but those in `skip` (already known to the caller)."""
        known = set(skip)
        with self.sessions() as session:
            rows = session.execute(
                select(PolledUpdate.update_id, PolledUpdate.payload)
                .where(PolledUpdate.bot == self.key)
                .order_by(PolledUpdate.update_id)
            ).all()
        return [
            Update.model_validate_json(payload, context={"bot": self.bot})
            for update_id, payload in rows
            if update_id not in known
        ]

    def forget(self, update_ids: Sequence[int]) -> None:
        """Drop the handled `update_ids` (one transaction)."""
        if not update_ids:
            return
        with self.sessions() as session:
            session.execute(
                delete(PolledUpdate).where(
                    PolledUpdate.bot == self.key, PolledUpdate.update_id.in_(list(update_ids))
                )
            )
            session.commit()

    def count(self) -> int:
        """How many updates are stored (all of this bot's)."""
        with self.sessions() as session:
            found = session.scalar(
                select(func.count(PolledUpdate.id)).where(PolledUpdate.bot == self.key)
            )
            return int(found or 0)
