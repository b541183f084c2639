"""A committee's own indicator table (49 city indicators, as DB37/T 3890.1 has) read into a
validated catalogue file by `cim grade catalogue import`; a broken table is refused with every
bad row named, and no file written."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from openpyxl import Workbook

from cli.main import main
from grading.catalogue import load_catalogue

HEADER = [
    "area", "area_name_zh", "area_name_en", "area_cap", "id", "name_zh", "name_en", "unit",
    "weight", "min", "max", "integer", "direction", "level1", "level2", "level3", "level4",
    "level5", "bonus", "veto", "status", "source",
]  # fmt: skip
AREAS = [  # id, zh, en, indicators
    ("huimin", "数字惠民", "Digital services for citizens", 10),
    ("zhengfu", "数字政府", "Digital government", 9),
    ("jingji", "数字经济", "Digital economy", 9),
    ("sheshi", "基础设施", "Infrastructure", 9),
    ("baozhang", "保障措施", "Safeguards", 7),
]


KINDS = {  # unit, min, max, integer, direction, the five level thresholds
    "veto": ("count", 0, None, "yes", "lower", [4, 3, 2, 1, 0]),  # major incidents
    0: ("%", 0, 100, "no", "higher", [20, 40, 60, 75, 90]),
    1: ("score", 0, 100, "no", "正向", [30, 50, 65, 80, 92]),
    2: ("count", 0, None, "yes", "higher", [1, 2, 3, 5, 8]),
}


def _rows() -> list[list[object]]:
    """44 regular indicators weighing 100 in all, and 5 bonus items capped at 4."""
    rows: list[list[object]] = []
    n = 0
    for area, zh, en, count in AREAS:
        for k in range(count):
            n += 1
            weight = 4 if n <= 6 else 2  # 6 x 4 + 38 x 2 = 100
            veto = area == "baozhang" and k == 0
            unit, lo, hi, whole, way, levels = KINDS["veto" if veto else n % 3]
            rows.append(
                [area, zh, en, None, f"{area}.i{k + 1}", f"指标{n}", f"Indicator {n}", unit,
                 weight, lo, hi, whole, way, *levels, "no", "是" if veto else "否", "published",
                 f"表 {n}"]
            )  # fmt: skip
    for k in range(5):
        rows.append(
            ["tese", "地方特色", "Local features", 4, f"tese.b{k + 1}", f"加分{k + 1}",
             f"Bonus {k + 1}", "count", 1, 0, None, "yes", "higher", 1, 2, 3, 4, 5, "yes",
             "no", "provisional", "assumed"]
        )  # fmt: skip
    return rows


def _table(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.title = "indicators"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


META = ["--id", "db37-3890.1-adopted", "--version", "2026", "--standard", "DB37/T 3890.1",
        "--title-zh", "山东新型智慧城市", "--title-en", "Shandong new-type smart city",
        "--stars", "40,55,65,78,90"]  # fmt: skip


def _import(table: Path, out: Path) -> object:
    return CliRunner().invoke(main, ["grade", "catalogue", "import", str(table), str(out), *META])


def test_a_49_indicator_table_becomes_a_catalogue(tmp_path: Path) -> None:
    out = tmp_path / "adopted.yaml"
    done = _import(_table(tmp_path / "table.xlsx", _rows()), out)
    assert done.exit_code == 0, done.output  # type: ignore[attr-defined]
    assert "6 areas and 49 indicators" in done.output  # type: ignore[attr-defined]
    cat = load_catalogue(out)
    assert len(cat.indicators) == 49 and cat.id == "db37-3890.1-adopted"
    weights = {a.id: a.weight for a in cat.areas}
    assert weights == {"huimin": 32, "zhengfu": 18, "jingji": 18, "sheshi": 18, "baozhang": 14,
                       "tese": 5}  # fmt: skip
    tese = next(a for a in cat.areas if a.id == "tese")
    assert tese.bonus and tese.cap == 4
    veto = next(i for i in cat.indicators if i.id == "baozhang.i1")
    assert veto.veto and veto.direction == "lower" and veto.scoring.thresholds == [4, 3, 2, 1, 0]
    assert veto.range is not None and veto.range.integer and veto.range.min == 0
    score = next(i for i in cat.indicators if i.unit == "score")
    assert score.direction == "higher" and score.range is not None and score.range.max == 100
    assert cat.indicators[0].provenance.status == "published"
    assert cat.stars.thresholds == {1: 40, 2: 55, 3: 65, 4: 78, 5: 90}
    again = CliRunner().invoke(main, ["grade", "catalogue", "validate", str(out)])
    assert again.exit_code == 0, again.output


def test_chinese_column_names_are_read_too(tmp_path: Path) -> None:
    chinese = ["领域", "领域名称", "领域英文名", "加分上限", "指标编号", "指标名称", "指标英文名",
               "单位", "权重", "最小值", "最大值", "整数", "方向", "1星", "2星", "3星", "4星",
               "5星", "加分项", "否决项", "依据类型", "依据"]  # fmt: skip
    out = tmp_path / "zh.yaml"
    done = _import(_table(tmp_path / "zh.xlsx", _rows(), chinese), out)
    assert done.exit_code == 0, done.output  # type: ignore[attr-defined]
    assert len(load_catalogue(out).indicators) == 49


def test_a_broken_table_names_every_bad_row_and_writes_nothing(tmp_path: Path) -> None:
    rows = _rows()
    rows[2][12] = "sideways"  # row 4: no such direction
    rows[5][8] = "heavy"  # row 7: the weight is not a number
    rows[10][13:18] = [90, 75, 60, 40, 20]  # row 12, zhengfu.i1: thresholds out of order
    rows[20][9] = "=1-1"  # row 22: a formula
    out = tmp_path / "bad.yaml"
    done = _import(_table(tmp_path / "bad.xlsx", rows), out)
    assert done.exit_code == 2  # type: ignore[attr-defined]
    text = done.output  # type: ignore[attr-defined]
    assert "3 problems, nothing was stored" in text
    assert "sheet indicators row 4: column direction: 'sideways' is not higher/lower" in text
    assert "row 7: column weight: 'heavy' is not a number" in text
    assert "row 22: a formula in min" in text
    assert not out.exists()
    rows[2][12], rows[5][8], rows[20][9] = "higher", 4, 0  # only the thresholds left wrong
    done = _import(_table(tmp_path / "bad.xlsx", rows), out)
    assert done.exit_code == 2  # type: ignore[attr-defined]
    text = done.output  # type: ignore[attr-defined]
    assert "indicator zhengfu.i1: thresholds must be strictly increasing" in text
    assert not out.exists()
