"""Failed guesses, counted where every process sees them (the `throttles` table).

A secret that can be guessed (a panel password, the last four digits of an order's phone) is
protected by counting failures per scope and key in a window that starts at the first failure
and lasts `window`: one atomic upsert per failure, so concurrent guesses from several processes
all count. A caller that must decide on a count and add to it in one step (a try counted before
its costly check, so that parallel tries cannot all slip in) holds the counts with `lock`
first. The callers decide what a count means (tickets/logins.py, tickets/ownership.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, select, text, update
from sqlalchemy.orm import Session

from tickets.db import PerDialect
from tickets.models import Throttle

# Rows untouched for this long are deleted now and then: no window is longer.
KEEP = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class Count:
    """Failures in the current window, and the time of the last one."""

    failures: int
    last_failed_at: datetime | None


NONE = Count(0, None)


def key_of(*parts: str) -> str:
    """The stored key: a hash of the parts (nothing readable kept, a fixed size)."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _upsert(insert: Any) -> Any:
    table = Throttle.__table__
    fresh = table.c.window_start < bindparam("since")
    stmt = insert(table).values(
        scope=bindparam("scope"),
        key=bindparam("key"),
        failures=1,
        window_start=bindparam("now"),
        last_failed_at=bindparam("now"),
    )
    return stmt.on_conflict_do_update(
        index_elements=["scope", "key"],
        set_={
            "failures": case((fresh, 1), else_=table.c.failures + 1),
            "window_start": case((fresh, bindparam("now")), else_=table.c.window_start),
            "last_failed_at": bindparam("now"),
        },
    ).returning(table.c.failures)


# Built once (a statement costs more to build than to run).
_UPSERT = PerDialect(_upsert)
_READ = select(Throttle.failures, Throttle.window_start, Throttle.last_failed_at).where(
    Throttle.scope == bindparam("scope"), Throttle.key == bindparam("key")
)


def count(session: Session, *, scope: str, key: str, now: datetime, window: timedelta) -> Count:
    """Failures of this key in its current window (none once the window has passed)."""
    row = session.execute(_READ, {"scope": scope, "key": key}).first()
    if row is None or row.window_start < now - window:
        return NONE
    return Count(int(row.failures), row.last_failed_at)


def fail(session: Session, *, scope: str, key: str, now: datetime, window: timedelta) -> int:
    """Count one failure (atomically, whoever else is counting); the failures in the window."""
    conn = session.connection()
    params = {"scope": scope, "key": key, "now": now, "since": now - window}
    failures = int(conn.execute(_UPSERT(conn), params).scalar_one())
    if failures == 1:
        # A new window: a good moment to drop rows nobody has failed on for days, so guessing
        # at random names does not grow the table without end.
        conn.execute(delete(Throttle).where(Throttle.last_failed_at < now - KEEP))
    return failures


def clear(session: Session, *, scope: str, key: str) -> None:
    """Forget the failures of this key (after a success)."""
    session.execute(delete(Throttle).where(Throttle.scope == scope, Throttle.key == key))


# The first of the two 32-bit keys of PostgreSQL's advisory locks taken by `lock` (a space of
# its own: the single 64-bit keys, bot/leader.py's, never meet these).
_LOCK_CLASS = 0x74687274  # "thrt"


def lock(session: Session, keys: list[tuple[str, str]]) -> None:
    """Hold these (scope, key) counts until the transaction ends, so that reading them and
    counting one more is one step however many tries come at once. PostgreSQL: transaction
    advisory locks, taken in one order (no deadlock between two callers). SQLite: a writer's
    transaction holds the database's write lock already (tickets/db.py)."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return
    for scope, key in sorted(keys):
        # A signed 32-bit number from the key's hash (two keys sharing one only wait longer).
        number = int(key_of(scope, key)[:8], 16) - 2**31
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:cls, :key)"), {"cls": _LOCK_CLASS, "key": number}
        )


def take_back(session: Session, *, scope: str, key: str) -> None:
    """Un-count one failure counted ahead (a try counted before its outcome, which succeeded)."""
    session.execute(
        update(Throttle)
        .where(Throttle.scope == scope, Throttle.key == key, Throttle.failures > 0)
        .values(failures=Throttle.failures - 1)
    )
