"""Reading many cases: the filters of the queue and the API, keyset cursors, and the
listing itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, bindparam, case, func, literal, select, tuple_
from sqlalchemy.orm import (
    QueryableAttribute,
    Session,
    aliased,
    defer,
    joinedload,
    selectinload,
)

from tickets.cases.tags import tag_condition
from tickets.exceptions import InvalidInput
from tickets.models import (
    Agent,
    CaseKind,
    CaseStatus,
    Customer,
    Order,
    Priority,
    Ticket,
    TicketTag,
)
from tickets.orders.store import find_order_id
from tickets.schemas import INT32_MAX
from tickets.sla import clocks as sla

# ---------------------------------------------------------------- the queue


@dataclass(frozen=True)
class TicketFilters:
    status: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    group: str | None = None
    assignee: str | None = None  # a username, or "none" for unassigned
    order_no: str | None = None
    customer_id: int | None = None
    priority: str | None = None
    channel: str | None = None
    # Only cases carrying this tag (normalised: tickets.cases.tags.normalise_tag).
    tag: str | None = None
    # Only cases with a shop clock past due at this time.
    overdue_at: datetime | None = None
    # Further conditions of a caller's own (the panel's narrowing: risk, dates, breaching).
    extra: tuple[ColumnElement[bool], ...] = ()


def _rank(column: QueryableAttribute[str], order: Sequence[str]) -> ColumnElement[int]:
    """A code's place in `order` (unknown codes last), to sort by meaning, not by spelling."""
    return case({code: i for i, code in enumerate(order)}, value=column, else_=len(order))


def _name_of(column: Any, key: Any, owner: Any) -> ColumnElement[str]:
    return func.coalesce(select(column).where(key == owner).correlate(Ticket).scalar_subquery(), "")


def _aware(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError("naive")
    return when


# The orders a queue can be read in (the panel's column headers, the API's `sort`): what each
# orders by, never NULL so a keyset cursor can compare it, and how a cursor's key is read back.
# Ascending is the natural first click: nearest due, oldest, most urgent, highest risk, the
# lifecycle's order, A to Z; a "-" in front reverses it.
_Column = ColumnElement[Any] | QueryableAttribute[Any]
_SORT_KEYS: dict[str, tuple[Callable[[], _Column], Callable[[str], Any]]] = {
    "due": (sla.nearest_due, _aware),
    "created": (lambda: Ticket.created_at, _aware),
    "priority": (lambda: _rank(Ticket.priority, [p.value for p in reversed(Priority)]), int),
    "risk": (lambda: _rank(Ticket.risk_level, ["high", "medium", "low"]), int),
    "status": (lambda: _rank(Ticket.status, [s.value for s in CaseStatus]), int),
    "kind": (lambda: _rank(Ticket.kind, [k.value for k in CaseKind]), int),
    "customer": (lambda: _name_of(Customer.name, Customer.id, Ticket.customer_id), str),
    "assignee": (lambda: _name_of(Agent.username, Agent.id, Ticket.assignee_id), str),
}
SORTS: tuple[str, ...] = tuple(name for key in _SORT_KEYS for name in (key, f"-{key}"))
NEWEST_FIRST = "-created"
NEAREST_DUE = "due"


def check_sort(sort: str) -> str:
    """`sort` when it is one of SORTS, else InvalidInput naming the choices."""
    if sort not in SORTS:
        raise InvalidInput(
            f"unknown sort {sort!r}; use one of: {', '.join(SORTS)}",
            [{"loc": "sort", "msg": "unknown sort"}],
        )
    return sort


def encode_cursor(key: Any, ticket_id: int, sort: str = NEWEST_FIRST) -> str:
    """Where the next page starts. Newest first keeps its first format (cursors handed out
    before sorting existed still work); other orders carry their name and key."""
    if sort == NEWEST_FIRST:
        raw = f"{key.isoformat()}|{ticket_id}".encode()
    else:
        raw = json.dumps([sort, key, ticket_id], default=_iso).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def decode_cursor(cursor: str, sort: str = NEWEST_FIRST) -> tuple[Any, int]:
    """(key, case id) of a cursor made for `sort`; InvalidInput for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded).decode()
        if sort == NEWEST_FIRST:
            created, _, ident = text.partition("|")
            key: Any = _aware(created)
            number = int(ident)
        else:
            made_for, raw_key, number = json.loads(text)
            if made_for != sort or not isinstance(number, int) or isinstance(number, bool):
                raise ValueError
            key = _SORT_KEYS[sort.lstrip("-")][1](str(raw_key))
        # A case id is an INTEGER: a larger one is no cursor of ours (and would overflow it).
        if not 1 <= number <= INT32_MAX:
            raise ValueError
        return key, number
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput(
            "bad cursor: pass next_cursor from the previous page as it is, with the same sort",
            [{"loc": "cursor", "msg": "not a cursor from this API"}],
        ) from exc


def filter_conditions(f: TicketFilters, session: Session) -> list[ColumnElement[bool]]:
    """The filters as SQL conditions on Ticket: one home for what a queue holds, whether its
    page is listed or only counted."""
    out: list[ColumnElement[bool]] = []
    if f.status:
        out.append(Ticket.status.in_(f.status))
    if f.kind:
        out.append(Ticket.kind.in_(f.kind))
    if f.group:
        out.append(Ticket.group == f.group)
    if f.priority:
        out.append(Ticket.priority == f.priority)
    if f.channel:
        out.append(Ticket.channel == f.channel)
    if f.tag:
        out.append(tag_condition(f.tag))
    if f.assignee == "none":
        out.append(Ticket.assignee_id.is_(None))
    elif f.assignee:
        # A subquery, not a lookup first: no statement of its own (an unknown name: nothing).
        agent_id = select(Agent.id).where(Agent.username == f.assignee).scalar_subquery()
        out.append(Ticket.assignee_id == agent_id)
    if f.order_no:
        # The number as people type it (any case, spaces): the order get_order would find.
        order_id = find_order_id(session=session, order_no=f.order_no)
        out.append(Ticket.order_id == (order_id if order_id is not None else -1))
    if f.customer_id is not None:
        out.append(Ticket.customer_id == f.customer_id)
    if f.overdue_at is not None:
        out.append(sla.overdue_condition(f.overdue_at))
    out.extend(f.extra)
    return out


def _page(
    session: Session,
    query_of: Callable[[ColumnElement[Any]], Select[Any]],
    id_of: Callable[[Row[Any]], int],
    *,
    filters: TicketFilters,
    limit: int,
    cursor: str | None,
    count_cap: int,
    sort: str,
) -> tuple[Sequence[Row[Any]], int, str | None]:
    """A page of rows of `query_of(sort key)` in the order `sort` names, keyset-paginated,
    the count of matching cases (at most `count_cap` + 1) and the next page's cursor. The
    one home of the queue's filtering, order and cursors, whatever a row is made of."""
    check_sort(sort)
    conditions = filter_conditions(filters, session)
    descending = sort.startswith("-")
    key = _SORT_KEYS[sort.lstrip("-")][0]().label("sort_key")
    # Counted up to a cap, so a queue over a million cases costs what a full page costs: an
    # agent needs "10 000+" there, not the exact figure (the caller shows count_capped).
    capped = select(Ticket.id).where(*conditions).limit(count_cap + 1).subquery()
    count_of = select(func.count()).select_from(capped)
    # The count rides along with the page, a column of its own (a subquery evaluated once):
    # one round trip and one statement fewer per request. Uncorrelated on purpose.
    matching = count_of.correlate(None).scalar_subquery().label("matching")
    query = query_of(key).add_columns(matching).where(*conditions)
    if cursor:
        after, ident = decode_cursor(cursor, sort)
        # A row-value comparison: the index seeks straight to the page (no growing filter).
        here = tuple_(key.element, Ticket.id)
        there = tuple_(literal(after, key.type), literal(ident, Ticket.id.type))
        query = query.where(here < there if descending else here > there)
    ordering = (key.desc(), Ticket.id.desc()) if descending else (key.asc(), Ticket.id.asc())
    found = session.execute(query.order_by(*ordering).limit(limit + 1)).all()
    # An empty page (an empty queue, or a cursor past its end) has no row to carry it.
    count = found[0].matching if found else session.scalar(count_of) or 0
    page = found[:limit]
    next_cursor = None
    if len(found) > limit and page:
        next_cursor = encode_cursor(found[limit - 1].sort_key, id_of(page[-1]), sort)
    return page, count, next_cursor


def list_tickets(
    *,
    session: Session,
    filters: TicketFilters,
    limit: int,
    cursor: str | None = None,
    count_cap: int = 10_000,
    sort: str = NEWEST_FIRST,
) -> tuple[list[Ticket], int, str | None]:
    """A page of the queue in the order `sort` names (one of SORTS; newest first unless told),
    keyset-paginated (stable while cases arrive), with the count of matching cases (at most
    `count_cap` + 1: more means "over the cap") and the cursor of the next page."""

    def query_of(key: ColumnElement[Any]) -> Select[Any]:
        return select(Ticket, key).options(
            # A queue row names the customer, the order and the assignee: joined in the same
            # statement, only the columns the rows show (full rows, with the order's JSON and
            # every date converted, were half of the queue's time).
            joinedload(Ticket.customer, innerjoin=True).load_only(Customer.name),
            joinedload(Ticket.order).load_only(Order.order_no, Order.currency),
            joinedload(Ticket.assignee).load_only(Agent.username, Agent.display_name),
            # A row shows its tags: one query for the whole page.
            selectinload(Ticket.tags),
            defer(Ticket.description),
            defer(Ticket.risk_signals),
            defer(Ticket.pickup),
        )

    found, count, next_cursor = _page(
        session,
        query_of,
        lambda row: row[0].id,
        filters=filters,
        limit=limit,
        cursor=cursor,
        count_cap=count_cap,
        sort=sort,
    )
    return [row[0] for row in found], count, next_cursor


# The queue row's own columns, and its customer's, order's and assignee's, by name (what
# summary_of_row reads). Aliases: a filter's subquery on agents or customers (`assignee`)
# must not correlate to the row's joins.
_Customer = aliased(Customer, name="row_customer")
_Order = aliased(Order, name="row_order")
_Assignee = aliased(Agent, name="row_assignee")
_SUMMARY = (
    select(
        Ticket.id,
        Ticket.number,
        Ticket.kind,
        Ticket.status,
        Ticket.priority,
        Ticket.group,
        _Assignee.username.label("assignee"),
        _Order.order_no,
        _Customer.name.label("customer_name"),
        Ticket.reason,
        Ticket.channel,
        Ticket.created_at,
        Ticket.updated_at,
        Ticket.risk_level,
    )
    .join(_Customer, _Customer.id == Ticket.customer_id)
    .outerjoin(_Order, _Order.id == Ticket.order_id)
    .outerjoin(_Assignee, _Assignee.id == Ticket.assignee_id)
)

# A page's tags, in a row's order (Ticket.tags'). Built once, as _SUMMARY: every request runs it.
_PAGE_TAGS = (
    select(TicketTag.ticket_id, TicketTag.tag)
    .where(TicketTag.ticket_id.in_(bindparam("ids", expanding=True)))
    .order_by(TicketTag.tag)
)


def list_summaries(
    *,
    session: Session,
    filters: TicketFilters,
    limit: int,
    cursor: str | None = None,
    count_cap: int = 10_000,
    sort: str = NEWEST_FIRST,
) -> tuple[list[tuple[Row[Any], list[str]]], int, str | None]:
    """`list_tickets` as queue rows (tickets.cases.serialize.summary_of_row): the columns a
    row shows and each case's tags, no Ticket objects. Building the page's 200-odd ORM
    objects (cases, customers, orders, agents, tags) was most of the API's queue request."""
    found, count, next_cursor = _page(
        session,
        lambda key: _SUMMARY.add_columns(key),
        lambda row: int(row.id),
        filters=filters,
        limit=limit,
        cursor=cursor,
        count_cap=count_cap,
        sort=sort,
    )
    tags: dict[int, list[str]] = {}
    if found:
        page_tags = session.execute(_PAGE_TAGS, {"ids": [row.id for row in found]})
        for ticket_id, tag in page_tags:
            tags.setdefault(ticket_id, []).append(tag)
    return [(row, tags.get(row.id, [])) for row in found], count, next_cursor
