"""Order files for import-orders: csv (UTF-8 and GBK) and xlsx in, every bad row reported with its
spreadsheet line, all or nothing, and a re-import that changes nothing."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import locs, order_count
from tests.factories import SAMPLE, sample_rows, write_csv, write_xlsx, xlsx_one_line
from tickets.exceptions import Conflict, InvalidInput
from tickets.models import Order, Ticket
from tickets.orders.importer import _float_amount, import_orders, parse_order_file

MONEY_COLUMNS = {"shipping_fee", "order_discount", "unit_price", "line_discount", "gift_value"}


def test_sample_csv_parses_into_orders() -> None:
    orders = parse_order_file(SAMPLE)

    assert [o.order_no for o in orders] == ["TB20240301001", "JD20240302017", "SHOP-1003"]
    tea = orders[0]
    assert [ln.sku for ln in tea.lines] == ["TEA-LJ-250", "CUP-GW-01", "GIFT-TOWEL"]
    assert tea.order_discount == Decimal("20.00")
    assert tea.lines[0].title == "西湖龙井 明前特级 250g"
    assert tea.lines[1].discount == Decimal("10.00")
    assert tea.lines[2].gift_value == Decimal("15.00")
    assert tea.lines[2].no_reason_return is False  # 否
    assert tea.customer.name == "张伟"
    assert tea.placed_at.utcoffset() is not None
    shirt = orders[2]
    assert shirt.currency == "USD"
    assert shirt.lines[0].title == "Linen Shirt, Sky Blue (M)"
    assert shirt.exchange_rate == Decimal("7.1")
    assert shirt.customer.telegram_user_id == 123456789


def test_gbk_csv_imports_like_utf8(tmp_path: Path) -> None:
    gbk = write_csv(tmp_path / "taobao.csv", sample_rows(), encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        gbk.read_bytes().decode("utf-8")  # the test would prove nothing otherwise

    assert parse_order_file(gbk) == parse_order_file(SAMPLE)


def test_utf8_bom_and_loose_headers_are_accepted(tmp_path: Path) -> None:
    rows = sample_rows()
    rows[0] = [f"  {name.upper()} " for name in rows[0]]
    path = write_csv(tmp_path / "excel.csv", rows, encoding="utf-8-sig")

    assert parse_order_file(path) == parse_order_file(SAMPLE)


def typed(header: list[str], row: list[str]) -> list[Any]:
    """A sample row as a spreadsheet would hold it: numbers and booleans, not text."""
    out: list[Any] = []
    for name, value in zip(header, row, strict=True):
        if value and name in MONEY_COLUMNS:
            out.append(float(value))
        elif value and name in ("quantity", "customer_telegram_user_id", "customer_phone"):
            out.append(int(value) if value.isdigit() else value)
        elif value and name in ("presale", "no_reason_return"):
            out.append(value in ("是", "yes", "true"))
        else:
            out.append(value or None)
    return out


def test_xlsx_with_number_cells_reads_like_the_csv(tmp_path: Path) -> None:
    header, *rows = sample_rows()
    path = write_xlsx(tmp_path / "orders.xlsx", [header] + [typed(header, r) for r in rows])

    assert parse_order_file(path) == parse_order_file(SAMPLE)


def test_xlsx_money_keeps_its_cents(tmp_path: Path) -> None:
    path = xlsx_one_line(tmp_path, shipping_fee=0.1 + 0.2, unit_price=19.99)

    (order,) = parse_order_file(path)

    assert str(order.lines[0].unit_price) == "19.99"
    assert order.shipping_fee == Decimal("0.30")


def test_float_artefacts_round_to_the_cent_but_real_extra_decimals_do_not() -> None:
    # openpyxl writes 15 digits, so a formula's 0.30000000000000004 (as Excel may store it)
    # cannot be produced through it; the conversion is checked directly.
    assert str(_float_amount(0.1 + 0.2, 2)) == "0.30"
    assert str(_float_amount(19.99, 2)) == "19.99"
    assert str(_float_amount(19.999, 2)) == "19.999"  # left for the decimal-places check
    assert str(_float_amount(1234.5, 0)) == "1234.5"


def test_xlsx_long_numbers_that_lost_digits_are_refused(tmp_path: Path) -> None:
    # A 19-digit order number typed into a number cell keeps only 15 digits.
    path = xlsx_one_line(tmp_path, order_no=1234567890123456789)

    with pytest.raises(InvalidInput) as exc:
        parse_order_file(path)

    assert "lost its last digits" in locs(exc)["line 2, order_no"]


def test_xlsx_date_cells_and_extra_decimals_are_refused(tmp_path: Path) -> None:
    spreadsheet_date = datetime(2024, 3, 1, 10, 0)  # noqa: DTZ001 - what openpyxl reads back
    path = xlsx_one_line(tmp_path, placed_at=spreadsheet_date, unit_price=19.999)

    with pytest.raises(InvalidInput) as exc:
        parse_order_file(path)

    found = locs(exc)
    assert "no UTC offset" in found["line 2, placed_at"]
    assert "2024-03-01T10:00:00+08:00" in found["line 2, placed_at"]
    assert "decimal places" in found["line 2, unit_price"]


def bad_file(tmp_path: Path) -> Path:
    header = ["order_no", "status", "placed_at", "sku", "quantity", "unit_price", "colour"]
    rows = [
        header,
        ["A1", "paid", "2024-03-01T10:00:00+08:00", "S1", "1", "10.00", "red"],  # line 2: fine
        ["A2", "paid", "2024-03-01T10:00:00+08:00", "S2", "1", "12,50", ""],  # bad amount
        ["A3", "paid", "2024-03-01T10:00:00+08:00", "", "1", "5.00", ""],  # no sku
        ["A4", "paid", "2024-03-01 10:00", "S4", "1", "5.00", ""],  # naive time
        ["A1", "shipped", "2024-03-01T10:00:00+08:00", "S5", "1", "5.00", ""],  # disagrees
        ["A5", "paid", "2024-03-01T10:00:00+08:00", "S6", "0", "-1", ""],  # pydantic + negative
    ]
    return write_csv(tmp_path / "bad.csv", rows)


def test_every_bad_row_is_listed_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_order_file(bad_file(tmp_path))

    found = locs(exc)
    assert set(found) == {
        "line 1, colour",
        "line 3, unit_price",
        "line 4, sku",
        "line 5, placed_at",
        "line 6, status",
        "line 7, quantity",
        "line 7, unit_price",
    }
    assert "unknown column" in found["line 1, colour"]
    assert "19.99" in found["line 3, unit_price"]
    assert "+08:00" in found["line 5, placed_at"]
    assert "line 2" in found["line 6, status"]
    assert "at least 1" in found["line 7, quantity"]
    assert "negative" in found["line 7, unit_price"]
    # Listed in the order of the file, so a person can work down it.
    assert exc.value.errors[0]["loc"] == "line 1, colour"


def test_a_bad_file_imports_nothing(tmp_path: Path, session: Session, now: datetime) -> None:
    with pytest.raises(InvalidInput):
        import_orders(session=session, path=bad_file(tmp_path), now=now)

    assert order_count(session) == 0


def test_header_problems_are_named(tmp_path: Path) -> None:
    rows = [
        ["order_no", "status", "sku", "qty", "unit_price", "discount", "sku"],
        ["A1", "paid", "S1", "1", "10.00", "1.00", "S1", "stray"],
    ]

    with pytest.raises(InvalidInput) as exc:
        parse_order_file(write_csv(tmp_path / "h.csv", rows))

    found = locs(exc)
    assert "did you mean quantity" in found["line 1, qty"]
    assert "line_discount" in found["line 1, discount"]
    assert "twice" in found["line 1, sku"]
    assert "missing" in found["line 1, placed_at"]
    assert "missing" in found["line 1, quantity"]
    assert "no header" in found["line 2, column H"]
    # A missing column is said once at the header, not again on every row.
    assert not any(loc.startswith("line 2, placed_at") for loc in found)


def test_rows_of_an_order_may_be_apart_and_blank_after_the_first(tmp_path: Path) -> None:
    header = ["order_no", "status", "placed_at", "sku", "quantity", "unit_price", "presale"]
    rows = [
        header,
        ["A1", "paid", "2024-03-01T10:00:00+08:00", "S1", "1", "10.00", "是"],
        ["B1", "unpaid", "2024-03-02T10:00:00Z", "S9", "3", "1.5", "no"],
        ["A1", "", "", "S2", "2", "4", ""],  # a merged cell reads as blank below its first row
        ["", "", "", "", "", "", ""],
    ]

    orders = parse_order_file(write_csv(tmp_path / "apart.csv", rows))

    assert [(o.order_no, len(o.lines), o.presale) for o in orders] == [
        ("A1", 2, True),
        ("B1", 1, False),
    ]


def test_other_file_types_are_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "orders.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0")

    with pytest.raises(InvalidInput) as exc:
        parse_order_file(path)

    assert "use .csv or .xlsx" in exc.value.errors[0]["msg"]


def test_import_then_reimport_changes_nothing(session: Session, now: datetime) -> None:
    first = import_orders(session=session, path=SAMPLE, now=now)
    again = import_orders(session=session, path=SAMPLE, now=now)

    assert (first.created, first.updated, first.unchanged) == (
        ["TB20240301001", "JD20240302017", "SHOP-1003"],
        [],
        [],
    )
    assert first.rows == 5
    assert again.unchanged == first.created
    assert again.created == again.updated == []
    assert "3 unchanged" in again.summary()
    assert order_count(session) == 3
    tea = session.scalar(select(Order).where(Order.order_no == "TB20240301001"))
    assert tea is not None
    assert tea.order_discount == 2000
    assert [ln.unit_price for ln in tea.lines] == [16800, 8990, 0]


def test_dry_run_reports_the_same_and_writes_nothing(session: Session, now: datetime) -> None:
    dry = import_orders(session=session, path=SAMPLE, now=now, dry_run=True)

    assert dry.created == ["TB20240301001", "JD20240302017", "SHOP-1003"]
    assert "dry run" in dry.summary()
    assert order_count(session) == 0
    real = import_orders(session=session, path=SAMPLE, now=now)
    assert (real.created, real.updated, real.unchanged) == (dry.created, dry.updated, dry.unchanged)


def test_upsert_problems_come_back_with_lines(
    tmp_path: Path, session: Session, now: datetime
) -> None:
    header = [
        "order_no",
        "status",
        "placed_at",
        "sku",
        "quantity",
        "unit_price",
        "line_discount",
        "order_discount",
    ]
    rows = [
        header,
        ["OK1", "paid", "2024-03-01T10:00:00+08:00", "S1", "1", "10.00", "", ""],
        ["C1", "paid", "2024-03-01T10:00:00+08:00", "S1", "1", "10.00", "", "50.00"],
        ["C1", "paid", "2024-03-01T10:00:00+08:00", "S2", "1", "10.00", "", "50.00"],
        ["D1", "paid", "2024-03-01T10:00:00+08:00", "S1", "1", "10.00", "11.00", ""],
    ]

    with pytest.raises(InvalidInput) as exc:
        import_orders(session=session, path=write_csv(tmp_path / "u.csv", rows), now=now)

    found = locs(exc)
    assert "exceeds" in found["lines 3, 4, order_discount"]
    assert "exceeds" in found["line 5, line_discount"]
    assert order_count(session) == 0  # OK1 was good, but the file is all or nothing


def test_changing_an_order_with_cases_is_a_conflict_naming_its_lines(
    tmp_path: Path, session: Session, now: datetime
) -> None:
    import_orders(session=session, path=SAMPLE, now=now)
    tea = session.scalar(select(Order).where(Order.order_no == "TB20240301001"))
    assert tea is not None
    session.add(
        Ticket(
            number="AS-1",
            kind="refund_only",
            status="submitted",
            group="service",
            order_id=tea.id,
            customer_id=tea.customer_id,
            reason="no_reason",
            channel="api",
        )
    )
    session.flush()
    rows = sample_rows()
    price = rows[0].index("unit_price")
    rows[1][price] = "158.00"

    with pytest.raises(Conflict) as exc:
        import_orders(session=session, path=write_csv(tmp_path / "c.csv", rows), now=now)

    # The line and the field (the order's money is frozen once it has cases).
    assert exc.value.details["errors"][0]["loc"] == "line 2, unit_price"
    assert "168.00 -> 158.00" in exc.value.details["errors"][0]["msg"]
    assert "cannot change on an order with cases" in exc.value.message
    session.refresh(tea)
    assert tea.lines[0].unit_price == 16800
