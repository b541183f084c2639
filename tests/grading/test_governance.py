"""Four eyes and named people: who submits a round does not review it, who reviews it does not
make it final, reviewers do not change values, and every change from the command line names a
person and every status change its reason."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from cim.errors import Forbidden, InvalidInput
from cli.main import main
from grading import access, exemptions, rounds, values
from tests.grading.one_city import one_city_round

ROUND = "eyes-2026"
CITY = "370100"


@pytest.fixture
def db(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    admin = access.cli_actor("秘书")
    one_city_round(engine, ROUND, CITY, admin)
    values.set_values(engine, admin, ROUND, [values.ValueEntry(CITY, "zhengfu.online", 90)])
    exemptions.exempt(engine, admin, ROUND, CITY, None, "governance test: values not needed")
    return engine


def test_who_submits_does_not_review_and_who_reviews_does_not_finalise(db: Engine) -> None:
    li, zhang, wang = (access.cli_actor(n) for n in ("李", "张", "王"))
    with pytest.raises(InvalidInput, match="needs its reason"):
        rounds.move(db, li, ROUND, "submitted", " ")
    rounds.move(db, li, ROUND, "submitted", "材料齐全")
    with pytest.raises(Forbidden, match="four eyes: cli:李 moved round eyes-2026 to submitted"):
        rounds.move(db, li, ROUND, "reviewed", "自审")
    rounds.move(db, zhang, ROUND, "reviewed", "复核通过")
    with pytest.raises(Forbidden, match="four eyes: cli:张 moved round eyes-2026 to reviewed"):
        rounds.move(db, zhang, ROUND, "final", "定稿")
    assert rounds.move(db, wang, ROUND, "final", "委员会定稿").status == "final"
    moves = [e for e in access.audit_log(db, ROUND) if e["action"] == "round.status"]
    assert [(e["actor"], e["new"]["status"], e["new"]["reason"]) for e in moves] == [
        ("cli:李", "submitted", "材料齐全"),
        ("cli:张", "reviewed", "复核通过"),
        ("cli:王", "final", "委员会定稿"),
    ]


def test_reviewers_do_not_change_values_or_evidence(db: Engine) -> None:
    reviewer = access.create_key(db, access.cli_actor("秘书"), "r", "reviewer")[1]
    client = TestClient(create_app(engine=db))
    auth = {"Authorization": f"Bearer {reviewer}"}
    put = client.put(
        f"/grading/rounds/{ROUND}/cities/{CITY}/values/zhengfu.online",
        json={"value": 99},
        headers=auth,
    )
    assert put.status_code == 403 and "reviewers check values" in put.json()["detail"]
    up = client.post(
        f"/grading/rounds/{ROUND}/evidence?filename=a.txt", content=b"proof", headers=auth
    )
    assert up.status_code == 403
    assert values.entered(db, ROUND)[CITY]["zhengfu.online"]["value"] == 90


def test_the_command_line_names_a_person_and_a_reason(db: Engine) -> None:
    env = {"CIM_DATABASE_URL": db.url.render_as_string(hide_password=False), "CIM_ACTOR": ""}
    runner = CliRunner()
    anonymous = runner.invoke(main, ["grade", "round", "status", ROUND, "submitted"], env=env)
    assert anonymous.exit_code == 2 and "--reason" in anonymous.output
    nobody = runner.invoke(
        main, ["grade", "round", "status", ROUND, "submitted", "--reason", "齐"], env=env
    )
    assert nobody.exit_code == 2 and "say who you are: cim grade --as NAME" in nobody.output
    named = runner.invoke(
        main,
        ["grade", "--as", "李评估", "round", "status", ROUND, "submitted", "--reason", "齐"],
        env=env,
    )
    assert named.exit_code == 0, named.output
    assert access.audit_log(db, ROUND)[-1]["actor"] == "cli:李评估"
    by_env = runner.invoke(
        main,
        ["grade", "round", "status", ROUND, "reviewed", "--reason", "复核"],
        env={**env, "CIM_ACTOR": "张复核"},
    )
    assert by_env.exit_code == 0, by_env.output
    assert access.audit_log(db, ROUND)[-1]["actor"] == "cli:张复核"


def test_a_refused_change_is_in_the_audit_log(db: Engine) -> None:
    env = {"CIM_DATABASE_URL": db.url.render_as_string(hide_password=False), "CIM_ACTOR": "李"}
    runner = CliRunner()
    ok = runner.invoke(
        main, ["grade", "round", "status", ROUND, "submitted", "--reason", "齐"], env=env
    )
    assert ok.exit_code == 0, ok.output
    again = runner.invoke(
        main, ["grade", "round", "status", ROUND, "reviewed", "--reason", "自审"], env=env
    )
    assert again.exit_code == 2 and "four eyes" in again.output
    entry = access.audit_log(db, ROUND)[-1]
    assert (entry["action"], entry["actor"], entry["new"]["status"]) == ("refused", "cli:李", 403)
    assert entry["target"] == "main grade round status" and "four eyes" in entry["new"]["why"]


def test_keys_belong_to_their_rounds(db: Engine) -> None:
    admin = access.cli_actor("秘书")
    one_city_round(db, "other-2026", CITY, admin)
    with pytest.raises(InvalidInput, match="needs the rounds"):
        access.create_key(db, admin, "a", "assessor", [CITY])
    key = access.create_key(db, admin, "jinan", "assessor", [CITY], [ROUND])[1]
    client = TestClient(create_app(engine=db))
    auth = {"Authorization": f"Bearer {key}"}

    def put(round_id: str, city: str) -> object:
        return client.put(
            f"/grading/rounds/{round_id}/cities/{city}/values/zhengfu.online",
            json={"value": 91},
            headers=auth,
        )

    assert put(ROUND, CITY).status_code == 200  # its own round and city
    other = put("other-2026", CITY)  # the same city in another round
    assert other.status_code == 403 and "not other-2026" in other.json()["detail"]
    elsewhere = put(ROUND, "999999")  # a city outside its scope (and outside the round): 403
    assert (
        elsewhere.status_code == 403 and "not assigned to city 999999" in elsewhere.json()["detail"]
    )
    assert "zhengfu.online" not in values.entered(db, "other-2026").get(CITY, {})


def test_a_round_is_private_until_final(db: Engine) -> None:
    from cim.settings import ApiSettings

    viewer = access.create_key(db, access.cli_actor("秘书"), "v", "viewer")[1]
    client = TestClient(create_app(engine=db))
    reads = [
        f"/grading/rounds/{ROUND}",
        f"/grading/rounds/{ROUND}/values",
        f"/grading/rounds/{ROUND}/audit",  # it names key holders
        f"/grading/rounds/{ROUND}/template.csv",
        f"/grading/rounds/{ROUND}/ranking",
        f"/grading/rounds/{ROUND}/cities/{CITY}/values/zhengfu.online/history",
    ]
    for url in reads:
        anonymous = client.get(url)
        assert anonymous.status_code == 401 and "not final" in anonymous.json()["detail"], url
        assert client.get(url, headers={"Authorization": f"Bearer {viewer}"}).status_code == 200
    assert client.get("/grading/rounds").json() == []  # drafts are not listed without a key
    listed = client.get("/grading/rounds", headers={"Authorization": f"Bearer {viewer}"}).json()
    assert [r["id"] for r in listed] == [ROUND]
    transparent = TestClient(
        create_app(engine=db, settings=ApiSettings(grading_public_drafts=True))
    )
    assert all(transparent.get(url).status_code == 200 for url in reads)

    for to, who in (("submitted", "李"), ("reviewed", "张"), ("final", "王")):
        rounds.move(db, access.cli_actor(who), ROUND, to, "定")
    assert all(client.get(url).status_code == 200 for url in reads)  # final: public
    assert [r["id"] for r in client.get("/grading/rounds").json()] == [ROUND]


def test_the_audit_shows_whole_values_and_scores_show_area_subtotals(db: Engine) -> None:
    note = "复核说明：" + "，".join(f"第{n}项材料已核对原件" for n in range(1, 40))
    values.set_values(
        db,
        access.cli_actor("秘书"),
        ROUND,
        [values.ValueEntry(CITY, "zhengfu.online", 92, note=note)],
    )
    env = {"CIM_DATABASE_URL": db.url.render_as_string(hide_password=False)}
    audit = CliRunner().invoke(main, ["grade", "audit", ROUND], env=env)
    assert audit.exit_code == 0, audit.output
    unwrapped = "".join(line.strip() for line in audit.output.splitlines())
    assert note in unwrapped  # wrapped over lines, never cut
    score = CliRunner().invoke(main, ["grade", "score", ROUND], env=env)
    assert score.exit_code == 0, score.output
    subtotals = score.output.splitlines()[1]
    assert "数字政府 " in subtotals and "数字惠民 0.00/" in subtotals
