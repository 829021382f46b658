"""The queues: mine, unassigned, my group, breaching soon, overdue, waiting on customer, all;
filters (kind, status, group, assignee, priority, channel, risk, created date), search, paging.
Over 500 lines as one file: the queues, filters, search and paging build one query; each filter
is a few lines of it.

Rows come from the core's filters (`TicketFilters`, keyset-paginated, stable while cases
arrive) narrowed by the panel's own conditions (risk, created date, breaching soon), which the
core's filters do not have yet. What a row shows beyond the ticket (the amount, the nearest SLA
clock) is fetched for the whole page at once, so a page costs the same number of queries
whatever its length.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from api.deps import ContextDep, SessionDep
from api.panel.auth import CurrentPanelAgent
from api.panel.labels import CHANNEL, KIND, PRIORITY, QUEUE, RISK, STATUS
from api.panel.pages import render
from api.panel.workspace import act_or_explain
from tickets.cases.queries import (
    NEAREST_DUE,
    NEWEST_FIRST,
    SORTS,
    TicketFilters,
    filter_conditions,
    list_tickets,
)
from tickets.cases.tags import normalise_tag
from tickets.exceptions import InvalidInput
from tickets.models import (
    Agent,
    CaseStatus,
    Customer,
    Message,
    Order,
    OrderUnit,
    Refund,
    RefundStatus,
    SavedView,
    SlaClock,
    Ticket,
    TicketUnit,
)
from tickets.money import format_amount
from tickets.orders.store import find_order_id, normalise_order_no
from tickets.policy.rules import CUSTOMER_CLOCKS
from tickets.saved_views import clean_query, list_views
from tickets.schemas import EARLIEST, LATEST, ActionRequest, DbId, DbInt, whole_number
from tickets.sla import clocks as sla
from tickets.workflow import WORKING

router = APIRouter()

QUEUES = tuple(QUEUE)
WORKING_STATUSES = sorted(s.value for s in WORKING)
WAITING_STATUSES = [CaseStatus.needs_info.value, CaseStatus.awaiting_return.value]
PAGE_SIZE = 50
# Where an empty queue points, most urgent first.
NEXT_STEPS = ("overdue", "breaching", "unassigned", "group")
# The column headers that sort, and the order a first click asks for (a second reverses it).
SORT_COLUMNS = {
    "kind": "kind",
    "customer": "customer",
    "status": "status",
    "sla": "due",
    "risk": "risk",
    "assignee": "assignee",
    "age": NEWEST_FIRST,
}
# Search answers at most this many customers to choose from; a name matching more is too vague.
CUSTOMER_MATCHES = 20
# Search: this many digits find phones ending in them ("the last four digits")...
PHONE_TAIL = 4
# ... and this many characters find order numbers holding them (fewer match too much).
PARTIAL_ORDER = 3
# Matches nothing: a filter combination that cannot hold (a status outside the queue's).
_NOTHING = "__none__"


def breaching_soon_minutes(request: Request) -> int:
    """ "Breaching soon": a running shop clock due within this many minutes (a setting)."""
    return int(request.app.state.settings.panel_breaching_soon_minutes)


def breaching_condition(now: datetime, minutes: int) -> ColumnElement[bool]:
    """A case with a running shop clock (not the customer's) due in [now, now + minutes)."""
    return exists().where(
        SlaClock.ticket_id == Ticket.id,
        SlaClock.clock.notin_(CUSTOMER_CLOCKS),
        SlaClock.state == sla.RUNNING,
        SlaClock.due_at >= now,
        SlaClock.due_at < now + timedelta(minutes=minutes),
    )


@dataclass(frozen=True)
class Narrowing:
    """The panel's conditions beyond the core's TicketFilters."""

    risk: str | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None
    # Breaching soon: (now, minutes).
    breaching: tuple[datetime, int] | None = None
    extra: tuple[ColumnElement[bool], ...] = field(default=())

    def conditions(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = list(self.extra)
        if self.risk:
            out.append(Ticket.risk_level == self.risk)
        if self.created_from is not None:
            out.append(Ticket.created_at >= self.created_from)
        if self.created_before is not None:
            out.append(Ticket.created_at < self.created_before)
        if self.breaching is not None:
            out.append(breaching_condition(*self.breaching))
        return out


def day_start(value: str, tz: ZoneInfo, *, next_day: bool = False) -> datetime | None:
    """'2026-11-22' as the start of that day (or of the next) in the shop's timezone; None
    when it is not a date."""
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        return None
    if not EARLIEST.year <= day.year < LATEST.year:
        return None  # no case is that old or that new; the day's arithmetic could overflow
    if next_day:
        day += timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=tz)


def list_rows(
    *,
    session: Session,
    filters: TicketFilters,
    narrowing: Narrowing,
    limit: int,
    cursor: str | None = None,
    count_cap: int = 10_000,
    sort: str = NEAREST_DUE,
) -> tuple[list[Ticket], int, str | None]:
    """`tickets.cases.queries.list_tickets` with the panel's extra conditions."""
    return list_tickets(
        session=session,
        filters=replace(filters, extra=(*filters.extra, *narrowing.conditions())),
        limit=limit,
        cursor=cursor,
        count_cap=count_cap,
        sort=sort,
    )


@dataclass(frozen=True)
class RowExtras:
    amount: str | None = None
    currency: str | None = None
    amount_is_refund: bool = False
    # The clock that matters most now: which, when due, and how near (late, soon, ok).
    urgency: sla.Urgency | None = None
    # Where the refund stands (proposed, approved, ...): a proposal is not yet an approval.
    refund_status: str | None = None


def queue_filters(queue: str, agent: Agent, now: datetime) -> TicketFilters:
    """What each queue means, as the core's filters (breaching soon adds a Narrowing)."""
    if queue == "overdue":
        return TicketFilters(status=WORKING_STATUSES, overdue_at=now)
    if queue == "breaching":
        return TicketFilters(status=WORKING_STATUSES)
    if queue == "mine":
        return TicketFilters(assignee=agent.username, status=WORKING_STATUSES)
    if queue == "unassigned":
        return TicketFilters(assignee="none", status=WORKING_STATUSES)
    if queue == "group":
        return TicketFilters(group=agent.group or _NOTHING, status=WORKING_STATUSES)
    if queue == "waiting":
        return TicketFilters(status=WAITING_STATUSES)
    return TicketFilters()


def queue_counts(
    session: Session, agent: Agent, cap: int, now: datetime, soon: int
) -> dict[str, int]:
    """Each queue's size, counted up to `cap` (cap + 1 means "more"), in one query, from the
    same filters its page is listed with (so a queue's count and its rows agree)."""
    columns = []
    for queue in QUEUES:
        narrowing = Narrowing(breaching=(now, soon) if queue == "breaching" else None)
        conditions = filter_conditions(queue_filters(queue, agent, now), session)
        capped = (
            select(Ticket.id).where(*conditions, *narrowing.conditions()).limit(cap + 1).subquery()
        )
        columns.append(select(func.count()).select_from(capped).scalar_subquery().label(queue))
    row = session.execute(select(*columns)).one()
    return {queue: int(getattr(row, queue)) for queue in QUEUES}


def _as_view(query: str) -> str:
    """The page's query as a view keeps it; "" (nothing to save) when it holds what a view may
    not (a value a hand-edited URL made too long)."""
    try:
        return clean_query(query)
    except InvalidInput:
        return ""


def view_choices(query: str) -> tuple[Choices, str, int | None]:
    """A saved view's query string read back as the queue page reads its URL: (the choices,
    the search text, the customer picked)."""
    values: dict[str, list[str]] = {}
    for key, value in parse_qsl(query):
        values.setdefault(key, []).append(value)

    def one(key: str) -> str:
        return values.get(key, [""])[0]

    queue = one("queue") if one("queue") in QUEUES else "all"
    customer = whole_number(one("customer")) if one("customer") else None
    chosen = Choices(
        queue=queue,
        kind=values.get("kind", []),
        status=values.get("status", []),
        group=one("group"),
        assignee=one("assignee"),
        priority=one("priority"),
        channel=one("channel"),
        risk=one("risk"),
        created_from=one("created_from")[:10],
        created_to=one("created_to")[:10],
        tag=one("tag"),
    )
    return chosen, one("q")[:100], customer


def view_counts(
    session: Session,
    agent: Agent,
    views: list[SavedView],
    cap: int,
    now: datetime,
    soon: int,
    tz: ZoneInfo,
    groups: Any,
) -> dict[int, int]:
    """Each of the agent's saved views counted as its page would list it, up to `cap`, in one
    query (each view a capped subquery, as the queues' counts)."""
    columns = []
    for view in views:
        chosen, q, customer = view_choices(view.query)
        open_number, searched, customers = search(session, q)
        if customer is not None:
            searched = {"customer_id": customer}
        elif open_number is not None:
            searched = {"extra": (Ticket.number == open_number,)}
        elif len(customers) > 1:
            searched = {"extra": (Ticket.id.is_(None),)}  # "pick one": the page lists nothing
        filters, narrowing = chosen.filters(agent, now, soon, tz, groups, searched)
        conditions = [*filter_conditions(filters, session), *narrowing.conditions()]
        capped = select(Ticket.id).where(*conditions).limit(cap + 1).subquery()
        columns.append(select(func.count()).select_from(capped).scalar_subquery())
    if not columns:
        return {}
    row = session.execute(select(*columns)).one()
    return {view.id: int(n) for view, n in zip(views, row, strict=True)}


def default_order(queue: str) -> str:
    """The work queues list the nearest due first (missed clocks first of all). "All cases"
    lists newest first: most of it is closed, with no clock to be near, and ordering a whole
    ledger by a per-case due time would read every case (a million in the benchmark) per page
    where newest first seeks an index; its "Nearest due" is one click away."""
    return NEWEST_FIRST if queue == "all" else NEAREST_DUE


def merge(base: TicketFilters, **chosen: Any) -> TicketFilters:
    """The queue's filters narrowed by the agent's choices; a choice outside the queue (a
    status the queue does not hold, another group) gives an empty page, not a wider one."""
    out = base
    status_choice: list[str] = chosen.pop("status", [])
    if status_choice:
        keep = [s for s in status_choice if not base.status or s in base.status]
        out = replace(out, status=keep or [_NOTHING])
    for key in ("group", "assignee"):
        value = chosen.pop(key, None)
        if value:
            current = getattr(base, key)
            narrowed: dict[str, Any] = {key: value if current in (None, value) else _NOTHING}
            out = replace(out, **narrowed)
    extra = chosen.pop("extra", ())
    if extra:
        out = replace(out, extra=(*out.extra, *extra))
    rest: dict[str, Any] = {k: v for k, v in chosen.items() if v}
    return replace(out, **rest)


def row_extras(
    session: Session, tickets: list[Ticket], now: datetime, soon: int
) -> dict[int, RowExtras]:
    """Amount and most urgent SLA clock for a page of tickets: three queries for the whole
    page."""
    ids = [t.id for t in tickets]
    if not ids:
        return {}
    currency = {t.id: (t.order.currency if t.order else None) for t in tickets}
    refunds: dict[int, tuple[int, str, str]] = {}
    for ticket_id, amount, cur, state in session.execute(
        select(Refund.ticket_id, Refund.amount, Refund.currency, Refund.status)
        .where(Refund.ticket_id.in_(ids), Refund.status != RefundStatus.cancelled.value)
        .order_by(Refund.id)
    ):
        refunds[ticket_id] = (amount, cur, state)  # the latest wins
    claimed: dict[int, int] = {
        ticket_id: total
        for ticket_id, total in session.execute(
            select(TicketUnit.ticket_id, func.sum(OrderUnit.net))
            .join(OrderUnit, OrderUnit.id == TicketUnit.unit_id)
            .where(TicketUnit.ticket_id.in_(ids))
            .group_by(TicketUnit.ticket_id)
        )
    }
    urgent = sla.urgencies(session, ids, now, timedelta(minutes=soon))
    out: dict[int, RowExtras] = {}
    for t in tickets:
        if t.id in refunds:
            minor, cur, state = refunds[t.id]
            extras = RowExtras(format_amount(minor, cur), cur, True, refund_status=state)
        elif claimed.get(t.id) is not None and currency[t.id]:
            cur = currency[t.id] or "CNY"
            extras = RowExtras(format_amount(int(claimed[t.id]), cur), cur)
        else:
            extras = RowExtras()
        out[t.id] = replace(extras, urgency=urgent.get(t.id))
    return out


def search(session: Session, text: str) -> tuple[str | None, dict[str, Any], list[Customer]]:
    """What a search box entry means, in any case: a case number (open it); an order number,
    whole (as `get_order` matches it) or in part (without its prefix: `0046`); the last digits
    of a phone; part of a name; or else words from the description or the conversation.
    Returns (case to open, filters to apply, customers to choose from)."""
    text = text.strip()
    if not text:
        return None, {}, []
    number = session.scalar(select(Ticket.number).where(Ticket.number == text.upper()))
    if number is not None:
        return number, {}, []
    if find_order_id(session=session, order_no=text) is not None:
        return None, {"order_no": text}, []
    # Part of an order number, or a phone's last digits: every case they find, in one list.
    key = normalise_order_no(text)
    partial = [
        Ticket.order_id.in_(
            select(Order.id).where(
                func.upper(func.replace(Order.order_no, " ", "")).contains(key, autoescape=True)
            )
        )
    ]
    digits = "".join(text.split()).removeprefix("+")
    if digits.isdigit() and len(digits) >= PHONE_TAIL:
        partial.append(
            Ticket.customer_id.in_(select(Customer.id).where(Customer.phone.endswith(digits)))
        )
    if len(key) >= PARTIAL_ORDER:
        anything = or_(*partial)
        if session.scalar(select(Ticket.id).where(anything).limit(1)) is not None:
            return None, {"extra": (anything,)}, []
    found: list[Customer] = list(
        session.scalars(
            select(Customer)
            .where(Customer.name.icontains(text, autoescape=True))
            .order_by(Customer.id.desc())
            .limit(CUSTOMER_MATCHES)
        )
    )
    if len(found) == 1:
        return None, {"customer_id": found[0].id}, found
    if found:
        return None, {}, found
    # Nobody by that name or phone: the words a customer or an agent wrote (the description,
    # the conversation), e.g. a tracking number pasted in a message.
    said = Ticket.description.icontains(text, autoescape=True) | Ticket.id.in_(
        select(Message.ticket_id).where(Message.text.icontains(text, autoescape=True))
    )
    return None, {"extra": (said,)}, []


def _choices(values: list[str] | None, allowed: dict[str, str]) -> list[str]:
    return [v for v in values or [] if v in allowed]


# A tag no case can carry (tags hold no spaces): a malformed tag filter lists nothing.
_NO_TAG = " "


@dataclass(frozen=True)
class Choices:
    """What an agent chose on a queue page (the URL's filters), read into the core's filters
    and the panel's narrowing: one home for it, for the page and for a saved view's count."""

    queue: str
    kind: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    group: str = ""
    assignee: str = ""
    priority: str = ""
    channel: str = ""
    risk: str = ""
    created_from: str = ""
    created_to: str = ""
    tag: str = ""

    @property
    def tag_code(self) -> str | None:
        """The tag as stored, `_NO_TAG` when it cannot be one, None when none was chosen."""
        if not self.tag.strip():
            return None
        try:
            return normalise_tag(self.tag, "tag")
        except InvalidInput:
            return _NO_TAG

    @property
    def tag_shown(self) -> str:
        code = self.tag_code
        return self.tag.strip() if code == _NO_TAG else code or ""

    def filters(
        self,
        agent: Agent,
        now: datetime,
        soon: int,
        tz: ZoneInfo,
        groups: Any,
        searched: dict[str, Any],
    ) -> tuple[TicketFilters, Narrowing]:
        filters = merge(
            queue_filters(self.queue, agent, now),
            status=_choices(self.status, STATUS),
            kind=_choices(self.kind, KIND),
            group=self.group if self.group in groups else None,
            assignee=self.assignee or None,
            priority=self.priority if self.priority in PRIORITY else None,
            channel=self.channel if self.channel in CHANNEL else None,
            tag=self.tag_code,
            **searched,
        )
        narrowing = Narrowing(
            risk=self.risk if self.risk in RISK else None,
            created_from=day_start(self.created_from, tz) if self.created_from else None,
            created_before=day_start(self.created_to, tz, next_day=True)
            if self.created_to
            else None,
            breaching=(now, soon) if self.queue == "breaching" else None,
        )
        return filters, narrowing


@router.get("")
@router.get("/queue")
def queue_page(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    queue: str = "",
    kind: Annotated[list[str] | None, Query()] = None,
    status_: Annotated[list[str] | None, Query(alias="status")] = None,
    group: str = "",
    assignee: str = "",
    priority: str = "",
    channel: str = "",
    risk: str = "",
    created_from: Annotated[str, Query(max_length=10)] = "",
    created_to: Annotated[str, Query(max_length=10)] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    customer: DbId | None = None,
    tag: Annotated[str, Query(max_length=100)] = "",
    cursor: str | None = None,
    sort: Annotated[str, Query(max_length=20)] = "",
    partial: bool = False,
) -> Response:
    """A queue page: counts per queue, filters, search, one page of rows (nearest due first
    unless a column header chose another order)."""
    if queue not in QUEUES:
        # A search from the top bar looks everywhere; otherwise agents start on their own work.
        queue = "all" if q or customer else ("mine" if agent.role == "agent" else "unassigned")
    default_sort = default_order(queue)
    if not sort:
        sort = default_sort
    elif sort not in SORTS:
        sort, cursor = default_sort, None  # a hand-edited order: the default, from the top
    open_number, searched, customers = search(session, q)
    if open_number is not None:
        return RedirectResponse(f"/panel/cases/{open_number}", status.HTTP_303_SEE_OTHER)
    if customer is not None:
        searched = {"customer_id": customer}
        customers = []
    state = request.app.state
    policy = state.policy
    now: datetime = state.clock()
    soon = breaching_soon_minutes(request)
    tz: ZoneInfo = state.settings.tz
    chosen = Choices(
        queue=queue,
        kind=_choices(kind, KIND),
        status=_choices(status_, STATUS),
        group=group,
        assignee=assignee,
        priority=priority,
        channel=channel,
        risk=risk,
        created_from=created_from,
        created_to=created_to,
        tag=tag,
    )
    filters, narrowing = chosen.filters(agent, now, soon, tz, policy.groups, searched)
    start, stop = narrowing.created_from, narrowing.created_before
    cap = state.settings.count_cap
    if customers and len(customers) > 1 and "customer_id" not in searched:
        rows: list[Ticket] = []
        count, next_cursor = 0, None
    else:
        rows, count, next_cursor = list_rows(
            session=session,
            filters=filters,
            narrowing=narrowing,
            limit=PAGE_SIZE,
            cursor=cursor,
            count_cap=cap,
            sort=sort,
        )
    params = {
        "queue": queue,
        "kind": _choices(kind, KIND),
        "status": _choices(status_, STATUS),
        "group": group,
        "assignee": assignee,
        "priority": priority,
        "channel": channel,
        "risk": risk if risk in RISK else "",
        "created_from": created_from if start else "",
        "created_to": created_to if stop else "",
        "q": q,
        "customer": customer or "",
        "tag": chosen.tag_shown,
    }
    filtered = any(v for k, v in params.items() if k != "queue")
    params["sort"] = sort if sort != default_sort else ""
    query = urlencode({k: v for k, v in params.items() if v}, doseq=True)
    # The column headers' links: the same page in another order (from its first page).
    unsorted = urlencode({k: v for k, v in params.items() if v and k != "sort"}, doseq=True)
    agents = session.scalars(
        select(Agent).where(Agent.active.is_(True)).order_by(Agent.username).limit(200)
    ).all()
    counts = queue_counts(session, agent, cap, now, soon)
    views = list_views(session, agent)
    counted_views = view_counts(session, agent, views, cap, now, soon, tz, policy.groups)
    next_steps = []
    if not rows and not filtered and not cursor:
        # An empty queue on its own (an agent's empty "Mine" on Monday morning) points at the
        # queues where work waits, most urgent first, with their counts.
        next_steps = [
            (name, counts[name])
            for name in NEXT_STEPS
            if name != queue and counts[name] and (name != "group" or agent.group)
        ]
    context = {
        # One `now` for the counts, the rows and how late each is (one read snapshot too).
        "now": now,
        "queue": queue,
        "queues": QUEUES,
        "counts": counts,
        "views": views,
        "view_counts": counted_views,
        # The page's own filters, as a view would keep them (the "save this view" form).
        "view_query": _as_view(query),
        "next_steps": next_steps,
        "cap": cap,
        "soon": soon,
        "rows": rows,
        "extras": row_extras(session, rows, now, soon),
        "sort": sort,
        "sorts": SORT_COLUMNS,
        "nearest_due": NEAREST_DUE,
        "newest_first": NEWEST_FIRST,
        "unsorted": unsorted,
        "filtered": filtered,
        "count": count,
        "next_cursor": next_cursor,
        "cursor": cursor,
        "query": query,
        "params": params,
        "customers": customers if len(customers) > 1 else [],
        "groups": policy.groups,
        "agents": agents,
        "statuses": STATUS,
        "kinds": KIND,
        "priorities": PRIORITY,
        "channels": CHANNEL,
        "risks": RISK,
        "back": f"/panel?{query}",
    }
    # The 15-second poll takes the rows, the match count and the queues' counts together.
    return render(request, "queue_poll.html" if partial else "queue.html", context)


@router.post("/cases/{number}/take")
def take(
    number: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    version: Annotated[DbInt | None, Form()] = None,
    back: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Assign the case to me (from the queue or the workspace)."""
    body = ActionRequest(action="assign", assignee=agent.username, version=version)
    return act_or_explain(request, session, agent, ctx, number, body, back=back)
