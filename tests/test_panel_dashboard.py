"""The dashboard over HTTP: every chart drawn from the database, each exportable as CSV and
XLSX with the same numbers, leads only, a fixed number of queries whatever the volume."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Panel, counting, logged_in, query_diff
from tests.factories import dashboard_cases, make_case
from tickets.context import Context


def test_the_dashboard_draws_every_chart_for_leads_only(
    panel_app: Any, alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    dashboard_cases(sessions, ctx)
    assert alice.get("/panel/dashboard").status_code == 403
    assert alice.get("/panel/dashboard/export/reasons?format=csv").status_code == 403
    lena = logged_in(panel_app, "lena")
    page = lena.get("/panel/dashboard?days=7")
    assert page.status_code == 200, page.text
    for name in ("cases", "reasons", "sla", "resolve", "refunds", "satisfaction", "products"):
        assert f'id="chart-{name}"' in page.text, name
    assert page.text.count("<svg") == 7
    assert 'aria-current="page">Last 7 days' in page.text
    assert "Average 4.00 of 5" in page.text
    # Socks: 3 cases for 8 units sold (two in each of 4 orders): 37.5 %, above the 20 % flag.
    assert "37.5 % (3/8)" in page.text
    assert "1 flagged" in page.text or "flagged" in page.text
    # An unknown period falls back to 30 days, not an error.
    assert 'aria-current="page">Last 30 days' in lena.get("/panel/dashboard?days=12").text
    zh = lena.post("/panel/language", {"language": "zh-CN", "back": "/panel/dashboard"})
    assert zh.status_code == 303
    assert "每日工单（按类型）" in lena.get("/panel/dashboard").text


def test_each_chart_exports_as_csv_and_xlsx(
    panel_app: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    dashboard_cases(sessions, ctx)
    lena = logged_in(panel_app, "lena")
    r = lena.get("/panel/dashboard/export/reasons?days=30&format=csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="reasons-30d.csv"' in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["Reason", "Cases", "Share"]
    assert ["Size / fit", "3", "0.75"] in rows
    r = lena.get("/panel/dashboard/export/refunds?format=xlsx")
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.content)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0] == ["Route", "Currency", "Refunds", "Amount"]
    assert values[1][:3] == ["Alipay", "CNY", 2]
    r = lena.get("/panel/dashboard/export/products?format=csv")
    products = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    socks = next(row for row in products if row[0] == "SOCKS")
    assert socks[2:] == ["3", "8", "0.375", "True"]
    for name in ("cases", "sla", "resolve", "satisfaction"):
        for fmt in ("csv", "xlsx"):
            assert lena.get(f"/panel/dashboard/export/{name}?format={fmt}").status_code == 200
    assert lena.get("/panel/dashboard/export/nope?format=csv").status_code == 404
    assert lena.get("/panel/dashboard/export/reasons?format=pdf").status_code == 404


def test_the_dashboard_costs_the_same_queries_whatever_the_volume(
    panel_app: Any, sessions: sessionmaker[Session], ctx: Context, engine: Engine
) -> None:
    dashboard_cases(sessions, ctx, n=1)
    lena = logged_in(panel_app, "lena")
    lena.get("/panel/dashboard")
    with counting(engine) as few:
        assert lena.get("/panel/dashboard").status_code == 200
    for i in range(10):
        who = {"name": f"批量{i}", "phone": f"1370000{i:04d}", "telegram_user_id": 7700 + i}
        make_case(sessions, ctx, f"V{i}", customer=who, kind="exchange")
    with counting(engine) as many:
        page = lena.get("/panel/dashboard")
    assert re.search(r"11 cases|12 cases", page.text)
    assert len(many) == len(few), query_diff(few, many)
