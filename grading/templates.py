"""Value templates: the CSV and XLSX files the tool produces for a round, and reading them back.

One row per city and indicator. The columns an assessor fills are `value`, `source`, `link`,
`note` and `evidence_file` (a path relative to the template, uploaded with its SHA-256 on
import). Other columns are there to read, and are checked on import so that a row pasted into
the wrong place is refused rather than entered against the wrong indicator.
"""

from __future__ import annotations

import csv
import hashlib
import io
import mimetypes
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from cim.errors import InvalidInput, InvalidRows
from grading.access import Actor
from grading.catalogue import Catalogue, Indicator, Qualitative, YesNo
from grading.evidence import EvidenceFile
from grading.rounds import CityEntry, cities, get_round
from grading.values import KEEP, ValueEntry, coerce_value, entered, set_values

COLUMNS = (
    "city_code",
    "city_name",
    "indicator_id",
    "indicator_name",
    "unit",
    "accepted",
    "value",
    "source",
    "link",
    "note",
    "evidence_file",
)
REQUIRED = ("city_code", "indicator_id", "value")
MAX_ROWS = 100_000
MAX_COLUMNS = 100  # a template has 11; a wider sheet or line is not one
MAX_IMPORT_BYTES = 20 * 1024 * 1024


def accepted(catalogue: Catalogue, indicator_id: str) -> str:
    """What the value column takes for an indicator, in words."""
    ind = next(i for i in catalogue.indicators if i.id == indicator_id)
    if isinstance(ind.scoring, YesNo):
        return "yes/no 是/否"
    if isinstance(ind.scoring, Qualitative):
        return " / ".join(ind.scoring.best_first())
    better = "higher is better" if ind.direction == "higher" else "lower is better"
    return f"number ({better})"


def template_rows(
    catalogue: Catalogue,
    cities: list[CityEntry],
    entered: dict[str, dict[str, dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """The rows of a round's template, with the values entered so far."""
    entered = entered or {}
    rows = []
    for city in cities:
        for ind in catalogue.indicators:
            have = entered.get(city.code, {}).get(ind.id, {})
            if have.get("computed") is not None:  # the template shows what the city reported
                have = have.get("alternative") or {}
            value = have.get("value")
            if isinstance(value, bool):
                value = "yes" if value else "no"
            elif ind.unit == "%" and isinstance(value, int | float) and 0 < value <= 1:
                value = f"{value:g}%"  # under one percent: with its sign, or it reads ambiguous
            rows.append(
                {
                    "city_code": city.code,
                    "city_name": city.name_zh,
                    "indicator_id": ind.id,
                    "indicator_name": f"{ind.name_zh} / {ind.name_en}",
                    "unit": ind.unit,
                    "accepted": accepted(catalogue, ind.id),
                    "value": "" if value is None else value,
                    "source": have.get("source") or "",
                    "link": have.get("link") or "",
                    "note": have.get("note") or "",
                    "evidence_file": "",
                }
            )
    return rows


# what makes a spreadsheet (Excel, LibreOffice, WPS) run text as a formula: these first
# characters, the full-width ones too, also after leading blanks; a leading tab or line break
FORMULA_START = ("=", "+", "-", "@", "＝", "＋", "－", "＠")
_BLANKS = " \t\r\n\u00a0\u3000"


def formula_like(text: str) -> bool:
    """Whether a spreadsheet could read this text as a formula."""
    return text[:1] in ("\t", "\r", "\n") or text.lstrip(_BLANKS).startswith(FORMULA_START)


def _safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (removed on import)."""
    if isinstance(value, str) and formula_like(value):
        return "'" + value
    return value


def template_bytes(rows: list[dict[str, Any]], name: str) -> bytes:
    """The rows as a template file named `name`: CSV (UTF-8 with a byte-order mark, so Excel
    reads Chinese) or XLSX, chosen by the name's suffix.

    Raises:
        InvalidInput: a suffix other than .csv or .xlsx.
    """
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: _safe(v) for k, v in row.items()} for row in rows)
        return text.getvalue().encode("utf-8-sig")
    if suffix == ".xlsx":
        from openpyxl import Workbook
        from openpyxl.styles import Font, PatternFill

        book = Workbook()
        sheet = book.active
        sheet.title = "values"
        sheet.append(list(COLUMNS))
        for row in rows:
            sheet.append([_safe(row[c]) for c in COLUMNS])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        fill = PatternFill("solid", fgColor="FFF2CC")
        for col in ("value", "source", "link", "note", "evidence_file"):
            letter = sheet.cell(row=1, column=COLUMNS.index(col) + 1).column_letter
            sheet.column_dimensions[letter].width = 18
            for cell in sheet[letter][1:]:
                cell.fill = fill
        sheet.column_dimensions["D"].width = 40
        sheet.freeze_panes = "A2"
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()
    raise InvalidInput(f"{name}: templates are .csv or .xlsx")


@dataclass(frozen=True)
class Formula:
    """A spreadsheet cell holding a formula: refused, never read as its cached result."""

    text: str


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    if text.startswith("'") and formula_like(text[1:]):
        return text[1:].strip()  # escaped by template_bytes
    return text.strip()


_QUOTED = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]')


def _shows_percent(number_format: str | None) -> bool:
    """True when a number format shows the value times 100 with a percent sign (a `%` in
    quotes, escaped or in brackets is only text)."""
    return "%" in _QUOTED.sub("", number_format or "")


def _xlsx_cell(cell: Any) -> str | Formula:
    """What a cell of a template shows: a formula as such, a percent-formatted number as the
    percentage it shows (0.975 formatted 0.0% is "97.5%")."""
    if getattr(cell, "data_type", None) == "f":
        return Formula(str(cell.value))
    value = cell.value
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and _shows_percent(getattr(cell, "number_format", None))
    ):
        shown = Decimal(repr(value)) * 100
        return f"{shown.normalize():f}%"
    return _cell(value)


def _bounded(rows: Any, name: str) -> list[list[Any]]:
    table = []
    for row in rows:
        table.append(row)
        if len(table) > MAX_ROWS:
            raise InvalidInput(f"{name}: more than {MAX_ROWS:,} rows; the limit is {MAX_ROWS:,}")
    return table


def _csv_rows(content: bytes, name: str) -> list[list[Any]]:
    """A CSV's rows, refused before parsing when a line holds more fields than any template
    could (a line of commas would otherwise become millions of empty cells)."""
    text = content.decode("utf-8-sig")
    widest = max((line.count(",") for line in text.splitlines()), default=0)
    if widest >= MAX_COLUMNS:
        raise InvalidInput(
            f"{name}: a line has {widest + 1:,} fields; a template has {len(COLUMNS)} columns "
            f"(the limit is {MAX_COLUMNS})"
        )
    return _bounded(csv.reader(io.StringIO(text, newline="")), name)


def _xlsx_rows(sheet: Any, name: str) -> list[list[Any]]:
    """A sheet's rows, read only as wide as its header (one more column, to see a value put
    beside the table): a cell far to the right never makes every row that wide."""
    declared = sheet.max_column or 0  # the sheet's own dimension, read without its cells
    if declared > MAX_COLUMNS:
        raise InvalidInput(
            f"{name} sheet {sheet.title}: the sheet spans {declared:,} columns; a template has "
            f"{len(COLUMNS)} (the limit is {MAX_COLUMNS}): delete the cells to the right of it"
        )
    head = next(sheet.iter_rows(min_row=1, max_row=1, max_col=MAX_COLUMNS), ())
    width = max((i + 1 for i, c in enumerate(head) if _cell(c.value)), default=0)
    rows = sheet.iter_rows(max_col=max(width, 1) + 1)
    return _bounded(([_xlsx_cell(c) for c in row] for row in rows), name)


def _read_rows(content: bytes, name: str) -> list[tuple[str, dict[str, str | Formula]]]:
    """The non-empty rows of a template, each with where it is (file, sheet and row)."""
    suffix = Path(name).suffix.lower()
    try:
        if len(content) > MAX_IMPORT_BYTES:
            raise InvalidInput(
                f"{name}: {len(content):,} bytes; a value file is at most {MAX_IMPORT_BYTES:,} "
                "(a round of 100 cities and 100 indicators is under 2 MB)"
            )
        if suffix == ".csv":
            table: list[list[Any]] = _csv_rows(content, name)
            place = name
        elif suffix == ".xlsx":
            from openpyxl import load_workbook

            # not data_only: a formula must be seen as one, not as the result Excel cached
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=False)
            sheet = book["values"] if "values" in book.sheetnames else book.active
            table = _xlsx_rows(sheet, name)
            place = f"{name} sheet {sheet.title}"
            book.close()
        else:
            raise InvalidInput(f"{name}: value files are .csv or .xlsx (from `cim grade template`)")
    except UnicodeDecodeError:
        raise InvalidInput(f"{name}: not UTF-8 text; save the CSV as UTF-8") from None
    except InvalidInput:
        raise
    except Exception as exc:  # openpyxl raises many kinds on a broken workbook
        raise InvalidInput(f"{name}: not a readable XLSX workbook ({exc})") from None
    if not table:
        raise InvalidInput(f"{name}: empty file; expected the header {', '.join(COLUMNS)}")
    header = [str(h).strip().lower() for h in table[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InvalidInput(f"{name}: header lacks the column(s) {', '.join(missing)}")
    rows = []
    for n, raw in enumerate(table[1:], start=2):
        cells = [v if isinstance(v, Formula) else _cell(v) for v in raw]
        if not any(cells):
            continue
        if len(raw) > len(header) and any(cells[len(header) :]):
            raise InvalidInput(f"{place} row {n}: {len(raw)} cells but {len(header)} columns")
        rows.append((f"{place} row {n}", dict(zip(header, cells, strict=False))))
    return rows


def read_values(
    content: bytes,
    name: str,
    catalogue: Catalogue,
    folder: Path | None = None,
    reason: str | None = None,
) -> tuple[list[ValueEntry], list[EvidenceFile], int]:
    """The values a filled template (the bytes of a .csv or .xlsx file; `name` says which, and
    names it in messages) enters, rows with an empty value left out; the evidence files they
    name; and how many rows were left empty.

    `evidence_file` is `sha256:<hex>` of evidence uploaded before, or, when the template's
    `folder` is given (on the command line), a path relative to it. An empty source, link,
    note or evidence cell keeps what a value already has; `reason` says why values change.

    Raises:
        InvalidRows: every row that cannot be entered, each naming the file, sheet, row,
        indicator, value and why: an unknown indicator, an indicator name that does not match
        its id, a formula, a value the indicator cannot take, a missing evidence file, a row
        repeated.
        InvalidInput: a file that is not a template at all.
    """
    indicators = {i.id: i for i in catalogue.indicators}
    entries: list[ValueEntry] = []
    files: dict[str, EvidenceFile] = {}
    seen: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    empty = 0
    for place, row in _read_rows(content, name):
        code, ind_id = str(row.get("city_code", "")), str(row.get("indicator_id", ""))
        where = f"{place}, city {code or '?'}, indicator {ind_id or '?'}"
        try:
            formulas = [c for c, v in row.items() if isinstance(v, Formula)]
            if formulas:
                shown = ", ".join(f"{c} {row[c].text!r}" for c in formulas)  # type: ignore[union-attr]
                raise InvalidInput(
                    f"{where}: a formula ({shown}); type the value itself, not a formula"
                )
            text_row = {k: str(v) for k, v in row.items()}
            entry = _entry(text_row, where, catalogue, indicators, folder, files, name, reason)
            if (code, ind_id) in seen:
                raise InvalidInput(f"{where}: the same city and indicator as {seen[code, ind_id]}")
            seen[code, ind_id] = place
            if entry is None:
                empty += 1
            else:
                entries.append(entry)
        except InvalidInput as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidRows(name, problems)
    return entries, list(files.values()), empty


def _entry(
    row: dict[str, str],
    where: str,
    catalogue: Catalogue,
    indicators: dict[str, Indicator],
    folder: Path | None,
    files: dict[str, EvidenceFile],
    name: str,
    reason: str | None = None,
) -> ValueEntry | None:
    """One row's value, checked against its indicator (None: the value is left empty).

    Raises:
        InvalidInput: naming `where`.
    """
    code, ind_id = row.get("city_code", ""), row.get("indicator_id", "")
    if not code:
        raise InvalidInput(f"{where}: column city_code is empty")
    ind = indicators.get(ind_id)
    if ind is None:
        raise InvalidInput(
            f"{where}: column indicator_id: catalogue {catalogue.id} has no indicator {ind_id!r}"
        )
    ind_name = row.get("indicator_name", "")
    if ind_name and ind.name_zh not in ind_name and ind.name_en not in ind_name:
        raise InvalidInput(
            f"{where}: indicator_name {ind_name!r} does not match {ind_id} "
            f"({ind.name_zh} / {ind.name_en}); was the row moved?"
        )
    if row.get("value", "") == "":
        return None
    coerce_value(ind, row["value"], f"{where}, value {row['value']!r}")
    digest = None
    evidence_name = row.get("evidence_file", "")
    if evidence_name.startswith("sha256:"):
        digest = evidence_name.removeprefix("sha256:").strip().lower()
    elif evidence_name:
        if folder is None:  # an upload: the server cannot read the caller's files
            raise InvalidInput(
                f"{where}: column evidence_file: upload {evidence_name!r} first and give "
                f"'sha256:<its hash>' here"
            )
        beside = folder.resolve()
        file = (beside / evidence_name).resolve()
        if Path(evidence_name).is_absolute() or not file.is_relative_to(beside):
            raise InvalidInput(
                f"{where}: column evidence_file: {evidence_name!r} is outside the template's "
                f"folder; put evidence files beside the template or below it"
            )
        if not file.is_file():
            raise InvalidInput(f"{where}: column evidence_file: no file {file}")
        proof = file.read_bytes()
        media = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        digest = hashlib.sha256(proof).hexdigest()
        files[digest] = EvidenceFile(file.name, proof, media)
    return ValueEntry(  # an empty cell keeps what the value has (its source, its evidence)
        city=code,
        indicator=ind_id,
        value=row["value"],
        unit=row.get("unit", ""),
        source=row.get("source") or KEEP,
        link=row.get("link") or KEEP,
        note=row.get("note") or KEEP,
        evidence_sha256=digest or KEEP,
        where=where,
        reason=reason,
        default_source=f"import {Path(name).name}",
    )


def round_template(engine: Engine, round_id: str) -> list[dict[str, Any]]:
    """The rows of a round's template, with the values entered so far.

    Raises:
        NotFound: no such round.
    """
    rnd = get_round(engine, round_id)
    return template_rows(rnd.catalogue, cities(engine, round_id), entered(engine, round_id))


@dataclass(frozen=True)
class Imported:
    """What a template import did."""

    read: int  # values read
    changed: int  # of them, values that changed
    empty: int  # rows left empty
    evidence: int  # evidence files stored with them


def import_values(
    engine: Engine,
    actor: Actor,
    round_id: str,
    content: bytes,
    name: str,
    folder: Path | None = None,
    reason: str | None = None,
) -> Imported:
    """Enter the values of a filled template (see `read_values`): all rows or none.

    Raises:
        InvalidInput: naming the file and row. Forbidden, Conflict: see `set_values`.
    """
    rnd = get_round(engine, round_id)
    entries, files, empty = read_values(content, name, rnd.catalogue, folder, reason)
    changed = set_values(engine, actor, round_id, entries, files)
    return Imported(len(entries), changed, empty, len(files))
