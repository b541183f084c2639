"""Value templates: the CSV and XLSX files the tool writes read back to the same values, and a
filled template with a mistake is refused with the file, the row and the problem."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cim.errors import InvalidInput, InvalidRows
from grading.catalogue import built_in
from grading.rounds import CityEntry
from grading.templates import COLUMNS, read_values, template_bytes, template_rows
from grading.values import KEEP, coerce_value

CATALOGUE = built_in("db37-3890.1-2020")
CITIES = [CityEntry("370100", "济南市", "Jinan"), CityEntry("370200", "青岛市", "Qingdao")]


def _filled(tmp_path: Path, suffix: str, **changes: str) -> Path:
    rows = template_rows(CATALOGUE, CITIES)
    rows[0].update(value="88", source="统计公报", link="https://example.org/a", note="n1")
    rows[11].update(value="是", evidence_file="proof.txt")  # sheshi.cim of 370100
    rows[18 + 14].update(value="良")  # baozhang.plan of 370200
    for key, value in changes.items():
        row, column = key.rsplit("__", 1)
        rows[int(row.removeprefix("r"))][column] = value
    (tmp_path / "proof.txt").write_text("证明材料", encoding="utf-8")
    path = tmp_path / f"values{suffix}"
    path.write_bytes(template_bytes(rows, str(path)))
    return path


def _read(path: Path, files: bool = True):  # type: ignore[no-untyped-def]
    """A filled template read as the command line reads it: evidence files from its folder."""
    return read_values(path.read_bytes(), str(path), CATALOGUE, path.parent if files else None)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_filled_template_reads_back(tmp_path: Path, suffix: str) -> None:
    assert template_rows(CATALOGUE, CITIES)[11]["indicator_id"] == "sheshi.cim"
    entries, files, empty = _read(_filled(tmp_path, suffix))
    assert empty == 2 * 18 - 3
    got = {(e.city, e.indicator): e for e in entries}
    first = got["370100", "huimin.education"]
    assert (first.value, first.source, first.link, first.note) == (
        "88",
        "统计公报",
        "https://example.org/a",
        "n1",
    )
    proof = got["370100", "sheshi.cim"]
    digest = hashlib.sha256("证明材料".encode()).hexdigest()
    assert proof.evidence_sha256 == digest and [f.filename for f in files] == ["proof.txt"]
    assert got["370200", "baozhang.plan"].value == "良"
    plan = got["370200", "baozhang.plan"]  # no source given: a stored one is kept, else this
    assert plan.source is KEEP and plan.default_source == f"import values{suffix}"


def test_the_csv_opens_in_excel_with_chinese(tmp_path: Path) -> None:
    raw = _filled(tmp_path, ".csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark
    assert raw.decode("utf-8-sig").splitlines()[0] == ",".join(COLUMNS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"r3__indicator_id": "huimin.nothing"},
            "row 5, city 370100, indicator huimin.nothing: column indicator_id: catalogue",
        ),
        (
            {"r3__indicator_name": "完全不同 / Something else"},
            "row 5, city 370100, indicator [a-z.]+: indicator_name",
        ),
        (
            {"r3__indicator_id": "huimin.education", "r3__indicator_name": ""},
            "row 5, city 370100, indicator huimin.education: the same city and indicator as "
            ".* row 2",
        ),
        ({"r11__evidence_file": "missing.pdf"}, "row 13, .*: column evidence_file: no file"),
        ({"r4__city_code": ""}, r"row 6, city \?, .*: column city_code is empty"),
    ],
)
def test_mistakes_are_refused_with_the_row(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    path = _filled(tmp_path, ".csv", **change)
    with pytest.raises(InvalidInput, match=message) as err:
        _read(path)
    assert str(path) in str(err.value)


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("city_code,indicator_id,value\n370100,huimin.education,é\n".encode("latin-1"))
    with pytest.raises(InvalidInput, match="not UTF-8"):
        _read(latin)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 this is not a workbook")
    with pytest.raises(InvalidInput, match="not a readable XLSX"):
        _read(broken)
    headless = tmp_path / "headless.csv"
    headless.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="header lacks the column"):
        _read(headless)
    with pytest.raises(InvalidInput, match=r"\.csv or \.xlsx"):
        read_values(b"", str(tmp_path / "values.ods"), CATALOGUE)
    with pytest.raises(InvalidInput, match="upload 'proof.txt' first"):
        _read(_filled(tmp_path, ".csv"), files=False)


@pytest.mark.parametrize(
    ("indicator", "raw", "value"),
    [
        ("zhengfu.online", "95.5", 95.5),
        ("zhengfu.online", "95.5%", 95.5),
        ("zhengfu.online", 7, 7.0),
        ("sheshi.cim", "是", True),
        ("sheshi.cim", "No", False),
        ("baozhang.plan", " 优 ", "优"),
        ("zhengfu.online", "", None),
        ("zhengfu.online", "0.5%", 0.5),  # under one percent, said so with the sign
        ("zhengfu.online", 0, 0.0),
        ("zhengfu.online", "100", 100.0),
        ("baozhang.security", "0", 0.0),
        ("baozhang.security", 2, 2.0),
        ("huimin.education", 100, 100.0),
        ("sheshi.iot", "0.5", 0.5),  # per km²: no ambiguity
    ],
)
def test_values_take_the_indicator_kind(indicator: str, raw: object, value: object) -> None:
    ind = next(i for i in CATALOGUE.indicators if i.id == indicator)
    assert coerce_value(ind, raw, "here") == value


@pytest.mark.parametrize(
    ("indicator", "raw"),
    [
        ("zhengfu.online", "nan"),
        ("zhengfu.online", True),
        ("sheshi.cim", 2),
        ("baozhang.plan", "A"),
        ("zhengfu.online", "150"),  # impossible percentages
        ("zhengfu.online", 250),
        ("zhengfu.online", -1),
        ("zhengfu.online", 0.975),  # 97.5 % as a fraction, or 0.975 %? ambiguous
        ("zhengfu.online", "1"),
        ("huimin.education", 180),  # a score beyond its 100-point scale
        ("baozhang.security", -3),  # a negative count would score full points
        ("baozhang.security", "1.5"),
        ("sheshi.iot", "5%"),  # a percentage for an indicator measured per km²
        ("sheshi.iot", -1),
    ],
)
def test_values_of_the_wrong_kind_are_refused(indicator: str, raw: object) -> None:
    ind = next(i for i in CATALOGUE.indicators if i.id == indicator)
    with pytest.raises(InvalidInput, match=f"here: indicator {indicator}"):
        coerce_value(ind, raw, "here")


def test_impossible_and_ambiguous_values_say_why() -> None:
    online = next(i for i in CATALOGUE.indicators if i.id == "zhengfu.online")
    security = next(i for i in CATALOGUE.indicators if i.id == "baozhang.security")
    with pytest.raises(
        InvalidInput, match=r"'150' is impossible; it takes a number from 0 to 100 %"
    ):
        coerce_value(online, "150", "here")
    with pytest.raises(InvalidInput, match=r"write 97.5 for 97.5 %, or 0.975% if you mean"):
        coerce_value(online, 0.975, "here")
    with pytest.raises(InvalidInput, match=r"-3 is impossible; it takes a whole number from 0"):
        coerce_value(security, -3, "here")
    # a value the city model computed is in the indicator's unit already: no ambiguity
    assert coerce_value(online, 0.975, "here", typed=False) == 0.975


@pytest.mark.parametrize("outside", ["../secret.txt", "/etc/hostname"])
def test_evidence_outside_the_templates_folder_is_refused(tmp_path: Path, outside: str) -> None:
    (tmp_path / "secret.txt").write_text("not evidence")
    folder = tmp_path / "round"
    folder.mkdir()
    path = _filled(folder, ".csv", r11__evidence_file=outside)
    with pytest.raises(InvalidInput, match="outside the template's folder"):
        _read(path)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_text_a_spreadsheet_would_run_is_escaped_and_comes_back(
    tmp_path: Path, suffix: str
) -> None:
    formula = '=HYPERLINK("https://example.org","click")'
    path = _filled(tmp_path, suffix, r0__note=formula, r0__source="-5% vs 2025")
    if suffix == ".xlsx":
        from openpyxl import load_workbook

        sheet = load_workbook(path)["values"]
        assert sheet["J2"].data_type == "s" and sheet["J2"].value == "'" + formula
    else:
        assert "'" + formula.replace('"', '""') in path.read_text(encoding="utf-8-sig")
    entries, _, _ = _read(path)
    first = next(e for e in entries if e.indicator == "huimin.education")
    assert (first.note, first.source) == (formula, "-5% vs 2025")


def _workbook(tmp_path: Path, cells: dict[str, tuple[object, str | None]]) -> Path:
    """The template as Excel leaves it after someone filled `cells` ({"G2": (value, format)}).

    A formula is saved with the result Excel would have cached beside it (openpyxl writes no
    cached results, so the sheet's XML gets them as Excel writes them: `<f>…</f><v>…</v>`).
    """
    import re
    import zipfile

    from openpyxl import load_workbook

    path = _filled(tmp_path, ".xlsx")
    book = load_workbook(path)
    sheet = book["values"]
    cached = {}
    for ref, (value, fmt) in cells.items():
        sheet[ref] = value
        if fmt:
            sheet[ref].number_format = fmt
        if isinstance(value, str) and value.startswith("="):
            cached[ref] = str(eval(value[1:]))  # noqa: S307 - the test's own arithmetic
    book.save(path)
    if cached:
        with zipfile.ZipFile(path) as z:
            parts = {n: z.read(n) for n in z.namelist()}
        xml = parts["xl/worksheets/sheet1.xml"].decode()
        for ref, result in cached.items():
            xml, n = re.subn(
                rf'(<c r="{ref}"[^>]*>)(<f>[^<]*</f>)(<v>[^<]*</v>|<v\s*/>)?',
                rf"\1\2<v>{result}</v>",
                xml,
            )
            assert n == 1
        parts["xl/worksheets/sheet1.xml"] = xml.encode()
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in parts.items():
                z.writestr(name, data)
    return path


def test_a_formula_cell_is_refused_not_read_as_its_cached_result(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    path = _workbook(tmp_path, {"G5": ("=40+48", None)})  # row 5: 370100 zhengfu.online
    assert load_workbook(path, data_only=True)["values"]["G5"].value == 88  # Excel's cached 88
    with pytest.raises(InvalidRows) as err:
        _read(path)
    assert err.value.problems == [
        f"{path} sheet values row 5, city 370100, indicator zhengfu.online: a formula "
        "(value '=40+48'); type the value itself, not a formula"
    ]


def test_percent_formatted_cells_read_as_they_show(tmp_path: Path) -> None:
    path = _workbook(
        tmp_path,
        {
            "G5": (0.975, "0.0%"),  # zhengfu.online shows 97.5 %
            "G6": (0.005, "0.0%"),  # zhengfu.video shows 0.5 %
            "G3": (91.8, '0.0"%"'),  # a literal % sign in the format: shows 91.8%, is 91.8
        },
    )
    entries, _, _ = _read(path)
    got = {e.indicator: e.value for e in entries if e.city == "370100"}
    assert got["zhengfu.online"] == "97.5%" and got["zhengfu.video"] == "0.5%"
    ind = {i.id: i for i in CATALOGUE.indicators}
    assert coerce_value(ind["zhengfu.online"], got["zhengfu.online"], "x") == 97.5
    assert coerce_value(ind["zhengfu.video"], got["zhengfu.video"], "x") == 0.5
    assert coerce_value(ind["huimin.travel"], got["huimin.travel"], "x") == 91.8


def test_a_percent_cell_for_another_unit_or_a_bare_fraction_is_refused(tmp_path: Path) -> None:
    path = _workbook(
        tmp_path,
        {
            "G3": (0.918, "0%"),  # huimin.travel is a score, not a percentage
            "G5": (0.975, None),  # zhengfu.online: 97.5 % as a fraction, or 0.975 %?
        },
    )
    with pytest.raises(InvalidRows) as err:
        _read(path)
    first, second = err.value.problems
    assert "row 3, city 370100, indicator huimin.travel, value '91.8%'" in first
    assert "is measured in 'score', not in %" in first
    assert "row 5, city 370100, indicator zhengfu.online, value '0.975'" in second
    assert "ambiguous for a percentage: write 97.5 for 97.5 %" in second


def test_every_bad_row_is_reported_in_one_run(tmp_path: Path) -> None:
    path = _workbook(
        tmp_path,
        {
            "G5": (150, None),  # zhengfu.online 150 %
            "G6": ("=1+1", None),  # a formula
            "G17": (-3, None),  # baozhang.security: -3 incidents
            "C20": ("huimin.nothing", None),  # an unknown indicator (370200's first row)
            "G21": (250, None),  # 370200 huimin.travel: a score of 250
        },
    )
    with pytest.raises(InvalidRows) as err:
        _read(path)
    rows = [p.split(",")[0].rsplit(" ", 1)[1] for p in err.value.problems]
    assert rows == ["5", "6", "17", "20", "21"]
    assert "'150' is impossible; it takes a number from 0 to 100 %" in err.value.problems[0]
    assert "a formula" in err.value.problems[1]
    assert "'-3' is impossible; it takes a whole number from 0" in err.value.problems[2]
    assert "has no indicator 'huimin.nothing'" in err.value.problems[3]
    assert "'250' is impossible; it takes a number from 0 to 100 score" in err.value.problems[4]
    assert str(err.value).startswith(f"{path}: 5 problems, nothing was stored:")


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_value_under_one_percent_goes_out_and_comes_back(tmp_path: Path, suffix: str) -> None:
    entered = {"370100": {"zhengfu.video": {"value": 0.5, "source": "s"}}}
    rows = template_rows(CATALOGUE, CITIES, entered)
    assert rows[4]["indicator_id"] == "zhengfu.video" and rows[4]["value"] == "0.5%"
    path = tmp_path / f"again{suffix}"
    path.write_bytes(template_bytes(rows, str(path)))
    (entry,) = _read(path)[0]
    ind = next(i for i in CATALOGUE.indicators if i.id == "zhengfu.video")
    assert coerce_value(ind, entry.value, "x") == 0.5
