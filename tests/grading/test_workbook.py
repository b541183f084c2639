"""The round's papers in Excel (`grading.workbook`, `cim grade export`, `GET …/export.xlsx`):
opened with openpyxl, every number is the results' own and a number, every code text, the award
total a formula over the right cells, and a round that is not final marked DRAFT on each sheet."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import Engine

from api.app import create_app
from cim.settings import ApiSettings
from cli.main import main
from grading import access, evidence, exemptions, outcome, rounds, values
from grading.awards import built_in_policy
from grading.catalogue import Indicator, built_in
from grading.results import RoundResults
from grading.workbook import HEADER_ROW, MEDIA_TYPE, export

ROUND = "book-2026"
CATALOGUE = built_in("db37-3890.1-2020")
CITIES = [
    rounds.CityEntry("370100", "济南市", "Jinan"),
    rounds.CityEntry("370200", "青岛市", "Qingdao"),  # no value at all: 未评
    rounds.CityEntry("370300", "淄博市", "Zibo"),
]
PROOF = b"%PDF-1.4 Jinan annual report"
INJECTED = '=HYPERLINK("http://example.invalid","click")'  # a source that is not a formula


def _at(ind: Indicator, level: int) -> Any:
    """A value at a level (1-5) of the indicator."""
    s = ind.scoring
    if s.method == "yes_no":
        return level > 2
    if s.method == "levels":
        return s.best_first()[5 - level]
    assert s.method == "thresholds"  # the example catalogue has no linear indicator
    return s.thresholds[level - 1]


def _make_round(engine: Engine) -> None:
    """Three cities: Jinan at the top (a percentage of 97.5, evidence, a model value chosen by
    the committee), Zibo lower and one value short, Qingdao with nothing (未评)."""
    admin = access.cli_actor("秘书")
    rounds.create_round(
        engine,
        admin,
        ROUND,
        "测试轮次",
        2026,
        CATALOGUE,
        built_in_policy("shandong-example"),
        CITIES,
    )
    entries = [
        values.ValueEntry("370100", i.id, _at(i, 5), source="年报") for i in CATALOGUE.indicators
    ]
    entries += [
        values.ValueEntry("370300", i.id, _at(i, 3), source=INJECTED)
        for i in CATALOGUE.indicators
        if i.id != "zhengfu.video"
    ]
    values.set_values(engine, admin, ROUND, entries)
    proof = evidence.EvidenceFile("年报.pdf", PROOF, "application/pdf")
    values.set_values(
        engine,
        admin,
        ROUND,
        [
            values.ValueEntry(
                "370100",
                "zhengfu.online",
                97.5,
                source="政务服务年报",
                evidence_sha256=hashlib.sha256(PROOF).hexdigest(),
            ),
            values.ValueEntry(
                "370100", "sheshi.3d_coverage", 88.25, computed={"query": "SELECT 1"}
            ),
        ],
        [proof],
    )
    values.choose(engine, admin, ROUND, "370100", "sheshi.3d_coverage", "computed", "模型更新")


@pytest.fixture(scope="module")
def db(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    _make_round(engine)
    return engine


@pytest.fixture(scope="module")
def res(db: Engine) -> RoundResults:
    return outcome.results(db, ROUND)


@pytest.fixture(scope="module")
def book(db: Engine) -> Workbook:
    return load_workbook(io.BytesIO(export(db, ROUND)))


def _table(sheet: Worksheet) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The header and the rows of the sheet's table (down to its first empty row)."""
    rows = list(sheet.iter_rows(min_row=HEADER_ROW))
    header = [c.value for c in rows[0]]
    body = []
    for row in rows[1:]:
        if all(c.value is None for c in row):
            break
        body.append(tuple(row))
    return header, body


def _column(header: list[str], rows: list[tuple[Any, ...]], name: str) -> list[Any]:
    return [r[header.index(name)] for r in rows]


def test_the_ranking_is_the_results(book: Workbook, res: RoundResults) -> None:
    assert book.sheetnames == ["排名", "奖补分配", "指标数值", "轮次信息"]
    sheet = book["排名"]
    header, rows = _table(sheet)
    areas = [a.name_zh for a in res.catalogue.areas]
    assert header == ["排名", "城市代码", "城市", "星级", "类型", *areas] + [
        "基础得分",
        "加分",
        "总分",
        "奖补金额（元）",
        "暂定",
    ]
    assert [c.value for c in _column(header, rows, "城市代码")] == [c.code for c in res.cities]
    assert all(c.data_type == "s" for c in _column(header, rows, "城市代码"))  # "370100"
    assert res.cities[-1].rank is None and len(rows) == len(res.cities) == 3
    for city, row in zip(res.cities[:-1], rows, strict=False):
        cells = dict(zip(header, row, strict=True))
        assert (cells["排名"].value, cells["星级"].value) == (city.rank, city.stars)
        assert cells["城市"].value == city.name_zh
        for name, number, fmt in [
            ("基础得分", city.total, "0.00"),
            ("加分", city.bonus, "0.00"),
            ("总分", city.score, "0.00"),
            ("奖补金额（元）", city.amount, "#,##0"),
            *[(areas[n], a.points, "0.00") for n, a in enumerate(city.areas)],
        ]:
            assert cells[name].value == number, name
            assert (cells[name].data_type, cells[name].number_format) == ("n", fmt), name
        assert cells["排名"].number_format == "0" and cells["排名"].data_type == "n"
        assert cells["暂定"].value == ("暂定" if res.scores_provisional() else None)
    # the city not assessed: listed once, last, with no stars and no score
    last = dict(zip(header, rows[-1], strict=True))
    assert (last["排名"].value, last["城市代码"].value) == ("未评", "370200")
    assert [last[k].value for k in ("星级", "基础得分", "总分", "暂定")] == [None] * 4
    codes = [c.value for r in sheet.iter_rows() for c in r if c.value == "370200"]
    assert len(codes) == 1
    assert sheet.freeze_panes == f"D{HEADER_ROW + 1}"
    assert (
        sheet.auto_filter.ref
        == f"A{HEADER_ROW}:{sheet.cell(HEADER_ROW, len(header)).column_letter}{HEADER_ROW + 3}"
    )
    assert all(c.font.b for c in sheet[HEADER_ROW])
    assert sheet.column_dimensions["C"].width >= 8


def test_awards_agree_with_the_allocation_to_the_yuan(book: Workbook, res: RoundResults) -> None:
    sheet = book["奖补分配"]
    header, rows = _table(sheet)
    allocation = res.allocation_dict()
    amounts = _column(header, rows, "奖补金额（元）")
    assert [a.value for a in amounts] == [c["amount"] for c in allocation["cities"]]
    assert all((a.data_type, a.number_format) == ("n", "#,##0") for a in amounts)
    assert _column(header, rows, "依据")[0].value == res.cities[0].award_reason_zh
    marks = [m.value for m in _column(header, rows, "暂定")]
    assert marks == ["暂定", "暂定", None]  # the policy's amounts are placeholders; 未评 is not
    # the totals under the table: the budget, a SUM over exactly the award cells, what is left
    labels = {sheet.cell(r, 3).value: r for r in range(1, sheet.max_row + 1)}
    first, last = HEADER_ROW + 1, HEADER_ROW + len(rows)
    allocated = sheet.cell(labels["已分配（元）"], 6)
    assert allocated.value == f"=SUM(F{first}:F{last})" and allocated.data_type == "f"
    assert allocated.number_format == "#,##0"
    start, end = (int(n) for n in re.findall(r"F(\d+)", allocated.value))
    summed = sum(sheet.cell(r, 6).value for r in range(start, end + 1))
    assert round(summed) == round(res.allocation.allocated) and summed == sum(
        c.amount for c in res.cities
    )
    budget = sheet.cell(labels["总预算（元）"], 6)
    assert budget.value == res.allocation.budget and budget.data_type == "n"
    left = sheet.cell(labels["结余（元）"], 6)
    assert left.value == f"=F{budget.row}-F{allocated.row}"
    assert round(budget.value - summed) == round(res.allocation.left)
    assert sheet.cell(labels["符合条件城市数"], 6).value == res.allocation.eligible
    assert book.calculation.fullCalcOnLoad  # Excel and LibreOffice compute the formulas on open


def test_every_value_with_its_provenance(book: Workbook, res: RoundResults) -> None:
    header, rows = _table(book["指标数值"])
    assert len(rows) == len(CITIES) * len(CATALOGUE.indicators)
    by_key = {(r[0].value, r[3].value): dict(zip(header, r, strict=True)) for r in rows}
    online = by_key["370100", "zhengfu.online"]
    assert (online["数值"].value, online["单位"].value) == (97.5, "%")  # not 0.975
    assert (online["数值"].data_type, online["数值"].number_format) == ("n", "General")
    assert online["佐证 SHA-256"].value == hashlib.sha256(PROOF).hexdigest()
    assert (online["数值类型"].value, online["来源"].value) == ("城市上报", "政务服务年报")
    assert online["录入人"].value == "cli:秘书" and online["领域"].value == "数字政府"
    scored = {s.id: s for s in res.city("370100").indicators}["zhengfu.online"]
    assert online["得分"].value == scored.points and online["得分"].number_format == "0.00"
    assert online["等级"].value == scored.level
    chosen = by_key["370100", "sheshi.3d_coverage"]
    assert (chosen["数值"].value, chosen["数值类型"].value) == (88.25, "模型计算")
    assert chosen["委员会选定"].value == "模型计算：模型更新"
    assert chosen["另一数值"].value == _at(
        next(i for i in CATALOGUE.indicators if i.id == "sheshi.3d_coverage"), 5
    )
    cim = by_key["370100", "sheshi.cim"]
    assert cim["数值"].value == "是" and cim["数值"].data_type == "s"
    zibo = by_key["370300", "huimin.education"]
    assert zibo["来源"].value == INJECTED and zibo["来源"].data_type == "s"  # text, no formula
    short = by_key["370300", "zhengfu.video"]
    assert short["数值"].value is None and short["得分"].value == 0
    nothing = by_key["370200", "zhengfu.online"]
    assert nothing["数值"].value is None and nothing["得分"].value is None
    assert nothing["城市代码"].data_type == "s"


def test_a_draft_says_so_on_every_sheet(book: Workbook, res: RoundResults) -> None:
    for sheet in book.worksheets:
        assert "DRAFT — not final" in sheet["A2"].value and sheet["A2"].value.endswith("draft")
        assert res.round.title in sheet["A1"].value
    facts = {
        r[0]: r[1] for r in book["轮次信息"].iter_rows(min_row=HEADER_ROW + 1, values_only=True)
    }
    assert facts["轮次"] == ROUND and facts["状态"] == "draft" and facts["年度"] == 2026
    assert (facts["指标体系"], facts["奖补政策"]) == (CATALOGUE.id, "shandong-example")
    assert "定稿结果 SHA-256" not in facts
    assert facts["生成时间（UTC）"].year >= 2026  # a real date, not text
    assert any("暂定数值" in str(k) for k in facts)  # the provisional numbers are listed
    weight = [r for r in book["轮次信息"].iter_rows() if r[0].value == "area huimin weight"]
    assert weight[0][1].value == 30 and weight[0][1].data_type == "n"


def test_english(db: Engine) -> None:
    book = load_workbook(io.BytesIO(export(db, ROUND, "en")))
    assert book.sheetnames == ["Ranking", "Allocation", "Values", "Round"]
    header, rows = _table(book["Ranking"])
    assert header[:3] == ["Rank", "City code", "City"] and rows[0][2].value == "Jinan"
    assert rows[-1][0].value == "not assessed"
    assert book["Values"]["A2"].value == "DRAFT — not final; status: draft"


def test_a_final_round_carries_its_sha256(new_database: Callable[[], Engine]) -> None:
    engine = new_database()
    _make_round(engine)
    admin = access.cli_actor("秘书")
    exemptions.exempt(engine, admin, ROUND, "370200", None, "未申报")
    exemptions.exempt(engine, admin, ROUND, "370300", "zhengfu.video", "数据缺失")
    for to, who in (("submitted", "李"), ("reviewed", "张"), ("final", "王")):
        rounds.move(engine, access.cli_actor(who), ROUND, to, "定")
    sha = rounds.get_round(engine, ROUND).results_sha256
    assert sha is not None
    book = load_workbook(io.BytesIO(export(engine, ROUND)))
    for sheet in book.worksheets:
        assert "DRAFT" not in sheet["A2"].value and sha in sheet["A2"].value
    facts = {
        r[0]: r[1] for r in book["轮次信息"].iter_rows(min_row=HEADER_ROW + 1, values_only=True)
    }
    assert (facts["状态"], facts["定稿结果 SHA-256"]) == ("final", sha)
    # anyone may read a final round's workbook
    got = TestClient(create_app(engine=engine)).get(f"/grading/rounds/{ROUND}/export.xlsx")
    assert got.status_code == 200


def test_the_command_writes_the_workbook(db: Engine, tmp_path: Path) -> None:
    env = {"CIM_DATABASE_URL": db.url.render_as_string(hide_password=False)}
    out = tmp_path / "书.xlsx"
    done = CliRunner().invoke(
        main, ["grade", "export", ROUND, "--out", str(out), "--lang", "en"], env=env
    )
    assert done.exit_code == 0, done.output
    assert f"{out}: workbook of round {ROUND}" in done.output
    assert load_workbook(out).sheetnames[0] == "Ranking"
    missing = CliRunner().invoke(
        main, ["grade", "export", "nope", "--out", str(tmp_path / "n.xlsx")], env=env
    )
    assert missing.exit_code == 2 and "no grading round 'nope'" in missing.output
    assert not (tmp_path / "n.xlsx").exists()
    csv = CliRunner().invoke(
        main, ["grade", "export", ROUND, "--out", str(tmp_path / "a.csv")], env=env
    )
    assert csv.exit_code == 2 and "written as .xlsx" in csv.output
    nowhere = tmp_path / "no" / "such" / "folder.xlsx"
    unwritable = CliRunner().invoke(
        main, ["grade", "export", ROUND, "--out", str(nowhere)], env=env
    )
    assert unwritable.exit_code == 2 and "cannot write the workbook" in unwritable.output
    helped = CliRunner().invoke(main, ["grade", "export", "--help"], env=env)
    assert "DRAFT — not final" in helped.output and "--lang" in helped.output


def test_the_route_reads_like_the_ranking(db: Engine) -> None:
    url = f"/grading/rounds/{ROUND}/export.xlsx"
    client = TestClient(create_app(engine=db))
    anonymous = client.get(url)
    assert anonymous.status_code == 401 and "not final" in anonymous.json()["detail"]
    viewer = access.create_key(db, access.cli_actor("秘书"), "v", "viewer")[1]
    got = client.get(url, params={"lang": "en"}, headers={"Authorization": f"Bearer {viewer}"})
    assert got.status_code == 200
    assert got.headers["content-type"] == MEDIA_TYPE
    assert f'filename="{ROUND}-results.xlsx"' in got.headers["content-disposition"]
    assert load_workbook(io.BytesIO(got.content)).sheetnames[0] == "Ranking"
    public = TestClient(create_app(engine=db, settings=ApiSettings(grading_public_drafts=True)))
    assert public.get(url).status_code == 200
    assert public.get(url, params={"lang": "fr"}).status_code == 400
    assert public.get("/grading/rounds/nope/export.xlsx").status_code == 404
    declared = public.get("/api").json()["paths"]["/grading/rounds/{round_id}/export.xlsx"]
    assert MEDIA_TYPE in declared["get"]["responses"]["200"]["content"]
