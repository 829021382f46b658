"""The dashboard page: the numbers the shop watches (DOMAIN.md) as charts, in the agent's
language: cases per day by kind, reasons, SLA met per clock, time to resolve, refunds by route,
satisfaction, and the after-sales rate per product (a product above the flag rate is a quality
problem to chase with the supplier).
Over 500 lines as one file: every chart reads the same window of cases through the same helpers;
split by chart, each file would repeat the window.

The numbers come from the core's reports (tickets/reports.py, one grouped query each); this
module only names, draws and exports them. Each chart exports as CSV and XLSX with the same rows
the page shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from api.deps import SessionDep
from api.panel import i18n
from api.panel.auth import CurrentPanelAgent, require_permission
from api.panel.charts import Bar, Series, bars, stacked_columns
from api.panel.i18n import N_
from api.panel.labels import CLOCK, KIND, label
from api.panel.pages import render
from tickets import reports
from tickets.exports import csv_bytes, xlsx_bytes
from tickets.money import format_amount
from tickets.policy.rules import CUSTOMER_CLOCKS

router = APIRouter()

PERIODS = (7, 30, 90)
DEFAULT_DAYS = 30
# The product chart shows the worst this many; the export has them all.
PRODUCTS_SHOWN = 15
CHARTS = ("cases", "reasons", "sla", "resolve", "refunds", "satisfaction", "agents", "products")
FORMATS = ("csv", "xlsx")

_TITLES = {
    "cases": N_("Cases per day by kind"),
    "reasons": N_("Reasons"),
    "sla": N_("SLA met per clock"),
    "resolve": N_("Time to resolve"),
    "refunds": N_("Refunds by route"),
    "satisfaction": N_("Satisfaction"),
    "agents": N_("Per agent"),
    "products": N_("After-sales rate per product"),
}
_H = {
    "day": N_("Day"),
    "kind": N_("Kind"),
    "cases": N_("Cases"),
    "reason": N_("Reason"),
    "share": N_("Share"),
    "clock": N_("Clock"),
    "total": N_("Total"),
    "met": N_("Met"),
    "breached": N_("Breached"),
    "open": N_("Running"),
    "share_met": N_("Share met"),
    "median_minutes": N_("Median minutes"),
    "p90_minutes": N_("90th percentile minutes"),
    "done": N_("Done"),
    "median_hours": N_("Median hours"),
    "p90_hours": N_("90th percentile hours"),
    "average_hours": N_("Average hours"),
    "route": N_("Route"),
    "currency": N_("Currency"),
    "refunds": N_("Refunds"),
    "amount": N_("Amount"),
    "score": N_("Score"),
    "ratings": N_("Ratings"),
    "sku": N_("SKU"),
    "title": N_("Product"),
    "units_sold": N_("Units sold"),
    "rate": N_("After-sales rate"),
    "flagged": N_("Flagged"),
    "agent": N_("Agent"),
    "handled": N_("Cases handled"),
    "first_response_minutes": N_("First response, median minutes"),
    "first_responses": N_("First responses"),
    "resolution_hours": N_("Resolution, median hours"),
    "csat": N_("Satisfaction, average of 5"),
}
_NOTES = {
    "cases": N_("Cases opened in the period, by the shop's calendar day."),
    "reasons": N_("Cases opened in the period, by reason."),
    "sla": N_("Clocks started in the period: met on time among those done."),
    "resolve": N_(
        "Cases that reached resolved, refunded or closed in the period: hours from opening."
    ),
    "refunds": N_("Refunds issued in the period, by payment route."),
    "satisfaction": N_("Ratings (1 to 5) of cases opened in the period."),
    "agents": N_(
        "Cases each agent brought to resolved, refunded or closed in the period, the median "
        "time to their first response and to done, and their customers' ratings (with how "
        "many: an average of one rating says little)."
    ),
    "products": N_(
        "Cases naming the product ÷ units sold in orders placed in the period, given from "
        "%(min)s units sold (fewer: the counts alone); above %(rate)s %% is flagged."
    ),
}


@dataclass
class Chart:
    """One chart: its rows (exported as they are) and its picture."""

    name: str
    title: str
    headers: list[str]
    rows: list[list[Any]]
    svg: Markup = field(default_factory=Markup)
    note: str = ""
    summary: str = ""
    # Columns holding the shop's own words (product titles): shown as they are, never translated.
    data_columns: tuple[int, ...] = ()


def period(now: datetime, days: int, tz: ZoneInfo) -> tuple[datetime, datetime, list[date]]:
    """The last `days` calendar days of the shop, today included: [start of the first, now)."""
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time(0), tzinfo=tz)
    return since, now, [first + timedelta(days=i) for i in range(days)]


def flag_percent(request: Request) -> int:
    """A product whose cases reach this share of the units sold is flagged (a setting)."""
    return int(request.app.state.settings.panel_product_flag_percent)


def min_sold(request: Request) -> int:
    """A product's rate is given only from this many units sold in the period (a setting)."""
    return int(request.app.state.settings.panel_product_min_sold)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def build(
    session: Session,
    *,
    now: datetime,
    days: int,
    tz: ZoneInfo,
    lang: str,
    translate: Callable[[str], str],
    flag: int,
    min_sold: int = 1,
) -> list[Chart]:
    """Every chart of the dashboard for the period, in the agent's language."""
    since, until, day_list = period(now, days, tz)

    def tr(table: str, code: str | None) -> str:
        return translate(label(table, code)) if code else ""

    def headers(*keys: str) -> list[str]:
        return [translate(_H[k]) for k in keys]

    def chart(name: str, hdrs: list[str], rows: list[list[Any]], **kw: Any) -> Chart:
        note = translate(_NOTES[name])
        if name == "products":
            note = note % {"rate": flag, "min": min_sold}
        return Chart(name, translate(_TITLES[name]), hdrs, rows, note=note, **kw)

    out: list[Chart] = []

    # Cases per day by kind.
    per_day = reports.cases_per_day(session, since=since, until=until, tz=tz)
    kinds = [k for k in KIND if any(kk == k for (_d, kk) in per_day)]
    series = [Series(tr("kind", k), [per_day.get((d, k), 0) for d in day_list]) for k in kinds]
    day_labels = [d.strftime("%m-%d") for d in day_list]
    rows = [
        [d.isoformat(), tr("kind", k), per_day[(d, k)]]
        for d in day_list
        for k in kinds
        if per_day.get((d, k))
    ]
    total = sum(per_day.values())
    out.append(
        chart(
            "cases",
            headers("day", "kind", "cases"),
            rows,
            svg=stacked_columns(day_labels, series, title=translate(_TITLES["cases"]))
            if total
            else Markup(""),
            summary=translate(N_("%(num)s cases")) % {"num": total},
        )
    )

    # Reasons.
    counted = reports.reasons(session, since=since, until=until)
    reason_total = sum(n for _r, n in counted) or 1
    rows = [[tr("reason", r), n, round(n / reason_total, 4)] for r, n in counted]
    out.append(
        chart(
            "reasons",
            headers("reason", "cases", "share"),
            rows,
            svg=bars(
                [Bar(tr("reason", r), n, f"{n} · {_pct(n / reason_total)}") for r, n in counted],
                title=translate(_TITLES["reasons"]),
            ),
        )
    )

    # SLA met per clock.
    report = reports.report(session=session, since=since, until=until)
    # The shop's promises only: the customer's clocks (shipping the return, answering) are not
    # the shop's service level.
    clocks: list[dict[str, Any]] = [
        c
        for c in report["clocks"]  # type: ignore[attr-defined]
        if c["clock"] not in CUSTOMER_CLOCKS
    ]
    rows = [
        [
            tr("clock", c["clock"]),
            c["total"],
            c["met"],
            c["breached"],
            c["open"],
            c["share_met"],
            c["median_minutes"],
            c["p90_minutes"],
        ]
        for c in clocks
    ]
    out.append(
        chart(
            "sla",
            headers(
                "clock",
                "total",
                "met",
                "breached",
                "open",
                "share_met",
                "median_minutes",
                "p90_minutes",
            ),
            rows,
            svg=bars(
                [
                    Bar(
                        tr("clock", c["clock"]),
                        c["share_met"] or 0,
                        _pct(c["share_met"]),
                        flagged=c["share_met"] is not None and c["share_met"] < 0.9,
                    )
                    for c in clocks
                    if c["clock"] in CLOCK
                ],
                title=translate(_TITLES["sla"]),
            ),
        )
    )

    # Time to resolve, per kind: from opening to first reaching a done status in the period.
    hours = reports.hours_to_done(session, since=since, until=until)
    rows = []
    resolve_bars = []
    for k in KIND:
        values = hours.get(k)
        if not values:
            continue
        median = reports.percentile(values, 0.5) or 0.0
        p90 = reports.percentile(values, 0.9) or 0.0
        rows.append(
            [
                tr("kind", k),
                len(values),
                round(median, 1),
                round(p90, 1),
                round(sum(values) / len(values), 1),
            ]
        )
        resolve_bars.append(
            Bar(tr("kind", k), median, f"{i18n.duration(median * 3600, lang)} ({len(values)})")
        )
    out.append(
        chart(
            "resolve",
            headers("kind", "done", "median_hours", "p90_hours", "average_hours"),
            rows,
            svg=bars(resolve_bars, title=translate(_TITLES["resolve"])),
        )
    )

    # Refunds by route.
    refunds = reports.refunds_by_route(session, since=since, until=until)
    rows = [
        [tr("payment", r.method), r.currency, r.count, Decimal(format_amount(r.amount, r.currency))]
        for r in refunds
    ]
    out.append(
        chart(
            "refunds",
            headers("route", "currency", "refunds", "amount"),
            rows,
            svg=bars(
                [
                    Bar(
                        f"{tr('payment', r.method)} · {r.currency}",
                        float(r.amount),
                        f"{i18n.money(format_amount(r.amount, r.currency), r.currency, lang)}"
                        f" ({r.count})",
                    )
                    for r in refunds
                ],
                title=translate(_TITLES["refunds"]),
            ),
        )
    )

    # Satisfaction.
    scores = reports.satisfaction(session, since=since, until=until)
    rated = sum(scores.values())
    average = sum(s * n for s, n in scores.items()) / rated if rated else None
    rows = [[score, scores.get(score, 0)] for score in range(5, 0, -1)]
    out.append(
        chart(
            "satisfaction",
            headers("score", "ratings"),
            rows,
            svg=bars(
                [Bar(f"{s} ★", scores.get(s, 0), str(scores.get(s, 0))) for s in range(5, 0, -1)],
                title=translate(_TITLES["satisfaction"]),
            )
            if rated
            else Markup(""),
            summary=(translate(N_("Average %(score)s of 5")) % {"score": f"{average:.2f}"})
            if average is not None
            else "",
        )
    )

    # Per agent: handled, first response, resolution, satisfaction (each with its count).
    figures = reports.agent_figures(session, since=since, until=until)
    rows = [
        [
            f.display_name,
            f.handled,
            f.first_response_minutes,
            f.first_responses,
            f.resolution_hours,
            f.ratings,
            f.csat,
        ]
        for f in figures
    ]

    def _agent_text(f: reports.AgentFigures) -> str:
        rated = f" · ★{f.csat:.1f} ({f.ratings})" if f.csat is not None else ""
        return f"{f.handled}{rated}"

    out.append(
        chart(
            "agents",
            headers(
                "agent",
                "handled",
                "first_response_minutes",
                "first_responses",
                "resolution_hours",
                "ratings",
                "csat",
            ),
            rows,
            svg=bars(
                [Bar(f.display_name[:24], f.handled, _agent_text(f), data=True) for f in figures],
                title=translate(_TITLES["agents"]),
            )
            if figures
            else Markup(""),
            data_columns=(0,),
        )
    )

    # After-sales rate per product.
    products = reports.product_rates(
        session, since=since, until=until, flag_percent=flag, min_sold=min_sold
    )
    rows = [
        [p.sku, p.title, p.cases, p.units_sold, None if p.rate is None else round(p.rate, 4)]
        for p in products
    ]
    for row, p in zip(rows, products, strict=True):
        row.append(p.flagged)
    out.append(
        chart(
            "products",
            headers("sku", "title", "cases", "units_sold", "rate", "flagged"),
            rows,
            svg=bars(
                [
                    Bar(
                        f"{p.sku} {p.title}"[:28],
                        p.rate,
                        f"{_pct(p.rate)} ({p.cases}/{p.units_sold})",
                        p.flagged,
                        data=True,
                    )
                    for p in products[:PRODUCTS_SHOWN]
                    if p.rate is not None
                ],
                title=translate(_TITLES["products"]),
            ),
            data_columns=(0, 1),
            summary=translate(N_("%(num)s flagged"))
            % {"num": sum(1 for p in products if p.flagged)},
        )
    )
    return out


def _translator_for(request: Request, lang: str) -> Callable[[str], str]:
    catalog: i18n.Catalog = request.app.state.panel.catalogs[lang]
    return catalog.gettext


def _days(value: int) -> int:
    return value if value in PERIODS else DEFAULT_DAYS


@router.get("/dashboard")
def dashboard(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    days: int = DEFAULT_DAYS,
) -> Response:
    """The dashboard (leads and admins): every chart for the last 7, 30 or 90 days."""
    require_permission(agent, "view_reports")
    days = _days(days)
    lang = i18n.pick_language(agent.language)
    charts = build(
        session,
        now=request.app.state.clock(),
        days=days,
        tz=request.app.state.settings.tz,
        lang=lang,
        translate=_translator_for(request, lang),
        flag=flag_percent(request),
        min_sold=min_sold(request),
    )
    return render(request, "dashboard.html", {"charts": charts, "days": days, "periods": PERIODS})


def _csv(chart: Chart) -> bytes:
    return csv_bytes(chart.headers, chart.rows)


def _xlsx(chart: Chart) -> bytes:
    return xlsx_bytes(chart.name, chart.headers, chart.rows)


@router.get("/dashboard/export/{chart}")
def export(
    chart: str,
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    days: int = DEFAULT_DAYS,
    format: Annotated[str, Query(max_length=4)] = "csv",
) -> Response:
    """One chart's rows as CSV (UTF-8 with BOM) or XLSX, in the agent's language."""
    require_permission(agent, "view_reports")
    if chart not in CHARTS or format not in FORMATS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such chart or format")
    days = _days(days)
    lang = i18n.pick_language(agent.language)
    found = next(
        c
        for c in build(
            session,
            now=request.app.state.clock(),
            days=days,
            tz=request.app.state.settings.tz,
            lang=lang,
            translate=_translator_for(request, lang),
            flag=flag_percent(request),
            min_sold=min_sold(request),
        )
        if c.name == chart
    )
    name = f"{chart}-{days}d.{format}"
    if format == "csv":
        body, media = _csv(found), "text/csv; charset=utf-8"
    else:
        body = _xlsx(found)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
