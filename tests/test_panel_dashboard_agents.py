"""The dashboard's per-agent figures (cases handled, first response, time to done, the
customers' ratings with their count) and the after-sales rate per product on a sensible base:
given only from a minimum of units sold, the counts beside it, so 2 cases on 1 unit sold never
reads "200 %". Both languages."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import logged_in
from tests.factories import dashboard_cases
from tickets import reports
from tickets.context import Context
from tickets.models import Agent, Ticket, utcnow


def _assign(sessions: sessionmaker[Session], numbers: list[str], username: str) -> None:
    with sessions() as s:
        agent_id = s.scalar(select(Agent.id).where(Agent.username == username))
        s.execute(update(Ticket).where(Ticket.number.in_(numbers)).values(assignee_id=agent_id))
        s.commit()


def test_the_dashboard_shows_each_agents_figures(
    panel_app: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    made = dashboard_cases(sessions, ctx)
    # Alice holds the two refunded, rated socks cases (5 and 3 stars); Bob the tea one, open.
    _assign(sessions, made[:2], "alice")
    _assign(sessions, made[3:], "bob")
    lena = logged_in(panel_app, "lena")
    page = lena.get("/panel/dashboard?days=7")
    assert page.status_code == 200
    assert 'id="chart-agents"' in page.text
    r = lena.get("/panel/dashboard/export/agents?days=7&format=csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == [
        "Agent",
        "Cases handled",
        "First response, median minutes",
        "First responses",
        "Resolution, median hours",
        "Ratings",
        "Satisfaction, average of 5",
    ]
    alice = next(row for row in rows if row[0] == "Alice")
    # Two cases brought to done, both answered (approved), both rated: 4 on average of 2.
    assert (alice[1], alice[3], alice[5], alice[6]) == ("2", "2", "2", "4.0")
    assert float(alice[2]) >= 0 and float(alice[4]) >= 0
    # Bob's case is neither done nor answered: he has no figures to show.
    assert not any(row[0] == "Bob" for row in rows)
    # In Chinese, the same chart with its own words; the agent's name as written.
    lena.post("/panel/language", {"language": "zh-CN", "back": "/panel/dashboard"})
    zh = lena.get("/panel/dashboard?days=7").text
    assert "客服个人数据" in zh and "处理工单数" in zh
    assert 'translate="no">Alice' in zh


def test_a_product_rate_needs_enough_units_sold(
    panel_app: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    dashboard_cases(sessions, ctx)
    now = utcnow()
    with sessions() as s:
        loose = {
            p.sku: p
            for p in reports.product_rates(
                s, since=now - timedelta(days=7), until=now, flag_percent=20, min_sold=1
            )
        }
        strict = {
            p.sku: p
            for p in reports.product_rates(
                s, since=now - timedelta(days=7), until=now, flag_percent=20, min_sold=10
            )
        }
    # Socks: 3 cases on 8 units sold: 37.5 %, flagged, with no minimum; below a minimum of 10
    # units, no rate (never flagged), its counts kept. Tea, 1 case on 12 units, keeps its rate.
    assert (loose["SOCKS"].rate, loose["SOCKS"].flagged) == (0.375, True)
    assert (strict["SOCKS"].rate, strict["SOCKS"].flagged) == (None, False)
    assert (strict["SOCKS"].cases, strict["SOCKS"].units_sold) == (3, 8)
    assert strict["TEA"].rate == 1 / 12
    # Rated products come first, then the unrated.
    assert list(strict)[:2] == ["TEA", "SOCKS"]
    # The page with a minimum of 10 units (the setting) shows no rate for socks, and says why.
    panel_app.state.settings = panel_app.state.settings.model_copy(
        update={"panel_product_min_sold": 10}
    )
    lena = logged_in(panel_app, "lena")
    page = lena.get("/panel/dashboard?days=7").text
    assert "37.5 %" not in page
    assert "given from 10 units sold" in page
    r = lena.get("/panel/dashboard/export/products?format=csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    socks = next(row for row in rows if row[0] == "SOCKS")
    assert socks[2:] == ["3", "8", "", "False"]
