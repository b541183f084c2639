"""Value files cannot make a reader do unbounded work (issue 13, point 3), and text that any
spreadsheet would run as a formula is escaped in the templates the tool writes (point 13)."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest

from cim.errors import InvalidInput
from grading import templates
from grading.catalogue import built_in
from grading.rounds import CityEntry
from grading.templates import (
    COLUMNS,
    MAX_COLUMNS,
    MAX_IMPORT_BYTES,
    read_values,
    template_bytes,
    template_rows,
)

CATALOGUE = built_in("db37-3890.1-2020")
CITIES = [CityEntry("370100", "济南市", "Jinan")]


def _template(suffix: str, **first: str) -> bytes:
    rows = template_rows(CATALOGUE, CITIES)
    rows[0].update(value="88", **first)
    return template_bytes(rows, f"v{suffix}")


def _far_right_workbook() -> bytes:
    """The template with a stray cell in the sheet's last column (XFD) on every row."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(_template(".xlsx")))
    sheet = book["values"]
    for row in range(1, sheet.max_row + 1):
        sheet.cell(row=row, column=16384, value="x")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _without_dimension(xlsx: bytes) -> bytes:
    """The same workbook with the sheet's <dimension> removed, as some writers leave it."""
    src, out = zipfile.ZipFile(io.BytesIO(xlsx)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.startswith("xl/worksheets/"):
                data = re.sub(rb"<dimension [^>]*/>", b"", data)
            dst.writestr(item, data)
    return out.getvalue()


def test_a_sheet_as_wide_as_excel_allows_is_refused_before_its_cells_are_read() -> None:
    with pytest.raises(InvalidInput, match=r"spans 16,384 columns; a template has 11"):
        read_values(_far_right_workbook(), "wide.xlsx", CATALOGUE)


def test_without_a_dimension_only_the_templates_columns_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cells read per row are bounded by the header, not by the farthest cell."""
    seen = []
    cell = templates._xlsx_cell
    monkeypatch.setattr(templates, "_xlsx_cell", lambda c: seen.append(1) or cell(c))
    entries, _, _ = read_values(_without_dimension(_far_right_workbook()), "w.xlsx", CATALOGUE)
    rows = 1 + len(CATALOGUE.indicators)
    assert len(seen) <= rows * (len(COLUMNS) + 1)  # not rows × 16,384
    assert [(e.indicator, e.value) for e in entries] == [("huimin.education", "88")]


def test_a_line_of_commas_is_refused_before_it_is_parsed() -> None:
    commas = _template(".csv") + b"," * 1_000_000 + b"\n"
    with pytest.raises(InvalidInput, match=r"a line has 1,000,001 fields; a template has 11"):
        read_values(commas, "commas.csv", CATALOGUE)
    assert MAX_COLUMNS < 1_000


def test_a_value_file_has_a_size_limit() -> None:
    big = _template(".csv") + b"\n" * MAX_IMPORT_BYTES
    with pytest.raises(InvalidInput, match=r"a value file is at most 20,971,520"):
        read_values(big, "big.csv", CATALOGUE)


FORMULA_LIKE = [
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    " =1+1",
    "＝SUM(A1:A2)",
    "＋1",
    "\u3000=1",
    "@SUM(A1)",
    "-2+3",
]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
@pytest.mark.parametrize("text", FORMULA_LIKE)
def test_every_formula_start_is_escaped_and_comes_back(
    tmp_path: Path, suffix: str, text: str
) -> None:
    content = _template(suffix, note=text)
    if suffix == ".xlsx":
        from openpyxl import load_workbook

        cell = load_workbook(io.BytesIO(content))["values"]["J2"]
        assert cell.data_type == "s" and cell.value == "'" + text
    else:
        assert ("'" + text).encode() in content
    entries, _, _ = read_values(content, f"v{suffix}", CATALOGUE)
    assert entries[0].note == text.strip()
