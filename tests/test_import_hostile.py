"""Hostile order files: an .xlsx with malformed or entity-declaring XML, a zip bomb, and a sheet
of millions of rows are each refused with a clear message, never a traceback, and never read
whole (issue 12, "Clean errors")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy.orm import Session

from tests.conftest import order_count
from tests.factories import NOW, sample_rows
from tickets.exceptions import InvalidInput
from tickets.orders.importer import import_orders, parse_order_file

LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'
)


def _workbook(path: Path, rows: list[list[str]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "orders"
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _rewrite(src: Path, dst: Path, part: str, change: str | bytes) -> Path:
    """A copy of the workbook with one part's XML replaced."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            data = old.read(info.filename)
            new.writestr(info, change if info.filename == part else data)
    return dst


def _sheet_xml(src: Path) -> str:
    with zipfile.ZipFile(src) as z:
        return z.read("xl/worksheets/sheet1.xml").decode()


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    full = {
        **clean,
        "AFTERSALES_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "AFTERSALES_MEDIA_DIR": str(tmp_path / "media"),
        **env,
    }
    if not (tmp_path / "cli.db").exists():
        subprocess.run(
            [sys.executable, "-m", "api.cli", "migrate"], env=full, check=True, timeout=120
        )
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "import-orders", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
        check=False,
    )


def test_openpyxl_parses_through_defusedxml() -> None:
    from openpyxl.xml import DEFUSEDXML

    assert DEFUSEDXML is True


def test_entity_declaring_and_malformed_xml_are_a_clear_error(tmp_path: Path) -> None:
    good = _workbook(tmp_path / "good.xlsx", sample_rows())
    sheet = _sheet_xml(good)
    body = sheet.split("?>", 1)[1] if sheet.startswith("<?xml") else sheet
    bad = {
        "entities.xlsx": ("xl/worksheets/sheet1.xml", LAUGHS + body.replace("TB", "&lol3;", 1)),
        "malformed.xlsx": ("xl/worksheets/sheet1.xml", sheet[: len(sheet) // 2]),
        "workbook.xlsx": ("xl/workbook.xml", "<workbook><sheets><sheet name="),
        "strings.xlsx": ("[Content_Types].xml", LAUGHS + "<Types>&lol3;</Types>"),
    }
    for name, (part, xml) in bad.items():
        path = _rewrite(good, tmp_path / name, part, xml)
        with pytest.raises(InvalidInput) as exc:
            parse_order_file(path)
        assert "cannot read it as an .xlsx workbook" in exc.value.message, name
        assert exc.value.errors[0]["loc"] == "file"
    r = run_cli(tmp_path, str(tmp_path / "entities.xlsx"))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "cannot read it as an .xlsx workbook" in r.stderr
    assert "nothing was imported" in r.stderr


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    good = _workbook(tmp_path / "good.xlsx", sample_rows())
    # 600 MiB of spaces (legal XML whitespace) compress to well under a megabyte.
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(good) as old, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info, old.read(info.filename))
        with new.open("xl/padding.xml", "w") as pad:
            chunk = b" " * 2**20
            for _ in range(600):
                pad.write(chunk)
    assert bomb.stat().st_size < 5 * 2**20
    with pytest.raises(InvalidInput) as exc:
        parse_order_file(bomb)
    assert "unpacks to 600 MiB" in exc.value.message


def test_millions_of_rows_are_refused_while_the_sheet_streams(
    tmp_path: Path, session: Session
) -> None:
    good = _workbook(tmp_path / "good.xlsx", sample_rows())
    sheet = _sheet_xml(good)
    # One more row, three million lines down: a spreadsheet shows every blank row in between.
    far = '<row r="3000000"><c r="A3000000" t="inlineStr"><is><t>X</t></is></c></row>'
    huge = _rewrite(
        good,
        tmp_path / "huge.xlsx",
        "xl/worksheets/sheet1.xml",
        re.sub(r'<dimension ref="[^"]*"', '<dimension ref="A1:R3000000"', sheet).replace(
            "</sheetData>", far + "</sheetData>"
        ),
    )
    with pytest.raises(InvalidInput) as exc:
        import_orders(session=session, path=huge, now=NOW)
    assert "more than 100000 rows" in exc.value.message
    assert order_count(session) == 0
    # The limit is a setting; a file within it imports.
    r = run_cli(tmp_path, str(good), AFTERSALES_IMPORT_MAX_ROWS="3")
    assert r.returncode != 0
    assert "more than 3 rows" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli(tmp_path, str(good), AFTERSALES_IMPORT_MAX_ROWS="50")
    assert r.returncode == 0, r.stderr


def test_a_sheet_that_is_no_order_file_is_refused_on_its_header(tmp_path: Path) -> None:
    rows = [["name", "score"]] + [[f"n{i}", str(i)] for i in range(2000)]
    path = _workbook(tmp_path / "scores.xlsx", rows)
    with pytest.raises(InvalidInput) as exc:
        parse_order_file(path)
    assert "problem(s) in the header" in exc.value.message
    assert all(e["loc"].startswith("line 1,") for e in exc.value.errors)
