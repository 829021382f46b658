"""Spreadsheet exports (CSV and XLSX), made safe to open: every export of the desk goes through
here (the dashboard's charts, the SLA breaches).

- Formula injection: a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and, in
  some, a tab or carriage return) as a formula. Product titles, customer names and reasons come
  from customers and shops, so such a text cell gets a leading apostrophe (OWASP's advice): it
  shows as the text it is. Numbers stay numbers.
- Control characters: XML 1.0 (an XLSX) cannot hold most of them, and openpyxl refuses the
  whole workbook over one; a CSV reader may split on them. They are dropped from text cells.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# C0 controls but tab, line feed and carriage return (which XML keeps), DEL and the C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def safe_text(value: str) -> str:
    """A text cell as a spreadsheet should show it: no control characters, never a formula."""
    value = _CONTROL.sub("", value)
    if value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def cell(value: Any) -> Any:
    """One cell of an export: text made safe, None empty, numbers and dates as they are."""
    if value is None:
        return ""
    if isinstance(value, str):
        return safe_text(value)
    return value


def csv_bytes(headers: Sequence[Any], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 with a BOM, so Excel opens Chinese text as UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([cell(h) for h in headers])
    writer.writerows([cell(v) for v in row] for row in rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def xlsx_bytes(title: str, headers: Sequence[Any], rows: Iterable[Sequence[Any]]) -> bytes:
    """One sheet; amounts (Decimal) as numbers."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    # A sheet title is at most 31 characters and has no []:*?/\ (openpyxl refuses them).
    sheet.title = re.sub(r"[\[\]:*?/\\]", "_", safe_text(title).lstrip("'"))[:31] or "Sheet"
    sheet.append([cell(h) for h in headers])
    for row in rows:
        sheet.append(
            [None if v is None else float(v) if isinstance(v, Decimal) else cell(v) for v in row]
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
