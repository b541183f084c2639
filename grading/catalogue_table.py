"""A committee's own indicator table (the spreadsheet a standard's weight table is kept in) read
into a validated catalogue, so that a committee loads the real table without writing YAML.

One row per indicator, with a header row; the column names below (or their Chinese names) in
any order:

    area, area_name_zh, area_name_en, [area_cap]        the first-level area of the indicator
    id, name_zh, name_en, unit, weight                  the indicator
    min, max, integer                                   the values it can take
    direction                                           higher/lower (正向/逆向)
    level1 … level5                                     the five star-level thresholds
    bonus, veto                                         yes/no (是/否)
    [status, source]                                    published/provisional, and where from

An area's weight is the sum of its indicators' weights. Every row is checked before anything is
written, and every bad row is reported at once.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cim.errors import InvalidInput, InvalidRows
from grading.catalogue import Catalogue

COLUMNS = {
    "area": ("area", "领域"),
    "area_name_zh": ("area_name_zh", "领域名称"),
    "area_name_en": ("area_name_en", "领域英文名"),
    "area_cap": ("area_cap", "加分上限"),
    "id": ("id", "指标编号"),
    "name_zh": ("name_zh", "指标名称"),
    "name_en": ("name_en", "指标英文名"),
    "unit": ("unit", "单位"),
    "weight": ("weight", "权重"),
    "min": ("min", "最小值"),
    "max": ("max", "最大值"),
    "integer": ("integer", "整数"),
    "direction": ("direction", "方向"),
    **{f"level{n}": (f"level{n}", f"{n}星") for n in range(1, 6)},
    "bonus": ("bonus", "加分项"),
    "veto": ("veto", "否决项"),
    "status": ("status", "依据类型"),
    "source": ("source", "依据"),
}
REQUIRED = ("area", "id", "name_zh", "name_en", "unit", "weight", "direction") + tuple(
    f"level{n}" for n in range(1, 6)
)
DIRECTIONS = {"higher": "higher", "正向": "higher", "lower": "lower", "逆向": "lower"}
YES = {"yes", "y", "true", "1", "是"}
NO = {"no", "n", "false", "0", "否", ""}
MAX_ROWS = 10_000


def read_table(content: bytes, name: str) -> list[tuple[str, dict[str, Any]]]:
    """The rows of the table's first sheet (or its sheet "indicators"), by column name, each
    with where it is.

    Raises:
        InvalidInput: not a readable .xlsx, or a header without the required columns.
    """
    if Path(name).suffix.lower() != ".xlsx":
        raise InvalidInput(f"{name}: an indicator table is an .xlsx workbook")
    try:
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(content), read_only=True, data_only=False)
        sheet = book["indicators"] if "indicators" in book.sheetnames else book.worksheets[0]
        table = []
        for row in sheet.iter_rows(max_col=len(COLUMNS) + 10):
            table.append([(c.value, getattr(c, "data_type", None)) for c in row])
            if len(table) > MAX_ROWS:
                raise InvalidInput(f"{name}: more than {MAX_ROWS:,} rows")
        title = sheet.title
        book.close()
    except InvalidInput:
        raise
    except Exception as exc:  # openpyxl raises many kinds on a broken workbook
        raise InvalidInput(f"{name}: not a readable XLSX workbook ({exc})") from None
    if not table:
        raise InvalidInput(f"{name}: empty workbook")
    names = {alias: key for key, aliases in COLUMNS.items() for alias in aliases}
    header = [names.get(str(v).strip().lower() if v is not None else "", "") for v, _ in table[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InvalidInput(f"{name} sheet {title}: the header lacks {', '.join(missing)}")
    rows = []
    for n, raw in enumerate(table[1:], start=2):
        cells = {h: cell for h, cell in zip(header, raw, strict=False) if h}
        if all(v in (None, "") for v, _ in cells.values()):
            continue
        rows.append((f"{name} sheet {title} row {n}", cells))
    return rows


def _text(cell: tuple[Any, str | None] | None) -> str:
    return "" if cell is None or cell[0] is None else str(cell[0]).strip()


def _number(cells: dict[str, Any], column: str, required: bool = True) -> float | None:
    text = _text(cells.get(column))
    if text == "" and not required:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"column {column}: {text!r} is not a number") from None


def _flag(cells: dict[str, Any], column: str) -> bool:
    text = _text(cells.get(column)).lower()
    if text in YES:
        return True
    if text in NO:
        return False
    raise InvalidInput(f"column {column}: {text!r} is not yes or no")


def _indicator(cells: dict[str, Any]) -> dict[str, Any]:
    """One row as a catalogue indicator.

    Raises:
        InvalidInput: a formula, or a cell that is not what its column takes.
    """
    formulas = [c for c, cell in cells.items() if cell[1] == "f"]
    if formulas:
        raise InvalidInput(f"a formula in {', '.join(formulas)}; type the values themselves")
    direction = DIRECTIONS.get(_text(cells.get("direction")).lower())
    if direction is None:
        raise InvalidInput(
            f"column direction: {_text(cells.get('direction'))!r} is not higher/lower (正向/逆向)"
        )
    status = _text(cells.get("status")) or "provisional"
    if status not in ("published", "provisional"):
        raise InvalidInput(f"column status: {status!r} is not published or provisional")
    value_range: dict[str, Any] = {"integer": _flag(cells, "integer")}
    for bound in ("min", "max"):
        if (number := _number(cells, bound, required=False)) is not None:
            value_range[bound] = number
    return {
        "id": _text(cells.get("id")),
        "name_zh": _text(cells.get("name_zh")),
        "name_en": _text(cells.get("name_en")),
        "area": _text(cells.get("area")),
        "weight": _number(cells, "weight"),
        "unit": _text(cells.get("unit")),
        "range": value_range,
        "direction": direction,
        "scoring": {
            "method": "thresholds",
            "thresholds": [_number(cells, f"level{n}") for n in range(1, 6)],
        },
        "veto": _flag(cells, "veto"),
        "bonus": _flag(cells, "bonus"),
        "provenance": {
            "status": status,
            "source": _text(cells.get("source")) or "the committee's indicator table",
        },
    }


def catalogue_from_table(
    content: bytes, name: str, meta: dict[str, Any], stars: dict[str, Any]
) -> Catalogue:
    """A validated catalogue from an indicator table; `meta` gives its id, version, standard
    and titles, `stars` its star rule.

    Raises:
        InvalidRows: every row that cannot be read, and every rule the table breaks (weights
        that do not add up, thresholds out of order, a value range that excludes them ...).
    """
    problems: list[str] = []
    indicators: list[dict[str, Any]] = []
    areas: dict[str, dict[str, Any]] = {}
    for where, cells in read_table(content, name):
        try:
            ind = _indicator(cells)
            cap = _number(cells, "area_cap", required=False)
        except InvalidInput as exc:
            problems.append(f"{where}: {exc}")
            continue
        indicators.append(ind)
        area = areas.setdefault(
            ind["area"],
            {
                "id": ind["area"],
                "name_zh": _text(cells.get("area_name_zh")) or ind["area"],
                "name_en": _text(cells.get("area_name_en")) or ind["area"],
                "weight": 0.0,
                "bonus": ind["bonus"],
                "provenance": ind["provenance"],
            },
        )
        area["weight"] += ind["weight"]
        if cap is not None:
            area["cap"] = cap
    if problems:
        raise InvalidRows(name, problems)
    doc = {**meta, "areas": list(areas.values()), "indicators": indicators, "stars": stars}
    try:
        return Catalogue.model_validate(doc)
    except ValidationError as exc:
        raise InvalidRows(
            name,
            [
                f"{_place(doc, e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            ],
        ) from None


def _place(doc: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """Where a rule the catalogue breaks sits in the table: the indicator's row id, or the
    catalogue as a whole."""
    if len(loc) >= 2 and loc[0] == "indicators" and isinstance(loc[1], int):
        return f"indicator {doc['indicators'][loc[1]]['id']}"
    return ".".join(str(p) for p in loc) or "catalogue"


def catalogue_yaml(catalogue: Catalogue) -> str:
    """A catalogue as the YAML file a committee keeps, edits and signs."""
    import yaml

    data = catalogue.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
