"""A round compared with the previous round the committee linked (issue 12, point 16): per city
and per area, then and now, through the library, the command line and the API."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

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
    cells = [" ".join(c.split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", jinan[1], re.S)]
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
