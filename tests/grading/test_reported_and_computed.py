"""A value computed from the city model never overwrites the value a city reported: both are
kept, each with its source; the reported one counts until the committee chooses, with a reason,
which counts; the choice is audited and shows in the results."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from cim.errors import Forbidden, InvalidInput
from demo.city import generate_city
from grading import access, computed, outcome, rounds, values
from ingest.pipeline import ingest_files
from tests.grading.one_city import declare_area_and_platform, one_city_round

ROUND = "rc-2026"
CITY = "370100"
INDICATOR = "sheshi.3d_coverage"  # computed_from_cim: model_coverage


@pytest.fixture(scope="module")
def db(new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = new_database()
    city = generate_city(tmp_path_factory.mktemp("m") / "c.city.json", buildings=150, seed=3)
    ingest_files(engine, [city.path], CITY, city_name_zh="济南市")
    admin = access.cli_actor()
    one_city_round(engine, ROUND, CITY, admin)
    values.set_values(
        engine, admin, ROUND, [values.ValueEntry(CITY, INDICATOR, 72, source="市统计局 2026")]
    )
    declare_area_and_platform(engine, ROUND, CITY, admin)
    computed.enter_cim_indicators(engine, admin, ROUND, CITY)
    return engine


def _scored(engine: Engine) -> dict:  # type: ignore[type-arg]
    city = outcome.results(engine, ROUND).city(CITY).to_dict()
    return next(i for i in city["indicators"] if i["id"] == INDICATOR)


def test_the_computed_value_is_kept_beside_the_reported_one(db: Engine) -> None:
    entry = values.entered(db, ROUND)[CITY][INDICATOR]
    assert (entry["value"], entry["source"], entry["computed"]) == (72, "市统计局 2026", None)
    other = entry["alternative"]
    assert other["kind"] == "computed" and other["computed"]["query"]
    assert other["value"] != 72 and other["source"].startswith(f"CIM model of city {CITY}")
    scored = _scored(db)
    assert scored["value"] == 72  # the reported value counts until the committee chooses
    assert scored["alternative"]["kind"] == "computed"
    assert scored["alternative"]["value"] == other["value"]
    assert "choice" not in scored


def test_the_committee_chooses_with_a_reason_and_it_is_audited(db: Engine) -> None:
    admin = access.cli_actor()
    model_value = values.entered(db, ROUND)[CITY][INDICATOR]["alternative"]["value"]
    reviewer = access.Actor("key:reviewer", "reviewer", ())
    assessor = access.Actor("key:assessor", "assessor", (CITY,))
    with pytest.raises(Forbidden):
        values.choose(db, assessor, ROUND, CITY, INDICATOR, "computed", "mine")
    with pytest.raises(InvalidInput, match="needs its reason"):
        values.choose(db, reviewer, ROUND, CITY, INDICATOR, "computed", " ")
    with pytest.raises(InvalidInput, match="no computed value to choose"):
        values.choose(db, reviewer, ROUND, CITY, "huimin.travel", "computed", "model")
    reason = "统计口径与建成区不一致，采用模型计算值"
    assert values.choose(db, reviewer, ROUND, CITY, INDICATOR, "computed", reason)
    scored = _scored(db)
    assert scored["value"] == model_value
    assert scored["choice"]["counts"] == "computed" and scored["choice"]["reason"] == reason
    assert scored["alternative"] == {
        "kind": "reported",
        "value": 72,
        "source": "市统计局 2026",
        "entered_by": admin.name,
        "entered_at": scored["alternative"]["entered_at"],
    }
    from grading.report import render_html

    html = render_html(outcome.results(db, ROUND), rounds.get_round(db, ROUND).summary(), "zh")
    # the example catalogue and policy are provisional: the annex lists what rests on them
    assert "附录：暂定数值及其依据" in html and "奖补政策的总预算" in html
    assert (
        "另一数值 (城市上报): 72" in html and f"委员会选定: 由城市信息模型计算 — {reason}" in html
    )
    entry = access.audit_log(db, ROUND)[-1]
    assert (entry["action"], entry["target"]) == ("value.choose", f"{CITY}/{INDICATOR}")
    assert entry["new"] == {"counts": "computed", "reason": reason}
    # computing again never touches the reported value, and the choice stands
    computed.enter_cim_indicators(db, admin, ROUND, CITY)
    after = values.entered(db, ROUND)[CITY][INDICATOR]
    assert after["alternative"]["value"] == 72 and after["choice"]["reason"] == reason
    assert values.choose(db, reviewer, ROUND, CITY, INDICATOR, "reported", "复核后采用上报值")
    assert _scored(db)["value"] == 72


def test_the_template_shows_what_the_city_reported(db: Engine) -> None:
    from grading.templates import round_template

    row = next(
        r
        for r in round_template(db, ROUND)
        if (r["city_code"], r["indicator_id"]) == (CITY, INDICATOR)
    )
    assert row["value"] == 72 and row["source"] == "市统计局 2026"


def test_the_choice_over_the_api_and_the_command_line(db: Engine) -> None:
    from click.testing import CliRunner
    from fastapi.testclient import TestClient

    from api.app import create_app
    from cli.main import main

    admin = access.cli_actor()
    reviewer = access.create_key(db, admin, "r", "reviewer")[1]
    assessor = access.create_key(db, admin, "a", "assessor", [CITY], [ROUND])[1]
    client = TestClient(create_app(engine=db))
    url = f"/grading/rounds/{ROUND}/cities/{CITY}/choices/{INDICATOR}"
    body = {"counts": "computed", "reason": "模型覆盖全市建成区"}
    refused = client.put(url, json=body, headers={"Authorization": f"Bearer {assessor}"})
    assert refused.status_code == 403
    done = client.put(url, json=body, headers={"Authorization": f"Bearer {reviewer}"})
    assert done.status_code == 200 and done.json()["value"]["choice"]["counts"] == "computed"
    assert client.put(url, json={"counts": "computed", "reason": ""}).status_code in (400, 401)

    run = CliRunner().invoke(
        main,
        ["grade", "choose", ROUND, "--city", CITY, "--indicator", INDICATOR]
        + ["--counts", "reported", "--reason", "复核后采用上报值"],
        env={
            "CIM_DATABASE_URL": db.url.render_as_string(hide_password=False),
            "CIM_ACTOR": "赵委员",
        },
    )
    assert run.exit_code == 0, run.output
    assert "the reported value counts" in run.output
    assert _scored(db)["value"] == 72
