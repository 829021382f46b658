"""Failed guesses, counted where every process sees them (the `throttles` table).

A secret that can be guessed (a panel password, the last four digits of an order's phone) is
protected by counting failures per scope and key in a window that starts at the first failure
and lasts `window`: one atomic upsert per failure, so concurrent guesses from several processes
all count. The callers decide what a count means (tickets/logins.py, tickets/ownership.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

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
_UPSERT = {"postgresql": _upsert(postgresql.insert), "sqlite": _upsert(sqlite.insert)}
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
    stmt = _UPSERT["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    params = {"scope": scope, "key": key, "now": now, "since": now - window}
    failures = int(conn.execute(stmt, params).scalar_one())
    if failures == 1:
        # A new window: a good moment to drop rows nobody has failed on for days, so guessing
        # at random names does not grow the table without end.
        conn.execute(delete(Throttle).where(Throttle.last_failed_at < now - KEEP))
    return failures


def clear(session: Session, *, scope: str, key: str) -> None:
    """Forget the failures of this key (after a success)."""
    session.execute(delete(Throttle).where(Throttle.scope == scope, Throttle.key == key))
