"""A round compared with the previous round the committee linked (issue 12, point 16): per city
and per area, then and now, through the library, the command line and the API."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from cim.errors import Conflict, Forbidden, InvalidInput, NotFound
from cim.settings import ApiSettings
from cli.main import main
from grading import access, outcome, rounds, values
from grading.awards import built_in_policy
from grading.catalogue import built_in
from grading.comparison import compare, linked_comparison
from grading.exemptions import exempt
from grading.report import render_html

ADMIN = access.cli_actor("王委员")
FIRST = access.Actor("key:r1", "reviewer")
SECOND = access.Actor("key:r2", "reviewer")
CITIES = [
    rounds.CityEntry("370100", "济南市", "Jinan"),
    rounds.CityEntry("370200", "青岛市", "Qingdao"),
]
# Jinan improves its online services and 5G; Qingdao slips on both
FILLED = {
    2025: {"370100": {"zhengfu.online": 80, "sheshi.5g": 60}, "370200": {"zhengfu.online": 97,
           "sheshi.5g": 96}},
    2026: {"370100": {"zhengfu.online": 99, "sheshi.5g": 99.5}, "370200": {"zhengfu.online": 70,
           "sheshi.5g": 72}},
}  # fmt: skip


def _round(engine: Engine, round_id: str, year: int, cities: list[rounds.CityEntry]) -> None:
    catalogue, policy = built_in("db37-3890.1-2020"), built_in_policy("shandong-example")
    rounds.create_round(engine, ADMIN, round_id, round_id, year, catalogue, policy, cities)
    entries = [
        values.ValueEntry(city.code, ind, v, source="test")
        for city in cities
        for ind, v in FILLED.get(year, {}).get(city.code, {"zhengfu.online": 88}).items()
    ]
    values.set_values(engine, ADMIN, round_id, entries)
    for city in cities:
        exempt(engine, ADMIN, round_id, city.code, None, "test: two indicators are enough")


@pytest.fixture(scope="module")
def db(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    _round(engine, "cmp-2025", 2025, CITIES)
    for who, to in ((FIRST, "submitted"), (SECOND, "reviewed"), (ADMIN, "final")):
        rounds.move(engine, who, "cmp-2025", to, "test")
    _round(engine, "cmp-2026", 2026, [*CITIES, rounds.CityEntry("370300", "淄博市", "Zibo")])
    return engine


def test_only_a_final_earlier_round_is_linked_by_the_committee(db: Engine) -> None:
    with pytest.raises(NotFound, match="cim grade round link cmp-2026 --previous"):
        compare(db, "cmp-2026")
    assessor = access.Actor("key:a", "assessor", ("370100",), ("cmp-2026",))
    with pytest.raises(Forbidden):
        rounds.link_previous(db, assessor, "cmp-2026", "cmp-2025", "mine")
    with pytest.raises(InvalidInput, match="needs its reason"):
        rounds.link_previous(db, ADMIN, "cmp-2026", "cmp-2025", "")
    with pytest.raises(InvalidInput, match="its own previous round"):
        rounds.link_previous(db, ADMIN, "cmp-2026", "cmp-2026", "r")
    _round(db, "cmp-draft", 2024, CITIES[:1])
    with pytest.raises(Conflict, match="only a final round"):
        rounds.link_previous(db, ADMIN, "cmp-2026", "cmp-draft", "r")
    with pytest.raises(InvalidInput, match=r"round cmp-2025 is of 2025, not earlier than"):
        rounds.link_previous(db, ADMIN, "cmp-draft", "cmp-2025", "r")
    with pytest.raises(Conflict, match="final"):  # a final round's link does not change
        rounds.link_previous(db, ADMIN, "cmp-2025", None, "r")
    assert rounds.link_previous(db, ADMIN, "cmp-2026", "cmp-2025", "上一轮评价（2025）")
    assert not rounds.link_previous(db, ADMIN, "cmp-2026", "cmp-2025", "again")
    entry = access.audit_log(db, "cmp-2026")[-1]
    assert (entry["action"], entry["old"]) == ("round.previous", {"previous_round": None})
    assert entry["new"] == {"previous_round": "cmp-2025", "reason": "上一轮评价（2025）"}
    assert rounds.get_round(db, "cmp-2026").summary()["previous_round"] == "cmp-2025"


def test_each_city_and_area_then_and_now(db: Engine) -> None:
    cmp = compare(db, "cmp-2026")
    then = {c.code: c for c in outcome.results(db, "cmp-2025").cities}
    now = {c.code: c for c in outcome.results(db, "cmp-2026").cities}
    assert cmp.previous_round_id == "cmp-2025" and cmp.same_catalogue
    assert cmp.previous_sha256 == rounds.get_round(db, "cmp-2025").results_sha256
    by_code = {c.code: c for c in cmp.cities}
    assert list(by_code) == [c.code for c in outcome.results(db, "cmp-2026").cities]
    for code in ("370100", "370200"):
        c, a, b = by_code[code], then[code], now[code]
        assert (c.before.rank, c.before.score, c.before.amount) == (a.rank, a.score, a.amount)
        assert (c.now.rank, c.now.score, c.now.amount) == (b.rank, b.score, b.amount)
        assert c.rank_change == a.rank - b.rank and c.stars_change == b.stars - a.stars
        assert c.score_change == round(b.score - a.score, 4)
        points_a = {x.id: x.points for x in a.areas}
        points_b = {x.id: x.points for x in b.areas}
        assert {x.id: x.change for x in c.areas} == {
            k: round(points_b[k] - points_a[k], 4) for k in points_b
        }
    jinan, qingdao = by_code["370100"], by_code["370200"]
    # Jinan rises from second to first; Qingdao falls from first behind Jinan and newcomer Zibo
    assert jinan.rank_change == 1 and qingdao.rank_change == -2
    sheshi = {x.id: x for x in jinan.areas}["sheshi"]
    zhengfu = {x.id: x for x in qingdao.areas}["zhengfu"]
    assert sheshi.change > 0 and zhengfu.change < 0
    assert (sheshi.name_zh, sheshi.name_en) == ("基础设施", "Infrastructure")
    zibo = by_code["370300"]  # not in the previous round: nothing to compare with
    assert zibo.before is None and zibo.rank_change is None and zibo.score_change is None


def test_the_command_line_and_the_api_agree(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIM_DATABASE_URL", db.url.render_as_string(hide_password=False))
    out = CliRunner().invoke(main, ["grade", "compare", "cmp-2026", "--json"])
    assert out.exit_code == 0, out.output
    client = TestClient(create_app(engine=db, settings=ApiSettings(grading_public_drafts=True)))
    api = client.get("/grading/rounds/cmp-2026/comparison")
    assert api.status_code == 200 and api.json() == json.loads(out.output)
    text = CliRunner().invoke(main, ["grade", "compare", "cmp-2026"]).output
    assert "cmp-2026 compared with cmp-2025 (2025" in text
    assert "370100 济南市" in text and "(+1)" in text and "not in the round" in text
    refused = CliRunner().invoke(main, ["grade", "--as", "x", "round", "link", "cmp-2026"] +
                                 ["--reason", "r"])  # fmt: skip
    assert refused.exit_code != 0 and "give --previous ROUND, or --none" in refused.output
    missing = client.get("/grading/rounds/cmp-draft/comparison")
    assert missing.status_code == 404 and "no previous round linked" in missing.json()["detail"]
    _, key = access.create_key(db, ADMIN, "committee", "admin")
    put = client.put(
        "/grading/rounds/cmp-draft/previous",
        json={"previous_round": "cmp-2025", "reason": "r"},
        headers={"X-API-Key": key},
    )
    assert put.status_code == 400 and "not earlier than" in put.json()["detail"]


def test_the_report_compares_in_each_language(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.grading.test_report_layout import english_words, ids_of, visible_text

    res = outcome.results(db, "cmp-2026")
    info = rounds.get_round(db, "cmp-2026").summary()
    cmp = linked_comparison(db, "cmp-2026")
    assert cmp is not None and linked_comparison(db, "cmp-draft") is None
    zh = render_html(res, info, "zh", cmp)
    section = zh[zh.index("与上一轮比较") : zh.index("各市得分")]
    jinan = re.search(r'<tr data-code="370100">(.*?)</tr>', section, re.S)
    assert jinan is not None
    cells = [
        " ".join(re.sub(r"<[^>]+>", " ", c).split())
        for c in re.findall(r"<td[^>]*>(.*?)</td>", jinan[1], re.S)
    ]
    change = {x.id: x.change for x in {c.code: c for c in cmp.cities}["370100"].areas}
    assert cells[1] == "2 → 1 (+1)"
    assert cells[-len(change) :] == [f"{v:+.2f}" for v in change.values()]
    assert "上一轮未参评" in section  # Zibo
    text = visible_text(section)
    assert not english_words(text, ids_of(res) | {"cmp-2025"}), english_words(text, ids_of(res))
    en = render_html(res, info, "en", cmp)
    assert "Compared with the previous round: cmp-2025 (2025)" in en
    assert "not in the previous round" in en
    assert "与上一轮比较" not in render_html(res, info, "zh")  # no link, no section
    # the command line's report has it too
    monkeypatch.setenv("CIM_DATABASE_URL", db.url.render_as_string(hide_password=False))
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["grade", "report", "cmp-2026", str(out)])
    assert result.exit_code == 0, result.output
    assert "与上一轮比较" in out.read_text(encoding="utf-8")


def _overflowing_text(page: str) -> list[str]:
    """Text of the comparison table that the PDF lays out beyond its cell's right edge."""
    from weasyprint import HTML
    from weasyprint.formatting_structure import boxes

    def walk(box: Any, cell: Any, inside: bool) -> Iterator[str]:
        classes = (box.element.get("class") or "") if box.element is not None else ""
        inside = inside or (isinstance(box, boxes.TableBox) and "comparison" in classes)
        if isinstance(box, boxes.TableCellBox):
            cell = box
        if inside and cell is not None and isinstance(box, boxes.TextBox):
            right = cell.content_box_x() + cell.width
            if box.position_x + box.width > right + 0.5:
                yield box.text
        for child in getattr(box, "children", ()):
            yield from walk(child, cell, inside)

    document = HTML(string=page).render()
    return [t for p in document.pages for t in walk(p._page_box, None, False)]


def test_not_assessed_and_another_catalogue(db: Engine) -> None:
    """A city not assessed on one side has no change (未评 is not a zero); a previous round on
    another catalogue compares the areas' shares, not their points; the PDF keeps every figure
    inside its cell."""
    catalogue, policy = built_in("gbt-33356-2016"), built_in_policy("shandong-example")
    rounds.create_round(db, ADMIN, "cmp-gbt", "gbt", 2024, catalogue, policy, CITIES)
    first = catalogue.indicators[0]
    value = first.scoring.thresholds[2] if hasattr(first.scoring, "thresholds") else 80
    values.set_values(db, ADMIN, "cmp-gbt", [values.ValueEntry("370100", first.id, value)])
    for city in CITIES:
        exempt(db, ADMIN, "cmp-gbt", city.code, None, "test")
    for who, to in ((FIRST, "submitted"), (SECOND, "reviewed"), (ADMIN, "final")):
        rounds.move(db, who, "cmp-gbt", to, "test")
    rounds.create_round(
        db,
        ADMIN,
        "cmp-2025b",
        "b",
        2025,
        built_in("db37-3890.1-2020"),
        policy,
        CITIES,
    )
    values.set_values(db, ADMIN, "cmp-2025b", [values.ValueEntry("370100", "sheshi.5g", 99.5)])
    rounds.link_previous(db, ADMIN, "cmp-2025b", "cmp-gbt", "另一指标体系")
    cmp = compare(db, "cmp-2025b")
    assert not cmp.same_catalogue and cmp.catalogues[0].startswith("gbt-33356-2016")
    by_code = {c.code: c for c in cmp.cities}
    qingdao = by_code["370200"]  # no value in either round: not assessed
    assert qingdao.now.not_assessed and qingdao.score_change is None
    assert qingdao.rank_change is None and all(a.change is None for a in qingdao.areas)
    jinan = by_code["370100"]
    shares = {a.id: a for a in jinan.areas if a.share_before is not None and a.share_now}
    assert shares, "an area both catalogues have"
    for a in shares.values():
        assert a.share_change == round(a.share_now - a.share_before, 4)
    res = outcome.results(db, "cmp-2025b")
    info = rounds.get_round(db, "cmp-2025b").summary()
    zh = render_html(res, info, "zh", cmp)
    assert "两轮各领域权重不同" in zh and "(%)" in zh
    row = re.search(r'<tr data-code="370200">(.*?)</tr>', zh[zh.index("与上一轮比较") :], re.S)
    assert row is not None and "未评" in row[1] and "+" not in row[1]
    # the demo-sized comparison (2 → 1, 12,000,000-yuan awards) fits its cells in the PDF
    full = render_html(
        outcome.results(db, "cmp-2026"),
        rounds.get_round(db, "cmp-2026").summary(),
        "zh",
        compare(db, "cmp-2026"),
    )
    assert _overflowing_text(full) == [] and _overflowing_text(zh) == []
