"""Missing data is not a zero: a city with no values is 未评 (not assessed), not ranked among the
assessed cities and given no stars; a round is submitted or made final only when every required
value is entered or the committee recorded why it may be missing (audited)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from cim.errors import Conflict, Forbidden, InvalidInput
from cli.main import main
from grading import access, exemptions, outcome, rounds, values
from grading.awards import built_in_policy
from grading.catalogue import built_in

ROUND = "gap-2026"
CATALOGUE = built_in("db37-3890.1-2020")
CITIES = [
    rounds.CityEntry("370100", "济南市", "Jinan"),
    rounds.CityEntry("370200", "青岛市", "Qingdao"),
    rounds.CityEntry("370300", "淄博市", "Zibo"),
]


def _top(ind):  # type: ignore[no-untyped-def]
    """A value at the indicator's highest level."""
    s = ind.scoring
    if s.method == "yes_no":
        return True
    if s.method == "levels":
        return s.best_first()[0]
    return s.thresholds[4]


@pytest.fixture
def db(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    admin = access.cli_actor()
    rounds.create_round(
        engine, admin, ROUND, "t", 2026, CATALOGUE, built_in_policy("shandong-example"), CITIES
    )
    # 370100: every value; 370300: all but one required value; 370200: nothing at all
    entries = [values.ValueEntry("370100", i.id, _top(i), source="s") for i in CATALOGUE.indicators]
    entries += [
        values.ValueEntry("370300", i.id, _top(i), source="s")
        for i in CATALOGUE.indicators
        if i.id != "zhengfu.video"
    ]
    values.set_values(engine, admin, ROUND, entries)
    return engine


def test_a_city_without_values_is_not_assessed(db: Engine) -> None:
    res = outcome.results(db, ROUND)
    by_code = {c.code: c for c in res.cities}
    empty = by_code["370200"]
    assert (empty.rank, empty.stars, empty.amount, empty.total) == (None, 0, 0.0, 0.0)
    assert empty.not_assessed is True and empty.award_reason_zh == "未评：未录入任何数值"
    assert [c.code for c in res.cities] == ["370100", "370300", "370200"]  # unranked last
    assert [c.rank for c in res.cities[:2]] == [1, 2]
    assert "not_assessed" not in by_code["370100"].to_dict()  # assessed cities: as before
    assert res.ranking_dict()["cities"][2]["rank"] is None


def test_a_round_with_missing_values_cannot_be_submitted(db: Engine) -> None:
    admin = access.cli_actor()
    with pytest.raises(Conflict) as err:
        rounds.move(db, admin, ROUND, "submitted", "complete")
    message = str(err.value)
    assert "370200: huimin.education" in message and "370300: zhengfu.video" in message
    assert "tese.pilot" not in message  # bonus items are never required
    with pytest.raises(Forbidden):
        exemptions.exempt(db, access.Actor("key:r", "reviewer", ()), ROUND, "370200", None, "x")
    with pytest.raises(InvalidInput, match="needs its reason"):
        exemptions.exempt(db, admin, ROUND, "370200", None, " ")
    exemptions.exempt(db, admin, ROUND, "370200", None, "青岛市本年度未申报")
    with pytest.raises(Conflict, match="370300: zhengfu.video"):
        rounds.move(db, admin, ROUND, "submitted", "complete")
    exemptions.exempt(db, admin, ROUND, "370300", "zhengfu.video", "视频平台迁移，数据缺失")
    assert rounds.move(db, admin, ROUND, "submitted", "complete").status == "submitted"
    exempted = [e for e in access.audit_log(db, ROUND) if e["action"] == "value.exempt"]
    assert [(e["target"], e["new"]["reason"]) for e in exempted] == [
        ("370200", "青岛市本年度未申报"),
        ("370300/zhengfu.video", "视频平台迁移，数据缺失"),
    ]


def test_the_command_line_shows_and_records_it(db: Engine) -> None:
    env = {
        "CIM_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "CIM_ACTOR": "周委员",
    }
    rank = CliRunner().invoke(main, ["grade", "rank", ROUND], env=env)
    assert rank.exit_code == 0 and "未评. 370200" in rank.output
    assert "* provisional: rests on a weight, threshold, star rule or policy value" in rank.output
    refused = CliRunner().invoke(
        main, ["grade", "round", "status", ROUND, "submitted", "--reason", "齐全"], env=env
    )
    assert refused.exit_code == 2 and "required value(s) are missing" in refused.output
    for args in (["--city", "370200"], ["--city", "370300", "--indicator", "zhengfu.video"]):
        done = CliRunner().invoke(
            main, ["grade", "exempt", ROUND, *args, "--reason", "委员会决定"], env=env
        )
        assert done.exit_code == 0, done.output
    moved = CliRunner().invoke(
        main, ["grade", "round", "status", ROUND, "submitted", "--reason", "齐全"], env=env
    )
    assert moved.exit_code == 0, moved.output


def test_the_report_lists_unassessed_cities_once(db: Engine) -> None:
    from grading.report import render_html

    html = render_html(outcome.results(db, ROUND), rounds.get_round(db, ROUND).summary(), "zh")
    assert html.count('id="city-370200"') == 0  # no empty detail page for it
    assert html.count('id="city-370100"') == 1 and html.count('id="city-370300"') == 1
    assert "未评: 青岛市 (370200)" in html
