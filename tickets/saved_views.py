"""Saved views: an agent's own named queues. A view is a queue page's filters (its query
string) kept under a name; this module says what a view may hold (known filter keys, bounded
values), how many an agent keeps (AFTERSALES_LIMIT_SAVED_VIEWS_PER_AGENT), and that an agent
only ever sees, renames or deletes their own.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tickets.exceptions import Conflict, InvalidInput, NotFound
from tickets.limits import Limits
from tickets.models import Agent, SavedView

# The column widths.
NAME_MAX = 60
QUERY_MAX = 1000
# A queue page's filters and order: what a view keeps. `cursor` and `partial` are where a page
# is and how it is fetched, not what it shows: dropped.
VIEW_KEYS = (
    "queue",
    "kind",
    "status",
    "group",
    "assignee",
    "priority",
    "channel",
    "risk",
    "created_from",
    "created_to",
    "q",
    "customer",
    "tag",
    "sort",
)
_PAGE_STATE = frozenset({"cursor", "partial"})
VALUE_MAX = 100
FIELDS_MAX = 40


def _bad(loc: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{loc}: {msg}", [{"loc": loc, "msg": msg}])


def clean_query(query: str) -> str:
    """A queue's query string as a view keeps it: known keys only, in a fixed order, each value
    at most VALUE_MAX characters. InvalidInput naming what is wrong otherwise."""
    query = query.strip().lstrip("?")
    if len(query) > QUERY_MAX:
        raise _bad("query", f"more than {QUERY_MAX} characters")
    try:
        pairs = parse_qsl(query, strict_parsing=bool(query), max_num_fields=FIELDS_MAX)
    except ValueError as exc:
        raise _bad("query", "not a queue's filters") from exc
    kept: list[tuple[str, str]] = []
    for key, value in pairs:
        if key in _PAGE_STATE or not value:
            continue
        if key not in VIEW_KEYS:
            raise _bad("query", f"unknown filter {key[:40]!r}")
        if len(value) > VALUE_MAX or any(ord(c) < 32 for c in value):
            raise _bad(f"query.{key}", f"at most {VALUE_MAX} printable characters")
        kept.append((key, value))
    kept.sort(key=lambda kv: VIEW_KEYS.index(kv[0]))
    return urlencode(kept)


def clean_name(name: str) -> str:
    """A view's name: trimmed, 1 to NAME_MAX printable characters."""
    name = " ".join(name.split())
    if not name:
        raise _bad("name", "give the view a name")
    if len(name) > NAME_MAX or any(ord(c) < 32 for c in name):
        raise _bad("name", f"at most {NAME_MAX} printable characters")
    return name


def list_views(session: Session, agent: Agent) -> list[SavedView]:
    """The agent's views, by name."""
    return list(
        session.scalars(
            select(SavedView)
            .where(SavedView.agent_id == agent.id)
            .order_by(SavedView.name, SavedView.id)
        )
    )


def _named(session: Session, agent: Agent, name: str, but: int | None = None) -> None:
    taken = session.scalar(
        select(SavedView.id).where(
            SavedView.agent_id == agent.id, SavedView.name == name, SavedView.id != (but or 0)
        )
    )
    if taken is not None:
        raise Conflict(f"you already have a view named {name!r}", loc="name")


def save_view(
    *, session: Session, agent: Agent, name: str, query: str, limits: Limits, now: datetime
) -> SavedView:
    """Keep the queue's filters `query` as the agent's view `name`."""
    name, query = clean_name(name), clean_query(query)
    # The agent's row lock: two saves at once cannot pass the limit together.
    session.scalar(select(Agent.id).where(Agent.id == agent.id).with_for_update())
    have = session.scalar(select(func.count()).where(SavedView.agent_id == agent.id)) or 0
    if have >= limits.saved_views_per_agent:
        raise _bad(
            "name",
            f"you keep {have} views, the shop's limit: delete one first",
        )
    _named(session, agent, name)
    view = SavedView(agent_id=agent.id, name=name, query=query, created_at=now)
    session.add(view)
    session.flush()
    return view


def own_view(session: Session, agent: Agent, view_id: int) -> SavedView:
    """The agent's view `view_id`; NotFound for anyone else's (not "forbidden": another agent's
    views are none of theirs)."""
    view = session.get(SavedView, view_id)
    if view is None or view.agent_id != agent.id:
        raise NotFound("no such view")
    return view


def rename_view(*, session: Session, agent: Agent, view_id: int, name: str) -> SavedView:
    view = own_view(session, agent, view_id)
    name = clean_name(name)
    _named(session, agent, name, but=view.id)
    view.name = name
    session.flush()
    return view


def delete_view(*, session: Session, agent: Agent, view_id: int) -> None:
    session.delete(own_view(session, agent, view_id))
    session.flush()
