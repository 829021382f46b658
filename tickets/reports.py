"""The shop's numbers, read from the database: the core's reports, one home for the queries
behind the panel's dashboard (api/panel/dashboard.py draws and translates them) and the SLA
report of the JSON API (api/routes/sla.py).

Each function is one grouped query (cases per day: one streamed query, grouped by the shop's
calendar day here, since SQL date functions differ between SQLite and PostgreSQL and the day
must be the shop's, not UTC's), so a report costs the same queries whatever the volume. Codes
(kinds, reasons, clocks) are returned as codes; the front end names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from tickets.models import (
    Agent,
    CaseStatus,
    Event,
    EventType,
    Order,
    OrderLine,
    Refund,
    RefundStatus,
    SlaClock,
    Ticket,
    TicketItem,
)
from tickets.sla.clocks import BREACHED

# A case is done (for time to resolve) when it first reaches one of these.
DONE = (CaseStatus.resolved.value, CaseStatus.refunded.value, CaseStatus.closed.value)


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (0.5: median) of the values, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(share * 100) * len(ordered) // 100))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class _Tally:
    total: int = 0
    met: int = 0
    breached: int = 0
    open: int = 0


def report(
    *, session: Session, since: datetime, until: datetime, group: str | None = None
) -> dict[str, object]:
    """Per clock, for clocks started in [since, until): how many, the share met, the median and
    90th-percentile minutes to done, and breaches by group and by agent."""
    query = (
        select(SlaClock, Ticket.group, Agent.username)
        .join(Ticket, SlaClock.ticket_id == Ticket.id)
        .outerjoin(Agent, Ticket.assignee_id == Agent.id)
        .where(SlaClock.started_at >= since, SlaClock.started_at < until)
    )
    if group:
        query = query.where(Ticket.group == group)
    tallies: dict[str, _Tally] = {}
    durations: dict[str, list[float]] = {}
    by_group: dict[str, int] = {}
    by_agent: dict[str, int] = {}
    for clock, grp, username in session.execute(query):
        tally = tallies.setdefault(clock.clock, _Tally())
        tally.total += 1
        if clock.met_at is not None:
            minutes = (clock.met_at - clock.started_at).total_seconds() / 60
            durations.setdefault(clock.clock, []).append(minutes)
        if clock.state == BREACHED or (clock.met_at is None and until > clock.due_at):
            tally.breached += 1
            by_group[grp] = by_group.get(grp, 0) + 1
            who = username or "(unassigned)"
            by_agent[who] = by_agent.get(who, 0) + 1
        elif clock.met_at is not None:
            tally.met += 1
        else:
            tally.open += 1
    clocks = []
    for name, t in sorted(tallies.items()):
        done = t.met + t.breached
        median = percentile(durations.get(name, []), 0.5)
        p90 = percentile(durations.get(name, []), 0.9)
        clocks.append(
            {
                "clock": name,
                "total": t.total,
                "met": t.met,
                "breached": t.breached,
                "open": t.open,
                "share_met": round(t.met / done, 4) if done else None,
                "median_minutes": round(median, 1) if median is not None else None,
                "p90_minutes": round(p90, 1) if p90 is not None else None,
            }
        )
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "group": group,
        "clocks": clocks,
        "breaches_by_group": by_group,
        "breaches_by_agent": by_agent,
    }


def breaches(
    *, session: Session, since: datetime, until: datetime, group: str | None = None
) -> list[dict[str, object]]:
    """Every clock breached among those started in [since, until), for the CSV export."""
    query = (
        select(SlaClock, Ticket.number, Ticket.kind, Ticket.group, Agent.username)
        .join(Ticket, SlaClock.ticket_id == Ticket.id)
        .outerjoin(Agent, Ticket.assignee_id == Agent.id)
        .where(
            SlaClock.started_at >= since,
            SlaClock.started_at < until,
            or_(
                SlaClock.state == BREACHED, and_(SlaClock.met_at.is_(None), SlaClock.due_at < until)
            ),
        )
        .order_by(SlaClock.due_at)
    )
    if group:
        query = query.where(Ticket.group == group)
    out = []
    for clock, number, kind, grp, username in session.execute(query):
        end = clock.met_at or until
        out.append(
            {
                "case": number,
                "kind": kind,
                "group": grp,
                "assignee": username or "",
                "clock": clock.clock,
                "started_at": clock.started_at.isoformat(),
                "due_at": clock.due_at.isoformat(),
                "done_at": clock.met_at.isoformat() if clock.met_at else "",
                "minutes_late": round((end - clock.due_at).total_seconds() / 60, 1),
            }
        )
    return out


# ---------------------------------------------------------------- the dashboard's numbers


def _opened(since: datetime, until: datetime) -> tuple[ColumnElement[bool], ...]:
    """Cases opened in [since, until), drafts left out."""
    return (
        Ticket.created_at >= since,
        Ticket.created_at < until,
        Ticket.status != CaseStatus.draft.value,
    )


def cases_per_day(
    session: Session, *, since: datetime, until: datetime, tz: ZoneInfo
) -> dict[tuple[date, str], int]:
    """Cases opened per (shop's calendar day, kind)."""
    per_day: dict[tuple[date, str], int] = {}
    stmt = select(Ticket.created_at, Ticket.kind).where(*_opened(since, until))
    for created, kind in session.execute(stmt.execution_options(yield_per=2000)):
        key = (created.astimezone(tz).date(), kind)
        per_day[key] = per_day.get(key, 0) + 1
    return per_day


def reasons(session: Session, *, since: datetime, until: datetime) -> list[tuple[str, int]]:
    """Cases opened per reason, the most frequent first."""
    counted = session.execute(
        select(Ticket.reason, func.count()).where(*_opened(since, until)).group_by(Ticket.reason)
    ).all()
    return sorted(((r, int(n)) for r, n in counted), key=lambda r: (-r[1], r[0]))


def hours_to_done(session: Session, *, since: datetime, until: datetime) -> dict[str, list[float]]:
    """Per kind, the hours from opening to first reaching a done status, for cases that got
    there in [since, until)."""
    resolved = session.execute(
        select(Ticket.kind, Ticket.created_at, func.min(Event.at))
        .join(Event, Event.ticket_id == Ticket.id)
        .where(
            Event.type == EventType.status_changed,
            Event.data["to"].as_string().in_(DONE),
            Event.at >= since,
            Event.at < until,
        )
        .group_by(Ticket.id, Ticket.kind, Ticket.created_at)
    ).all()
    hours: dict[str, list[float]] = {}
    for kind, created, finished in resolved:
        hours.setdefault(kind, []).append((finished - created).total_seconds() / 3600)
    return hours


@dataclass(frozen=True)
class RouteTotal:
    """Refunds issued through one payment route in one currency (minor units)."""

    method: str
    currency: str
    count: int
    amount: int


def refunds_by_route(session: Session, *, since: datetime, until: datetime) -> list[RouteTotal]:
    """Refunds issued in [since, until), per route and currency, the largest total first."""
    rows = session.execute(
        select(Refund.method, Refund.currency, func.count(), func.sum(Refund.amount))
        .where(
            Refund.status.in_([RefundStatus.issued.value, RefundStatus.confirmed.value]),
            Refund.issued_at >= since,
            Refund.issued_at < until,
        )
        .group_by(Refund.method, Refund.currency)
        .order_by(func.sum(Refund.amount).desc())
    ).all()
    return [RouteTotal(m, c, int(n), int(a or 0)) for m, c, n, a in rows]


def satisfaction(session: Session, *, since: datetime, until: datetime) -> dict[int, int]:
    """How many ratings of each score (1-5) the cases opened in [since, until) received."""
    return {
        int(score or 0): int(n)
        for score, n in session.execute(
            select(Ticket.satisfaction, func.count())
            .where(
                Ticket.created_at >= since,
                Ticket.created_at < until,
                Ticket.satisfaction.is_not(None),
            )
            .group_by(Ticket.satisfaction)
        )
    }


@dataclass(frozen=True)
class ProductRate:
    """A product's after-sales rate: cases naming it ÷ units sold (None: none sold)."""

    sku: str
    title: str
    cases: int
    units_sold: int
    rate: float | None
    flagged: bool


def product_rates(
    session: Session, *, since: datetime, until: datetime, flag_percent: int, min_sold: int = 1
) -> list[ProductRate]:
    """Per product: cases opened in the period that name it, units sold in orders placed in the
    period, and whether the rate is above `flag_percent`; the worst first. The rate needs at
    least `min_sold` units sold (below, None: a few units make any rate meaningless, as 2 cases
    on 1 unit sold read "200 %"); those come after the rated ones, most cases first."""
    cases_by_sku = dict(
        session.execute(
            select(TicketItem.sku, func.count(func.distinct(TicketItem.ticket_id)))
            .join(Ticket, Ticket.id == TicketItem.ticket_id)
            .where(*_opened(since, until))
            .group_by(TicketItem.sku)
        ).all()
    )
    sold = {
        sku: (int(units or 0), title)
        for sku, units, title in session.execute(
            select(OrderLine.sku, func.sum(OrderLine.quantity), func.max(OrderLine.title))
            .join(Order, Order.id == OrderLine.order_id)
            .where(
                Order.placed_at >= since,
                Order.placed_at < until,
                Order.status.notin_(["unpaid", "cancelled"]),
            )
            .group_by(OrderLine.sku)
        ).all()
    }
    products = []
    for sku in sorted(set(cases_by_sku) | set(sold)):
        n = int(cases_by_sku.get(sku, 0))
        units, title = sold.get(sku, (0, ""))
        rate = n / units if units and units >= min_sold else None
        flagged = rate is not None and rate * 100 > flag_percent
        products.append(ProductRate(sku, title or "", n, units, rate, flagged))
    products.sort(key=lambda p: (p.rate is None, -(p.rate or 0), -p.cases, p.sku))
    return products


@dataclass(frozen=True)
class AgentFigures:
    """One agent's work in a period: cases they brought to done, the median minutes to the
    first response on their cases, the median hours from opening to done, and the customers'
    ratings of their done cases (count and average; None without a rating)."""

    username: str
    display_name: str
    handled: int
    first_response_minutes: float | None
    first_responses: int
    resolution_hours: float | None
    ratings: int
    csat: float | None


def agent_figures(session: Session, *, since: datetime, until: datetime) -> list[AgentFigures]:
    """Per agent holding a case, for cases that reached a done status in [since, until) (by
    their assignee) and first-response clocks met in it: the figures of `AgentFigures`; the
    most cases handled first. Two grouped queries, whatever the volume."""
    done = session.execute(
        select(Ticket.assignee_id, Ticket.created_at, func.min(Event.at), Ticket.satisfaction)
        .join(Event, Event.ticket_id == Ticket.id)
        .where(
            Ticket.assignee_id.is_not(None),
            Event.type == EventType.status_changed,
            Event.data["to"].as_string().in_(DONE),
            Event.at >= since,
            Event.at < until,
        )
        .group_by(Ticket.id, Ticket.assignee_id, Ticket.created_at, Ticket.satisfaction)
    ).all()
    hours: dict[int, list[float]] = {}
    scores: dict[int, list[int]] = {}
    for agent_id, created, finished, score in done:
        if agent_id is None:  # filtered out by the query; for the type checker
            continue
        hours.setdefault(agent_id, []).append((finished - created).total_seconds() / 3600)
        if score is not None:
            scores.setdefault(agent_id, []).append(int(score))
    responses = session.execute(
        select(Ticket.assignee_id, SlaClock.started_at, SlaClock.met_at)
        .join(Ticket, Ticket.id == SlaClock.ticket_id)
        .where(
            Ticket.assignee_id.is_not(None),
            SlaClock.clock == "first_response",
            SlaClock.met_at.is_not(None),
            SlaClock.met_at >= since,
            SlaClock.met_at < until,
        )
    ).all()
    minutes: dict[int, list[float]] = {}
    for agent_id, started, met in responses:
        if agent_id is None or met is None:  # filtered out by the query
            continue
        minutes.setdefault(agent_id, []).append((met - started).total_seconds() / 60)
    ids = set(hours) | set(minutes)
    if not ids:
        return []
    names = {
        a.id: (a.username, a.display_name or a.username)
        for a in session.scalars(select(Agent).where(Agent.id.in_(ids)).order_by(Agent.id))
    }
    out = []
    for agent_id in ids:
        username, display = names.get(agent_id, (str(agent_id), str(agent_id)))
        given = scores.get(agent_id, [])
        first = percentile(minutes.get(agent_id, []), 0.5)
        resolved = percentile(hours.get(agent_id, []), 0.5)
        out.append(
            AgentFigures(
                username=username,
                display_name=display,
                handled=len(hours.get(agent_id, [])),
                first_response_minutes=round(first, 1) if first is not None else None,
                first_responses=len(minutes.get(agent_id, [])),
                resolution_hours=round(resolved, 1) if resolved is not None else None,
                ratings=len(given),
                csat=round(sum(given) / len(given), 2) if given else None,
            )
        )
    out.sort(key=lambda f: (-f.handled, f.username))
    return out
