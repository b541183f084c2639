"""A round's papers as an Excel workbook: the ranking with each area's subtotal, the award
allocation with the policy's totals, every city's indicator values with their provenance, and
the round itself (status, catalogue, policy, and for a final round the results' SHA-256).

Written as Excel writes a file: numbers as numbers with their number format, text as text (city
codes stay "370100"; text that starts with "=" is never made a formula), a bold frozen header
and an autofilter on each table. Totals are real formulas (`=SUM(...)`); openpyxl stores no
computed value with them, so the workbook asks Excel and LibreOffice to compute every formula
on open (`fullCalcOnLoad`), and the numbers they rest on are the results' own.

Every value and its provenance come from the results document (`RoundResults`), which carries
them for each indicator: one snapshot of the round, and for a final round exactly the frozen
record whose SHA-256 the workbook shows.
"""

from __future__ import annotations

import io
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import Engine

from cim.errors import InvalidInput
from grading import outcome, rounds
from grading.results import RankedCity, RoundResults

MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TITLE_ROW, STATUS_ROW, HEADER_ROW = 1, 2, 3  # every sheet: title, status line, table header
YUAN = "#,##0"  # amounts: whole yuan shown, the exact amount kept
POINTS = "0.00"  # scores, subtotals, levels
WHOLE = "0"  # ranks, stars, counts, years
GENERAL = "General"  # indicator values, as entered (97.5 for 97.5 %: the unit says %)
WHEN = "yyyy-mm-dd hh:mm:ss"

# each word in Chinese and in English
_SAID = {
    "ranking": ("排名", "Ranking"),
    "allocation": ("奖补分配", "Allocation"),
    "values": ("指标数值", "Values"),
    "round": ("轮次信息", "Round"),
    "draft": ("草稿 — 未定稿（DRAFT — not final），状态：", "DRAFT — not final; status: "),
    "final": ("定稿，结果 SHA-256：", "Final; results SHA-256: "),
    "rank": ("排名", "Rank"),
    "code": ("城市代码", "City code"),
    "city": ("城市", "City"),
    "stars": ("星级", "Stars"),
    "subtype": ("类型", "Type"),
    "total": ("基础得分", "Base score"),
    "bonus": ("加分", "Bonus"),
    "score": ("总分", "Score (with bonus)"),
    "amount": ("奖补金额（元）", "Award (CNY)"),
    "provisional": ("暂定", "Provisional"),
    "reason": ("依据", "Reason"),
    "not_assessed": ("未评", "not assessed"),
    "area": ("领域", "Area"),
    "indicator_id": ("指标代码", "Indicator id"),
    "indicator": ("指标", "Indicator"),
    "unit": ("单位", "Unit"),
    "value": ("数值", "Value"),
    "kind": ("数值类型", "Kind"),
    "reported": ("城市上报", "reported"),
    "computed": ("模型计算", "computed"),
    "counts": ("委员会选定", "Committee's choice"),
    "other": ("另一数值", "Other value"),
    "level": ("等级", "Level"),
    "points": ("得分", "Points"),
    "source": ("来源", "Source"),
    "evidence": ("佐证 SHA-256", "Evidence SHA-256"),
    "entered_by": ("录入人", "Entered by"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "budget": ("总预算（元）", "Budget (CNY)"),
    "allocated": ("已分配（元）", "Allocated (CNY)"),
    "left": ("结余（元）", "Left (CNY)"),
    "cap": ("单市上限（元）", "Cap per city (CNY)"),
    "eligible": ("符合条件城市数", "Eligible cities"),
    "item": ("项目", "Item"),
    "id": ("轮次", "Round"),
    "title": ("标题", "Title"),
    "year": ("年度", "Year"),
    "status": ("状态", "Status"),
    "catalogue": ("指标体系", "Indicator catalogue"),
    "version": ("版本", "Version"),
    "policy": ("奖补政策", "Award policy"),
    "created_by": ("创建人", "Created by"),
    "generated": ("生成时间（UTC）", "Generated (UTC)"),
    "sha": ("定稿结果 SHA-256", "Final results SHA-256"),
    "merit": ("择优排序规则", "Merit order"),
    "formulas": (
        "合计等为 Excel 公式，由 Excel 或 LibreOffice 打开文件时计算。",
        "Totals are Excel formulas, computed by Excel or LibreOffice when the file is opened.",
    ),
    "provisional_note": (
        "暂定：得分、星级或奖补金额依据暂定数值，须评审委员会确认（见“轮次信息”）。",
        "Provisional: scores, stars or amounts rest on provisional numbers the committee must "
        "confirm (see the Round sheet).",
    ),
    "annex": ("暂定数值及其依据", "Provisional numbers and their basis"),
    "what": ("项目", "Item"),
    "basis": ("依据", "Basis"),
}
WORDS = {lang: {k: said[n] for k, said in _SAID.items()} for n, lang in enumerate(("zh", "en"))}
SUBTYPES_EN = {"基础型": "basic", "成长型": "growth"}


@dataclass(frozen=True)
class Formula:
    """A cell's formula: only these become formulas, never text that starts with "="."""

    text: str


def export(engine: Engine, round_id: str, lang: str = "zh", cache: Any = None) -> bytes:
    """The workbook of a round as it stands (`cache`: an `outcome.ResultsCache`).

    Raises:
        NotFound: no such round. InvalidInput: a language other than zh or en.
    """
    # the round first: a round made final in between is then shown, at worst, as a draft
    info = rounds.get_round(engine, round_id).summary()
    return round_workbook(outcome.results(engine, round_id, cache), info, lang)


def round_workbook(
    results: RoundResults,
    round_info: dict[str, Any],
    lang: str = "zh",
    generated: datetime | None = None,
) -> bytes:
    """The .xlsx bytes of a round's results; `round_info` is the round's summary (its status).

    Raises:
        InvalidInput: a language other than zh or en.
    """
    if lang not in WORDS:
        raise InvalidInput(f"workbooks are in zh or en, not {lang!r}")
    words = WORDS[lang]
    when = (generated or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None, microsecond=0)
    final = round_info["status"] == "final"
    status = (
        f"{words['final']}{results.sha256()}"
        if final
        else f"{words['draft']}{round_info['status']}"
    )
    book = Workbook()
    book.remove(book.active)
    paper = _Paper(results, words, lang, status, final)
    paper.ranking(book.create_sheet(words["ranking"]))
    paper.allocation(book.create_sheet(words["allocation"]))
    paper.values(book.create_sheet(words["values"]))
    paper.round(book.create_sheet(words["round"]), round_info, when)
    book.calculation.fullCalcOnLoad = True  # openpyxl stores formulas without their values
    book.properties.title = f"{results.round.title} ({results.round.id})"
    book.properties.creator = "CIM"
    book.properties.created = when
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


class _Paper:
    """The sheets of one workbook, in one language."""

    def __init__(
        self, results: RoundResults, words: dict[str, str], lang: str, status: str, final: bool
    ) -> None:
        self.res, self.w, self.lang, self.status, self.final = results, words, lang, status, final
        self.zh = lang == "zh"

    def _name(self, thing: Any) -> str:
        return str(thing.name_zh if self.zh else thing.name_en)

    def _heading(self, sheet: Worksheet) -> None:
        """The title and the status line every sheet starts with (DRAFT unless final)."""
        _put(sheet, TITLE_ROW, 1, f"{self.res.round.title} — {sheet.title}").font = Font(
            bold=True, size=13
        )
        line = _put(sheet, STATUS_ROW, 1, self.status)
        line.font = Font(bold=True, color="006100" if self.final else "C00000")

    def _order(self) -> list[RankedCity]:
        """Ranked cities in merit order, then the cities not assessed."""
        return sorted(self.res.cities, key=lambda c: c.rank is None)

    def ranking(self, sheet: Worksheet) -> None:
        w, res = self.w, self.res
        self._heading(sheet)
        areas = res.catalogue.areas
        mark = w["provisional"] if res.scores_provisional() else None
        headers = [w["rank"], w["code"], w["city"], w["stars"], w["subtype"]]
        headers += [self._name(a) for a in areas]
        headers += [w["total"], w["bonus"], w["score"], w["amount"], w["provisional"]]
        formats = [WHOLE, None, None, WHOLE, None, *[POINTS] * len(areas)]
        formats += [POINTS, POINTS, POINTS, YUAN, None]
        rows: list[list[Any]] = []
        for c in self._order():
            judged = c.rank is not None
            points = {a.id: a.points for a in c.areas}
            rows.append(
                [
                    c.rank if judged else w["not_assessed"],
                    c.code,
                    self._name(c),
                    c.stars if judged else None,
                    self._subtype(c.subtype),
                    *[points.get(a.id) if judged else None for a in areas],
                    *((c.total, c.bonus, c.score) if judged else (None, None, None)),
                    c.amount,
                    mark if judged else None,
                ]
            )
        last = _table(sheet, headers, formats, rows, frozen_columns=3)
        if mark:
            _put(sheet, last + 2, 1, w["provisional_note"])

    def allocation(self, sheet: Worksheet) -> None:
        w, res = self.w, self.res
        self._heading(sheet)
        mark = w["provisional"] if res.amounts_provisional() else None
        headers = [w["rank"], w["code"], w["city"], w["stars"], w["score"], w["amount"]]
        headers += [w["reason"], w["provisional"]]
        formats = [WHOLE, None, None, WHOLE, POINTS, YUAN, None, None]
        rows = [
            [
                c.rank if c.rank is not None else w["not_assessed"],
                c.code,
                self._name(c),
                c.stars if c.rank is not None else None,
                c.score if c.rank is not None else None,
                c.amount,
                c.award_reason_zh if self.zh else c.award_reason,
                mark if c.rank is not None else None,
            ]
            for c in self._order()
        ]
        last = _table(sheet, headers, formats, rows, frozen_columns=3)
        # the policy's totals under the amounts: labels beside them, in the city column
        amounts = f"F{HEADER_ROW + 1}:F{last}"
        budget, allocated = last + 2, last + 3
        totals: list[tuple[str, Any, str]] = [
            (w["budget"], res.allocation.budget, YUAN),
            (w["allocated"], Formula(f"=SUM({amounts})"), YUAN),
            (w["left"], Formula(f"=F{budget}-F{allocated}"), YUAN),
            (w["cap"], float(res.policy.get("cap_per_city", 0)), YUAN),
            (w["eligible"], res.allocation.eligible, WHOLE),
        ]
        for n, (label, value, fmt) in enumerate(totals):
            _put(sheet, budget + n, 3, label).font = Font(bold=True)
            _put(sheet, budget + n, 6, value, fmt).font = Font(bold=True)
        note = budget + len(totals) + 1
        _put(sheet, note, 1, w["formulas"])
        if mark:
            _put(sheet, note + 1, 1, w["provisional_note"])

    def values(self, sheet: Worksheet) -> None:
        w, res = self.w, self.res
        self._heading(sheet)
        areas = {a.id: self._name(a) for a in res.catalogue.areas}
        headers = [
            w["code"],
            w["city"],
            w["area"],
            w["indicator_id"],
            w["indicator"],
            w["unit"],
            w["value"],
            w["kind"],
            w["counts"],
            w["other"],
            w["level"],
            w["points"],
            w["reason"],
            w["source"],
            w["evidence"],
            w["entered_by"],
        ]
        formats = [None] * 6 + [GENERAL, None, None, GENERAL, POINTS, POINTS] + [None] * 4
        rows: list[list[Any]] = []
        for c in sorted(res.cities, key=lambda c: c.code):
            scored = {s.id: s for s in c.indicators}
            judged = c.rank is not None
            for ind in res.catalogue.indicators:
                s = scored.get(ind.id)
                if s is None:
                    continue
                given = s.value is not None
                choice = s.choice or {}
                rows.append(
                    [
                        c.code,
                        self._name(c),
                        areas.get(ind.area, ind.area),
                        ind.id,
                        self._name(ind),
                        ind.unit or None,
                        self._value(s.value),
                        w["computed" if s.computed else "reported"] if given else None,
                        f"{w[choice['counts']]}：{choice.get('reason') or ''}" if choice else None,
                        self._value((s.alternative or {}).get("value")),
                        s.level if judged else None,
                        s.points if judged else None,
                        (s.reason_zh if self.zh else s.reason) if judged else None,
                        s.source,
                        s.evidence_sha256,
                        s.entered_by,
                    ]
                )
        _table(sheet, headers, formats, rows, frozen_columns=5)

    def round(self, sheet: Worksheet, info: dict[str, Any], when: datetime) -> None:
        w, res = self.w, self.res
        self._heading(sheet)
        facts: list[tuple[str, Any, str | None]] = [
            (w["id"], res.round.id, None),
            (w["title"], res.round.title, None),
            (w["year"], res.round.year, WHOLE),
            (w["status"], info["status"], None),
            (w["catalogue"], res.catalogue.id, None),
            (w["version"], res.catalogue.version, None),
            (w["policy"], res.policy.get("id"), None),
            (w["created_by"], info.get("created_by"), None),
            (w["generated"], when, WHEN),
            (w["merit"], res.merit_rule_zh if self.zh else res.merit_rule, None),
        ]
        if self.final:  # the SHA-256 of the frozen results identifies what was decided
            facts.insert(9, (w["sha"], res.sha256(), None))
        last = _table(
            sheet,
            [w["item"], w["value"]],
            [None, None],
            [[label, value] for label, value, _ in facts],
            frozen_columns=0,
        )
        for n, (_, _, fmt) in enumerate(facts):
            if fmt:
                sheet.cell(HEADER_ROW + 1 + n, 2).number_format = fmt
        _put(sheet, last + 1, 1, w["formulas"])
        annex = res.provisional_numbers()
        if annex:
            start = last + 3
            _put(sheet, start, 1, w["annex"]).font = Font(bold=True)
            for n, word in enumerate((w["what"], w["value"], w["basis"])):
                _put(sheet, start + 1, 1 + n, word).font = Font(bold=True)
            for n, item in enumerate(annex):
                _put(sheet, start + 2 + n, 1, item["what"])
                _put(sheet, start + 2 + n, 2, _number(item["value"]), GENERAL)
                _put(sheet, start + 2 + n, 3, item["basis"])

    def _subtype(self, subtype: str | None) -> str | None:
        return subtype if self.zh or subtype is None else SUBTYPES_EN.get(subtype, subtype)

    def _value(self, value: Any) -> Any:
        """An indicator value for a cell: numbers stay numbers, yes/no is said in words."""
        if isinstance(value, bool):
            return self.w["yes"] if value else self.w["no"]
        return value


def _number(text: str) -> float | str:
    """A number written as text (a weight, a budget) as the number; other text as it is."""
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _put(sheet: Worksheet, row: int, column: int, value: Any, fmt: str | None = None) -> Any:
    """Write one cell: a number with its format, text always as text (a source or a name that
    starts with "=" is not a formula), a `Formula` as a formula. Returns the cell."""
    cell = sheet.cell(row=row, column=column)
    if isinstance(value, Formula):
        cell.value = value.text
    elif isinstance(value, str):
        cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell.data_type = "s"
    elif isinstance(value, bool):
        cell.value = str(value)
        cell.data_type = "s"
    else:
        cell.value = value
    if fmt and value is not None:
        cell.number_format = fmt
    return cell


def _table(
    sheet: Worksheet,
    headers: Sequence[str],
    formats: Sequence[str | None],
    rows: Sequence[Sequence[Any]],
    frozen_columns: int,
) -> int:
    """A table under the sheet's heading: bold header, frozen above and left of its first data
    cell, an autofilter over it, columns as wide as what they hold. Returns its last row."""
    bold = Font(bold=True)
    for n, header in enumerate(headers, start=1):
        _put(sheet, HEADER_ROW, n, header).font = bold
    for r, row in enumerate(rows, start=HEADER_ROW + 1):
        for n, (value, fmt) in enumerate(zip(row, formats, strict=True), start=1):
            if value is not None:
                _put(sheet, r, n, value, fmt)
    last = HEADER_ROW + len(rows)
    end = get_column_letter(len(headers))
    sheet.auto_filter.ref = f"A{HEADER_ROW}:{end}{max(last, HEADER_ROW + 1)}"
    sheet.freeze_panes = f"{get_column_letter(frozen_columns + 1)}{HEADER_ROW + 1}"
    for n in range(1, len(headers) + 1):
        widest = max((_width(row[n - 1]) for row in rows if row[n - 1] is not None), default=0)
        letter = get_column_letter(n)
        sheet.column_dimensions[letter].width = min(max(widest, _width(headers[n - 1])) + 2, 60)
    return last


def _width(value: Any) -> int:
    """How many narrow characters a value takes on screen (Chinese characters take two)."""
    if isinstance(value, float):
        return len(f"{value:,.2f}")
    if isinstance(value, datetime):
        return len(WHEN)
    text = str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
