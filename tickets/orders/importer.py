"""Order files for `aftersales import-orders`: .csv or .xlsx in, validated orders out.
Over 500 lines as one file: reading .csv/.xlsx rows, grouping them into orders and naming a bad
line are one pipeline.

One row per order line; the order's own fields repeat on each of its rows (DESIGN.md, "Order
files for import-orders"). The whole file is checked before anything is written and every
problem is reported at once, each with the line number a person sees in a spreadsheet (the
header is line 1) and the column to fix, so one round of corrections is enough. All or
nothing: a file with any bad row imports no order at all.

Values are converted here rather than left to pydantic so that the messages can say how to
fix a cell ("add an offset like +08:00"), and so that spreadsheet quirks are handled in one
place: GB18030 exports from Chinese platforms, floats in money cells, offset-less date cells.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
import zipfile
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
from babel.numbers import is_currency
from defusedxml import DefusedXmlException
from openpyxl.utils import get_column_letter
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.orm import Session

from tickets.exceptions import Conflict, InvalidInput
from tickets.limits import DEFAULTS, Limits
from tickets.models import OrderStatus
from tickets.money import MAX_INT_DIGITS, exponent, to_minor
from tickets.orders.store import UpsertOutcome, upsert_order
from tickets.schemas import OrderIn

EXAMPLE_TIME = "2024-03-01T10:00:00+08:00"
# The most rows below the header a file may have (AFTERSALES_IMPORT_MAX_ROWS): a day's orders of
# a busy shop fit many times; a file beyond it is refused while it is read, not after.
IMPORT_MAX_ROWS = 100_000
# An order file needs a few dozen columns; cells beyond these are never read.
MAX_COLUMNS = 200
# What an .xlsx may unpack to (its XML parts together).
XLSX_MAX_UNPACKED_BYTES = 512 * 2**20
REQUIRED_COLUMNS = ("order_no", "status", "placed_at", "sku", "quantity", "unit_price")
# A spreadsheet keeps 15 significant digits: a longer number typed into a number cell (a
# Taobao order number, say) has already lost its last digits, and guessing them is not an option.
_EXACT_FLOAT_LIMIT = 10**15
_AMOUNT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_WHOLE = re.compile(r"[+-]?\d+")
_BOOLEANS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "1": True,
    "0": False,
    "是": True,
    "否": False,
}


class _CellError(ValueError):
    """A cell that cannot be read; the message says how to fix it."""


@dataclass(frozen=True)
class _Column:
    kind: str  # text, int, money, decimal, bool, time, status, currency
    target: tuple[str, ...]  # where the value goes in the OrderIn (or OrderLineIn) data
    order_level: bool


def _order_col(kind: str, *target: str) -> _Column:
    return _Column(kind, target, order_level=True)


def _line_col(kind: str, target: str) -> _Column:
    return _Column(kind, (target,), order_level=False)


# Names as in the Order JSON; the customer and the line's discount are flattened into columns.
COLUMNS: dict[str, _Column] = {
    "order_no": _order_col("text", "order_no"),
    "platform": _order_col("text", "platform"),
    "status": _order_col("status", "status"),
    "currency": _order_col("currency", "currency"),
    "placed_at": _order_col("time", "placed_at"),
    "paid_at": _order_col("time", "paid_at"),
    "shipped_at": _order_col("time", "shipped_at"),
    "delivered_at": _order_col("time", "delivered_at"),
    "payment_method": _order_col("text", "payment_method"),
    "shipping_fee": _order_col("money", "shipping_fee"),
    "order_discount": _order_col("money", "order_discount"),
    "free_shipping_threshold": _order_col("money", "free_shipping_threshold"),
    "promotion_threshold": _order_col("money", "promotion_threshold"),
    "address": _order_col("text", "address"),
    "presale": _order_col("bool", "presale"),
    "exchange_rate": _order_col("decimal", "exchange_rate"),
    "customer_name": _order_col("text", "customer", "name"),
    "customer_phone": _order_col("text", "customer", "phone"),
    "customer_email": _order_col("text", "customer", "email"),
    "customer_telegram_user_id": _order_col("int", "customer", "telegram_user_id"),
    "customer_language": _order_col("text", "customer", "language"),
    "sku": _line_col("text", "sku"),
    "title": _line_col("text", "title"),
    "category": _line_col("text", "category"),
    "quantity": _line_col("int", "quantity"),
    "unit_price": _line_col("money", "unit_price"),
    "line_discount": _line_col("money", "discount"),
    "gift_value": _line_col("money", "gift_value"),
    "gift_for": _line_col("text", "gift_for"),
    "no_reason_return": _line_col("bool", "no_reason_return"),
}
_ORDER = {c.target: name for name, c in COLUMNS.items() if c.order_level}
_LINE = {c.target[0]: name for name, c in COLUMNS.items() if not c.order_level}
# Names people reach for that difflib would not suggest.
_HINTS = {
    "discount": "line_discount (per line) or order_discount (per order)",
    "name": "customer_name",
    "phone": "customer_phone",
    "email": "customer_email",
    "telegram_user_id": "customer_telegram_user_id",
    "price": "unit_price",
    "qty": "quantity",
    "payments": "payment_method (a file gives one full payment per order)",
}


@dataclass
class ImportReport:
    """What an import did, or would do (a dry run reports exactly what a real run would)."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rows: int = 0
    dry_run: bool = False

    @property
    def orders(self) -> int:
        return len(self.created) + len(self.updated) + len(self.unchanged)

    def summary(self) -> str:
        """One line for a terminal: counts, and whether anything was saved."""
        text = (
            f"{self.orders} orders from {self.rows} rows: {len(self.created)} created, "
            f"{len(self.updated)} updated, {len(self.unchanged)} unchanged"
        )
        return text + (" (dry run: nothing saved)" if self.dry_run else "")


@dataclass
class _Problems:
    """Every problem found, each tied to spreadsheet lines and a column."""

    items: list[tuple[tuple[int, ...], str, str]] = field(default_factory=list)
    # Cells already reported, so a follow-on complaint about the same cell is not repeated.
    cells: set[tuple[int, str]] = field(default_factory=set)

    def add(self, lines: Iterable[int], column: str, msg: str) -> None:
        at = tuple(sorted(set(lines)))
        self.items.append((at, column, msg))
        self.cells.update((line, column) for line in at)

    def reported(self, lines: Iterable[int], column: str) -> bool:
        return any((line, column) in self.cells for line in lines)

    def as_errors(self) -> list[dict[str, Any]]:
        order = list(COLUMNS)

        def key(item: tuple[tuple[int, ...], str, str]) -> tuple[int, int]:
            lines, column, _ = item
            return (lines[0] if lines else 0, order.index(column) if column in order else -1)

        return [
            {"loc": _loc(lines, column), "msg": msg}
            for lines, column, msg in sorted(self.items, key=key)
        ]


@dataclass
class _ParsedOrder:
    order: OrderIn
    lines: list[int]  # the spreadsheet line of each order line, in order
    sources: dict[str, list[int]]  # order-level column -> lines that gave a value


def _loc(lines: Sequence[int], column: str) -> str:
    if not lines:
        return column
    word = "line" if len(lines) == 1 else "lines"
    return f"{word} {', '.join(str(n) for n in lines)}, {column}"


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return repr(value)


# ---- reading the file ------------------------------------------------------------------------

Row = tuple[int, list[Any]]


def _fail(path: Path, msg: str) -> InvalidInput:
    return InvalidInput(f"{path.name}: {msg}", [{"loc": "file", "msg": msg}])


def _read_csv(path: Path) -> list[Row]:
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _fail(path, "the file is UTF-16 (Excel's 'Unicode Text'): save it as 'CSV UTF-8'")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Chinese platforms' exports (and Excel on a Chinese Windows) write GBK; GB18030 is
        # its superset, so it reads both.
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise _fail(
                path, "the file is neither UTF-8 nor GB18030 text: save it as 'CSV UTF-8'"
            ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        # Records, not physical lines: a quoted address with a line break is still one row,
        # which is how a spreadsheet numbers it.
        return [(n, list(record)) for n, record in enumerate(reader, start=1)]
    except csv.Error as exc:
        raise _fail(path, f"cannot read CSV near line {reader.line_num}: {exc}") from None


def _unreadable(path: Path, exc: BaseException) -> InvalidInput:
    what = type(exc).__name__ if isinstance(exc, DefusedXmlException) else str(exc)[:200]
    return _fail(path, f"cannot read it as an .xlsx workbook ({what or type(exc).__name__})")


def _check_zip(path: Path) -> None:
    """A workbook is a ZIP of XML parts: refuse one that would unpack to more than any order
    file needs (a few kilobytes that expand to gigabytes) before any part is read. The sizes
    are the archive's own; zipfile never unpacks a part beyond its stated size."""
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    if unpacked > XLSX_MAX_UNPACKED_BYTES:
        raise _fail(
            path,
            f"the workbook unpacks to {unpacked // 2**20} MiB, over the "
            f"{XLSX_MAX_UNPACKED_BYTES // 2**20} MiB an order file may hold: split it",
        )


def _read_xlsx(path: Path) -> Iterator[Row]:
    """The rows of the workbook's "orders" sheet (or its first), streamed: a read-only
    workbook parses the sheet as it is iterated, so the header is checked, and the row limit
    applied, before the rest is read. The XML is parsed by defusedxml (openpyxl uses it when
    it is installed): a part declaring entities is refused, never expanded."""
    _check_zip(path)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        # Any failure to open the archive or parse its XML (malformed, entity-declaring,
        # missing parts) is the file's fault, never a traceback.
        raise _unreadable(path, exc) from None
    try:
        sheets = book.worksheets
        if not sheets:
            raise _fail(path, "the workbook has no sheet")
        sheet = next((s for s in sheets if s.title.strip().lower() == "orders"), sheets[0])
        # Cells beyond the known columns are cut, so a row claiming 16 384 columns costs
        # no more than a real one.
        widest = sheet.max_column if isinstance(sheet.max_column, int) else 0
        rows = sheet.iter_rows(values_only=True, max_col=min(max(widest, 1), MAX_COLUMNS))
        # Read-only sheets yield every row from 1, empty ones included, so the count is the
        # row number the spreadsheet shows.
        line = 0
        while True:
            try:
                cells = next(rows)
            except StopIteration:
                return
            except Exception as exc:
                raise _unreadable(path, exc) from None
            line += 1
            yield line, list(cells)
    finally:
        book.close()


def _read_rows(path: Path) -> Iterable[Row]:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        hint = "open it and save as .xlsx or 'CSV UTF-8'" if suffix == ".xls" else ""
        raise _fail(
            path,
            f"cannot import a {suffix or 'extension-less'} file: use .csv or .xlsx"
            + (f" ({hint})" if hint else ""),
        )
    if not path.is_file():
        raise _fail(path, f"no file at {path}")
    return _read_csv(path) if suffix == ".csv" else _read_xlsx(path)


def _limited(path: Path, rows: Iterable[Row], max_rows: int) -> Iterator[Row]:
    """The rows, refusing the file as soon as it holds more than max_rows below the header
    (blank rows count: a sheet can claim a million of them)."""
    for line, cells in rows:
        if line > max_rows + 1:
            raise _fail(
                path,
                f"the file has more than {max_rows} rows: split it into files of at most "
                f"{max_rows} rows (AFTERSALES_IMPORT_MAX_ROWS)",
            )
        yield line, cells


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# ---- cell values -----------------------------------------------------------------------------


def _text(raw: Any) -> str:
    if isinstance(raw, bool):
        return str(raw).lower()
    if isinstance(raw, float):
        if not raw.is_integer():
            return repr(raw)
        if abs(raw) >= _EXACT_FLOAT_LIMIT:
            raise _CellError(
                f"{raw:.15g} was stored as a spreadsheet number and has lost its last digits: "
                "format the column as Text and enter it again"
            )
        return str(int(raw))
    if isinstance(raw, datetime | date | time):
        return raw.isoformat()
    return str(raw).strip()


def _int(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer() and abs(raw) < _EXACT_FLOAT_LIMIT:
        return int(raw)
    text = repr(raw) if isinstance(raw, bool | float) else _text(raw)
    if isinstance(raw, str) and _WHOLE.fullmatch(text):
        # A few digits only: the schemas' bounds name anything larger, and int() of thousands
        # of digits is slow (and refused past 4 300).
        if len(text.lstrip("+-")) > 18:
            raise _CellError(f"a number of {len(text)} digits is too large")
        return int(text)
    raise _CellError(f"{text!r} is not a whole number: write it like 2")


def _float_amount(raw: float, places: int) -> Decimal:
    if not math.isfinite(raw):
        raise _CellError(f"{raw!r} is not an amount: write it like 19.99")
    if abs(raw) >= 10**MAX_INT_DIGITS:
        # Bounded before any decimal arithmetic (1e300 would not even quantize).
        raise _CellError(f"{raw!r} is more than the largest amount accepted")
    # repr is the shortest text that reads back as the same float, so a typed 19.99 stays 19.99.
    exact = Decimal(repr(raw))
    step = Decimal(1).scaleb(-places)
    rounded = exact.quantize(step)
    # A formula such as =0.1+0.2 lands a hair off the cent (0.30000000000000004); a genuine
    # extra decimal (19.999) is far from it and is left for to_minor to refuse.
    if exact != rounded and abs(exact - rounded) <= step * Decimal("1e-6"):
        return rounded
    return exact


def _decimal(raw: Any, places: int | None) -> Decimal:
    if isinstance(raw, bool):
        raise _CellError(f"{raw!r} is not an amount: write it like 19.99")
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, float):
        return _float_amount(raw, places if places is not None else 6)
    text = _text(raw)
    if not _AMOUNT.fullmatch(text):
        raise _CellError(
            f"{text!r} is not an amount: write a plain number like 19.99, without a currency "
            "sign or thousands separators"
        )
    return Decimal(text)


def _money(raw: Any, currency: str | None) -> Decimal:
    value = _decimal(raw, exponent(currency) if currency else 2)
    if value < 0:
        raise _CellError(
            f"{value} is negative: amounts are 0 or more (write discounts in line_discount or "
            "order_discount)"
        )
    if currency:
        try:
            to_minor(value, currency)
        except ValueError as exc:
            raise _CellError(f"{exc}: round it to {exponent(currency)} decimal places") from None
    return value


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = _text(raw).lower()
    if text in _BOOLEANS:
        return _BOOLEANS[text]
    raise _CellError(f"{text!r} is not yes or no: write true/false, yes/no, 1/0 or 是/否")


def _naive(value: datetime, shown: str, cell: bool) -> _CellError:
    example = value.isoformat(timespec="seconds") + "+08:00"
    where = (
        f"the cell holds a spreadsheet date ({shown}), which has no UTC offset: format the "
        "column as Text and write the time with its offset"
        if cell
        else f"{shown!r} has no UTC offset: add the offset of the time zone it was recorded in"
    )
    return _CellError(f"{where}, like {example} (China time)")


def _time(raw: Any) -> datetime:
    if isinstance(raw, datetime):
        if raw.tzinfo is None:
            raise _naive(raw, raw.isoformat(sep=" "), cell=True)
        return raw
    if isinstance(raw, date):
        raise _naive(datetime.combine(raw, time()), raw.isoformat(), cell=True)
    if isinstance(raw, int | float | time | timedelta):
        raise _CellError(
            f"{raw!r} is not a date and time: write it as text with a UTC offset, like "
            f"{EXAMPLE_TIME}"
        )
    text = _text(raw)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _CellError(
            f"{text!r} is not a date and time: write it in ISO 8601 with a UTC offset, like "
            f"{EXAMPLE_TIME}"
        ) from None
    if value.tzinfo is None:
        raise _naive(value, text, cell=False)
    return value


def _status(raw: Any) -> str:
    text = _text(raw).lower()
    allowed = [s.value for s in OrderStatus]
    if text not in allowed:
        raise _CellError(f"unknown status {text!r}: use one of {', '.join(allowed)}")
    return text


def _currency(raw: Any) -> str:
    text = _text(raw).upper()
    if not is_currency(text):
        raise _CellError(f"unknown currency {text!r}: write a three-letter code like CNY or USD")
    return text


def _convert(kind: str, raw: Any, currency: str | None) -> Any:
    converters: dict[str, Callable[[Any], Any]] = {
        "text": _text,
        "int": _int,
        "money": lambda r: _money(r, currency),
        "decimal": lambda r: _decimal(r, None),
        "bool": _bool,
        "time": _time,
        "status": _status,
        "currency": _currency,
    }
    return converters[kind](raw)


# ---- the header ------------------------------------------------------------------------------


def _suggest(name: str) -> str:
    if name in _HINTS:
        return f": did you mean {_HINTS[name]}?"
    close = difflib.get_close_matches(name.replace(" ", "_").replace("-", "_"), COLUMNS, n=1)
    return f": did you mean {close[0]}?" if close else ""


def _header(line: int, cells: list[Any], problems: _Problems) -> tuple[dict[int, str], set[str]]:
    """Column index -> known column name; and the required columns that are missing."""
    index: dict[int, str] = {}
    seen: dict[str, int] = {}
    for i, raw in enumerate(cells):
        if _empty(raw):
            continue
        written = str(raw).strip()
        name = written.lower()
        if name in seen:
            problems.add(
                [line],
                name,
                f"column {name} appears twice (columns {get_column_letter(seen[name] + 1)} and "
                f"{get_column_letter(i + 1)}): keep one",
            )
        elif name in COLUMNS:
            seen[name] = i
            index[i] = name
        else:
            # A misspelt column must not be dropped silently: its data would be lost unseen.
            hint = _suggest(name)
            if hint:
                msg = f"unknown column {written!r}{hint} Rename or delete it"
            else:
                msg = (
                    f"unknown column {written!r}: rename or delete it (known columns: "
                    f"{', '.join(COLUMNS)})"
                )
            problems.add([line], written, msg)
    missing = {name for name in REQUIRED_COLUMNS if name not in seen}
    for name in sorted(missing, key=REQUIRED_COLUMNS.index):
        problems.add([line], name, f"the required column {name} is missing: add it to the header")
    return index, missing


# ---- building orders -------------------------------------------------------------------------


@dataclass
class _Row:
    line: int
    cells: dict[str, Any]  # known column -> raw, non-empty cells only


class _OrderBuilder:
    """Turns the rows of one order number into an OrderIn, recording every problem found."""

    def __init__(
        self, order_no: str, rows: list[_Row], missing: set[str], problems: _Problems
    ) -> None:
        self.order_no = order_no
        self.rows = rows
        self.missing = missing
        self.problems = problems
        self.start = len(problems.items)
        self.sources: dict[str, list[int]] = {}

    def cell(self, row: _Row, name: str, currency: str | None) -> tuple[bool, Any]:
        raw = row.cells.get(name)
        if raw is None:
            return False, None
        try:
            return True, _convert(COLUMNS[name].kind, raw, currency)
        except _CellError as exc:
            self.problems.add([row.line], name, str(exc))
            return False, None

    def order_value(self, name: str, currency: str | None) -> tuple[bool, Any]:
        """The one value the order's rows agree on; blank cells on some rows are fine (a
        merged cell in a spreadsheet reads as blank below its first row)."""
        given: list[tuple[int, Any]] = []
        for row in self.rows:
            ok, value = self.cell(row, name, currency)
            if ok:
                given.append((row.line, value))
        if not given:
            return False, None
        first_line, first = given[0]
        for line, value in given[1:]:
            if value != first:
                self.problems.add(
                    [line],
                    name,
                    f"{_show(value)} here but {_show(first)} on line {first_line}: every row of "
                    f"order {self.order_no} must have the same {name} (or leave it blank after "
                    "the first row)",
                )
        self.sources[name] = [line for line, _ in given]
        return True, first

    def build(self) -> _ParsedOrder | None:
        data: dict[str, Any] = {"order_no": self.order_no, "customer": {}, "lines": []}
        self.sources["order_no"] = [row.line for row in self.rows]
        has_currency, currency = self.order_value("currency", None)
        if has_currency:
            data["currency"] = currency
        elif not self.problems.reported([r.line for r in self.rows], "currency"):
            currency = "CNY"  # OrderIn's default, needed here to check the decimal places
        for name, column in COLUMNS.items():
            if not column.order_level or name in ("order_no", "currency"):
                continue
            ok, value = self.order_value(name, currency)
            if ok:
                target = data["customer"] if column.target[0] == "customer" else data
                target[column.target[-1]] = value
        first = self.rows[0].line
        for name in ("status", "placed_at"):
            lines = [r.line for r in self.rows]
            absent = name not in self.sources and name not in self.missing
            if absent and not self.problems.reported(lines, name):
                self.problems.add(
                    [first], name, f"{name} is empty for order {self.order_no}: fill it in"
                )
        sku_lines: dict[str, int] = {}
        for row in self.rows:
            line: dict[str, Any] = {}
            for name, column in COLUMNS.items():
                if column.order_level:
                    continue
                ok, value = self.cell(row, name, currency)
                if ok:
                    line[column.target[0]] = value
                elif (
                    name in REQUIRED_COLUMNS
                    and name not in self.missing
                    and not self.problems.reported([row.line], name)
                ):
                    self.problems.add(
                        [row.line], name, f"{name} is empty: every row needs its {name}"
                    )
            sku = line.get("sku")
            if sku is not None:
                if sku in sku_lines:
                    self.problems.add(
                        [row.line],
                        "sku",
                        f"SKU {sku} appears twice in order {self.order_no} (also on line "
                        f"{sku_lines[sku]}): put the whole quantity on one row",
                    )
                sku_lines.setdefault(sku, row.line)
            data["lines"].append(line)
        try:
            order = OrderIn.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                lines, where = self.locate(err["loc"])
                if where in self.missing or self.problems.reported(lines, where):
                    continue  # already said, at the header or at the cell
                self.problems.add(lines, where, _pydantic_msg(err, where))
            return None
        if len(self.problems.items) > self.start:
            return None
        return _ParsedOrder(order, [row.line for row in self.rows], self.sources)

    def locate(self, loc: Sequence[int | str]) -> tuple[list[int], str]:
        """Spreadsheet lines and column of an OrderIn field path, e.g. ('lines', 1, 'discount')."""
        return _locate(loc, [r.line for r in self.rows], self.sources)


def _locate(
    loc: Sequence[int | str], lines: list[int], sources: dict[str, list[int]]
) -> tuple[list[int], str]:
    if not loc:
        return lines, "order_no"
    if loc[0] == "lines":
        if len(loc) >= 3 and isinstance(loc[1], int) and 0 <= loc[1] < len(lines):
            return [lines[loc[1]]], _LINE.get(str(loc[2]), str(loc[2]))
        return lines, "sku"
    if loc[0] == "customer":
        key: tuple[str, ...] = ("customer", str(loc[1])) if len(loc) > 1 else ("customer", "name")
    else:
        key = (str(loc[0]),)
    column = _ORDER.get(key, "_".join(key))
    return sources.get(column) or lines, column


def _pydantic_msg(err: ErrorDetails, column: str) -> str:
    kind = err["type"]
    if kind == "missing":
        return f"{column} is required: fill it in"
    if kind == "string_pattern_mismatch" and column == "order_no":
        return f"order number {err['input']!r} may contain only letters, digits, '_', '-' and '.'"
    value = err.get("input")
    limit = err.get("ctx", {}).get("ge")
    if kind == "greater_than_equal" and limit is not None:
        return f"{column} must be at least {limit} (got {_show(value)})"
    if value is None or isinstance(value, dict | list):
        return str(err["msg"])
    return f"{err['msg']} (got {_show(value)})"


def _parse(path: Path, max_rows: int = IMPORT_MAX_ROWS) -> tuple[list[_ParsedOrder], int]:
    """Every order of the file with the lines it came from, and the number of data rows."""
    source = _read_rows(path)
    try:
        return _parse_rows(path, _limited(path, source, max_rows))
    finally:
        if isinstance(source, Generator):
            source.close()  # the workbook closes now, even when a problem stopped the reading


def _parse_rows(path: Path, rows: Iterator[Row]) -> tuple[list[_ParsedOrder], int]:
    problems = _Problems()
    first = next((row for row in rows if any(map(_not_empty, row[1]))), None)
    if first is None:
        raise _fail(path, "the file is empty: it needs a header row and one row per order line")
    # Line numbers are the spreadsheet's own, so blank rows above the header do no harm.
    header_line, header_cells = first
    if not any(str(c).strip().lower() in COLUMNS for c in header_cells if not _empty(c)) and any(
        ";" in str(c) or "\t" in str(c) for c in header_cells if not _empty(c)
    ):
        # One line of advice beats a complaint about every column of a semicolon CSV.
        raise _fail(path, "columns seem separated by ';' or tabs: save the file as CSV UTF-8")
    index, missing = _header(header_line, header_cells, problems)
    if len(missing) == len(REQUIRED_COLUMNS):
        # Not an order file at all (none of the required columns): said before any row is
        # read. With some of them, the rows are read too, so one round of fixes is enough.
        errors = problems.as_errors()
        raise InvalidInput(
            f"{path.name}: {len(errors)} problem(s) in the header; fix them and import again "
            "(nothing was imported)",
            errors,
        )
    unnamed: dict[int, int] = {}
    groups: dict[str, list[_Row]] = {}
    count = 0
    for line, cells in rows:
        if not any(map(_not_empty, cells)):
            continue  # trailing blank rows are normal in spreadsheets
        count += 1
        row = _Row(line, {})
        for i, raw in enumerate(cells):
            if _empty(raw):
                continue
            if i in index:
                row.cells[index[i]] = raw.strip() if isinstance(raw, str) else raw
            elif i >= len(header_cells) or _empty(header_cells[i]):
                unnamed.setdefault(i, line)
        try:
            order_no = _text(row.cells["order_no"]) if "order_no" in row.cells else ""
        except _CellError as exc:
            problems.add([line], "order_no", str(exc))
            continue
        if not order_no:
            if "order_no" not in missing:
                problems.add([line], "order_no", "order_no is empty: every row needs its order")
            continue
        groups.setdefault(order_no, []).append(row)
    for i, line in sorted(unnamed.items()):
        letter = get_column_letter(i + 1)
        problems.add(
            [line], f"column {letter}", "a value under no header: name the column or clear it"
        )
    if count == 0:
        problems.add([2], "order_no", "no order rows below the header")
    parsed = []
    for order_no, group in groups.items():
        built = _OrderBuilder(order_no, group, missing, problems).build()
        if built is not None:
            parsed.append(built)
    if problems.items:
        errors = problems.as_errors()
        raise InvalidInput(
            f"{path.name}: {len(errors)} problem(s) found; fix them and import again "
            "(nothing was imported)",
            errors,
        )
    return parsed, count


def _not_empty(value: Any) -> bool:
    return not _empty(value)


# ---- public API ------------------------------------------------------------------------------


def parse_order_file(path: Path, max_rows: int = IMPORT_MAX_ROWS) -> list[OrderIn]:
    """Read a .csv or .xlsx order file into orders, in the order they first appear.

    Raises InvalidInput listing every problem, each with loc "line N, column" (the header is
    line 1), if any row is bad; then no order is returned at all.
    """
    parsed, _ = _parse(Path(path), max_rows)
    return [p.order for p in parsed]


def import_orders(
    *,
    session: Session,
    path: Path,
    now: datetime,
    dry_run: bool = False,
    max_rows: int = IMPORT_MAX_ROWS,
    limits: Limits = DEFAULTS,
) -> ImportReport:
    """Parse the whole file, then upsert each order inside the caller's session.

    The caller commits or rolls back. The work runs in a savepoint that is kept only when
    every row and every order is good: problems from upsert_order are collected across all
    orders and raised together, with the spreadsheet lines in each loc (InvalidInput; or
    Conflict when the only problems are orders with cases whose lines would change). A dry run
    does the same work and returns the same report as a real run, then rolls the savepoint
    back, so nothing is written whatever the caller does next.
    """
    parsed, rows = _parse(Path(path), max_rows)
    report = ImportReport(rows=rows, dry_run=dry_run)
    invalid: list[dict[str, Any]] = []
    conflicts: list[dict[str, Any]] = []
    # A savepoint, so that a bad file or a dry run leaves the caller's transaction as it was
    # even if the caller commits by mistake.
    savepoint = session.begin_nested()
    try:
        for item in parsed:
            try:
                _, outcome = upsert_order(
                    session=session, data=item.order, now=now, loc="order", limits=limits
                )
            except InvalidInput as exc:
                invalid.extend(_relocate(exc.errors, item))
                continue
            except Conflict as exc:
                # The money fields it would change, each at its spreadsheet line and column.
                named = exc.details.get("errors") or []
                conflicts.extend(
                    _relocate(named, item)
                    if named
                    else [{"loc": _loc(item.lines, "order_no"), "msg": exc.message}]
                )
                continue
            _record(report, outcome, item.order.order_no)
    except BaseException:
        savepoint.rollback()
        raise
    if invalid or conflicts or dry_run:
        savepoint.rollback()
    else:
        savepoint.commit()
    if invalid:
        errors = sorted(invalid + conflicts, key=_first_line)
        raise InvalidInput(
            f"{Path(path).name}: {len(errors)} problem(s) found; fix them and import again "
            "(nothing was imported)",
            errors,
        )
    if conflicts:
        raise Conflict(
            f"{Path(path).name}: "
            + "; ".join(f"{c['loc']}: {c['msg']}" for c in conflicts)
            + " (nothing was imported)",
            errors=conflicts,
        )
    return report


def _record(report: ImportReport, outcome: UpsertOutcome, order_no: str) -> None:
    outcomes: dict[str, list[str]] = {
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
    }
    outcomes[outcome].append(order_no)


def _relocate(errors: list[dict[str, Any]], item: _ParsedOrder) -> list[dict[str, Any]]:
    """upsert_order's locs ("order.lines.1.discount") as spreadsheet lines and columns."""
    out = []
    for err in errors:
        path = str(err.get("loc", "")).split(".")
        if path and path[0] == "order":
            path = path[1:]
        loc: list[int | str] = [int(p) if p.isdigit() else p for p in path if p]
        lines, column = _locate(loc, item.lines, item.sources)
        out.append({"loc": _loc(lines, column), "msg": err.get("msg", "")})
    return out


def _first_line(error: dict[str, Any]) -> int:
    match = re.search(r"\d+", str(error["loc"]))
    return int(match.group()) if match else 0
