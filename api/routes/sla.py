"""JSON API: SLA reporting — compliance per clock, and the breached cases as CSV."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import AfterValidator

from api.deps import CurrentAgent, SessionDep
from tickets import reports
from tickets.exceptions import InvalidInput
from tickets.exports import csv_bytes
from tickets.schemas import plausible_time
from tickets.workflow import require


def _reports_reader(agent: CurrentAgent) -> None:
    # The team's figures (breaches by agent): leads and admins, as on the panel's dashboard.
    require(agent.role, "view_reports")


router = APIRouter(prefix="/sla", tags=["sla"], dependencies=[Depends(_reports_reader)])

Since = Annotated[
    Annotated[datetime, AfterValidator(plausible_time)] | None,
    Query(description="ISO time with offset; default 30 days ago"),
]
Until = Annotated[
    Annotated[datetime, AfterValidator(plausible_time)] | None,
    Query(description="ISO time with offset; default now"),
]


def _period(
    request: Request, since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    now = request.app.state.clock()
    until = until or now
    since = since or until - timedelta(days=30)
    for name, value in (("since", since), ("until", until)):
        if value.tzinfo is None:
            raise InvalidInput(
                f"{name} needs an offset, like 2026-11-01T00:00:00+08:00",
                [{"loc": name, "msg": "naive time"}],
            )
    if since >= until:
        raise InvalidInput("since must be before until", [{"loc": "since", "msg": "after until"}])
    return since, until


@router.get("/report")
def sla_report(
    request: Request,
    session: SessionDep,
    since: Since = None,
    until: Until = None,
    group: str | None = None,
) -> dict[str, Any]:
    """Per clock: total, met, breached, open, share met, median and 90th-percentile minutes to
    done; breaches by group and by agent. Clocks started in [since, until)."""
    since, until = _period(request, since, until)
    return reports.report(session=session, since=since, until=until, group=group)


@router.get("/breaches.csv", response_class=Response)
def breaches_csv(
    request: Request,
    session: SessionDep,
    since: Since = None,
    until: Until = None,
    group: str | None = None,
) -> Response:
    """The breached clocks of the period, one row each, as CSV (UTF-8 with BOM, for Excel)."""
    since, until = _period(request, since, until)
    rows = reports.breaches(session=session, since=since, until=until, group=group)
    columns = [
        "case",
        "kind",
        "group",
        "assignee",
        "clock",
        "started_at",
        "due_at",
        "done_at",
        "minutes_late",
    ]
    return Response(
        csv_bytes(columns, ([row.get(c) for c in columns] for row in rows)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="sla-breaches.csv"'},
    )
